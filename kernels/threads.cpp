// Thread count policy: affinity-aware default, one knob for OpenMP and OpenBLAS.
#include "kernels/threads.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <cblas.h>
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/error.h"

namespace cohort {

namespace {
int g_threads = 0;

int local_rank_count() {
  // Open MPI, MPICH/Hydra and Slurm each say how many ranks share this node.
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* v = std::getenv(name)) {
      int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return 1;
}
}  // namespace

int default_thread_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int allowed = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) allowed = CPU_COUNT(&set);
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  // An affinity mask narrower than the machine means the launcher already bound
  // this rank to its share of cores; otherwise split the machine among local ranks.
  if (online > 0 && allowed >= online) allowed = std::max(1, allowed / local_rank_count());
  return std::max(1, allowed);
}

void set_thread_count(int n) {
  if (n <= 0) n = default_thread_count();
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

void use_threads(int n) {
  n = std::max(1, n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int openmp_threads() {
  return omp_get_max_threads();
}

int openblas_threads() {
  return openblas_get_num_threads();
}

int thread_count() {
  if (g_threads == 0) set_thread_count(0);
  return g_threads;
}

namespace {
// COHORT_THREADS as a count, or 0 when it is not set.
int environment_threads() {
  const char* v = std::getenv("COHORT_THREADS");
  if (!v) return 0;
  char* end = nullptr;
  long parsed = std::strtol(v, &end, 10);
  COHORT_REQUIRE(end != v && *end == '\0' && parsed > 0 && parsed <= 4096,
                 "COHORT_THREADS='" << v << "' is not a positive integer");
  return static_cast<int>(parsed);
}
}  // namespace

const char* to_string(ThreadSource source) {
  switch (source) {
    case ThreadSource::command_line:
      return "--threads";
    case ThreadSource::config:
      return "run.threads";
    case ThreadSource::environment:
      return "COHORT_THREADS";
    case ThreadSource::cores:
      break;
  }
  return "the cores this process was given";
}

std::string ThreadChoice::describe() const {
  return std::to_string(threads) + (threads == 1 ? " thread" : " threads") + " (from " + to_string(source) + ")";
}

ThreadChoice choose_threads(int64_t command_line, int64_t config) {
  COHORT_REQUIRE(command_line <= 4096 && config <= 4096,
                 "a thread count above 4096 (" << std::max(command_line, config) << ") is not a machine cohort knows");
  if (command_line > 0) return {(int)command_line, ThreadSource::command_line};
  if (config > 0) return {(int)config, ThreadSource::config};
  if (int n = environment_threads()) return {n, ThreadSource::environment};
  return {default_thread_count(), ThreadSource::cores};
}

ThreadChoice apply_threads(int64_t command_line, int64_t config) {
  ThreadChoice c = choose_threads(command_line, config);
  set_thread_count(c.threads);
  return c;
}

int init_threads_from_environment() {
  return apply_threads(0, 0).threads;
}

}  // namespace cohort
