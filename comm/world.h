// RAII MPI bootstrap: one World per process, made first in main() and destroyed last.
#pragma once

#include <mpi.h>

#include <string>

namespace cohort::comm {

// True when this process was started by mpirun/mpiexec or srun (their environment variables are set); a
// plain process then skips MPI entirely.
bool launched_by_mpi();

// Initialises MPI with MPI_THREAD_FUNNELED (only the main thread calls MPI). Works under mpirun and as a
// plain process (an Open MPI singleton of size 1). If MPI was already initialised by someone else, World
// neither initialises nor finalises it.
class World {
 public:
  World(int* argc, char*** argv);
  World() : World(nullptr, nullptr) {}
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank and size among the processes sharing this node's memory (MPI_COMM_TYPE_SHARED).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& host() const { return host_; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }

  // Prints "cohort: rank R on HOST: REASON" to stderr and takes every rank down with MPI_Abort.
  [[noreturn]] void abort_all(const std::string& reason);

 private:
  bool owns_mpi_ = false;
  bool aborted_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string host_;
};

}  // namespace cohort::comm
