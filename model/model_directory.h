// A Hugging Face model directory, as cohort writes it (a run's model/, `cohort export --format hf`) and
// reads it (model.init, --checkpoint): config.json, model.safetensors, generation_config.json,
// tokenizer.json and tokenizer_config.json, so that transformers, vLLM and TRL load it as it is and find
// the special tokens' roles.
#pragma once

#include <filesystem>
#include <memory>

#include "model/byte_tokenizer.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace cohort {

// Writes every file of the directory (creating it); each file is written atomically.
void save_model_directory(const Transformer& model, const ByteTokenizer& tokenizer, const std::filesystem::path& dir,
                          SafetensorsDtype dtype = SafetensorsDtype::f32);

// config.json through read_hf_config, then model.safetensors; errors name the file.
std::unique_ptr<Transformer> load_model_directory(const std::filesystem::path& dir);

}  // namespace cohort
