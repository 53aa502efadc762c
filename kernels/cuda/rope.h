// GPU twin of kernels/cpu/rope.h: rotary position embedding in the Llama/Qwen2 ("rotate_half")
// convention, channel i paired with channel i + head_dim/2, angle = pos * theta^(-2i/head_dim).
// fp32 on device pointers, asynchronous on `stream`; launch errors are thrown as cohort::Error.
// Both directions work in place: backward rotates the output gradient back (it is written, not
// accumulated, exactly as on the CPU).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cohort::cuda {

// cos, sin (max_positions, head_dim/2), computed in double on the device then rounded to fp32.
// CUDA's double pow/sin/cos are within 2 ulp (of double), so an entry can differ from the
// CPU table by one fp32 ulp where the double value lies next to a rounding boundary.
// These are the unscaled tables: for a config with rope_scaling (linear, llama3), build them on
// the CPU from rope_inverse_frequencies (model/config.h) with cpu::rope_tables and copy them over.
void rope_tables(float* cos, float* sin, int64_t max_positions, int64_t head_dim, double theta, cudaStream_t stream);

// x (N, heads, head_dim) rotated in place by positions (N), each in [0, max_positions) of the tables.
void rope_forward(float* x, const int32_t* positions, const float* cos, const float* sin, int64_t N, int64_t heads,
                  int64_t head_dim, cudaStream_t stream);

// dx (N, heads, head_dim): the gradient w.r.t. the output, turned in place into the gradient
// w.r.t. the input (the inverse rotation).
void rope_backward(float* dx, const int32_t* positions, const float* cos, const float* sin, int64_t N, int64_t heads,
                   int64_t head_dim, cudaStream_t stream);

}  // namespace cohort::cuda
