// How many of its threads a repeated piece of work should use, chosen by timing it.
//
// A process is given N threads (kernels/threads.h), but whether N beats fewer depends on who else
// wants the cores: alone, two threads decode the small model faster than one; beside a busy
// process the second thread waits for a core at every join and the same work runs 5-8x slower,
// while one thread runs as fast as alone (docs/performance.md "Sharing the cores"). Neither
// count is right everywhere, and a neighbour can come and go mid-run, so each kind of work
// (decode step, prefill, training forward, backward) keeps its own governor that times the work
// per unit (token) at N and at N/2 threads and runs the faster, re-checking the other count now
// and then: often after a change, rarely while the choice keeps holding, and at once when the
// work suddenly slows. Results do not depend on the choice: every reduction in kernels/cpu is
// blocked independently of the thread count, and OpenBLAS splits GEMMs only over their outputs.
#pragma once

#include <chrono>
#include <cstdint>

namespace cohort {

class ThreadGovernor {
 public:
  // Before the work: applies (OpenMP and OpenBLAS) the thread count this call should run with
  // and returns it.
  int begin();
  // After the work, with its size in units that its cost grows with (tokens): restores the
  // process's thread count and learns from the time taken.
  void end(double units);

  int chosen_threads() const { return budget_ <= 1 ? 1 : candidates_[chosen_]; }

  // COHORT_THREAD_GOVERNOR=off (or a process with one thread) always runs the full count.
  static bool enabled();

 private:
  using Clock = std::chrono::steady_clock;
  int budget_ = 0;               // thread_count() the candidates were made from
  int candidates_[2] = {1, 1};   // the full count, and half of it
  double per_unit_[2] = {0, 0};  // seconds per unit, a running estimate; 0 = not measured yet
  int chosen_ = 0, running_ = -1, slow_calls_ = 0;
  int64_t calls_ = 0, next_probe_ = 0, probe_interval_ = 8;
  Clock::time_point start_;
};

}  // namespace cohort
