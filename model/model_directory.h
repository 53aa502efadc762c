// A Hugging Face model directory, as cohort writes it (a run's model/, `cohort export --format hf`) and
// reads it (model.init, --checkpoint): config.json, the weights (model.safetensors, or past the shard
// limit Hugging Face's shards model-0000i-of-0000N.safetensors with model.safetensors.index.json),
// generation_config.json, tokenizer.json and tokenizer_config.json, so that transformers, vLLM and TRL
// load it as it is and find the special tokens' roles.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

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

// config.json through read_hf_config, then the weights: model.safetensors.index.json and its shards
// when the index exists (load_safetensors_sharded), otherwise model.safetensors; errors name the file.
std::unique_ptr<Transformer> load_model_directory(const std::filesystem::path& dir);

}  // namespace cohort
