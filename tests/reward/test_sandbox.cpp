// Tests for the sandbox of the code_tests reward: output and exit status, and hostile programs
// (fork bomb, endless loop, huge allocation, network access, huge file, endless output, escaping
// the process group) that must be stopped within their limits, with the call returning promptly
// and no process of the sandbox's uid left behind. Wall-time bounds are generous (2-3x the limit):
// they check that nothing hangs, not speed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "reward/sandbox.h"

namespace cohort::reward {
namespace {

#define REQUIRE_PYTHON()                                                                        \
  do {                                                                                          \
    if (!resolve_sandbox_program("python3")) GTEST_SKIP() << "python3 is not in /usr/bin:/bin"; \
  } while (0)

SandboxLimits quick_limits() {
  SandboxLimits limits;
  limits.cpu_seconds = 2;
  limits.wall_seconds = 2;
  limits.memory_mb = 256;
  limits.file_size_mb = 4;
  limits.max_processes = 16;
  limits.max_output_bytes = 1 << 16;
  return limits;
}

SandboxResult run_python(const std::string& code, const SandboxLimits& limits = quick_limits(),
                         const std::string& stdin_text = "") {
  SandboxDirectory directory;
  directory.write_file("main.py", code);
  return run_sandboxed({"python3", "main.py"}, stdin_text, limits, directory.path());
}

// Live processes whose real uid is `uid`, from /proc. Zombies are left out: killed processes that
// were reparented wait there until this machine's init reaps them, which is not the sandbox's doing.
int processes_of_uid(int64_t uid) {
  int count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    bool zombie = false;
    while (std::getline(status, line)) {
      if (line.rfind("State:", 0) == 0) zombie = line.find('Z') != std::string::npos;
      if (line.rfind("Uid:", 0) != 0) continue;
      if (std::stoll(line.substr(4)) == uid && !zombie) ++count;
      break;
    }
  }
  return count;
}

void expect_nothing_left(const SandboxResult& result) {
  if (result.uid < 0) return;  // not root: no uid of its own to count
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(processes_of_uid(result.uid), 0) << "processes of uid " << result.uid << " left running";
}

TEST(Sandbox, OutputStdinAndExitCode) {
  REQUIRE_PYTHON();
  SandboxResult r = run_python(
      "import sys\ndata = sys.stdin.read()\nprint(data.upper(), end='')\n"
      "print('to stderr', file=sys.stderr)\nsys.exit(3)\n",
      quick_limits(), "hello\nworld\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.output_truncated);
  EXPECT_EQ(r.stdout_text, "HELLO\nWORLD\n");
  EXPECT_EQ(r.stderr_text, "to stderr\n");
  EXPECT_FALSE(r.ok());
}

TEST(Sandbox, FaultIsReportedAsSignal) {
  REQUIRE_PYTHON();
  SandboxResult r = run_python("import ctypes\nctypes.string_at(0)\n");
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGSEGV);
}

TEST(Sandbox, LargeStdinIsDelivered) {
  REQUIRE_PYTHON();
  std::string input(2'000'000, 'x');
  SandboxResult r = run_python("import sys\nprint(len(sys.stdin.read()))\n", quick_limits(), input);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "2000000\n");
}

TEST(Sandbox, UnreadStdinNeitherHangsNorKillsTheCaller) {
  REQUIRE_PYTHON();
  std::string input(10'000'000, 'x');  // far more than a socket buffer
  SandboxResult r = run_python("print('done')\n", quick_limits(), input);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "done\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(Sandbox, OnlyStandardDescriptorsAndMinimalEnvironment) {
  REQUIRE_PYTHON();
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately not close-on-exec
  ASSERT_GE(leaked, 0);
  SandboxResult r = run_python(
      "import os\n"
      "fds = [int(f) for f in os.listdir('/proc/self/fd')]\n"
      "print(sorted(f for f in fds if f > 2 and os.path.exists('/proc/self/fd/%d' % f)))\n"
      "print(sorted(os.environ))\n"
      "print(os.environ['PATH'], os.getcwd() == os.environ['HOME'])\n");
  ::close(leaked);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  // listdir's own descriptor is gone by the time exists() checks it.
  EXPECT_EQ(r.stdout_text, "[]\n['HOME', 'LANG', 'PATH', 'TMPDIR']\n/usr/bin:/bin True\n");
}

TEST(Sandbox, RunsUnprivilegedWhenRoot) {
  REQUIRE_PYTHON();
  if (::geteuid() != 0) GTEST_SKIP() << "privileges are dropped only when running as root";
  SandboxResult r = run_python(
      "import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n"
      "try:\n    open('/etc/cohort-sandbox-test', 'w')\n    print('wrote /etc')\n"
      "except OSError as e:\n    print('denied')\n"
      "open('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())\n");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  ASSERT_GT(r.uid, 0);
  EXPECT_EQ(r.stdout_text, std::to_string(r.uid) + " " + std::to_string(r.uid) + " []\ndenied\nok\n");
  EXPECT_FALSE(std::filesystem::exists("/etc/cohort-sandbox-test"));
}

TEST(Sandbox, WallClockDeadline) {
  REQUIRE_PYTHON();
  SandboxLimits limits = quick_limits();
  limits.wall_seconds = 1;
  SandboxResult r = run_python("import time\nprint('started', flush=True)\ntime.sleep(100)\n", limits);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.stdout_text, "started\n");  // output before the kill is kept
  EXPECT_LT(r.wall_seconds, 3 * limits.wall_seconds);
  expect_nothing_left(r);
}

TEST(Sandbox, InfiniteLoopHitsCpuLimit) {
  REQUIRE_PYTHON();
  SandboxLimits limits = quick_limits();
  limits.cpu_seconds = 1;
  limits.wall_seconds = 10;
  SandboxResult r = run_python("while True:\n    pass\n", limits);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);  // soft = hard RLIMIT_CPU: the kernel sends SIGKILL
  EXPECT_GE(r.cpu_seconds, 0.9);
  EXPECT_LT(r.wall_seconds, 3 * limits.cpu_seconds + 1);  // two shared cores: allow for waiting to run
}

TEST(Sandbox, ForkBombIsCappedAndCleanedUp) {
  REQUIRE_PYTHON();
  SandboxLimits limits = quick_limits();
  limits.wall_seconds = 2;
  // The plain bomb ends when its first process fails to fork; this one keeps every process forking.
  SandboxResult r =
      run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", limits);
  EXPECT_TRUE(r.timed_out || r.signal == SIGKILL);
  EXPECT_LT(r.wall_seconds, 3 * limits.wall_seconds);
  expect_nothing_left(r);
  SandboxResult plain = run_python("import os\nwhile True: os.fork()\n", limits);
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_LT(plain.wall_seconds, 3 * limits.wall_seconds);
  expect_nothing_left(plain);
}

TEST(Sandbox, HugeAllocationFails) {
  REQUIRE_PYTHON();
  SandboxResult r = run_python("x = bytearray(10**10)\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("MemoryError"), std::string::npos) << r.stderr_text;
  EXPECT_LT(r.wall_seconds, 3 * quick_limits().wall_seconds);
}

TEST(Sandbox, FileSizeIsLimited) {
  REQUIRE_PYTHON();
  SandboxLimits limits = quick_limits();
  SandboxDirectory directory;
  directory.write_file("main.py", "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 1000000)\n");
  SandboxResult r = run_sandboxed({"python3", "main.py"}, "", limits, directory.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stderr_text.find("File too large"), std::string::npos) << r.stderr_text;
  EXPECT_LE(std::filesystem::file_size(directory.path() / "big"), static_cast<uintmax_t>(limits.file_size_mb) << 20);
  EXPECT_LT(r.wall_seconds, 3 * limits.wall_seconds);
}

TEST(Sandbox, EndlessOutputIsTruncatedAndKilled) {
  REQUIRE_PYTHON();
  SandboxLimits limits = quick_limits();
  SandboxResult r = run_python("while True:\n    print('y' * 1000)\n", limits);
  EXPECT_TRUE(r.output_truncated);
  EXPECT_EQ(r.stdout_text.size(), static_cast<size_t>(limits.max_output_bytes));
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_FALSE(r.ok());
  EXPECT_LT(r.wall_seconds, limits.wall_seconds);
}

// A listener on 127.0.0.1 in the test's own network namespace: the program must not reach it.
TEST(Sandbox, NoNetwork) {
  REQUIRE_PYTHON();
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  int port = ntohs(address.sin_port);
  SandboxResult r = run_python("import socket\ns = socket.create_connection(('127.0.0.1', " + std::to_string(port) +
                               "), timeout=1)\ns.sendall(b'hello')\nprint('connected')\n");
  pollfd waiting{listener, POLLIN, 0};
  int ready = ::poll(&waiting, 1, 300);
  int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (accepted >= 0) ::close(accepted);
  ::close(listener);
  if (!r.own_network) GTEST_SKIP() << "no network namespace on this machine (see the log line above)";
  EXPECT_EQ(ready, 0);
  EXPECT_LT(accepted, 0);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "");
}

TEST(Sandbox, ProcessesThatLeaveTheGroupAreKilled) {
  REQUIRE_PYTHON();
  const std::string code =
      "import subprocess\nsubprocess.Popen(['sleep', '100'], start_new_session=True)\n"
      "subprocess.Popen(['sleep', '101'])\nprint('spawned')\n";
  SandboxResult r = run_python(code);
  EXPECT_EQ(r.stdout_text, "spawned\n") << r.stderr_text;
  EXPECT_LT(r.wall_seconds, 3 * quick_limits().wall_seconds);
  expect_nothing_left(r);
  if (::geteuid() != 0) return;  // without root, a setsid process outlives a run with no PID namespace
  set_sandbox_namespaces(false);
  SandboxResult fallback = run_python(code);
  set_sandbox_namespaces(true);
  EXPECT_FALSE(fallback.own_pid_namespace);
  EXPECT_EQ(fallback.stdout_text, "spawned\n") << fallback.stderr_text;
  expect_nothing_left(fallback);  // killed by uid
}

// Per-run uids: a fork bomb in one run must not use up the process limit of runs beside it.
TEST(Sandbox, ConcurrentRunsWithAForkBombBeside) {
  REQUIRE_PYTHON();
  SandboxLimits limits = quick_limits();
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> outputs(3);
  SandboxResult bomb;
  threads.emplace_back([&] {
    bomb =
        run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", limits);
  });
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        std::string input = std::to_string(t * 100 + i);
        // The program forks a child itself, so it needs processes under its uid.
        SandboxResult r = run_python(
            "import os, sys\nn = int(sys.stdin.read())\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n"
            "os.waitpid(pid, 0)\nprint(n * 2)\n",
            limits, input);
        outputs[static_cast<size_t>(t)].push_back(r.ok() ? r.stdout_text : "failed: " + r.stderr_text);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(outputs[static_cast<size_t>(t)][static_cast<size_t>(i)], std::to_string(2 * (t * 100 + i)) + "\n");
    }
  }
  expect_nothing_left(bomb);
}

TEST(Sandbox, MissingProgramThrows) {
  SandboxDirectory directory;
  EXPECT_THROW(run_sandboxed({"cohort-no-such-program"}, "", quick_limits(), directory.path()), SandboxError);
  EXPECT_THROW(run_sandboxed({}, "", quick_limits(), directory.path()), SandboxError);
  EXPECT_FALSE(resolve_sandbox_program("cohort-no-such-program").has_value());
}

TEST(Sandbox, DirectoryIsPrivateAndRemoved) {
  std::filesystem::path path;
  {
    SandboxDirectory directory;
    path = directory.path();
    EXPECT_EQ(std::filesystem::status(path).permissions(), std::filesystem::perms::owner_all);
    directory.write_file("a.txt", "x");
    std::filesystem::create_directories(path / "sub" / "deeper");
    EXPECT_THROW(directory.write_file("../escape", "x"), SandboxError);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

// The cost of one run of a trivial program, printed for the record; bounded only against hangs.
TEST(Sandbox, TrivialRunOverhead) {
  REQUIRE_PYTHON();
  constexpr int kRuns = 10;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) {
    SandboxResult r = run_python("print('ok')\n");
    ASSERT_EQ(r.stdout_text, "ok\n");
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / kRuns;
  std::cout << "one sandboxed python3 run: " << ms << " ms\n";
  EXPECT_LT(ms, 1000);
}

}  // namespace
}  // namespace cohort::reward
