// Embedding forward (gather) and backward (scatter-add).
#include "kernels/cpu/embedding.h"

#include <cstring>

#include "kernels/threads.h"
namespace cohort::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (worth_parallel(N * C))
  for (int64_t n = 0; n < N; ++n) std::memcpy(out + n * C, wte + (int64_t)tokens[n] * C, C * sizeof(T));
}

template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, int64_t N, int64_t C) {
  // Parallel over channels, not tokens: repeated tokens would race on one row.
#pragma omp parallel for schedule(static) if (worth_parallel(N * C))
  for (int64_t c0 = 0; c0 < C; c0 += 64) {
    int64_t c1 = c0 + 64 < C ? c0 + 64 : C;
    for (int64_t n = 0; n < N; ++n) {
      T* row = dwte + (int64_t)tokens[n] * C;
      const T* g = dout + n * C;
      for (int64_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t);
template void embedding_forward<double>(double*, const int32_t*, const double*, int64_t, int64_t);
template void embedding_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t);
template void embedding_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t);

}  // namespace cohort::cpu
