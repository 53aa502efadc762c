// Writing and reading a Hugging Face model directory.
#include "model/model_directory.h"

#include <fstream>
#include <regex>
#include <set>

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

void save_model_directory(const Transformer& model, const ByteTokenizer& tok, const fs::path& dir,
                          SafetensorsDtype dtype, int64_t max_shard_bytes) {
  const std::vector<SafetensorsShard> shards = plan_safetensors_shards(model, dtype, max_shard_bytes);
  std::error_code ec;
  fs::create_directories(dir, ec);
  COHORT_REQUIRE(!ec, "cannot create " << dir.string() << ": " << ec.message());
  write_hf_config(model.config(), dir.string(), tok.bos_id(), tok.eos_id(),
                  dtype == SafetensorsDtype::bf16 ? "bfloat16" : "float32");
  std::set<std::string> written;
  if (shards.size() == 1) {
    save_safetensors(model, (dir / "model.safetensors").string(), dtype);
  } else {
    save_safetensors_shards(model, shards, dir.string(), dtype);
    for (const SafetensorsShard& shard : shards) written.insert(shard.file);
  }
  remove_stale_weights(dir, shards.size() > 1, written);
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

}  // namespace cohort
