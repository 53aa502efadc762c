// GPU GEMM throughput through cuda::Gemm: TFLOP/s of BF16, FP8 block-scaled (DeepSeek-V3 scales) and FP8
// per-tensor at 4096^3 and at the forward GEMMs of bench-124m with 8192 tokens, each beside the H100 SXM dense
// peak for its precision. One JSON object per line on stdout; "skipped: no GPU" and exit 0 without a GPU.
// Usage: bench_gemm_cuda [--repeats N] [--out bf16|f32]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "model/config.h"

using namespace cohort;

namespace {

// H100 SXM dense tensor-core peaks (NVIDIA's datasheet, without sparsity), TFLOP/s.
constexpr double kPeakBf16 = 989.0, kPeakFp8 = 1979.0;

struct Shape {
  std::string name;
  int64_t M, N, K;
};

template <class T>
struct Device {
  T* ptr = nullptr;
  explicit Device(size_t n) {
    void* p = nullptr;  // cuda_runtime_api.h has only the void** cudaMalloc
    COHORT_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * std::max<size_t>(n, 1)));
    ptr = static_cast<T*>(p);
  }
  ~Device() { cudaFree(ptr); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  void upload(const std::vector<T>& host) {
    COHORT_CUDA_CHECK(cudaMemcpy(ptr, host.data(), sizeof(T) * host.size(), cudaMemcpyHostToDevice));
  }
};

struct Timing {
  double best_ms, median_ms;
};

// Warm-up (plan creation, clocks), then `repeats` calls, each between its own pair of CUDA events.
template <class Call>
Timing time_gpu(Call&& call, int repeats, cudaStream_t stream) {
  for (int i = 0; i < 3; ++i) call();
  cudaEvent_t start, stop;
  COHORT_CUDA_CHECK(cudaEventCreate(&start));
  COHORT_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    COHORT_CUDA_CHECK(cudaEventRecord(start, stream));
    call();
    COHORT_CUDA_CHECK(cudaEventRecord(stop, stream));
    COHORT_CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0;
    COHORT_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    ms.push_back(elapsed);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

// Random operands, made once at the largest size any shape needs and shared by all shapes.
struct Operands {
  Device<uint16_t> x_bf16, w_bf16;
  Device<uint8_t> x_fp8, w_fp8;
  Device<float> x_scales, w_scales, x_scale, w_scale;
  Device<uint8_t> y;  // bf16 or fp32 output, as bytes

  Operands(size_t x_elems, size_t w_elems, size_t x_scale_count, size_t w_scale_count, size_t y_bytes)
      : x_bf16(x_elems),
        w_bf16(w_elems),
        x_fp8(x_elems),
        w_fp8(w_elems),
        x_scales(x_scale_count),
        w_scales(w_scale_count),
        x_scale(1),
        w_scale(1),
        y(y_bytes) {
    Rng rng(7);
    auto fill = [&](size_t n, auto& bf16, auto& fp8) {
      std::vector<float> v(n);
      for (auto& e : v) e = (float)rng.normal();
      std::vector<uint16_t> bits(n);
      float_to_bf16(v.data(), bits.data(), (int64_t)n);
      bf16.upload(bits);
      std::vector<uint8_t> codes(n);
      for (size_t i = 0; i < n; ++i) codes[i] = float_to_e4m3(v[i] * 64.0f);  // ~ amax / 448 scaling
      fp8.upload(codes);
    };
    fill(x_elems, x_bf16, x_fp8);
    fill(w_elems, w_bf16, w_fp8);
    x_scales.upload(std::vector<float>(x_scale_count, 1.0f / 64));
    w_scales.upload(std::vector<float>(w_scale_count, 1.0f / 64));
    x_scale.upload({1.0f / 64});
    w_scale.upload({1.0f / 64});
  }
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n') ? ' ' : c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 20;
  bool f32_out = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--out") && i + 1 < argc) {
      f32_out = !std::strcmp(argv[++i], "f32");
    } else {
      std::fprintf(stderr, "usage: bench_gemm_cuda [--repeats N] [--out bf16|f32]\n");
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: no GPU\n");
    return 0;
  }
  cudaDeviceProp properties{};
  COHORT_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
  const std::string gpu = json_escape(properties.name);

  // The forward GEMMs of one bench-124m layer and its head (model/config.cpp), 8192 tokens.
  const ModelConfig c = model_config_named("bench-124m");
  const int64_t tokens = 8192, hd = c.resolved_head_dim();
  const std::vector<Shape> shapes = {
      {"square_4096", 4096, 4096, 4096},                           // the usual headline figure
      {"qkv", tokens, (c.heads + 2 * c.kv_heads) * hd, c.hidden},  // fused q, k, v projection
      {"o", tokens, c.hidden, c.heads * hd},                       // attention output
      {"gate_or_up", tokens, c.intermediate, c.hidden},            // each of the two MLP inputs
      {"down", tokens, c.hidden, c.intermediate},                  // MLP output
      {"lm_head", tokens, c.vocab, c.hidden},                      // logits
  };
  size_t x_elems = 0, w_elems = 0, x_scale_count = 0, w_scale_count = 0, y_elems = 0;
  for (const auto& s : shapes) {
    const int64_t k_tiles = (s.K + 127) / 128;
    x_elems = std::max(x_elems, size_t(s.M * s.K));
    w_elems = std::max(w_elems, size_t(s.N * s.K));
    x_scale_count = std::max(x_scale_count, size_t(s.M * k_tiles));
    w_scale_count = std::max(w_scale_count, size_t((s.N + 127) / 128 * k_tiles));
    y_elems = std::max(y_elems, size_t(s.M * s.N));
  }
  Operands op(x_elems, w_elems, x_scale_count, w_scale_count, y_elems * (f32_out ? 4 : 2));
  cuda::Gemm gemm;
  cudaStream_t stream = nullptr;
  const char* out_name = f32_out ? "f32" : "bf16";
  int failures = 0;

  for (const auto& s : shapes) {
    const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
    double bf16_median_ms = 0;
    for (const char* mode : {"bf16", "fp8_block_scaled", "fp8_per_tensor"}) {
      const bool is_bf16 = !std::strcmp(mode, "bf16"), block = !std::strcmp(mode, "fp8_block_scaled");
      auto call = [&] {
        float* y32 = reinterpret_cast<float*>(op.y.ptr);
        uint16_t* y16 = reinterpret_cast<uint16_t*>(op.y.ptr);
        if (is_bf16) {
          f32_out ? gemm.bf16(op.x_bf16.ptr, op.w_bf16.ptr, y32, s.M, s.N, s.K, stream)
                  : gemm.bf16(op.x_bf16.ptr, op.w_bf16.ptr, y16, s.M, s.N, s.K, stream);
        } else if (block) {  // includes rearranging the scales into cuBLASLt's layout, as every call does
          f32_out ? gemm.fp8_block_scaled(op.x_fp8.ptr, op.x_scales.ptr, op.w_fp8.ptr, op.w_scales.ptr, y32, s.M, s.N,
                                          s.K, stream)
                  : gemm.fp8_block_scaled(op.x_fp8.ptr, op.x_scales.ptr, op.w_fp8.ptr, op.w_scales.ptr, y16, s.M, s.N,
                                          s.K, stream);
        } else {
          f32_out ? gemm.fp8_per_tensor(op.x_fp8.ptr, op.x_scale.ptr, op.w_fp8.ptr, op.w_scale.ptr, y32, s.M, s.N, s.K,
                                        stream)
                  : gemm.fp8_per_tensor(op.x_fp8.ptr, op.x_scale.ptr, op.w_fp8.ptr, op.w_scale.ptr, y16, s.M, s.N, s.K,
                                        stream);
        }
      };
      const double peak = is_bf16 ? kPeakBf16 : kPeakFp8;
      std::printf(
          "{\"bench\":\"gemm_cuda\",\"gpu\":\"%s\",\"shape\":\"%s\",\"M\":%lld,\"N\":%lld,\"K\":%lld,"
          "\"mode\":\"%s\",\"out\":\"%s\"",
          gpu.c_str(), s.name.c_str(), (long long)s.M, (long long)s.N, (long long)s.K, mode, out_name);
      try {
        const Timing t = time_gpu(call, repeats, stream);
        const double tflops_best = flops / (t.best_ms * 1e-3) / 1e12;
        const double tflops_median = flops / (t.median_ms * 1e-3) / 1e12;
        std::printf(
            ",\"best_ms\":%.4f,\"median_ms\":%.4f,\"tflops_best\":%.1f,\"tflops_median\":%.1f,"
            "\"h100_dense_peak_tflops\":%.0f,\"fraction_of_peak\":%.3f",
            t.best_ms, t.median_ms, tflops_best, tflops_median, peak, tflops_median / peak);
        if (is_bf16)
          bf16_median_ms = t.median_ms;
        else if (bf16_median_ms > 0)
          std::printf(",\"speedup_vs_bf16\":%.2f", bf16_median_ms / t.median_ms);
      } catch (const Error& e) {
        ++failures;
        std::printf(",\"error\":\"%s\"", json_escape(e.what()).c_str());
        (void)cudaGetLastError();  // clear a sticky launch error so the next mode gets its own verdict
      }
      std::printf("}\n");
      std::fflush(stdout);
    }
  }
  if (failures) std::fprintf(stderr, "bench_gemm_cuda: %d of %zu runs failed\n", failures, shapes.size() * 3);
  return failures ? 1 : 0;
}
