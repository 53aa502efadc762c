// BF16 linear emulation: round the GEMM inputs, reuse the fp32 linear.
#include "kernels/cpu/bf16_linear.h"

#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/threads.h"
#include "kernels/cpu/linear.h"

namespace cohort {

namespace {
// Rounded copy in a per-thread buffer (slot keeps the inputs of one GEMM apart).
const float* rounded(const float* x, int64_t n, int slot) {
  thread_local std::vector<float> buffers[3];
  std::vector<float>& b = buffers[slot];
  if ((int64_t)b.size() < n) b.resize((size_t)n);
#pragma omp parallel for schedule(static) if (worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) b[i] = bf16_to_float(float_to_bf16(x[i]));
  return b.data();
}
}  // namespace

void bf16_linear_forward(float* y, const float* x, const float* w, const float* bias, int64_t N, int64_t in,
                         int64_t out) {
  cpu::linear_forward(y, rounded(x, N * in, 0), rounded(w, out * in, 1), bias, N, in, out);
}

void bf16_linear_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, const float* w,
                          int64_t N, int64_t in, int64_t out) {
  if (dbias) cpu::linear_backward<float>(nullptr, nullptr, dbias, dy, x, w, N, in, out);
  const float* dy_r = rounded(dy, N * out, 0);
  const float* x_r = dw ? rounded(x, N * in, 1) : nullptr;
  const float* w_r = dx ? rounded(w, out * in, 2) : nullptr;
  cpu::linear_backward<float>(dx, dw, nullptr, dy_r, x_r, w_r, N, in, out);
}

}  // namespace cohort
