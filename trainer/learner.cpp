// GRPO and SFT updates over packed batches.
#include "trainer/learner.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/error.h"
#include "kernels/random.h"

namespace cohort::trainer {

PackedBatch pack_samples(const std::vector<const Sample*>& samples, bool mask_truncated, int64_t max_seq_len) {
  PackedBatch p;
  p.B = (int64_t)samples.size();
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = *samples[i];
    COHORT_REQUIRE(!s.prompt.empty(), "sample " << i << " has an empty prompt");
    int64_t length = (int64_t)(s.prompt.size() + s.completion.size());
    COHORT_REQUIRE(length <= max_seq_len,
                   "sample " << i << " has " << length << " tokens, beyond the model's max_seq_len " << max_seq_len);
    p.T = std::max(p.T, length);
  }
  p.tokens.assign(p.B * p.T, 0);
  p.targets.assign(p.B * p.T, -1);
  p.mask.assign(p.B * p.T, 0.f);
  p.rollout_logprobs.assign(p.B * p.T, 0.f);
  p.lengths.resize(p.B);
  p.advantages.resize(p.B);
  for (int64_t b = 0; b < p.B; ++b) {
    const Sample& s = *samples[b];
    int64_t P = (int64_t)s.prompt.size(), C = (int64_t)s.completion.size();
    std::copy(s.prompt.begin(), s.prompt.end(), p.tokens.begin() + b * p.T);
    std::copy(s.completion.begin(), s.completion.end(), p.tokens.begin() + b * p.T + P);
    p.lengths[b] = (int32_t)(P + C);
    p.advantages[b] = s.advantage;
    bool in_loss = !(mask_truncated && s.truncated);
    // Position P-1+j predicts completion token j.
    for (int64_t j = 0; j < C; ++j) {
      int64_t t = b * p.T + P - 1 + j;
      p.targets[t] = s.completion[j];
      p.mask[t] = in_loss ? 1.f : 0.f;
      if (j < (int64_t)s.rollout_logprobs.size()) p.rollout_logprobs[t] = s.rollout_logprobs[j];
    }
  }
  return p;
}

namespace {
// Shard of learner `rank` among `size`: a contiguous stride of ceil(n / size) floats, the last ones shorter.
int64_t stride_of(int64_t n, comm::Collective* dp) {
  return dp ? (n + dp->size() - 1) / dp->size() : n;
}
int64_t begin_of(int64_t n, comm::Collective* dp) {
  return dp ? std::min(n, stride_of(n, dp) * dp->rank()) : 0;
}
int64_t size_of(int64_t n, comm::Collective* dp) {
  return std::min(n, begin_of(n, dp) + stride_of(n, dp)) - begin_of(n, dp);
}
}  // namespace

Learner::Learner(Transformer& policy, const Settings& settings, int64_t total_optimizer_steps,
                 comm::Collective* learners)
    : policy_(policy),
      settings_(settings),
      dp_(learners),
      shard_stride_(stride_of(policy.num_parameters(), learners)),
      shard_begin_(begin_of(policy.num_parameters(), learners)),
      shard_size_(size_of(policy.num_parameters(), learners)),
      optimizer_(shard_size_, settings.optim, total_optimizer_steps) {
  COHORT_REQUIRE(settings.algorithm.num_iterations >= 1, "algorithm.num_iterations must be at least 1");
  COHORT_REQUIRE(settings.algorithm.mini_batches >= 1, "algorithm.mini_batches must be at least 1");
  if (settings.algorithm.loss.beta > 0) {
    reference_ = std::make_unique<Transformer>(policy.config());
    reference_->weights() = policy.weights();
    reference_->set_logit_temperature(policy.logit_temperature());
  }
}

void Learner::sum_over_learners(double* values, int64_t n) {
  if (data_parallel()) dp_->all_reduce_sum(values, n);
}

Optimizer::Result Learner::optimizer_step() {
  if (!data_parallel()) return optimizer_.step(policy_.weights(), policy_.grads());
  const int64_t n = policy_.num_parameters(), L = dp_->size(), stride = shard_stride_;
  float* weights = policy_.weights().data();
  const float* grads = policy_.grads().data();
  // Bucket k holds, for every learner q, floats [k c, k c + c) of q's shard: one reduce-scatter gives each
  // learner that piece of its own shard, summed over learners.
  const int64_t bucket = std::max<int64_t>(1, (int64_t)(settings_.distributed.bucket_mb * (1 << 20) / 4) / L);
  shard_grad_.assign((size_t)stride, 0.f);
  for (int64_t off = 0; off < stride; off += bucket) {
    const int64_t c = std::min(bucket, stride - off);
    staging_.assign((size_t)(c * L), 0.f);
    for (int64_t q = 0; q < L; ++q) {
      const int64_t src = q * stride + off, have = std::clamp<int64_t>(n - src, 0, c);
      std::copy_n(grads + src, have, staging_.data() + q * c);
    }
    dp_->reduce_scatter_sum(staging_.data(), shard_grad_.data() + off, c);
  }
  double sq = cpu::squared_norm(shard_grad_.data(), shard_size_);
  dp_->all_reduce_sum(&sq, 1);
  Optimizer::Result r = optimizer_.step(weights + shard_begin_, shard_grad_.data(), shard_size_, std::sqrt(sq));
  if (r.skipped) return r;  // the norm is global, so every learner skips alike
  std::vector<float> piece;
  for (int64_t off = 0; off < stride; off += bucket) {
    const int64_t c = std::min(bucket, stride - off);
    piece.assign((size_t)c, 0.f);
    const int64_t mine = std::clamp<int64_t>(shard_size_ - off, 0, c);
    std::copy_n(weights + shard_begin_ + off, mine, piece.data());
    staging_.resize((size_t)(c * L));
    dp_->all_gather(piece.data(), staging_.data(), c);
    for (int64_t q = 0; q < L; ++q) {
      const int64_t dst = q * stride + off, have = std::clamp<int64_t>(n - dst, 0, c);
      std::copy_n(staging_.data() + q * c, have, weights + dst);
    }
  }
  return r;
}

std::vector<float> Learner::logprobs(Transformer& model, const PackedBatch& p) {
  std::vector<float> lp(p.B * p.T);
  model.forward(p.tokens.data(), p.lengths.data(), p.targets.data(), p.B, p.T, lp.data(), nullptr);
  return lp;
}

std::vector<std::vector<const Sample*>> Learner::micro_batches(const std::vector<const Sample*>& mini) const {
  int64_t size = settings_.algorithm.micro_batch > 0 ? settings_.algorithm.micro_batch : (int64_t)mini.size();
  std::vector<std::vector<const Sample*>> out;
  for (size_t i = 0; i < mini.size(); i += size)
    out.emplace_back(mini.begin() + i, mini.begin() + std::min(mini.size(), i + (size_t)size));
  return out;
}

UpdateMetrics Learner::grpo_update(const std::vector<Sample>& samples, uint64_t shuffle_seed) {
  const AlgorithmSettings& alg = settings_.algorithm;
  const int64_t max_len = policy_.config().max_seq_len;
  UpdateMetrics total;
  if (samples.empty() && !data_parallel()) return total;
  // With one optimizer step per rollout batch, pi_old is the current policy itself: the
  // forward of the update provides it and no extra pass is needed.
  const bool single_step = alg.num_iterations == 1 && alg.mini_batches == 1;
  std::vector<const Sample*> order(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) order[i] = &samples[i];
  // Old and reference logprobs per sample, computed before any update.
  std::vector<std::vector<float>> old_lp(samples.size()), ref_lp(samples.size());
  auto per_sample = [&](Transformer& model, std::vector<std::vector<float>>& out) {
    for (const auto& micro : micro_batches(order)) {
      PackedBatch p = pack_samples(micro, alg.mask_truncated, max_len);
      std::vector<float> lp = logprobs(model, p);
      for (int64_t b = 0; b < p.B; ++b)
        out[micro[b] - samples.data()].assign(lp.begin() + b * p.T, lp.begin() + (b + 1) * p.T);
    }
  };
  if (!single_step) per_sample(policy_, old_lp);
  if (reference_) per_sample(*reference_, ref_lp);

  Rng rng(shuffle_seed);
  double weighted_count = 0;
  for (int64_t iteration = 0; iteration < alg.num_iterations; ++iteration) {
    if (alg.mini_batches > 1)
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    // Exactly mini_batches optimizer steps, so data-parallel learners with unequal shares stay in step.
    const int64_t n = (int64_t)order.size();
    for (int64_t mb = 0; mb < alg.mini_batches; ++mb) {
      std::vector<const Sample*> mini(order.begin() + mb * n / alg.mini_batches,
                                      order.begin() + (mb + 1) * n / alg.mini_batches);
      PackedBatch whole = pack_samples(mini, alg.mask_truncated, max_len);
      PolicyBatch whole_view;
      whole_view.B = whole.B, whole_view.T = whole.T, whole_view.mask = whole.mask.data();
      LossNormalizer norm = loss_normalizer(whole_view);
      double global[2] = {norm.tokens, norm.sequences};
      sum_over_learners(global, 2);
      norm.tokens = global[0], norm.sequences = global[1];
      if (norm.tokens == 0) continue;
      policy_.zero_grad();
      for (const auto& micro : micro_batches(mini)) {
        PackedBatch p = pack_samples(micro, alg.mask_truncated, max_len);
        std::vector<float> lp(p.B * p.T), entropy(p.B * p.T), old(p.B * p.T), ref, grad(p.B * p.T);
        policy_.forward(p.tokens.data(), p.lengths.data(), p.targets.data(), p.B, p.T, lp.data(), entropy.data());
        for (int64_t b = 0; b < p.B; ++b) {
          const std::vector<float>& src = single_step ? lp : old_lp[micro[b] - samples.data()];
          std::copy_n(single_step ? lp.begin() + b * p.T : src.begin(), p.T, old.begin() + b * p.T);
        }
        if (reference_) {
          ref.resize(p.B * p.T);
          for (int64_t b = 0; b < p.B; ++b)
            std::copy_n(ref_lp[micro[b] - samples.data()].begin(), p.T, ref.begin() + b * p.T);
        }
        PolicyBatch view;
        view.B = p.B, view.T = p.T, view.logprob = lp.data(), view.old_logprob = old.data();
        view.ref_logprob = reference_ ? ref.data() : nullptr, view.rollout_logprob = p.rollout_logprobs.data();
        view.mask = p.mask.data(), view.advantages = p.advantages.data();
        LossMetrics m = grpo_loss(view, alg.loss, norm, grad.data());
        policy_.backward(grad.data(), nullptr);
        double entropy_sum = 0;
        for (int64_t i = 0; i < p.B * p.T; ++i) entropy_sum += p.mask[i] * entropy[i];
        total.loss += m.loss, total.policy_loss += m.policy_loss;
        total.kl += m.kl * m.tokens, total.clip_fraction += m.clip_fraction * m.tokens;
        total.ratio_mean += m.ratio_mean * m.tokens, total.mismatch_k3 += m.mismatch_k3 * m.tokens;
        total.entropy += entropy_sum, total.masked_sequences += m.masked_sequences;
        total.tokens += (int64_t)m.tokens;
        weighted_count += m.tokens;
      }
      Optimizer::Result r = optimizer_step();
      total.grad_norm = r.grad_norm, total.lr = r.lr;
      total.optimizer_steps += 1;
      total.skipped_steps += r.skipped ? 1 : 0;
    }
  }
  double sums[] = {total.loss,           total.policy_loss, total.kl,      total.clip_fraction,
                   total.ratio_mean,     total.mismatch_k3, total.entropy, total.masked_sequences,
                   (double)total.tokens, weighted_count};
  sum_over_learners(sums, std::size(sums));
  total.loss = sums[0], total.policy_loss = sums[1], total.kl = sums[2], total.clip_fraction = sums[3];
  total.ratio_mean = sums[4], total.mismatch_k3 = sums[5], total.entropy = sums[6], total.masked_sequences = sums[7];
  total.tokens = (int64_t)sums[8], weighted_count = sums[9];
  if (weighted_count > 0) {
    total.kl /= weighted_count, total.clip_fraction /= weighted_count, total.ratio_mean /= weighted_count;
    total.mismatch_k3 /= weighted_count, total.entropy /= weighted_count;
  }
  if (total.optimizer_steps > 0) total.loss /= total.optimizer_steps, total.policy_loss /= total.optimizer_steps;
  return total;
}

UpdateMetrics Learner::sft_step(const std::vector<Sample>& samples) {
  UpdateMetrics total;
  std::vector<const Sample*> all(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) all[i] = &samples[i];
  PackedBatch whole = pack_samples(all, false, policy_.config().max_seq_len);
  double tokens = std::accumulate(whole.mask.begin(), whole.mask.end(), 0.0);
  sum_over_learners(&tokens, 1);
  COHORT_REQUIRE(tokens > 0, "SFT batch has no response tokens");
  policy_.zero_grad();
  double loss = 0;
  for (const auto& micro : micro_batches(all)) {
    PackedBatch p = pack_samples(micro, false, policy_.config().max_seq_len);
    std::vector<float> lp(p.B * p.T), grad(p.B * p.T);
    policy_.forward(p.tokens.data(), p.lengths.data(), p.targets.data(), p.B, p.T, lp.data(), nullptr);
    // Mean over the whole batch's response tokens, so micro-batching changes nothing.
    for (int64_t i = 0; i < p.B * p.T; ++i) {
      grad[i] = (float)(-p.mask[i] / tokens);
      loss -= p.mask[i] * lp[i] / tokens;
    }
    policy_.backward(grad.data(), nullptr);
  }
  sum_over_learners(&loss, 1);
  Optimizer::Result r = optimizer_step();
  total.loss = loss, total.grad_norm = r.grad_norm, total.lr = r.lr, total.optimizer_steps = 1;
  total.skipped_steps = r.skipped ? 1 : 0, total.tokens = (int64_t)tokens;
  return total;
}

}  // namespace cohort::trainer
