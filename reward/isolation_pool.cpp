// The isolation pool's dispatcher (parent side) and worker loop (child side). The two speak the reward
// protocol's messages over a socketpair: a ScoreRequest with one sample and one function name, answered by
// a ScoreReply with one FunctionScore.
#include "reward/isolation_pool.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "comm/proto/reward.pb.h"
#include "reward/frame.h"
#include "reward/protocol.h"

namespace cohort::reward {
namespace {

namespace pb = cohort::reward::v1;

constexpr uint32_t kWorkerMaxFrame = 1u << 30;

// The child: score tasks until the socket closes. Never returns.
[[noreturn]] void worker_main(int fd, const std::vector<IsolatedFunction>& functions, int64_t memory_mb, pid_t parent) {
  // PR_SET_PDEATHSIG would fire when the *thread* that forked exits, not the process; a watcher thread ends
  // a worker whose parent is gone even while a function hangs (a worker blocked in read sees EOF anyway).
  if (getppid() != parent) _exit(0);
  std::thread([parent] {
    while (getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    _exit(0);
  }).detach();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // Only the socket stays open: a worker must not keep the parent's listening socket or files alive.
  if (fd != 3) {
    dup2(fd, 3);
    fd = 3;
  }
  for (int other = 4; other < 65536; ++other) {
    if (close(other) < 0 && errno == EBADF && other > 1024) break;
  }
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  if (memory_mb > 0) {
    long pages = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t limit = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)memory_mb * (1 << 20);
    rlimit as{limit, limit};
    setrlimit(RLIMIT_AS, &as);
  }
  for (;;) {
    pb::ScoreRequest request;
    try {
      const std::string frame = read_frame(fd, kWorkerMaxFrame, Clock::now() + std::chrono::hours(24 * 365));
      if (!request.ParseFromString(frame) || request.samples_size() != 1 || request.functions_size() != 1) _exit(3);
    } catch (...) {
      _exit(0);  // the parent closed the socket (or went away)
    }
    Outcome outcome = Outcome::none(Unscored::failed, "unknown function");
    for (const IsolatedFunction& f : functions) {
      if (f.name != request.functions(0)) continue;
      outcome = score_sample(*f.function, request.samples(0));
      break;
    }
    pb::ScoreReply reply;
    reply.set_request_id(request.request_id());
    set_outcome(reply.add_results()->add_scores(), outcome);
    try {
      write_frame(fd, reply.SerializeAsString(), Clock::now() + std::chrono::seconds(60));
    } catch (...) {
      _exit(0);
    }
  }
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "its worker process was killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  if (WIFEXITED(status)) return "its worker process exited with status " + std::to_string(WEXITSTATUS(status));
  return "its worker process ended";
}

}  // namespace

IsolationPool::IsolationPool(std::vector<IsolatedFunction> functions, int64_t max_workers, int64_t memory_mb)
    : functions_(std::move(functions)),
      max_workers_(std::max<int64_t>(1, max_workers)),
      memory_mb_(memory_mb),
      parent_pid_(getpid()) {}

IsolationPool::~IsolationPool() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Worker& w : idle_) {
    close(w.fd);  // the worker reads EOF and exits
    kill(w.pid, SIGKILL);
    waitpid(w.pid, nullptr, 0);
  }
}

IsolationPool::Worker IsolationPool::spawn() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    worker_main(sv[1], functions_, memory_mb_, parent_pid_);
  }
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return {};
  }
  return {pid, sv[0]};
}

IsolationPool::Worker IsolationPool::acquire(bool wait, Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (!idle_.empty()) {
      Worker w = idle_.back();
      idle_.pop_back();
      return w;
    }
    if (alive_ < max_workers_) {
      ++alive_;
      lock.unlock();
      Worker w = spawn();
      if (w.pid < 0) {
        lock.lock();
        --alive_;
        released_.notify_one();
      }
      return w;
    }
    if (!wait || released_.wait_until(lock, deadline) == std::cv_status::timeout) return {};
  }
}

void IsolationPool::release(Worker w) {
  std::lock_guard<std::mutex> lock(mutex_);
  idle_.push_back(w);
  released_.notify_one();
}

std::string IsolationPool::discard(Worker w, bool kill_it) {
  if (kill_it) kill(w.pid, SIGKILL);
  close(w.fd);
  int status = 0;
  std::string how = "its worker process ended";
  if (waitpid(w.pid, &status, 0) == w.pid) how = describe_exit(status);
  ++replaced_;
  std::lock_guard<std::mutex> lock(mutex_);
  --alive_;
  released_.notify_one();
  return how;
}

std::vector<Outcome> IsolationPool::run(const std::vector<IsolatedTask>& tasks, Clock::time_point deadline) {
  std::vector<Outcome> out(tasks.size());
  struct Active {
    Worker worker;
    size_t task;
    Clock::time_point until;
  };
  std::vector<Active> active;
  size_t next = 0;
  int spawn_failures = 0;
  auto seconds = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  try {
    while (next < tasks.size() || !active.empty()) {
      while (next < tasks.size()) {
        const auto now = Clock::now();
        if (now >= deadline) {
          for (; next < tasks.size(); ++next)
            out[next] = Outcome::none(Unscored::timeout, "the request's deadline passed before it was scored");
          break;
        }
        Worker w = acquire(active.empty(), deadline);
        if (w.pid < 0) {
          if (active.empty() && ++spawn_failures > 3) {
            out[next++] =
                Outcome::none(Unscored::crashed, std::string("cannot start a worker process: ") + std::strerror(errno));
          }
          break;
        }
        const IsolatedTask& t = tasks[next];
        pb::ScoreRequest request;
        request.set_request_id(next);
        set_sample(request.add_samples(), *t.input, next);
        request.add_functions(functions_[t.function].name);
        try {
          write_frame(w.fd, request.SerializeAsString(), now + std::chrono::seconds(10));
        } catch (const FrameError&) {
          discard(w, true);  // a worker that cannot take a task is replaced; the task goes to another
          continue;
        }
        active.push_back({w, next, std::min(deadline, now + seconds(t.timeout_s))});
        ++next;
      }
      if (active.empty()) continue;
      std::vector<pollfd> fds;
      auto earliest = active.front().until;
      for (const Active& a : active) {
        fds.push_back({a.worker.fd, POLLIN, 0});
        earliest = std::min(earliest, a.until);
      }
      const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(earliest - Clock::now()).count();
      // With tasks still queued, come back soon to hand them to workers other calls release.
      const int64_t cap = next < tasks.size() ? 20 : 60'000;
      ::poll(fds.data(), fds.size(), (int)std::clamp<int64_t>(wait_ms + 1, 0, cap));
      const auto now = Clock::now();
      std::vector<Active> still;
      for (size_t i = 0; i < active.size(); ++i) {
        Active& a = active[i];
        const IsolatedTask& t = tasks[a.task];
        if (fds[i].revents != 0) {
          try {
            pb::ScoreReply reply;
            const std::string frame =
                read_frame(a.worker.fd, kWorkerMaxFrame, std::min(a.until, now + std::chrono::seconds(5)));
            if (!reply.ParseFromString(frame) || reply.results_size() != 1 || reply.results(0).scores_size() != 1)
              throw FrameError("a malformed reply");
            out[a.task] = outcome_of(reply.results(0).scores(0));
            release(a.worker);
          } catch (const FrameError& e) {
            const std::string how = discard(a.worker, true);
            out[a.task] = Outcome::none(
                Unscored::crashed, "'" + functions_[t.function].name + "' crashed: " + how + " (" + e.what() + ")");
          }
        } else if (now >= a.until) {
          discard(a.worker, true);
          char budget[64];
          std::snprintf(budget, sizeof budget, "%g s", t.timeout_s);
          out[a.task] = Outcome::none(Unscored::timeout, "'" + functions_[t.function].name + "' ran past its " +
                                                             (a.until == deadline ? std::string("request's deadline")
                                                                                  : std::string(budget) + " deadline") +
                                                             "; its worker was killed");
        } else {
          still.push_back(a);
        }
      }
      active = std::move(still);
    }
  } catch (...) {
    for (const Active& a : active) discard(a.worker, true);
    throw;
  }
  return out;
}

}  // namespace cohort::reward
