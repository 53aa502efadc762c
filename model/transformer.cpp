// The decoder's forward, backward and KV-cache decoding, composed from kernels/cpu ops.
// Layer l computes, with x its input (N, C):
//   h = x + o_proj(attention(rope(qn(q_proj(n1))), rope(kn(k_proj(n1))), v_proj(n1))), n1 = rmsnorm(x)
//   y = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),                              n2 = rmsnorm(h)
// and the head gives logprobs of rmsnorm(y_last) through lm_head (or the tied embedding).
// qn and kn are Qwen3's q/k norm (qk_norm): an RMSNorm over each head's head_dim channels, with
// one weight (head_dim) shared by all heads, i.e. cpu::rmsnorm over rows of (N * heads, head_dim);
// without qk_norm they are the identity. rope reads tables built once from rope_theta and
// rope_scaling (model/config.h), the same tables in training, prefill and decode.
#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/bf16_linear.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/fp8_linear.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/logprob.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/error.h"
#include "kernels/random.h"

namespace cohort {

using namespace cohort::cpu;

namespace {
// Runs the scope under a ThreadGovernor: its thread count from construction, timed to destruction.
class GovernedCall {
 public:
  GovernedCall(ThreadGovernor& governor, double units) : governor_(governor), units_(units) { governor_.begin(); }
  ~GovernedCall() { governor_.end(units_); }
  GovernedCall(const GovernedCall&) = delete;
  GovernedCall& operator=(const GovernedCall&) = delete;

 private:
  ThreadGovernor& governor_;
  double units_;
};
}  // namespace

template <typename T>
KVCacheT<T>::KVCacheT(const ModelConfig& c, int64_t slots, int64_t max_tokens)
    : slots_(slots), max_tokens_(max_tokens) {
  COHORT_REQUIRE(slots > 0 && max_tokens > 0,
                 "KV cache needs positive slots and length, got " << slots << " x " << max_tokens);
  COHORT_REQUIRE(max_tokens <= c.max_seq_len,
                 "KV cache length " << max_tokens << " exceeds the model's max_seq_len " << c.max_seq_len);
  layer_stride_ = slots * max_tokens * c.kv_heads * c.resolved_head_dim();
  k_.assign((size_t)(layer_stride_ * c.layers), T(0));
  v_.assign((size_t)(layer_stride_ * c.layers), T(0));
}

std::vector<ParameterInfo> parameter_layout(const ModelConfig& config) {
  validate(config);
  const int64_t C = config.hidden, I = config.intermediate, V = config.vocab, hd = config.resolved_head_dim();
  const int64_t q_dim = config.heads * hd, kv_dim = config.kv_heads * hd;
  std::vector<ParameterInfo> out;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    ParameterInfo p;
    p.name = std::move(name);
    p.numel = 1;
    for (int64_t d : shape) p.numel *= d;
    p.shape = std::move(shape);
    p.offset = out.empty() ? 0 : out.back().offset + out.back().numel;
    out.push_back(std::move(p));
  };
  add("model.embed_tokens.weight", {V, C});
  for (int64_t l = 0; l < config.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C});  // a layer's first parameter (layer_offsets_)
    add(p + "self_attn.q_proj.weight", {q_dim, C});
    if (config.qkv_bias) add(p + "self_attn.q_proj.bias", {q_dim});
    add(p + "self_attn.k_proj.weight", {kv_dim, C});
    if (config.qkv_bias) add(p + "self_attn.k_proj.bias", {kv_dim});
    add(p + "self_attn.v_proj.weight", {kv_dim, C});
    if (config.qkv_bias) add(p + "self_attn.v_proj.bias", {kv_dim});
    add(p + "self_attn.o_proj.weight", {C, q_dim});
    if (config.qk_norm) add(p + "self_attn.q_norm.weight", {hd});
    if (config.qk_norm) add(p + "self_attn.k_norm.weight", {hd});
    add(p + "post_attention_layernorm.weight", {C});
    add(p + "mlp.gate_proj.weight", {I, C});
    add(p + "mlp.up_proj.weight", {I, C});
    add(p + "mlp.down_proj.weight", {C, I});
  }
  add("model.norm.weight", {C});
  if (!config.tie_embeddings) add("lm_head.weight", {V, C});  // tied: the head reads the embedding
  return out;
}

template <typename T>
TransformerT<T>::TransformerT(const ModelConfig& config) : config_(config) {
  params_ = parameter_layout(config_);
  head_dim_ = config_.resolved_head_dim();
  for (size_t i = 0; i < params_.size(); ++i) param_index_[params_[i].name] = i;
  auto offset_of = [&](const std::string& name) { return params_[param_index_.at(name)].offset; };
  embed_offset_ = offset_of("model.embed_tokens.weight");
  for (int64_t l = 0; l < config_.layers; ++l)
    layer_offsets_.push_back(offset_of("model.layers." + std::to_string(l) + ".input_layernorm.weight"));
  final_norm_offset_ = offset_of("model.norm.weight");
  head_offset_ = config_.tie_embeddings ? embed_offset_ : offset_of("lm_head.weight");
  int64_t total = params_.back().offset + params_.back().numel;
  weights_.assign((size_t)total, T(0));
  rope_cos_.resize((size_t)(config_.max_seq_len * head_dim_ / 2));
  rope_sin_.resize(rope_cos_.size());
  const std::vector<double> inv_freq = rope_inverse_frequencies(config_);
  rope_tables(rope_cos_.data(), rope_sin_.data(), config_.max_seq_len, head_dim_, inv_freq.data());
}

template <typename T>
std::vector<T>& TransformerT<T>::grads() {
  if (grads_.size() != weights_.size()) grads_.assign(weights_.size(), T(0));
  return grads_;
}

template <typename T>
const ParameterInfo& TransformerT<T>::parameter(const std::string& name) const {
  auto it = param_index_.find(name);
  COHORT_REQUIRE(it != param_index_.end(), "model '" << config_.name << "' has no parameter '" << name << "'");
  return params_[it->second];
}

template <typename T>
void TransformerT<T>::init_random(uint64_t seed) {
  Rng rng(seed);
  for (const auto& p : params_) {
    T* w = weights_.data() + p.offset;
    bool is_norm =
        p.name.ends_with("layernorm.weight") || p.name.ends_with("_norm.weight") || p.name == "model.norm.weight";
    bool is_bias = p.name.ends_with(".bias");
    for (int64_t i = 0; i < p.numel; ++i) w[i] = is_norm ? T(1) : is_bias ? T(0) : (T)(0.02 * rng.normal());
  }
}

template <typename T>
void TransformerT<T>::zero_grad() {
  std::vector<T>& g = grads();
  std::fill(g.begin(), g.end(), T(0));
}

template <typename T>
void TransformerT<T>::set_logit_temperature(double t) {
  COHORT_REQUIRE(t > 0 && std::isfinite(t), "logit temperature must be positive and finite, got " << t);
  logit_temperature_ = t;
}

template <typename T>
void TransformerT<T>::set_compute(Compute c) {
  COHORT_REQUIRE((c == Compute::fp32 || std::is_same_v<T, float>),
                 "bf16 and fp8 compute are emulated in float only (this model is double precision)");
  compute_ = c;
}

// Parameters of layer l in the order the constructor added them.
template <typename T>
typename TransformerT<T>::Layer TransformerT<T>::layer(int64_t l) const {
  const T* p = weights_.data() + layer_offsets_[l];
  const int64_t C = config_.hidden, I = config_.intermediate;
  const int64_t q_dim = config_.heads * head_dim_, kv_dim = config_.kv_heads * head_dim_;
  const bool bias = config_.qkv_bias, qk = config_.qk_norm;
  Layer L;
  L.attn_norm = p, p += C;
  L.wq = p, p += q_dim * C;
  L.bq = bias ? p : nullptr, p += bias ? q_dim : 0;
  L.wk = p, p += kv_dim * C;
  L.bk = bias ? p : nullptr, p += bias ? kv_dim : 0;
  L.wv = p, p += kv_dim * C;
  L.bv = bias ? p : nullptr, p += bias ? kv_dim : 0;
  L.wo = p, p += C * q_dim;
  L.q_norm = qk ? p : nullptr, p += qk ? head_dim_ : 0;
  L.k_norm = qk ? p : nullptr, p += qk ? head_dim_ : 0;
  L.mlp_norm = p, p += C;
  L.w_gate = p, p += I * C;
  L.w_up = p, p += I * C;
  L.w_down = p;
  return L;
}

template <typename T>
typename TransformerT<T>::LayerGrad TransformerT<T>::layer_grad(int64_t l) {
  Layer w = layer(l);
  T* base = grads().data();
  auto g = [&](const T* p) { return p ? base + (p - weights_.data()) : nullptr; };
  return LayerGrad{g(w.attn_norm), g(w.wq),     g(w.bq),     g(w.wk),       g(w.bk),     g(w.wv),   g(w.bv),
                   g(w.wo),        g(w.q_norm), g(w.k_norm), g(w.mlp_norm), g(w.w_gate), g(w.w_up), g(w.w_down)};
}

template <typename T>
void TransformerT<T>::linear(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t in, int64_t out) const {
  if constexpr (std::is_same_v<T, float>) {
    if (compute_ == Compute::fp8) return fp8_linear_forward(y, x, w, b, N, in, out);
    if (compute_ == Compute::bf16) return bf16_linear_forward(y, x, w, b, N, in, out);
  }
  linear_forward(y, x, w, b, N, in, out);
}

template <typename T>
void TransformerT<T>::linear_back(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t in,
                                  int64_t out) const {
  if constexpr (std::is_same_v<T, float>) {
    if (compute_ == Compute::fp8) return fp8_linear_backward(dx, dw, db, dy, x, w, N, in, out);
    if (compute_ == Compute::bf16) return bf16_linear_backward(dx, dw, db, dy, x, w, N, in, out);
  }
  linear_backward(dx, dw, db, dy, x, w, N, in, out);
}

template <typename T>
void TransformerT<T>::check_tokens(const int32_t* tokens, const int32_t* valid_counts, int64_t B, int64_t Tlen,
                                   const char* what) const {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < valid_counts[b]; ++t) {
      int32_t id = tokens[b * Tlen + t];
      COHORT_REQUIRE(id >= 0 && id < config_.vocab, what << " id " << id << " at row " << b << ", position " << t
                                                         << " is outside the vocabulary [0, " << config_.vocab << ")");
    }
}

template <typename T>
void TransformerT<T>::forward(const int32_t* tokens, const int32_t* lengths, const int32_t* targets, int64_t B,
                              int64_t Tlen, T* logprob, T* entropy) {
  have_forward_ = false;  // a forward that fails on bad input leaves nothing to backprop
  COHORT_REQUIRE(B > 0 && Tlen > 0, "forward needs a non-empty batch, got " << B << " x " << Tlen);
  COHORT_REQUIRE(Tlen <= config_.max_seq_len,
                 "sequence length " << Tlen << " exceeds the model's max_seq_len " << config_.max_seq_len);
  for (int64_t b = 0; b < B; ++b)
    COHORT_REQUIRE(lengths[b] >= 1 && lengths[b] <= Tlen,
                   "length " << lengths[b] << " of row " << b << " is outside [1, " << Tlen << "]");
  check_tokens(tokens, lengths, B, Tlen, "token");
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < lengths[b]; ++t) {
      int32_t id = targets[b * Tlen + t];
      COHORT_REQUIRE(id >= -1 && id < config_.vocab, "target id " << id << " at row " << b << ", position " << t
                                                                  << " is outside [-1, " << config_.vocab << ")");
    }
  GovernedCall governed(forward_governor_, (double)(B * Tlen));

  const int64_t C = config_.hidden, I = config_.intermediate, H = config_.heads, KVH = config_.kv_heads;
  const int64_t hd = head_dim_, q_dim = H * hd, kv_dim = KVH * hd, N = B * Tlen;
  const T eps = (T)config_.rms_eps;
  const bool qk = config_.qk_norm;
  B_ = B, T_ = Tlen;
  tokens_.assign(tokens, tokens + N);
  lengths_.assign(lengths, lengths + B);
  targets_.assign((size_t)N, -1);
  positions_.resize((size_t)N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tlen; ++t) {
      positions_[b * Tlen + t] = (int32_t)t;
      if (t < lengths[b]) targets_[b * Tlen + t] = targets[b * Tlen + t];
    }
  acts_.resize((size_t)config_.layers);

  std::vector<T>& x = final_in_;  // the residual stream; after the last layer, the final input
  x.resize((size_t)(N * C));
  embedding_forward(x.data(), tokens_.data(), weights_.data() + embed_offset_, N, C);
  for (int64_t l = 0; l < config_.layers; ++l) {
    Layer w = layer(l);
    LayerActs& a = acts_[l];
    a.input = x;
    a.ln1.resize(N * C), a.rstd1.resize(N), a.q.resize(N * q_dim), a.k.resize(N * kv_dim);
    a.v.resize(N * kv_dim), a.att.resize(N * q_dim), a.lse.resize(B * H * Tlen), a.mid.resize(N * C);
    a.ln2.resize(N * C), a.rstd2.resize(N), a.gate.resize(N * I), a.up.resize(N * I), a.act.resize(N * I);
    a.q_raw.resize(qk ? N * q_dim : 0), a.k_raw.resize(qk ? N * kv_dim : 0);
    a.rstd_q.resize(qk ? N * H : 0), a.rstd_k.resize(qk ? N * KVH : 0);
    rmsnorm_forward(a.ln1.data(), a.rstd1.data(), a.input.data(), w.attn_norm, N, C, eps);
    linear(qk ? a.q_raw.data() : a.q.data(), a.ln1.data(), w.wq, w.bq, N, C, q_dim);
    linear(qk ? a.k_raw.data() : a.k.data(), a.ln1.data(), w.wk, w.bk, N, C, kv_dim);
    linear(a.v.data(), a.ln1.data(), w.wv, w.bv, N, C, kv_dim);
    if (qk) {
      rmsnorm_forward(a.q.data(), a.rstd_q.data(), a.q_raw.data(), w.q_norm, N * H, hd, eps);
      rmsnorm_forward(a.k.data(), a.rstd_k.data(), a.k_raw.data(), w.k_norm, N * KVH, hd, eps);
    }
    rope_forward(a.q.data(), positions_.data(), rope_cos_.data(), rope_sin_.data(), N, H, hd);
    rope_forward(a.k.data(), positions_.data(), rope_cos_.data(), rope_sin_.data(), N, KVH, hd);
    attention_forward(a.att.data(), a.lse.data(), a.q.data(), a.k.data(), a.v.data(), lengths_.data(), B, Tlen, H, KVH,
                      hd);
    linear(a.mid.data(), a.att.data(), w.wo, nullptr, N, q_dim, C);
    for (int64_t i = 0; i < N * C; ++i) a.mid[i] += a.input[i];
    rmsnorm_forward(a.ln2.data(), a.rstd2.data(), a.mid.data(), w.mlp_norm, N, C, eps);
    linear(a.gate.data(), a.ln2.data(), w.w_gate, nullptr, N, C, I);
    linear(a.up.data(), a.ln2.data(), w.w_up, nullptr, N, C, I);
    swiglu_forward(a.act.data(), a.gate.data(), a.up.data(), N * I);
    linear(x.data(), a.act.data(), w.w_down, nullptr, N, I, C);
    for (int64_t i = 0; i < N * C; ++i) x[i] += a.mid[i];
  }
  lnf_.resize(N * C), rstdf_.resize(N), lse_out_.resize(N), entropy_.resize(N);
  rmsnorm_forward(lnf_.data(), rstdf_.data(), final_in_.data(), weights_.data() + final_norm_offset_, N, C, eps);
  // logits / t = (lnf / t) W^T: scaling the head's input is the same as scaling logits.
  if (logit_temperature_ != 1.0) {
    const T inv = (T)(1.0 / logit_temperature_);
    for (auto& v : lnf_) v *= inv;
  }
  logprob_forward(logprob, entropy_.data(), lse_out_.data(), lnf_.data(), head_weight(), targets_.data(), N, C,
                  config_.vocab, logprob_chunk_tokens(config_.vocab, sizeof(T)));
  if (entropy) std::copy(entropy_.begin(), entropy_.end(), entropy);
  have_forward_ = true;
}

template <typename T>
void TransformerT<T>::backward(const T* dlogprob, const T* dentropy) {
  COHORT_REQUIRE(have_forward_, "backward called without a forward");
  GovernedCall governed(backward_governor_, (double)(B_ * T_));
  const int64_t C = config_.hidden, I = config_.intermediate, H = config_.heads, KVH = config_.kv_heads;
  const int64_t hd = head_dim_, q_dim = H * hd, kv_dim = KVH * hd, N = B_ * T_;
  const bool qk = config_.qk_norm;
  T* g = grads().data();

  auto zeroed = [](std::vector<T>& v, int64_t n) -> std::vector<T>& {
    v.assign((size_t)n, T(0));
    return v;
  };
  std::vector<T>& dlnf = zeroed(dlnf_, N * C);
  std::vector<T>& dx = zeroed(dx_, N * C);
  logprob_backward(dlnf.data(), g + head_offset_, dlogprob, dentropy, lnf_.data(), head_weight(), targets_.data(),
                   lse_out_.data(), entropy_.data(), N, C, config_.vocab,
                   logprob_chunk_tokens(config_.vocab, sizeof(T)));
  if (logit_temperature_ != 1.0) {
    const T inv = (T)(1.0 / logit_temperature_);
    for (auto& v : dlnf) v *= inv;
  }
  rmsnorm_backward(dx.data(), g + final_norm_offset_, dlnf.data(), final_in_.data(),
                   weights_.data() + final_norm_offset_, rstdf_.data(), N, C);

  // dx is the gradient w.r.t. the current layer's output; the residual adds pass it through.
  std::vector<T>& dact = dact_;
  std::vector<T>& dgate = dgate_;
  std::vector<T>& dup = dup_;
  std::vector<T>& dln = dln_;
  std::vector<T>& datt = datt_;
  std::vector<T>& dq = dq_;
  std::vector<T>& dk = dk_;
  std::vector<T>& dv = dv_;
  std::vector<T>& dq_raw = dq_raw_;
  std::vector<T>& dk_raw = dk_raw_;
  auto zero = [](std::vector<T>& v) { std::fill(v.begin(), v.end(), T(0)); };
  dact.resize(N * I), dgate.resize(N * I), dup.resize(N * I), dln.resize(N * C);
  datt.resize(N * q_dim), dq.resize(N * q_dim), dk.resize(N * kv_dim), dv.resize(N * kv_dim);
  dq_raw.resize(qk ? N * q_dim : 0), dk_raw.resize(qk ? N * kv_dim : 0);
  for (int64_t l = config_.layers - 1; l >= 0; --l) {
    Layer w = layer(l);
    LayerGrad gw = layer_grad(l);
    LayerActs& a = acts_[l];
    // MLP: dx already holds d(mid) through the residual.
    zero(dact), zero(dgate), zero(dup), zero(dln);
    linear_back(dact.data(), gw.w_down, nullptr, dx.data(), a.act.data(), w.w_down, N, I, C);
    swiglu_backward(dgate.data(), dup.data(), dact.data(), a.gate.data(), a.up.data(), N * I);
    linear_back(dln.data(), gw.w_gate, nullptr, dgate.data(), a.ln2.data(), w.w_gate, N, C, I);
    linear_back(dln.data(), gw.w_up, nullptr, dup.data(), a.ln2.data(), w.w_up, N, C, I);
    rmsnorm_backward(dx.data(), gw.mlp_norm, dln.data(), a.mid.data(), w.mlp_norm, a.rstd2.data(), N, C);
    // Attention: dx now holds d(mid), which also flows straight to d(input).
    zero(datt), zero(dq), zero(dk), zero(dv), zero(dln);
    linear_back(datt.data(), gw.wo, nullptr, dx.data(), a.att.data(), w.wo, N, q_dim, C);
    attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), a.q.data(), a.k.data(), a.v.data(), a.lse.data(),
                       lengths_.data(), B_, T_, H, KVH, hd);
    rope_backward(dq.data(), positions_.data(), rope_cos_.data(), rope_sin_.data(), N, H, hd);
    rope_backward(dk.data(), positions_.data(), rope_cos_.data(), rope_sin_.data(), N, KVH, hd);
    if (qk) {
      // dq, dk are the gradients w.r.t. the normed heads; carry them through the q/k norm.
      zero(dq_raw), zero(dk_raw);
      rmsnorm_backward(dq_raw.data(), gw.q_norm, dq.data(), a.q_raw.data(), w.q_norm, a.rstd_q.data(), N * H, hd);
      rmsnorm_backward(dk_raw.data(), gw.k_norm, dk.data(), a.k_raw.data(), w.k_norm, a.rstd_k.data(), N * KVH, hd);
    }
    linear_back(dln.data(), gw.wq, gw.bq, qk ? dq_raw.data() : dq.data(), a.ln1.data(), w.wq, N, C, q_dim);
    linear_back(dln.data(), gw.wk, gw.bk, qk ? dk_raw.data() : dk.data(), a.ln1.data(), w.wk, N, C, kv_dim);
    linear_back(dln.data(), gw.wv, gw.bv, dv.data(), a.ln1.data(), w.wv, N, C, kv_dim);
    rmsnorm_backward(dx.data(), gw.attn_norm, dln.data(), a.input.data(), w.attn_norm, a.rstd1.data(), N, C);
  }
  embedding_backward(g + embed_offset_, dx.data(), tokens_.data(), N, C);
}

template <typename T>
void TransformerT<T>::last_forward_logits(T* logits) const {
  COHORT_REQUIRE(have_forward_, "last_forward_logits called without a forward");
  const int64_t N = B_ * T_, V = config_.vocab;
  linear_forward(logits, lnf_.data(), head_weight(), (const T*)nullptr, N, config_.hidden, V);
  for (int64_t b = 0; b < B_; ++b)
    for (int64_t t = lengths_[b]; t < T_; ++t) std::fill_n(logits + (b * T_ + t) * V, V, T(0));
}

template <typename T>
void TransformerT<T>::decode(KVCacheT<T>& cache, const int32_t* tokens, const int32_t* slot, const int32_t* start,
                             const int32_t* n_new, int64_t B, int64_t Tn, T* logits) {
  COHORT_REQUIRE(B > 0 && Tn > 0, "decode needs a non-empty batch, got " << B << " x " << Tn);
  for (int64_t b = 0; b < B; ++b) {
    COHORT_REQUIRE(slot[b] >= 0 && slot[b] < cache.slots(),
                   "row " << b << " names cache slot " << slot[b] << ", outside [0, " << cache.slots() << ")");
    COHORT_REQUIRE(n_new[b] >= 1 && n_new[b] <= Tn,
                   "row " << b << " has " << n_new[b] << " new tokens, outside [1, " << Tn << "]");
    COHORT_REQUIRE(start[b] >= 0 && start[b] + n_new[b] <= cache.max_tokens(),
                   "row " << b << " would reach position " << start[b] + n_new[b] << ", beyond the cache length "
                          << cache.max_tokens() << " (model max_seq_len " << config_.max_seq_len << ")");
  }
  check_tokens(tokens, n_new, B, Tn, "token");
  // Prefill and single-token steps differ in cost per token by far, so each has its own governor.
  GovernedCall governed(Tn == 1 ? decode_governor_ : prefill_governor_, (double)(B * Tn));

  const int64_t C = config_.hidden, I = config_.intermediate, H = config_.heads, KVH = config_.kv_heads;
  const int64_t hd = head_dim_, q_dim = H * hd, kv_dim = KVH * hd, N = B * Tn, V = config_.vocab;
  const int64_t max_T = cache.max_tokens();
  const T eps = (T)config_.rms_eps;
  const bool qk = config_.qk_norm;
  std::vector<int32_t> positions((size_t)N), safe_tokens((size_t)N, 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      positions[b * Tn + t] = (int32_t)std::min<int64_t>(start[b] + t, config_.max_seq_len - 1);
      if (t < n_new[b]) safe_tokens[b * Tn + t] = tokens[b * Tn + t];
    }
  std::vector<T> x((size_t)(N * C)), ln((size_t)(N * C)), rstd((size_t)N), q((size_t)(N * q_dim));
  std::vector<T> k((size_t)(N * kv_dim)), v((size_t)(N * kv_dim)), att((size_t)(N * q_dim));
  std::vector<T> mid((size_t)(N * C)), gate((size_t)(N * I)), up((size_t)(N * I)), act((size_t)(N * I));
  std::vector<T> q_raw((size_t)(qk ? N * q_dim : 0)), k_raw((size_t)(qk ? N * kv_dim : 0));
  std::vector<T> rstd_q((size_t)(qk ? N * H : 0)), rstd_k((size_t)(qk ? N * KVH : 0));
  embedding_forward(x.data(), safe_tokens.data(), weights_.data() + embed_offset_, N, C);
  for (int64_t l = 0; l < config_.layers; ++l) {
    Layer w = layer(l);
    rmsnorm_forward(ln.data(), rstd.data(), x.data(), w.attn_norm, N, C, eps);
    linear(qk ? q_raw.data() : q.data(), ln.data(), w.wq, w.bq, N, C, q_dim);
    linear(qk ? k_raw.data() : k.data(), ln.data(), w.wk, w.bk, N, C, kv_dim);
    linear(v.data(), ln.data(), w.wv, w.bv, N, C, kv_dim);
    if (qk) {
      rmsnorm_forward(q.data(), rstd_q.data(), q_raw.data(), w.q_norm, N * H, hd, eps);
      rmsnorm_forward(k.data(), rstd_k.data(), k_raw.data(), w.k_norm, N * KVH, hd, eps);
    }
    rope_forward(q.data(), positions.data(), rope_cos_.data(), rope_sin_.data(), N, H, hd);
    rope_forward(k.data(), positions.data(), rope_cos_.data(), rope_sin_.data(), N, KVH, hd);
    T* kc = cache.keys(l);
    T* vc = cache.values(l);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n_new[b]; ++t) {
        int64_t row = ((int64_t)slot[b] * max_T + start[b] + t) * kv_dim;
        std::memcpy(kc + row, k.data() + (b * Tn + t) * kv_dim, kv_dim * sizeof(T));
        std::memcpy(vc + row, v.data() + (b * Tn + t) * kv_dim, kv_dim * sizeof(T));
      }
    attention_decode(att.data(), q.data(), kc, vc, slot, start, n_new, B, Tn, H, KVH, hd, max_T);
    linear(mid.data(), att.data(), w.wo, nullptr, N, q_dim, C);
    for (int64_t i = 0; i < N * C; ++i) mid[i] += x[i];
    rmsnorm_forward(ln.data(), rstd.data(), mid.data(), w.mlp_norm, N, C, eps);
    linear(gate.data(), ln.data(), w.w_gate, nullptr, N, C, I);
    linear(up.data(), ln.data(), w.w_up, nullptr, N, C, I);
    swiglu_forward(act.data(), gate.data(), up.data(), N * I);
    linear(x.data(), act.data(), w.w_down, nullptr, N, I, C);
    for (int64_t i = 0; i < N * C; ++i) x[i] += mid[i];
  }
  // Only each row's last new token needs logits.
  std::vector<T> last((size_t)(B * C)), last_ln((size_t)(B * C));
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(last.data() + b * C, x.data() + (b * Tn + n_new[b] - 1) * C, C * sizeof(T));
  rmsnorm_forward(last_ln.data(), rstd.data(), last.data(), weights_.data() + final_norm_offset_, B, C, eps);
  linear_forward(logits, last_ln.data(), head_weight(), (const T*)nullptr, B, C, V);
}

template class KVCacheT<float>;
template class KVCacheT<double>;
template class TransformerT<float>;
template class TransformerT<double>;

}  // namespace cohort
