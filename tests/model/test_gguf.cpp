// GGUF: bit-exact f32 and bounded-error f16/bf16/q8_0 round trips over the Llama and Qwen2
// variants, the header llama.cpp expects (keys, tokenizer, names, dims, alignment, the
// rotary row permutation), greedy decoding from a re-imported model, and every kind of bad
// file (built by hand from a good one) failing with an error that names what is wrong,
// including a file truncated at every byte of its header.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "model/byte_tokenizer.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "common/model_files.h"

using namespace cohort;
using namespace cohort::testing;
namespace fs = std::filesystem;

namespace {

// The variants the format must carry: Qwen2 (biases) tied and untied, Llama tied and
// untied, head_dim != hidden / heads for both, and a model vocab larger than the tokenizer's.
std::vector<ModelConfig> round_trip_configs() {
  std::vector<ModelConfig> configs = {model_config_named("tiny"), model_config_named("small")};
  ModelConfig c = model_config_named("tiny");
  c.name = "tiny-llama-head16", c.qkv_bias = false, c.tie_embeddings = false, c.head_dim = 16, c.vocab = 300;
  configs.push_back(c);
  c = model_config_named("tiny");
  c.name = "tiny-qwen2-head16-untied", c.tie_embeddings = false, c.head_dim = 16, c.kv_heads = 1;
  configs.push_back(c);
  c = model_config_named("tiny");
  c.name = "tiny-llama-tied", c.qkv_bias = false, c.rope_theta = 500000.0, c.rms_eps = 1e-5;
  configs.push_back(c);
  return configs;
}

std::span<const uint8_t> as_span(const std::string& bytes, size_t n = std::string::npos) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), std::min(n, bytes.size())};
}

const char* dtype_name(GgufDtype d) {
  switch (d) {
    case GgufDtype::f32:
      return "f32";
    case GgufDtype::f16:
      return "f16";
    case GgufDtype::bf16:
      return "bf16";
    case GgufDtype::q8_0:
      return "q8_0";
  }
  return "?";
}

// Little-endian encoders for building GGUF files by hand.
template <typename T>
std::string le(T value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
}
std::string gguf_string(const std::string& s) {
  return le<uint64_t>(s.size()) + s;
}
std::string value_u32(uint32_t v) {
  return le<uint32_t>((uint32_t)GgufValueType::uint32) + le(v);
}
std::string value_string(const std::string& s) {
  return le<uint32_t>((uint32_t)GgufValueType::string) + gguf_string(s);
}

// A metadata value back to its bytes (type, then payload).
std::string encode_value(const GgufValue& v) {
  std::string out = le<uint32_t>((uint32_t)v.type);
  switch (v.type) {
    case GgufValueType::uint8:
      return out + le<uint8_t>((uint8_t)std::get<uint64_t>(v.value));
    case GgufValueType::uint16:
      return out + le<uint16_t>((uint16_t)std::get<uint64_t>(v.value));
    case GgufValueType::uint32:
      return out + le<uint32_t>((uint32_t)std::get<uint64_t>(v.value));
    case GgufValueType::uint64:
      return out + le<uint64_t>(std::get<uint64_t>(v.value));
    case GgufValueType::int8:
      return out + le<int8_t>((int8_t)std::get<int64_t>(v.value));
    case GgufValueType::int16:
      return out + le<int16_t>((int16_t)std::get<int64_t>(v.value));
    case GgufValueType::int32:
      return out + le<int32_t>((int32_t)std::get<int64_t>(v.value));
    case GgufValueType::int64:
      return out + le<int64_t>(std::get<int64_t>(v.value));
    case GgufValueType::float32:
      return out + le<float>((float)std::get<double>(v.value));
    case GgufValueType::float64:
      return out + le<double>(std::get<double>(v.value));
    case GgufValueType::boolean:
      return out + le<uint8_t>(std::get<bool>(v.value) ? 1 : 0);
    case GgufValueType::string:
      return out + gguf_string(std::get<std::string>(v.value));
    case GgufValueType::array: {
      const GgufArray& a = std::get<GgufArray>(v.value);
      out += le<uint32_t>((uint32_t)a.element_type) + le<uint64_t>(a.size);
      if (a.element_type == GgufValueType::string) {
        for (const auto& s : a.strings) out += gguf_string(s);
      } else {
        out.append(a.bytes.begin(), a.bytes.end());
      }
      return out;
    }
  }
  return out;
}

// A GGUF file taken apart (with the reader under test, whose round trips are checked
// separately) so that a test can corrupt one field and put it back together.
struct RawGguf {
  uint32_t version = 3;
  std::vector<std::pair<std::string, std::string>> metadata;  // key, encoded type and value
  std::vector<GgufTensorInfo> tensors;
  std::string data;         // the data section
  uint64_t alignment = 32;  // used to pad the header; general.alignment is in metadata

  static RawGguf from(const std::string& bytes) {
    GgufFile file = parse_gguf(as_span(bytes));
    RawGguf raw;
    raw.version = file.version;
    for (const auto& [key, value] : file.metadata) raw.metadata.emplace_back(key, encode_value(value));
    raw.tensors = file.tensors;
    raw.alignment = file.alignment;
    raw.data = bytes.substr(file.data_offset);
    return raw;
  }
  std::string encode() const {
    std::string out = "GGUF" + le(version) + le<uint64_t>(tensors.size()) + le<uint64_t>(metadata.size());
    for (const auto& [key, value] : metadata) out += gguf_string(key) + value;
    for (const auto& t : tensors) {
      out += gguf_string(t.name) + le<uint32_t>((uint32_t)t.dims.size());
      for (uint64_t d : t.dims) out += le(d);
      out += le(t.type) + le(t.offset);
    }
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    return out + data;
  }
  void set(const std::string& key, const std::string& encoded) {
    for (auto& kv : metadata)
      if (kv.first == key) {
        kv.second = encoded;
        return;
      }
    metadata.emplace_back(key, encoded);
  }
  void remove(const std::string& key) {
    std::erase_if(metadata, [&](const auto& kv) { return kv.first == key; });
  }
  GgufTensorInfo& tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("test: no tensor " + name);
  }
};

// Greedy decoding with the KV cache, as rollout's engine does at temperature 0 (test_model
// links only cohort_model, so the loop is here): the chosen tokens, the margin of each
// choice over the runner-up, and the logits at each step.
struct GreedyRun {
  std::vector<int32_t> tokens;
  std::vector<float> margins;
  std::vector<std::vector<float>> logits;
};

GreedyRun greedy(Transformer& model, const std::vector<int32_t>& prompt, int steps) {
  const int64_t V = model.config().vocab;
  KVCache cache(model.config(), 1, (int64_t)prompt.size() + steps);
  std::vector<float> logits((size_t)V);
  int32_t slot = 0, start = 0, n = (int32_t)prompt.size();
  model.decode(cache, prompt.data(), &slot, &start, &n, 1, n, logits.data());
  GreedyRun run;
  for (int step = 0; step < steps; ++step) {
    int32_t best = 0;
    for (int32_t v = 1; v < V; ++v)
      if (logits[(size_t)v] > logits[(size_t)best]) best = v;
    float second = -INFINITY;
    for (int32_t v = 0; v < V; ++v)
      if (v != best) second = std::max(second, logits[(size_t)v]);
    run.tokens.push_back(best);
    run.margins.push_back(logits[(size_t)best] - second);
    run.logits.push_back(logits);
    if (step + 1 == steps) break;
    start = (int32_t)prompt.size() + step, n = 1;
    model.decode(cache, &best, &slot, &start, &n, 1, 1, logits.data());
  }
  return run;
}

// The final normalized hidden state (what the head multiplies) at each step of a token
// path: a copy of the model with an untied lm_head that is the identity on the first C ids
// reads it out as logits (the copy's inputs still come from embed_tokens, so a tied model's
// states are the same).
std::vector<std::vector<float>> head_inputs(const Transformer& model, const std::vector<int32_t>& prompt,
                                            const std::vector<int32_t>& path) {
  ModelConfig c = model.config();
  c.tie_embeddings = false;
  Transformer probe(c);
  for (const ParameterInfo& p : model.parameters()) {
    const ParameterInfo& q = probe.parameter(p.name);
    std::copy(model.weights().begin() + p.offset, model.weights().begin() + p.offset + p.numel,
              probe.weights().begin() + q.offset);
  }
  const ParameterInfo& head = probe.parameter("lm_head.weight");
  std::fill(probe.weights().begin() + head.offset, probe.weights().begin() + head.offset + head.numel, 0.0f);
  for (int64_t i = 0; i < c.hidden; ++i) probe.weights()[head.offset + i * c.hidden + i] = 1.0f;
  KVCache cache(c, 1, (int64_t)(prompt.size() + path.size()));
  std::vector<float> logits((size_t)c.vocab);
  std::vector<std::vector<float>> states;
  int32_t slot = 0, start = 0, n = (int32_t)prompt.size();
  probe.decode(cache, prompt.data(), &slot, &start, &n, 1, n, logits.data());
  for (size_t t = 0; t < path.size(); ++t) {
    states.emplace_back(logits.begin(), logits.begin() + c.hidden);
    if (t + 1 == path.size()) break;
    start = (int32_t)(prompt.size() + t), n = 1;
    probe.decode(cache, &path[t], &slot, &start, &n, 1, 1, logits.data());
  }
  return states;
}

// Makes the model's greedy path after `prompt` unambiguous: while some choice wins by less
// than `margin` logits, adds to that token's head row the multiple of the step's head input
// that raises its logit there by the shortfall (plus 1). Other steps move by the cosine of
// their states, so a few rounds settle; returns the final path's smallest margin.
float widen_greedy_margins(Transformer& model, const std::vector<int32_t>& prompt, int steps, float margin) {
  const ModelConfig& c = model.config();
  const ParameterInfo& head = model.parameter(c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  for (int round = 0; round < 30; ++round) {
    const GreedyRun run = greedy(model, prompt, steps);
    const float smallest = *std::min_element(run.margins.begin(), run.margins.end());
    if (smallest >= margin || round == 29) return smallest;
    const auto states = head_inputs(model, prompt, run.tokens);
    for (int t = 0; t < steps; ++t) {
      if (run.margins[(size_t)t] >= margin) continue;
      const std::vector<float>& h = states[(size_t)t];
      double norm2 = 0;
      for (float x : h) norm2 += (double)x * x;
      const double step = (margin - run.margins[(size_t)t] + 1.0) / norm2;
      float* row = model.weights().data() + head.offset + (int64_t)run.tokens[(size_t)t] * c.hidden;
      for (int64_t i = 0; i < c.hidden; ++i) row[i] += (float)(step * h[(size_t)i]);
    }
  }
  return 0;
}

class Gguf : public ::testing::Test {
 protected:
  fs::path dir_;
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("cohort_gguf_" + std::string(info->name()) + "_" + std::to_string((long)::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A good file of a small untied Llama model (so every kind of tensor is present), as bytes.
  std::string good_file(ModelConfig* config_out = nullptr) {
    ModelConfig c = model_config_named("tiny");
    c.name = "corrupt-me", c.qkv_bias = false, c.tie_embeddings = false, c.vocab = 270;
    if (config_out) *config_out = c;
    Transformer model = random_model(c, 5);
    fs::path path = dir_ / "good.gguf";
    write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f32);
    return read_bytes(path);
  }

  // Loading `bytes` (from a file and from memory) must throw a cohort::Error whose message
  // names the file and holds every needle.
  void expect_error(const std::string& bytes, const std::vector<std::string>& needles) {
    const fs::path path = dir_ / "bad.gguf";
    write_bytes(path, bytes);
    for (bool from_memory : {false, true}) {
      SCOPED_TRACE(from_memory ? "from memory" : "from file");
      try {
        if (from_memory) {
          GgufReader reader(as_span(bytes), "in-memory.gguf");
          load_gguf_model(reader);
        } else {
          load_gguf_model(path.string());
        }
        ADD_FAILURE() << "loading should have failed (expected: " << needles[0] << ")";
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(from_memory ? "in-memory.gguf" : path.string()), std::string::npos)
            << "error does not name the file: " << what;
        for (const auto& needle : needles)
          EXPECT_NE(what.find(needle), std::string::npos) << "missing '" << needle << "' in: " << what;
      }
    }
  }
};

}  // namespace

TEST_F(Gguf, F32RoundTripIsBitExactForEveryVariant) {
  for (const ModelConfig& config : round_trip_configs()) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 11);
    const fs::path path = dir_ / (config.name + ".gguf");
    write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f32);
    EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
    auto loaded = load_gguf_model(path.string());
    const ModelConfig& c = loaded->config();
    EXPECT_EQ(c.name, config.name);
    EXPECT_EQ(c.hidden, config.hidden);
    EXPECT_EQ(c.layers, config.layers);
    EXPECT_EQ(c.heads, config.heads);
    EXPECT_EQ(c.kv_heads, config.kv_heads);
    EXPECT_EQ(c.resolved_head_dim(), config.resolved_head_dim());
    EXPECT_EQ(c.intermediate, config.intermediate);
    EXPECT_EQ(c.vocab, config.vocab);
    EXPECT_EQ(c.max_seq_len, config.max_seq_len);
    EXPECT_EQ(c.tie_embeddings, config.tie_embeddings);
    EXPECT_EQ(c.qkv_bias, config.qkv_bias);
    // GGUF stores both as float32, as llama.cpp reads them.
    EXPECT_EQ(c.rope_theta, (double)(float)config.rope_theta);
    EXPECT_EQ(c.rms_eps, (double)(float)config.rms_eps);
    ASSERT_EQ(loaded->weights().size(), model.weights().size());
    EXPECT_EQ(std::memcmp(loaded->weights().data(), model.weights().data(), model.weights().size() * sizeof(float)), 0);
  }
}

// f16 and bf16 round to nearest even: |error| <= |x| * 2^-11 (f16 normal), 2^-25 (f16
// subnormal, below 2^-14), |x| * 2^-8 (bf16). Q8_0 per 32-value block with d = max|x|/127
// and ds = d rounded to f16: q = round(x / ds) clamped to +-127, so |error| <= ds / 2 from
// rounding q plus 127 * |d - ds| where the clamp bites (a small slack covers the float
// division). 1-D tensors (norms, biases) are f32 in every dtype, so exact.
TEST_F(Gguf, LossyRoundTripsStayWithinTheFormatsRounding) {
  for (const ModelConfig& config : round_trip_configs()) {
    Transformer model = random_model(config, 12);
    for (GgufDtype dtype : {GgufDtype::f16, GgufDtype::bf16, GgufDtype::q8_0}) {
      SCOPED_TRACE(config.name + " " + dtype_name(dtype));
      const fs::path path = dir_ / "lossy.gguf";
      write_gguf(model, ByteTokenizer(), path.string(), dtype);
      auto loaded = load_gguf_model(path.string());
      ASSERT_EQ(loaded->weights().size(), model.weights().size());
      for (const ParameterInfo& p : model.parameters()) {
        const float* x = model.weights().data() + p.offset;
        const float* y = loaded->weights().data() + p.offset;
        int bad = 0;
        for (int64_t i = 0; i < p.numel && bad < 3; ++i) {
          double bound = 0;
          if (p.shape.size() == 1) {
            bound = 0;
          } else if (dtype == GgufDtype::f16) {
            bound = std::max(std::fabs((double)x[i]) * 0x1p-11, 0x1p-25);
          } else if (dtype == GgufDtype::bf16) {
            bound = std::fabs((double)x[i]) * 0x1p-8;
          } else {
            const int64_t block = i / 32 * 32;
            float amax = 0;
            for (int64_t k = block; k < block + 32; ++k) amax = std::max(amax, std::fabs(x[k]));
            const double d = amax / 127.0f, ds = half_to_float(float_to_half(amax / 127.0f));
            bound = ds / 2 + 127 * std::fabs(d - ds) + 1e-6 * amax;
          }
          if (!(std::fabs((double)x[i] - (double)y[i]) <= bound)) {
            ++bad;
            ADD_FAILURE() << p.name << "[" << i << "]: " << x[i] << " came back as " << y[i] << ", bound " << bound;
          }
        }
      }
    }
  }
}

TEST_F(Gguf, Q8RowsThatAreNotWholeBlocksFallBackToF16) {
  ModelConfig c = model_config_named("tiny");
  c.name = "hidden48", c.hidden = 48, c.heads = 4, c.kv_heads = 2, c.intermediate = 64, c.qkv_bias = false;
  Transformer model = random_model(c, 3);
  const fs::path path = dir_ / "q8.gguf";
  write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::q8_0);
  GgufFile file = read_gguf_header(path.string());
  // Rows of 48 (hidden) cannot be Q8_0; rows of 64 (intermediate) can.
  EXPECT_EQ(file.find_tensor("token_embd.weight")->type, (uint32_t)GgmlType::f16);
  EXPECT_EQ(file.find_tensor("blk.0.ffn_up.weight")->type, (uint32_t)GgmlType::f16);
  EXPECT_EQ(file.find_tensor("blk.0.ffn_down.weight")->type, (uint32_t)GgmlType::q8_0);
  EXPECT_EQ(file.find_tensor("blk.0.attn_norm.weight")->type, (uint32_t)GgmlType::f32);
  EXPECT_EQ(file.get_integer("general.file_type"), 7);
  auto loaded = load_gguf_model(path.string());
  EXPECT_EQ(loaded->weights().size(), model.weights().size());
}

TEST_F(Gguf, HeaderHasLlamaCppKeysTokenizerAndTensorNames) {
  for (const ModelConfig& config : round_trip_configs()) {
    for (GgufDtype dtype : {GgufDtype::f32, GgufDtype::f16, GgufDtype::bf16, GgufDtype::q8_0}) {
      SCOPED_TRACE(config.name + " " + dtype_name(dtype));
      Transformer model = random_model(config, 13);
      const fs::path path = dir_ / "header.gguf";
      write_gguf(model, ByteTokenizer(), path.string(), dtype, {{"cohort.run", "unit-test"}});
      GgufFile f = read_gguf_header(path.string());
      const std::string arch = config.qkv_bias ? "qwen2" : "llama";
      EXPECT_EQ(f.version, 3u);
      EXPECT_EQ(f.get_string("general.architecture"), arch);
      EXPECT_EQ(f.get_string("general.name"), config.name);
      EXPECT_EQ(f.find("general.alignment")->type, GgufValueType::uint32);
      EXPECT_EQ(f.get_integer("general.alignment"), 32);
      EXPECT_EQ(f.data_offset % 32, 0u);
      const int64_t file_types[] = {0, 1, 32, 7};
      EXPECT_EQ(f.get_integer("general.file_type"), file_types[(int)dtype]);
      EXPECT_EQ(f.get_integer(arch + ".context_length"), config.max_seq_len);
      EXPECT_EQ(f.get_integer(arch + ".embedding_length"), config.hidden);
      EXPECT_EQ(f.get_integer(arch + ".block_count"), config.layers);
      EXPECT_EQ(f.get_integer(arch + ".feed_forward_length"), config.intermediate);
      EXPECT_EQ(f.get_integer(arch + ".attention.head_count"), config.heads);
      EXPECT_EQ(f.get_integer(arch + ".attention.head_count_kv"), config.kv_heads);
      EXPECT_EQ(f.find(arch + ".attention.layer_norm_rms_epsilon")->type, GgufValueType::float32);
      EXPECT_EQ(f.get_float(arch + ".attention.layer_norm_rms_epsilon"), (double)(float)config.rms_eps);
      EXPECT_EQ(f.get_float(arch + ".rope.freq_base"), (double)(float)config.rope_theta);
      EXPECT_EQ(f.get_integer(arch + ".rope.dimension_count"), config.resolved_head_dim());
      EXPECT_EQ(f.get_integer(arch + ".vocab_size"), config.vocab);
      const bool custom_head_dim = config.resolved_head_dim() * config.heads != config.hidden;
      EXPECT_EQ(f.find(arch + ".attention.key_length") != nullptr, custom_head_dim);
      if (custom_head_dim) {
        EXPECT_EQ(f.get_integer(arch + ".attention.key_length"), config.resolved_head_dim());
        EXPECT_EQ(f.get_integer(arch + ".attention.value_length"), config.resolved_head_dim());
      }
      EXPECT_EQ(f.get_string("cohort.run"), "unit-test");

      // The tokenizer: the byte strings of tokenizer.json, specials, placeholders.
      EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
      EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "default");
      const GgufArray& tokens = f.get_array("tokenizer.ggml.tokens");
      ASSERT_EQ(tokens.element_type, GgufValueType::string);
      ASSERT_EQ((int64_t)tokens.size, config.vocab);
      const nlohmann::json vocab = ByteTokenizer().to_hf_tokenizer_json()["model"]["vocab"];
      for (const auto& [text, id] : vocab.items()) EXPECT_EQ(tokens.strings[id.get<size_t>()], text);
      EXPECT_EQ(tokens.strings[32], "\xc4\xa0");  // space is 'Ġ' in GPT-2's table
      EXPECT_EQ(tokens.strings[10], "\xc4\x8a");  // newline is 'Ċ'
      EXPECT_EQ(tokens.strings[65], "A");
      EXPECT_EQ(tokens.strings[ByteTokenizer::kEosId], "<|eos|>");
      EXPECT_EQ(tokens.strings[ByteTokenizer::kImEndId], "<|im_end|>");
      const GgufValue& types = *f.find("tokenizer.ggml.token_type");
      ASSERT_EQ(std::get<GgufArray>(types.value).element_type, GgufValueType::int32);
      for (int64_t id = 0; id < config.vocab; ++id) {
        const int64_t expected = id < ByteTokenizer::kNumByteTokens ? 1 : id < ByteTokenizer::kVocabSize ? 3 : 5;
        EXPECT_EQ(types.integer_element((uint64_t)id), expected) << "token " << id;
        if (id >= ByteTokenizer::kVocabSize) {
          EXPECT_EQ(tokens.strings[(size_t)id], "<|unused_" + std::to_string(id - ByteTokenizer::kVocabSize) + "|>");
        }
      }
      EXPECT_EQ(std::set<std::string>(tokens.strings.begin(), tokens.strings.end()).size(), tokens.strings.size())
          << "llama.cpp requires unique token strings";
      const GgufArray& merges = f.get_array("tokenizer.ggml.merges");
      EXPECT_EQ(merges.element_type, GgufValueType::string);
      EXPECT_EQ(merges.size, 0u);
      EXPECT_EQ(f.get_integer("tokenizer.ggml.bos_token_id"), ByteTokenizer::kBosId);
      EXPECT_EQ(f.get_integer("tokenizer.ggml.eos_token_id"), ByteTokenizer::kEosId);
      EXPECT_EQ(f.get_integer("tokenizer.ggml.padding_token_id"), ByteTokenizer::kPadId);
      EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));

      // Tensors: llama.cpp's names, dims fastest first, 1-D tensors in f32, offsets aligned.
      std::set<std::string> names;
      for (const auto& t : f.tensors) {
        names.insert(t.name);
        EXPECT_EQ(t.offset % 32, 0u) << t.name;
        if (t.dims.size() == 1) {
          EXPECT_EQ(t.type, (uint32_t)GgmlType::f32) << t.name;
        }
      }
      EXPECT_EQ(names.size(), model.parameters().size());
      EXPECT_EQ(names.count("output.weight"), config.tie_embeddings ? 0u : 1u);
      EXPECT_EQ(names.count("blk.1.attn_q.bias"), config.qkv_bias ? 1u : 0u);
      for (const char* n :
           {"token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
            "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight", "blk.0.ffn_norm.weight",
            "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"})
        EXPECT_EQ(names.count(n), 1u) << n;
      const uint64_t q_dim = config.heads * config.resolved_head_dim();
      EXPECT_EQ(f.find_tensor("token_embd.weight")->dims,
                (std::vector<uint64_t>{(uint64_t)config.hidden, (uint64_t)config.vocab}));
      EXPECT_EQ(f.find_tensor("blk.0.attn_output.weight")->dims,
                (std::vector<uint64_t>{q_dim, (uint64_t)config.hidden}));
      EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->dims,
                (std::vector<uint64_t>{(uint64_t)config.intermediate, (uint64_t)config.hidden}));
    }
  }
}

// The file holds q/k rows in llama.cpp's interleaved rotary order for llama and untouched
// for qwen2, and that order is the right one: rotating interleaved pairs (ggml's "NORM"
// rope) of the permuted rows gives the permuted rotate-half result, so q.k is unchanged.
TEST_F(Gguf, LlamaQkRowsArePermutedForInterleavedRope) {
  for (const ModelConfig& config : round_trip_configs()) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 14);
    const fs::path path = dir_ / "perm.gguf";
    write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f32);
    GgufReader reader(path.string());
    const int64_t hd = config.resolved_head_dim(), half = hd / 2, C = config.hidden;
    for (const char* which : {"q", "k"}) {
      const int64_t heads = std::string(which) == "q" ? config.heads : config.kv_heads;
      const std::vector<float> file_rows = reader.read_tensor(std::string("blk.1.attn_") + which + ".weight");
      const ParameterInfo& p = model.parameter(std::string("model.layers.1.self_attn.") + which + "_proj.weight");
      const float* original = model.weights().data() + p.offset;
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < half; ++j) {
            const int64_t file_row = h * hd + (config.qkv_bias ? i * half + j : 2 * j + i);
            const int64_t model_row = h * hd + i * half + j;
            ASSERT_EQ(std::memcmp(&file_rows[(size_t)(file_row * C)], original + model_row * C, C * sizeof(float)), 0)
                << which << " head " << h << " row " << model_row;
          }
    }
  }
  // The two rotary conventions agree once the rows are permuted.
  const int64_t hd = 16, half = hd / 2;
  std::vector<float> x(hd);
  for (int64_t i = 0; i < hd; ++i) x[(size_t)i] = std::sin(1.3f * (float)i + 0.2f);
  const int position = 7;
  const double theta = 10000.0;
  std::vector<float> rotate_half(hd), interleaved(x), permuted(x);
  for (int64_t j = 0; j < half; ++j) {
    const double angle = position * std::pow(theta, -2.0 * (double)j / (double)hd);
    const float c = (float)std::cos(angle), s = (float)std::sin(angle);
    rotate_half[j] = x[j] * c - x[j + half] * s;
    rotate_half[j + half] = x[j + half] * c + x[j] * s;
  }
  gguf_permute_rotary_rows(permuted.data(), 1, hd, 1, true);
  for (int64_t j = 0; j < half; ++j) {
    const double angle = position * std::pow(theta, -2.0 * (double)j / (double)hd);
    const float c = (float)std::cos(angle), s = (float)std::sin(angle);
    interleaved[2 * j] = permuted[2 * j] * c - permuted[2 * j + 1] * s;
    interleaved[2 * j + 1] = permuted[2 * j] * s + permuted[2 * j + 1] * c;
  }
  std::vector<float> expected(rotate_half);
  gguf_permute_rotary_rows(expected.data(), 1, hd, 1, true);
  for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(interleaved[i], expected[i], 1e-6) << i;
  gguf_permute_rotary_rows(permuted.data(), 1, hd, 1, false);
  EXPECT_EQ(permuted, x);
}

TEST_F(Gguf, GreedyDecodingFromTheReimportedModelMatches) {
  for (const ModelConfig& config : round_trip_configs()) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 15);
    for (auto& w : model.weights()) w *= 4.0f;  // sharper logits than the 0.02 init
    const fs::path path = dir_ / "greedy.gguf";
    write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f32);
    auto loaded = load_gguf_model(path.string());
    const std::vector<int32_t> prompt = ByteTokenizer().encode("Q: 2+3=? A:", /*add_bos=*/true);
    GreedyRun a = greedy(model, prompt, 20), b = greedy(*loaded, prompt, 20);
    EXPECT_EQ(a.tokens, b.tokens);
  }
}

TEST_F(Gguf, InMemoryReaderDecodesLikeTheFileReader) {
  Transformer model = random_model(round_trip_configs()[2], 16);
  const fs::path path = dir_ / "memory.gguf";
  write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::q8_0);
  const std::string bytes = read_bytes(path);
  GgufReader from_memory(as_span(bytes)), from_file(path.string());
  ASSERT_EQ(from_memory.file().tensors.size(), from_file.file().tensors.size());
  for (const auto& t : from_file.file().tensors)
    EXPECT_EQ(from_memory.read_tensor(t.name), from_file.read_tensor(t.name));
  auto a = load_gguf_model(from_memory), b = load_gguf_model(path.string());
  EXPECT_EQ(a->weights(), b->weights());
}

TEST_F(Gguf, WritesAtomicallyAndRefusesBadRequests) {
  Transformer model = random_model(model_config_named("tiny"), 17);
  const fs::path path = dir_ / "atomic.gguf";
  write_bytes(path, "old contents");
  write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f16);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EXPECT_EQ(read_bytes(path).substr(0, 4), "GGUF");
  EXPECT_THROW(write_gguf(model, ByteTokenizer(), (dir_ / "no-such-dir" / "x.gguf").string(), GgufDtype::f32), Error);
  try {
    write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f32, {{"general.name", "forged"}});
    ADD_FAILURE() << "a colliding extra key should be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.name"), std::string::npos) << e.what();
  }
  ModelConfig small_vocab = model_config_named("tiny");
  small_vocab.vocab = 100;
  Transformer too_small = random_model(small_vocab, 1);
  EXPECT_THROW(write_gguf(too_small, ByteTokenizer(), path.string(), GgufDtype::f32), Error);
  Transformer bad = random_model(model_config_named("tiny"), 1);
  bad.weights()[bad.parameter("model.layers.0.mlp.up_proj.weight").offset + 5] = NAN;
  try {
    write_gguf(bad, ByteTokenizer(), (dir_ / "nan.gguf").string(), GgufDtype::q8_0);
    ADD_FAILURE() << "NaN cannot be Q8_0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_up.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "nan.gguf"));
  EXPECT_FALSE(fs::exists((dir_ / "nan.gguf").string() + ".tmp"));
  // The failed writes left the good file alone.
  EXPECT_NO_THROW(load_gguf_model(path.string()));
}

TEST_F(Gguf, RebuiltGoodFileLoads) {
  // The corruption tests rely on RawGguf putting a file back together exactly.
  const std::string bytes = good_file();
  EXPECT_EQ(RawGguf::from(bytes).encode(), bytes);
  expect_error("", {"truncated"});
}

TEST_F(Gguf, BadHeadersAreRefusedWithTheReason) {
  const std::string good = good_file();
  std::string bytes = good;
  bytes[0] = 'X';
  expect_error(bytes, {"not a GGUF file"});
  for (uint32_t version : {1u, 4u, 0x03000000u}) {
    RawGguf raw = RawGguf::from(good);
    raw.version = version;
    expect_error(raw.encode(), {"unsupported GGUF version " + std::to_string(version)});
  }
  expect_error(good.substr(0, 20), {"truncated", "24-byte"});
  // Counts that the file cannot hold.
  bytes = good;
  const uint64_t huge = uint64_t(1) << 60;
  std::memcpy(&bytes[16], &huge, 8);
  expect_error(bytes, {"metadata entries"});
  bytes = good;
  std::memcpy(&bytes[8], &huge, 8);
  expect_error(bytes, {"tensors, more than"});
  // A key length beyond the limit, and one beyond the file.
  bytes = good;
  std::memcpy(&bytes[24], &huge, 8);
  expect_error(bytes, {"metadata key #0", "more than the limit"});
  bytes = good;
  const uint64_t long_key = 60000, no_tensors = 0, one_key = 1;
  std::memcpy(&bytes[8], &no_tensors, 8);
  std::memcpy(&bytes[16], &one_key, 8);
  std::memcpy(&bytes[24], &long_key, 8);
  bytes.resize(24 + 8 + 100);
  expect_error(bytes, {"truncated", "metadata key #0"});
}

TEST_F(Gguf, BadMetadataIsRefusedWithTheReason) {
  const std::string good = good_file();
  auto edit = [&](const std::function<void(RawGguf&)>& f) {
    RawGguf raw = RawGguf::from(good);
    f(raw);
    return raw.encode();
  };
  expect_error(edit([](RawGguf& r) { r.metadata.emplace_back("general.name", value_string("again")); }),
               {"duplicate metadata key 'general.name'"});
  expect_error(edit([](RawGguf& r) { r.metadata.emplace_back("", value_string("x")); }), {"is empty"});
  expect_error(edit([](RawGguf& r) { r.set("general.architecture", value_string("gpt2")); }),
               {"architecture 'gpt2' is not supported"});
  expect_error(edit([](RawGguf& r) { r.remove("general.architecture"); }), {"no metadata key 'general.architecture'"});
  for (const char* key :
       {"llama.block_count", "llama.embedding_length", "llama.attention.head_count", "llama.feed_forward_length",
        "llama.context_length", "llama.attention.layer_norm_rms_epsilon"})
    expect_error(edit([&](RawGguf& r) { r.remove(key); }), {std::string("no metadata key '") + key + "'"});
  expect_error(edit([](RawGguf& r) { r.set("llama.block_count", value_string("2")); }),
               {"'llama.block_count' is a string, expected an integer"});
  expect_error(edit([](RawGguf& r) { r.set("llama.context_length", value_u32(0)); }),
               {"llama.context_length", "outside"});
  expect_error(edit([](RawGguf& r) { r.set("llama.block_count", value_u32(3)); }), {"needs at least 27 tensors"});
  expect_error(edit([](RawGguf& r) { r.set("llama.attention.head_count", value_u32(3)); }), {"not divisible"});
  expect_error(edit([](RawGguf& r) { r.set("llama.rope.dimension_count", value_u32(4)); }), {"rotates part"});
  expect_error(edit([](RawGguf& r) { r.set("llama.vocab_size", value_u32(271)); }), {"llama.vocab_size"});
  expect_error(edit([](RawGguf& r) { r.set("llama.rope.scaling.type", value_string("linear")); }),
               {"rope.scaling.type"});
  expect_error(edit([](RawGguf& r) { r.set("general.alignment", value_u32(33)); }), {"not a power of two"});
  expect_error(edit([](RawGguf& r) { r.set("general.alignment", value_string("32")); }),
               {"general.alignment must be a uint32"});
  // Malformed values.
  expect_error(edit([](RawGguf& r) { r.set("x.unknown_type", le<uint32_t>(13) + le<uint32_t>(0)); }),
               {"unknown value type 13"});
  expect_error(edit([](RawGguf& r) {
                 r.set("x.nested",
                       le<uint32_t>(9) + le<uint32_t>(9) + le<uint64_t>(1) + le<uint32_t>(4) + le<uint64_t>(0));
               }),
               {"array of arrays"});
  expect_error(edit([](RawGguf& r) { r.set("x.bool", le<uint32_t>(7) + le<uint8_t>(2)); }), {"not 0 or 1"});
  expect_error(edit([](RawGguf& r) {
                 r.set("x.huge_array", le<uint32_t>(9) + le<uint32_t>(8) + le<uint64_t>(uint64_t(1) << 61));
               }),
               {"x.huge_array", "claims"});
  expect_error(
      edit([](RawGguf& r) { r.set("x.huge_string", le<uint32_t>(8) + le<uint64_t>(uint64_t(1) << 40) + "abc"); }),
      {"x.huge_string"});
}

TEST_F(Gguf, BadTensorInfosAreRefusedWithTheReason) {
  ModelConfig c;
  const std::string good = good_file(&c);
  auto edit = [&](const std::function<void(RawGguf&)>& f) {
    RawGguf raw = RawGguf::from(good);
    f(raw);
    return raw.encode();
  };
  const std::string up = "blk.0.ffn_up.weight", down = "blk.1.ffn_down.weight";
  expect_error(edit([&](RawGguf& r) { r.tensor(up).offset = r.data.size(); }), {up, "outside the data section"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).offset = (r.data.size() / 32 - 1) * 32; }),
               {up, "outside the data section"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).offset = uint64_t(1) << 63; }), {up, "outside the data section"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).offset = r.tensor(down).offset; }), {"overlap", up, down});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).offset += 32; }), {"overlap", up});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).offset += 4; }), {up, "not a multiple of the alignment 32"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).name = down; }), {"duplicate tensor name '" + down + "'"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).name = ""; }), {"empty name"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).name = std::string(64, 'n'); }), {"more than the limit of 63"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).type = 99; }), {up, "ggml type 99", "cannot decode"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).type = 12; }), {up, "Q4_K", "cannot decode"});
  expect_error(edit([&](RawGguf& r) {
                 r.tensor(up).dims = {uint64_t(1) << 32, uint64_t(1) << 32, uint64_t(1) << 32};
               }),
               {up, "overflow"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).dims = {uint64_t(1) << 63, 2}; }), {up, "overflow"});
  expect_error(edit([&](RawGguf& r) {
                 r.tensor(up).dims = {1, 1, 1, 1, (uint64_t)c.hidden * c.intermediate};
               }),
               {up, "at most 4"});
  // The same bytes, other shapes.
  expect_error(edit([&](RawGguf& r) {
                 r.tensor(up).dims = {(uint64_t)c.intermediate, (uint64_t)c.hidden};
               }),
               {up, "hyperparameters imply [32, 64]"});
  expect_error(edit([&](RawGguf& r) { r.tensor(up).dims = {(uint64_t)c.hidden * c.intermediate}; }),
               {up, "hyperparameters imply"});
  expect_error(edit([&](RawGguf& r) {
                 r.tensor("token_embd.weight").dims = {(uint64_t)c.hidden / 2, (uint64_t)c.vocab * 2};
               }),
               {"token_embd.weight", "expected [32, vocab]"});
  // A tensor missing, or one too many.
  expect_error(edit([&](RawGguf& r) { std::erase_if(r.tensors, [&](const auto& t) { return t.name == down; }); }),
               {"has no tensor '" + down + "'"});
  expect_error(edit([&](RawGguf& r) {
                 GgufTensorInfo extra = r.tensor("output_norm.weight");
                 extra.name = "rope_freqs.weight";
                 extra.dims = {4};
                 extra.bytes = 16;
                 extra.offset = r.data.size();
                 r.data.append(32, '\0');
                 r.tensors.push_back(extra);
               }),
               {"unexpected tensor 'rope_freqs.weight'"});
  // Q8_0 rows must be whole blocks.
  expect_error(edit([&](RawGguf& r) {
                 GgufTensorInfo& t = r.tensor("output_norm.weight");
                 t.type = (uint32_t)GgmlType::q8_0;
                 t.dims = {16, 2};
               }),
               {"output_norm.weight", "whole number of 32-element blocks"});
}

// Cut a good file at every byte of its header (and its padding) and at a few points in the
// data: each prefix is an error, never a crash or an out-of-bounds read.
TEST_F(Gguf, TruncatedAnywhereIsAnError) {
  Transformer model = random_model(model_config_named("tiny"), 18);
  for (GgufDtype dtype : {GgufDtype::f32, GgufDtype::q8_0}) {
    SCOPED_TRACE(dtype_name(dtype));
    const fs::path path = dir_ / "whole.gguf";
    write_gguf(model, ByteTokenizer(), path.string(), dtype);
    const std::string bytes = read_bytes(path);
    const GgufFile file = parse_gguf(as_span(bytes));
    uint64_t data_end = 0;
    for (const auto& t : file.tensors) data_end = std::max(data_end, file.data_offset + t.offset + t.bytes);
    std::vector<uint64_t> cuts;
    for (uint64_t n = 0; n <= file.data_offset; ++n) cuts.push_back(n);
    for (uint64_t n : {file.data_offset + 1, (file.data_offset + data_end) / 2, data_end - 1}) cuts.push_back(n);
    int failures = 0;
    for (uint64_t n : cuts) {
      try {
        GgufReader reader(as_span(bytes, (size_t)n), "cut.gguf");
        load_gguf_model(reader);
        if (++failures <= 3) ADD_FAILURE() << "a file cut to " << n << " of " << bytes.size() << " bytes loaded";
      } catch (const Error& e) {
        const std::string what = e.what();
        if (what.find("cut.gguf") == std::string::npos && ++failures <= 3)
          ADD_FAILURE() << "cut at " << n << ": error does not name the file: " << what;
      }
    }
    // The same through the file API, at a few cuts.
    for (uint64_t n : {uint64_t(3), uint64_t(100), file.data_offset - 1, data_end - 1}) {
      write_bytes(dir_ / "cut.gguf", bytes.substr(0, (size_t)n));
      EXPECT_THROW(load_gguf_model((dir_ / "cut.gguf").string()), Error) << n;
    }
    // Every byte after the tensors' data is padding: cutting it away still loads.
    GgufReader whole(as_span(bytes, (size_t)data_end), "no-padding.gguf");
    EXPECT_NO_THROW(load_gguf_model(whole));
  }
  EXPECT_THROW(read_gguf_header((dir_ / "missing.gguf").string()), Error);
  EXPECT_THROW(read_gguf_header(dir_.string()), Error);
}

// Writes GGUF files and the greedy continuations cohort computes from them, for
// tests/model/check_gguf_llama_cpp.py to compare with llama.cpp:
//   COHORT_GGUF_CHECK_DIR=/tmp/gguf ./build/tests/test_model --gtest_filter='Gguf.ExportsForLlamaCpp*'
//   python3 tests/model/check_gguf_llama_cpp.py /tmp/gguf
// A Llama (untied, head_dim != hidden / heads, vocab padded past the tokenizer's) and a
// Qwen2 (tied, biases), each as f32, as q8_0, and as the q8_0 weights dequantized back to
// f32; the q8_0 files' continuation is cohort's from the re-imported (dequantized) model.
// Kept where COHORT_GGUF_CHECK_DIR points; otherwise written to a temporary directory,
// checked here and removed.
//
// Random weights at the 0.02 init give nearly uniform logits whose argmax ties flip between
// implementations, so the weights are scaled up (logits of std ~10) and the head rows of the
// chosen tokens are nudged (widen_greedy_margins) until every greedy choice wins by at least
// kMinMargin logits, in f32 and in the dequantized q8_0 model. How far llama.cpp's logits
// are from cohort's (measured with llama-cpp-python 0.3.36, CPU): f32 files ~0.007 (its K/V
// cache is f16), the dequantized q8_0 file the same, the q8_0 file up to ~0.6, because
// llama.cpp multiplies Q8_0 weights by activations it quantizes to Q8_0 as well. A margin of
// 2 is over 3 times the largest of these.
TEST_F(Gguf, ExportsForLlamaCppCheck) {
  const char* keep = std::getenv("COHORT_GGUF_CHECK_DIR");
  if (keep != nullptr && *keep == '\0') keep = nullptr;
  const fs::path out = keep ? fs::path(keep) : dir_;
  fs::create_directories(out);
  constexpr float kMinMargin = 2.0f, kBodyScale = 2.0f, kHeadScale = 40.0f;
  constexpr int kSteps = 24;
  // Seed 1's tied model falls into repeating one token at once; seed 2's visits six.
  constexpr uint64_t kTiedSeed = 2;

  ModelConfig llama = model_config_named("small");
  llama.name = "cohort-llama-check", llama.head_dim = 64, llama.vocab = 300, llama.rms_eps = 1e-5;
  ModelConfig qwen2 = model_config_named("small");
  qwen2.name = "cohort-qwen2-check", qwen2.qkv_bias = true, qwen2.tie_embeddings = true, qwen2.rope_theta = 1e6;
  const std::vector<int32_t> prompt = ByteTokenizer().encode("The answer is", /*add_bos=*/true);

  nlohmann::json expected = nlohmann::json::array();
  for (const ModelConfig& config : {llama, qwen2}) {
    SCOPED_TRACE(config.name);
    Transformer model(config);
    const uint64_t seed = config.tie_embeddings ? kTiedSeed : 1;
    model.init_random(seed);
    Rng rng(seed * 7919);
    for (const ParameterInfo& p : model.parameters()) {
      float* w = model.weights().data() + p.offset;
      const bool is_norm = p.name.ends_with("norm.weight"), is_bias = p.name.ends_with(".bias");
      const bool is_head = p.name == "lm_head.weight" || p.name == "model.embed_tokens.weight";
      for (int64_t i = 0; i < p.numel; ++i) {
        if (is_norm) {
          w[i] = 1.0f + 0.2f * (float)rng.normal();
          // Random signs on the final norm: with tied embeddings the current token's own
          // embedding, carried by the residual, would otherwise score itself highest
          // (e . e > 0) and the continuation would repeat one token.
          if (p.name == "model.norm.weight" && rng.uniform() < 0.5) w[i] = -w[i];
        } else if (is_bias) {
          w[i] = 0.2f * (float)rng.normal();
        } else {
          w[i] *= is_head ? kHeadScale : kBodyScale;
        }
      }
    }
    // A little more margin for the f32 model leaves room for the q8_0 rounding of the weights.
    widen_greedy_margins(model, prompt, kSteps, 1.25f * kMinMargin);
    const fs::path f32_path = out / (config.name + "-f32.gguf"), q8_path = out / (config.name + "-q8_0.gguf");
    const fs::path dequantized_path = out / (config.name + "-q8_0-dequantized-f32.gguf");
    write_gguf(model, ByteTokenizer(), f32_path.string(), GgufDtype::f32);
    write_gguf(model, ByteTokenizer(), q8_path.string(), GgufDtype::q8_0);
    auto f32_model = load_gguf_model(f32_path.string());
    auto q8_model = load_gguf_model(q8_path.string());
    write_gguf(*q8_model, ByteTokenizer(), dequantized_path.string(), GgufDtype::f32);
    const GreedyRun f32_run = greedy(*f32_model, prompt, kSteps), q8_run = greedy(*q8_model, prompt, kSteps);
    // llama.cpp's f32 result is compared with the model as trained, not as re-imported, so a
    // mistake the reader undoes (a wrong permutation in both directions) still shows.
    const GreedyRun original = greedy(model, prompt, kSteps);
    EXPECT_EQ(f32_run.tokens, original.tokens);
    std::set<int32_t> distinct(f32_run.tokens.begin(), f32_run.tokens.end());
    EXPECT_GE(distinct.size(), 4u) << "a continuation that repeats a token or two tests little";
    for (const auto& [path, run, dtype] : {std::tuple{f32_path, original, "f32"}, std::tuple{q8_path, q8_run, "q8_0"},
                                           std::tuple{dequantized_path, q8_run, "q8_0 dequantized to f32"}}) {
      const float margin = *std::min_element(run.margins.begin(), run.margins.end());
      EXPECT_GE(margin, kMinMargin) << dtype;
      expected.push_back({{"file", path.filename().string()},
                          {"architecture", config.qkv_bias ? "qwen2" : "llama"},
                          {"dtype", dtype},
                          {"n_ctx", config.max_seq_len},
                          {"prompt", prompt},
                          {"expected", run.tokens},
                          {"min_margin", margin},
                          {"logits", run.logits}});
    }
  }
  std::ofstream(out / "expected.json") << expected.dump();
}
