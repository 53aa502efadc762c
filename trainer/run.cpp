// GRPO and SFT runs in one process: rollout -> reward -> advantages -> update, with
// evaluation, metrics.jsonl, rollouts/*.jsonl, a progress line per step, and the final
// model written as a Hugging Face directory (config.json, model.safetensors, tokenizer.json).
// Under mpirun with more than one rank, run_grpo hands over to run_grpo_distributed.
#include "trainer/run.h"

#include <cmath>
#include <filesystem>
#include <optional>
#include <sstream>
#include <fstream>
#include <ostream>

#include "kernels/error.h"
#include "kernels/threads.h"
#include "rollout/template.h"
#include "trainer/checkpoint.h"
#include "trainer/learner.h"
#include "trainer/run_common.h"

namespace cohort::trainer {

using namespace detail;

namespace {

// The checkpoint train.resume points at: auto takes checkpoints/latest when there is one.
std::filesystem::path resume_path(const Settings& s, const std::filesystem::path& checkpoints) {
  if (s.train.resume == "never") return {};
  if (s.train.resume == "auto") return latest_checkpoint(checkpoints);
  COHORT_REQUIRE(std::filesystem::exists(s.train.resume),
                 "train.resume: '" << s.train.resume << "' is neither auto, never nor an existing checkpoint");
  return s.train.resume;
}

// Reads the checkpoint a run resumes from and refuses one whose config differs from this run's in
// anything but the keys a resume may change.
std::optional<CheckpointContents> checkpoint_to_resume(const Settings& s, const std::string& yaml) {
  std::filesystem::path from = resume_path(s, RunDirectory::path_of(s) / "checkpoints");
  if (from.empty()) return std::nullopt;
  CheckpointContents c = read_checkpoint(from);
  std::vector<std::string> differ = config_differences(c.config_yaml, yaml);
  if (!differ.empty()) {
    std::ostringstream msg;
    msg << "cannot resume from " << from.string() << ": its config differs from this run's in " << differ.size()
        << (differ.size() == 1 ? " key" : " keys") << " (train.resume=never starts afresh):";
    for (const std::string& d : differ) msg << "\n  " << d;
    throw Error(msg.str());
  }
  return c;
}

void save_checkpoint(const RunDirectory& dir, const Settings& s, const std::string& yaml, Transformer& model,
                     Learner& learner, const rollout::DataCursor& cursor, int64_t step, const RunSummary& summary) {
  std::filesystem::path checkpoints = dir.path / "checkpoints";
  std::filesystem::create_directories(checkpoints);
  TrainingState state;
  state.step = step;
  state.optimizer_steps = learner.optimizer().steps_taken();
  state.data_cursor = cursor.state();
  state.extra = {{"accuracy_before", summary.accuracy_before},
                 {"reward_before", summary.reward_before},
                 {"accuracy_after", summary.accuracy_after},
                 {"reward_after", summary.reward_after}};
  std::filesystem::path path = checkpoint_path(checkpoints, step);
  write_checkpoint(path, model, learner.optimizer().first_moments(), learner.optimizer().second_moments(),
                   learner.reference_weights(), state, yaml);
  publish_checkpoint(checkpoints, path, s.train.keep_checkpoints);
}

}  // namespace

RunSummary run_grpo(const Settings& s, const std::string& yaml, std::ostream& log) {
  auto t_start = Clock::now();
  check_grpo_settings(s);
  std::optional<CheckpointContents> resumed = checkpoint_to_resume(s, yaml);
  RunDirectory dir(s, yaml, resumed ? resumed->state.step : -1);
  Common c = setup(s, log);
  rollout::PromptDataset train = load_train_prompts(s, log);
  rollout::DataCursor cursor(train.size(), derive_seed((uint64_t)s.run.seed, 2, 0));
  Transformer& model = *c.model;
  int64_t total_optimizer_steps = s.train.steps * s.algorithm.num_iterations * s.algorithm.mini_batches;
  Learner learner(model, s, total_optimizer_steps);
  rollout::GenerationEngine engine(model, c.tokenizer, engine_options(s, c.tokenizer));
  const int64_t G = s.rollout.group_size, acc_index = accuracy_index(s, *c.rewards);

  RunSummary summary;
  int64_t first_step = 1;
  if (resumed) {
    // Everything the next step reads: weights, AdamW moments and step count, the data cursor, the
    // reference policy. Sampling and shuffling seeds are functions of (seed, purpose, step), so they need
    // no saving, and thread counts do not change results (kernels/thread_governor.h).
    COHORT_REQUIRE(
        (int64_t)resumed->weights.size() == model.num_parameters(),
        "the checkpoint holds " << resumed->weights.size() << " parameters, the model " << model.num_parameters());
    model.weights() = std::move(resumed->weights);
    learner.optimizer().restore(std::move(resumed->adam_m), std::move(resumed->adam_v), resumed->state.optimizer_steps);
    if (std::vector<float>* ref = learner.reference_weights()) {
      COHORT_REQUIRE(resumed->reference.size() == ref->size(),
                     "the checkpoint has no reference policy, but algorithm.beta > 0 needs one");
      *ref = std::move(resumed->reference);
    }
    cursor.restore(resumed->state.data_cursor);
    first_step = resumed->state.step + 1;
    summary.run_dir = dir.path.string();
    summary.accuracy_before = resumed->state.extra.value("accuracy_before", -1.0);
    summary.reward_before = resumed->state.extra.value("reward_before", 0.0);
    // A run resumed at its last step has nothing left to do; its summary is the checkpoint's.
    summary.accuracy_after = resumed->state.extra.value("accuracy_after", -1.0);
    summary.reward_after = resumed->state.extra.value("reward_after", 0.0);
    log << "resumed at step " << resumed->state.step << " of " << s.train.steps << "\n";
  } else {
    summary = evaluate_before_training(model, s, c, dir, log);
  }
  auto t_loop = Clock::now();
  for (int64_t step = first_step; step <= s.train.steps; ++step) {
    auto t_step = Clock::now();
    std::vector<const rollout::PromptRecord*> records;
    std::vector<std::string> prompts;
    std::vector<rollout::Completion> completions;
    std::vector<reward::RewardSet::Result> scores;
    double t_generate = 0, t_reward = 0;
    int64_t generated = 0, rounds = 0, dropped_groups = 0;
    // Dynamic sampling draws more prompts until enough groups carry signal.
    while ((int64_t)records.size() < s.rollout.prompts_per_step * G) {
      ++rounds;
      int64_t want = s.rollout.prompts_per_step - (int64_t)records.size() / G;
      std::vector<int64_t> indices = cursor.next(want);
      std::vector<rollout::GenerationRequest> requests;
      std::vector<const rollout::PromptRecord*> round_records;
      std::vector<std::string> round_prompts;
      for (int64_t idx : indices) {
        std::string text = rollout::fill_template(s.data.prompt_template, train[idx].row);
        std::vector<int32_t> ids = c.tokenizer.encode(text, true);
        for (int64_t g = 0; g < G; ++g) {
          rollout::GenerationRequest r;
          r.prompt = ids, r.max_new_tokens = s.rollout.max_new_tokens, r.sampling = s.rollout.sampling();
          r.seed = derive_seed((uint64_t)s.run.seed, 3, (uint64_t)step * 1000003 + rounds, (uint64_t)requests.size());
          requests.push_back(std::move(r));
          round_records.push_back(&train[idx]);
          round_prompts.push_back(text);
        }
      }
      auto t0 = Clock::now();
      std::vector<rollout::Completion> round = engine.generate(requests);
      t_generate += seconds_since(t0);
      generated += engine.last_stats().generated_tokens;
      t0 = Clock::now();
      auto round_scores = score_all(*c.rewards, round_records, round_prompts, round);
      t_reward += seconds_since(t0);
      for (int64_t g0 = 0; g0 < (int64_t)round.size(); g0 += G) {
        bool keep = true;
        if (s.algorithm.dynamic_sampling && rounds < s.algorithm.dynamic_sampling_max_rounds) {
          std::optional<double> first;
          bool varied = false;
          for (int64_t i = g0; i < g0 + G; ++i) {
            auto t = round_scores[i].total;
            if (!t) continue;
            if (first && *t != *first) varied = true;
            if (!first) first = t;
          }
          keep = varied;
        }
        if (!keep) {
          ++dropped_groups;
          continue;
        }
        for (int64_t i = g0; i < g0 + G; ++i) {
          records.push_back(round_records[i]);
          prompts.push_back(round_prompts[i]);
          completions.push_back(std::move(round[i]));
          scores.push_back(round_scores[i]);
        }
      }
      if (!s.algorithm.dynamic_sampling) break;
    }

    std::vector<std::optional<double>> totals(scores.size());
    for (size_t i = 0; i < scores.size(); ++i) totals[i] = scores[i].total;
    std::vector<double> advantages;
    AdvantageStats adv_stats = group_advantages(totals, G, s.algorithm.advantages, advantages);

    std::vector<Sample> samples(completions.size());
    for (size_t i = 0; i < completions.size(); ++i) {
      samples[i].prompt = c.tokenizer.encode(prompts[i], true);
      samples[i].completion = completions[i].tokens;
      samples[i].rollout_logprobs = completions[i].logprobs;
      samples[i].advantage = advantages[i];
      samples[i].truncated = completions[i].finish == rollout::FinishReason::length;
    }
    auto t_train0 = Clock::now();
    UpdateMetrics u = learner.grpo_update(samples, derive_seed((uint64_t)s.run.seed, 4, step));
    double t_train = seconds_since(t_train0);

    // Metrics of the step.
    nlohmann::json m;
    m["step"] = step;
    StepStats stats(c.rewards->names().size());
    for (size_t i = 0; i < scores.size(); ++i)
      stats.add_sample(scores[i].total, scores[i].per_function, acc_index, (double)completions[i].tokens.size(),
                       samples[i].truncated, 0.0);
    stats.add_groups(adv_stats);
    stats.write(m, c.rewards->names());
    m["dynamic_sampling/rounds"] = rounds;
    m["dynamic_sampling/dropped_groups"] = dropped_groups;
    write_update_metrics(m, u);
    m["rollout_tokens_per_s"] = t_generate > 0 ? generated / t_generate : 0;
    m["train_tokens_per_s"] = t_train > 0 ? u.tokens / t_train : 0;
    m["time/generate"] = t_generate;
    m["time/reward"] = t_reward;
    m["time/train"] = t_train;
    m["threads"] = openmp_threads();
    m["threads/openblas"] = openblas_threads();
    std::optional<EvalResult> e = evaluate_at_step(model, s, c, step, s.train.steps, m, summary);
    m["time/step"] = seconds_since(t_step);
    dir.write_metrics(m);

    // A few completions per step, for reading.
    std::vector<RolloutLogEntry> entries;
    for (int64_t i = 0; i < std::min<int64_t>(s.train.log_rollouts, (int64_t)completions.size()); ++i)
      entries.push_back({prompts[i], completions[i].text, completions[i].finish == rollout::FinishReason::stop,
                         advantages[i], scores[i].total, scores[i].per_function});
    write_rollout_log(dir, step, s.train.log_rollouts, entries, c.rewards->names());
    progress_line(log, step, s.train.steps, stats.reward_mean(), stats.accuracy(), stats.length_mean(), u.kl,
                  // elapsed as if every step took this run's average, so the ETA holds after a resume
                  seconds_since(t_step), seconds_since(t_loop) * step / (double)(step - first_step + 1));
    if (e) log_eval(log, ("at step " + std::to_string(step)).c_str(), *e);
    if (step == s.train.steps || (s.train.checkpoint_every > 0 && step % s.train.checkpoint_every == 0))
      save_checkpoint(dir, s, yaml, model, learner, cursor, step, summary);
  }
  for (const auto& [what, count] : c.rewards->error_counts())
    log << "reward errors: " << what << " (" << count << " samples got no score)\n";
  save_model_directory(model, c.tokenizer, dir.path / "model");
  summary.steps = s.train.steps;
  summary.seconds = seconds_since(t_start);
  log << "saved model to " << (dir.path / "model").string() << "\n";
  return summary;
}

RunSummary run_sft(const Settings& s, const std::string& yaml, std::ostream& log) {
  auto t_start = Clock::now();
  COHORT_REQUIRE(!s.data.train.empty(), "data.train is empty: SFT needs a JSONL file of prompt/response pairs");
  RunDirectory dir(s, yaml);
  Common c = setup(s, log);
  rollout::DatasetLoadReport report;
  std::vector<rollout::SftRecord> records =
      rollout::load_sft_jsonl(s.data.train, s.data.prompt_field, s.data.response_field, s.data.skip_malformed, &report);
  COHORT_REQUIRE(!records.empty(), s.data.train << ": no prompt/response pairs");
  log << "data: " << records.size() << " SFT pairs from " << s.data.train
      << (report.skipped ? " (" + std::to_string(report.skipped) + " malformed lines skipped)" : "") << "\n";
  // Pre-tokenize: prompt through the template, response + eos.
  std::vector<Sample> all(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    nlohmann::json row = {{s.data.prompt_field, records[i].prompt}};
    all[i].prompt = encode_prompt(s, c.tokenizer, row);
    all[i].completion = c.tokenizer.encode(records[i].response);
    all[i].completion.push_back(c.tokenizer.eos_id());
  }
  Transformer& model = *c.model;
  model.set_logit_temperature(1.0);
  Learner learner(model, s, s.sft.steps);
  rollout::DataCursor cursor((int64_t)all.size(), derive_seed((uint64_t)s.run.seed, 5, 0));
  RunSummary summary = evaluate_before_training(model, s, c, dir, log);
  auto t_loop = Clock::now();
  for (int64_t step = 1; step <= s.sft.steps; ++step) {
    auto t_step = Clock::now();
    std::vector<Sample> batch;
    for (int64_t idx : cursor.next(s.sft.batch_size)) batch.push_back(all[idx]);
    UpdateMetrics u = learner.sft_step(batch);
    nlohmann::json m = {{"step", step},
                        {"loss", u.loss},
                        {"grad_norm", u.grad_norm},
                        {"lr", u.lr},
                        {"tokens", u.tokens},
                        {"time/step", seconds_since(t_step)},
                        {"threads", openmp_threads()},
                        {"threads/openblas", openblas_threads()}};
    if (auto e = evaluate_at_step(model, s, c, step, s.sft.steps, m, summary))
      log_eval(log, ("at step " + std::to_string(step)).c_str(), *e);
    dir.write_metrics(m);
    if (step % 10 == 0 || step == s.sft.steps) {
      char line[200];
      double elapsed = seconds_since(t_loop);
      std::snprintf(line, sizeof line, "sft step %lld/%lld | loss %.4f | lr %.2e | %.2f s/step | ETA %s",
                    (long long)step, (long long)s.sft.steps, u.loss, u.lr, elapsed / step,
                    format_duration(elapsed / step * (s.sft.steps - step)).c_str());
      log << line << "\n" << std::flush;
    }
  }
  save_model_directory(model, c.tokenizer, dir.path / "model");
  log << "saved model to " << (dir.path / "model").string() << "\n";
  summary.steps = s.sft.steps;
  summary.seconds = seconds_since(t_start);
  return summary;
}

EvalResult run_eval(const Settings& s, std::ostream& log) {
  Common c = setup(s, log);
  COHORT_REQUIRE(c.test, "data.test is empty: eval needs a JSONL file of held-out prompts");
  return evaluate(*c.model, s, c.tokenizer, *c.test, *c.rewards);
}

}  // namespace cohort::trainer
