// GPU twin of the softmax half of kernels/cpu/logprob.h: per-token log-probability of the target
// and entropy from a chunk of logits, and the backward to those logits. The two GEMMs of the CPU
// version (logits = h w_out^T forward; dh += dlogits w_out, dw_out += dlogits^T h backward) are
// the caller's, with the GEMM of kernels/cuda/gemm; fp32 device pointers, asynchronous on `stream`,
// launch errors thrown as cohort::Error.
//
// Chunking contract. The caller walks the N positions in chunks of `rows` consecutive positions
// (size them as the CPU does, cpu::logprob_chunk_tokens(V, sizeof(float), budget)), computes the
// chunk's logits (rows, V), and calls these on pointers offset to the chunk. Unlike the CPU, which
// gathers only the valid rows into a chunk, a chunk here may hold padding: a negative target means
// "no token here", its logprob, entropy and lse are 0 and its dlogits row is 0, so the caller's
// GEMMs give it no gradient, which is the CPU's result.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cohort::cuda {

// logits (rows, V), targets (rows). Writes logprob (rows) = log softmax(logits)[target],
// entropy (rows) of the whole distribution (skipped when entropy is null), lse (rows) saved for
// backward. Sums of exponentials in double, as on the CPU. One block per row.
void logprob_forward(float* logprob, float* entropy, float* lse, const float* logits, const int32_t* targets,
                     int64_t rows, int64_t V, cudaStream_t stream);

// dlogits (rows, V) = d loss / d logits, written (=), for the loss gradients dlogprob (rows) and
// dentropy (rows), either of which may be null (entropy must then be given when dentropy is):
//   dlogits[j] = dlogprob * ([j == target] - p_j) - dentropy * p_j * (log p_j + entropy).
// dlogits may be logits itself (in place: each element is read before it is overwritten).
// The caller then accumulates dh += dlogits w_out and dw_out += dlogits^T h.
void logprob_backward(float* dlogits, const float* dlogprob, const float* dentropy, const float* logits,
                      const int32_t* targets, const float* lse, const float* entropy, int64_t rows, int64_t V,
                      cudaStream_t stream);

}  // namespace cohort::cuda
