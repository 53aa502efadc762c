// Hugging Face config.json for the Llama/Qwen2/Qwen3 family, both ways: what an export writes
// so transformers, vLLM and SGLang build the same decoder cohort trained, and the reading of
// such a file for `model.init` from a HF directory, refusing anything cohort cannot run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace cohort {

// config.json of LlamaForCausalLM, Qwen2ForCausalLM when config.qkv_bias (Qwen2 is the family
// member with q/k/v biases and none on o_proj) or Qwen3ForCausalLM when config.qk_norm (no
// biases, an RMSNorm over each head of q and k); rope_scaling is null, or the linear or llama3
// object transformers reads. torch_dtype is "float32", "bfloat16" or "float16": the dtype of
// the weights beside it. head_dim is always written; a head_dim other than hidden / heads loads
// in transformers 4.48 (checked for Llama and Qwen2 with tests/model/check_hf_load.py) but not
// in 4.40, which ignores the field. Throws cohort::Error for an invalid config, dtype or token
// id, and for a config with both qkv_bias and qk_norm (no Hugging Face family has both).
nlohmann::json to_hf_config(const ModelConfig& config, int32_t bos_token_id, int32_t eos_token_id,
                            const std::string& torch_dtype = "float32");

// The ModelConfig of a Llama, Qwen2 or Qwen3 config.json (Qwen2 gives qkv_bias, Qwen3 qk_norm;
// head_dim may differ from hidden / heads), with rope_theta and rope_scaling of rope_type
// default, linear or llama3, or transformers 5's rope_parameters holding both. Throws
// cohort::Error naming the field for a missing or mistyped one, and naming the key and its value
// for what cohort does not implement: other model types or architectures, other rope types or
// rope options, partial rotary, use_mrope, sliding windows (use_sliding_window, layer_types
// other than full_attention), Llama's attention/MLP biases, Qwen3's attention_bias, quantized
// weights (quantization_config), activations other than silu.
ModelConfig from_hf_config(const nlohmann::json& hf_config);

// Writes dir/config.json (to_hf_config, indented), creating dir if needed; atomic like
// every other file cohort writes (tmp, fsync, rename).
void write_hf_config(const ModelConfig& config, const std::string& dir, int32_t bos_token_id, int32_t eos_token_id,
                     const std::string& torch_dtype);

// Reads and parses dir/config.json (or a path to the file itself) with from_hf_config;
// errors name the file.
ModelConfig read_hf_config(const std::string& path);

}  // namespace cohort
