// The code_tests reward: fence extraction, test parsing and scoring. Every test runs in its own
// sandbox (reward/sandbox.h); this file only decides what to run and how a run counts.
#include "reward/code_tests.h"

#include <algorithm>
#include <random>
#include <stdexcept>

#include "reward/options.h"

namespace cohort::reward {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

bool language_matches(std::string_view info_word, std::string_view language) {
  std::string word = lower(info_word), wanted = lower(language);
  if (word == wanted) return true;
  return wanted == "python" && (word == "py" || word == "python3");
}

// A line's backtick fence: the number of backticks after at most three spaces, and the rest.
struct Fence {
  size_t backticks = 0;
  std::string_view rest;
};

std::optional<Fence> fence_of(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  size_t begin = i;
  while (i < line.size() && line[i] == '`') ++i;
  if (i - begin < 3) return std::nullopt;
  return Fence{i - begin, line.substr(i)};
}

std::string random_token() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token = "cohort-tests-passed-";
  for (int i = 0; i < 2; ++i) {
    uint64_t bits = generator();
    for (int j = 0; j < 16; ++j, bits >>= 4) token += kHex[bits & 15];
  }
  return token;
}

std::string last_line(std::string_view text) {
  std::string normalized = normalize_program_output(text);
  size_t newline = normalized.rfind('\n');
  return newline == std::string::npos ? normalized : normalized.substr(newline + 1);
}

}  // namespace

std::optional<std::string> extract_code_block(std::string_view text, std::string_view language) {
  std::optional<std::string_view> last_any, last_matching;
  bool inside = false, matching = false;
  size_t open_backticks = 0, content_begin = 0;
  for (size_t line_begin = 0; line_begin < text.size();) {
    size_t line_end = text.find('\n', line_begin);
    if (line_end == std::string_view::npos) line_end = text.size();
    std::string_view line = text.substr(line_begin, line_end - line_begin);
    std::optional<Fence> fence = fence_of(line);
    if (!inside && fence) {
      std::string_view info = fence->rest;
      while (!info.empty() && is_blank(info.front())) info.remove_prefix(1);
      size_t word_end = 0;
      while (word_end < info.size() && !is_blank(info[word_end]) && info[word_end] != '{') ++word_end;
      inside = true;
      matching = !language.empty() && language_matches(info.substr(0, word_end), language);
      open_backticks = fence->backticks;
      content_begin = std::min(line_end + 1, text.size());
    } else if (inside && fence && fence->backticks >= open_backticks &&
               std::all_of(fence->rest.begin(), fence->rest.end(), is_blank)) {
      std::string_view content = text.substr(content_begin, line_begin - content_begin);
      last_any = content;
      if (matching) last_matching = content;
      inside = false;
    }
    line_begin = line_end + 1;
  }
  std::optional<std::string_view> chosen = last_matching ? last_matching : last_any;
  if (!chosen) return std::nullopt;
  return std::string(*chosen);
}

std::string normalize_program_output(std::string_view text) {
  std::vector<std::string_view> lines;
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = std::min(text.find('\n', begin), text.size());
    std::string_view line = text.substr(begin, end - begin);
    while (!line.empty() && is_blank(line.back())) line.remove_suffix(1);
    lines.push_back(line);
    begin = end + 1;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out += lines[i];
  }
  return out;
}

CodeTestsReward::CodeTestsReward(const nlohmann::json& options) {
  OptionReader reader("code_tests", options,
                      {"interpreter", "tests_field", "mode", "language", "program_file", "assert_sentinel",
                       "cpu_seconds", "wall_seconds", "memory_mb", "file_size_mb", "max_processes", "max_output_bytes",
                       "max_tests", "max_code_bytes"});
  interpreter_ = reader.strings("interpreter", {"python3"});
  if (interpreter_.empty()) reader.fail("option 'interpreter' must name a program");
  std::optional<std::filesystem::path> program = resolve_sandbox_program(interpreter_[0]);
  if (!program) {
    reader.fail("option 'interpreter': '" + interpreter_[0] +
                "' is not an executable file (a name is searched in /usr/bin:/bin)");
  }
  interpreter_[0] = program->string();
  tests_field_ = reader.string("tests_field", "tests");
  std::string mode = reader.string("mode", "fraction");
  if (mode != "fraction" && mode != "all")
    reader.fail("option 'mode' must be \"fraction\" or \"all\", got '" + mode + "'");
  require_all_ = mode == "all";
  language_ = reader.string("language", "python");
  program_file_ = reader.string("program_file", "main.py");
  if (program_file_.empty() || program_file_.find('/') != std::string::npos || program_file_ == "." ||
      program_file_ == "..") {
    reader.fail("option 'program_file' must be a plain file name, got '" + program_file_ + "'");
  }
  assert_sentinel_ = reader.boolean("assert_sentinel", true);
  limits_.cpu_seconds = reader.number("cpu_seconds", limits_.cpu_seconds);
  limits_.wall_seconds = reader.number("wall_seconds", limits_.wall_seconds);
  if (limits_.cpu_seconds <= 0 || limits_.wall_seconds <= 0) {
    reader.fail("options 'cpu_seconds' and 'wall_seconds' must be positive");
  }
  limits_.memory_mb = reader.integer("memory_mb", limits_.memory_mb, 16, int64_t{1} << 20);
  limits_.file_size_mb = reader.integer("file_size_mb", limits_.file_size_mb, 1, int64_t{1} << 20);
  limits_.max_processes = reader.integer("max_processes", limits_.max_processes, 1, 1 << 16);
  limits_.max_output_bytes = reader.integer("max_output_bytes", limits_.max_output_bytes, 1, int64_t{1} << 30);
  max_tests_ = static_cast<size_t>(reader.integer("max_tests", 64, 1, 1 << 16));
  max_code_bytes_ = static_cast<size_t>(reader.integer("max_code_bytes", 65536, 1, int64_t{1} << 24));
}

std::optional<std::vector<CodeTest>> CodeTestsReward::parse_tests(const Metadata& metadata) const {
  // Messages name the field but never the sample, so RewardSet counts them as one kind of error.
  if (!metadata.is_object()) throw std::runtime_error("metadata is not a JSON object");
  auto it = metadata.find(tests_field_);
  if (it == metadata.end() || it->is_null()) return std::nullopt;
  const std::string malformed = "metadata field '" + tests_field_ +
                                "' must be an array of {\"input\": string, \"output\": string} objects or "
                                "assert strings, or {\"inputs\": [strings], \"outputs\": [strings]}";
  auto too_many = [&](size_t n) {
    if (n > max_tests_) {
      throw std::runtime_error("metadata field '" + tests_field_ +
                               "' has more than max_tests=" + std::to_string(max_tests_) + " tests");
    }
  };
  std::vector<CodeTest> tests;
  if (it->is_array()) {
    too_many(it->size());
    for (const auto& item : *it) {
      CodeTest test;
      if (item.is_string()) {
        test.assert_line = item.get<std::string>();
        if (test.assert_line.empty()) throw std::runtime_error(malformed);
      } else if (item.is_object()) {
        auto input = item.find("input"), output = item.find("output");
        if (output == item.end() || !output->is_string()) throw std::runtime_error(malformed);
        if (input != item.end() && !input->is_string()) throw std::runtime_error(malformed);
        test.expected_output = output->get<std::string>();
        if (input != item.end()) test.stdin_text = input->get<std::string>();
      } else {
        throw std::runtime_error(malformed);
      }
      tests.push_back(std::move(test));
    }
  } else if (it->is_object() && it->contains("inputs") && it->contains("outputs")) {
    const auto& inputs = (*it)["inputs"];
    const auto& outputs = (*it)["outputs"];
    if (!inputs.is_array() || !outputs.is_array() || inputs.size() != outputs.size()) {
      throw std::runtime_error(malformed);
    }
    too_many(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].is_string() || !outputs[i].is_string()) throw std::runtime_error(malformed);
      tests.push_back(CodeTest{inputs[i].get<std::string>(), outputs[i].get<std::string>(), ""});
    }
  } else {
    throw std::runtime_error(malformed);
  }
  if (tests.empty()) return std::nullopt;
  return tests;
}

bool CodeTestsReward::run_test(const std::string& code, const CodeTest& test) const {
  std::string program = code;
  std::string token;
  if (!test.assert_line.empty()) {
    if (!program.empty() && program.back() != '\n') program += '\n';
    program += test.assert_line + '\n';
    if (assert_sentinel_) {
      token = random_token();
      program += "print(\"" + token + "\")\n";
    }
  }
  SandboxDirectory directory;
  directory.write_file(program_file_, program);
  std::vector<std::string> argv = interpreter_;
  argv.push_back(program_file_);
  SandboxResult result = run_sandboxed(argv, test.stdin_text, limits_, directory.path());
  if (!result.ok()) return false;
  if (!token.empty() && last_line(result.stdout_text) != token) return false;
  if (test.expected_output) {
    return normalize_program_output(result.stdout_text) == normalize_program_output(*test.expected_output);
  }
  return true;
}

std::optional<double> CodeTestsReward::score(const RewardInput& in) const {
  std::optional<std::vector<CodeTest>> tests = parse_tests(in.metadata);
  if (!tests) return std::nullopt;
  std::optional<std::string> code = extract_code_block(in.completion, language_);
  if (!code || code->size() > max_code_bytes_) return 0.0;
  size_t passed = 0;
  for (const CodeTest& test : *tests) {
    if (run_test(*code, test)) {
      ++passed;
    } else if (require_all_) {
      return 0.0;
    }
  }
  return static_cast<double>(passed) / static_cast<double>(tests->size());
}

}  // namespace cohort::reward
