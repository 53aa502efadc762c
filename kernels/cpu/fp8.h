// FP8 (E4M3, E5M2) and BF16 codecs plus the fine-grained block quantization of the
// DeepSeek-V3 recipe, on the CPU. Encoding matches CUDA's
// __nv_cvt_float_to_fp8(x, __NV_SATFINITE, ...) bit for bit, so CPU and GPU agree.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace cohort {

// Round to nearest even; |x| > 448 and +-inf saturate to +-448 (0x7E / 0xFE);
// |x| <= 2^-10 (half the smallest subnormal) gives a zero carrying x's sign;
// every NaN gives 0x7F: CUDA canonicalises the NaN before converting, so its sign is lost.
uint8_t float_to_e4m3(float x);
// Same rules for E5M2: saturate to +-57344 (0x7B / 0xFB), zero at |x| <= 2^-17, NaN -> 0x7F.
uint8_t float_to_e5m2(float x);
// Exact decoding; NaN codes (E4M3 0x7F/0xFF, E5M2 0x7D-0x7F/0xFD-0xFF) give a positive quiet NaN.
float e4m3_to_float(uint8_t code);
float e5m2_to_float(uint8_t code);

// Round to nearest even; a NaN stays a NaN (made quiet, sign kept), infinities stay infinite.
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t bits);
// The same conversions over arrays, vectorized (weight sync converts whole models); equal to the scalar
// ones bit for bit.
void float_to_bf16(const float* x, uint16_t* out, int64_t n);
void bf16_to_float(const uint16_t* bits, float* out, int64_t n);

// IEEE binary16 (safetensors F16, GGUF F16 tensors and Q8_0 scales): the encoder rounds to nearest even
// (overflow gives infinity, NaN stays NaN), the decoder is exact.
uint16_t float_to_half(float x);
float half_to_float(uint16_t h);

constexpr int kFp8Tile = 128;
constexpr float kE4M3Max = 448.0f, kE5M2Max = 57344.0f;

// Scale rule shared with the CUDA kernel (kernels/cuda/fp8_quantize.cu), bit for bit:
//   amax  = max |x| over the tile, NaNs ignored (fmaxf semantics);
//   scale = amax / fmt_max, or 1.0 when that is 0 (an all-zero tile, or amax so small
//           that the division underflows);
//   q     = cvt(x / scale) with IEEE division (not a multiply by 1/scale).
// Dequantization is decode(q) * scale. NaN inputs become NaN codes; an infinite amax gives
// scale inf, and the whole tile dequantizes to NaN (0 * inf): non-finite inputs stay
// visible downstream instead of being silently clipped.
// `format` is DType::f8e4m3 or DType::f8e5m2; anything else throws cohort::Error.

// One fp32 scale per 1x128 tile along the columns (activations, gradients).
void quantize_1x128(const float* x,  // (rows, cols) row-major
                    int64_t rows, int64_t cols, DType format,
                    uint8_t* q,             // (rows, cols) codes
                    float* scales);         // (rows, ceil(cols / 128))
void dequantize_1x128(const uint8_t* q,     // (rows, cols)
                      const float* scales,  // (rows, ceil(cols / 128))
                      int64_t rows, int64_t cols, DType format,
                      float* x);  // (rows, cols)

// One fp32 scale per 128x128 block (weights).
void quantize_128x128(const float* w,  // (rows, cols) row-major
                      int64_t rows, int64_t cols, DType format,
                      uint8_t* q,             // (rows, cols) codes
                      float* scales);         // (ceil(rows / 128), ceil(cols / 128))
void dequantize_128x128(const uint8_t* q,     // (rows, cols)
                        const float* scales,  // (ceil(rows / 128), ceil(cols / 128))
                        int64_t rows, int64_t cols, DType format,
                        float* w);  // (rows, cols)

}  // namespace cohort
