// The figures of a training step: rollout statistics, update metrics and the progress line.
#include "trainer/step_metrics.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace cohort::trainer::detail {

std::ostream& null_stream() {
  static std::ostream sink(nullptr);  // no buffer: every write fails quietly
  return sink;
}

PrefixedStream::PrefixedStream(std::ostream& out, std::string prefix)
    : std::ostream(nullptr), buffer_(out, std::move(prefix)) {
  rdbuf(&buffer_);
}

int PrefixedStream::Buffer::overflow(int c) {
  if (c == EOF) return 0;
  if (at_line_start_) out_ << prefix_;
  out_.put((char)c);
  at_line_start_ = c == '\n';
  if (at_line_start_) out_.flush();
  return c;
}

int PrefixedStream::Buffer::sync() {
  out_.flush();
  return 0;
}

std::string format_duration(double seconds) {
  int64_t s = (int64_t)std::llround(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  if (s >= 60) out << (s % 3600) / 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

void progress_line(std::ostream& log, int64_t step, int64_t steps, double reward, double accuracy, double length,
                   double kl, double step_seconds, double elapsed) {
  char line[256];
  double eta = step > 0 ? elapsed / step * (steps - step) : 0;
  std::snprintf(line, sizeof line,
                "step %lld/%lld | reward %.3f | acc %.3f | len %.1f | kl %.4f | %.2f s/step | ETA %s", (long long)step,
                (long long)steps, reward, accuracy, length, kl, step_seconds, format_duration(eta).c_str());
  log << line << "\n" << std::flush;
}

StepStats::StepStats(size_t functions) : functions_(functions), sums_(fixed_fields + 3 * functions, 0.0) {}

void StepStats::add_sample(const std::optional<double>& total, const std::vector<std::optional<double>>& per_function,
                           int64_t acc_index, double length, bool was_truncated, double policy_lag) {
  if (total) sums_[reward_sum] += *total, sums_[reward_sq] += *total * *total, sums_[scored] += 1;
  for (size_t f = 0; f < functions_ && f < per_function.size(); ++f) {
    if (!per_function[f]) continue;
    double v = *per_function[f];
    sums_[fixed_fields + 3 * f] += v, sums_[fixed_fields + 3 * f + 1] += v * v, sums_[fixed_fields + 3 * f + 2] += 1;
  }
  const auto& a = per_function[acc_index];
  if (a && *a >= 1.0) sums_[correct] += 1;
  sums_[len_sum] += length, len_max_ = std::max(len_max_, length);
  sums_[truncated] += was_truncated ? 1 : 0;
  sums_[samples] += 1;
  sums_[lag_sum] += policy_lag;
}

void StepStats::add_groups(const AdvantageStats& a) {
  sums_[groups] += (double)a.groups, sums_[zero_signal] += (double)a.zero_signal_groups;
  sums_[unscored] += (double)a.unscored;
}

void StepStats::add_unscored(uint32_t reason) {
  switch (reason) {
    case 2:
      sums_[lost_failed] += 1;
      break;
    case 3:
      sums_[lost_timeout] += 1;
      break;
    case 4:
      sums_[lost_crashed] += 1;
      break;
    case 5:
      sums_[lost_unavailable] += 1;
      break;
    default:
      break;  // not applicable: the function had nothing to score
  }
}

void StepStats::sum_over(comm::Collective& group) {
  group.all_reduce_sum(sums_.data(), (int64_t)sums_.size());
  group.all_reduce_max(&len_max_, 1);
}

double StepStats::reward_mean() const {
  return sums_[scored] ? sums_[reward_sum] / sums_[scored] : 0.0;
}
double StepStats::accuracy() const {
  return sums_[correct] / n();
}
double StepStats::length_mean() const {
  return sums_[len_sum] / n();
}

namespace {
double std_of(double sum, double sq, double count) {
  if (count <= 1) return 0.0;
  double mean = sum / count;
  return std::sqrt(std::max(0.0, sq / count - mean * mean));
}
}  // namespace

void StepStats::write(nlohmann::json& m, const std::vector<std::string>& names) const {
  m["reward"] = reward_mean();
  m["reward_std"] = std_of(sums_[reward_sum], sums_[reward_sq], sums_[scored]);
  for (size_t f = 0; f < functions_; ++f) {
    double sum = sums_[fixed_fields + 3 * f], sq = sums_[fixed_fields + 3 * f + 1],
           count = sums_[fixed_fields + 3 * f + 2];
    m["reward/" + names[f] + "/mean"] = count ? sum / count : 0.0;
    m["reward/" + names[f] + "/std"] = std_of(sum, sq, count);
    m["reward/" + names[f] + "/scored"] = count / n();
  }
  m["accuracy"] = accuracy();
  m["completion_length/mean"] = length_mean();
  m["completion_length/max"] = len_max_;
  m["truncated_fraction"] = sums_[truncated] / n();
  m["frac_zero_std"] = sums_[groups] ? sums_[zero_signal] / sums_[groups] : 0.0;
  m["unscored"] = sums_[unscored];
  m["policy_lag"] = sums_[lag_sum] / n();
  m["reward/unscored/failed"] = sums_[lost_failed];
  m["reward/unscored/timeout"] = sums_[lost_timeout];
  m["reward/unscored/crashed"] = sums_[lost_crashed];
  m["reward/unscored/unavailable"] = sums_[lost_unavailable];
}

void write_update_metrics(nlohmann::json& m, const UpdateMetrics& u) {
  m["loss"] = u.loss;
  m["policy_loss"] = u.policy_loss;
  m["clip_fraction"] = u.clip_fraction;
  m["kl"] = u.kl;
  m["entropy"] = u.entropy;
  m["grad_norm"] = u.grad_norm;
  m["lr"] = u.lr;
  m["ratio_mean"] = u.ratio_mean;
  m["rollout_mismatch_k3"] = u.mismatch_k3;
  m["skipped_optimizer_steps"] = u.skipped_steps;
}

}  // namespace cohort::trainer::detail
