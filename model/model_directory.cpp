// Writing and reading a Hugging Face model directory.
#include "model/model_directory.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "kernels/error.h"
#include "model/atomic_file.h"
#include "model/hf_config.h"

namespace cohort {

namespace fs = std::filesystem;

namespace {
void write_json(const fs::path& path, const nlohmann::json& j) {
  AtomicOutputFile out(path.string());
  out.write(j.dump(2) + "\n");
  out.commit();
}

std::string name_of(const ByteTokenizer& tok, int32_t id) {
  return std::string(ByteTokenizer::kSpecialNames[(size_t)(id - ByteTokenizer::kNumByteTokens)]);
}

void remove_file(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  COHORT_REQUIRE(!ec, "cannot remove " << path.string() << " (left from an earlier save): " << ec.message());
}

// After the weights are written in one form, removes the other form's files of an earlier save: the
// index first, so that a reader never follows it to shards that are going away. Shards are recognised
// by Hugging Face's naming; `keep` are the ones just written.
void remove_stale_weights(const fs::path& dir, bool sharded, const std::set<std::string>& keep) {
  if (sharded) {
    remove_file(dir / "model.safetensors");
  } else {
    remove_file(dir / kSafetensorsIndexFile);
  }
  static const std::regex shard_name(R"(model-[0-9]{5,}-of-[0-9]{5,}\.safetensors)");
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (std::regex_match(name, shard_name) && !keep.count(name)) stale.push_back(it->path());
  }
  COHORT_REQUIRE(!ec, "cannot list " << dir.string() << ": " << ec.message());
  for (const fs::path& path : stale) remove_file(path);
}
}  // namespace

namespace {
// The weights of `model` in dir, one file or shards, removing the other form.
void save_weights(const Transformer& model, const fs::path& dir, SafetensorsDtype dtype, int64_t max_shard_bytes) {
  const std::vector<SafetensorsShard> shards = plan_safetensors_shards(model, dtype, max_shard_bytes);
  std::set<std::string> written;
  if (shards.size() == 1) {
    save_safetensors(model, (dir / "model.safetensors").string(), dtype);
  } else {
    save_safetensors_shards(model, shards, dir.string(), dtype);
    for (const SafetensorsShard& shard : shards) written.insert(shard.file);
  }
  remove_stale_weights(dir, shards.size() > 1, written);
}

void make_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  COHORT_REQUIRE(!ec, "cannot create " << dir.string() << ": " << ec.message());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  COHORT_REQUIRE(in, "cannot read " << path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

void save_model_directory(const Transformer& model, const ByteTokenizer& tok, const fs::path& dir,
                          SafetensorsDtype dtype, int64_t max_shard_bytes) {
  plan_safetensors_shards(model, dtype, max_shard_bytes);  // a bad limit fails before anything is written
  make_directory(dir);
  write_hf_config(model.config(), dir.string(), tok.bos_id(), tok.eos_id(),
                  dtype == SafetensorsDtype::bf16 ? "bfloat16" : "float32");
  save_weights(model, dir, dtype, max_shard_bytes);
  write_json(dir / "tokenizer.json", tok.to_hf_tokenizer_json());
  // transformers reads the special tokens' roles from here; without it bos/eos/pad come back as None.
  write_json(dir / "tokenizer_config.json", {{"tokenizer_class", "PreTrainedTokenizerFast"},
                                             {"bos_token", name_of(tok, tok.bos_id())},
                                             {"eos_token", name_of(tok, tok.eos_id())},
                                             {"pad_token", name_of(tok, tok.pad_id())},
                                             {"model_max_length", model.config().max_seq_len},
                                             {"clean_up_tokenization_spaces", false}});
  write_json(dir / "generation_config.json", {{"bos_token_id", tok.bos_id()},
                                              {"eos_token_id", tok.eos_id()},
                                              {"pad_token_id", tok.pad_id()},
                                              {"max_length", model.config().max_seq_len}});
}

void save_model_directory_with_tokenizer_of(const Transformer& model, const fs::path& tokenizer_dir,
                                            const fs::path& dir, SafetensorsDtype dtype, int64_t max_shard_bytes) {
  plan_safetensors_shards(model, dtype, max_shard_bytes);
  COHORT_REQUIRE(fs::is_regular_file(tokenizer_dir / "tokenizer.json"),
                 tokenizer_dir.string() << " has no tokenizer.json to save beside the model");
  // Read every source file first: dir may be tokenizer_dir itself.
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                           "generation_config.json"})
    if (fs::is_regular_file(tokenizer_dir / name)) files.emplace_back(name, read_file(tokenizer_dir / name));
  nlohmann::json source_config = nlohmann::json::object();
  if (fs::is_regular_file(tokenizer_dir / "config.json")) {
    source_config = nlohmann::json::parse(read_file(tokenizer_dir / "config.json"), nullptr, false);
    COHORT_REQUIRE(source_config.is_object(), (tokenizer_dir / "config.json").string() << " is not a JSON object");
  }
  make_directory(dir);
  nlohmann::json config = to_hf_config(model.config(), 0, 0, dtype == SafetensorsDtype::bf16 ? "bfloat16" : "float32");
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"}) {
    config.erase(key);
    if (source_config.contains(key)) config[key] = source_config[key];
  }
  write_json(dir / "config.json", config);
  save_weights(model, dir, dtype, max_shard_bytes);
  for (const auto& [name, text] : files) {
    AtomicOutputFile out((dir / name).string());
    out.write(text);
    out.commit();
  }
}

std::unique_ptr<Transformer> load_model_directory(const fs::path& dir) {
  COHORT_REQUIRE(fs::is_regular_file(dir / "config.json"), dir.string()
                                                               << " is not a model directory: it has no config.json");
  auto model = std::make_unique<Transformer>(read_hf_config((dir / "config.json").string()));
  if (fs::exists(dir / kSafetensorsIndexFile)) {
    load_safetensors_sharded(*model, (dir / kSafetensorsIndexFile).string());
  } else {
    load_safetensors(*model, (dir / "model.safetensors").string());
  }
  return model;
}

namespace {
nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  COHORT_REQUIRE(in, "cannot open " << path.string() << ": " << std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number too large
    COHORT_REQUIRE(false, path.string() << " is not valid JSON (" << e.what() << ")");
  }
  return {};
}

// An id field: absent or null gives nothing; otherwise a non-negative integer below `vocab` (when
// vocab > 0), or with allow_list a list of them.
std::vector<int32_t> token_ids(const nlohmann::json& j, const fs::path& file, const char* key, int64_t vocab,
                               bool allow_list) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  std::vector<const nlohmann::json*> values;
  if (allow_list && it->is_array()) {
    for (const auto& v : *it) values.push_back(&v);
  } else {
    values.push_back(&*it);
  }
  std::vector<int32_t> ids;
  for (const nlohmann::json* v : values) {
    COHORT_REQUIRE(v->is_number_integer() && v->get<int64_t>() >= 0 && v->get<int64_t>() <= INT32_MAX,
                   file.string() << ": '" << key << "' must be a non-negative token id"
                                 << (allow_list ? " or a list of them" : "") << ", got " << it->dump());
    COHORT_REQUIRE(vocab <= 0 || v->get<int64_t>() < vocab, file.string() << ": '" << key << "' " << it->dump()
                                                                          << " names an id at or past the "
                                                                             "vocabulary size "
                                                                          << vocab << " of config.json");
    ids.push_back((int32_t)v->get<int64_t>());
  }
  return ids;
}
}  // namespace

GenerationConfig read_generation_config(const fs::path& dir) {
  const fs::path generation = dir / "generation_config.json", config = dir / "config.json";
  int64_t vocab = 0;
  nlohmann::json model_config;
  if (fs::exists(config)) {
    model_config = read_json_file(config);
    auto v = model_config.find("vocab_size");
    if (model_config.is_object() && v != model_config.end() && v->is_number_integer()) vocab = v->get<int64_t>();
  }
  GenerationConfig g;
  nlohmann::json j;
  if (fs::exists(generation)) {
    j = read_json_file(generation), g.source = generation;
  } else if (fs::exists(config)) {
    j = model_config, g.source = config;
  } else {
    return g;
  }
  COHORT_REQUIRE(j.is_object(), g.source.string() << " must hold a JSON object, got " << j.type_name());
  g.eos_token_ids = token_ids(j, g.source, "eos_token_id", vocab, true);
  for (auto [key, out] : {std::pair{"bos_token_id", &g.bos_token_id}, std::pair{"pad_token_id", &g.pad_token_id}}) {
    const std::vector<int32_t> ids = token_ids(j, g.source, key, vocab, false);
    if (!ids.empty()) *out = ids[0];
  }
  return g;
}

}  // namespace cohort
