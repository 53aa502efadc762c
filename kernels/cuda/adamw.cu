// CUDA AdamW update: an elementwise grid-stride loop over packs of four floats (16-byte
// accesses) where all four arrays are 16-byte aligned, single floats otherwise, with the CPU's
// fp32 expressions (IEEE sqrtf and division; nvcc may fuse a multiply-add, a last-bit difference).
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/adamw.h"

#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {
namespace {

constexpr int kThreads = 256;

// fp32 constants of one step, computed on the host as cpu::adamw_update computes them.
struct AdamWStep {
  float b1, b2, c1, c2, lr, eps, wd;
};

__device__ void adamw_element(float& param, float g, float& m, float& v, const AdamWStep& s) {
  const float mi = s.b1 * m + (1.0f - s.b1) * g;
  const float vi = s.b2 * v + (1.0f - s.b2) * g * g;
  m = mi;
  v = vi;
  param -= s.lr * ((mi * s.c1) / (sqrtf(vi * s.c2) + s.eps) + s.wd * param);
}

template <int kVec>
__global__ void adamw_update_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                                    float* __restrict__ v, int64_t n, AdamWStep s) {
  const int64_t packs = n / kVec;
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t p = thread; p < packs; p += stride) {
    Pack<kVec> pp = reinterpret_cast<Pack<kVec>*>(param)[p];
    Pack<kVec> mp = reinterpret_cast<Pack<kVec>*>(m)[p];
    Pack<kVec> vp = reinterpret_cast<Pack<kVec>*>(v)[p];
    const Pack<kVec> gp = reinterpret_cast<const Pack<kVec>*>(grad)[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) adamw_element(pp.v[k], gp.v[k], mp.v[k], vp.v[k], s);
    reinterpret_cast<Pack<kVec>*>(param)[p] = pp;
    reinterpret_cast<Pack<kVec>*>(m)[p] = mp;
    reinterpret_cast<Pack<kVec>*>(v)[p] = vp;
  }
  const int64_t tail = packs * kVec + thread;  // the n % kVec last elements
  if (tail < n) adamw_element(param[tail], grad[tail], m[tail], v[tail], s);
}

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const cpu::AdamWSettings& s,
                  cudaStream_t stream) {
  COHORT_REQUIRE(n >= 0, "cuda::adamw_update: bad size " << n);
  if (n == 0) return;
  const AdamWStep step{(float)s.beta1,
                       (float)s.beta2,
                       (float)(1.0 / (1.0 - std::pow(s.beta1, (double)s.step))),
                       (float)(1.0 / (1.0 - std::pow(s.beta2, (double)s.step))),
                       (float)s.lr,
                       (float)s.eps,
                       (float)s.weight_decay};
  if (aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v))
    adamw_update_kernel<4><<<blocks_for(n / 4, kThreads), kThreads, 0, stream>>>(param, grad, m, v, n, step);
  else
    adamw_update_kernel<1><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(param, grad, m, v, n, step);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cohort::cuda
