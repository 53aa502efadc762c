// ThreadGovernor: time the work at two thread counts and run the faster (see the header).
#include "kernels/thread_governor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/threads.h"

namespace cohort {

namespace {
constexpr int64_t kWarmupCalls = 2;        // first calls pay page faults and cold caches
constexpr int64_t kShortestInterval = 8;   // calls between re-checks right after a change
constexpr int64_t kLongestInterval = 256;  // while the choice keeps holding: under 1% of calls
constexpr double kSwitchMargin = 0.93;     // the other count must be 7% faster to take over
constexpr double kSuddenSlowdown = 1.6;    // calls this much slower than usual ...
constexpr int kSlowCallsInARow = 3;        // ... this many in a row trigger a re-check (one is scheduling noise)
constexpr double kSmoothing = 0.25;        // weight of a new measurement of the running choice
}  // namespace

bool ThreadGovernor::enabled() {
  static const bool on = [] {
    const char* v = std::getenv("COHORT_THREAD_GOVERNOR");
    return !(v && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0));
  }();
  return on;
}

int ThreadGovernor::begin() {
  const int budget = thread_count();
  if (budget != budget_) {  // the process's count changed: start over
    budget_ = budget;
    candidates_[0] = budget, candidates_[1] = std::max(1, budget / 2);
    per_unit_[0] = per_unit_[1] = 0;
    chosen_ = 0, calls_ = 0, next_probe_ = kWarmupCalls + 1, probe_interval_ = kShortestInterval, slow_calls_ = 0;
  }
  if (budget_ <= 1 || !enabled()) {
    running_ = -1;
    return budget_;
  }
  // Re-check the other count only once the chosen one has a measurement to compare with.
  running_ = calls_ >= next_probe_ && per_unit_[chosen_] > 0 ? 1 - chosen_ : chosen_;
  if (candidates_[running_] != budget_) use_threads(candidates_[running_]);
  start_ = Clock::now();
  return candidates_[running_];
}

void ThreadGovernor::end(double units) {
  if (running_ < 0) return;
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  if (candidates_[running_] != budget_) use_threads(budget_);
  const int64_t call = calls_++;
  if (call < kWarmupCalls || !(units > 0)) return;
  const double per_unit = seconds / units;
  double& estimate = per_unit_[running_];
  if (running_ != chosen_) {
    // A re-check: its one measurement replaces what the other count measured long ago.
    estimate = per_unit;
    if (per_unit_[running_] < kSwitchMargin * per_unit_[chosen_]) {
      chosen_ = running_;
      probe_interval_ = kShortestInterval;
    } else {
      probe_interval_ = std::min(kLongestInterval, probe_interval_ * 2);
    }
    next_probe_ = calls_ + probe_interval_;
    slow_calls_ = 0;
    return;
  }
  slow_calls_ = estimate > 0 && per_unit > kSuddenSlowdown * estimate ? slow_calls_ + 1 : 0;
  if (slow_calls_ >= kSlowCallsInARow) next_probe_ = std::min(next_probe_, calls_), slow_calls_ = 0;
  estimate = estimate > 0 ? (1 - kSmoothing) * estimate + kSmoothing * per_unit : per_unit;
}

}  // namespace cohort
