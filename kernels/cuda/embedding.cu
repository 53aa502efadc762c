// CUDA embedding: the forward copies one row per block; the backward sorts positions by token
// (CUB's stable radix sort) and gives each run of equal tokens to one block, which adds the
// run's gradient rows to the table row in position order.
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/embedding.h"

#include <cub/device/device_radix_sort.cuh>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {
namespace {

constexpr int kRowThreads = 128;
constexpr int kThreads = 256;

size_t round_up(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

template <int kVec>
__global__ void embedding_forward_kernel(float* __restrict__ out,             // (N, C)
                                         const int32_t* __restrict__ tokens,  // (N)
                                         const float* __restrict__ wte,       // (V, C)
                                         int64_t C) {
  const int64_t n = blockIdx.x;
  const auto* src = reinterpret_cast<const Pack<kVec>*>(wte + (int64_t)tokens[n] * C);
  auto* dst = reinterpret_cast<Pack<kVec>*>(out + n * C);
  for (int64_t p = threadIdx.x; p < C / kVec; p += blockDim.x) dst[p] = src[p];
}

__global__ void iota_kernel(int32_t* __restrict__ values, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) values[i] = int32_t(i);
}

// One block per sorted position; only the first position of each run of equal tokens works:
// it adds dout rows order[first .. end) to dwte[token], in that (increasing position) order.
template <int kVec>
__global__ void embedding_backward_runs_kernel(float* __restrict__ dwte,                   // (V, C) +=
                                               const float* __restrict__ dout,             // (N, C)
                                               const int32_t* __restrict__ sorted_tokens,  // (N)
                                               const int32_t* __restrict__ order,          // (N) positions
                                               int64_t N, int64_t C) {
  const int64_t first = blockIdx.x;
  const int32_t token = sorted_tokens[first];
  if (first > 0 && sorted_tokens[first - 1] == token) return;  // inside a run: its first block does it
  int64_t end = first + 1;
  while (end < N && sorted_tokens[end] == token) ++end;
  auto* row = reinterpret_cast<Pack<kVec>*>(dwte + (int64_t)token * C);
  for (int64_t p = threadIdx.x; p < C / kVec; p += blockDim.x) {
    Pack<kVec> acc = row[p];
    for (int64_t j = first; j < end; ++j) {
      const Pack<kVec> g = reinterpret_cast<const Pack<kVec>*>(dout + (int64_t)order[j] * C)[p];
#pragma unroll
      for (int k = 0; k < kVec; ++k) acc.v[k] += g.v[k];
    }
    row[p] = acc;
  }
}

void check_shape(const char* op, int64_t N, int64_t C) {
  COHORT_REQUIRE(N >= 0 && C >= 0, "cuda::" << op << ": bad shape (" << N << ", " << C << ")");
  COHORT_REQUIRE(N <= 0x7FFFFFFF, "cuda::" << op << ": too many tokens (" << N << ")");
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, cudaStream_t stream) {
  check_shape("embedding_forward", N, C);
  if (N == 0 || C == 0) return;
  if (C % 4 == 0 && aligned16(out) && aligned16(wte))
    embedding_forward_kernel<4><<<unsigned(N), kRowThreads, 0, stream>>>(out, tokens, wte, C);
  else
    embedding_forward_kernel<1><<<unsigned(N), kRowThreads, 0, stream>>>(out, tokens, wte, C);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C,
                        cudaStream_t stream) {
  check_shape("embedding_backward", N, C);
  if (N == 0 || C == 0) return;
  const int items = int(N);
  size_t sort_bytes = 0;
  COHORT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, tokens, static_cast<int32_t*>(nullptr),
                                                    static_cast<const int32_t*>(nullptr),
                                                    static_cast<int32_t*>(nullptr), items, 0, 32, stream));
  // One scratch allocation: sorted tokens, positions before and after the sort, the sort's own.
  const size_t index_bytes = round_up(sizeof(int32_t) * size_t(N));
  char* scratch = nullptr;
  COHORT_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&scratch), 3 * index_bytes + sort_bytes, stream));
  auto* sorted_tokens = reinterpret_cast<int32_t*>(scratch);
  auto* positions = reinterpret_cast<int32_t*>(scratch + index_bytes);
  auto* order = reinterpret_cast<int32_t*>(scratch + 2 * index_bytes);
  void* sort_scratch = scratch + 3 * index_bytes;

  iota_kernel<<<unsigned((N + kThreads - 1) / kThreads), kThreads, 0, stream>>>(positions, N);
  cudaError_t status = cudaGetLastError();
  // Radix sort is stable: equal tokens keep increasing positions, the CPU's summation order.
  if (status == cudaSuccess)
    status = cub::DeviceRadixSort::SortPairs(sort_scratch, sort_bytes, tokens, sorted_tokens, positions, order, items,
                                             0, 32, stream);
  if (status == cudaSuccess) {
    if (C % 4 == 0 && aligned16(dwte) && aligned16(dout))
      embedding_backward_runs_kernel<4>
          <<<unsigned(N), kRowThreads, 0, stream>>>(dwte, dout, sorted_tokens, order, N, C);
    else
      embedding_backward_runs_kernel<1>
          <<<unsigned(N), kRowThreads, 0, stream>>>(dwte, dout, sorted_tokens, order, N, C);
    status = cudaGetLastError();
  }
  // Freed before any throw, so a failed launch does not leak the scratch.
  COHORT_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  COHORT_CUDA_CHECK(status);
}

}  // namespace cohort::cuda
