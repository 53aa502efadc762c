// The whole decoder: gradient against finite differences in double on tiny configs (Qwen2 biases,
// untied Llama, Qwen3's q/k norm with llama3 rope scaling), KV-cache decoding against the full
// forward (with the q/k norm and both rope scalings), the rotary tables' scaling, parameter naming,
// lazily allocated gradients, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <set>

#include "common/check.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "model/transformer.h"

using namespace cohort;
using namespace cohort::testing;

namespace {
struct Batch {
  int64_t B, T;
  std::vector<int32_t> tokens, lengths, targets;
};

Batch make_batch(const ModelConfig& c, std::vector<int32_t> lengths, int64_t T, uint64_t seed) {
  Batch b{(int64_t)lengths.size(), T, std::vector<int32_t>(lengths.size() * T, 0), lengths,
          std::vector<int32_t>(lengths.size() * T, -1)};
  Rng rng(seed);
  for (int64_t r = 0; r < b.B; ++r)
    for (int64_t t = 0; t < lengths[r]; ++t) b.tokens[r * T + t] = (int32_t)rng.below(c.vocab);
  for (int64_t r = 0; r < b.B; ++r)
    for (int64_t t = 0; t + 1 < lengths[r]; ++t)
      b.targets[r * T + t] = t % 5 == 4 ? -1 : b.tokens[r * T + t + 1];  // a few masked targets
  return b;
}
}  // namespace

// A Qwen3-shaped tiny config: the q/k norm, no biases, head_dim (6) other than hidden / heads (4), and
// Llama 3.1's rope scaling with its three bands all in use (wavelengths 6.3, 135 and 2920 against
// original / high = 64 and original / low = 256).
ModelConfig qwen3_like(ModelConfig c) {
  c.name = "tiny-qwen3";
  c.qkv_bias = false, c.qk_norm = true, c.tie_embeddings = false, c.head_dim = 6;
  c.rope_scaling.type = RopeScaling::Type::llama3;
  c.rope_scaling.factor = 8, c.rope_scaling.low_freq_factor = 1, c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 256;
  return c;
}

TEST(Transformer, GradientMatchesFiniteDifferences) {
  for (int variant : {0, 1, 2}) {
    ModelConfig c = model_config_named("tiny");  // q/k/v bias and tied head
    if (variant == 1) c.qkv_bias = false, c.tie_embeddings = false, c.vocab = 50;
    c.hidden = 16, c.heads = 4, c.kv_heads = 2, c.intermediate = 24;  // small enough for many probes
    if (variant == 2) c = qwen3_like(c), c.vocab = 40;
    const std::string label = variant == 0 ? " (bias, tied)" : variant == 1 ? " (untied)" : " (qwen3: q/k norm)";
    TransformerT<double> model(c);
    model.init_random(3);
    model.set_logit_temperature(variant == 1 ? 0.7 : 1.0);  // the untied variant also checks temperature
    // Larger weights than the 0.02 init so every path carries a visible gradient.
    for (auto& w : model.weights()) w *= 8.0;
    Batch b = make_batch(c, {7, 4, 1}, 7, 5);
    auto probe_lp = random_vector(b.B * b.T, 6), probe_ent = random_vector(b.B * b.T, 7);
    std::vector<double> lp(b.B * b.T), ent(b.B * b.T);
    auto loss = [&] {
      model.forward(b.tokens.data(), b.lengths.data(), b.targets.data(), b.B, b.T, lp.data(), ent.data());
      return dot(lp, probe_lp) + dot(ent, probe_ent);
    };
    loss();
    model.zero_grad();
    model.backward(probe_lp.data(), probe_ent.data());
    std::vector<double> grads = model.grads();
    int q_norms = 0;
    for (const auto& p : model.parameters()) {
      q_norms += p.name.ends_with("q_norm.weight") || p.name.ends_with("k_norm.weight");
      std::vector<double> w(model.weights().begin() + p.offset, model.weights().begin() + p.offset + p.numel);
      std::vector<double> g(grads.begin() + p.offset, grads.begin() + p.offset + p.numel);
      auto param_loss = [&] {
        std::copy(w.begin(), w.end(), model.weights().begin() + p.offset);
        return loss();
      };
      expect_gradient(param_loss, w, g, p.name + label, 1e-6, 1e-7, 1e-5, 24);
      std::copy(w.begin(), w.end(), model.weights().begin() + p.offset);
    }
    EXPECT_EQ(q_norms, variant == 2 ? 2 * c.layers : 0) << "every q/k norm weight was checked";
  }
}

namespace {
// Prefills rows of different lengths into slots in reverse order, then decodes one token per row
// per step, and compares every decoded position's logits with the full forward's.
void expect_decode_equals_forward(const ModelConfig& c) {
  SCOPED_TRACE(c.name);
  Transformer model(c);
  model.init_random(11);
  for (auto& w : model.weights()) w *= 4.f;  // sharper distributions make mismatches visible
  // The q/k norms scale q.k by their weights squared: 4 would make the attention so sharp that the
  // GEMMs' rounding (decode and forward multiply other shapes) shows above 1e-5. Around 1, as trained.
  for (const auto& p : model.parameters())
    if (p.name.ends_with("q_norm.weight") || p.name.ends_with("k_norm.weight"))
      for (int64_t i = 0; i < p.numel; ++i)
        model.weights()[p.offset + i] = 1.0f + 0.3f * std::sin((float)(i + p.offset));
  const int64_t T = 20;
  Batch b = make_batch(c, {20, 9, 14, 3}, T, 12);
  std::vector<float> lp(b.B * T), ent(b.B * T), full(b.B * T * c.vocab);
  model.forward(b.tokens.data(), b.lengths.data(), b.targets.data(), b.B, T, lp.data(), ent.data());
  model.last_forward_logits(full.data());

  // Rows go to slots in reverse, prompts of different lengths are prefilled together,
  // then every row advances one token per step until its length.
  KVCache cache(c, b.B, T);
  std::vector<int32_t> slot(b.B), start(b.B, 0), n(b.B);
  std::vector<int32_t> prompt(b.B * T, 0);
  int64_t Tp = 0;
  for (int64_t r = 0; r < b.B; ++r) {
    slot[r] = (int32_t)(b.B - 1 - r);
    n[r] = std::max(1, b.lengths[r] / 2);
    Tp = std::max<int64_t>(Tp, n[r]);
  }
  std::vector<int32_t> packed(b.B * Tp, 0);
  for (int64_t r = 0; r < b.B; ++r)
    for (int64_t t = 0; t < n[r]; ++t) packed[r * Tp + t] = b.tokens[r * T + t];
  std::vector<float> logits(b.B * c.vocab);
  model.decode(cache, packed.data(), slot.data(), start.data(), n.data(), b.B, Tp, logits.data());
  std::vector<float> got, want;
  auto collect = [&](int64_t r, int64_t pos) {
    for (int64_t v = 0; v < c.vocab; ++v) {
      got.push_back(logits[r * c.vocab + v]);
      want.push_back(full[(r * T + pos) * c.vocab + v]);
    }
  };
  for (int64_t r = 0; r < b.B; ++r) collect(r, n[r] - 1);
  for (int64_t step = 0;; ++step) {
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < b.B; ++r)
      if (n[r] + start[r] < b.lengths[r]) rows.push_back(r);
    if (rows.empty()) break;
    std::vector<int32_t> tok, sl, st, one;
    for (int64_t r : rows) {
      start[r] += n[r], n[r] = 1;
      tok.push_back(b.tokens[r * T + start[r]]), sl.push_back(slot[r]), st.push_back(start[r]), one.push_back(1);
    }
    std::vector<float> step_logits(rows.size() * c.vocab);
    model.decode(cache, tok.data(), sl.data(), st.data(), one.data(), (int64_t)rows.size(), 1, step_logits.data());
    for (size_t i = 0; i < rows.size(); ++i)
      for (int64_t v = 0; v < c.vocab; ++v) {
        got.push_back(step_logits[i * c.vocab + v]);
        want.push_back(full[(rows[i] * T + start[rows[i]]) * c.vocab + v]);
      }
  }
  // The prefill gives each row's last prompt position; every later position is one step.
  size_t expected = 0;
  for (int64_t r = 0; r < b.B; ++r) expected += 1 + b.lengths[r] - std::max(1, b.lengths[r] / 2);
  ASSERT_EQ(got.size(), expected * c.vocab) << "every decoded position was compared once";
  // 1e-5 relative, plus a floor for logits near zero (float rounding of ~1e-7 absolute).
  expect_close(got, want, 1e-5, 1e-5, "decode logits vs full forward");
}
}  // namespace

TEST(Transformer, DecodeWithCacheEqualsFullForward) {
  ModelConfig c = model_config_named("tiny");
  c.tie_embeddings = false, c.qkv_bias = true;
  expect_decode_equals_forward(c);
  // Qwen3's q/k norm with llama3 rope scaling, and Llama with linear scaling: prefill and decode
  // must normalise and rotate exactly as the training forward does.
  expect_decode_equals_forward(qwen3_like(model_config_named("tiny")));
  ModelConfig linear = model_config_named("tiny");
  linear.name = "tiny-linear-rope", linear.qkv_bias = false;
  linear.rope_scaling.type = RopeScaling::Type::linear, linear.rope_scaling.factor = 2.5;
  expect_decode_equals_forward(linear);
}

TEST(Transformer, RopeScalingShapesTheRotaryTables) {
  ModelConfig c = model_config_named("tiny");
  c.head_dim = 16, c.rope_theta = 1e4;  // frequencies 10^4^(-i/8): wavelengths 6.3 .. 47000
  const std::vector<double> plain = rope_inverse_frequencies(c);
  ASSERT_EQ(plain.size(), 8u);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_DOUBLE_EQ(plain[i], std::pow(1e4, -2.0 * (double)i / 16));
  ModelConfig linear = c;
  linear.rope_scaling.type = RopeScaling::Type::linear, linear.rope_scaling.factor = 4;
  const std::vector<double> divided = rope_inverse_frequencies(linear);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_DOUBLE_EQ(divided[i], plain[i] / 4) << i;
  ModelConfig llama3 = qwen3_like(c);
  llama3.head_dim = 16;
  const std::vector<double> scaled = rope_inverse_frequencies(llama3);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelength = 2 * std::numbers::pi / plain[i];
    if (wavelength < 64) {
      EXPECT_EQ(scaled[i], plain[i]) << i;
    } else if (wavelength > 256) {
      EXPECT_DOUBLE_EQ(scaled[i], plain[i] / 8) << i;
    } else {
      EXPECT_TRUE(scaled[i] < plain[i] && scaled[i] > plain[i] / 8) << i;
    }
  }

  // The same weights with and without scaling give other logprobs (the tables are used), and the
  // same at position 0 alone, where every rotation is the identity.
  ModelConfig unscaled = llama3;
  unscaled.rope_scaling = RopeScaling{};
  Transformer a(llama3), b(unscaled);
  a.init_random(4);
  for (auto& w : a.weights()) w *= 4.f;
  b.weights() = a.weights();
  Batch batch = make_batch(llama3, {30}, 30, 5);
  std::vector<float> lp_a(30), lp_b(30);
  a.forward(batch.tokens.data(), batch.lengths.data(), batch.targets.data(), 1, 30, lp_a.data(), nullptr);
  b.forward(batch.tokens.data(), batch.lengths.data(), batch.targets.data(), 1, 30, lp_b.data(), nullptr);
  EXPECT_EQ(lp_a[0], lp_b[0]) << "position 0 is not rotated";
  EXPECT_NE(lp_a, lp_b) << "rope scaling changed nothing";
}

TEST(Transformer, Qwen3ParametersAndLazyGradients) {
  ModelConfig c = qwen3_like(model_config_named("tiny"));
  Transformer model(c);
  EXPECT_EQ(model.num_parameters(), parameter_count(c));
  EXPECT_EQ(model.parameter("model.layers.1.self_attn.q_norm.weight").shape, (std::vector<int64_t>{6}));
  EXPECT_EQ(model.parameter("model.layers.0.self_attn.k_norm.weight").shape, (std::vector<int64_t>{6}));
  EXPECT_EQ(model.parameter("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{4 * 6, 32}));
  EXPECT_EQ(model.parameter("model.layers.0.self_attn.o_proj.weight").shape, (std::vector<int64_t>{32, 4 * 6}));
  EXPECT_THROW(model.parameter("model.layers.0.self_attn.q_proj.bias"), Error) << "Qwen3 has no biases";
  model.init_random(1);
  const ParameterInfo& q_norm = model.parameter("model.layers.0.self_attn.q_norm.weight");
  for (int64_t i = 0; i < q_norm.numel; ++i) EXPECT_EQ(model.weights()[q_norm.offset + i], 1.0f) << "norms start at 1";
  // Gradients are allocated, zeroed, on first use.
  EXPECT_EQ((int64_t)model.grads().size(), model.num_parameters());
  for (float g : model.grads()) ASSERT_EQ(g, 0.0f);
}

TEST(Transformer, ParametersUseHuggingFaceNames) {
  ModelConfig c = model_config_named("small");
  Transformer model(c);
  EXPECT_EQ(model.num_parameters(), parameter_count(c));
  std::set<std::string> names;
  for (const auto& p : model.parameters()) names.insert(p.name);
  for (const char* n :
       {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.3.mlp.down_proj.weight",
        "model.layers.2.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_EQ(model.parameter("model.layers.0.self_attn.k_proj.weight").shape,
            (std::vector<int64_t>{c.kv_heads * c.resolved_head_dim(), c.hidden}));
  EXPECT_THROW(model.parameter("model.layers.9.mlp.up_proj.weight"), Error);
  EXPECT_GT(model.num_parameters(), 2'000'000) << "small is a few million parameters";
  ModelConfig bench = model_config_named("bench-124m");
  EXPECT_NEAR((double)parameter_count(bench), 124e6, 4e6);
}

TEST(Transformer, SeededInitIsReproducible) {
  ModelConfig c = model_config_named("tiny");
  Transformer a(c), b(c), d(c);
  a.init_random(5), b.init_random(5), d.init_random(6);
  EXPECT_EQ(a.weights(), b.weights());
  EXPECT_NE(a.weights(), d.weights());
}

TEST(Transformer, Fp8ComputeTracksFp32) {
  ModelConfig c = model_config_named("tiny");
  Transformer model(c);
  model.init_random(1);
  Batch b = make_batch(c, {16, 11}, 16, 2);
  std::vector<float> lp32(32), lp8(32);
  model.forward(b.tokens.data(), b.lengths.data(), b.targets.data(), b.B, b.T, lp32.data(), nullptr);
  model.set_compute(Compute::fp8);
  model.forward(b.tokens.data(), b.lengths.data(), b.targets.data(), b.B, b.T, lp8.data(), nullptr);
  double s32 = 0, s8 = 0;
  for (int i = 0; i < 32; ++i) s32 += lp32[i], s8 += lp8[i];
  EXPECT_NE(lp32, lp8) << "fp8 compute must actually quantize";
  EXPECT_NEAR(s8 / s32, 1.0, 0.01) << "mean logprob within 1% of fp32";
  TransformerT<double> dm(c);
  EXPECT_THROW(dm.set_compute(Compute::fp8), Error);
}

TEST(Transformer, BadInputIsAClearError) {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { model_config_named("huge"); }).find("unknown model size 'huge'"), std::string::npos);
  ModelConfig c = model_config_named("tiny");
  c.kv_heads = 3;
  EXPECT_NE(message([&] { Transformer m(c); }).find("heads (4) must be divisible by kv_heads (3)"), std::string::npos);

  ModelConfig t = model_config_named("tiny");
  Transformer model(t);
  std::vector<float> lp(2 * 100);
  Batch ok = make_batch(t, {3, 2}, 3, 1);
  Batch too_long = make_batch(t, {65, 2}, 65, 1);
  EXPECT_NE(message([&] {
              model.forward(too_long.tokens.data(), too_long.lengths.data(), too_long.targets.data(), 2, 65, lp.data(),
                            nullptr);
            }).find("sequence length 65 exceeds the model's max_seq_len 64"),
            std::string::npos);
  Batch bad = ok;
  bad.tokens[1 * 3 + 1] = 9999;
  EXPECT_NE(message([&] {
              model.forward(bad.tokens.data(), bad.lengths.data(), bad.targets.data(), 2, 3, lp.data(), nullptr);
            }).find("token id 9999 at row 1, position 1 is outside the vocabulary [0, 261)"),
            std::string::npos);
  bad = ok;
  bad.tokens[0] = -4;
  EXPECT_NE(message([&] {
              model.forward(bad.tokens.data(), bad.lengths.data(), bad.targets.data(), 2, 3, lp.data(), nullptr);
            }).find("token id -4 at row 0, position 0"),
            std::string::npos);
  bad = ok;
  bad.targets[0] = 261;
  EXPECT_NE(message([&] {
              model.forward(bad.tokens.data(), bad.lengths.data(), bad.targets.data(), 2, 3, lp.data(), nullptr);
            }).find("target id 261"),
            std::string::npos);
  bad = ok;
  bad.lengths[1] = 0;
  EXPECT_NE(message([&] {
              model.forward(bad.tokens.data(), bad.lengths.data(), bad.targets.data(), 2, 3, lp.data(), nullptr);
            }).find("length 0 of row 1 is outside [1, 3]"),
            std::string::npos);
  EXPECT_NE(message([&] { KVCache cache(t, 1, 65); }).find("exceeds the model's max_seq_len 64"), std::string::npos);
  KVCache cache(t, 1, 8);
  std::vector<float> logits(t.vocab);
  int32_t tok = 1, slot = 0, start = 8, n = 1;
  EXPECT_NE(message([&] {
              model.decode(cache, &tok, &slot, &start, &n, 1, 1, logits.data());
            }).find("beyond the cache length 8"),
            std::string::npos);
  slot = 1, start = 0;
  EXPECT_NE(message([&] { model.decode(cache, &tok, &slot, &start, &n, 1, 1, logits.data()); }).find("cache slot 1"),
            std::string::npos);
  EXPECT_THROW(model.backward(lp.data(), nullptr), Error) << "a failed forward leaves nothing to backprop";
}

// The thread governors change the thread count between calls, so the results must not depend on
// it: logprobs, entropies, gradients and decode logits are the same bits on 1 and on 2 threads.
// The shapes are large enough that every op takes its parallel path on 2 threads.
TEST(Transformer, ResultsDoNotDependOnTheThreadCount) {
  ModelConfig c = model_config_named("small");
  Batch b = make_batch(c, {64, 40, 64, 17}, 64, 9);
  struct Out {
    std::vector<float> logprob, entropy, grads, logits;
  };
  auto run = [&](int threads) {
    use_threads(threads);
    Transformer model(c);
    model.init_random(3);
    Out o{std::vector<float>(b.B * b.T), std::vector<float>(b.B * b.T), {}, std::vector<float>(b.B * c.vocab)};
    model.forward(b.tokens.data(), b.lengths.data(), b.targets.data(), b.B, b.T, o.logprob.data(), o.entropy.data());
    std::vector<float> dlogprob(b.B * b.T, 0.5f), dentropy(b.B * b.T, 0.25f);
    model.backward(dlogprob.data(), dentropy.data());
    o.grads = model.grads();
    KVCache cache(c, b.B, b.T);
    std::vector<int32_t> slot = {0, 1, 2, 3}, start(b.B, 0);
    model.decode(cache, b.tokens.data(), slot.data(), start.data(), b.lengths.data(), b.B, b.T, o.logits.data());
    use_threads(thread_count());
    return o;
  };
  Out one = run(1), two = run(2);
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
    EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << a.size() << " values differ between 1 and 2 threads";
  };
  same_bits(one.logprob, two.logprob, "logprob");
  same_bits(one.entropy, two.entropy, "entropy");
  same_bits(one.grads, two.grads, "gradients");
  same_bits(one.logits, two.logits, "decode logits");
}
