// The SFT run (one process: batches of prompt/response pairs, evaluation, metrics.jsonl, the final model
// as a Hugging Face directory) and `cohort eval`. The GRPO run is trainer/grpo_run.cpp.
#include "trainer/run.h"

#include <cmath>
#include <filesystem>
#include <optional>
#include <sstream>
#include <fstream>
#include <ostream>

#include "kernels/error.h"
#include "kernels/threads.h"
#include "model/model_directory.h"
#include "trainer/evaluation.h"
#include "trainer/learner.h"
#include "trainer/run_checkpoint.h"
#include "trainer/run_directory.h"
#include "trainer/run_setup.h"
#include "trainer/step_metrics.h"

namespace cohort::trainer {

using namespace detail;

RunSummary run_sft(const Settings& s, const std::string& yaml, std::ostream& log) {
  auto t_start = Clock::now();
  validate_settings(s, RunKind::sft);
  std::optional<CheckpointContents> resumed = checkpoint_to_resume(s, yaml, "sft", CheckpointParts::everything);
  RunDirectory dir(s, yaml, resumed ? resumed->state.step : -1);
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
    all[i].prompt = make_prompt(s, c, row).ids;
    all[i].completion = c.tokenizer->encode(records[i].response);
    all[i].completion.push_back(c.tokenizer->eos_id());
  }
  Transformer& model = *c.model;
  model.set_logit_temperature(1.0);
  Learner learner(model, s, s.sft.steps);
  rollout::DataCursor cursor((int64_t)all.size(), stream_seed((uint64_t)s.run.seed, Stream::sft_order));
  RunSummary summary;
  int64_t first_step = 1;
  if (resumed) {
    // Weights, AdamW state and the data cursor: the next step is the one an unstopped run would take.
    COHORT_REQUIRE(
        (int64_t)resumed->weights.size() == model.num_parameters(),
        "the checkpoint holds " << resumed->weights.size() << " parameters, the model " << model.num_parameters());
    model.weights() = resumed->weights;
    restore_learner(learner, *resumed);
    cursor.restore(resumed->state.data_cursor);
    first_step = resumed->state.step + 1;
    summary = resumed_summary(s, resumed->state);
    log << "resumed at step " << resumed->state.step << " of " << s.sft.steps << "\n";
  } else {
    summary = evaluate_before_training(model, s, c, dir, log);
  }
  auto t_loop = Clock::now();
  for (int64_t step = first_step; step <= s.sft.steps; ++step) {
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
      double elapsed = seconds_since(t_loop) * step / (double)(step - first_step + 1);
      std::snprintf(line, sizeof line, "sft step %lld/%lld | loss %.4f | lr %.2e | %.2f s/step | ETA %s",
                    (long long)step, (long long)s.sft.steps, u.loss, u.lr, elapsed / step,
                    format_duration(elapsed / step * (s.sft.steps - step)).c_str());
      log << line << "\n" << std::flush;
    }
    if (step == s.sft.steps || (s.train.checkpoint_every > 0 && step % s.train.checkpoint_every == 0)) {
      TrainingState state;
      state.step = step;
      state.data_cursor = cursor.state();
      save_run_checkpoint(s, yaml, "sft", model, learner, state, summary, "", 0);
    }
  }
  save_run_model(c, model, dir.path / "model");
  log << "saved model to " << (dir.path / "model").string() << "\n";
  refresh_report(dir, log);
  summary.steps = s.sft.steps;
  summary.seconds = seconds_since(t_start);
  return summary;
}

EvalResult run_eval(const Settings& s, std::ostream& log) {
  validate_settings(s, RunKind::eval);
  Common c = setup(s, log);
  return evaluate(*c.model, s, c);
}

}  // namespace cohort::trainer
