// Shared pieces of the training runs.
#include "trainer/run_common.h"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "kernels/error.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "model/hf_config.h"
#include "model/safetensors.h"
#include "rollout/template.h"
#include "trainer/checkpoint.h"

namespace cohort::trainer::detail {

namespace fs = std::filesystem;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

uint64_t derive_seed(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b) {
  Rng r(seed ^ (purpose * 0x9E3779B97F4A7C15ull));
  Rng s(r.next_u64() ^ (a * 0xBF58476D1CE4E5B9ull) ^ (b * 0x94D049BB133111EBull));
  return s.next_u64();
}

std::string format_duration(double seconds) {
  int64_t s = (int64_t)std::llround(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  if (s >= 60) out << (s % 3600) / 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

fs::path RunDirectory::path_of(const Settings& s) {
  COHORT_REQUIRE(!s.run.name.empty(), "run.name is empty: name the run (run.name=NAME)");
  return fs::path(s.run.dir) / s.run.name;
}

RunDirectory::RunDirectory(const Settings& s, const std::string& yaml, int64_t resumed_step) {
  path = path_of(s);
  std::error_code ec;
  fs::create_directories(path / "rollouts", ec);
  COHORT_REQUIRE(!ec, "cannot create run directory " << path << ": " << ec.message());
  std::ofstream(path / "config.yaml") << yaml;
  std::string kept;
  if (resumed_step >= 0) {
    std::ifstream old(path / "metrics.jsonl");
    for (std::string line; std::getline(old, line);) {
      nlohmann::json m = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (m.is_object() && m.value("step", int64_t(-1)) >= 0 && m.value("step", int64_t(-1)) <= resumed_step)
        kept += line + "\n";
    }
  }
  metrics.open(path / "metrics.jsonl", std::ios::trunc);
  COHORT_REQUIRE(metrics.good(), "cannot write " << (path / "metrics.jsonl"));
  metrics << kept;
  metrics.flush();
}

void RunDirectory::write_metrics(const nlohmann::json& m) {
  metrics << m.dump() << "\n";
  metrics.flush();
}

namespace {
std::unique_ptr<Transformer> make_model(const Settings& s, const Tokenizer& tok, std::ostream& log) {
  std::unique_ptr<Transformer> model;
  if (s.model.init == "random") {
    ModelConfig c = model_config_named(s.model.size);
    COHORT_REQUIRE(c.vocab >= tok.vocab_size(), "model.size '" << s.model.size << "' has vocab " << c.vocab
                                                               << ", smaller than the tokenizer's "
                                                               << tok.vocab_size());
    model = std::make_unique<Transformer>(c);
    model->init_random(derive_seed((uint64_t)s.run.seed, 1, 0));
    log << "model: random " << c.name << ", " << model->num_parameters() << " parameters, seed " << s.run.seed << "\n";
  } else {
    model = load_model_from(s.model.init);
    log << "model: " << s.model.init << ", " << model->num_parameters() << " parameters\n";
  }
  model->set_compute(s.model.compute);
  return model;
}

}  // namespace

std::vector<int32_t> encode_prompt(const Settings& s, const Tokenizer& tok, const nlohmann::json& row) {
  return tok.encode(rollout::fill_template(s.data.prompt_template, row), /*add_bos=*/true);
}

rollout::EngineOptions engine_options(const Settings& s, const Tokenizer& tok) {
  rollout::EngineOptions o;
  o.max_batch = s.rollout.max_batch;
  o.stop_token_ids = {tok.eos_id()};
  o.stop_strings = s.rollout.stop_strings;
  return o;
}

int64_t accuracy_index(const Settings& s, const reward::RewardSet& rewards) {
  for (size_t i = 0; i < rewards.names().size(); ++i)
    if (rewards.names()[i] == s.train.accuracy_reward) return (int64_t)i;
  return 0;  // the first function stands in when none carries the accuracy name
}

// Scores completions in parallel; scores[i] is the RewardSet result of sample i.
std::vector<reward::RewardSet::Result> score_all(const reward::RewardSet& rewards,
                                                 const std::vector<const rollout::PromptRecord*>& records,
                                                 const std::vector<std::string>& prompts,
                                                 const std::vector<rollout::Completion>& completions) {
  std::vector<reward::RewardSet::Result> out(completions.size());
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t i = 0; i < (int64_t)completions.size(); ++i) {
    const rollout::Completion& c = completions[i];
    reward::RewardInput in{prompts[i], c.text, records[i]->row, (int64_t)c.tokens.size(),
                           c.finish == rollout::FinishReason::length};
    out[i] = rewards.score(in);
  }
  return out;
}

EvalResult evaluate(Transformer& model, const Settings& s, const Tokenizer& tok, const rollout::PromptDataset& test,
                    const reward::RewardSet& rewards) {
  EvalResult r;
  int64_t n = s.train.eval_prompts > 0 ? std::min(s.train.eval_prompts, test.size()) : test.size();
  std::vector<rollout::GenerationRequest> requests((size_t)n);
  std::vector<const rollout::PromptRecord*> records((size_t)n);
  std::vector<std::string> prompts((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    records[i] = &test[i];
    prompts[i] = rollout::fill_template(s.data.prompt_template, test[i].row);
    requests[i].prompt = tok.encode(prompts[i], true);
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

Common setup(const Settings& s, std::ostream& log) {
  // The thread count was chosen by the caller (launch/main.cpp: --threads, run.threads, COHORT_THREADS).
  Common c;
  c.model = make_model(s, c.tokenizer, log);
  c.model->set_logit_temperature(s.rollout.temperature > 0 ? s.rollout.temperature : 1.0);
  c.rewards = std::make_unique<reward::RewardSet>(s.rewards);
  if (!s.data.test.empty()) {
    rollout::DatasetOptions o;
    o.path = s.data.test, o.prompt_field = s.data.prompt_field, o.skip_malformed = s.data.skip_malformed;
    rollout::DatasetLoadReport report;
    c.test = std::make_unique<rollout::PromptDataset>(rollout::PromptDataset::load_jsonl(o, &report));
    log << "data: " << c.test->size() << " test prompts from " << s.data.test
        << (report.skipped ? " (" + std::to_string(report.skipped) + " malformed lines skipped)" : "") << "\n";
  }
  return c;
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
  EvalResult e = evaluate(model, s, c.tokenizer, *c.test, *c.rewards);
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
  EvalResult e = evaluate(model, s, c.tokenizer, *c.test, *c.rewards);
  m["eval/accuracy"] = e.accuracy;
  m["eval/reward"] = e.reward_mean;
  m["eval/completion_length"] = e.completion_tokens_mean;
  if (step == steps) summary.accuracy_after = e.accuracy, summary.reward_after = e.reward_mean;
  return e;
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

rollout::PromptDataset load_train_prompts(const Settings& s, std::ostream& log) {
  rollout::DatasetOptions o;
  o.path = s.data.train, o.prompt_field = s.data.prompt_field, o.skip_malformed = s.data.skip_malformed;
  rollout::DatasetLoadReport report;
  rollout::PromptDataset train = rollout::PromptDataset::load_jsonl(o, &report);
  log << "data: " << train.size() << " training prompts from " << s.data.train
      << (report.skipped ? " (" + std::to_string(report.skipped) + " malformed lines skipped)" : "") << "\n";
  return train;
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
}

void write_rollout_log(const RunDirectory& dir, int64_t step, int64_t count,
                       const std::vector<RolloutLogEntry>& entries, const std::vector<std::string>& names) {
  std::ofstream out(dir.path / "rollouts" / ("step_" + std::to_string(step) + ".jsonl"));
  auto value = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  for (int64_t i = 0; i < std::min<int64_t>(count, (int64_t)entries.size()); ++i) {
    const RolloutLogEntry& e = entries[i];
    nlohmann::json r = {{"step", step},
                        {"prompt", e.prompt},
                        {"completion", e.completion},
                        {"finish", e.stopped ? "stop" : "length"},
                        {"advantage", e.advantage}};
    r["reward"] = value(e.reward);
    for (size_t f = 0; f < names.size() && f < e.per_function.size(); ++f)
      r["rewards"][names[f]] = value(e.per_function[f]);
    // Model output need not be UTF-8: invalid bytes become U+FFFD rather than an error.
    out << r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
}

void check_grpo_settings(const Settings& s) {
  COHORT_REQUIRE(!s.data.train.empty(), "data.train is empty: GRPO needs a JSONL file of prompts");
  COHORT_REQUIRE(s.rollout.group_size >= 2, "rollout.group_size must be at least 2 for group-relative advantages");
  COHORT_REQUIRE(!s.rewards.empty(), "rewards is empty: configure at least one reward function");
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
