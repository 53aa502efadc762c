// FP8 / BF16 codecs and 1x128 / 128x128 block quantization on the CPU. The encoder
// reproduces the host path of CUDA's cuda_fp8.hpp (__nv_cvt_double_to_fp8 with
// __NV_SATFINITE) with branch-free integer steps so the tile loops vectorize.
#include "kernels/cpu/fp8.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels/error.h"

namespace cohort {
namespace {

// The constants that differ between the two formats; the range limits are float bit
// patterns so the range tests are integer compares on |x|'s bits.
struct Fp8Format {
  int mantissa_bits;         // 3 (E4M3) or 2 (E5M2)
  int exponent_bias;         // 7 or 15
  uint32_t min_normal_bits;  // 2^-6 or 2^-14
  uint32_t max_normal_bits;  // 448 or 57344
  uint8_t max_normal_code;   // 0x7E or 0x7B
};

constexpr Fp8Format kE4M3{3, 7, 0x3C800000u, 0x43E00000u, 0x7E};
constexpr Fp8Format kE5M2{2, 15, 0x38800000u, 0x47600000u, 0x7B};

static_assert(std::bit_cast<uint32_t>(kE4M3Max) == kE4M3.max_normal_bits);
static_assert(std::bit_cast<uint32_t>(kE5M2Max) == kE5M2.max_normal_bits);
static_assert(std::bit_cast<uint32_t>(0x1p-6f) == kE4M3.min_normal_bits);
static_assert(std::bit_cast<uint32_t>(0x1p-14f) == kE5M2.min_normal_bits);

// Branch-free (every path computed, then selected) so that the tile loops vectorize;
// rounding is done with integer adds, since GCC will not vectorize the boolean form.
// - normal range: drop the low (23 - M) mantissa bits of |x| with round to nearest even,
//   (bits + half - 1 + kept_lsb) >> shift; a mantissa carry walks into the exponent,
//   which is exactly the next code.
// - subnormal range (|x| < min normal): the code is |x| / min_subnormal rounded to an
//   integer, i.e. the float's significand (implicit bit included) shifted right by an
//   exponent-dependent amount, rounded the same way. Clamping the shift to 31 sends float
//   subnormals and anything <= min_subnormal / 2 to 0, which is CUDA's underflow rule.
// - |x| >= max normal, infinities included: saturate (values between max normal and
//   max normal + half an ulp would round there anyway).
// - NaN: CUDA first replaces any NaN float by 0x7FFFFFFF, so the sign is dropped and both
//   formats give 0x7F (for E5M2, 0x7E | the two top mantissa bits of that NaN).
template <const Fp8Format& F>
inline uint8_t encode(float x) {
  constexpr int kShift = 23 - F.mantissa_bits;
  constexpr uint32_t kRebias = uint32_t(127 - F.exponent_bias) << F.mantissa_bits;
  // |x| = significand * 2^(float_exponent - 150) and min_subnormal = 2^(1 - bias - M), so
  // the subnormal code is significand >> (151 - bias - M - float_exponent).
  constexpr int kSubnormalShift = 151 - F.exponent_bias - F.mantissa_bits;
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  const uint32_t sign = (bits >> 24) & 0x80u;

  // Wraps below the normal range, where it is not selected: unsigned, so no UB.
  const uint32_t normal = ((abs_bits + ((1u << (kShift - 1)) - 1u) + ((abs_bits >> kShift) & 1u)) >> kShift) - kRebias;

  const uint32_t significand = (abs_bits & 0x7FFFFFu) | 0x800000u;
  int shift = kSubnormalShift - int(abs_bits >> 23);
  shift = shift < 1 ? 1 : (shift > 31 ? 31 : shift);
  const uint32_t subnormal = (significand + ((1u << (shift - 1)) - 1u) + ((significand >> shift) & 1u)) >> shift;

  uint32_t code = abs_bits < F.min_normal_bits ? subnormal : normal;
  code = abs_bits >= F.max_normal_bits ? uint32_t(F.max_normal_code) : code;
  code |= sign;
  code = abs_bits > 0x7F800000u ? 0x7Fu : code;
  return uint8_t(code);
}

// Exact value of a code, built from its bits (the tests check it with ldexp instead).
template <const Fp8Format& F>
constexpr float decode(uint8_t code) {
  constexpr int M = F.mantissa_bits;
  constexpr uint32_t kExponentMask = (1u << (7 - M)) - 1u;
  const uint32_t sign = uint32_t(code >> 7) << 31;
  const uint32_t exponent = (code >> M) & kExponentMask;
  uint32_t mantissa = code & ((1u << M) - 1u);
  const bool is_e4m3 = M == 3;
  if (is_e4m3 && (code & 0x7Fu) == 0x7Fu) return std::bit_cast<float>(0x7FC00000u);
  if (!is_e4m3 && exponent == kExponentMask) {
    if (mantissa != 0) return std::bit_cast<float>(0x7FC00000u);
    return std::bit_cast<float>(sign | 0x7F800000u);
  }
  int float_exponent = int(exponent) - F.exponent_bias + 127;
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);
    // Subnormal: value = mantissa * 2^(1 - bias - M); normalise so the leading one is
    // implicit in the float.
    float_exponent = 1 - F.exponent_bias + 127;
    while ((mantissa & (1u << M)) == 0) {
      mantissa <<= 1;
      --float_exponent;
    }
    mantissa &= (1u << M) - 1u;
  }
  return std::bit_cast<float>(sign | (uint32_t(float_exponent) << 23) | (mantissa << (23 - M)));
}

template <const Fp8Format& F>
constexpr std::array<float, 256> decode_table() {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) table[code] = decode<F>(uint8_t(code));
  return table;
}

constexpr std::array<float, 256> kE4M3Table = decode_table<kE4M3>();
constexpr std::array<float, 256> kE5M2Table = decode_table<kE5M2>();

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;

void check_format(DType format) {
  COHORT_REQUIRE(format == DType::f8e4m3 || format == DType::f8e5m2,
                 "fp8 quantization needs f8e4m3 or f8e5m2, got " << dtype_name(format));
}

void check_shape(int64_t rows, int64_t cols) {
  COHORT_REQUIRE(rows >= 0 && cols >= 0, "fp8 quantization: bad shape (" << rows << ", " << cols << ")");
}

int64_t tiles(int64_t n) {
  return (n + kFp8Tile - 1) / kFp8Tile;
}

// The scale rule stated in fp8.h, shared with the CUDA kernel.
inline float tile_scale(float amax, float format_max) {
  const float scale = amax / format_max;
  return scale == 0.0f ? 1.0f : scale;
}

// max |x| with NaNs ignored, as fmaxf does on the GPU. Done on the bit patterns: for
// non-negative floats (infinity included) the integer order is the float order, and an
// integer max reduction vectorizes where a float one with NaN rules does not.
inline uint32_t running_amax_bits(uint32_t amax_bits, float value) {
  uint32_t magnitude = std::bit_cast<uint32_t>(value) & 0x7FFFFFFFu;
  magnitude &= 0u - uint32_t(magnitude <= 0x7F800000u);  // NaN -> 0 (a select here defeats GCC 12)
  return amax_bits < magnitude ? magnitude : amax_bits;
}

template <const Fp8Format& F>
void quantize_1x128_impl(const float* x, int64_t rows, int64_t cols, uint8_t* q, float* scales) {
  const int64_t tiles_per_row = tiles(cols);
  const float format_max = std::bit_cast<float>(F.max_normal_bits);
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < tiles_per_row; ++t) {
      const int64_t begin = t * kFp8Tile;
      const int64_t end = std::min(cols, begin + kFp8Tile);
      const float* x_tile = x + r * cols;
      uint8_t* q_tile = q + r * cols;
      uint32_t amax_bits = 0;
      for (int64_t c = begin; c < end; ++c) amax_bits = running_amax_bits(amax_bits, x_tile[c]);
      const float scale = tile_scale(std::bit_cast<float>(amax_bits), format_max);
      for (int64_t c = begin; c < end; ++c) q_tile[c] = encode<F>(x_tile[c] / scale);
      scales[r * tiles_per_row + t] = scale;
    }
  }
}

template <const Fp8Format& F>
void quantize_128x128_impl(const float* w, int64_t rows, int64_t cols, uint8_t* q, float* scales) {
  const int64_t block_rows = tiles(rows), block_cols = tiles(cols);
  const float format_max = std::bit_cast<float>(F.max_normal_bits);
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t br = 0; br < block_rows; ++br) {
    for (int64_t bc = 0; bc < block_cols; ++bc) {
      const int64_t r_begin = br * kFp8Tile, r_end = std::min(rows, r_begin + kFp8Tile);
      const int64_t c_begin = bc * kFp8Tile, c_end = std::min(cols, c_begin + kFp8Tile);
      uint32_t amax_bits = 0;
      for (int64_t r = r_begin; r < r_end; ++r)
        for (int64_t c = c_begin; c < c_end; ++c) amax_bits = running_amax_bits(amax_bits, w[r * cols + c]);
      const float scale = tile_scale(std::bit_cast<float>(amax_bits), format_max);
      for (int64_t r = r_begin; r < r_end; ++r) {
        // Row pointers taken out of the loop: a uint8_t store may alias anything, so an
        // index through the shared `cols` would be reloaded every element and not vectorize.
        const float* w_row = w + r * cols;
        uint8_t* q_row = q + r * cols;
        for (int64_t c = c_begin; c < c_end; ++c) q_row[c] = encode<F>(w_row[c] / scale);
      }
      scales[br * block_cols + bc] = scale;
    }
  }
}

void dequantize_1x128_impl(const std::array<float, 256>& table, const uint8_t* q, const float* scales, int64_t rows,
                           int64_t cols, float* x) {
  const int64_t tiles_per_row = tiles(cols);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < tiles_per_row; ++t) {
      const float scale = scales[r * tiles_per_row + t];
      const int64_t begin = t * kFp8Tile, end = std::min(cols, begin + kFp8Tile);
      for (int64_t c = begin; c < end; ++c) x[r * cols + c] = table[q[r * cols + c]] * scale;
    }
  }
}

void dequantize_128x128_impl(const std::array<float, 256>& table, const uint8_t* q, const float* scales, int64_t rows,
                             int64_t cols, float* w) {
  const int64_t block_cols = tiles(cols);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* scale_row = scales + (r / kFp8Tile) * block_cols;
    for (int64_t bc = 0; bc < block_cols; ++bc) {
      const float scale = scale_row[bc];
      const int64_t begin = bc * kFp8Tile, end = std::min(cols, begin + kFp8Tile);
      for (int64_t c = begin; c < end; ++c) w[r * cols + c] = table[q[r * cols + c]] * scale;
    }
  }
}

const std::array<float, 256>& table_for(DType format) {
  return format == DType::f8e4m3 ? kE4M3Table : kE5M2Table;
}

}  // namespace

uint8_t float_to_e4m3(float x) {
  return encode<kE4M3>(x);
}
uint8_t float_to_e5m2(float x) {
  return encode<kE5M2>(x);
}
float e4m3_to_float(uint8_t code) {
  return kE4M3Table[code];
}
float e5m2_to_float(uint8_t code) {
  return kE5M2Table[code];
}

uint16_t float_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  // A NaN could lose all its payload bits in truncation and turn into an infinity: keep
  // the top bits and force the quiet bit instead.
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((bits >> 16) | 0x0040u);
  // Round to nearest even: add just under half an ulp, plus one when the kept lsb is odd.
  // Overflow carries into the exponent and gives inf, as IEEE rounding does.
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t((bits + rounding) >> 16);
}

float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(uint32_t(bits) << 16);
}

void float_to_bf16(const float* x, uint16_t* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(x[i]);
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    const uint32_t nan = (bits >> 16) | 0x0040u;
    out[i] = uint16_t((bits & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
  }
}

void bf16_to_float(const uint16_t* bits, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(uint32_t(bits[i]) << 16);
}

void quantize_1x128(const float* x, int64_t rows, int64_t cols, DType format, uint8_t* q, float* scales) {
  check_format(format);
  check_shape(rows, cols);
  if (format == DType::f8e4m3)
    quantize_1x128_impl<kE4M3>(x, rows, cols, q, scales);
  else
    quantize_1x128_impl<kE5M2>(x, rows, cols, q, scales);
}

void dequantize_1x128(const uint8_t* q, const float* scales, int64_t rows, int64_t cols, DType format, float* x) {
  check_format(format);
  check_shape(rows, cols);
  dequantize_1x128_impl(table_for(format), q, scales, rows, cols, x);
}

void quantize_128x128(const float* w, int64_t rows, int64_t cols, DType format, uint8_t* q, float* scales) {
  check_format(format);
  check_shape(rows, cols);
  if (format == DType::f8e4m3)
    quantize_128x128_impl<kE4M3>(w, rows, cols, q, scales);
  else
    quantize_128x128_impl<kE5M2>(w, rows, cols, q, scales);
}

void dequantize_128x128(const uint8_t* q, const float* scales, int64_t rows, int64_t cols, DType format, float* w) {
  check_format(format);
  check_shape(rows, cols);
  dequantize_128x128_impl(table_for(format), q, scales, rows, cols, w);
}

// ---------------------------------------------------------------------------------------
// IEEE half

uint16_t float_to_half(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));  // NaN, quiet
  // 65520 (halfway between the largest half, 65504, and 65536) and above round to infinity.
  if (magnitude >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (magnitude < 0x38800000u) {
    // Below 2^-14 the half is subnormal: its mantissa is |x| * 2^24 rounded to nearest even
    // (exact in float; 1024 is the smallest normal's encoding, which is correct).
    const float scaled = std::bit_cast<float>(magnitude) * 0x1p24f;
    return (uint16_t)(sign | (uint16_t)std::nearbyint(scaled));
  }
  uint32_t half = ((((magnitude >> 23) - 127 + 15) << 10) | ((magnitude >> 13) & 0x3ffu));
  const uint32_t dropped = magnitude & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (half & 1u))) ++half;  // a carry rolls into the exponent
  return (uint16_t)(sign | half);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = std::ldexp((float)mantissa, -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

}  // namespace cohort
