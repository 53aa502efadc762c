// Runs one untrusted program (model-written code) in a child process with resource limits, no
// network and an unprivileged identity, and returns its exit status and output. Used by the
// code_tests reward; safe to call from many threads at once and never hangs past its deadline.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cohort::reward {

// The sandbox could not be set up (no interpreter, fork or pipe failure, a failed privilege
// drop): a fault of the machine, never of the program, so callers report it rather than score it.
class SandboxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SandboxLimits {
  double cpu_seconds = 5;              // RLIMIT_CPU of each process (rounded up to whole seconds)
  double wall_seconds = 10;            // then everything the program started is killed
  int64_t memory_mb = 512;             // RLIMIT_AS (address space) of each process
  int64_t file_size_mb = 16;           // RLIMIT_FSIZE: largest file it may write
  int64_t max_processes = 32;          // RLIMIT_NPROC of the sandbox's user (enforced only when run as root)
  int64_t max_output_bytes = 1 << 20;  // per stream; more kills the program and sets output_truncated
};

struct SandboxResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, 0 when it exited
  bool timed_out = false;
  bool output_truncated = false;
  std::string stdout_text;
  std::string stderr_text;
  double wall_seconds = 0;
  double cpu_seconds = 0;          // user + system time of the program and the children it waited for
  int64_t uid = -1;                // the uid it ran as; -1 when not run as root (no privilege drop)
  bool own_network = false;        // ran in a network namespace of its own (no network)
  bool own_pid_namespace = false;  // ran in a PID namespace of its own (as its pid 1)
  bool ok() const { return exit_code == 0 && !timed_out && !output_truncated; }
};

// Runs argv (argv[0] an absolute path, or a name searched in the sandbox's PATH) in `workdir`,
// writing stdin_text to its standard input. The child:
//   - gets a new PID namespace (killing its pid 1 kills everything it started, setsid or not) and
//     a new network namespace (only loopback, down) where the kernel allows it; where it does not,
//     the reason is logged to stderr once and a process-group kill is the fallback. The program is
//     the namespace's pid 1: a signal it sends itself is ignored unless it handles it (faults such
//     as SIGSEGV and the kernel's limit signals still end it);
//   - when the caller is root, runs as an unprivileged uid of its own (one per concurrent run, so
//     one run's fork bomb cannot use up another's process limit) with no groups and
//     no_new_privs; `workdir` and its contents are chowned to it;
//   - has RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_NOFILE (64) and RLIMIT_CORE (0);
//   - sees only PATH=/usr/bin:/bin, HOME=TMPDIR=workdir and LANG=C.UTF-8, and no inherited fd
//     other than 0, 1 and 2.
// Throws SandboxError when the program could not be started; whatever the program does is in the
// result. Callers must not reap children with waitpid(-1) while this runs.
SandboxResult run_sandboxed(const std::vector<std::string>& argv, const std::string& stdin_text,
                            const SandboxLimits& limits, const std::filesystem::path& workdir);

// The absolute path run_sandboxed would execute for `program`, or nullopt when it is not an
// executable file (a name without '/' is searched in the sandbox's PATH, /usr/bin:/bin, not the
// caller's: a shim under the caller's home would not be reachable from the sandbox's uid).
std::optional<std::filesystem::path> resolve_sandbox_program(const std::string& program);

// For tests of the fallback (process-group and uid kills): false makes this process start
// sandboxed programs without namespaces, as on a kernel that refuses them; true tries them again.
void set_sandbox_namespaces(bool enabled);

// A private directory for one sandboxed run: created with mkdtemp (mode 0700) under `parent`
// (default: the system temporary directory), removed with everything in it on destruction.
class SandboxDirectory {
 public:
  explicit SandboxDirectory(const std::filesystem::path& parent = {});
  ~SandboxDirectory();
  SandboxDirectory(const SandboxDirectory&) = delete;
  SandboxDirectory& operator=(const SandboxDirectory&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `name` (a plain file name) inside the directory with mode 0644; throws SandboxError.
  std::filesystem::path write_file(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

}  // namespace cohort::reward
