// RoPE scaling: Llama 3.1's frequency-dependent scaling against values worked out by hand from
// the formula and against transformers' own _compute_llama3_parameters, and tables built from
// scaled frequencies against cos/sin of the scaled angles (linear: positions divided by factor).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/rope.h"

using namespace cohort;
using namespace cohort::testing;

TEST(RopeScaling, Llama3MatchesTheFormulaWorkedByHand) {
  // head_dim 8, theta 10^4: f = 1, 0.1, 0.01, 0.001, wavelengths 2 pi / f = 6.28, 62.8, 628, 6283.
  // original 1024, low_freq_factor 1, high_freq_factor 4: wavelengths under 1024 / 4 = 256 keep f,
  // those over 1024 / 1 are divided by factor 8, and 628 lies between: s = (1024 / 628.3 - 1) / 3
  // = 0.2099155, f = 0.01 * ((1 - s) / 8 + s) = 0.00308676.
  std::vector<double> f(4);
  cpu::rope_frequencies(f.data(), 8, 1e4);
  expect_close(f, std::vector<double>{1.0, 0.1, 0.01, 0.001}, 0, 1e-15, "unscaled frequencies");
  cpu::rope_scale_llama3(f.data(), 4, 8.0, 1.0, 4.0, 1024.0);
  const double s = (1024.0 / (2 * std::numbers::pi / 0.01) - 1.0) / 3.0;
  EXPECT_NEAR(s, 0.20991553908700275, 1e-15);
  expect_close(f, std::vector<double>{1.0, 0.1, 0.003086760967011274, 0.000125}, 0, 1e-14, "llama3 frequencies");
}

TEST(RopeScaling, Llama3MatchesTransformers) {
  // Llama 3.1 8B's rotary config (head_dim 128, theta 5e5, factor 8, low 1, high 4, original 8192);
  // transformers 4.49's _compute_llama3_parameters, which works in float32: i < 29 keep f, 29..34
  // are interpolated, i > 34 divided by 8.
  const std::vector<std::pair<int, double>> want = {
      {0, 1.0},
      {10, 0.12868738174438477},
      {28, 0.0032114461064338684},
      {29, 0.0021665706299245358},
      {31, 0.0008567514596506953},
      {34, 0.0001785077911335975},
      {35, 9.556212171446532e-05},
      {50, 4.411534519022098e-06},
      {63, 3.068925877869333e-07},
  };
  std::vector<double> f(64);
  cpu::rope_frequencies(f.data(), 128, 5e5);
  cpu::rope_scale_llama3(f.data(), 64, 8.0, 1.0, 4.0, 8192.0);
  for (const auto& [i, value] : want)
    // transformers computes in float32: over all 64 frequencies its largest relative difference from
    // this double computation is 3.2e-7 (measured with transformers 4.49, torch 1.13).
    EXPECT_NEAR(f[(size_t)i], value, 4e-7 * value) << "frequency " << i;
}

TEST(RopeScaling, LinearScalingDividesPositions) {
  // Linear scaling is the unscaled rotation at position p / factor: cos(p / 4 * f_i).
  const int64_t d = 16, half = d / 2, max_pos = 50;
  const double theta = 1e4, factor = 4.0;
  std::vector<double> f((size_t)half);
  cpu::rope_frequencies(f.data(), d, theta);
  for (double& v : f) v /= factor;
  std::vector<double> cos((size_t)(max_pos * half)), sin(cos.size());
  cpu::rope_tables(cos.data(), sin.data(), max_pos, d, f.data());
  std::vector<double> want_cos, want_sin;
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = ((double)p / factor) * std::pow(theta, -2.0 * (double)i / (double)d);
      want_cos.push_back(std::cos(angle)), want_sin.push_back(std::sin(angle));
    }
  expect_close(cos, want_cos, 1e-15, 1e-13, "linear cos table");
  expect_close(sin, want_sin, 1e-15, 1e-13, "linear sin table");
}

TEST(RopeScaling, ThetaTablesEqualTablesFromUnscaledFrequencies) {
  // The theta overload is the frequency overload of rope_frequencies, bit for bit.
  const int64_t d = 64, max_pos = 33;
  std::vector<float> a((size_t)(max_pos * d / 2)), b(a.size()), c(a.size()), e(a.size());
  cpu::rope_tables(a.data(), b.data(), max_pos, d, 1e6);
  std::vector<double> f((size_t)(d / 2));
  cpu::rope_frequencies(f.data(), d, 1e6);
  cpu::rope_tables(c.data(), e.data(), max_pos, d, f.data());
  EXPECT_EQ(a, c);
  EXPECT_EQ(b, e);
}
