// Chunked log-softmax over the vocabulary: gather a chunk of valid token rows,
// one GEMM for their logits, a row-parallel softmax, and (backward) two GEMMs.
#include "kernels/cpu/logprob.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/threads.h"

namespace cohort::cpu {

int64_t logprob_chunk_tokens(int64_t vocab, int64_t element_size, int64_t budget_bytes) {
  return std::max<int64_t>(1, budget_bytes / std::max<int64_t>(1, vocab * element_size));
}

namespace {

std::vector<int64_t> valid_rows(const int32_t* targets, int64_t N) {
  std::vector<int64_t> rows;
  rows.reserve(N);
  for (int64_t n = 0; n < N; ++n)
    if (targets[n] >= 0) rows.push_back(n);
  return rows;
}

// Copies rows[first .. first+count) of h into a dense (count, C) buffer.
// Chunk buffers live per thread between calls: a fresh 64 MB logits buffer per call
// would be paid for again in page faults every step.
template <typename T>
T* scratch(int slot, size_t n) {
  thread_local std::vector<T> buffers[3];
  if (buffers[slot].size() < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

template <typename T>
void gather_rows(T* dst, const T* h, const std::vector<int64_t>& rows, int64_t first, int64_t count, int64_t C) {
#pragma omp parallel for schedule(static) if (worth_parallel(count * C))
  for (int64_t i = 0; i < count; ++i) std::memcpy(dst + i * C, h + rows[first + i] * C, C * sizeof(T));
}

// Runs fn(first, count, hbuf, logits) on each chunk of up to `chunk_tokens` valid rows,
// with hbuf (count, C) the gathered hidden states and logits (count, V) = hbuf w_out^T.
template <typename T, typename Fn>
void for_each_logits_chunk(const T* h, const T* w_out, const std::vector<int64_t>& rows, int64_t C, int64_t V,
                           int64_t chunk_tokens, Fn&& fn) {
  int64_t chunk = std::max<int64_t>(1, chunk_tokens);
  int64_t cap = std::min<int64_t>(chunk, (int64_t)rows.size());
  T* hbuf = scratch<T>(0, (size_t)cap * C);
  T* logits = scratch<T>(1, (size_t)cap * V);
  for (int64_t first = 0; first < (int64_t)rows.size(); first += chunk) {
    int64_t count = std::min<int64_t>(chunk, (int64_t)rows.size() - first);
    gather_rows(hbuf, h, rows, first, count, C);
    gemm(false, true, count, V, C, T(1), hbuf, C, w_out, C, T(0), logits, V);
    fn(first, count, hbuf, logits);
  }
}

}  // namespace

template <typename T>
void logprob_forward(T* logprob, T* entropy, T* lse, const T* h, const T* w_out, const int32_t* targets, int64_t N,
                     int64_t C, int64_t V, int64_t chunk_tokens) {
  for (int64_t n = 0; n < N; ++n) logprob[n] = entropy[n] = lse[n] = 0;
  std::vector<int64_t> rows = valid_rows(targets, N);
  for_each_logits_chunk(h, w_out, rows, C, V, chunk_tokens, [&](int64_t first, int64_t count, T*, T* logits) {
#pragma omp parallel for schedule(static) if (worth_parallel(count * V))
    for (int64_t i = 0; i < count; ++i) {
      const T* z = logits + i * V;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j]);
      // entropy = lse - E_p[z]; both sums share the exponentials.
      double sum = 0, sum_z = 0;
      for (int64_t j = 0; j < V; ++j) {
        T e = std::exp(z[j] - mx);
        sum += e;
        sum_z += (double)e * (z[j] - mx);
      }
      int64_t n = rows[first + i];
      T l = mx + (T)std::log(sum);
      lse[n] = l;
      logprob[n] = z[targets[n]] - l;
      entropy[n] = (T)(std::log(sum) - sum_z / sum);
    }
  });
}

template <typename T>
void logprob_backward(T* dh, T* dw_out, const T* dlogprob, const T* dentropy, const T* h, const T* w_out,
                      const int32_t* targets, const T* lse, const T* entropy, int64_t N, int64_t C, int64_t V,
                      int64_t chunk_tokens) {
  std::vector<int64_t> rows = valid_rows(targets, N);
  T* dhbuf = scratch<T>(2, (size_t)std::min<int64_t>(std::max<int64_t>(1, chunk_tokens), (int64_t)rows.size()) * C);
  for_each_logits_chunk(h, w_out, rows, C, V, chunk_tokens, [&](int64_t first, int64_t count, T* hbuf, T* logits) {
  // d logprob_t / dz_j = [j == t] - p_j;  d entropy / dz_j = -p_j (log p_j + entropy).
#pragma omp parallel for schedule(static) if (worth_parallel(count * V))
    for (int64_t i = 0; i < count; ++i) {
      int64_t n = rows[first + i];
      T* z = logits + i * V;
      T g_lp = dlogprob ? dlogprob[n] : T(0);
      T g_ent = dentropy ? dentropy[n] : T(0);
      T l = lse[n], ent = entropy[n];
      for (int64_t j = 0; j < V; ++j) {
        T logp = z[j] - l;
        T p = std::exp(logp);
        z[j] = -g_lp * p - g_ent * p * (logp + ent);
      }
      z[targets[n]] += g_lp;
    }
    gemm(false, false, count, C, V, T(1), logits, V, w_out, C, T(0), dhbuf, C);
    gemm(true, false, V, C, count, T(1), logits, V, hbuf, C, T(1), dw_out, C);
#pragma omp parallel for schedule(static) if (worth_parallel(count * C))
    for (int64_t i = 0; i < count; ++i) {
      T* d = dh + rows[first + i] * C;
      const T* s = dhbuf + i * C;
      for (int64_t c = 0; c < C; ++c) d[c] += s[c];
    }
  });
}

template void logprob_forward<float>(float*, float*, float*, const float*, const float*, const int32_t*, int64_t,
                                     int64_t, int64_t, int64_t);
template void logprob_forward<double>(double*, double*, double*, const double*, const double*, const int32_t*, int64_t,
                                      int64_t, int64_t, int64_t);
template void logprob_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      const int32_t*, const float*, const float*, int64_t, int64_t, int64_t, int64_t);
template void logprob_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       const int32_t*, const double*, const double*, int64_t, int64_t, int64_t,
                                       int64_t);

}  // namespace cohort::cpu
