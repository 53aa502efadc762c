// A run's report (runs/NAME/report/): one SVG plot per figure people judge a run by (rewards per function,
// accuracy, completion length, KL, entropy, clipping, rollout/learner mismatch, gradient norm, learning rate,
// speed per phase) and index.html with the plots, the resolved config and a sample of completions per step
// with their rewards and advantages. Several runs render on the same axes, with the config keys that
// differ between them listed. Every data point of a plot carries its step and value as attributes, so a
// test (or a script) can read the numbers back from the SVG.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cohort::trainer {

struct ReportSummary {
  std::filesystem::path out;
  std::vector<std::string> plots;  // file names written, e.g. "reward.svg"
  int64_t steps = 0;               // metric rows read over all runs
};

// Reads each run directory's metrics.jsonl, config.yaml and rollouts/, and writes the report into `out`
// (created; files replaced atomically so a browser never sees half a page). Throws cohort::Error for a
// directory that is not a run's.
ReportSummary render_report(const std::vector<std::filesystem::path>& runs, const std::filesystem::path& out);

}  // namespace cohort::trainer
