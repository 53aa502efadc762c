// config.json for LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM. The field names and
// defaults are those of transformers' LlamaConfig, Qwen2Config and Qwen3Config; anything that
// would make the HF model compute something other than cohort's decoder is refused by name.
#include "model/hf_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/error.h"

namespace cohort {
namespace {

using nlohmann::json;

// Field lookups that treat null as absent (transformers writes e.g. "head_dim": null).
const json* field(const json& hf, const char* key) {
  auto it = hf.find(key);
  return it == hf.end() || it->is_null() ? nullptr : &*it;
}

int64_t integer_field(const json& hf, const char* key, const int64_t* fallback) {
  const json* v = field(hf, key);
  if (!v) {
    COHORT_REQUIRE(fallback != nullptr, "HF config: missing required field '" << key << "'");
    return *fallback;
  }
  COHORT_REQUIRE(v->is_number_integer(),
                 "HF config: field '" << key << "' must be an integer, got " << v->type_name() << " " << v->dump());
  COHORT_REQUIRE(!v->is_number_unsigned() || v->get<uint64_t>() <= (uint64_t)INT64_MAX,
                 "HF config: field '" << key << "' is too large: " << v->dump());
  return v->get<int64_t>();
}

int64_t required_integer(const json& hf, const char* key) {
  return integer_field(hf, key, nullptr);
}

int64_t optional_integer(const json& hf, const char* key, int64_t fallback) {
  return integer_field(hf, key, &fallback);
}

double optional_number(const json& hf, const char* key, double fallback) {
  const json* v = field(hf, key);
  if (!v) return fallback;
  COHORT_REQUIRE(v->is_number(),
                 "HF config: field '" << key << "' must be a number, got " << v->type_name() << " " << v->dump());
  return v->get<double>();
}

bool optional_bool(const json& hf, const char* key, bool fallback) {
  const json* v = field(hf, key);
  if (!v) return fallback;
  COHORT_REQUIRE(v->is_boolean(),
                 "HF config: field '" << key << "' must be true or false, got " << v->type_name() << " " << v->dump());
  return v->get<bool>();
}

struct Family {
  const char* model_type;
  const char* architecture;
};
constexpr Family kLlama{"llama", "LlamaForCausalLM"}, kQwen2{"qwen2", "Qwen2ForCausalLM"},
    kQwen3{"qwen3", "Qwen3ForCausalLM"};
constexpr const Family* kFamilies[] = {&kLlama, &kQwen2, &kQwen3};

// The family named by model_type (or, without it, by architectures), checked against
// architectures when both are given.
const Family& family_of(const json& hf) {
  std::vector<std::string> architectures;
  if (const json* a = field(hf, "architectures")) {
    COHORT_REQUIRE(a->is_array(), "HF config: field 'architectures' must be a list of strings, got " << a->dump());
    for (const auto& name : *a) {
      COHORT_REQUIRE(name.is_string(), "HF config: field 'architectures' must be a list of strings, got " << a->dump());
      architectures.push_back(name.get<std::string>());
    }
  }
  std::string model_type;
  if (const json* t = field(hf, "model_type")) {
    COHORT_REQUIRE(t->is_string(), "HF config: field 'model_type' must be a string, got " << t->dump());
    model_type = t->get<std::string>();
  } else {
    COHORT_REQUIRE(!architectures.empty(), "HF config: neither 'model_type' nor 'architectures' is given");
    for (const Family* f : kFamilies)
      if (architectures[0] == f->architecture) model_type = f->model_type;
    COHORT_REQUIRE(!model_type.empty(), "HF config: unsupported architecture '"
                                            << architectures[0] << "' (cohort runs LlamaForCausalLM, "
                                            << "Qwen2ForCausalLM and Qwen3ForCausalLM)");
  }
  const Family* family = nullptr;
  for (const Family* f : kFamilies)
    if (model_type == f->model_type) family = f;
  COHORT_REQUIRE(family != nullptr,
                 "HF config: unsupported model_type '" << model_type << "' (cohort runs 'llama', 'qwen2' and 'qwen3')");
  for (const auto& name : architectures)
    COHORT_REQUIRE(name == family->architecture, "HF config: unsupported architecture '"
                                                     << name << "' for model_type '" << model_type << "' (cohort runs "
                                                     << family->architecture << ")");
  return *family;
}

// The family an export writes: Qwen2 is the member with q/k/v biases (none on o_proj), Qwen3 the
// one with the q/k norm and no biases; no family has both.
const Family& export_family(const ModelConfig& config) {
  COHORT_REQUIRE(!(config.qkv_bias && config.qk_norm),
                 "HF config: model '" << config.name
                                      << "' has both q/k/v biases and the q/k norm, which no Hugging Face family has "
                                         "(Qwen2 has the biases, Qwen3 the norm)");
  return config.qk_norm ? kQwen3 : config.qkv_bias ? kQwen2 : kLlama;
}

// A number inside rope_scaling / rope_parameters, named as where.key in errors.
double rope_number(const json& spec, const std::string& where, const char* key) {
  auto it = spec.find(key);
  COHORT_REQUIRE(it != spec.end() && !it->is_null(), "HF config: " << where << " needs '" << key << "'");
  COHORT_REQUIRE(it->is_number(), "HF config: field '" << where << "." << key << "' must be a number, got "
                                                       << it->type_name() << " " << it->dump());
  return it->get<double>();
}

struct Rope {
  double theta = 10000.0;
  RopeScaling scaling;
};

// rope_theta and rope_scaling (transformers 4.x), or rope_parameters (transformers 5), which holds
// both. Of the scalings, linear and llama3 are implemented; any other rope_type, and any key the
// type does not have, is refused by name: it would change the rotary frequencies.
Rope read_rope(const json& hf) {
  Rope rope;
  rope.theta = optional_number(hf, "rope_theta", 10000.0);
  const json* parameters = field(hf, "rope_parameters");
  const json* scaling = field(hf, "rope_scaling");
  COHORT_REQUIRE(!(parameters && scaling), "HF config: both 'rope_parameters' "
                                               << parameters->dump() << " and 'rope_scaling' " << scaling->dump()
                                               << " are given; expected one");
  const json* spec = parameters ? parameters : scaling;
  if (!spec) return rope;
  const std::string where = parameters ? "rope_parameters" : "rope_scaling";
  COHORT_REQUIRE(spec->is_object(),
                 "HF config: field '" << where << "' must be an object or null, got " << spec->dump());
  if (parameters && spec->contains("rope_theta")) rope.theta = rope_number(*spec, where, "rope_theta");

  // transformers reads "rope_type", and the older "type" where it is absent.
  std::string type = "default", type_key = "rope_type";
  for (const char* key : {"type", "rope_type"}) {
    auto it = spec->find(key);
    if (it == spec->end() || it->is_null()) continue;
    COHORT_REQUIRE(it->is_string(),
                   "HF config: field '" << where << "." << key << "' must be a string, got " << it->dump());
    type = it->get<std::string>(), type_key = key;
  }
  if (spec->contains("type") && spec->contains("rope_type"))
    COHORT_REQUIRE(spec->at("type") == spec->at("rope_type"),
                   "HF config: " << where << ".type " << spec->at("type").dump() << " and " << where << ".rope_type "
                                 << spec->at("rope_type").dump() << " disagree");
  std::vector<std::string> keys = {"type", "rope_type"};
  if (parameters) keys.push_back("rope_theta");
  RopeScaling& s = rope.scaling;
  if (type == "default") {
    s.type = RopeScaling::Type::none;
  } else if (type == "linear") {
    s.type = RopeScaling::Type::linear;
    keys.push_back("factor");
    s.factor = rope_number(*spec, where, "factor");
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::llama3;
    for (const char* key : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      keys.push_back(key);
    s.factor = rope_number(*spec, where, "factor");
    s.low_freq_factor = rope_number(*spec, where, "low_freq_factor");
    s.high_freq_factor = rope_number(*spec, where, "high_freq_factor");
    const double original = rope_number(*spec, where, "original_max_position_embeddings");
    COHORT_REQUIRE(spec->at("original_max_position_embeddings").is_number_integer() && original > 0,
                   "HF config: field '" << where << ".original_max_position_embeddings' must be a positive integer, "
                                        << "got " << spec->at("original_max_position_embeddings").dump());
    s.original_max_position_embeddings = spec->at("original_max_position_embeddings").get<int64_t>();
  } else {
    COHORT_REQUIRE(false, "HF config: " << where << "." << type_key << " \"" << type << "\" (" << spec->dump()
                                        << ") is not supported (cohort implements default, linear and llama3)");
  }
  for (const auto& [key, value] : spec->items())
    COHORT_REQUIRE(std::find(keys.begin(), keys.end(), key) != keys.end(),
                   "HF config: " << where << "." << key << " " << value.dump() << " is not supported (rope_type "
                                 << type << " takes no such option in cohort)");
  return rope;
}

// null, or the rope_scaling object transformers reads for `scaling`.
json rope_scaling_json(const RopeScaling& s) {
  switch (s.type) {
    case RopeScaling::Type::none:
      return nullptr;
    case RopeScaling::Type::linear:
      return {{"rope_type", "linear"}, {"factor", s.factor}};
    case RopeScaling::Type::llama3:
      return {{"rope_type", "llama3"},
              {"factor", s.factor},
              {"low_freq_factor", s.low_freq_factor},
              {"high_freq_factor", s.high_freq_factor},
              {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  return nullptr;
}

// Refuses a field whose value would make transformers compute something else than cohort.
void refuse_if(bool condition, const json& hf, const char* key, const std::string& why) {
  if (condition)
    COHORT_REQUIRE(false, "HF config: " << key << " " << hf.at(key).dump() << " is not supported (" << why << ")");
}

// Writes `text` to path + ".tmp", fsyncs it and renames it over path; on failure the
// temporary file is removed and path is untouched.
void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  COHORT_REQUIRE(fd >= 0, "cannot create '" << temporary << "': " << std::strerror(errno));
  std::string failure;  // empty while nothing went wrong
  for (size_t done = 0; failure.empty() && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n > 0) {
      done += (size_t)n;
    } else if (!(n < 0 && errno == EINTR)) {
      failure = std::string("write: ") + std::strerror(errno);
    }
  }
  if (failure.empty() && ::fsync(fd) != 0) failure = std::string("fsync: ") + std::strerror(errno);
  if (::close(fd) != 0 && failure.empty()) failure = std::string("close: ") + std::strerror(errno);
  if (failure.empty() && ::rename(temporary.c_str(), path.c_str()) != 0)
    failure = std::string("rename: ") + std::strerror(errno);
  if (failure.empty()) return;
  ::unlink(temporary.c_str());
  COHORT_REQUIRE(false, "writing '" << path << "' failed (" << failure << ")");
}

}  // namespace

nlohmann::json to_hf_config(const ModelConfig& config, int32_t bos_token_id, int32_t eos_token_id,
                            const std::string& torch_dtype) {
  validate(config);
  COHORT_REQUIRE(torch_dtype == "float32" || torch_dtype == "bfloat16" || torch_dtype == "float16",
                 "HF config: torch_dtype must be float32, bfloat16 or float16, got '" << torch_dtype << "'");
  COHORT_REQUIRE(bos_token_id >= 0 && bos_token_id < config.vocab && eos_token_id >= 0 && eos_token_id < config.vocab,
                 "HF config: bos_token_id " << bos_token_id << " and eos_token_id " << eos_token_id
                                            << " must be ids below the vocabulary size " << config.vocab);
  const Family& family = export_family(config);
  json hf = {
      {"architectures", {family.architecture}},
      {"model_type", family.model_type},
      {"hidden_size", config.hidden},
      {"intermediate_size", config.intermediate},
      {"num_hidden_layers", config.layers},
      {"num_attention_heads", config.heads},
      {"num_key_value_heads", config.kv_heads},
      {"head_dim", config.resolved_head_dim()},
      {"vocab_size", config.vocab},
      {"max_position_embeddings", config.max_seq_len},
      {"rope_theta", config.rope_theta},
      {"rope_scaling", rope_scaling_json(config.rope_scaling)},
      {"rms_norm_eps", config.rms_eps},
      {"tie_word_embeddings", config.tie_embeddings},
      {"hidden_act", "silu"},
      {"initializer_range", 0.02},
      {"attention_dropout", 0.0},
      {"use_cache", true},
      {"torch_dtype", torch_dtype},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
  };
  if (&family == &kQwen2 || &family == &kQwen3) {
    // Qwen2 always puts biases on q/k/v (and none on o_proj), Qwen3 none unless attention_bias;
    // the window is off.
    if (&family == &kQwen3) hf["attention_bias"] = false;
    hf["use_sliding_window"] = false;
    hf["sliding_window"] = nullptr;
    hf["max_window_layers"] = config.layers;
  } else {
    hf["attention_bias"] = false;
    hf["mlp_bias"] = false;
    hf["pretraining_tp"] = 1;
  }
  return hf;
}

ModelConfig from_hf_config(const nlohmann::json& hf) {
  COHORT_REQUIRE(hf.is_object(), "HF config must be a JSON object, got " << hf.type_name());
  const Family& family = family_of(hf);
  const bool llama = &family == &kLlama, qwen3 = &family == &kQwen3;

  if (const json* act = field(hf, "hidden_act"))
    COHORT_REQUIRE(act->is_string() && act->get<std::string>() == "silu",
                   "HF config: hidden_act " << act->dump() << " is not supported (cohort's MLP is SwiGLU with silu)");
  refuse_if(field(hf, "quantization_config") != nullptr, hf, "quantization_config",
            "cohort loads unquantized f32, bf16 or f16 weights");
  if (const json* partial = field(hf, "partial_rotary_factor"))
    refuse_if(!(partial->is_number() && partial->get<double>() == 1.0), hf, "partial_rotary_factor",
              "cohort rotates every channel of a head");
  if (llama) {
    refuse_if(optional_bool(hf, "attention_bias", false), hf, "attention_bias",
              "Llama biases on the q/k/v/o projections");
    refuse_if(optional_bool(hf, "mlp_bias", false), hf, "mlp_bias", "cohort's MLP has no biases");
  } else {
    refuse_if(optional_bool(hf, "use_sliding_window", false), hf, "use_sliding_window",
              "cohort attends to the whole sequence");
    refuse_if(optional_bool(hf, "use_mrope", false), hf, "use_mrope", "cohort's rotary embedding is one-dimensional");
    if (qwen3)
      refuse_if(optional_bool(hf, "attention_bias", false), hf, "attention_bias",
                "Qwen3 biases on the q/k/v/o projections");
  }
  if (const json* types = field(hf, "layer_types")) {
    COHORT_REQUIRE(types->is_array(), "HF config: field 'layer_types' must be a list, got " << types->dump());
    for (size_t i = 0; i < types->size(); ++i)
      COHORT_REQUIRE((*types)[i] == "full_attention",
                     "HF config: layer_types[" << i << "] " << (*types)[i].dump()
                                               << " is not supported (cohort's layers are all full_attention)");
  }
  const Rope rope = read_rope(hf);

  ModelConfig c;
  c.name = family.model_type;
  c.hidden = required_integer(hf, "hidden_size");
  c.intermediate = required_integer(hf, "intermediate_size");
  c.layers = required_integer(hf, "num_hidden_layers");
  c.heads = required_integer(hf, "num_attention_heads");
  // Qwen2Config and Qwen3Config default num_key_value_heads to 32 where the key is absent, and
  // to num_attention_heads where it is null; LlamaConfig to num_attention_heads in both cases.
  c.kv_heads =
      optional_integer(hf, "num_key_value_heads", !llama && !hf.contains("num_key_value_heads") ? 32 : c.heads);
  // Qwen3Config's head_dim defaults to 128; the others' to hidden_size / num_attention_heads.
  c.head_dim = optional_integer(hf, "head_dim", qwen3 ? 128 : 0);
  // Keep "derived from hidden / heads" as 0, the way cohort's named sizes say it.
  if (c.heads > 0 && c.head_dim * c.heads == c.hidden) c.head_dim = 0;
  COHORT_REQUIRE(c.head_dim >= 0, "HF config: field 'head_dim' must be positive, got " << c.head_dim);
  c.vocab = required_integer(hf, "vocab_size");
  c.max_seq_len = required_integer(hf, "max_position_embeddings");
  c.rope_theta = rope.theta;
  c.rope_scaling = rope.scaling;
  c.rms_eps = optional_number(hf, "rms_norm_eps", 1e-6);
  c.tie_embeddings = optional_bool(hf, "tie_word_embeddings", false);
  c.qkv_bias = &family == &kQwen2;
  c.qk_norm = qwen3;
  validate(c);
  return c;
}

void write_hf_config(const ModelConfig& config, const std::string& dir, int32_t bos_token_id, int32_t eos_token_id,
                     const std::string& torch_dtype) {
  const std::string text = to_hf_config(config, bos_token_id, eos_token_id, torch_dtype).dump(2) + "\n";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  COHORT_REQUIRE(!ec, "cannot create directory '" << dir << "': " << ec.message());
  write_file_atomically((std::filesystem::path(dir) / "config.json").string(), text);
}

ModelConfig read_hf_config(const std::string& path) {
  std::error_code ec;
  const std::string file =
      std::filesystem::is_directory(path, ec) ? (std::filesystem::path(path) / "config.json").string() : path;
  std::ifstream in(file, std::ios::binary);
  COHORT_REQUIRE(in, "cannot open HF config '" << file << "': " << std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  json hf;
  try {
    hf = json::parse(text.str());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
    COHORT_REQUIRE(false, "HF config '" << file << "' is not valid JSON (" << e.what() << ")");
  }
  try {
    return from_hf_config(hf);
  } catch (const Error& e) {
    throw Error("'" + file + "': " + e.what());
  }
}

}  // namespace cohort
