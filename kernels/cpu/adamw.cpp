// AdamW update and global-norm clipping, parallel over elements.
#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/threads.h"
namespace cohort::cpu {

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWSettings& s) {
  const T b1 = (T)s.beta1, b2 = (T)s.beta2;
  const T c1 = (T)(1.0 / (1.0 - std::pow(s.beta1, (double)s.step)));
  const T c2 = (T)(1.0 / (1.0 - std::pow(s.beta2, (double)s.step)));
  const T lr = (T)s.lr, eps = (T)s.eps, wd = (T)s.weight_decay;
#pragma omp parallel for simd schedule(static) if (worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    T mi = b1 * m[i] + (T(1) - b1) * g;
    T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= lr * ((mi * c1) / (std::sqrt(vi * c2) + eps) + wd * param[i]);
  }
}

template <typename T>
double squared_norm(const T* grad, int64_t n) {
  // Sums of fixed blocks added in order: the same bits whatever the thread count.
  constexpr int64_t block = int64_t(1) << 16;
  const int64_t blocks = (n + block - 1) / block;
  std::vector<double> partial((size_t)blocks, 0.0);
#pragma omp parallel for schedule(static) if (worth_parallel(n))
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    for (int64_t i = b * block; i < std::min(n, (b + 1) * block); ++i) s += (double)grad[i] * grad[i];
    partial[b] = s;
  }
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

template <typename T>
double clip_by_global_norm(T* grad, int64_t n, double norm, double max_norm) {
  if (max_norm <= 0 || !(norm > max_norm)) return 1.0;
  const double factor = max_norm / (norm + 1e-6);
#pragma omp parallel for simd schedule(static) if (worth_parallel(n))
  for (int64_t i = 0; i < n; ++i) grad[i] = (T)(grad[i] * factor);
  return factor;
}

template void adamw_update<float>(float*, const float*, float*, float*, int64_t, const AdamWSettings&);
template void adamw_update<double>(double*, const double*, double*, double*, int64_t, const AdamWSettings&);
template double squared_norm<float>(const float*, int64_t);
template double squared_norm<double>(const double*, int64_t);
template double clip_by_global_norm<float>(float*, int64_t, double, double);
template double clip_by_global_norm<double>(double*, int64_t, double, double);

}  // namespace cohort::cpu
