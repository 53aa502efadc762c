// Qwen3's q/k norm: an RMSNorm over each head's head_dim channels with one weight (head_dim) that
// every head and token shares, as transformers' Qwen3RMSNorm applies it to q_proj(x).view(N, H, hd).
// cohort runs it as cpu::rmsnorm over the rows of (N * heads, head_dim); this checks that reading
// against the per-head formula written out directly, and its backward (dx and the shared weight's
// gradient, summed over heads and tokens) against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "common/check.h"
#include "kernels/cpu/rmsnorm.h"

using namespace cohort;
using namespace cohort::testing;

namespace {
// out[n, h, :] = x[n, h, :] / sqrt(mean_c x[n, h, c]^2 + eps) * w.
std::vector<double> per_head_reference(const std::vector<double>& x, const std::vector<double>& w, int64_t N, int64_t H,
                                       int64_t hd, double eps) {
  std::vector<double> out(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      const double* v = x.data() + (n * H + h) * hd;
      double mean_square = 0;
      for (int64_t c = 0; c < hd; ++c) mean_square += v[c] * v[c] / (double)hd;
      for (int64_t c = 0; c < hd; ++c) out[(n * H + h) * hd + c] = v[c] / std::sqrt(mean_square + eps) * w[c];
    }
  return out;
}
}  // namespace

class QkNormShapes : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(QkNormShapes, ForwardMatchesPerHeadReference) {
  auto [N, H, hd] = GetParam();
  auto x = random_vector(N * H * hd, 1, 3.0), w = random_vector(hd, 2);
  auto xf = cast<float>(x), wf = cast<float>(w);
  std::vector<float> out(x.size()), rstd(N * H);
  cpu::rmsnorm_forward(out.data(), rstd.data(), xf.data(), wf.data(), N * H, hd, 1e-6f);
  expect_close(out, per_head_reference(x, w, N, H, hd, 1e-6), 1e-5, 1e-5, "q/k norm forward");
}

TEST_P(QkNormShapes, BackwardMatchesFiniteDifferences) {
  auto [N, H, hd] = GetParam();
  auto x = random_vector(N * H * hd, 3), w = random_vector(hd, 4), probe = random_vector(N * H * hd, 5);
  auto loss = [&] { return dot(per_head_reference(x, w, N, H, hd, 1e-6), probe); };
  std::vector<double> out(x.size()), rstd(N * H), dx(x.size(), 0.0), dw(hd, 0.0);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N * H, hd, 1e-6);
  cpu::rmsnorm_backward(dx.data(), dw.data(), probe.data(), x.data(), w.data(), rstd.data(), N * H, hd);
  expect_gradient(loss, x, dx, "q/k norm dx");
  expect_gradient(loss, w, dw, "q/k norm dweight (shared by every head)");
}

// (tokens, heads, head_dim): one head; GQA-like few heads; Qwen3's head_dim 128 with many rows
// (more than one reduction block of the weight gradient).
INSTANTIATE_TEST_SUITE_P(Shapes, QkNormShapes,
                         ::testing::Values(std::make_tuple<int64_t, int64_t, int64_t>(3, 1, 8),
                                           std::make_tuple<int64_t, int64_t, int64_t>(5, 4, 16),
                                           std::make_tuple<int64_t, int64_t, int64_t>(9, 8, 128)));
