// SwiGLU forward/backward, elementwise.
#include "kernels/cpu/swiglu.h"

#include <cmath>

#include "kernels/threads.h"
namespace cohort::cpu {

template <typename T>
void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    T g = gate[i];
    out[i] = g / (T(1) + std::exp(-g)) * up[i];
  }
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  // d silu(g)/dg = s + g s (1 - s), s = sigmoid(g).
#pragma omp parallel for simd schedule(static) if (worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    T g = gate[i];
    T s = T(1) / (T(1) + std::exp(-g));
    T silu = g * s;
    dgate[i] += dout[i] * up[i] * (s + silu * (T(1) - s));
    dup[i] += dout[i] * silu;
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*, int64_t);

}  // namespace cohort::cpu
