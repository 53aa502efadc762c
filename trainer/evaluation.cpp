// Scoring completions and the held-out greedy evaluation of a run.
#include "trainer/evaluation.h"

#include <iomanip>

#include "rollout/template.h"

namespace cohort::trainer::detail {

// Scores completions in parallel; scores[i] is the RewardSet result of sample i.
std::vector<reward::RewardSet::Result> score_all(const reward::RewardSet& rewards,
                                                 const std::vector<const rollout::PromptRecord*>& records,
                                                 const std::vector<std::string>& prompts,
                                                 const std::vector<rollout::Completion>& completions) {
  std::vector<reward::RewardInput> inputs;
  inputs.reserve(completions.size());
  for (size_t i = 0; i < completions.size(); ++i) {
    const rollout::Completion& c = completions[i];
    inputs.push_back(
        {prompts[i], c.text, records[i]->row, (int64_t)c.tokens.size(), c.finish == rollout::FinishReason::length});
  }
  // In-process functions on this rank's threads; isolated and remote ones meanwhile in their processes.
  auto parallel = [](int64_t n, const std::function<void(int64_t)>& body) {
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; ++i) body(i);
  };
  return rewards.score_batch(inputs, parallel);
}

EvalResult evaluate(Transformer& model, const Settings& s, const Common& c) {
  const rollout::PromptDataset& test = *c.test;
  const reward::RewardSet& rewards = *c.rewards;
  const Tokenizer& tok = *c.tokenizer;
  EvalResult r;
  int64_t n = s.train.eval_prompts > 0 ? std::min(s.train.eval_prompts, test.size()) : test.size();
  std::vector<rollout::GenerationRequest> requests((size_t)n);
  std::vector<const rollout::PromptRecord*> records((size_t)n);
  std::vector<std::string> prompts((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    records[i] = &test[i];
    Prompt prompt = make_prompt(s, c, test[i].row);
    prompts[i] = std::move(prompt.text);
    requests[i].prompt = std::move(prompt.ids);
    requests[i].max_new_tokens = s.rollout.max_new_tokens;
    requests[i].sampling.temperature = 0.f;  // greedy
  }
  rollout::GenerationEngine engine(model, tok, engine_options(s, tok));
  std::vector<rollout::Completion> completions = engine.generate(requests);
  auto scores = score_all(rewards, records, prompts, completions);
  int64_t acc = accuracy_index(s, rewards);
  std::vector<double> sums(rewards.names().size(), 0.0);
  double correct = 0, total = 0, tokens = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto& sc = scores[i];
    if (sc.per_function[acc] && *sc.per_function[acc] >= 1.0) correct += 1;
    total += sc.total.value_or(0.0);
    tokens += (double)completions[i].tokens.size();
    for (size_t f = 0; f < sums.size(); ++f) sums[f] += sc.per_function[f].value_or(0.0);
  }
  r.prompts = n;
  r.accuracy = n ? correct / n : 0;
  r.reward_mean = n ? total / n : 0;
  r.completion_tokens_mean = n ? tokens / n : 0;
  r.per_function = nlohmann::json::object();
  for (size_t f = 0; f < sums.size(); ++f) r.per_function[rewards.names()[f]] = n ? sums[f] / n : 0;
  return r;
}

void log_eval(std::ostream& log, const char* when, const EvalResult& e) {
  log << "eval " << when << ": accuracy " << std::fixed << std::setprecision(3) << e.accuracy << ", reward "
      << e.reward_mean << ", length " << std::setprecision(1) << e.completion_tokens_mean << " over " << e.prompts
      << " prompts\n"
      << std::defaultfloat;
}

// The step-0 evaluation both runs start with; it seeds the summary.
RunSummary evaluate_before_training(Transformer& model, const Settings& s, const Common& c, RunDirectory& dir,
                                    std::ostream& log) {
  RunSummary summary;
  summary.run_dir = dir.path.string();
  if (!c.test) return summary;
  EvalResult e = evaluate(model, s, c);
  log_eval(log, "before training", e);
  summary.accuracy_before = e.accuracy, summary.reward_before = e.reward_mean;
  dir.write_metrics({{"step", 0},
                     {"eval/accuracy", e.accuracy},
                     {"eval/reward", e.reward_mean},
                     {"eval/completion_length", e.completion_tokens_mean}});
  return summary;
}

std::optional<EvalResult> evaluate_at_step(Transformer& model, const Settings& s, const Common& c, int64_t step,
                                           int64_t steps, nlohmann::json& m, RunSummary& summary) {
  if (!c.test || !(step == steps || (s.train.eval_every > 0 && step % s.train.eval_every == 0))) return std::nullopt;
  EvalResult e = evaluate(model, s, c);
  m["eval/accuracy"] = e.accuracy;
  m["eval/reward"] = e.reward_mean;
  m["eval/completion_length"] = e.completion_tokens_mean;
  if (step == steps) summary.accuracy_after = e.accuracy, summary.reward_after = e.reward_mean;
  return e;
}

}  // namespace cohort::trainer::detail
