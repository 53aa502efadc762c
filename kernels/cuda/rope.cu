// CUDA RoPE: one thread per channel pair (n, head, i < head_dim/2), so consecutive threads touch
// consecutive channels in both halves of a head; the tables are read by position. An odd
// head_dim leaves its last channel alone, as on the CPU.
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/rope.h"

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rope_tables_kernel(float* __restrict__ cos_table,  // (max_positions, half)
                                   float* __restrict__ sin_table,  // (max_positions, half)
                                   int64_t max_positions, int64_t head_dim, double theta) {
  const int64_t half = head_dim / 2;
  const int64_t total = max_positions * half;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e / half, i = e % half;
    const double inv_freq = pow(theta, -2.0 * (double)i / (double)head_dim);
    const double angle = (double)p * inv_freq;
    double s, c;
    sincos(angle, &s, &c);
    cos_table[e] = (float)c;
    sin_table[e] = (float)s;
  }
}

// direction +1 rotates by the angle (forward), -1 back (backward).
__global__ void rope_rotate_kernel(float* __restrict__ x,                  // (N, heads, head_dim)
                                   const int32_t* __restrict__ positions,  // (N)
                                   const float* __restrict__ cos_table,    // (max_positions, half)
                                   const float* __restrict__ sin_table,    // (max_positions, half)
                                   int64_t heads, int64_t head_dim, int64_t total_pairs, float direction) {
  const int64_t half = head_dim / 2;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total_pairs;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % half;
    const int64_t row_head = e / half;  // n * heads + h
    const int64_t table = (int64_t)positions[row_head / heads] * half + i;
    const float c = cos_table[table], si = direction * sin_table[table];
    float* v = x + row_head * head_dim;
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * si;
    v[i + half] = x2 * c + x1 * si;
  }
}

void rotate(const char* op, float* x, const int32_t* positions, const float* cos, const float* sin, int64_t N,
            int64_t heads, int64_t head_dim, float direction, cudaStream_t stream) {
  COHORT_REQUIRE(N >= 0 && heads >= 0 && head_dim >= 0,
                 "cuda::" << op << ": bad shape (" << N << ", " << heads << ", " << head_dim << ")");
  const int64_t total_pairs = N * heads * (head_dim / 2);
  if (total_pairs == 0) return;
  rope_rotate_kernel<<<blocks_for(total_pairs, kThreads), kThreads, 0, stream>>>(x, positions, cos, sin, heads,
                                                                                 head_dim, total_pairs, direction);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void rope_tables(float* cos, float* sin, int64_t max_positions, int64_t head_dim, double theta, cudaStream_t stream) {
  COHORT_REQUIRE(max_positions >= 0 && head_dim >= 0,
                 "cuda::rope_tables: bad shape (" << max_positions << ", " << head_dim << ")");
  const int64_t total = max_positions * (head_dim / 2);
  if (total == 0) return;
  rope_tables_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream>>>(cos, sin, max_positions, head_dim, theta);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

void rope_forward(float* x, const int32_t* positions, const float* cos, const float* sin, int64_t N, int64_t heads,
                  int64_t head_dim, cudaStream_t stream) {
  rotate("rope_forward", x, positions, cos, sin, N, heads, head_dim, 1.0f, stream);
}

void rope_backward(float* dx, const int32_t* positions, const float* cos, const float* sin, int64_t N, int64_t heads,
                   int64_t head_dim, cudaStream_t stream) {
  rotate("rope_backward", dx, positions, cos, sin, N, heads, head_dim, -1.0f, stream);
}

}  // namespace cohort::cuda
