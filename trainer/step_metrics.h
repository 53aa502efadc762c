// The figures of a GRPO step (internal to trainer/): rollout statistics summed over ranks, the update's
// metrics, and the progress line.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/collective.h"
#include "trainer/advantages.h"
#include "trainer/learner.h"

namespace cohort::trainer::detail {

std::string format_duration(double seconds);

// An output stream that drops everything (ranks that do not print, --quiet).
std::ostream& null_stream();
// Writes to `out` with `prefix` at the start of every line ("[rank 2] ").
class PrefixedStream : public std::ostream {
 public:
  PrefixedStream(std::ostream& out, std::string prefix);

 private:
  class Buffer : public std::streambuf {
   public:
    Buffer(std::ostream& out, std::string prefix) : out_(out), prefix_(std::move(prefix)) {}

   protected:
    int overflow(int c) override;
    int sync() override;

   private:
    std::ostream& out_;
    std::string prefix_;
    bool at_line_start_ = true;
  };
  Buffer buffer_;
};
void progress_line(std::ostream& log, int64_t step, int64_t steps, double reward, double accuracy, double length,
                   double kl, double step_seconds, double elapsed);

// Rollout statistics of one step as sums, so ranks can add theirs together.
class StepStats {
 public:
  explicit StepStats(size_t functions);
  void add_sample(const std::optional<double>& total, const std::vector<std::optional<double>>& per_function,
                  int64_t accuracy_index, double length, bool truncated, double policy_lag);
  void add_groups(const AdvantageStats& a);
  // A (sample, function) without a score, by its reason (reward::Unscored's value).
  void add_unscored(uint32_t reason);
  // Sums over every rank of `group`.
  void sum_over(comm::Collective& group);
  // reward, reward_std, reward/NAME/{mean,std,scored}, accuracy, completion_length/{mean,max},
  // truncated_fraction, frac_zero_std, unscored, policy_lag, reward/unscored/{failed,timeout,crashed,unavailable}.
  void write(nlohmann::json& m, const std::vector<std::string>& names) const;
  double reward_mean() const;
  double accuracy() const;
  double length_mean() const;

 private:
  enum Field {
    reward_sum,
    reward_sq,
    scored,
    correct,
    len_sum,
    truncated,
    samples,
    groups,
    zero_signal,
    unscored,
    lag_sum,
    lost_failed,  // reward/unscored/{failed,timeout,crashed,unavailable}: scores lost to a broken function or server
    lost_timeout,
    lost_crashed,
    lost_unavailable,
    fixed_fields
  };
  size_t functions_;
  std::vector<double> sums_;  // fixed fields, then per function: sum, sum of squares, count
  double len_max_ = 0;
  double n() const { return std::max(1.0, sums_[samples]); }
};

// loss, policy_loss, clip_fraction, kl, entropy, grad_norm, lr, ratio_mean, rollout_mismatch_k3,
// skipped_optimizer_steps.
void write_update_metrics(nlohmann::json& m, const UpdateMetrics& u);

}  // namespace cohort::trainer::detail
