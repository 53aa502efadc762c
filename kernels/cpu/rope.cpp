// RoPE: the frequency tables (with Llama 3.1 scaling) and forward/backward as in-place rotations
// of channel pairs (i, i + head_dim/2).
#include "kernels/cpu/rope.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/threads.h"
namespace cohort::cpu {

void rope_frequencies(double* inv_freq, int64_t head_dim, double theta) {
  for (int64_t i = 0; i < head_dim / 2; ++i) inv_freq[i] = std::pow(theta, -2.0 * (double)i / (double)head_dim);
}

void rope_scale_llama3(double* inv_freq, int64_t count, double factor, double low_freq_factor, double high_freq_factor,
                       double original_max_positions) {
  const double low_freq_wavelength = original_max_positions / low_freq_factor;
  const double high_freq_wavelength = original_max_positions / high_freq_factor;
  for (int64_t i = 0; i < count; ++i) {
    const double f = inv_freq[i], wavelength = 2.0 * std::numbers::pi / f;
    if (wavelength < high_freq_wavelength) continue;
    if (wavelength > low_freq_wavelength) {
      inv_freq[i] = f / factor;
      continue;
    }
    const double smooth =
        (original_max_positions / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor);
    inv_freq[i] = (1.0 - smooth) * f / factor + smooth * f;
  }
}

template <typename T>
void rope_tables(T* cos, T* sin, int64_t max_positions, int64_t head_dim, const double* inv_freq) {
  const int64_t half = head_dim / 2;
  for (int64_t p = 0; p < max_positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = (double)p * inv_freq[i];
      cos[p * half + i] = (T)std::cos(angle);
      sin[p * half + i] = (T)std::sin(angle);
    }
}

template <typename T>
void rope_tables(T* cos, T* sin, int64_t max_positions, int64_t head_dim, double theta) {
  std::vector<double> inv_freq((size_t)(head_dim / 2));
  rope_frequencies(inv_freq.data(), head_dim, theta);
  rope_tables(cos, sin, max_positions, head_dim, inv_freq.data());
}

template <typename T>
static void rotate(T* x, const int32_t* positions, const T* cos, const T* sin, int64_t N, int64_t heads,
                   int64_t head_dim, T direction) {
  int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static) if (worth_parallel(N * heads * head_dim))
  for (int64_t n = 0; n < N; ++n) {
    const T* c = cos + (int64_t)positions[n] * half;
    const T* s = sin + (int64_t)positions[n] * half;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (n * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        T x1 = v[i], x2 = v[i + half], si = direction * s[i];
        v[i] = x1 * c[i] - x2 * si;
        v[i + half] = x2 * c[i] + x1 * si;
      }
    }
  }
}

template <typename T>
void rope_forward(T* x, const int32_t* positions, const T* cos, const T* sin, int64_t N, int64_t heads,
                  int64_t head_dim) {
  rotate(x, positions, cos, sin, N, heads, head_dim, T(1));
}

template <typename T>
void rope_backward(T* dx, const int32_t* positions, const T* cos, const T* sin, int64_t N, int64_t heads,
                   int64_t head_dim) {
  rotate(dx, positions, cos, sin, N, heads, head_dim, T(-1));
}

template void rope_tables<float>(float*, float*, int64_t, int64_t, const double*);
template void rope_tables<double>(double*, double*, int64_t, int64_t, const double*);
template void rope_tables<float>(float*, float*, int64_t, int64_t, double);
template void rope_tables<double>(double*, double*, int64_t, int64_t, double);
template void rope_forward<float>(float*, const int32_t*, const float*, const float*, int64_t, int64_t, int64_t);
template void rope_forward<double>(double*, const int32_t*, const double*, const double*, int64_t, int64_t, int64_t);
template void rope_backward<float>(float*, const int32_t*, const float*, const float*, int64_t, int64_t, int64_t);
template void rope_backward<double>(double*, const int32_t*, const double*, const double*, int64_t, int64_t, int64_t);

}  // namespace cohort::cpu
