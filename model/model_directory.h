// A Hugging Face model directory, as cohort writes it (a run's model/, `cohort export --format hf`) and
// reads it (model.init, --checkpoint): config.json, the weights (model.safetensors, or past the shard
// limit Hugging Face's shards model-0000i-of-0000N.safetensors with model.safetensors.index.json),
// generation_config.json, tokenizer.json and tokenizer_config.json, so that transformers, vLLM and TRL
// load it as it is and find the special tokens' roles.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "model/byte_tokenizer.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace cohort {

// Writes every file of the directory (creating it); each file is written atomically. Weights whose
// tensor data is at most max_shard_bytes (transformers' save_pretrained default, "5GB") go into one
// model.safetensors; larger ones into shards of at most that much (plan_safetensors_shards) and the
// index, written last. The form not written is removed afterwards (model.safetensors, or the index and
// every model-*-of-*.safetensors that is not a new shard), so the directory never holds both.
void save_model_directory(const Transformer& model, const ByteTokenizer& tokenizer, const std::filesystem::path& dir,
                          SafetensorsDtype dtype = SafetensorsDtype::f32, int64_t max_shard_bytes = 5'000'000'000);

// The same for a model whose tokenizer came from a Hugging Face directory (model.init): the weights and
// config.json as above, with bos/eos ids and every tokenizer file (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, chat_template.jinja, generation_config.json) taken from tokenizer_dir as they are,
// so that the directory serves with the tokenizer and chat template it was trained with.
void save_model_directory_with_tokenizer_of(const Transformer& model, const std::filesystem::path& tokenizer_dir,
                                            const std::filesystem::path& dir,
                                            SafetensorsDtype dtype = SafetensorsDtype::f32,
                                            int64_t max_shard_bytes = 5'000'000'000);

// config.json through read_hf_config, then the weights: model.safetensors.index.json and its shards
// when the index exists (load_safetensors_sharded), otherwise model.safetensors; errors name the file.
// F32, BF16 and F16 tensors are converted one by one, in bounded chunks, into the model's fp32
// weights, so the peak memory is one fp32 copy of the weights (the model allocates no gradients
// until it trains; bench/bench_model_load.cpp measures it).
std::unique_ptr<Transformer> load_model_directory(const std::filesystem::path& dir);

// The special token ids of a model directory, as transformers' GenerationConfig reads them: from
// generation_config.json, or where that file is absent from config.json. eos_token_id may be one id
// or a list (Llama 3 and Qwen2.5 stop on any of several); generation should stop on any of them.
struct GenerationConfig {
  std::vector<int32_t> eos_token_ids;  // empty when neither file names one
  std::optional<int32_t> bos_token_id, pad_token_id;
  std::filesystem::path source;  // the file the ids came from; empty when neither exists
};

// Throws cohort::Error naming the file and the key for invalid JSON, or an id that is not a
// non-negative integer (or list of them), or one at or past config.json's vocab_size.
GenerationConfig read_generation_config(const std::filesystem::path& dir);

}  // namespace cohort
