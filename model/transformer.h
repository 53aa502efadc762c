// The Llama/Qwen2/Qwen3-family decoder: parameters in one flat buffer under their Hugging
// Face names, a training forward/backward over a right-padded batch that returns
// per-token logprobs, and KV-cache decoding whose logits equal the full forward's.
// Templated on the scalar so the gradient checks can run the same code in double.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/thread_governor.h"
#include "model/config.h"

namespace cohort {

// How the block linears multiply (embedding, head, norms and attention stay fp32);
// bf16 and fp8 are emulated on the CPU (rounded or quantized inputs, fp32 GEMM).
enum class Compute { fp32, bf16, fp8 };

struct ParameterInfo {
  std::string name;            // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  std::vector<int64_t> shape;  // row-major, as in the HF checkpoint
  int64_t offset = 0;          // into weights() / grads(), in elements
  int64_t numel = 0;
};

// The parameters a model of this config has: names, shapes and offsets into the flat buffer, in order,
// without allocating the model (checkpoint readers need the layout before the weights).
std::vector<ParameterInfo> parameter_layout(const ModelConfig& config);

template <typename T>
class KVCacheT {
 public:
  KVCacheT() = default;
  KVCacheT(const ModelConfig& config, int64_t slots, int64_t max_tokens);
  int64_t slots() const { return slots_; }
  int64_t max_tokens() const { return max_tokens_; }
  // (slots, max_tokens, kv_heads * head_dim) for one layer.
  T* keys(int64_t layer) { return k_.data() + layer * layer_stride_; }
  T* values(int64_t layer) { return v_.data() + layer * layer_stride_; }

 private:
  int64_t slots_ = 0, max_tokens_ = 0, layer_stride_ = 0;
  std::vector<T> k_, v_;
};

template <typename T>
class TransformerT {
 public:
  explicit TransformerT(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const std::vector<ParameterInfo>& parameters() const { return params_; }
  const ParameterInfo& parameter(const std::string& name) const;  // throws if unknown
  std::vector<T>& weights() { return weights_; }
  // The gradient buffer, as long as weights(). It is allocated (zeroed) on first use, by grads(),
  // zero_grad() or backward(), so a model that only decodes or is exported never holds it: loading
  // a model costs one fp32 copy of the weights, not two.
  std::vector<T>& grads();
  const std::vector<T>& weights() const { return weights_; }
  int64_t num_parameters() const { return (int64_t)weights_.size(); }

  // Normal(0, 0.02) for matrices and embeddings, 1 for norm weights, 0 for biases.
  void init_random(uint64_t seed);
  void zero_grad();
  void set_compute(Compute c);
  Compute compute() const { return compute_; }
  // The training forward's logprobs become log softmax(logits / t), matching a rollout
  // that sampled at temperature t (decode() always returns raw logits).
  void set_logit_temperature(double t);
  double logit_temperature() const { return logit_temperature_; }

  // Training forward. tokens (B, T) right-padded, lengths (B) in [1, T]; targets (B, T):
  // logprob[b, t] = log p(targets[b, t] | tokens[b, 0..t]) for t < lengths[b] and
  // targets[b, t] >= 0, else 0 (and no gradient). Writes logprob and entropy (B, T).
  void forward(const int32_t* tokens, const int32_t* lengths, const int32_t* targets, int64_t B, int64_t Tlen,
               T* logprob, T* entropy);
  // Backward of the last forward from dlogprob (B, T) and optional dentropy (B, T);
  // accumulates (+=) into grads().
  void backward(const T* dlogprob, const T* dentropy);
  // Full logits (B, T, V) at every valid position of the last forward (tests, eval).
  void last_forward_logits(T* logits) const;

  // Incremental decoding. tokens (B, Tn): n_new[b] new tokens of row b at positions
  // start[b] .. start[b]+n_new[b]-1 of cache slot slot[b]; their keys and values are
  // written to the cache. Writes logits (B, V) of each row's last new token. Prefill
  // is a call with the whole prompt; a decode step is a call with Tn = 1.
  void decode(KVCacheT<T>& cache, const int32_t* tokens, const int32_t* slot, const int32_t* start,
              const int32_t* n_new, int64_t B, int64_t Tn, T* logits);

 private:
  // q_norm, k_norm (and the biases) are null where the config has none.
  struct Layer {
    const T *attn_norm, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *q_norm, *k_norm, *mlp_norm, *w_gate, *w_up, *w_down;
  };
  struct LayerGrad {
    T *attn_norm, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *q_norm, *k_norm, *mlp_norm, *w_gate, *w_up, *w_down;
  };
  // q and k are what attention reads (normed where qk_norm, then rotated); q_raw and k_raw, the
  // projections before the q/k norm, and its rstd_q, rstd_k are kept only where qk_norm.
  struct LayerActs {
    std::vector<T> input, ln1, rstd1, q_raw, k_raw, rstd_q, rstd_k, q, k, v, att, lse, mid, ln2, rstd2, gate, up, act;
  };

  ModelConfig config_;
  int64_t head_dim_ = 0;
  Compute compute_ = Compute::fp32;
  double logit_temperature_ = 1.0;
  std::vector<ParameterInfo> params_;
  std::unordered_map<std::string, size_t> param_index_;
  std::vector<T> weights_, grads_;
  std::vector<T> rope_cos_, rope_sin_;
  int64_t embed_offset_ = 0, final_norm_offset_ = 0, head_offset_ = 0;
  std::vector<int64_t> layer_offsets_;  // offset of each layer's first parameter

  // Saved by forward for backward.
  int64_t B_ = 0, T_ = 0;
  std::vector<int32_t> tokens_, lengths_, targets_, positions_;
  std::vector<LayerActs> acts_;
  std::vector<T> final_in_, lnf_, rstdf_, lse_out_, entropy_;
  bool have_forward_ = false;
  // How many threads each kind of call runs on, chosen by timing (kernels/thread_governor.h).
  ThreadGovernor forward_governor_, backward_governor_, prefill_governor_, decode_governor_;
  // Backward scratch, kept between steps: re-allocating ~100 MB a step costs more in
  // page faults than the elementwise ops it feeds.
  std::vector<T> dlnf_, dx_, dact_, dgate_, dup_, dln_, datt_, dq_, dk_, dv_, dq_raw_, dk_raw_;

  Layer layer(int64_t l) const;
  LayerGrad layer_grad(int64_t l);
  const T* head_weight() const { return weights_.data() + head_offset_; }
  void linear(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t in, int64_t out) const;
  void linear_back(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t in, int64_t out) const;
  void check_tokens(const int32_t* tokens, const int32_t* valid_counts, int64_t B, int64_t Tlen,
                    const char* what) const;
};

using Transformer = TransformerT<float>;
using KVCache = KVCacheT<float>;

}  // namespace cohort
