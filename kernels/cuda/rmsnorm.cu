// CUDA RMSNorm: one block per row for the forward and for dx (block-wide double reductions via
// warp shuffles), and a two-stage deterministic reduction over rows for dweight.
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/rmsnorm.h"

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {
namespace {

constexpr int kRowThreads = 256;
// dweight: a block covers kColumnTile columns x kRowLanes row lanes; a group of rows ends in
// one partial per column.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;
constexpr int64_t kMinRowsPerGroup = 64;
constexpr int64_t kMaxGroups = 1024;

template <int kVec>
__global__ void rmsnorm_forward_kernel(float* __restrict__ out,           // (N, C)
                                       float* __restrict__ rstd,          // (N)
                                       const float* __restrict__ x,       // (N, C)
                                       const float* __restrict__ weight,  // (C)
                                       int64_t C, float eps) {
  __shared__ double shared[kWarp];
  const int64_t n = blockIdx.x;
  const auto* xn = reinterpret_cast<const Pack<kVec>*>(x + n * C);
  const auto* w = reinterpret_cast<const Pack<kVec>*>(weight);
  auto* on = reinterpret_cast<Pack<kVec>*>(out + n * C);
  const int64_t packs = C / kVec;

  double sum = 0.0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = xn[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) sum += (double)a.v[k] * a.v[k];
  }
  sum = block_reduce(sum, 0.0, Sum{}, shared);
  const float r = (float)(1.0 / sqrt(sum / (double)C + (double)eps));
  if (threadIdx.x == 0) rstd[n] = r;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = xn[p], wp = w[p];
    Pack<kVec> o;
#pragma unroll
    for (int k = 0; k < kVec; ++k) o.v[k] = a.v[k] * r * wp.v[k];
    on[p] = o;
  }
}

// dx += r * w * g - x * r^3 / C * sum(w * g * x), one block per row.
template <int kVec>
__global__ void rmsnorm_backward_dx_kernel(float* __restrict__ dx,            // (N, C) +=
                                           const float* __restrict__ dout,    // (N, C)
                                           const float* __restrict__ x,       // (N, C)
                                           const float* __restrict__ weight,  // (C)
                                           const float* __restrict__ rstd,    // (N)
                                           int64_t C) {
  __shared__ double shared[kWarp];
  const int64_t n = blockIdx.x;
  const auto* xn = reinterpret_cast<const Pack<kVec>*>(x + n * C);
  const auto* gn = reinterpret_cast<const Pack<kVec>*>(dout + n * C);
  const auto* w = reinterpret_cast<const Pack<kVec>*>(weight);
  auto* dn = reinterpret_cast<Pack<kVec>*>(dx + n * C);
  const int64_t packs = C / kVec;
  const float r = rstd[n];

  double dot = 0.0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = xn[p], g = gn[p], wp = w[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) dot += (double)g.v[k] * wp.v[k] * a.v[k];
  }
  dot = block_reduce(dot, 0.0, Sum{}, shared);
  const float k_row = (float)(dot * r * r * r / (double)C);
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = xn[p], g = gn[p], wp = w[p];
    Pack<kVec> d = dn[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) d.v[k] += r * wp.v[k] * g.v[k] - a.v[k] * k_row;
    dn[p] = d;
  }
}

// partials[group, c] = sum over the group's rows n of dout[n, c] * x[n, c] * rstd[n], in fp32
// like the CPU's per-thread partials. Block (kColumnTile, kRowLanes), grid (column tiles, groups);
// lane y takes rows y, y + kRowLanes, ... of the group, then the lanes are added in order.
__global__ void rmsnorm_dweight_partials_kernel(float* __restrict__ partials,    // (groups, C)
                                                const float* __restrict__ dout,  // (N, C)
                                                const float* __restrict__ x,     // (N, C)
                                                const float* __restrict__ rstd,  // (N)
                                                int64_t N, int64_t C, int64_t rows_per_group) {
  __shared__ float lanes[kRowLanes][kColumnTile + 1];
  const int64_t c = int64_t(blockIdx.x) * kColumnTile + threadIdx.x;
  const int64_t group = blockIdx.y;
  const int64_t first = group * rows_per_group;
  const int64_t last = first + rows_per_group < N ? first + rows_per_group : N;
  float acc = 0.0f;
  if (c < C)
    for (int64_t n = first + threadIdx.y; n < last; n += kRowLanes) acc += dout[n * C + c] * x[n * C + c] * rstd[n];
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float sum = 0.0f;
#pragma unroll
    for (int y = 0; y < kRowLanes; ++y) sum += lanes[y][threadIdx.x];
    partials[group * C + c] = sum;
  }
}

// dweight[c] += sum of the groups' partials, in group order.
__global__ void rmsnorm_dweight_finish_kernel(float* __restrict__ dweight,         // (C) +=
                                              const float* __restrict__ partials,  // (groups, C)
                                              int64_t groups, int64_t C) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sum = 0.0f;
  for (int64_t g = 0; g < groups; ++g) sum += partials[g * C + c];
  dweight[c] += sum;
}

void check_shape(const char* op, int64_t N, int64_t C) {
  COHORT_REQUIRE(N >= 0 && C >= 0, "cuda::" << op << ": bad shape (" << N << ", " << C << ")");
  COHORT_REQUIRE(N <= 0x7FFFFFFF, "cuda::" << op << ": too many rows (" << N << ")");
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t N, int64_t C, float eps,
                     cudaStream_t stream) {
  check_shape("rmsnorm_forward", N, C);
  if (N == 0) return;
  const bool vec = C % 4 == 0 && aligned16(out) && aligned16(x) && aligned16(weight);
  if (vec)
    rmsnorm_forward_kernel<4><<<unsigned(N), kRowThreads, 0, stream>>>(out, rstd, x, weight, C, eps);
  else
    rmsnorm_forward_kernel<1><<<unsigned(N), kRowThreads, 0, stream>>>(out, rstd, x, weight, C, eps);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      const float* rstd, int64_t N, int64_t C, cudaStream_t stream) {
  check_shape("rmsnorm_backward", N, C);
  if (N == 0 || C == 0) return;
  const bool vec = C % 4 == 0 && aligned16(dx) && aligned16(dout) && aligned16(x) && aligned16(weight);
  if (vec)
    rmsnorm_backward_dx_kernel<4><<<unsigned(N), kRowThreads, 0, stream>>>(dx, dout, x, weight, rstd, C);
  else
    rmsnorm_backward_dx_kernel<1><<<unsigned(N), kRowThreads, 0, stream>>>(dx, dout, x, weight, rstd, C);
  COHORT_CUDA_CHECK(cudaGetLastError());

  // Groups depend only on N, so the summation order (and the result) is fixed for a shape.
  int64_t rows_per_group = (N + kMaxGroups - 1) / kMaxGroups;
  if (rows_per_group < kMinRowsPerGroup) rows_per_group = kMinRowsPerGroup;
  const int64_t groups = (N + rows_per_group - 1) / rows_per_group;
  const int64_t column_tiles = (C + kColumnTile - 1) / kColumnTile;
  COHORT_REQUIRE(column_tiles <= 0x7FFFFFFF, "cuda::rmsnorm_backward: too many columns (" << C << ")");
  float* partials = nullptr;
  COHORT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partials), sizeof(float) * size_t(groups * C), stream));
  rmsnorm_dweight_partials_kernel<<<dim3(unsigned(column_tiles), unsigned(groups)), dim3(kColumnTile, kRowLanes), 0,
                                    stream>>>(partials, dout, x, rstd, N, C, rows_per_group);
  cudaError_t launched = cudaGetLastError();
  constexpr int kFinishThreads = 256;
  if (launched == cudaSuccess) {
    rmsnorm_dweight_finish_kernel<<<unsigned((C + kFinishThreads - 1) / kFinishThreads), kFinishThreads, 0, stream>>>(
        dweight, partials, groups, C);
    launched = cudaGetLastError();
  }
  // Freed before any throw, so a failed launch does not leak the scratch.
  COHORT_CUDA_CHECK(cudaFreeAsync(partials, stream));
  COHORT_CUDA_CHECK(launched);
}

}  // namespace cohort::cuda
