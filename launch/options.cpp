// The option table. Names follow DESIGN.md; docs/config.md maps TRL's and veRL's names.
#include "launch/options.h"

#include "model/config.h"

namespace cohort {

namespace {

// Declares settings fields whose defaults are their own initializers in trainer/settings.h, so that no
// default is written twice: this table holds keys, help and constraints only.
struct Declare {
  config::Schema& schema;
  template <typename T, typename... Constraints>
  void operator()(std::string key, T* field, std::string help, Constraints&&... constraints) {
    schema.add(std::move(key), field, T(*field), std::move(help), std::forward<Constraints>(constraints)...);
  }
  template <typename E>
  void choice(std::string key, E* field, std::string help, std::vector<std::pair<std::string, E>> names) {
    schema.add_enum(std::move(key), field, *field, std::move(help), std::move(names));
  }
};

}  // namespace

void declare_options(config::Schema& schema, trainer::Settings& s) {
  using namespace trainer;
  Declare c{schema};
  // run
  c("run.name", &s.run.name, "run directory name: the run is written to run.dir/run.name");
  c("run.dir", &s.run.dir, "parent folder of run directories");
  c("seed", &s.run.seed, "seed of everything random: the same config and seed give the same run", 0);
  c("run.threads", &s.run.threads, "compute threads (0: COHORT_THREADS, else the cores given; --threads beats both)", 0,
    4096);
  // model
  c("model.init", &s.model.init, "'random', a checkpoint (.h5), a GGUF file or a Hugging Face model directory");
  c("model.size", &s.model.size, "named size for model.init=random", model_size_names());
  c.choice("precision.compute", &s.model.compute,
           "precision of the block linears: fp32, bf16, or fp8 (DeepSeek-V3 recipe); emulated on CPU",
           {{"fp32", Compute::fp32}, {"bf16", Compute::bf16}, {"fp8", Compute::fp8}});
  // data
  c("data.train", &s.data.train, "JSONL: prompts (train) or prompt/response pairs (sft)");
  c("data.test", &s.data.test, "JSONL of held-out prompts for evaluation (optional)");
  c("data.prompt_field", &s.data.prompt_field, "field holding the prompt");
  c("data.response_field", &s.data.response_field, "field holding the response (sft)");
  c("data.prompt_template", &s.data.prompt_template,
    "text given to the model, with {field} placeholders over the row; or a built-in: r1-zero, step-by-step-boxed");
  c.choice("data.format", &s.data.format,
           "row layout: jsonl (prompt_field), gsm8k (question, answer), math (problem, solution); gsm8k and math "
           "rows get the final answer as `reference`",
           {{"jsonl", rollout::TaskFormat::jsonl},
            {"gsm8k", rollout::TaskFormat::gsm8k},
            {"math", rollout::TaskFormat::math}});
  c("data.skip_malformed", &s.data.skip_malformed,
    "skip (and count) malformed JSONL lines instead of stopping at the first");
  // rollout
  c("rollout.group_size", &s.rollout.group_size, "completions per prompt (G)", 1, 4096);
  c("rollout.prompts_per_step", &s.rollout.prompts_per_step, "prompts per training step", 1);
  c("rollout.max_new_tokens", &s.rollout.max_new_tokens, "completion length limit, in tokens", 1);
  c("rollout.temperature", &s.rollout.temperature, "sampling temperature (0: greedy)", 0.0, 100.0);
  c("rollout.top_p", &s.rollout.top_p, "nucleus sampling mass (1: off)", 0.0, 1.0);
  c("rollout.top_k", &s.rollout.top_k, "keep the k most likely tokens (0: off)", 0);
  c("rollout.min_p", &s.rollout.min_p, "keep tokens with p >= min_p * p_max (0: off)", 0.0, 1.0);
  c("rollout.stop_strings", &s.rollout.stop_strings, "strings that end a completion (eos always does)");
  c("rollout.max_batch", &s.rollout.max_batch, "sequences decoding at once (continuous batching)", 1);
  c("rollout.chat", &s.rollout.chat,
    "give each prompt as a user message through the model's chat template (tokenizer_config.json)");
  // rewards
  c("rewards", &s.rewards,
    "list of reward functions: {name, kind, weight, isolate, timeout_s, options...}; see docs/rewards.md");
  c("reward.endpoints", &s.reward.endpoints,
    "reward servers (HOST:PORT) that score the rewards of kind remote; a failed request moves to the next");
  c.choice("reward.on_unavailable", &s.reward.on_unavailable,
           "when no reward server answers: skip (no score, counted in reward/unscored/unavailable, warned) or stop",
           {{"skip", reward::OnUnavailable::skip}, {"stop", reward::OnUnavailable::stop}});
  c("reward.token_file", &s.reward.token_file, "file holding the reward servers' shared secret");
  c("reward.isolate", &s.reward.isolate,
    "score every reward function in worker processes (a hang or crash costs one sample's score)");
  c("reward.plugins", &s.reward.plugins, "shared libraries adding reward kinds (reward/plugin.h); run isolated");
  c("reward.workers", &s.reward.workers, "isolated worker processes (0: the cores)", 0, 4096);
  c("reward.worker_memory_mb", &s.reward.worker_memory_mb,
    "memory an isolated worker may allocate beyond what it inherited (0: no limit)", 0);
  c("reward.timeout_s", &s.reward.timeout_s, "deadline per sample of an isolated or remote function", 0.001, 86400.0);
  c("reward.batch_size", &s.reward.batch_size, "samples per request to a reward server", 1, 65536);
  c("reward.connections", &s.reward.connections, "connections per reward server", 1, 1024);
  c("reward.retries", &s.reward.retries, "further tries of a failed reward request, on the next server first", 0, 100);
  c("reward.connect_timeout_s", &s.reward.connect_timeout_s, "deadline to connect to a reward server", 0.001, 3600.0);
  // algorithm
  c.choice("algorithm.scale_rewards", &s.algorithm.advantages.scale,
           "divide advantages by the group's std, the batch's, or not at all (Dr. GRPO)",
           {{"group", ScaleRewards::group}, {"batch", ScaleRewards::batch}, {"none", ScaleRewards::none}});
  c("algorithm.std_eps", &s.algorithm.advantages.eps, "added to the std of the rewards", 0.0);
  c.choice("algorithm.loss_aggregation", &s.algorithm.loss.aggregation,
           "token-mean (DAPO), seq-mean-token-mean (GRPO paper), seq-mean-token-sum-norm (Dr. GRPO)",
           {{"token-mean", LossAggregation::token_mean},
            {"seq-mean-token-mean", LossAggregation::seq_mean_token_mean},
            {"seq-mean-token-sum-norm", LossAggregation::seq_mean_token_sum_norm}});
  c.choice("algorithm.importance_level", &s.algorithm.loss.importance,
           "token ratios (GRPO) or the sequence's geometric-mean ratio (GSPO)",
           {{"token", ImportanceLevel::token}, {"sequence", ImportanceLevel::sequence}});
  c("algorithm.epsilon_low", &s.algorithm.loss.epsilon_low, "lower clip range: ratio >= 1 - epsilon_low", 0.0, 1.0);
  c("algorithm.epsilon_high", &s.algorithm.loss.epsilon_high,
    "upper clip range: ratio <= 1 + epsilon_high (DAPO: 0.28)", 0.0);
  c("algorithm.beta", &s.algorithm.loss.beta, "k3 KL penalty to the initial policy (0: no reference kept)", 0.0);
  c("algorithm.num_iterations", &s.algorithm.num_iterations, "updates per rollout batch", 1, 64);
  c("algorithm.mini_batches", &s.algorithm.mini_batches, "optimizer steps per update pass", 1, 4096);
  c("algorithm.micro_batch", &s.algorithm.micro_batch,
    "sequences per forward/backward, gradients accumulated (0: whole mini-batch)", 0);
  c.choice("algorithm.rollout_correction", &s.algorithm.loss.correction,
           "correct rollout/learner mismatch: none, tis (truncated importance sampling), mask",
           {{"none", RolloutCorrection::none}, {"tis", RolloutCorrection::tis}, {"mask", RolloutCorrection::mask}});
  c("algorithm.correction_threshold", &s.algorithm.loss.correction_threshold,
    "tis cap / mask range [1/threshold, threshold]", 1.0);
  c("algorithm.mask_truncated", &s.algorithm.mask_truncated,
    "completions cut by the length limit get no loss (DAPO overlong filtering)");
  c("algorithm.dynamic_sampling", &s.algorithm.dynamic_sampling,
    "drop groups whose rewards are all equal and sample more prompts (DAPO)");
  c("algorithm.dynamic_sampling_max_rounds", &s.algorithm.dynamic_sampling_max_rounds,
    "sampling rounds per step before accepting zero-signal groups", 1, 100);
  // optim
  c("optim.lr", &s.optim.lr, "peak learning rate", 0.0, 1.0);
  c("optim.weight_decay", &s.optim.weight_decay, "AdamW decoupled weight decay", 0.0);
  c("optim.beta1", &s.optim.beta1, "AdamW beta1", 0.0, 1.0);
  c("optim.beta2", &s.optim.beta2, "AdamW beta2", 0.0, 1.0);
  c("optim.eps", &s.optim.eps, "AdamW epsilon", 0.0);
  c("optim.grad_clip", &s.optim.grad_clip, "max global gradient norm (0: off)", 0.0);
  c("optim.warmup_steps", &s.optim.warmup_steps, "linear warmup, in optimizer steps", 0);
  c.choice("optim.schedule", &s.optim.schedule, "learning-rate schedule after warmup",
           {{"constant", LrSchedule::constant}, {"cosine", LrSchedule::cosine}});
  c("optim.min_lr_ratio", &s.optim.min_lr_ratio, "cosine floor as a fraction of optim.lr", 0.0, 1.0);
  // train
  c("train.steps", &s.train.steps, "GRPO steps (rollout + update)", 0);
  c("train.eval_every", &s.train.eval_every, "evaluate every N steps (0: before and after only)", 0);
  c("train.eval_prompts", &s.train.eval_prompts, "held-out prompts per evaluation (0: all)", 0);
  c("train.log_rollouts", &s.train.log_rollouts, "completions per step written to rollouts/", 0);
  c("train.checkpoint_every", &s.train.checkpoint_every,
    "write an HDF5 checkpoint every N steps (0: at the end only); docs/checkpoints.md", 0);
  c("train.keep_checkpoints", &s.train.keep_checkpoints, "checkpoints kept in runs/NAME/checkpoints", 1);
  c("train.report_every", &s.train.report_every,
    "steps between refreshes of the run's report/ (plots and samples; 0: at the end only)", 0);
  c("train.resume", &s.train.resume,
    "auto: continue from runs/NAME/checkpoints/latest if there is one; never; or a checkpoint's path");
  c("train.accuracy_reward", &s.train.accuracy_reward,
    "reward function whose score >= 1 counts as correct in 'accuracy'");
  // sft
  c("sft.steps", &s.sft.steps, "SFT optimizer steps", 0);
  c("sft.batch_size", &s.sft.batch_size, "SFT sequences per step", 1);
  // distributed (docs/distributed.md)
  c("distributed.colocated", &s.distributed.colocated,
    "every rank both generates and trains; false splits the ranks into learners and rollout workers");
  c("distributed.learners", &s.distributed.learners,
    "learner ranks, the first ones (0: every rank when colocated; required otherwise)", 0);
  c("distributed.rollout_workers", &s.distributed.rollout_workers,
    "rollout ranks, after the learners (0: the ranks left after the learners)", 0);
  c.choice("distributed.schedule", &s.distributed.schedule,
           "sync: rollout waits for the newest weights (on-policy); async-1: the rollout of step k+1 overlaps "
           "training on step k (policy lag 1, needs rollout workers)",
           {{"sync", Schedule::sync}, {"async-1", Schedule::async_1}});
  c.choice("distributed.sync_dtype", &s.distributed.sync_dtype,
           "dtype of the weights sent to rollout workers: fp32 (exact) or bf16 (half the bytes)",
           {{"fp32", SyncDtype::fp32}, {"bf16", SyncDtype::bf16}});
  c("distributed.bucket_mb", &s.distributed.bucket_mb,
    "bucket size of gradient reduce-scatter and weight broadcast, MiB", 0.001, 4096.0);
  c("distributed.timeout_s", &s.distributed.timeout_s,
    "a collective or message not done in this many seconds stops the run, naming the rank", 1.0);
  schema.add_check([&s] {
    if (s.distributed.colocated && s.distributed.schedule == Schedule::async_1)
      return std::string(
          "distributed.schedule 'async-1' needs separate rollout workers: set distributed.colocated "
          "to false and distributed.learners");
    if (!s.distributed.colocated && s.distributed.learners == 0)
      return std::string(
          "distributed.colocated is false: set distributed.learners (and optionally "
          "distributed.rollout_workers)");
    return std::string();
  });
  schema.add_check([&s] {
    if (s.algorithm.loss.aggregation == LossAggregation::seq_mean_token_sum_norm)
      s.algorithm.loss.max_completion_tokens = s.rollout.max_new_tokens;
    return std::string();
  });
}

}  // namespace cohort
