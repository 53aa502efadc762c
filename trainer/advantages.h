// Group-relative advantages (GRPO): A_i = (r_i - mean(r_group)) / (std + eps), the same
// for every token of completion i, with the scaling variants users of TRL and veRL know.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace cohort::trainer {

// group: divide by each group's std (GRPO); batch: by the std of the whole batch
// (TRL scale_rewards="batch"); none: no division (Dr. GRPO).
enum class ScaleRewards { group, batch, none };

struct AdvantageOptions {
  ScaleRewards scale = ScaleRewards::group;
  double eps = 1e-4;  // added to the std, as TRL does
};

struct AdvantageStats {
  int64_t groups = 0;
  int64_t zero_signal_groups = 0;  // all scored rewards equal, or fewer than two scored
  int64_t unscored = 0;            // samples with "no score"
  double frac_zero_std() const { return groups ? (double)zero_signal_groups / groups : 0.0; }
};

// rewards: group_size consecutive samples per prompt; nullopt = "no score", which is left
// out of the group's mean and std and gets advantage 0. A group with no signal gets
// advantage exactly 0 for every member (never NaN). Std is the sample std (n - 1), as
// torch.std in TRL and veRL. batch_std, when given, replaces the std of `rewards` for ScaleRewards::batch
// (data-parallel learners each hold part of the batch; batch_std_of gives the whole batch's from sums).
AdvantageStats group_advantages(const std::vector<std::optional<double>>& rewards, int64_t group_size,
                                const AdvantageOptions& options, std::vector<double>& advantages,
                                std::optional<double> batch_std = std::nullopt);
// Sample std from the count, sum and sum of squares of the scored rewards.
double batch_std_of(double count, double sum, double sum_sq);

}  // namespace cohort::trainer
