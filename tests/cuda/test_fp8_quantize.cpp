// The GPU 1x128 E4M3 quantization equals the CPU codec bit for bit: codes and scales.
#include <cstring>

#include "kernels/cpu/fp8.h"
#include "kernels/cuda/fp8_quantize.h"
#include "kernels/random.h"
#include "tests/cuda/gpu.h"

namespace cohort {
namespace {

TEST(Fp8Quantize, GpuEqualsCpuBitForBit) {
  COHORT_SKIP_WITHOUT_GPU();
  const int64_t rows = 67, cols = 300;  // a partial tile at the end of every row
  std::vector<float> x((size_t)(rows * cols));
  Rng rng(4);
  for (auto& v : x) v = (float)(rng.normal() * std::exp(rng.uniform() * 8 - 4));
  x[5] = 0.f, x[7] = -0.f, x[9] = 1e30f, x[11] = std::nanf("");
  for (int64_t c = 0; c < 128; ++c) x[(size_t)(cols + c)] = 0.f;  // an all-zero tile: scale 1
  const int64_t tiles = (cols + 127) / 128;
  std::vector<uint8_t> q_cpu(x.size());
  std::vector<float> s_cpu((size_t)(rows * tiles));
  quantize_1x128(x.data(), rows, cols, DType::f8e4m3, q_cpu.data(), s_cpu.data());
  test::DeviceBuffer<float> dx(x), ds(rows * tiles);
  test::DeviceBuffer<uint8_t> dq(rows * cols);
  cuda::quantize_1x128(dx.ptr, rows, cols, dq.ptr, ds.ptr, nullptr);
  COHORT_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint8_t> q_gpu = dq.to_host();
  std::vector<float> s_gpu = ds.to_host();
  for (size_t i = 0; i < q_cpu.size(); ++i) ASSERT_EQ(q_gpu[i], q_cpu[i]) << "code " << i;
  for (size_t i = 0; i < s_cpu.size(); ++i) ASSERT_EQ(std::memcmp(&s_gpu[i], &s_cpu[i], 4), 0) << "scale " << i;
}

}  // namespace
}  // namespace cohort
