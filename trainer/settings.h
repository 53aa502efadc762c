// Everything a training run is told, as plain structs. launch/ declares each field once
// (key, default, help) and fills these from YAML; the trainer only reads them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "reward/outcome.h"
#include "rollout/dataset.h"
#include "rollout/sampler.h"
#include "trainer/advantages.h"
#include "trainer/grpo_loss.h"

namespace cohort::trainer {

struct RunSettings {
  std::string name;  // runs/NAME
  std::string dir = "runs";
  int64_t seed = 1;
  int64_t threads = 0;  // 0: COHORT_THREADS, else the cores given (kernels/threads.h has the order)
};

struct ModelSettings {
  std::string init = "random";  // "random", a checkpoint (.h5), a GGUF file or a model directory
  std::string size = "small";   // named size when init is random
  Compute compute = Compute::fp32;
};

struct DataSettings {
  std::string train;  // JSONL prompts (GRPO) or prompt/response pairs (SFT)
  std::string test;   // JSONL held-out prompts for eval (optional)
  std::string prompt_field = "prompt";
  std::string response_field = "response";
  std::string prompt_template = "{prompt}";  // {field} placeholders over the row, or a built-in's name
  bool skip_malformed = true;
  rollout::TaskFormat format = rollout::TaskFormat::jsonl;
};

struct RolloutSettings {
  int64_t group_size = 8;  // G completions per prompt
  int64_t prompts_per_step = 16;
  int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  int64_t top_k = 0;
  double min_p = 0.0;
  std::vector<std::string> stop_strings;
  int64_t max_batch = 64;  // sequences decoding at once
  bool chat = false;       // prompts go through the model's chat template as a user message

  rollout::SamplingParams sampling() const {
    rollout::SamplingParams p;
    p.temperature = (float)temperature, p.top_p = (float)top_p, p.top_k = (int32_t)top_k, p.min_p = (float)min_p;
    return p;
  }
};

struct AlgorithmSettings {
  AdvantageOptions advantages;
  LossOptions loss;
  int64_t num_iterations = 1;     // updates per rollout batch
  int64_t mini_batches = 1;       // optimizer steps per iteration
  int64_t micro_batch = 0;        // sequences per forward/backward (0: the whole mini-batch)
  bool mask_truncated = false;    // completions cut by the length limit get no loss
  bool dynamic_sampling = false;  // drop zero-signal groups and sample more prompts
  int64_t dynamic_sampling_max_rounds = 4;
};

enum class LrSchedule { constant, cosine };

struct OptimSettings {
  double lr = 1e-5;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.99, eps = 1e-8;
  double grad_clip = 1.0;  // max global norm; 0 = off
  int64_t warmup_steps = 0;
  LrSchedule schedule = LrSchedule::constant;
  double min_lr_ratio = 0.1;  // cosine floor as a fraction of lr
};

struct TrainSettings {
  int64_t steps = 100;
  int64_t eval_every = 0;                    // 0: evaluate before the first step and after the last only
  int64_t eval_prompts = 0;                  // 0: the whole test set
  int64_t log_rollouts = 8;                  // completions per step written to rollouts/
  std::string accuracy_reward = "accuracy";  // the reward function whose score >= 1 counts as correct
  int64_t checkpoint_every = 0;              // 0: a checkpoint at the end only
  int64_t keep_checkpoints = 2;              // the newest N stay on disk
  std::string resume = "auto";               // auto | never | PATH of a checkpoint (trainer/checkpoint.h)
  int64_t report_every = 10;                 // steps between refreshes of report/ (0: at the end only)
};

struct SftSettings {
  int64_t steps = 200;
  int64_t batch_size = 32;
};

// How the ranks of an mpirun split into roles, and how they exchange work (docs/distributed.md).
enum class Schedule { sync, async_1 };
enum class SyncDtype { fp32, bf16 };

struct DistributedSettings {
  bool colocated = true;        // every rank generates and trains
  int64_t learners = 0;         // 0: every rank when colocated
  int64_t rollout_workers = 0;  // 0: the ranks after the learners
  Schedule schedule = Schedule::sync;
  SyncDtype sync_dtype = SyncDtype::fp32;  // weights as sent to rollout workers
  double bucket_mb = 32;                   // gradient-reduce and weight-sync bucket size
  double timeout_s = 600;                  // watchdog on every collective and message
};

struct Settings {
  RunSettings run;
  ModelSettings model;
  DataSettings data;
  RolloutSettings rollout;
  nlohmann::json rewards = nlohmann::json::array();
  reward::ServiceOptions reward;  // where the reward functions run: isolated workers, plugins, remote servers
  AlgorithmSettings algorithm;
  OptimSettings optim;
  TrainSettings train;
  SftSettings sft;
  DistributedSettings distributed;
};

}  // namespace cohort::trainer
