// GPU twin of kernels/cpu/swiglu.h: SwiGLU gating of the Llama/Qwen2 MLP, out = silu(gate) * up with
// silu(g) = g * sigmoid(g). fp32 on device pointers, asynchronous on `stream`; launch errors are
// thrown as cohort::Error. Gradient contract, as on the CPU: dgate and dup are accumulated (+=).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cohort::cuda {

// out, gate, up: n elements each. out may be gate or up (elementwise, in place).
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n, cudaStream_t stream);

// dgate (n) +=, dup (n) +=; dout, gate, up (n).
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n,
                     cudaStream_t stream);

}  // namespace cohort::cuda
