// CUDA log-softmax over the vocabulary, one block per row of logits: a max pass and an exp-sum
// pass (the CPU's two passes, sums in double, block reductions with warp shuffles in a fixed
// order), and an elementwise backward. Rows are read as 16-byte packs where V % 4 == 0 and the
// pointers are aligned.
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/logprob.h"

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/error.h"

namespace cohort::cuda {
namespace {

constexpr int kRowThreads = 1024;  // rows are long (V is 32k..152k): many loads in flight per row

template <int kVec>
__global__ void __launch_bounds__(kRowThreads) logprob_forward_kernel(float* __restrict__ logprob,  // (rows)
                                                                      float* __restrict__ entropy,  // (rows) or null
                                                                      float* __restrict__ lse,      // (rows)
                                                                      const float* __restrict__ logits,     // (rows, V)
                                                                      const int32_t* __restrict__ targets,  // (rows)
                                                                      int64_t V) {
  __shared__ float shared_max[kWarp];
  __shared__ double shared_sum[kWarp];
  const int64_t n = blockIdx.x;
  const int32_t target = targets[n];
  if (target < 0) {  // padding: the whole block leaves together
    if (threadIdx.x == 0) {
      logprob[n] = 0.0f;
      lse[n] = 0.0f;
      if (entropy) entropy[n] = 0.0f;
    }
    return;
  }
  const float* z = logits + n * V;
  const auto* zp = reinterpret_cast<const Pack<kVec>*>(z);
  const int64_t packs = V / kVec;

  float mx = -INFINITY;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = zp[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) mx = fmaxf(mx, a.v[k]);
  }
  mx = block_reduce(mx, -INFINITY, Max{}, shared_max);

  // entropy = lse - E_p[z]; both sums share the exponentials.
  double sum = 0.0, sum_z = 0.0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = zp[p];
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const float shifted = a.v[k] - mx;
      const float e = expf(shifted);
      sum += e;
      sum_z += (double)e * shifted;
    }
  }
  sum = block_reduce(sum, 0.0, Sum{}, shared_sum);
  sum_z = block_reduce(sum_z, 0.0, Sum{}, shared_sum);
  if (threadIdx.x == 0) {
    const double log_sum = log(sum);
    const float l = mx + (float)log_sum;
    lse[n] = l;
    logprob[n] = z[target] - l;
    if (entropy) entropy[n] = (float)(log_sum - sum_z / sum);
  }
}

// d logprob / dz_j = [j == t] - p_j;  d entropy / dz_j = -p_j (log p_j + entropy).
__device__ float logprob_gradient(float z, int64_t j, int32_t target, float l, float ent, float g_lp, float g_ent) {
  const float logp = z - l;
  const float p = expf(logp);
  float d = -g_lp * p - g_ent * p * (logp + ent);
  if (j == target) d += g_lp;
  return d;
}

// No __restrict__ on dlogits and logits: they may be the same buffer.
template <int kVec>
__global__ void __launch_bounds__(kRowThreads)
    logprob_backward_kernel(float* dlogits,                       // (rows, V)
                            const float* __restrict__ dlogprob,   // (rows) or null
                            const float* __restrict__ dentropy,   // (rows) or null
                            const float* logits,                  // (rows, V)
                            const int32_t* __restrict__ targets,  // (rows)
                            const float* __restrict__ lse,        // (rows)
                            const float* __restrict__ entropy,    // (rows), null when dentropy is
                            int64_t V) {
  const int64_t n = blockIdx.x;
  const int32_t target = targets[n];
  auto* dp = reinterpret_cast<Pack<kVec>*>(dlogits + n * V);
  const auto* zp = reinterpret_cast<const Pack<kVec>*>(logits + n * V);
  const int64_t packs = V / kVec;
  if (target < 0) {  // padding: no gradient
    Pack<kVec> zero;
#pragma unroll
    for (int k = 0; k < kVec; ++k) zero.v[k] = 0.0f;
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) dp[p] = zero;
    return;
  }
  const float g_lp = dlogprob ? dlogprob[n] : 0.0f;
  const float g_ent = dentropy ? dentropy[n] : 0.0f;
  const float l = lse[n], ent = dentropy ? entropy[n] : 0.0f;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    const Pack<kVec> a = zp[p];
    Pack<kVec> d;
#pragma unroll
    for (int k = 0; k < kVec; ++k) d.v[k] = logprob_gradient(a.v[k], p * kVec + k, target, l, ent, g_lp, g_ent);
    dp[p] = d;
  }
}

void check_shape(const char* op, int64_t rows, int64_t V) {
  COHORT_REQUIRE(rows >= 0 && V >= 0, "cuda::" << op << ": bad shape (" << rows << ", " << V << ")");
  COHORT_REQUIRE(rows <= 0x7FFFFFFF, "cuda::" << op << ": too many rows (" << rows << ")");
}

}  // namespace

void logprob_forward(float* logprob, float* entropy, float* lse, const float* logits, const int32_t* targets,
                     int64_t rows, int64_t V, cudaStream_t stream) {
  check_shape("logprob_forward", rows, V);
  if (rows == 0) return;
  if (V % 4 == 0 && aligned16(logits))
    logprob_forward_kernel<4><<<unsigned(rows), kRowThreads, 0, stream>>>(logprob, entropy, lse, logits, targets, V);
  else
    logprob_forward_kernel<1><<<unsigned(rows), kRowThreads, 0, stream>>>(logprob, entropy, lse, logits, targets, V);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

void logprob_backward(float* dlogits, const float* dlogprob, const float* dentropy, const float* logits,
                      const int32_t* targets, const float* lse, const float* entropy, int64_t rows, int64_t V,
                      cudaStream_t stream) {
  check_shape("logprob_backward", rows, V);
  COHORT_REQUIRE(!dentropy || entropy, "cuda::logprob_backward: dentropy given without the forward's entropy");
  if (rows == 0 || V == 0) return;
  if (V % 4 == 0 && aligned16(dlogits) && aligned16(logits))
    logprob_backward_kernel<4>
        <<<unsigned(rows), kRowThreads, 0, stream>>>(dlogits, dlogprob, dentropy, logits, targets, lse, entropy, V);
  else
    logprob_backward_kernel<1>
        <<<unsigned(rows), kRowThreads, 0, stream>>>(dlogits, dlogprob, dentropy, logits, targets, lse, entropy, V);
  COHORT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cohort::cuda
