// The decoder configuration of the Llama/Qwen2/Qwen3 family, its named sizes, and the
// checks that turn a bad config into a clear error before any memory is touched.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cohort {

// How RoPE's frequencies are rescaled for a context longer than the one trained on (Hugging
// Face's rope_scaling). Every RoPE path (training, prefill, decode) reads the same tables.
struct RopeScaling {
  enum class Type { none, linear, llama3 };
  Type type = Type::none;
  double factor = 1.0;  // linear: positions divided by factor; llama3: how far long wavelengths stretch
  // llama3 only (Llama 3.1 and 3.2): wavelengths below original / high_freq_factor keep their
  // frequency, those above original / low_freq_factor are divided by factor, those between are
  // interpolated (kernels/cpu/rope.h); original = original_max_position_embeddings.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;

  bool operator==(const RopeScaling&) const = default;
};

// "default" (none), "linear" or "llama3": the rope_type Hugging Face gives each.
const char* rope_scaling_name(RopeScaling::Type type);

struct ModelConfig {
  std::string name = "custom";
  int64_t hidden = 0;  // C
  int64_t layers = 0;
  int64_t heads = 0;         // H query heads
  int64_t kv_heads = 0;      // KVH key/value heads; heads % kv_heads == 0
  int64_t head_dim = 0;      // 0 means hidden / heads
  int64_t intermediate = 0;  // MLP width
  int64_t vocab = 0;
  int64_t max_seq_len = 0;
  double rope_theta = 10000.0;
  double rms_eps = 1e-6;
  bool tie_embeddings = false;  // lm_head shares model.embed_tokens.weight
  bool qkv_bias = false;        // Qwen2 puts biases on q/k/v projections
  bool qk_norm = false;         // Qwen3: RMSNorm over each head of q and k (weights of size head_dim)
                                // after the projections, before RoPE
  RopeScaling rope_scaling;

  int64_t resolved_head_dim() const { return head_dim > 0 ? head_dim : (heads > 0 ? hidden / heads : 0); }
};

// "tiny" (tests), "small" (the quickstart, a few million parameters), "bench-124m".
// Throws cohort::Error listing the known names for anything else.
ModelConfig model_config_named(std::string_view name);
std::vector<std::string> model_size_names();

// Throws cohort::Error naming the field and the rule it breaks.
void validate(const ModelConfig& config);

// Parameter count (untied lm_head counted once).
int64_t parameter_count(const ModelConfig& config);

// RoPE's inverse frequencies (head_dim / 2) for rope_theta and rope_scaling, in double: what
// the rotary tables are built from.
std::vector<double> rope_inverse_frequencies(const ModelConfig& config);

}  // namespace cohort
