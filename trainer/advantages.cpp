// Group-relative advantages with "no score" members and zero-signal groups handled.
#include "trainer/advantages.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"

namespace cohort::trainer {

namespace {
struct Moments {
  int64_t n = 0;
  double mean = 0, std = 0;
};

Moments moments(const std::optional<double>* r, int64_t count) {
  Moments m;
  double sum = 0;
  for (int64_t i = 0; i < count; ++i)
    if (r[i]) sum += *r[i], ++m.n;
  if (m.n == 0) return m;
  m.mean = sum / m.n;
  double ss = 0;
  for (int64_t i = 0; i < count; ++i)
    if (r[i]) ss += (*r[i] - m.mean) * (*r[i] - m.mean);
  m.std = m.n > 1 ? std::sqrt(ss / (m.n - 1)) : 0.0;
  return m;
}
}  // namespace

AdvantageStats group_advantages(const std::vector<std::optional<double>>& rewards, int64_t group_size,
                                const AdvantageOptions& options, std::vector<double>& advantages,
                                std::optional<double> batch_std_override) {
  COHORT_REQUIRE(group_size > 0, "group size must be positive, got " << group_size);
  COHORT_REQUIRE(rewards.size() % group_size == 0, rewards.size()
                                                       << " rewards do not split into groups of " << group_size);
  for (const auto& r : rewards)
    COHORT_REQUIRE(!r || std::isfinite(*r), "a reward is not finite (" << *r << "); use no score instead");
  AdvantageStats stats;
  stats.groups = (int64_t)rewards.size() / group_size;
  advantages.assign(rewards.size(), 0.0);
  double batch_std = batch_std_override ? *batch_std_override : moments(rewards.data(), (int64_t)rewards.size()).std;
  for (int64_t g = 0; g < stats.groups; ++g) {
    const std::optional<double>* r = rewards.data() + g * group_size;
    Moments m = moments(r, group_size);
    stats.unscored += group_size - m.n;
    // Equal rewards carry no signal; a relative test keeps float noise from creating one.
    bool no_signal = m.n < 2 || m.std <= 1e-12 * std::max(1.0, std::fabs(m.mean));
    if (no_signal) {
      ++stats.zero_signal_groups;
      continue;
    }
    double scale = options.scale == ScaleRewards::group   ? m.std + options.eps
                   : options.scale == ScaleRewards::batch ? batch_std + options.eps
                                                          : 1.0;
    for (int64_t i = 0; i < group_size; ++i)
      if (r[i]) advantages[g * group_size + i] = (*r[i] - m.mean) / scale;
  }
  return stats;
}

double batch_std_of(double count, double sum, double sum_sq) {
  if (count < 2) return 0.0;
  return std::sqrt(std::max(0.0, (sum_sq - sum * sum / count) / (count - 1)));
}

}  // namespace cohort::trainer
