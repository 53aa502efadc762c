// A run's directory, runs/NAME (internal to trainer/): config.yaml, metrics.jsonl (one JSON object per step),
// rollouts/step_N.jsonl (a few completions per step, for reading) and TensorBoard event files holding the
// same scalars and completions (trainer/tensorboard.h). Checkpoints live in its checkpoints/
// (trainer/checkpoint.h) and the final model in its model/ (model/model_directory.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trainer/settings.h"
#include "trainer/tensorboard.h"

namespace cohort::trainer::detail {

struct RunDirectory {
  std::filesystem::path path;
  std::ofstream metrics;
  std::unique_ptr<TensorBoardWriter> tensorboard;

  // resumed_step >= 0: a resumed run keeps the metrics of steps up to it and drops the rest (they are
  // computed again), and the event files likewise (trim_event_files); otherwise metrics.jsonl starts empty.
  RunDirectory(const Settings& s, const std::string& yaml, int64_t resumed_step = -1);
  static std::filesystem::path path_of(const Settings& s);
  // One line of metrics.jsonl, and its numbers as TensorBoard scalars.
  void write_metrics(const nlohmann::json& m);
};

// Renders report/ from what the directory holds (trainer/report.h). A report that cannot be written is
// a warning in the log, never the run's end.
void refresh_report(const RunDirectory& dir, std::ostream& log);

// A completion as written to rollouts/step_N.jsonl.
struct RolloutLogEntry {
  std::string prompt, completion;
  bool stopped = false;  // finish "stop", else "length"
  double advantage = 0;
  std::optional<double> reward;
  std::vector<std::optional<double>> per_function;
};
// The first `count` entries, one JSON object per line, and as one TensorBoard text summary ("rollouts").
void write_rollout_log(const RunDirectory& dir, int64_t step, int64_t count,
                       const std::vector<RolloutLogEntry>& entries, const std::vector<std::string>& names);

}  // namespace cohort::trainer::detail
