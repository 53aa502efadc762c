// The option table. Names follow DESIGN.md; docs/config.md maps TRL's and veRL's names.
#include "launch/options.h"

#include "model/config.h"

namespace cohort {

void declare_options(config::Schema& c, trainer::Settings& s) {
  using namespace trainer;
  // run
  c.add("run.name", &s.run.name, "", "run directory name: the run is written to run.dir/run.name");
  c.add("run.dir", &s.run.dir, "runs", "parent folder of run directories");
  c.add("seed", &s.run.seed, 1, "seed of everything random: the same config and seed give the same run", 0);
  c.add("run.threads", &s.run.threads, 0,
        "compute threads (0: COHORT_THREADS, else the cores given; --threads beats both)", 0, 4096);
  // model
  c.add("model.init", &s.model.init, "random", "'random', a checkpoint (.h5), a GGUF file or a Hugging Face model directory");
  c.add("model.size", &s.model.size, "small", "named size for model.init=random", model_size_names());
  c.add_enum("precision.compute", &s.model.compute, Compute::fp32,
             "precision of the block linears: fp32, bf16, or fp8 (DeepSeek-V3 recipe); emulated on CPU",
             {{"fp32", Compute::fp32}, {"bf16", Compute::bf16}, {"fp8", Compute::fp8}});
  // data
  c.add("data.train", &s.data.train, "", "JSONL: prompts (train) or prompt/response pairs (sft)");
  c.add("data.test", &s.data.test, "", "JSONL of held-out prompts for evaluation (optional)");
  c.add("data.prompt_field", &s.data.prompt_field, "prompt", "field holding the prompt");
  c.add("data.response_field", &s.data.response_field, "response", "field holding the response (sft)");
  c.add("data.prompt_template", &s.data.prompt_template, "{prompt}",
        "text given to the model, with {field} placeholders over the row");
  c.add("data.skip_malformed", &s.data.skip_malformed, true,
        "skip (and count) malformed JSONL lines instead of stopping at the first");
  // rollout
  c.add("rollout.group_size", &s.rollout.group_size, 8, "completions per prompt (G)", 1, 4096);
  c.add("rollout.prompts_per_step", &s.rollout.prompts_per_step, 16, "prompts per training step", 1);
  c.add("rollout.max_new_tokens", &s.rollout.max_new_tokens, 64, "completion length limit, in tokens", 1);
  c.add("rollout.temperature", &s.rollout.temperature, 1.0, "sampling temperature (0: greedy)", 0.0, 100.0);
  c.add("rollout.top_p", &s.rollout.top_p, 1.0, "nucleus sampling mass (1: off)", 0.0, 1.0);
  c.add("rollout.top_k", &s.rollout.top_k, 0, "keep the k most likely tokens (0: off)", 0);
  c.add("rollout.min_p", &s.rollout.min_p, 0.0, "keep tokens with p >= min_p * p_max (0: off)", 0.0, 1.0);
  c.add("rollout.stop_strings", &s.rollout.stop_strings, {}, "strings that end a completion (eos always does)");
  c.add("rollout.max_batch", &s.rollout.max_batch, 64, "sequences decoding at once (continuous batching)", 1);
  // rewards
  c.add("rewards", &s.rewards, nlohmann::json::array(),
        "list of reward functions: {name, kind, weight, options...}; see docs/rewards.md");
  // algorithm
  c.add_enum("algorithm.scale_rewards", &s.algorithm.advantages.scale, ScaleRewards::group,
             "divide advantages by the group's std, the batch's, or not at all (Dr. GRPO)",
             {{"group", ScaleRewards::group}, {"batch", ScaleRewards::batch}, {"none", ScaleRewards::none}});
  c.add("algorithm.std_eps", &s.algorithm.advantages.eps, 1e-4, "added to the std of the rewards", 0.0);
  c.add_enum("algorithm.loss_aggregation", &s.algorithm.loss.aggregation, LossAggregation::token_mean,
             "token-mean (DAPO), seq-mean-token-mean (GRPO paper), seq-mean-token-sum-norm (Dr. GRPO)",
             {{"token-mean", LossAggregation::token_mean},
              {"seq-mean-token-mean", LossAggregation::seq_mean_token_mean},
              {"seq-mean-token-sum-norm", LossAggregation::seq_mean_token_sum_norm}});
  c.add_enum("algorithm.importance_level", &s.algorithm.loss.importance, ImportanceLevel::token,
             "token ratios (GRPO) or the sequence's geometric-mean ratio (GSPO)",
             {{"token", ImportanceLevel::token}, {"sequence", ImportanceLevel::sequence}});
  c.add("algorithm.epsilon_low", &s.algorithm.loss.epsilon_low, 0.2, "lower clip range: ratio >= 1 - epsilon_low", 0.0,
        1.0);
  c.add("algorithm.epsilon_high", &s.algorithm.loss.epsilon_high, 0.2,
        "upper clip range: ratio <= 1 + epsilon_high (DAPO: 0.28)", 0.0);
  c.add("algorithm.beta", &s.algorithm.loss.beta, 0.0, "k3 KL penalty to the initial policy (0: no reference kept)",
        0.0);
  c.add("algorithm.num_iterations", &s.algorithm.num_iterations, 1, "updates per rollout batch", 1, 64);
  c.add("algorithm.mini_batches", &s.algorithm.mini_batches, 1, "optimizer steps per update pass", 1, 4096);
  c.add("algorithm.micro_batch", &s.algorithm.micro_batch, 0,
        "sequences per forward/backward, gradients accumulated (0: whole mini-batch)", 0);
  c.add_enum("algorithm.rollout_correction", &s.algorithm.loss.correction, RolloutCorrection::none,
             "correct rollout/learner mismatch: none, tis (truncated importance sampling), mask",
             {{"none", RolloutCorrection::none}, {"tis", RolloutCorrection::tis}, {"mask", RolloutCorrection::mask}});
  c.add("algorithm.correction_threshold", &s.algorithm.loss.correction_threshold, 2.0,
        "tis cap / mask range [1/threshold, threshold]", 1.0);
  c.add("algorithm.mask_truncated", &s.algorithm.mask_truncated, false,
        "completions cut by the length limit get no loss (DAPO overlong filtering)");
  c.add("algorithm.dynamic_sampling", &s.algorithm.dynamic_sampling, false,
        "drop groups whose rewards are all equal and sample more prompts (DAPO)");
  c.add("algorithm.dynamic_sampling_max_rounds", &s.algorithm.dynamic_sampling_max_rounds, 4,
        "sampling rounds per step before accepting zero-signal groups", 1, 100);
  // optim
  c.add("optim.lr", &s.optim.lr, 1e-5, "peak learning rate", 0.0, 1.0);
  c.add("optim.weight_decay", &s.optim.weight_decay, 0.0, "AdamW decoupled weight decay", 0.0);
  c.add("optim.beta1", &s.optim.beta1, 0.9, "AdamW beta1", 0.0, 1.0);
  c.add("optim.beta2", &s.optim.beta2, 0.99, "AdamW beta2", 0.0, 1.0);
  c.add("optim.eps", &s.optim.eps, 1e-8, "AdamW epsilon", 0.0);
  c.add("optim.grad_clip", &s.optim.grad_clip, 1.0, "max global gradient norm (0: off)", 0.0);
  c.add("optim.warmup_steps", &s.optim.warmup_steps, 0, "linear warmup, in optimizer steps", 0);
  c.add("optim.schedule", &s.optim.schedule, "constant", "learning-rate schedule after warmup", {"constant", "cosine"});
  c.add("optim.min_lr_ratio", &s.optim.min_lr_ratio, 0.1, "cosine floor as a fraction of optim.lr", 0.0, 1.0);
  // train
  c.add("train.steps", &s.train.steps, 100, "GRPO steps (rollout + update)", 0);
  c.add("train.eval_every", &s.train.eval_every, 0, "evaluate every N steps (0: before and after only)", 0);
  c.add("train.eval_prompts", &s.train.eval_prompts, 0, "held-out prompts per evaluation (0: all)", 0);
  c.add("train.log_rollouts", &s.train.log_rollouts, 8, "completions per step written to rollouts/", 0);
  c.add("train.checkpoint_every", &s.train.checkpoint_every, 0,
        "write an HDF5 checkpoint every N steps (0: at the end only); docs/checkpoints.md", 0);
  c.add("train.keep_checkpoints", &s.train.keep_checkpoints, 2, "checkpoints kept in runs/NAME/checkpoints", 1);
  c.add("train.resume", &s.train.resume, "auto",
        "auto: continue from runs/NAME/checkpoints/latest if there is one; never; or a checkpoint's path");
  c.add("train.accuracy_reward", &s.train.accuracy_reward, "accuracy",
        "reward function whose score >= 1 counts as correct in 'accuracy'");
  // sft
  c.add("sft.steps", &s.sft.steps, 200, "SFT optimizer steps", 0);
  c.add("sft.batch_size", &s.sft.batch_size, 32, "SFT sequences per step", 1);
  // distributed (docs/distributed.md)
  c.add("distributed.colocated", &s.distributed.colocated, true,
        "every rank both generates and trains; false splits the ranks into learners and rollout workers");
  c.add("distributed.learners", &s.distributed.learners, 0,
        "learner ranks, the first ones (0: every rank when colocated; required otherwise)", 0);
  c.add("distributed.rollout_workers", &s.distributed.rollout_workers, 0,
        "rollout ranks, after the learners (0: the ranks left after the learners)", 0);
  c.add_enum("distributed.schedule", &s.distributed.schedule, Schedule::sync,
             "sync: rollout waits for the newest weights (on-policy); async-1: the rollout of step k+1 overlaps "
             "training on step k (policy lag 1, needs rollout workers)",
             {{"sync", Schedule::sync}, {"async-1", Schedule::async_1}});
  c.add_enum("distributed.sync_dtype", &s.distributed.sync_dtype, SyncDtype::fp32,
             "dtype of the weights sent to rollout workers: fp32 (exact) or bf16 (half the bytes)",
             {{"fp32", SyncDtype::fp32}, {"bf16", SyncDtype::bf16}});
  c.add("distributed.bucket_mb", &s.distributed.bucket_mb, 32.0,
        "bucket size of gradient reduce-scatter and weight broadcast, MiB", 0.001, 4096.0);
  c.add("distributed.timeout_s", &s.distributed.timeout_s, 600.0,
        "a collective or message not done in this many seconds stops the run, naming the rank", 1.0);
  c.add_check([&s] {
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
  c.add_check([&s] {
    if (s.algorithm.loss.aggregation == LossAggregation::seq_mean_token_sum_norm)
      s.algorithm.loss.max_completion_tokens = s.rollout.max_new_tokens;
    return std::string();
  });
}

}  // namespace cohort
