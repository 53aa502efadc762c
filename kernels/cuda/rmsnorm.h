// GPU twin of kernels/cpu/rmsnorm.h: RMSNorm (Llama/Qwen2), out = x / sqrt(mean(x^2) + eps) * weight,
// fp32 on device pointers, asynchronous on `stream`; launch errors are thrown as cohort::Error.
// Gradient contract, as on the CPU: dx and dweight are accumulated (+=); out and rstd are written (=).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cohort::cuda {

// out (N, C), rstd (N) saved for backward, x (N, C), weight (C).
// The sum of squares is accumulated in double, as on the CPU.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t N, int64_t C, float eps,
                     cudaStream_t stream);

// dx (N, C) +=, dweight (C) +=; dout (N, C), x, weight, rstd from forward.
// dweight is reduced without atomics (fixed groups of rows, then the groups in order), so it
// is the same bit for bit from run to run. Takes a scratch buffer from the stream-ordered
// allocator (cudaMallocAsync) of ceil(N / rows per group) * C floats, at most 1024 * C.
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      const float* rstd, int64_t N, int64_t C, cudaStream_t stream);

}  // namespace cohort::cuda
