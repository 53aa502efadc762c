// Pieces shared by the single-process and the distributed GRPO runs and the SFT run: the run directory,
// model setup, scoring, evaluation, per-step statistics and progress lines. Internal to trainer/.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/collective.h"
#include "model/byte_tokenizer.h"
#include "model/model_directory.h"
#include "model/transformer.h"
#include "reward/reward_function.h"
#include "rollout/dataset.h"
#include "rollout/engine.h"
#include "trainer/advantages.h"
#include "trainer/learner.h"
#include "trainer/run.h"
#include "trainer/settings.h"

namespace cohort::trainer::detail {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0);

// A stream of seeds that depends only on (run seed, purpose, a, b): the same config and seed give the same
// run however work is batched or split across ranks. Purposes: 1 init, 2 data order, 3 sampling, 4 shuffle,
// 5 SFT order.
uint64_t derive_seed(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b = 0);
std::string format_duration(double seconds);

struct RunDirectory {
  std::filesystem::path path;
  std::ofstream metrics;

  // resumed_step >= 0: a resumed run keeps the metrics of steps up to it and drops the rest (they are
  // computed again); otherwise metrics.jsonl starts empty.
  RunDirectory(const Settings& s, const std::string& yaml, int64_t resumed_step = -1);
  static std::filesystem::path path_of(const Settings& s);
  void write_metrics(const nlohmann::json& m);
};

std::vector<int32_t> encode_prompt(const Settings& s, const Tokenizer& tok, const nlohmann::json& row);
rollout::EngineOptions engine_options(const Settings& s, const Tokenizer& tok);
int64_t accuracy_index(const Settings& s, const reward::RewardSet& rewards);
rollout::PromptDataset load_train_prompts(const Settings& s, std::ostream& log);

// Scores completions in parallel; scores[i] is the RewardSet result of sample i.
std::vector<reward::RewardSet::Result> score_all(const reward::RewardSet& rewards,
                                                 const std::vector<const rollout::PromptRecord*>& records,
                                                 const std::vector<std::string>& prompts,
                                                 const std::vector<rollout::Completion>& completions);

EvalResult evaluate(Transformer& model, const Settings& s, const Tokenizer& tok, const rollout::PromptDataset& test,
                    const reward::RewardSet& rewards);

struct Common {
  ByteTokenizer tokenizer;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<reward::RewardSet> rewards;
  std::unique_ptr<rollout::PromptDataset> test;
};
Common setup(const Settings& s, std::ostream& log);

void log_eval(std::ostream& log, const char* when, const EvalResult& e);
// The step-0 evaluation both runs start with; it seeds the summary.
RunSummary evaluate_before_training(Transformer& model, const Settings& s, const Common& c, RunDirectory& dir,
                                    std::ostream& log);
// At the last step and every train.eval_every steps: evaluates, puts eval/* into m and the last step's
// result into summary. Returns the result, or nothing when this step has no evaluation.
std::optional<EvalResult> evaluate_at_step(Transformer& model, const Settings& s, const Common& c, int64_t step,
                                           int64_t steps, nlohmann::json& m, RunSummary& summary);
void progress_line(std::ostream& log, int64_t step, int64_t steps, double reward, double accuracy, double length,
                   double kl, double step_seconds, double elapsed);

// Rollout statistics of one step as sums, so ranks can add theirs together.
class StepStats {
 public:
  explicit StepStats(size_t functions);
  void add_sample(const std::optional<double>& total, const std::vector<std::optional<double>>& per_function,
                  int64_t accuracy_index, double length, bool truncated, double policy_lag);
  void add_groups(const AdvantageStats& a);
  // Sums over every rank of `group`.
  void sum_over(comm::Collective& group);
  // reward, reward_std, reward/NAME/{mean,std,scored}, accuracy, completion_length/{mean,max},
  // truncated_fraction, frac_zero_std, unscored, policy_lag.
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
    fixed_fields
  };
  size_t functions_;
  std::vector<double> sums_;  // fixed fields, then per function: sum, sum of squares, count
  double len_max_ = 0;
  double n() const { return std::max(1.0, sums_[samples]); }
};

// A completion as written to rollouts/step_N.jsonl.
struct RolloutLogEntry {
  std::string prompt, completion;
  bool stopped = false;  // finish "stop", else "length"
  double advantage = 0;
  std::optional<double> reward;
  std::vector<std::optional<double>> per_function;
};
// The first `count` entries, one JSON object per line.
void write_rollout_log(const RunDirectory& dir, int64_t step, int64_t count,
                       const std::vector<RolloutLogEntry>& entries, const std::vector<std::string>& names);

// Throws when data.train, rollout.group_size or rewards cannot make a GRPO run.
void check_grpo_settings(const Settings& s);

// loss, policy_loss, clip_fraction, kl, entropy, grad_norm, lr, ratio_mean, rollout_mismatch_k3,
// skipped_optimizer_steps.
void write_update_metrics(nlohmann::json& m, const UpdateMetrics& u);

}  // namespace cohort::trainer::detail
