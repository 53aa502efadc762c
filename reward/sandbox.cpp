// The sandbox behind the code_tests reward. The child is started with clone(CLONE_VM |
// CLONE_VFORK) like posix_spawn, so a trainer holding gigabytes never copies its page tables, and
// with CLONE_NEWPID | CLONE_NEWNET where allowed. Everything the child runs before execve is an
// async-signal-safe system call on data the parent prepared; it never allocates or locks.
#include "reward/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

namespace cohort::reward {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kSandboxPath = "/usr/bin:/bin";
constexpr uid_t kNobody = 65534;
// Each concurrent run as root gets its own uid kSandboxUidBase + slot: RLIMIT_NPROC counts a
// user's processes, so with one shared uid a fork bomb in one run would starve all the others.
// A slot is held with flock on a lock file, which excludes other threads and other processes.
constexpr uid_t kSandboxUidBase = 1'000'000;
constexpr unsigned kSandboxUidSlots = 1024;
constexpr const char* kSlotLockDirectory = "/tmp/cohort-sandbox-uid-locks";
constexpr rlim_t kMaxOpenFiles = 64;
constexpr size_t kChildStackBytes = 256 * 1024;
constexpr auto kDrainTime = std::chrono::milliseconds(500);  // output collected after exit or kill
constexpr auto kPollTick = std::chrono::milliseconds(10);    // exit checks where pidfd_open is missing

std::string error_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

// Each distinct message once per process, so a machine without namespaces says so once, not per test.
void log_once(const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> seen;
  std::lock_guard lock(mutex);
  if (seen.insert(message).second) std::fprintf(stderr, "cohort sandbox: %s\n", message.c_str());
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] void fail(const std::string& what, int error) {
  throw SandboxError("sandbox: " + what + ": " + error_text(error));
}

// Moves a new descriptor to 3 or above, so the child's dup2 onto 0, 1 and 2 never overwrites a
// pipe end it still needs (the caller may have closed its own standard streams).
UniqueFd above_stdio(int fd) {
  if (fd >= 3) return UniqueFd(fd);
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int error = errno;
  ::close(fd);
  if (moved < 0) fail("fcntl(F_DUPFD_CLOEXEC)", error);
  return UniqueFd(moved);
}

struct FdPair {
  UniqueFd parent;
  UniqueFd child;
};

// A pipe with both ends close-on-exec: a concurrent run's child never inherits them past execve.
FdPair make_pipe(bool parent_reads) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail("pipe2", errno);
  UniqueFd read_end = above_stdio(fds[0]), write_end = above_stdio(fds[1]);
  FdPair pair;
  pair.parent = parent_reads ? std::move(read_end) : std::move(write_end);
  pair.child = parent_reads ? std::move(write_end) : std::move(read_end);
  if (::fcntl(pair.parent.get(), F_SETFL, O_NONBLOCK) != 0) fail("fcntl(O_NONBLOCK)", errno);
  return pair;
}

// Standard input is a socket pair, so the parent writes with MSG_NOSIGNAL: a program that exits
// without reading gives EPIPE, never a process-wide SIGPIPE.
FdPair make_stdin_socket() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fail("socketpair", errno);
  FdPair pair{above_stdio(fds[0]), above_stdio(fds[1])};
  if (::fcntl(pair.parent.get(), F_SETFL, O_NONBLOCK) != 0) fail("fcntl(O_NONBLOCK)", errno);
  return pair;
}

// ---- the unprivileged identity -----------------------------------------------------------

struct Identity {
  uid_t uid = kNobody;
  gid_t gid = kNobody;
  bool own_uid = false;  // a per-run uid: every process with it belongs to this run
  UniqueFd slot_lock;    // held for the run
};

// Whether ids [first, first + count) are mapped in this user namespace (/proc/self/uid_map).
bool ids_mapped(const char* map_file, uint64_t first, uint64_t count) {
  std::ifstream in(map_file);
  uint64_t inside = 0, outside = 0, length = 0;
  while (in >> inside >> outside >> length) {
    if (inside <= first && first + count <= inside + length) return true;
  }
  return false;
}

bool per_run_uids_available() {
  static const bool available = [] {
    bool mapped = ids_mapped("/proc/self/uid_map", kSandboxUidBase, kSandboxUidSlots) &&
                  ids_mapped("/proc/self/gid_map", kSandboxUidBase, kSandboxUidSlots);
    if (!mapped) {
      log_once("uids " + std::to_string(kSandboxUidBase) + ".." +
               std::to_string(kSandboxUidBase + kSandboxUidSlots - 1) +
               " are not mapped in this user namespace; sandboxed programs run as nobody (65534) and "
               "concurrent runs share one process limit");
    }
    return mapped;
  }();
  return available;
}

void ensure_slot_lock_directory() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::mkdir(kSlotLockDirectory, 0700) != 0 && errno != EEXIST) {
      fail(std::string("mkdir ") + kSlotLockDirectory, errno);
    }
    struct stat st {};
    if (::lstat(kSlotLockDirectory, &st) != 0) fail(std::string("lstat ") + kSlotLockDirectory, errno);
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
      throw SandboxError(std::string("sandbox: ") + kSlotLockDirectory +
                         " must be a directory owned by this user and writable by no one else");
    }
  });
}

// nullopt when not root: then there is nothing to drop to and the program runs as the caller.
std::optional<Identity> acquire_identity() {
  if (::geteuid() != 0) return std::nullopt;
  if (!per_run_uids_available()) return Identity{};
  ensure_slot_lock_directory();
  // Processes start their scan at different slots so that they rarely contend.
  static std::atomic<unsigned> next_slot{static_cast<unsigned>(::getpid()) * 7919u};
  unsigned start = next_slot.fetch_add(1);
  for (unsigned i = 0; i < kSandboxUidSlots; ++i) {
    unsigned slot = (start + i) % kSandboxUidSlots;
    std::string lock_path = std::string(kSlotLockDirectory) + "/" + std::to_string(slot);
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!lock.valid()) fail("open " + lock_path, errno);
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;  // another run holds it
    Identity identity;
    identity.uid = kSandboxUidBase + slot;
    identity.gid = kSandboxUidBase + slot;
    identity.own_uid = true;
    identity.slot_lock = std::move(lock);
    return identity;
  }
  throw SandboxError("sandbox: all " + std::to_string(kSandboxUidSlots) + " sandbox uids are in use");
}

void chown_tree(const std::filesystem::path& root, uid_t uid, gid_t gid) {
  if (::lchown(root.c_str(), uid, gid) != 0) fail("chown " + root.string(), errno);
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) fail("chown " + it->path().string(), errno);
  }
  if (ec) throw SandboxError("sandbox: listing " + root.string() + ": " + ec.message());
}

// ---- the child --------------------------------------------------------------------------

// Stages reported through the report pipe when the child fails before execve.
enum ChildStage : int { kStageFds = 1, kStageChdir, kStageRlimit, kStageIdentity, kStageExec };

const char* stage_name(int stage) {
  switch (stage) {
    case kStageFds:
      return "setting up descriptors";
    case kStageChdir:
      return "chdir to the work directory (it must be reachable by the sandbox uid)";
    case kStageRlimit:
      return "setrlimit";
    case kStageIdentity:
      return "dropping privileges";
    case kStageExec:
      return "execve";
  }
  return "unknown stage";
}

struct ChildPlan {
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* workdir;
  int stdin_fd, stdout_fd, stderr_fd, report_fd;
  bool drop_privileges;
  uid_t uid;
  gid_t gid;
  struct Limit {
    int resource;
    rlimit value;
  } limits[6];
};

// Descriptor 3 is the report pipe once the descriptors are arranged, plan.report_fd before.
[[noreturn]] void child_fail(int report_fd, int stage) {
  int report[2] = {stage, errno};
  ssize_t ignored = ::write(report_fd, report, sizeof report);
  (void)ignored;
  ::_exit(127);
}

// Runs in the child on its own stack, sharing the parent's memory until execve: system calls
// only. Raw syscalls for the id changes: glibc's wrappers would try to signal the parent's
// other threads (the setxid broadcast), which this process does not have.
int child_main(void* arg) {
  const ChildPlan& plan = *static_cast<const ChildPlan*>(arg);
  // The parent blocked every signal around clone; handlers go back to default before unblocking,
  // so no parent handler ever runs on this shared memory.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &default_action, nullptr);
  }
  ::setpgid(0, 0);
  if (::dup2(plan.stdin_fd, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 || ::dup2(plan.stderr_fd, 2) < 0 ||
      (plan.report_fd != 3 && ::dup3(plan.report_fd, 3, O_CLOEXEC) < 0)) {
    child_fail(plan.report_fd, kStageFds);
  }
  if (::syscall(SYS_close_range, 4u, ~0u, 0u) != 0) {
    rlimit open_files{};
    ::getrlimit(RLIMIT_NOFILE, &open_files);
    rlim_t end = std::min<rlim_t>(open_files.rlim_cur, 1 << 20);
    for (rlim_t fd = 4; fd < end; ++fd) ::close(static_cast<int>(fd));
  }
  if (::chdir(plan.workdir) != 0) child_fail(3, kStageChdir);
  for (const auto& limit : plan.limits) {
    if (::setrlimit(static_cast<__rlimit_resource_t>(limit.resource), &limit.value) != 0) child_fail(3, kStageRlimit);
  }
  if (plan.drop_privileges) {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 ||
        ::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
      child_fail(3, kStageIdentity);
    }
  }
  // No setuid binary can give privileges back; die with the thread that started us (set after
  // the uid change, which clears it).
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(3, kStageIdentity);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(plan.path, plan.argv, plan.envp);
  child_fail(3, kStageExec);
}

// Namespace flags to try, best first. A kernel or container that refuses one (EPERM, EINVAL)
// refuses it for good, so the index only moves forward; other errors are retried next run.
constexpr int kNamespaceChoices[] = {CLONE_NEWPID | CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWNET, 0};
std::atomic<int> first_namespace_choice{0};

const char* namespace_names(int flags) {
  if (flags == (CLONE_NEWPID | CLONE_NEWNET)) return "PID and network namespaces";
  if (flags == CLONE_NEWPID) return "a PID namespace";
  if (flags == CLONE_NEWNET) return "a network namespace";
  return "no namespaces";
}

struct Started {
  pid_t pid;
  int namespaces;
};

Started start_child(ChildPlan& plan) {
  void* stack =
      ::mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) fail("mmap of the child stack", errno);
  char* stack_top = static_cast<char*>(stack) + kChildStackBytes;
  sigset_t all, previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = -1;
  int error = 0;
  int choice = first_namespace_choice.load();
  for (; choice < static_cast<int>(std::size(kNamespaceChoices)); ++choice) {
    int namespaces = kNamespaceChoices[choice];
    // CLONE_VFORK: this thread resumes once the child has called execve or exited.
    pid = ::clone(child_main, stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD | namespaces, &plan);
    if (pid >= 0 || namespaces == 0) break;
    error = errno;
    if (error == EPERM || error == EINVAL) {
      int expected = choice;
      first_namespace_choice.compare_exchange_strong(expected, choice + 1);
    }
    log_once(std::string("cannot create ") + namespace_names(namespaces) + " for sandboxed programs (clone: " +
             error_text(error) + "); trying " + namespace_names(kNamespaceChoices[choice + 1]));
  }
  error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ::munmap(stack, kChildStackBytes);
  if (pid < 0) fail("clone", error);
  int namespaces = kNamespaceChoices[choice];
  if ((namespaces & CLONE_NEWNET) == 0) {
    log_once("sandboxed programs run without a network namespace: they can reach the network");
  }
  if ((namespaces & CLONE_NEWPID) == 0) {
    log_once(std::string("sandboxed programs run without a PID namespace: a process that leaves the program's "
                         "process group (setsid) ") +
             (::geteuid() == 0 ? "is killed by its uid after the run" : "can outlive the run"));
  }
  return {pid, namespaces};
}

// Kills every process of a per-run uid (used where there is no PID namespace): a child that takes
// the uid sends SIGKILL to everything it may signal, which is exactly that uid's processes.
int kill_uid_main(void* arg) {
  uid_t uid = *static_cast<const uid_t*>(arg);
  if (::syscall(SYS_setresuid, uid, uid, uid) != 0) ::_exit(1);
  ::kill(-1, SIGKILL);
  ::_exit(0);
}

void kill_all_of_uid(uid_t uid) {
  void* stack =
      ::mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return;
  sigset_t all, previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid =
      ::clone(kill_uid_main, static_cast<char*>(stack) + kChildStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &uid);
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ::munmap(stack, kChildStackBytes);
  if (pid > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

// ---- the parent's side ------------------------------------------------------------------

struct CStrings {
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  explicit CStrings(std::vector<std::string> strings) : storage(std::move(strings)) {
    for (auto& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
};

rlimit both(rlim_t value) {
  return rlimit{value, value};
}

rlim_t megabytes(int64_t mb) {
  return static_cast<rlim_t>(std::max<int64_t>(mb, 1)) << 20;
}

// Appends what can be read now; returns false at end of file or on an error.
bool read_available(int fd, std::string& out, size_t max_bytes, bool& overflowed) {
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      size_t room = max_bytes > out.size() ? max_bytes - out.size() : 0;
      out.append(buffer, std::min(room, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) > room) overflowed = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

}  // namespace

void set_sandbox_namespaces(bool enabled) {
  first_namespace_choice.store(enabled ? 0 : static_cast<int>(std::size(kNamespaceChoices)) - 1);
}

std::optional<std::filesystem::path> resolve_sandbox_program(const std::string& program) {
  auto executable = [](const std::filesystem::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string::npos) {
    std::filesystem::path p = std::filesystem::absolute(program);
    return executable(p) ? std::optional(p) : std::nullopt;
  }
  std::stringstream dirs(kSandboxPath);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::filesystem::path p = std::filesystem::path(dir) / program;
    if (executable(p)) return p;
  }
  return std::nullopt;
}

SandboxResult run_sandboxed(const std::vector<std::string>& argv, const std::string& stdin_text,
                            const SandboxLimits& limits, const std::filesystem::path& workdir) {
  if (argv.empty()) throw SandboxError("sandbox: empty argv");
  std::optional<std::filesystem::path> program = resolve_sandbox_program(argv[0]);
  if (!program) throw SandboxError("sandbox: '" + argv[0] + "' is not an executable in " + kSandboxPath);
  std::filesystem::path absolute_workdir = std::filesystem::absolute(workdir);
  std::string path_string = program->string(), workdir_string = absolute_workdir.string();
  CStrings child_argv(argv);
  CStrings child_env(
      {std::string("PATH=") + kSandboxPath, "HOME=" + workdir_string, "TMPDIR=" + workdir_string, "LANG=C.UTF-8"});

  std::optional<Identity> identity = acquire_identity();
  if (identity) chown_tree(absolute_workdir, identity->uid, identity->gid);

  FdPair input = make_stdin_socket();
  FdPair output = make_pipe(true), errors = make_pipe(true), report = make_pipe(true);
  ChildPlan plan{};
  plan.path = path_string.c_str();
  plan.argv = child_argv.pointers.data();
  plan.envp = child_env.pointers.data();
  plan.workdir = workdir_string.c_str();
  plan.stdin_fd = input.child.get();
  plan.stdout_fd = output.child.get();
  plan.stderr_fd = errors.child.get();
  plan.report_fd = report.child.get();
  plan.drop_privileges = identity.has_value();
  plan.uid = identity ? identity->uid : 0;
  plan.gid = identity ? identity->gid : 0;
  rlim_t cpu = static_cast<rlim_t>(std::max(1.0, std::ceil(limits.cpu_seconds)));
  // Soft and hard CPU limits are equal: the kernel then sends SIGKILL, which also stops a PID
  // namespace's init (it ignores SIGXCPU).
  plan.limits[0] = {RLIMIT_CPU, both(cpu)};
  plan.limits[1] = {RLIMIT_AS, both(megabytes(limits.memory_mb))};
  plan.limits[2] = {RLIMIT_FSIZE, both(megabytes(limits.file_size_mb))};
  plan.limits[3] = {RLIMIT_NPROC, both(static_cast<rlim_t>(std::max<int64_t>(limits.max_processes, 1)))};
  plan.limits[4] = {RLIMIT_NOFILE, both(kMaxOpenFiles)};
  plan.limits[5] = {RLIMIT_CORE, both(0)};

  Clock::time_point start = Clock::now();
  Started child = start_child(plan);
  pid_t pid = child.pid;
  input.child.reset();
  output.child.reset();
  errors.child.reset();
  report.child.reset();

  SandboxResult result;
  result.uid = identity ? static_cast<int64_t>(identity->uid) : -1;
  result.own_network = (child.namespaces & CLONE_NEWNET) != 0;
  result.own_pid_namespace = (child.namespaces & CLONE_NEWPID) != 0;
  int wait_status = 0;
  rusage usage{};
  bool reaped = false;
  auto reap = [&] {
    while (::wait4(pid, &wait_status, 0, &usage) < 0 && errno == EINTR) {
    }
    reaped = true;
  };
  // If anything below throws, the program is still killed and reaped: no orphan, no zombie.
  struct ReapOnExit {
    pid_t pid;
    const bool& reaped;
    ~ReapOnExit() {
      if (reaped) return;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  } reap_on_exit{pid, reaped};

  // With CLONE_VFORK the child has already called execve or failed, so a report is there now.
  int child_report[2] = {0, 0};
  if (::read(report.parent.get(), child_report, sizeof child_report) == sizeof child_report) {
    reap();
    throw SandboxError(std::string("sandbox: ") + stage_name(child_report[0]) +
                       " failed: " + error_text(child_report[1]));
  }
  report.parent.reset();

  UniqueFd exit_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // readable once the child exits
  bool exited = false, killed = false;
  auto kill_program = [&] {
    if (killed) return;
    ::kill(-pid, SIGKILL);  // the process group (the fallback where there is no PID namespace)
    ::kill(pid, SIGKILL);   // pid 1 of the namespace: the kernel then kills everything in it
    killed = true;
  };
  std::string_view pending_input = stdin_text;
  if (pending_input.empty()) input.parent.reset();
  bool stdout_overflow = false, stderr_overflow = false;
  size_t max_output = static_cast<size_t>(std::max<int64_t>(limits.max_output_bytes, 0));
  Clock::time_point deadline = start + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(std::max(limits.wall_seconds, 0.0)));
  Clock::time_point drain_deadline = Clock::time_point::max();

  while (true) {
    Clock::time_point now = Clock::now();
    if (!exited && !killed && now >= deadline) {
      result.timed_out = true;
      kill_program();
      drain_deadline = now + kDrainTime;
    }
    if ((exited || killed) && ((!output.parent.valid() && !errors.parent.valid()) || now >= drain_deadline)) break;

    pollfd fds[4];
    int count = 0;
    auto watch = [&](bool wanted, int fd, short events) {
      if (!wanted) return -1;
      fds[count] = {fd, events, 0};
      return count++;
    };
    int out_index = watch(output.parent.valid(), output.parent.get(), POLLIN);
    int err_index = watch(errors.parent.valid(), errors.parent.get(), POLLIN);
    int in_index = watch(input.parent.valid(), input.parent.get(), POLLOUT);
    int exit_index = watch(!exited && exit_fd.valid(), exit_fd.get(), POLLIN);
    Clock::time_point wake = (exited || killed) ? drain_deadline : deadline;
    if (!exited && !exit_fd.valid()) wake = std::min(wake, now + kPollTick);
    auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
    int ready = ::poll(fds, count, static_cast<int>(std::clamp<int64_t>(wait_ms, 0, 1000)));
    if (ready < 0 && errno != EINTR) fail("poll", errno);

    if (out_index >= 0 && fds[out_index].revents != 0 &&
        !read_available(output.parent.get(), result.stdout_text, max_output, stdout_overflow)) {
      output.parent.reset();
    }
    if (err_index >= 0 && fds[err_index].revents != 0 &&
        !read_available(errors.parent.get(), result.stderr_text, max_output, stderr_overflow)) {
      errors.parent.reset();
    }
    if ((stdout_overflow || stderr_overflow) && !killed) {
      result.output_truncated = true;
      kill_program();
      drain_deadline = Clock::now() + kDrainTime;
    }
    if (in_index >= 0 && fds[in_index].revents != 0) {
      ssize_t n = ::send(input.parent.get(), pending_input.data(), std::min<size_t>(pending_input.size(), 65536),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) pending_input.remove_prefix(static_cast<size_t>(n));
      // Done, or the program closed its input (EPIPE, ECONNRESET): either way no more to write.
      if (pending_input.empty() || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        input.parent.reset();
      }
    }
    bool child_done = false;
    if (exit_index >= 0) {
      child_done = fds[exit_index].revents != 0;
    } else if (!exited) {
      // No pidfd: ask without reaping (WNOWAIT), so the pid and its group id stay reserved.
      siginfo_t info{};
      child_done =
          ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    }
    if (child_done) {
      exited = true;
      // Whatever it left running in its group goes now (in a PID namespace it is already gone);
      // the pipes then reach end of file.
      ::kill(-pid, SIGKILL);
      if (drain_deadline == Clock::time_point::max()) drain_deadline = Clock::now() + kDrainTime;
    }
  }
  ::kill(-pid, SIGKILL);
  if (!exited) kill_program();
  reap();
  if (identity && identity->own_uid && (child.namespaces & CLONE_NEWPID) == 0) kill_all_of_uid(identity->uid);
  result.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.signal = WTERMSIG(wait_status);
  }
  return result;
}

SandboxDirectory::SandboxDirectory(const std::filesystem::path& parent) {
  std::filesystem::path base = parent.empty() ? std::filesystem::temp_directory_path() : parent;
  std::string pattern = (base / "cohort-sandbox-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp " + pattern, errno);
  path_ = pattern;
}

SandboxDirectory::~SandboxDirectory() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) log_once("cannot remove " + path_.string() + ": " + ec.message());
}

std::filesystem::path SandboxDirectory::write_file(const std::string& name, const std::string& content) const {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw SandboxError("sandbox: '" + name + "' is not a plain file name");
  }
  std::filesystem::path file = path_ / name;
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd.valid()) fail("open " + file.string(), errno);
  if (::fchmod(fd.get(), 0644) != 0) fail("chmod " + file.string(), errno);
  std::string_view rest = content;
  while (!rest.empty()) {
    ssize_t n = ::write(fd.get(), rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write " + file.string(), errno);
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return file;
}

}  // namespace cohort::reward
