// Tests for the code_tests reward: fence extraction, output normalization, test parsing, scores
// for right, wrong and partly right programs (stdin/stdout and assert tests), and hostile
// completions, which must score 0 within their limits, also from four threads at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "reward/code_tests.h"

namespace cohort::reward {
namespace {

using Clock = std::chrono::steady_clock;

#define REQUIRE_PYTHON()                                                                        \
  do {                                                                                          \
    if (!resolve_sandbox_program("python3")) GTEST_SKIP() << "python3 is not in /usr/bin:/bin"; \
  } while (0)

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::optional<double> score(const RewardFunction& fn, std::string_view completion, const Metadata& metadata) {
  return fn.score(RewardInput{.prompt = "", .completion = completion, .metadata = metadata});
}

std::string fenced(const std::string& code, const std::string& language = "python") {
  return "Here is my solution.\n```" + language + "\n" + code + "```\nIt reads the input.";
}

const nlohmann::json kQuickOptions = {
    {"wall_seconds", 2}, {"cpu_seconds", 1}, {"memory_mb", 256}, {"file_size_mb", 4}, {"max_processes", 16}};

const Metadata kSumRow = {{"tests",
                           {{{"input", "1 2\n"}, {"output", "3\n"}},
                            {{"input", "10 -4\n"}, {"output", "6"}},
                            {{"input", "0 0"}, {"output", "0\n"}}}}};

TEST(ExtractCodeBlock, Fences) {
  EXPECT_EQ(extract_code_block("```python\nprint(1)\n```", "python"), "print(1)\n");
  EXPECT_EQ(extract_code_block("```\na\n```\ntext\n```py\nb\n```\n", "python"), "b\n");
  // The last python block wins over a later block of another language.
  EXPECT_EQ(extract_code_block("```python\nx = 1\n```\n```text\noutput\n```", "python"), "x = 1\n");
  // No python block: the last block of any language.
  EXPECT_EQ(extract_code_block("```c\nint a;\n```\n```text\nout\n```", "python"), "out\n");
  EXPECT_EQ(extract_code_block("```Python3 {cmd}\nz\n```", "python"), "z\n");
  EXPECT_EQ(extract_code_block("```python\nx\n```\n```sh\ny\n```", ""), "y\n");
  // A longer fence holds a shorter one; the closing fence may be indented and carry spaces.
  EXPECT_EQ(extract_code_block("````python\ns = '''\n```\n'''\n````", "python"), "s = '''\n```\n'''\n");
  EXPECT_EQ(extract_code_block("```python\n\n```", "python"), "\n");
  EXPECT_EQ(extract_code_block("```python\nprint(1)\n   ```  \nafter", "python"), "print(1)\n");
  EXPECT_EQ(extract_code_block("```python\r\nprint(1)\r\n```\r\n", "python"), "print(1)\r\n");
}

TEST(ExtractCodeBlock, NoClosedBlock) {
  EXPECT_FALSE(extract_code_block("", "python"));
  EXPECT_FALSE(extract_code_block("print(1)", "python"));
  EXPECT_FALSE(extract_code_block("```python\nprint(1)\n", "python"));  // truncated
  EXPECT_FALSE(extract_code_block("``python\nprint(1)\n``", "python"));
  EXPECT_FALSE(extract_code_block("    ```python\nprint(1)\n    ```", "python"));  // indented code, not a fence
  // A closed block followed by an unclosed one: the closed one.
  EXPECT_EQ(extract_code_block("```python\na\n```\n```python\nb\n", "python"), "a\n");
}

TEST(NormalizeProgramOutput, TrailingWhitespace) {
  EXPECT_EQ(normalize_program_output("1 2  \n3\t\r\n\n\n"), "1 2\n3");
  EXPECT_EQ(normalize_program_output("\n\nx"), "\n\nx");
  EXPECT_EQ(normalize_program_output(""), "");
  EXPECT_EQ(normalize_program_output("\n \n"), "");
  EXPECT_NE(normalize_program_output(" x"), normalize_program_output("x"));
}

TEST(CodeTestsReward, ParseTests) {
  REQUIRE_PYTHON();
  CodeTestsReward fn(nullptr);
  EXPECT_FALSE(fn.parse_tests(Metadata{{"answer", "1"}}));
  EXPECT_FALSE(fn.parse_tests(Metadata{{"tests", nullptr}}));
  EXPECT_FALSE(fn.parse_tests(Metadata{{"tests", nlohmann::json::array()}}));
  auto tests = fn.parse_tests(Metadata{{"tests", {{{"output", "x"}}, "assert f(1) == 2"}}});
  ASSERT_TRUE(tests);
  ASSERT_EQ(tests->size(), 2u);
  EXPECT_EQ((*tests)[0].expected_output, "x");
  EXPECT_EQ((*tests)[0].stdin_text, "");
  EXPECT_EQ((*tests)[1].assert_line, "assert f(1) == 2");
  auto apps = fn.parse_tests(Metadata::parse(R"({"tests": {"inputs": ["1\n", "2\n"], "outputs": ["2\n", "4\n"]}})"));
  ASSERT_TRUE(apps);
  EXPECT_EQ(apps->size(), 2u);
  for (const Metadata& bad :
       {Metadata{{"tests", "assert True"}}, Metadata{{"tests", {1, 2}}}, Metadata{{"tests", {{{"input", "1"}}}}},
        Metadata{{"tests", {{{"output", 3}}}}}, Metadata{{"tests", {""}}},
        Metadata::parse(R"({"tests": {"inputs": ["1"], "outputs": []}})"), Metadata::array()}) {
    EXPECT_THROW(fn.parse_tests(bad), std::runtime_error) << bad.dump();
  }
  Metadata many = {{"tests", nlohmann::json::array()}};
  for (int i = 0; i < 65; ++i) many["tests"].push_back("assert True");
  EXPECT_THROW(fn.parse_tests(many), std::runtime_error);
}

TEST(CodeTestsReward, Options) {
  REQUIRE_PYTHON();
  EXPECT_EQ(CodeTestsReward(nullptr).kind(), "code_tests");
  EXPECT_EQ(make_reward_function("code_tests", {{"mode", "all"}})->kind(), "code_tests");
  EXPECT_THROW(CodeTestsReward(nlohmann::json{{"interpreter", nlohmann::json::array({"cohort-no-such-interpreter"})}}),
               RewardConfigError);
  EXPECT_THROW(CodeTestsReward(nlohmann::json{{"interpreter", nlohmann::json::array()}}), RewardConfigError);
  EXPECT_THROW(CodeTestsReward(nlohmann::json{{"mode", "most"}}), RewardConfigError);
  EXPECT_THROW(CodeTestsReward(nlohmann::json{{"wall_seconds", 0}}), RewardConfigError);
  EXPECT_THROW(CodeTestsReward(nlohmann::json{{"program_file", "../x.py"}}), RewardConfigError);
  EXPECT_THROW(CodeTestsReward(nlohmann::json{{"timeout", 1}}), RewardConfigError);
}

TEST(CodeTestsReward, StdinStdoutScores) {
  REQUIRE_PYTHON();
  CodeTestsReward fraction(kQuickOptions);
  nlohmann::json all_options = kQuickOptions;
  all_options["mode"] = "all";
  CodeTestsReward all(all_options);
  std::string right = fenced("a, b = map(int, input().split())\nprint(a + b)\n");
  std::string wrong = fenced("a, b = map(int, input().split())\nprint(a * b)\n");
  // a * b is right for "0 0" only; a + b with abs() is wrong only for "10 -4".
  std::string partly = fenced("a, b = map(int, input().split())\nprint(abs(a) + abs(b))\n");
  EXPECT_EQ(score(fraction, right, kSumRow), 1.0);
  EXPECT_NEAR(*score(fraction, wrong, kSumRow), 1.0 / 3, 1e-12);
  EXPECT_NEAR(*score(fraction, partly, kSumRow), 2.0 / 3, 1e-12);
  EXPECT_EQ(score(all, right, kSumRow), 1.0);
  EXPECT_EQ(score(all, partly, kSumRow), 0.0);
  EXPECT_EQ(score(fraction, fenced("import sys\nsys.exit(0)\n"), kSumRow), 0.0);
  // Right output but a failing exit status does not pass.
  EXPECT_EQ(score(fraction, fenced("a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(1)\n"), kSumRow),
            0.0);
  Metadata apps = Metadata::parse(R"({"tests": {"inputs": ["4 5\n", "1 1\n"], "outputs": ["9\n", "2\n"]}})");
  EXPECT_EQ(score(fraction, right, apps), 1.0);
}

TEST(CodeTestsReward, AssertTests) {
  REQUIRE_PYTHON();
  CodeTestsReward fn(kQuickOptions);
  Metadata row = {{"tests", {"assert square(3) == 9", "assert square(-2) == 4", "assert square(0) == 0"}}};
  EXPECT_EQ(score(fn, fenced("def square(x):\n    return x * x\n"), row), 1.0);
  EXPECT_NEAR(*score(fn, fenced("def square(x):\n    return x * x if x != 3 else 0\n"), row), 2.0 / 3, 1e-12);
  EXPECT_EQ(score(fn, fenced("def square(x):\n    return x\n"), row), 1.0 / 3);
  // Backticks at the end of a code line do not close the fence: no block.
  EXPECT_EQ(score(fn, "```python\ndef square(x): return x ** 2```\n", row), 0.0);
  EXPECT_EQ(score(fn, "```python\ndef square(x): return x ** 2\n```", row), 1.0);
  // Ending the process early with status 0 never reaches the asserts.
  EXPECT_EQ(score(fn, fenced("import os\nos._exit(0)\n"), row), 0.0);
  EXPECT_EQ(score(fn, fenced("import sys\nsys.exit(0)\n"), row), 0.0);
  EXPECT_EQ(score(fn, fenced("def square(x):\n    return x * x\nprint('debug')\n"), row), 1.0);
}

TEST(CodeTestsReward, NoBlockNoTestsAndMalformedRows) {
  REQUIRE_PYTHON();
  CodeTestsReward fn(kQuickOptions);
  EXPECT_EQ(score(fn, "a, b = map(int, input().split())\nprint(a + b)", kSumRow), 0.0);
  EXPECT_EQ(score(fn, "```python\nprint(3)\n", kSumRow), 0.0);  // truncated completion
  EXPECT_EQ(score(fn, fenced("print(3)\n"), Metadata{{"answer", "3"}}), std::nullopt);
  EXPECT_THROW(score(fn, fenced("print(3)\n"), Metadata{{"tests", 3}}), std::runtime_error);
  EXPECT_THROW(score(fn, fenced("print(3)\n"), Metadata::array()), std::runtime_error);
  nlohmann::json options = kQuickOptions;
  options["max_code_bytes"] = 16;
  EXPECT_EQ(score(CodeTestsReward(options), fenced("print(1 + 2)  # this comment is too long\n"),
                  Metadata{{"tests", {{{"output", "3"}}}}}),
            0.0);
  options["tests_field"] = "checks";
  options.erase("max_code_bytes");
  EXPECT_EQ(score(CodeTestsReward(options), fenced("print(3)\n"), Metadata{{"checks", {{{"output", "3"}}}}}), 1.0);
}

struct Hostile {
  const char* name;
  std::string code;
};

// Each is scored against one trivial test; limits are 1 s CPU and 2 s wall, so every call must
// return well within 3 x 2 s.
TEST(CodeTestsReward, HostileProgramsScoreZeroPromptly) {
  REQUIRE_PYTHON();
  CodeTestsReward fn(kQuickOptions);
  Metadata row = {{"tests", {{{"output", "ok"}}}}};
  const Hostile hostile[] = {
      {"fork bomb", "import os\nwhile True: os.fork()\n"},
      {"persistent fork bomb",
       "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"},
      {"infinite loop", "while True:\n    pass\n"},
      {"sleep", "import time\ntime.sleep(60)\nprint('ok')\n"},
      {"10 GB allocation", "x = bytearray(10**10)\nprint('ok')\n"},
      {"huge file", "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 1000000)\n"},
      {"endless output", "while True:\n    print('ok' * 1000)\n"},
  };
  for (const Hostile& h : hostile) {
    Clock::time_point start = Clock::now();
    EXPECT_EQ(score(fn, fenced(h.code), row), 0.0) << h.name;
    double seconds = seconds_since(start);
    EXPECT_LT(seconds, 6.0) << h.name;
    std::cout << h.name << ": scored 0 in " << seconds << " s\n";
  }
}

TEST(CodeTestsReward, NetworkIsUnreachable) {
  REQUIRE_PYTHON();
  {
    SandboxDirectory probe_directory;
    probe_directory.write_file("main.py", "pass\n");
    if (!run_sandboxed({"python3", "main.py"}, "", SandboxLimits{}, probe_directory.path()).own_network) {
      GTEST_SKIP() << "no network namespace on this machine";
    }
  }
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  CodeTestsReward fn(kQuickOptions);
  Metadata row = {{"tests", {{{"output", "ok"}}}}};
  std::string code = "import socket\ns = socket.create_connection(('127.0.0.1', " +
                     std::to_string(ntohs(address.sin_port)) + "), timeout=1)\nprint('ok')\n";
  EXPECT_EQ(score(fn, fenced(code), row), 0.0);
  pollfd waiting{listener, POLLIN, 0};
  EXPECT_EQ(::poll(&waiting, 1, 300), 0) << "the sandboxed program reached the test's listener";
  int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_LT(accepted, 0);
  if (accepted >= 0) ::close(accepted);
  ::close(listener);
}

TEST(CodeTestsReward, FourThreadsAtOnce) {
  REQUIRE_PYTHON();
  CodeTestsReward fn(kQuickOptions);
  const std::string completions[] = {
      fenced("a, b = map(int, input().split())\nprint(a + b)\n"),
      fenced("a, b = map(int, input().split())\nprint(abs(a) + abs(b))\n"),
      fenced("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"),
      "no code at all",
  };
  const double expected[] = {1.0, 2.0 / 3, 0.0, 0.0};
  std::vector<std::vector<std::optional<double>>> scores(4);
  Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      // The fork bomb runs once (its three tests time out at 2 s each), the others three times beside it.
      int repeats = t == 2 ? 1 : 3;
      for (int i = 0; i < repeats; ++i) scores[t].push_back(score(fn, completions[t], kSumRow));
    });
  }
  for (auto& thread : threads) thread.join();
  for (size_t t = 0; t < 4; ++t) {
    for (const auto& s : scores[t]) {
      ASSERT_TRUE(s.has_value()) << t;
      EXPECT_NEAR(*s, expected[t], 1e-12) << "completion " << t;
    }
  }
  EXPECT_LT(seconds_since(start), 3 * 3 * 2.0);
}

}  // namespace
}  // namespace cohort::reward
