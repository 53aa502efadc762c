// The training runs behind `cohort train` and `cohort sft`: set up the run directory,
// model, data and rewards, loop, evaluate, log, and save the final weights.
#pragma once

#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "trainer/settings.h"

namespace cohort::trainer {

struct RunSummary {
  std::string run_dir;
  double accuracy_before = -1, accuracy_after = -1;  // held-out greedy accuracy; -1 when no test set
  double reward_before = 0, reward_after = 0;
  double seconds = 0;
  int64_t steps = 0;
};

// What a command does with a config; validate_settings checks what that command needs.
enum class RunKind { any, grpo, sft, eval };

// The checks a resolved config must pass before anything is written, in one place: every run calls it first
// and `cohort config` calls it (kind any), so `cohort config` refuses what the run would, with the same
// message. It checks the data each kind needs, the group size, the reward set (built, so an unknown kind or
// a bad option is named), the model source (a named size, or a checkpoint, GGUF file or model directory
// that exists and whose config reads), and the learner's own constraints. Throws cohort::Error holding
// every problem found, one per line.
void validate_settings(const Settings& s, RunKind kind);

// How much a run prints (the --quiet, --verbose and --all-ranks of launch/main.cpp). Lines end in "\n" and
// never rewrite themselves, so a terminal and a log file read the same.
struct Console {
  int verbosity = 1;       // 0: errors only (the caller prints the summary); 1: a line per step; 2: also its phases
  bool all_ranks = false;  // under mpirun every rank prints, each line prefixed "[rank N] "; else rank 0 alone
};

// resolved_config_yaml is written as runs/NAME/config.yaml. Progress goes to `log`.
// One process, or every rank of an mpirun after MPI_Init, roles from settings.distributed
// (docs/distributed.md); rank 0 writes the run directory and logs to `log`, and its summary is the run's.
// Checkpoints every train.checkpoint_every steps and resumes per train.resume (docs/checkpoints.md).
// Failures throw (comm::CommError for a peer that is gone or stuck); under mpirun the caller aborts the job.
RunSummary run_grpo(const Settings& settings, const std::string& resolved_config_yaml, std::ostream& log,
                    const Console& console = {});
RunSummary run_sft(const Settings& settings, const std::string& resolved_config_yaml, std::ostream& log);

// Greedy evaluation of a model directory (or random init) on settings.data.test.
struct EvalResult {
  int64_t prompts = 0;
  double accuracy = 0, reward_mean = 0, completion_tokens_mean = 0;
  nlohmann::json per_function;  // name -> mean score
};
EvalResult run_eval(const Settings& settings, std::ostream& log);

}  // namespace cohort::trainer
