// ThreadGovernor: it finds the faster thread count for work whose cost depends on it, follows
// a change, re-checks rarely once settled, and always hands the process's count back.
#include <gtest/gtest.h>

#include <omp.h>

#include <chrono>
#include <thread>

#include "kernels/thread_governor.h"
#include "kernels/threads.h"

using namespace cohort;

namespace {
// One call of work whose time per unit is `full` ms on the full count and `half` ms on half of it.
int run_call(ThreadGovernor& g, double full_ms, double half_ms, int full_threads) {
  int used = g.begin();
  EXPECT_EQ(omp_get_max_threads(), used);
  EXPECT_EQ(openblas_threads(), used);
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(used == full_threads ? full_ms : half_ms));
  g.end(1.0);
  return used;
}
}  // namespace

TEST(ThreadGovernor, ChoosesTheFasterCountAndFollowsAChange) {
  set_thread_count(4);
  ThreadGovernor g;
  // Half the threads is faster (a busy neighbour): the governor moves there and stays.
  for (int i = 0; i < 20; ++i) run_call(g, 4.0, 1.0, 4);
  EXPECT_EQ(g.chosen_threads(), 2);
  int on_full = 0;
  for (int i = 0; i < 200; ++i) on_full += run_call(g, 4.0, 1.0, 4) == 4;
  EXPECT_LE(on_full, 10) << "re-checks should become rare while the choice holds";
  EXPECT_GE(on_full, 1) << "the other count must still be re-checked now and then";
  // The neighbour leaves: the full count is faster again, and the governor returns to it
  // (the half count now runs slower, which triggers a re-check within a few calls).
  int calls = 0;
  while (g.chosen_threads() != 4 && calls < 40) run_call(g, 1.0, 4.0, 4), ++calls;
  EXPECT_EQ(g.chosen_threads(), 4) << "did not return to the full count within 40 calls";
  // Between calls the process's own count is in force.
  EXPECT_EQ(omp_get_max_threads(), 4);
  EXPECT_EQ(thread_count(), 4);
  set_thread_count(1);
}

TEST(ThreadGovernor, OneThreadIsNeverGoverned) {
  set_thread_count(1);
  ThreadGovernor g;
  for (int i = 0; i < 12; ++i) EXPECT_EQ(run_call(g, 1.0, 1.0, 1), 1);
  EXPECT_EQ(g.chosen_threads(), 1);
}

TEST(ThreadGovernor, StartsOverWhenTheProcessCountChanges) {
  set_thread_count(4);
  ThreadGovernor g;
  for (int i = 0; i < 20; ++i) run_call(g, 4.0, 1.0, 4);
  EXPECT_EQ(g.chosen_threads(), 2);
  set_thread_count(2);
  EXPECT_EQ(g.begin(), 2);  // a new budget: the full count first
  g.end(1.0);
  set_thread_count(1);
}
