// One setting for how many threads a process computes with: it governs both the
// OpenMP loops in kernels/cpu and OpenBLAS, so the two never fight for cores.
//
// Where the count comes from, first match wins (docs/config.md "Threads"):
//   1. the command line (--threads N)
//   2. the config (run.threads, when > 0)
//   3. the environment (COHORT_THREADS)
//   4. the cores this process was given, divided among the MPI ranks on its node
#pragma once

#include <cstdint>
#include <string>

namespace cohort {

// Cores this process may use: the CPUs in its affinity mask, divided among the MPI
// ranks on this node when the ranks were not bound to separate cores (so four
// unbound ranks on a 16-core node take 4 threads each instead of 16).
int default_thread_count();

// Sets the thread count for OpenMP and OpenBLAS; n <= 0 means default_thread_count().
void set_thread_count(int n);
int thread_count();
// Sets OpenMP's and OpenBLAS's counts for the work that follows, leaving thread_count() (the
// process's budget) as it is; ThreadGovernor uses it to run a call on fewer threads.
void use_threads(int n);
// What the libraries themselves will use now (for run metrics and tests): OpenMP's and OpenBLAS's counts.
int openmp_threads();
int openblas_threads();

enum class ThreadSource { command_line, config, environment, cores };
const char* to_string(ThreadSource source);

struct ThreadChoice {
  int threads = 1;
  ThreadSource source = ThreadSource::cores;
  std::string describe() const;  // "2 threads (from --threads)"
};

// The count the order above gives: command_line and config count when > 0; COHORT_THREADS
// is an error when set but not a positive integer. Does not apply it.
ThreadChoice choose_threads(int64_t command_line, int64_t config);
// choose_threads, then set_thread_count with the result.
ThreadChoice apply_threads(int64_t command_line, int64_t config);

// COHORT_THREADS from the environment if set (error if it is not a positive
// integer), else the default. Returns the count chosen.
int init_threads_from_environment();

// A parallel region costs a fork and a join; on a machine whose cores another process
// also wants, the join waits for a thread the scheduler has put aside, milliseconds per
// region. Loops with less work than this many scalar operations therefore run on the
// calling thread: decode at small batch is hundreds of such loops per token, and
// single-threading them cost nothing alone while it removed most of the slowdown beside
// a busy process (docs/performance.md "Sharing the cores").
inline constexpr int64_t kParallelMinWork = int64_t(1) << 16;
inline bool worth_parallel(int64_t work) {
  return work >= kParallelMinWork;
}

}  // namespace cohort
