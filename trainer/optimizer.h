// AdamW on the fp32 master weights with a warmup + constant/cosine learning-rate
// schedule and global-norm gradient clipping; a step whose gradient is not finite is
// skipped and reported rather than poisoning the weights.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/settings.h"

namespace cohort::trainer {

class Optimizer {
 public:
  // num_parameters: the parameters this optimizer updates (a learner's shard under ZeRO-1).
  Optimizer(int64_t num_parameters, const OptimSettings& settings, int64_t total_steps);

  // Learning rate of optimizer step `step` (0-based).
  double lr_at(int64_t step) const;

  struct Result {
    double grad_norm = 0;  // before clipping
    double lr = 0;
    double clip_factor = 1;  // applied to the gradient
    bool skipped = false;    // gradient not finite: weights untouched
  };
  Result step(std::vector<float>& weights, std::vector<float>& grads);
  // The same step on n = num_parameters floats, with the gradient norm already known (under ZeRO-1 each
  // learner holds one shard, and the norm is over every shard). Clips grads in place.
  Result step(float* weights, float* grads, int64_t n, double grad_norm);
  int64_t steps_taken() const { return steps_; }

  // The AdamW moments and the step count, for checkpoints (trainer/checkpoint.h).
  const std::vector<float>& first_moments() const { return m_; }
  const std::vector<float>& second_moments() const { return v_; }
  // Throws cohort::Error when the moments' sizes are not this optimizer's.
  void restore(std::vector<float> m, std::vector<float> v, int64_t steps_taken);

 private:
  OptimSettings settings_;
  int64_t total_steps_;
  int64_t steps_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace cohort::trainer
