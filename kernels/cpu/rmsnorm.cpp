// RMSNorm forward and backward over rows of a (N, C) matrix.
#include "kernels/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/threads.h"
namespace cohort::cpu {

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* weight, int64_t N, int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (worth_parallel(N * C))
  for (int64_t n = 0; n < N; ++n) {
    const T* xn = x + n * C;
    double sum = 0.0;  // double: C can be 8192, and float sums drift there
    for (int64_t c = 0; c < C; ++c) sum += (double)xn[c] * xn[c];
    T r = (T)(1.0 / std::sqrt(sum / C + (double)eps));
    rstd[n] = r;
    T* o = out + n * C;
    for (int64_t c = 0; c < C; ++c) o[c] = xn[c] * r * weight[c];
  }
}

template <typename T>
void rmsnorm_backward(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, int64_t N,
                      int64_t C) {
  // dx = r * w*dout - x * r^3 / C * sum(w*dout*x); dweight = sum_n dout * x * r.
  // dweight is reduced per block of rows, then the blocks are summed in order. The blocks
  // depend on N alone, never on the thread count, so the gradient is the same bits however
  // many threads run (kernels/thread_governor.h changes the count between calls).
  const int64_t blocks = std::clamp<int64_t>(N / 16, 1, 32), rows_per_block = (N + blocks - 1) / blocks;
  std::vector<T> partial((size_t)(blocks * C), T(0));
#pragma omp parallel for schedule(static) if (worth_parallel(N * C))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    T* dw_local = partial.data() + blk * C;
    for (int64_t n = blk * rows_per_block; n < std::min(N, (blk + 1) * rows_per_block); ++n) {
      const T* xn = x + n * C;
      const T* g = dout + n * C;
      T r = rstd[n];
      double dot = 0.0;
      for (int64_t c = 0; c < C; ++c) dot += (double)g[c] * weight[c] * xn[c];
      T k = (T)(dot * r * r * r / C);
      T* d = dx + n * C;
      for (int64_t c = 0; c < C; ++c) {
        d[c] += r * weight[c] * g[c] - xn[c] * k;
        dw_local[c] += g[c] * xn[c] * r;
      }
    }
  }
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t c = 0; c < C; ++c) dweight[c] += partial[blk * C + c];
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                                      int64_t);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       int64_t, int64_t);

}  // namespace cohort::cpu
