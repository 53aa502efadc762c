// GPU twin of kernels/cpu/embedding.h: token embedding lookup and its backward (scatter-add into
// the table). fp32 on device pointers, asynchronous on `stream`; launch errors are thrown as
// cohort::Error. Gradient contract, as on the CPU: dwte is accumulated (+=).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cohort::cuda {

// out (N, C) = wte[tokens[n]]. Token ids must already be checked against V (not checked here).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int64_t N, int64_t C, cudaStream_t stream);

// dwte (V, C) += scatter of dout (N, C) by token. No atomics: the positions are stably sorted by
// token, and each distinct token's row adds its positions' gradients in increasing position
// order, the CPU's order, so the result equals the CPU's bit for bit and is deterministic.
// Takes scratch (the sort's) from the stream-ordered allocator (cudaMallocAsync).
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int64_t N, int64_t C,
                        cudaStream_t stream);

}  // namespace cohort::cuda
