// cuda::Gemm against the CPU references: BF16 against the fp32 GEMM of the bf16-rounded inputs, FP8
// block-scaled against the emulated FP8 linear (kernels/cpu/fp8_linear.h), FP8 per-tensor against the fp32 GEMM
// of the dequantized inputs; plus the scale-layout conversions bit for bit and the errors for bad shapes.
//
// Tolerance, per element: |gpu - cpu| <= rtol * |cpu| + acc * bound, where bound = |x| · |w|^T (the sum of
// the absolute products). `acc` covers the GPU's different summation order and precision, `rtol` the
// rounding of a bf16 output. Each check prints its worst error as a fraction of the tolerance (1 = at the
// limit) and records it as a test property, so the first runs on a GPU can tighten the numbers.
// cuda_runtime.h before tests/cuda/gpu.h: DeviceBuffer calls cudaMalloc(T**), the template overload that
// only cuda_runtime.h declares (cuda_runtime_api.h has just the void** one).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/fp8_linear.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cuda/gemm.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "tests/cuda/gpu.h"

namespace cohort {
namespace {

struct Shape {
  int64_t M, N, K;
};

std::string name_of(const char* mode, Shape s, const char* out) {
  return std::string(mode) + "_" + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) + "_" +
         out;
}

// (rows, cols) normal values whose magnitude jumps by powers of two, 2^-4 .. 2^4, from one block of
// (rows_per_block x 128) to the next: with 1 for activations and 128 for weights, every 1x128 tile or 128x128
// block gets its own scale, so a scale applied to the wrong tile or block is off by a large factor and shows
// far above the tolerances.
std::vector<float> random_matrix(int64_t rows, int64_t cols, int64_t rows_per_block, uint64_t seed) {
  Rng rng(seed);
  const int64_t col_blocks = (cols + 127) / 128, row_blocks = (rows + rows_per_block - 1) / rows_per_block;
  std::vector<float> magnitude((size_t)(row_blocks * col_blocks));
  for (auto& m : magnitude) m = std::ldexp(1.0f, (int)rng.below(9) - 4);
  std::vector<float> x((size_t)(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      x[(size_t)(r * cols + c)] =
          (float)rng.normal() * magnitude[(size_t)((r / rows_per_block) * col_blocks + c / 128)];
  return x;
}

// y (M, N) = x (M, K) · w (N, K)^T in fp32 with OpenBLAS.
std::vector<float> cpu_gemm(const std::vector<float>& x, const std::vector<float>& w, Shape s) {
  std::vector<float> y((size_t)(s.M * s.N));
  cpu::gemm(false, true, s.M, s.N, s.K, 1.f, x.data(), s.K, w.data(), s.K, 0.f, y.data(), s.N);
  return y;
}

std::vector<float> absolute(std::vector<float> v) {
  for (auto& e : v) e = std::fabs(e);
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> bits(v.size());
  float_to_bf16(v.data(), bits.data(), (int64_t)v.size());
  return bits;
}

std::vector<float> from_bf16(const std::vector<uint16_t>& bits) {
  std::vector<float> v(bits.size());
  bf16_to_float(bits.data(), v.data(), (int64_t)bits.size());
  return v;
}

struct Tolerance {
  double rtol;  // of |cpu|: the bf16 output's rounding
  double acc;   // of bound: summation order and the tensor cores' accumulation
};

// bf16 output: round to nearest even is within 2^-8 of the value; 2^-7 (one ulp) also admits truncation.
constexpr double kBf16OutputRtol = 1.0 / 128;
// fp32 output of bf16 inputs: the products are exact in fp32, only the sum's order differs; fp32 summation
// over K <= 1024 stays far below 1e-5 of the bound (sqrt(K) * 2^-24 typical, K * 2^-24 = 6e-5 worst case).
constexpr double kBf16Accumulation = 1e-5;
// FP8: Hopper's FP8 tensor cores keep about 14 bits while summing inside one 128-wide K block (DeepSeek-V3
// technical report, on FP8 training); the blocks are then scaled and summed in fp32. Estimated, not yet measured: about
// sqrt(128) * 2^-13 = 1.4e-3 of the bound when the truncation errors add up. Tighten after an H100 run.
constexpr double kFp8Accumulation = 4e-3;

void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu, const std::vector<float>& bound,
                  Shape s, Tolerance tol, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  double worst = 0, worst_of_bound = 0;
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double error = std::fabs((double)gpu[i] - (double)cpu[i]);
    const double allowed = tol.rtol * std::fabs((double)cpu[i]) + tol.acc * (double)bound[i];
    if (!(error <= allowed)) {  // NaN fails too
      if (bad++ == 0) first_bad = i;
    }
    if (allowed > 0) worst = std::max(worst, error / allowed);
    if (bound[i] > 0) worst_of_bound = std::max(worst_of_bound, error / (double)bound[i]);
  }
  std::printf("[ gemm     ] %-36s worst error %.3f of tolerance, %.3g of bound\n", what.c_str(), worst, worst_of_bound);
  ::testing::Test::RecordProperty(what + "_worst_of_tolerance", std::to_string(worst));
  ::testing::Test::RecordProperty(what + "_worst_of_bound", std::to_string(worst_of_bound));
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << gpu.size() << " elements out of tolerance; first at (row "
                     << (int64_t)first_bad / s.N << ", col " << (int64_t)first_bad % s.N << "): gpu " << gpu[first_bad]
                     << ", cpu " << cpu[first_bad] << ", bound " << bound[first_bad];
}

const std::vector<Shape> kShapes = {
    {256, 384, 512},  // multiples of 128
    {200, 336, 656},  // none is: short last tiles and blocks, ceil(K / 128) = 6 (padded to 8 for cuBLASLt)
};

TEST(CudaGemm, Bf16MatchesCpuOnRoundedInputs) {
  COHORT_SKIP_WITHOUT_GPU();
  cuda::Gemm gemm;
  std::vector<Shape> shapes = kShapes;
  shapes.push_back({67, 45, 100});  // odd sizes: no 16-byte aligned rows at all
  for (Shape s : shapes) {
    const auto x_bits = to_bf16(random_matrix(s.M, s.K, 1, 1)), w_bits = to_bf16(random_matrix(s.N, s.K, 128, 2));
    const auto x = from_bf16(x_bits), w = from_bf16(w_bits);
    const auto reference = cpu_gemm(x, w, s), bound = cpu_gemm(absolute(x), absolute(w), s);
    test::DeviceBuffer<uint16_t> dx(x_bits), dw(w_bits), dy_bf16(s.M * s.N);
    test::DeviceBuffer<float> dy_f32(s.M * s.N);
    gemm.bf16(dx.ptr, dw.ptr, dy_bf16.ptr, s.M, s.N, s.K, nullptr);
    gemm.bf16(dx.ptr, dw.ptr, dy_f32.ptr, s.M, s.N, s.K, nullptr);
    COHORT_CUDA_CHECK(cudaDeviceSynchronize());
    expect_close(dy_f32.to_host(), reference, bound, s, {0, kBf16Accumulation}, name_of("bf16", s, "f32"));
    expect_close(from_bf16(dy_bf16.to_host()), reference, bound, s, {kBf16OutputRtol, kBf16Accumulation},
                 name_of("bf16", s, "bf16"));
  }
}

// Runs the block-scaled GEMM on the codes and scales cohort's CPU quantizer makes (bit-identical to the GPU
// quantizer's) and compares with fp8_linear_forward, which quantizes the same inputs the same way.
void check_fp8_block_scaled(cuda::Gemm& gemm, Shape s) {
  const auto x = random_matrix(s.M, s.K, 1, 3), w = random_matrix(s.N, s.K, 128, 4);
  const int64_t k_tiles = (s.K + 127) / 128, n_blocks = (s.N + 127) / 128;
  std::vector<uint8_t> x_codes(x.size()), w_codes(w.size());
  std::vector<float> x_scales((size_t)(s.M * k_tiles)), w_scales((size_t)(n_blocks * k_tiles));
  quantize_1x128(x.data(), s.M, s.K, DType::f8e4m3, x_codes.data(), x_scales.data());
  quantize_128x128(w.data(), s.N, s.K, DType::f8e4m3, w_codes.data(), w_scales.data());
  std::vector<float> x_dequantized(x.size()), w_dequantized(w.size()), reference((size_t)(s.M * s.N));
  dequantize_1x128(x_codes.data(), x_scales.data(), s.M, s.K, DType::f8e4m3, x_dequantized.data());
  dequantize_128x128(w_codes.data(), w_scales.data(), s.N, s.K, DType::f8e4m3, w_dequantized.data());
  fp8_linear_forward(reference.data(), x.data(), w.data(), nullptr, s.M, s.K, s.N);
  const auto bound = cpu_gemm(absolute(x_dequantized), absolute(w_dequantized), s);

  test::DeviceBuffer<uint8_t> dx(x_codes), dw(w_codes);
  test::DeviceBuffer<float> dx_scales(x_scales), dw_scales(w_scales), dy_f32(s.M * s.N);
  test::DeviceBuffer<uint16_t> dy_bf16(s.M * s.N);
  gemm.fp8_block_scaled(dx.ptr, dx_scales.ptr, dw.ptr, dw_scales.ptr, dy_bf16.ptr, s.M, s.N, s.K, nullptr);
  gemm.fp8_block_scaled(dx.ptr, dx_scales.ptr, dw.ptr, dw_scales.ptr, dy_f32.ptr, s.M, s.N, s.K, nullptr);
  COHORT_CUDA_CHECK(cudaDeviceSynchronize());
  expect_close(dy_f32.to_host(), reference, bound, s, {0, kFp8Accumulation}, name_of("fp8_block", s, "f32"));
  expect_close(from_bf16(dy_bf16.to_host()), reference, bound, s, {kBf16OutputRtol, kFp8Accumulation},
               name_of("fp8_block", s, "bf16"));
}

TEST(CudaGemm, Fp8BlockScaledMatchesCpuEmulation) {
  COHORT_SKIP_WITHOUT_GPU();
  cuda::Gemm gemm;
  for (Shape s : kShapes) check_fp8_block_scaled(gemm, s);
}

// M = 67 leaves the activation scales' columns (67 floats apart) without 16-byte alignment. Whether cuBLASLt
// takes that is not documented where we looked: either the result is right or the error says plainly that
// there is no algorithm, naming the shape; a silently wrong result fails.
TEST(CudaGemm, Fp8BlockScaledOddRowCountIsRightOrRefusedClearly) {
  COHORT_SKIP_WITHOUT_GPU();
  cuda::Gemm gemm;
  try {
    check_fp8_block_scaled(gemm, {67, 384, 512});
  } catch (const Error& e) {
    const std::string what = e.what();
    std::printf("[ gemm     ] M = 67 refused: %s\n", what.c_str());
    EXPECT_NE(what.find("has no algorithm for FP8 block-scaled 67 x 384 x 512"), std::string::npos) << what;
  }
}

TEST(CudaGemm, Fp8PerTensorMatchesCpu) {
  COHORT_SKIP_WITHOUT_GPU();
  cuda::Gemm gemm;
  // One scale per tensor: scale = amax / 448, codes = e4m3(v / scale), as the block quantizers do per tile.
  auto quantize = [](const std::vector<float>& v, std::vector<uint8_t>& codes, std::vector<float>& dequantized) {
    float amax = 0;
    for (float e : v) amax = std::max(amax, std::fabs(e));
    float scale = amax / kE4M3Max;
    if (scale == 0) scale = 1;
    codes.resize(v.size()), dequantized.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      codes[i] = float_to_e4m3(v[i] / scale);
      dequantized[i] = e4m3_to_float(codes[i]) * scale;
    }
    return scale;
  };
  for (Shape s : kShapes) {
    std::vector<uint8_t> x_codes, w_codes;
    std::vector<float> x, w;
    const float x_scale = quantize(random_matrix(s.M, s.K, 1, 5), x_codes, x);
    const float w_scale = quantize(random_matrix(s.N, s.K, 128, 6), w_codes, w);
    const auto reference = cpu_gemm(x, w, s), bound = cpu_gemm(absolute(x), absolute(w), s);
    test::DeviceBuffer<uint8_t> dx(x_codes), dw(w_codes);
    test::DeviceBuffer<float> dx_scale(std::vector<float>{x_scale}), dw_scale(std::vector<float>{w_scale});
    test::DeviceBuffer<float> dy_f32(s.M * s.N);
    test::DeviceBuffer<uint16_t> dy_bf16(s.M * s.N);
    gemm.fp8_per_tensor(dx.ptr, dx_scale.ptr, dw.ptr, dw_scale.ptr, dy_bf16.ptr, s.M, s.N, s.K, nullptr);
    gemm.fp8_per_tensor(dx.ptr, dx_scale.ptr, dw.ptr, dw_scale.ptr, dy_f32.ptr, s.M, s.N, s.K, nullptr);
    COHORT_CUDA_CHECK(cudaDeviceSynchronize());
    expect_close(dy_f32.to_host(), reference, bound, s, {0, kFp8Accumulation}, name_of("fp8_tensor", s, "f32"));
    expect_close(from_bf16(dy_bf16.to_host()), reference, bound, s, {kBf16OutputRtol, kFp8Accumulation},
                 name_of("fp8_tensor", s, "bf16"));
  }
}

TEST(CudaGemm, BlockScaleLayoutsForCublasLt) {
  COHORT_SKIP_WITHOUT_GPU();
  const int64_t rows = 300, cols = 700;  // 6 K tiles: the weights' rows of blocks pad to 8
  const int64_t tiles = (cols + 127) / 128, row_blocks = (rows + 127) / 128;
  const int64_t stride = cuda::block_scales_128x128_cublaslt_stride(cols);
  ASSERT_EQ(stride, 8);
  ASSERT_EQ(cuda::block_scales_128x128_cublaslt_stride(512), 4);
  // Values that name their position.
  std::vector<float> activation((size_t)(rows * tiles)), weight((size_t)(row_blocks * tiles));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tiles; ++t) activation[(size_t)(r * tiles + t)] = (float)(r * 1000 + t);
  for (int64_t b = 0; b < row_blocks; ++b)
    for (int64_t t = 0; t < tiles; ++t) weight[(size_t)(b * tiles + t)] = (float)(b * 1000 + t);
  test::DeviceBuffer<float> da(activation), dw(weight), da_out(tiles * rows), dw_out(row_blocks * stride);
  cuda::block_scales_1x128_to_cublaslt(da.ptr, rows, cols, da_out.ptr, nullptr);
  cuda::block_scales_128x128_to_cublaslt(dw.ptr, rows, cols, dw_out.ptr, nullptr);
  COHORT_CUDA_CHECK(cudaDeviceSynchronize());
  const auto a = da_out.to_host(), w = dw_out.to_host();
  for (int64_t t = 0; t < tiles; ++t)
    for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(a[(size_t)(t * rows + r)], (float)(r * 1000 + t)) << r << " " << t;
  for (int64_t b = 0; b < row_blocks; ++b)
    for (int64_t t = 0; t < stride; ++t)
      ASSERT_EQ(w[(size_t)(b * stride + t)], t < tiles ? (float)(b * 1000 + t) : 1.0f) << b << " " << t;
}

TEST(CudaGemm, Fp8RefusesKNotMultipleOf16) {
  COHORT_SKIP_WITHOUT_GPU();
  cuda::Gemm gemm;
  const Shape s{64, 64, 100};
  test::DeviceBuffer<uint8_t> dx(s.M * s.K), dw(s.N * s.K);
  test::DeviceBuffer<float> scales(64), dy(s.M * s.N);
  auto expect_refused = [](auto&& call) {
    try {
      call();
      ADD_FAILURE() << "K = 100 was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("K = 100 must be a multiple of 16"), std::string::npos) << e.what();
    }
  };
  expect_refused(
      [&] { gemm.fp8_block_scaled(dx.ptr, scales.ptr, dw.ptr, scales.ptr, dy.ptr, s.M, s.N, s.K, nullptr); });
  expect_refused([&] { gemm.fp8_per_tensor(dx.ptr, scales.ptr, dw.ptr, scales.ptr, dy.ptr, s.M, s.N, s.K, nullptr); });
}

TEST(CudaGemm, PlansAreCachedPerShapeAndEmptySumsAreZero) {
  COHORT_SKIP_WITHOUT_GPU();
  cuda::Gemm gemm;
  const Shape s{128, 128, 128};
  test::DeviceBuffer<uint16_t> dx(std::vector<uint16_t>((size_t)(s.M * s.K), 0x3F80));  // bf16 1.0
  test::DeviceBuffer<uint16_t> dw(std::vector<uint16_t>((size_t)(s.N * s.K), 0x3F80));
  test::DeviceBuffer<float> dy(s.M * s.N);
  gemm.bf16(dx.ptr, dw.ptr, dy.ptr, s.M, s.N, s.K, nullptr);
  gemm.bf16(dx.ptr, dw.ptr, dy.ptr, s.M, s.N, s.K, nullptr);
  EXPECT_EQ(gemm.cached_plans(), 1u);
  gemm.bf16(dx.ptr, dw.ptr, dy.ptr, s.M, s.N, 64, nullptr);  // another K: another plan
  EXPECT_EQ(gemm.cached_plans(), 2u);
  COHORT_CUDA_CHECK(cudaDeviceSynchronize());
  for (float v : dy.to_host()) ASSERT_EQ(v, 64.0f);
  gemm.bf16(dx.ptr, dw.ptr, dy.ptr, s.M, s.N, 0, nullptr);  // K = 0: y = 0 without cuBLASLt
  COHORT_CUDA_CHECK(cudaDeviceSynchronize());
  for (float v : dy.to_host()) ASSERT_EQ(v, 0.0f);
  EXPECT_EQ(gemm.cached_plans(), 2u);
}

}  // namespace
}  // namespace cohort
