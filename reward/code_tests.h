// The code_tests reward: take the program from the completion's last fenced code block and run
// it against the dataset row's tests in the sandbox (reward/sandbox.h), each test in a fresh
// process and directory. The score is the fraction of tests passed, or all-or-nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reward/reward_function.h"
#include "reward/sandbox.h"

namespace cohort::reward {

// The content of the last closed ``` fence whose info string's first word is `language`
// (case-insensitive; "py" and "python3" count as "python"), else of the last closed fence of any
// language; nullopt when the text has no closed fence. An empty `language` takes the last fence.
// Fences open with a line starting with ``` (up to three spaces of indent) and close with a line
// holding only ```. A fence left open (a truncated completion) is not a block.
std::optional<std::string> extract_code_block(std::string_view text, std::string_view language);

// One test: `program` is what is written to the program file (the code, or the code followed by
// an assert line); with `expected_output` set, the program's stdout must equal it after
// normalization (trailing whitespace of each line and trailing blank lines removed).
struct CodeTest {
  std::string stdin_text;
  std::optional<std::string> expected_output;
  std::string assert_line;  // appended to the code when not empty
};

// The form outputs are compared in: trailing spaces, tabs and CRs of each line and trailing empty
// lines removed.
std::string normalize_program_output(std::string_view text);

// Options:
//   interpreter   (["python3"]) argv before the program file; the first word a path, or a name
//                 in /usr/bin:/bin; checked at construction
//   tests_field   ("tests")
//   mode          ("fraction": passed / total | "all": 1 only when every test passes, and the
//                 first failure stops the run)
//   language      ("python") the fence preferred; "" takes the last fence of any language
//   program_file  ("main.py") the file name the code is written to
//   assert_sentinel (true) an assert test also appends print("<random token>") after the assert
//                 line and requires that token as the last line of stdout, so code that ends the
//                 process early with status 0 (sys.exit(0), os._exit(0)) does not pass; turn it
//                 off for an interpreter other than Python
//   cpu_seconds (5), wall_seconds (10), memory_mb (512), file_size_mb (16), max_processes (32),
//   max_output_bytes (1 MiB): the sandbox limits of each test
//   max_tests (64): a row with more tests throws; max_code_bytes (65536): longer code scores 0
// Metadata `tests_field` is one of
//   - an array whose items are {"input": "...", "output": "..."} (stdin and expected stdout;
//     input optional) or strings (an assert line run after the code: pass = exit code 0);
//   - an object {"inputs": [...], "outputs": [...]} of equal-length string arrays (APPS layout).
// A stdin/stdout test passes when the program exits 0 within its limits and its output matches.
// No field, null or an empty array: no score, nothing run. A malformed field throws (no score,
// counted by the RewardSet). No closed code block, or code longer than max_code_bytes: 0.
// A sandbox that cannot start (SandboxError) throws: the machine's fault, not the completion's.
class CodeTestsReward final : public RewardFunction {
 public:
  explicit CodeTestsReward(const nlohmann::json& options);
  std::string_view kind() const override { return "code_tests"; }
  std::optional<double> score(const RewardInput& in) const override;

  // The tests of a row; nullopt when it has none. Throws std::runtime_error when malformed.
  std::optional<std::vector<CodeTest>> parse_tests(const Metadata& metadata) const;

 private:
  bool run_test(const std::string& code, const CodeTest& test) const;

  std::vector<std::string> interpreter_;
  std::string tests_field_;
  bool require_all_;
  std::string language_;
  std::string program_file_;
  bool assert_sentinel_;
  SandboxLimits limits_;
  size_t max_tests_;
  size_t max_code_bytes_;
};

}  // namespace cohort::reward
