// Attention on the CPU: per (sequence, head) GEMMs through BLAS over blocks of query
// rows, so causal masking skips the upper triangle at block granularity, with a
// numerically safe softmax in between. Parallel over (sequence, head) in forward and
// over (sequence, kv head) in backward, so dk/dv accumulation never races.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/threads.h"

namespace cohort::cpu {

namespace {

constexpr int64_t kRowBlock = 64;

template <typename T>
std::vector<T>& scratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer;
}

// One head of one sequence: M query rows at positions offset .. offset+M-1, each
// attending keys 0 .. its own position. q rows stride ldq, k/v rows stride ldkv, out
// rows stride ldq. Writes out rows and, if lse is non-null, lse[0..M).
template <typename T>
void attend_rows(T* out, T* lse, const T* q, const T* k, const T* v, int64_t M, int64_t offset, int64_t ldq,
                 int64_t ldkv, int64_t hd) {
  const T scale = T(1) / std::sqrt(T(hd));
  std::vector<T>& s = scratch<T>((size_t)kRowBlock * (offset + M));
  for (int64_t r0 = 0; r0 < M; r0 += kRowBlock) {
    int64_t r1 = std::min(M, r0 + kRowBlock), rows = r1 - r0;
    int64_t keys = offset + r1;  // the last row of the block sees this many keys
    gemm(false, true, rows, keys, hd, scale, q + r0 * ldq, ldq, k, ldkv, T(0), s.data(), keys);
    for (int64_t i = 0; i < rows; ++i) {
      T* row = s.data() + i * keys;
      int64_t visible = offset + r0 + i + 1;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, row[j]);
      T sum = 0;
      for (int64_t j = 0; j < visible; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      T inv = T(1) / sum;
      for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
      for (int64_t j = visible; j < keys; ++j) row[j] = 0;
      if (lse) lse[r0 + i] = mx + std::log(sum);
    }
    gemm(false, false, rows, hd, keys, T(1), s.data(), keys, v, ldkv, T(0), out + r0 * ldq, ldq);
  }
}

template <typename T>
void zero_rows(T* out, int64_t first, int64_t last, int64_t ld, int64_t hd) {
  for (int64_t t = first; t < last; ++t) std::memset(out + t * ld, 0, hd * sizeof(T));
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const int32_t* lengths, int64_t B,
                       int64_t Tlen, int64_t H, int64_t KVH, int64_t hd) {
  const int64_t ldq = H * hd, ldkv = KVH * hd, group = H / KVH;
  int64_t work = 0;  // multiply-adds of the scores and the weighted sum
  for (int64_t b = 0; b < B; ++b) work += 2 * (int64_t)lengths[b] * lengths[b] * H * hd;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (worth_parallel(work))
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t L = lengths[b];
      int64_t kvh = h / group;
      T* o = out + b * Tlen * ldq + h * hd;
      T* l = lse + (b * H + h) * Tlen;
      if (L > 0)
        attend_rows(o, l, q + b * Tlen * ldq + h * hd, k + b * Tlen * ldkv + kvh * hd, v + b * Tlen * ldkv + kvh * hd,
                    L, 0, ldq, ldkv, hd);
      zero_rows(o, L, Tlen, ldq, hd);
      for (int64_t t = L; t < Tlen; ++t) l[t] = 0;
    }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* lse,
                        const int32_t* lengths, int64_t B, int64_t Tlen, int64_t H, int64_t KVH, int64_t hd) {
  const int64_t ldq = H * hd, ldkv = KVH * hd, group = H / KVH;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t kvh = 0; kvh < KVH; ++kvh) {
      int64_t L = lengths[b];
      if (L == 0) continue;
      const T* kb = k + b * Tlen * ldkv + kvh * hd;
      const T* vb = v + b * Tlen * ldkv + kvh * hd;
      T* dkb = dk + b * Tlen * ldkv + kvh * hd;
      T* dvb = dv + b * Tlen * ldkv + kvh * hd;
      std::vector<T>& buf = scratch<T>((size_t)2 * kRowBlock * L);
      T* p = buf.data();
      T* dp = buf.data() + kRowBlock * L;
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const T* qh = q + b * Tlen * ldq + h * hd;
        const T* doh = dout + b * Tlen * ldq + h * hd;
        T* dqh = dq + b * Tlen * ldq + h * hd;
        const T* l = lse + (b * H + h) * Tlen;
        for (int64_t r0 = 0; r0 < L; r0 += kRowBlock) {
          int64_t r1 = std::min(L, r0 + kRowBlock), rows = r1 - r0, keys = r1;
          // Recompute the probabilities from the saved log-sum-exp.
          gemm(false, true, rows, keys, hd, scale, qh + r0 * ldq, ldq, kb, ldkv, T(0), p, keys);
          gemm(false, true, rows, keys, hd, T(1), doh + r0 * ldq, ldq, vb, ldkv, T(0), dp, keys);
          for (int64_t i = 0; i < rows; ++i) {
            T* pr = p + i * keys;
            T* dpr = dp + i * keys;
            int64_t visible = r0 + i + 1;
            T li = l[r0 + i], dot = 0;
            for (int64_t j = 0; j < visible; ++j) {
              pr[j] = std::exp(pr[j] - li);
              dot += pr[j] * dpr[j];
            }
            for (int64_t j = 0; j < visible; ++j) dpr[j] = pr[j] * (dpr[j] - dot);
            for (int64_t j = visible; j < keys; ++j) pr[j] = dpr[j] = 0;
          }
          // dv += P^T dO;  dq += scale dS K;  dk += scale dS^T Q.
          gemm(true, false, keys, hd, rows, T(1), p, keys, doh + r0 * ldq, ldq, T(1), dvb, ldkv);
          gemm(false, false, rows, hd, keys, scale, dp, keys, kb, ldkv, T(1), dqh + r0 * ldq, ldq);
          gemm(true, false, keys, hd, rows, scale, dp, keys, qh + r0 * ldq, ldq, T(1), dkb, ldkv);
        }
      }
    }
}

template <typename T>
void attention_decode(T* out, const T* q, const T* k_cache, const T* v_cache, const int32_t* slot, const int32_t* start,
                      const int32_t* n_new, int64_t B, int64_t Tn, int64_t H, int64_t KVH, int64_t hd, int64_t max_T) {
  const int64_t ldq = H * hd, ldkv = KVH * hd, group = H / KVH;
  int64_t work = 0;  // multiply-adds over every cached key the new tokens attend to
  for (int64_t b = 0; b < B; ++b) work += 2 * ((int64_t)start[b] + n_new[b]) * n_new[b] * H * hd;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (worth_parallel(work))
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      int64_t n = n_new[b], kvh = h / group;
      T* o = out + b * Tn * ldq + h * hd;
      const T* kc = k_cache + (int64_t)slot[b] * max_T * ldkv + kvh * hd;
      const T* vc = v_cache + (int64_t)slot[b] * max_T * ldkv + kvh * hd;
      if (n > 0) attend_rows<T>(o, nullptr, q + b * Tn * ldq + h * hd, kc, vc, n, start[b], ldq, ldkv, hd);
      zero_rows(o, n, Tn, ldq, hd);
    }
}

#define COHORT_INSTANTIATE(T)                                                                                         \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, \
                                     int64_t, int64_t);                                                               \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const int32_t*,   \
                                      int64_t, int64_t, int64_t, int64_t, int64_t);                                   \
  template void attention_decode<T>(T*, const T*, const T*, const T*, const int32_t*, const int32_t*, const int32_t*, \
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
COHORT_INSTANTIATE(float)
COHORT_INSTANTIATE(double)
#undef COHORT_INSTANTIATE

}  // namespace cohort::cpu
