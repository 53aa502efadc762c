// GPU twin of the update step in kernels/cpu/adamw.h: AdamW (decoupled weight decay) on fp32
// master weights, device pointers, asynchronous on `stream`; launch errors are thrown as
// cohort::Error. The settings are the CPU's (cpu::AdamWSettings), turned into fp32 constants on
// the host exactly as the CPU does. The global gradient norm and clipping stay on the CPU side.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/adamw.h"

namespace cohort::cuda {

// param (n) -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param); m, v (n) updated in place;
// grad (n) is read only.
void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, const cpu::AdamWSettings& s,
                  cudaStream_t stream);

}  // namespace cohort::cuda
