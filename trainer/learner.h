// The learner: turns scored completions into padded batches and applies the GRPO
// update (old/reference logprobs, mini-batches, micro-batch gradient accumulation,
// AdamW), or an SFT step on prompt/response pairs with the loss on the response only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/collective.h"
#include "model/transformer.h"
#include "trainer/optimizer.h"
#include "trainer/settings.h"

namespace cohort::trainer {

// One completion as the learner sees it.
struct Sample {
  std::vector<int32_t> prompt;          // token ids
  std::vector<int32_t> completion;      // token ids, including a final stop token if any
  std::vector<float> rollout_logprobs;  // per completion token, from the rollout
  double advantage = 0;
  bool truncated = false;  // ended by the length limit
};

// A right-padded (B, T) batch of prompt+completion sequences with the mask of the
// positions whose target is a completion token in the loss.
struct PackedBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens, lengths, targets;
  std::vector<float> mask, rollout_logprobs;
  std::vector<double> advantages;
};
// Throws cohort::Error naming the sample when a sequence exceeds max_seq_len.
PackedBatch pack_samples(const std::vector<const Sample*>& samples, bool mask_truncated, int64_t max_seq_len);

struct UpdateMetrics {
  double loss = 0, policy_loss = 0, kl = 0, clip_fraction = 0, ratio_mean = 0, mismatch_k3 = 0;
  double entropy = 0, grad_norm = 0, lr = 0, masked_sequences = 0;
  int64_t optimizer_steps = 0, skipped_steps = 0, tokens = 0;
};

// With a `learners` collective of size L > 1 the learner is one of L data-parallel replicas: each is given
// its share of the batch, loss normalisers and metrics are summed over all, gradients are reduce-scattered
// in buckets (distributed.bucket_mb) so each learner holds the summed gradient of one contiguous 1/L shard
// of the flat parameters, AdamW state exists only for that shard (ZeRO-1), and the updated shards are
// all-gathered. Every learner must call the same methods in the same order, even with no samples.
class Learner {
 public:
  // total_optimizer_steps sizes the learning-rate schedule.
  Learner(Transformer& policy, const Settings& settings, int64_t total_optimizer_steps,
          comm::Collective* learners = nullptr);

  UpdateMetrics grpo_update(const std::vector<Sample>& samples, uint64_t shuffle_seed);

  // One SFT optimizer step: samples' completion is the response; advantage ignored.
  // Returns the mean next-token cross-entropy over response tokens.
  UpdateMetrics sft_step(const std::vector<Sample>& samples);

  Optimizer& optimizer() { return optimizer_; }
  // The frozen reference policy's weights (algorithm.beta > 0), or null.
  std::vector<float>* reference_weights() { return reference_ ? &reference_->weights() : nullptr; }
  // This learner's shard of the flat parameters: [shard_begin, shard_begin + shard_size).
  int64_t shard_begin() const { return shard_begin_; }
  int64_t shard_size() const { return shard_size_; }

 private:
  Transformer& policy_;
  Settings settings_;
  comm::Collective* dp_ = nullptr;  // null or size 1: a single learner
  int64_t shard_stride_ = 0, shard_begin_ = 0, shard_size_ = 0;
  Optimizer optimizer_;
  std::vector<float> shard_grad_, staging_;
  std::unique_ptr<Transformer> reference_;  // frozen initial policy, only when beta > 0

  // Per-position logprobs of a packed batch under `model`, without backward.
  std::vector<float> logprobs(Transformer& model, const PackedBatch& batch);
  std::vector<std::vector<const Sample*>> micro_batches(const std::vector<const Sample*>& mini_batch) const;
  bool data_parallel() const { return dp_ && dp_->size() > 1; }
  void sum_over_learners(double* values, int64_t n);
  // Clip + AdamW on the accumulated gradients; under data parallelism the bucketed reduce-scatter, the
  // sharded update and the all-gather.
  Optimizer::Result optimizer_step();
};

}  // namespace cohort::trainer
