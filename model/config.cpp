// Named model sizes and config validation.
#include "model/config.h"

#include <cmath>

#include "kernels/cpu/rope.h"
#include "kernels/error.h"
#include "model/byte_tokenizer.h"

namespace cohort {

const char* rope_scaling_name(RopeScaling::Type type) {
  switch (type) {
    case RopeScaling::Type::none:
      return "default";
    case RopeScaling::Type::linear:
      return "linear";
    case RopeScaling::Type::llama3:
      return "llama3";
  }
  return "unknown";
}

std::vector<std::string> model_size_names() {
  return {"tiny", "small", "bench-124m"};
}

ModelConfig model_config_named(std::string_view name) {
  ModelConfig c;
  c.name = std::string(name);
  const int64_t byte_vocab = ByteTokenizer().vocab_size();
  if (name == "tiny") {
    // Exercises both Qwen2 options (q/k/v bias, tied head) in the gradient tests.
    c.hidden = 32, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.intermediate = 64;
    c.vocab = byte_vocab, c.max_seq_len = 64, c.qkv_bias = true, c.tie_embeddings = true;
  } else if (name == "small") {
    c.hidden = 256, c.layers = 4, c.heads = 8, c.kv_heads = 4, c.intermediate = 768;
    c.vocab = byte_vocab, c.max_seq_len = 512;
  } else if (name == "bench-124m") {
    c.hidden = 768, c.layers = 12, c.heads = 12, c.kv_heads = 4, c.intermediate = 2048;
    c.vocab = 32000, c.max_seq_len = 1024;
  } else {
    std::string known;
    for (const auto& n : model_size_names()) known += (known.empty() ? "" : ", ") + n;
    COHORT_REQUIRE(false, "unknown model size '" << name << "' (known sizes: " << known << ")");
  }
  return c;
}

void validate(const ModelConfig& c) {
  auto positive = [&](const char* field, int64_t v) {
    COHORT_REQUIRE(v > 0, "model config '" << c.name << "': " << field << " must be positive, got " << v);
  };
  positive("hidden", c.hidden);
  positive("layers", c.layers);
  positive("heads", c.heads);
  positive("kv_heads", c.kv_heads);
  positive("intermediate", c.intermediate);
  positive("vocab", c.vocab);
  positive("max_seq_len", c.max_seq_len);
  COHORT_REQUIRE(c.heads % c.kv_heads == 0, "model config '" << c.name << "': heads (" << c.heads
                                                             << ") must be divisible by kv_heads (" << c.kv_heads
                                                             << ")");
  COHORT_REQUIRE(c.head_dim > 0 || c.hidden % c.heads == 0,
                 "model config '" << c.name << "': hidden (" << c.hidden << ") must be divisible by heads (" << c.heads
                                  << ") when head_dim is not given");
  int64_t hd = c.resolved_head_dim();
  COHORT_REQUIRE(hd % 2 == 0,
                 "model config '" << c.name << "': head_dim (" << hd << ") must be even for rotary embeddings");
  COHORT_REQUIRE(c.rope_theta > 0, "model config '" << c.name << "': rope_theta must be positive");
  COHORT_REQUIRE(c.rms_eps > 0, "model config '" << c.name << "': rms_eps must be positive");
  COHORT_REQUIRE(c.vocab < (int64_t(1) << 31), "model config '" << c.name << "': vocab too large");
  const RopeScaling& s = c.rope_scaling;
  if (s.type != RopeScaling::Type::none) {
    const char* type = rope_scaling_name(s.type);
    COHORT_REQUIRE(std::isfinite(s.factor) && s.factor > 0, "model config '" << c.name << "': rope scaling " << type
                                                                             << " needs a positive factor, got "
                                                                             << s.factor);
  }
  if (s.type == RopeScaling::Type::llama3) {
    COHORT_REQUIRE(std::isfinite(s.low_freq_factor) && std::isfinite(s.high_freq_factor) && s.low_freq_factor > 0 &&
                       s.high_freq_factor > s.low_freq_factor,
                   "model config '" << c.name
                                    << "': rope scaling llama3 needs 0 < low_freq_factor < high_freq_factor, got "
                                    << s.low_freq_factor << " and " << s.high_freq_factor);
    COHORT_REQUIRE(s.original_max_position_embeddings > 0,
                   "model config '" << c.name
                                    << "': rope scaling llama3 needs a positive original_max_position_embeddings, got "
                                    << s.original_max_position_embeddings);
  }
}

int64_t parameter_count(const ModelConfig& c) {
  int64_t C = c.hidden, hd = c.resolved_head_dim(), q = c.heads * hd, kv = c.kv_heads * hd;
  int64_t per_layer = 2 * C + q * C + 2 * kv * C + C * q + 3 * C * c.intermediate;
  if (c.qkv_bias) per_layer += q + 2 * kv;
  if (c.qk_norm) per_layer += 2 * hd;
  int64_t total = c.vocab * C + c.layers * per_layer + C;
  if (!c.tie_embeddings) total += c.vocab * C;
  return total;
}

std::vector<double> rope_inverse_frequencies(const ModelConfig& c) {
  const int64_t hd = c.resolved_head_dim();
  std::vector<double> inv_freq((size_t)(hd / 2));
  cpu::rope_frequencies(inv_freq.data(), hd, c.rope_theta);
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::linear) {
    for (double& f : inv_freq) f /= s.factor;  // angle = (pos / factor) * f
  } else if (s.type == RopeScaling::Type::llama3) {
    cpu::rope_scale_llama3(inv_freq.data(), (int64_t)inv_freq.size(), s.factor, s.low_freq_factor, s.high_freq_factor,
                           (double)s.original_max_position_embeddings);
  }
  return inv_freq;
}

}  // namespace cohort
