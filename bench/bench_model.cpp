// The model benchmark: training forward+backward(+AdamW) tokens/s and achieved GFLOP/s,
// decode tokens/s at several batch sizes, and the GEMM library's GFLOP/s at the same
// shapes (the ceiling). Prints one JSON object per line, in the same shape as
// bench/torch_reference.py, so bench/run can put both side by side.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/gemm.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "model/transformer.h"

using namespace cohort;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Useful FLOPs of one training step, the same formula as bench/torch_reference.py:
// 6 * tokens * (matmul parameters incl. the head, excluding the embedding table) plus
// attention 4 * B * T^2 * (H * head_dim) per layer forward (full, not causal-halved),
// times 3 for forward + backward.
double train_flops(const ModelConfig& c, int64_t B, int64_t T) {
  int64_t matmul_params = parameter_count(c) - c.vocab * c.hidden;
  if (c.tie_embeddings) matmul_params += c.vocab * c.hidden;
  int64_t norms = c.layers * 2 * c.hidden + c.hidden;
  matmul_params -= norms;
  double attention = 3.0 * c.layers * 4.0 * B * T * T * (c.heads * c.resolved_head_dim());
  return 6.0 * B * T * matmul_params + attention;
}

// GFLOP/s of OpenBLAS sgemm on the GEMMs one training step runs (forward, input-gradient,
// weight-gradient of every linear and the head), timed the same number of times.
double gemm_ceiling_gflops(const ModelConfig& c, int64_t N, int repeats) {
  struct Shape {
    int64_t out, in;
  };
  int64_t hd = c.resolved_head_dim();
  std::vector<Shape> shapes = {{c.heads * hd, c.hidden},  {c.kv_heads * hd, c.hidden}, {c.kv_heads * hd, c.hidden},
                               {c.hidden, c.heads * hd},  {c.intermediate, c.hidden},  {c.intermediate, c.hidden},
                               {c.hidden, c.intermediate}};
  size_t biggest = 0;
  for (auto s : shapes) biggest = std::max(biggest, (size_t)std::max(s.out, s.in));
  std::vector<float> x((size_t)N * biggest, 0.01f), w(biggest * biggest, 0.01f), y((size_t)N * biggest);
  std::vector<float> head((size_t)c.vocab * c.hidden, 0.01f), logits((size_t)512 * c.vocab);
  double flops = 0, secs = 0;
  for (int r = 0; r < repeats + 1; ++r) {
    auto t0 = Clock::now();
    double f = 0;
    for (int64_t l = 0; l < c.layers; ++l)
      for (auto s : shapes) {
        cpu::gemm(false, true, N, s.out, s.in, 1.f, x.data(), s.in, w.data(), s.in, 0.f, y.data(), s.out);
        cpu::gemm(false, false, N, s.in, s.out, 1.f, y.data(), s.out, w.data(), s.in, 0.f, x.data(), s.in);
        cpu::gemm(true, false, s.out, s.in, N, 1.f, y.data(), s.out, x.data(), s.in, 0.f, w.data(), s.in);
        f += 6.0 * N * s.out * s.in;
      }
    // The head in chunks of 512 tokens, as the model runs it.
    for (int64_t n0 = 0; n0 < N; n0 += 512) {
      int64_t n = std::min<int64_t>(512, N - n0);
      cpu::gemm(false, true, n, c.vocab, c.hidden, 1.f, x.data(), c.hidden, head.data(), c.hidden, 0.f, logits.data(),
                c.vocab);
      cpu::gemm(false, false, n, c.hidden, c.vocab, 1.f, logits.data(), c.vocab, head.data(), c.hidden, 0.f, x.data(),
                c.hidden);
      cpu::gemm(true, false, c.vocab, c.hidden, n, 1.f, logits.data(), c.vocab, x.data(), c.hidden, 0.f, head.data(),
                c.hidden);
      f += 6.0 * n * c.vocab * c.hidden;
    }
    if (r > 0) flops += f, secs += seconds_since(t0);  // the first pass warms up
  }
  return flops / secs / 1e9;
}

// The first `warmup` steps are not timed: they pay page faults, and the thread governors
// (kernels/thread_governor.h) spend their first calls timing both thread counts.
void bench_train(const ModelConfig& c, int64_t B, int64_t T, int steps, int warmup, Compute compute) {
  Transformer model(c);
  model.init_random(1);
  model.set_compute(compute);
  Rng rng(7);
  std::vector<int32_t> tokens((size_t)(B * T)), targets((size_t)(B * T)), lengths((size_t)B, (int32_t)T);
  for (auto& t : tokens) t = (int32_t)rng.below(c.vocab);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) targets[b * T + t] = t + 1 < T ? tokens[b * T + t + 1] : -1;
  std::vector<float> logprob((size_t)(B * T)), dlogprob((size_t)(B * T)), weight((size_t)(B * T));
  for (size_t i = 0; i < weight.size(); ++i) weight[i] = targets[i] >= 0 ? 1.f : 0.f;
  std::vector<float> m(model.num_parameters()), v(model.num_parameters());
  double fwd_bwd = 0, adamw = 0, loss = 0;
  for (int s = 0; s < steps + warmup; ++s) {
    auto t0 = Clock::now();
    model.zero_grad();
    model.forward(tokens.data(), lengths.data(), targets.data(), B, T, logprob.data(), nullptr);
    loss = cpu::cross_entropy_forward(logprob.data(), weight.data(), B * T);
    cpu::cross_entropy_backward(dlogprob.data(), weight.data(), B * T);
    model.backward(dlogprob.data(), nullptr);
    double t_fb = seconds_since(t0);
    auto t1 = Clock::now();
    cpu::AdamWSettings a;
    a.step = s + 1;
    cpu::adamw_update(model.weights().data(), model.grads().data(), m.data(), v.data(), model.num_parameters(), a);
    double t_opt = seconds_since(t1);
    if (s >= warmup) fwd_bwd += t_fb, adamw += t_opt;
  }
  fwd_bwd /= steps, adamw /= steps;
  double flops = train_flops(c, B, T), tokens_per_step = (double)B * T;
  const char* prec = compute == Compute::fp8 ? "fp8" : "fp32";
  std::printf(
      "{\"impl\":\"cohort\",\"bench\":\"train_fwd_bwd\",\"model\":\"%s\",\"precision\":\"%s\",\"batch\":%ld,"
      "\"seq\":%ld,\"threads\":%d,\"seconds\":%.4f,\"tokens_per_s\":%.1f,\"flops\":%.4g,\"gflops\":%.1f,"
      "\"loss\":%.4f}\n",
      c.name.c_str(), prec, (long)B, (long)T, thread_count(), fwd_bwd, tokens_per_step / fwd_bwd, flops,
      flops / fwd_bwd / 1e9, loss);
  std::printf(
      "{\"impl\":\"cohort\",\"bench\":\"train_step\",\"model\":\"%s\",\"precision\":\"%s\",\"batch\":%ld,"
      "\"seq\":%ld,\"threads\":%d,\"seconds\":%.4f,\"tokens_per_s\":%.1f,\"flops\":%.4g,\"gflops\":%.1f}\n",
      c.name.c_str(), prec, (long)B, (long)T, thread_count(), fwd_bwd + adamw, tokens_per_step / (fwd_bwd + adamw),
      flops, flops / (fwd_bwd + adamw) / 1e9);
  std::fflush(stdout);
}

// Each batch size decodes `repeats` times from a fresh cache; the median run is printed, so one
// unlucky scheduling slice (the contention benchmark runs beside busy processes) does not decide.
void bench_decode(const ModelConfig& c, const std::vector<int64_t>& batches, int64_t prompt, int64_t new_tokens,
                  int repeats) {
  Transformer model(c);
  model.init_random(1);
  Rng rng(11);
  for (int64_t B : batches) {
    std::vector<double> prefills, decodes;
    for (int r = 0; r < std::max(1, repeats); ++r) {
      KVCache cache(c, B, prompt + new_tokens);
      std::vector<int32_t> tokens((size_t)(B * prompt)), slot((size_t)B), start((size_t)B, 0),
          n((size_t)B, (int32_t)prompt);
      for (auto& t : tokens) t = (int32_t)rng.below(c.vocab);
      for (int64_t b = 0; b < B; ++b) slot[b] = (int32_t)b;
      std::vector<float> logits((size_t)(B * c.vocab));
      auto t0 = Clock::now();
      model.decode(cache, tokens.data(), slot.data(), start.data(), n.data(), B, prompt, logits.data());
      double prefill = seconds_since(t0);
      std::vector<int32_t> next((size_t)B), one((size_t)B, 1);
      auto t1 = Clock::now();
      for (int64_t step = 0; step < new_tokens; ++step) {
        for (int64_t b = 0; b < B; ++b) {
          const float* row = logits.data() + b * c.vocab;
          int32_t best = 0;
          for (int64_t v = 1; v < c.vocab; ++v)
            if (row[v] > row[best]) best = (int32_t)v;
          next[b] = best;
          start[b] = (int32_t)(prompt + step);
        }
        model.decode(cache, next.data(), slot.data(), start.data(), one.data(), B, 1, logits.data());
      }
      prefills.push_back(prefill);
      decodes.push_back(seconds_since(t1));
    }
    std::sort(prefills.begin(), prefills.end());
    std::sort(decodes.begin(), decodes.end());
    double prefill = prefills[prefills.size() / 2], decode = decodes[decodes.size() / 2];
    std::printf(
        "{\"impl\":\"cohort\",\"bench\":\"prefill\",\"model\":\"%s\",\"batch\":%ld,\"prompt\":%ld,"
        "\"threads\":%d,\"seconds\":%.4f,\"tokens_per_s\":%.1f}\n",
        c.name.c_str(), (long)B, (long)prompt, thread_count(), prefill, B * prompt / prefill);
    std::printf(
        "{\"impl\":\"cohort\",\"bench\":\"decode\",\"model\":\"%s\",\"batch\":%ld,\"prompt\":%ld,"
        "\"new_tokens\":%ld,\"threads\":%d,\"seconds\":%.4f,\"tokens_per_s\":%.1f}\n",
        c.name.c_str(), (long)B, (long)prompt, (long)new_tokens, thread_count(), decode, B * new_tokens / decode);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string size = "bench-124m";
  int steps = 3;
  int64_t B = 4, T = 256, prompt = 128, new_tokens = 32;
  int decode_repeats = 1, warmup = 1, threads = 0;
  std::vector<int64_t> batches = {1, 16, 64};
  bool train = true, decode = true, ceiling = true, fp8 = false;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        COHORT_REQUIRE(i + 1 < argc, "option " << a << " needs a value");
        return argv[++i];
      };
      if (a == "--model")
        size = value();
      else if (a == "--steps")
        steps = std::stoi(value());
      else if (a == "--batch")
        B = std::stol(value());
      else if (a == "--seq")
        T = std::stol(value());
      else if (a == "--threads")
        threads = std::stoi(value());
      else if (a == "--new-tokens")
        new_tokens = std::stol(value());
      else if (a == "--warmup")
        warmup = std::max(1, std::stoi(value()));
      else if (a == "--decode-repeats")
        decode_repeats = std::stoi(value());
      else if (a == "--decode-batches") {
        batches.clear();
        std::string list = value();
        for (size_t p = 0; p < list.size();) {
          size_t q = list.find(',', p);
          batches.push_back(std::stol(list.substr(p, q - p)));
          p = q == std::string::npos ? list.size() : q + 1;
        }
      } else if (a == "--skip-train")
        train = false;
      else if (a == "--skip-decode")
        decode = false;
      else if (a == "--skip-ceiling")
        ceiling = false;
      else if (a == "--fp8")
        fp8 = true;
      else
        COHORT_REQUIRE(
            false,
            "unknown option " << a
                              << " (options: --model --steps --batch --seq --threads --warmup --new-tokens "
                                 "--decode-repeats --decode-batches --skip-train --skip-decode --skip-ceiling --fp8)");
    }
    apply_threads(threads, 0);  // --threads, else COHORT_THREADS, else the cores given
    ModelConfig c = model_config_named(size);
    if (ceiling) {
      double g = gemm_ceiling_gflops(c, B * T, steps);
      std::printf(
          "{\"impl\":\"openblas\",\"bench\":\"gemm_ceiling\",\"model\":\"%s\",\"batch\":%ld,\"seq\":%ld,"
          "\"threads\":%d,\"gflops\":%.1f}\n",
          c.name.c_str(), (long)B, (long)T, thread_count(), g);
      std::fflush(stdout);
    }
    if (train) bench_train(c, B, T, steps, warmup, Compute::fp32);
    if (train && fp8) bench_train(c, B, T, steps, warmup, Compute::fp8);
    if (decode) bench_decode(c, batches, prompt, new_tokens, decode_repeats);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
