// CUDA SwiGLU: elementwise grid-stride loops over packs of four floats (one 16-byte access
// each) where every pointer is 16-byte aligned, single floats otherwise; the same expressions
// as the CPU, with IEEE expf and division.
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/swiglu.h"

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {
namespace {

constexpr int kThreads = 256;

__device__ float swiglu_value(float g, float u) {
  return g / (1.0f + expf(-g)) * u;
}

// d silu(g)/dg = s + g s (1 - s), s = sigmoid(g).
__device__ void swiglu_gradient(float& dgate, float& dup, float dout, float g, float u) {
  const float s = 1.0f / (1.0f + expf(-g));
  const float silu = g * s;
  dgate += dout * u * (s + silu * (1.0f - s));
  dup += dout * silu;
}

// Packs [0, n / kVec) by the grid-stride loop; the n % kVec tail elements by the first threads.
template <int kVec>
__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t n) {
  const int64_t packs = n / kVec;
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = thread; p < packs; p += stride) {
    const Pack<kVec> g = reinterpret_cast<const Pack<kVec>*>(gate)[p];
    const Pack<kVec> u = reinterpret_cast<const Pack<kVec>*>(up)[p];
    Pack<kVec> o;
#pragma unroll
    for (int k = 0; k < kVec; ++k) o.v[k] = swiglu_value(g.v[k], u.v[k]);
    reinterpret_cast<Pack<kVec>*>(out)[p] = o;
  }
  const int64_t tail = packs * kVec + thread;
  if (tail < n) out[tail] = swiglu_value(gate[tail], up[tail]);
}

template <int kVec>
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                       int64_t n) {
  const int64_t packs = n / kVec;
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = thread; p < packs; p += stride) {
    const Pack<kVec> d = reinterpret_cast<const Pack<kVec>*>(dout)[p];
    const Pack<kVec> g = reinterpret_cast<const Pack<kVec>*>(gate)[p];
    const Pack<kVec> u = reinterpret_cast<const Pack<kVec>*>(up)[p];
    Pack<kVec> dg = reinterpret_cast<const Pack<kVec>*>(dgate)[p];
    Pack<kVec> du = reinterpret_cast<const Pack<kVec>*>(dup)[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) swiglu_gradient(dg.v[k], du.v[k], d.v[k], g.v[k], u.v[k]);
    reinterpret_cast<Pack<kVec>*>(dgate)[p] = dg;
    reinterpret_cast<Pack<kVec>*>(dup)[p] = du;
  }
  const int64_t tail = packs * kVec + thread;
  if (tail < n) swiglu_gradient(dgate[tail], dup[tail], dout[tail], gate[tail], up[tail]);
}

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t stream) {
  COHORT_REQUIRE(n >= 0, "cuda::swiglu_forward: bad size " << n);
  if (n == 0) return;
  if (aligned16(out) && aligned16(gate) && aligned16(up))
    swiglu_forward_kernel<4><<<blocks_for(n / 4, kThreads), kThreads, 0, stream>>>(out, gate, up, n);
  else
    swiglu_forward_kernel<1><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(out, gate, up, n);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                     cudaStream_t stream) {
  COHORT_REQUIRE(n >= 0, "cuda::swiglu_backward: bad size " << n);
  if (n == 0) return;
  if (aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up))
    swiglu_backward_kernel<4><<<blocks_for(n / 4, kThreads), kThreads, 0, stream>>>(dgate, dup, dout, gate, up, n);
  else
    swiglu_backward_kernel<1><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(dgate, dup, dout, gate, up, n);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cohort::cuda
