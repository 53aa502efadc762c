// The isolation pool: reward functions that may hang, crash or eat memory (plugins, functions marked
// `isolate`) score in worker processes, so that such a function costs one sample's score and a worker,
// never the server or the trainer. A function past its deadline is abandoned: its worker is killed and
// replaced, and the sample gets "no score: timeout"; a worker that dies gives "no score: crashed".
//
// Workers are forked from this process (no exec): they inherit the constructed functions, so a plugin
// or a function's tables are set up once. A worker only reads tasks from its socket, scores, and writes
// the outcome; it ends when its parent does and ignores SIGINT/SIGTERM, which belong to the
// parent's graceful shutdown. Its address space may grow by memory_mb beyond what it inherited
// (RLIMIT_AS), so a memory-hungry function fails its allocation instead of taking the machine.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "reward/outcome.h"
#include "reward/reward_function.h"

namespace cohort::reward {

struct IsolatedFunction {
  std::string name;
  const RewardFunction* function;  // outlives the pool
};

struct IsolatedTask {
  size_t function;  // index into the pool's functions
  const RewardInput* input;
  double timeout_s;  // from the moment a worker takes the task
};

class IsolationPool {
 public:
  IsolationPool(std::vector<IsolatedFunction> functions, int64_t max_workers, int64_t memory_mb);
  ~IsolationPool();
  IsolationPool(const IsolationPool&) = delete;
  IsolationPool& operator=(const IsolationPool&) = delete;

  // One outcome per task, in order. Tasks not started by `deadline` time out. Thread safe: concurrent
  // calls share the workers.
  std::vector<Outcome> run(const std::vector<IsolatedTask>& tasks, Clock::time_point deadline);

  int64_t workers_replaced() const { return replaced_.load(); }
  int64_t max_workers() const { return max_workers_; }

 private:
  struct Worker {
    pid_t pid = -1;
    int fd = -1;
  };
  // An idle worker, a new one if fewer than max_workers live, or (when wait) the next one released
  // before the deadline; pid -1 when none.
  Worker acquire(bool wait, Clock::time_point deadline);
  void release(Worker w);
  // Kills (when kill) and reaps a worker; returns how it ended, for the "crashed" message.
  std::string discard(Worker w, bool kill);
  Worker spawn();

  std::vector<IsolatedFunction> functions_;
  int64_t max_workers_;
  int64_t memory_mb_;
  pid_t parent_pid_;
  std::mutex mutex_;
  std::condition_variable released_;
  std::vector<Worker> idle_;
  int64_t alive_ = 0;
  std::atomic<int64_t> replaced_{0};
};

}  // namespace cohort::reward
