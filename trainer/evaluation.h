// Scoring completions, and the held-out greedy evaluation a run makes before training, every
// train.eval_every steps and at its end (internal to trainer/).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "reward/reward_function.h"
#include "rollout/dataset.h"
#include "rollout/engine.h"
#include "trainer/run.h"
#include "trainer/run_directory.h"
#include "trainer/run_setup.h"

namespace cohort::trainer::detail {

// Scores completions in parallel; scores[i] is the RewardSet result of sample i.
std::vector<reward::RewardSet::Result> score_all(const reward::RewardSet& rewards,
                                                 const std::vector<const rollout::PromptRecord*>& records,
                                                 const std::vector<std::string>& prompts,
                                                 const std::vector<rollout::Completion>& completions);

// Greedy completions of the first train.eval_prompts of c.test's prompts, scored by c.rewards.
EvalResult evaluate(Transformer& model, const Settings& s, const Common& c);

void log_eval(std::ostream& log, const char* when, const EvalResult& e);
// The step-0 evaluation a run starts with; it seeds the summary.
RunSummary evaluate_before_training(Transformer& model, const Settings& s, const Common& c, RunDirectory& dir,
                                    std::ostream& log);
// At the last step and every train.eval_every steps: evaluates, puts eval/* into m and the last step's
// result into summary. Returns the result, or nothing when this step has no evaluation.
std::optional<EvalResult> evaluate_at_step(Transformer& model, const Settings& s, const Common& c, int64_t step,
                                           int64_t steps, nlohmann::json& m, RunSummary& summary);

}  // namespace cohort::trainer::detail
