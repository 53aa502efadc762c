// Tests for the BF16 codec in kernels/cpu/fp8.h: round to nearest even against a
// double-precision reference, ties, NaN and infinity handling, exact decoding.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/fp8.h"

namespace cohort {
namespace {

uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}
float float_of(uint32_t bits) {
  return std::bit_cast<float>(bits);
}

// The bf16 nearest to a finite x, chosen in double precision between the two candidates
// that bracket it (truncation and the next code up); ties go to the even code.
uint16_t bf16_reference(float x) {
  if (std::isinf(x)) return uint16_t(bits_of(x) >> 16);
  const uint16_t truncated = uint16_t(bits_of(x) >> 16);
  const uint16_t away = uint16_t(truncated + 1);  // next magnitude up (may be inf)
  const double low = double(float_of(uint32_t(truncated) << 16));
  const double high = double(float_of(uint32_t(away) << 16));
  const double distance_low = std::fabs(double(x) - low);
  // Past the largest finite bf16 the candidate above is infinity; IEEE rounding treats it
  // as if the exponent were unbounded: 2^128 sits one bf16 ulp above 0x7F7F.
  const double distance_high =
      std::isinf(high) ? std::fabs(std::ldexp(1.0, 128) - std::fabs(double(x))) : std::fabs(double(x) - high);
  if (distance_low < distance_high) return truncated;
  if (distance_high < distance_low) return away;
  return (truncated & 1) ? away : truncated;
}

TEST(Bf16, DecodesEveryCodeExactly) {
  for (uint32_t code = 0; code < 65536; ++code) {
    const float decoded = bf16_to_float(uint16_t(code));
    ASSERT_EQ(bits_of(decoded), code << 16) << code;
    const bool is_nan = (code & 0x7F80) == 0x7F80 && (code & 0x7F) != 0;
    ASSERT_EQ(std::isnan(decoded), is_nan) << code;
    // Every non-NaN bf16 re-encodes to itself.
    if (!is_nan) {
      ASSERT_EQ(float_to_bf16(decoded), code) << code;
    }
  }
}

TEST(Bf16, TiesRoundToEven) {
  // Low 16 bits exactly 0x8000: a tie. Even upper half stays, odd goes up.
  EXPECT_EQ(float_to_bf16(float_of(0x3F808000u)), 0x3F80);  // 1 + 2^-8: tie, 0x3F80 even
  EXPECT_EQ(float_to_bf16(float_of(0x3F818000u)), 0x3F82);  // odd 0x3F81 rounds up
  EXPECT_EQ(float_to_bf16(float_of(0xBF818000u)), 0xBF82);  // sign does not matter
  EXPECT_EQ(float_to_bf16(float_of(0x3F808001u)), 0x3F81);  // just above the tie
  EXPECT_EQ(float_to_bf16(float_of(0x3F817FFFu)), 0x3F81);  // just below the tie
  // A carry out of the mantissa moves into the exponent.
  EXPECT_EQ(float_to_bf16(float_of(0x3FFFC000u)), 0x4000);
  // Subnormals round the same way.
  EXPECT_EQ(float_to_bf16(float_of(0x00018000u)), 0x0002);
  EXPECT_EQ(float_to_bf16(float_of(0x00008000u)), 0x0000);
  EXPECT_EQ(float_to_bf16(float_of(0x80008000u)), 0x8000);
  // Every tie between adjacent positive finite codes.
  for (uint32_t code = 0; code < 0x7F7F; ++code) {
    const float tie = float_of((code << 16) | 0x8000u);
    ASSERT_EQ(float_to_bf16(tie), (code & 1) ? code + 1 : code) << code;
  }
}

TEST(Bf16, NaNAndInfinity) {
  EXPECT_EQ(float_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(float_to_bf16(-INFINITY), 0xFF80);
  // Rounding past the largest finite value overflows to infinity, as IEEE does.
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(float_to_bf16(float_of(0x7F7F7FFFu)), 0x7F7F);  // below the overflow tie
  EXPECT_EQ(float_to_bf16(float_of(0x7F7F8000u)), 0x7F80);  // tie: 0x7F7F is odd, goes up to inf
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  // NaNs stay NaN, quiet, sign kept; a payload only in the low bits must not become inf.
  for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7F80FFFFu, 0x7FFFFFFFu, 0xFF800001u, 0xFFC00000u}) {
    const uint16_t code = float_to_bf16(float_of(nan));
    EXPECT_TRUE(std::isnan(bf16_to_float(code))) << std::hex << nan;
    EXPECT_NE(code & 0x0040, 0) << "quiet bit, " << std::hex << nan;
    EXPECT_EQ(code & 0x8000, nan >> 16 & 0x8000) << "sign, " << std::hex << nan;
  }
}

TEST(Bf16, MatchesDoubleReferenceOnRandomValues) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::normal_distribution<float> normal(0.0f, 10.0f);
  int64_t checked = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    // Half arbitrary bit patterns (all exponents), half ordinary values.
    const float x = (i % 2) ? float_of(any_bits(rng)) : normal(rng);
    if (std::isnan(x)) continue;
    ASSERT_EQ(float_to_bf16(x), bf16_reference(x)) << "x " << x << " bits " << std::hex << bits_of(x);
    ++checked;
  }
  EXPECT_GT(checked, 990'000);
}

TEST(Bf16, RoundTripRelativeError) {
  // Half a bf16 ulp: 2^-8 relative for normal values.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> log_magnitude(-30.0f, 30.0f);
  for (int i = 0; i < 100'000; ++i) {
    const float x = std::exp(log_magnitude(rng)) * ((i % 2) ? 1.0f : -1.0f);
    const float y = bf16_to_float(float_to_bf16(x));
    ASSERT_LE(std::fabs(double(y) - double(x)), std::ldexp(std::fabs(double(x)), -8)) << x;
  }
}

TEST(Bf16, ArrayConversionsEqualTheScalarOnes) {
  // Arbitrary bit patterns (NaNs with payloads, infinities, subnormals, ties) and an odd length, so a
  // vectorized body and its remainder both run.
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::vector<float> x(100'003);
  for (auto& v : x) v = float_of(any_bits(rng));
  x[0] = float_of(0x7F800001u), x[1] = float_of(0xFFC00000u), x[2] = float_of(0x3F808000u);  // NaNs, a tie
  std::vector<uint16_t> codes(x.size());
  float_to_bf16(x.data(), codes.data(), (int64_t)x.size());
  std::vector<float> back(x.size());
  bf16_to_float(codes.data(), back.data(), (int64_t)x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(codes[i], float_to_bf16(x[i])) << "element " << i << " bits " << std::hex << bits_of(x[i]);
    ASSERT_EQ(bits_of(back[i]), bits_of(bf16_to_float(codes[i]))) << "element " << i;
  }
}

}  // namespace
}  // namespace cohort
