// AdamW step with schedule and clipping.
#include "trainer/optimizer.h"

#include <cmath>

#include "kernels/cpu/adamw.h"
#include "kernels/error.h"

namespace cohort::trainer {

Optimizer::Optimizer(int64_t n, const OptimSettings& s, int64_t total_steps)
    : settings_(s), total_steps_(std::max<int64_t>(1, total_steps)), m_((size_t)n, 0.f), v_((size_t)n, 0.f) {}

double Optimizer::lr_at(int64_t step) const {
  const OptimSettings& s = settings_;
  if (s.warmup_steps > 0 && step < s.warmup_steps) return s.lr * (double)(step + 1) / (double)s.warmup_steps;
  if (s.schedule == LrSchedule::constant) return s.lr;
  int64_t decay_steps = std::max<int64_t>(1, total_steps_ - s.warmup_steps);
  double progress = std::min(1.0, (double)(step - s.warmup_steps) / (double)decay_steps);
  double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return s.lr * (s.min_lr_ratio + (1.0 - s.min_lr_ratio) * cosine);
}

Optimizer::Result Optimizer::step(std::vector<float>& weights, std::vector<float>& grads) {
  COHORT_REQUIRE(weights.size() == grads.size(),
                 "optimizer: " << weights.size() << " weights but " << grads.size() << " gradients");
  double norm = std::sqrt(cpu::squared_norm(grads.data(), (int64_t)grads.size()));
  return step(weights.data(), grads.data(), (int64_t)weights.size(), norm);
}

Optimizer::Result Optimizer::step(float* weights, float* grads, int64_t n, double grad_norm) {
  COHORT_REQUIRE(n == (int64_t)m_.size(),
                 "optimizer holds state for " << m_.size() << " parameters, asked to update " << n);
  Result r;
  r.lr = lr_at(steps_);
  r.grad_norm = grad_norm;
  if (!std::isfinite(r.grad_norm)) {
    r.skipped = true;
    return r;
  }
  r.clip_factor = cpu::clip_by_global_norm(grads, n, r.grad_norm, settings_.grad_clip);
  cpu::AdamWSettings a;
  a.lr = r.lr, a.beta1 = settings_.beta1, a.beta2 = settings_.beta2, a.eps = settings_.eps;
  a.weight_decay = settings_.weight_decay, a.step = steps_ + 1;
  cpu::adamw_update(weights, grads, m_.data(), v_.data(), n, a);
  ++steps_;
  return r;
}

void Optimizer::restore(std::vector<float> m, std::vector<float> v, int64_t steps_taken) {
  COHORT_REQUIRE(m.size() == m_.size() && v.size() == v_.size() && steps_taken >= 0,
                 "optimizer state of " << m.size() << " parameters cannot restore an optimizer of " << m_.size());
  m_ = std::move(m), v_ = std::move(v), steps_ = steps_taken;
}

}  // namespace cohort::trainer
