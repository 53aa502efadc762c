// Writing and reading a Hugging Face model directory.
#include "model/model_directory.h"

#include <fstream>

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
}  // namespace

void save_model_directory(const Transformer& model, const ByteTokenizer& tok, const fs::path& dir,
                          SafetensorsDtype dtype) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  COHORT_REQUIRE(!ec, "cannot create " << dir.string() << ": " << ec.message());
  write_hf_config(model.config(), dir.string(), tok.bos_id(), tok.eos_id(),
                  dtype == SafetensorsDtype::bf16 ? "bfloat16" : "float32");
  save_safetensors(model, (dir / "model.safetensors").string(), dtype);
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
  load_safetensors(*model, (dir / "model.safetensors").string());
  return model;
}

}  // namespace cohort
