// Rotary position embedding in the Llama/Qwen2 (Hugging Face "rotate_half") convention:
// channel i pairs with channel i + head_dim/2, angle = pos * inv_freq[i], inv_freq[i] =
// theta^(-2i/head_dim) unless a rope scaling (linear, Llama 3.1's "llama3") rescales it.
// Both directions work in place: RoPE is a rotation, so backward rotates dout back.
#pragma once
#include <cstdint>

namespace cohort::cpu {

// inv_freq (head_dim/2) = theta^(-2i/head_dim): the unscaled frequencies, in double.
void rope_frequencies(double* inv_freq, int64_t head_dim, double theta);

// Llama 3.1's frequency-dependent scaling of inv_freq (count) in place, as transformers'
// _compute_llama3_parameters: with wavelength w = 2 pi / f, low = original / low_freq_factor and
// high = original / high_freq_factor (original = original_max_position_embeddings),
//   w < high:   f unchanged (short wavelengths, local detail)
//   w > low:    f / factor  (long wavelengths, stretched to the longer context)
//   otherwise:  (1 - s) f / factor + s f, s = (original / w - low_freq_factor) / (high_freq_factor - low_freq_factor).
// Needs factor > 0 and high_freq_factor > low_freq_factor > 0 (the caller validates).
void rope_scale_llama3(double* inv_freq, int64_t count, double factor, double low_freq_factor, double high_freq_factor,
                       double original_max_positions);

// cos, sin (max_positions, head_dim/2) of angle pos * inv_freq[i], computed in double then
// rounded to T. Linear scaling ("positions divided by factor") is inv_freq / factor here.
template <typename T>
void rope_tables(T* cos, T* sin, int64_t max_positions, int64_t head_dim, const double* inv_freq);

// The unscaled tables: rope_tables with rope_frequencies(theta).
template <typename T>
void rope_tables(T* cos, T* sin, int64_t max_positions, int64_t head_dim, double theta);

// x (N, heads, head_dim) rotated in place by positions (N).
template <typename T>
void rope_forward(T* x, const int32_t* positions, const T* cos, const T* sin, int64_t N, int64_t heads,
                  int64_t head_dim);

// dx (N, heads, head_dim): the gradient w.r.t. the output, turned in place into the
// gradient w.r.t. the input (the inverse rotation).
template <typename T>
void rope_backward(T* dx, const int32_t* positions, const T* cos, const T* sin, int64_t N, int64_t heads,
                   int64_t head_dim);

}  // namespace cohort::cpu
