// Linear forward/backward as three GEMMs (forward, input-gradient, weight-gradient).
#include "kernels/cpu/linear.h"

#include "kernels/cpu/gemm.h"

#include "kernels/threads.h"
namespace cohort::cpu {

template <typename T>
void linear_forward(T* y, const T* x, const T* weight, const T* bias, int64_t N, int64_t in, int64_t out) {
  if (bias) {
#pragma omp parallel for schedule(static) if (worth_parallel(N * out))
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < out; ++o) y[n * out + o] = bias[o];
  }
  gemm(false, true, N, out, in, T(1), x, in, weight, in, bias ? T(1) : T(0), y, out);
}

template <typename T>
void linear_backward(T* dx, T* dweight, T* dbias, const T* dy, const T* x, const T* weight, int64_t N, int64_t in,
                     int64_t out) {
  if (dx) gemm(false, false, N, in, out, T(1), dy, out, weight, in, T(1), dx, in);
  if (dweight) gemm(true, false, out, in, N, T(1), dy, out, x, in, T(1), dweight, in);
  if (dbias) {
#pragma omp parallel for schedule(static) if (worth_parallel(N * out))
    for (int64_t o = 0; o < out; ++o) {
      T s = 0;
      for (int64_t n = 0; n < N; ++n) s += dy[n * out + o];
      dbias[o] += s;
    }
  }
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t);
template void linear_forward<double>(double*, const double*, const double*, const double*, int64_t, int64_t, int64_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                     int64_t);
template void linear_backward<double>(double*, double*, double*, const double*, const double*, const double*, int64_t,
                                      int64_t, int64_t);

}  // namespace cohort::cpu
