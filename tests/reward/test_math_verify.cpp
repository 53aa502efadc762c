// Tests for the math_verify reward: the committed table of (completion, reference, verdict) cases
// (tests/reward/math_verify_cases.jsonl), the parser's values, GSM8K and MATH reference
// extraction, the reward's options and "no score", and inputs of megabytes that must stay fast.
// With COHORT_MATH_VERIFY_VERDICTS=FILE the table test also writes cohort's verdicts there, one
// JSON line per case, for tests/hf/check_math_verify.py to compare with the math-verify package.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "reward/math_verify.h"

namespace cohort::reward {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string cases_path() {
  if (const char* path = std::getenv("COHORT_MATH_VERIFY_CASES")) return path;
  return (std::filesystem::path(__FILE__).parent_path() / "math_verify_cases.jsonl").string();
}

const char* verdict_name(MathVerdict v) {
  return v == MathVerdict::kCorrect ? "true" : v == MathVerdict::kWrong ? "false" : "null";
}

std::string describe(std::string_view answer) {
  std::optional<MathAnswer> parsed = parse_math_answer(answer);
  return parsed ? describe_math_answer(*parsed) : "(does not parse)";
}

TEST(MathVerify, CaseTable) {
  std::ifstream in(cases_path());
  ASSERT_TRUE(in) << "cannot read " << cases_path();
  std::ofstream verdicts;
  if (const char* out = std::getenv("COHORT_MATH_VERIFY_VERDICTS")) {
    verdicts.open(out);
    ASSERT_TRUE(verdicts) << "cannot write " << out;
  }
  const MathVerifyReward reward(nullptr);
  std::string line;
  int count = 0, with_no_score = 0, correct = 0, wrong = 0;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json c = nlohmann::json::parse(line);
    ++count;
    std::string completion = c.at("completion"), reference = c.at("reference"), note = c.at("note");
    MathVerdict expected = c.at("expected").is_null()     ? MathVerdict::kNoScore
                           : c.at("expected").get<bool>() ? MathVerdict::kCorrect
                                                          : MathVerdict::kWrong;
    with_no_score += expected == MathVerdict::kNoScore;
    correct += expected == MathVerdict::kCorrect;
    wrong += expected == MathVerdict::kWrong;
    MathVerdict got = reward.verdict(completion, reference);
    EXPECT_EQ(verdict_name(got), std::string(verdict_name(expected)))
        << "line " << number << " (" << note << "): completion answer "
        << describe(extract_math_answer(completion, {"boxed", "answer_tag", "hash", "last_number"}).value_or(""))
        << ", reference " << describe(reference);
    if (verdicts.is_open()) {
      nlohmann::json cohort =
          got == MathVerdict::kNoScore ? nlohmann::json(nullptr) : nlohmann::json(got == MathVerdict::kCorrect);
      verdicts << nlohmann::json{{"line", number}, {"expected", c.at("expected")}, {"cohort", cohort}}.dump() << "\n";
    }
  }
  EXPECT_GE(count, 300);
  EXPECT_GE(correct, 100);
  EXPECT_GE(wrong, 100);
  EXPECT_GE(with_no_score, 10);
}

MathAnswer parsed(std::string_view answer) {
  std::optional<MathAnswer> a = parse_math_answer(answer);
  EXPECT_TRUE(a) << answer;
  return a.value_or(MathAnswer{});
}

TEST(MathAnswer, ExactValuesInLowestTerms) {
  const std::pair<std::string, std::string> cases[] = {
      {"\\frac{6}{8}", "3/4"},
      {"0.750", "3/4"},
      {"-\\dfrac{10}{4}", "-5/2"},
      {"1,234,567", "1234567"},
      {"2\\frac{1}{3}", "7/3"},
      {"1.5e3", "1500"},
      {"2^{-3}", "1/8"},
      {"\\sqrt{\\frac{16}{9}}", "4/3"},
      {"\\sqrt[3]{-27}", "-3"},
      {"8^{2/3}", "4"},
      {"(1+2)(3+4)", "21"},
      {"2 \\cdot 3 + 4", "10"},
      {"12\\div 4 \\times 2", "6"},
      {"x = -\\frac{1}{2}", "-1/2"},
      {"\\$1{,}000.50", "2001/2"},
      {"50\\%", "50%"},
  };
  for (const auto& [answer, value] : cases) EXPECT_EQ(describe(answer), value) << answer;
}

TEST(MathAnswer, ApproximateValuesAndStructures) {
  EXPECT_EQ(describe("\\sqrt{2}"), "~1.414213562");
  EXPECT_EQ(describe("2\\pi"), "~6.283185307");
  EXPECT_EQ(describe("(-\\infty, 3]"), "(-inf, 3]");
  EXPECT_EQ(describe("[1, 2) \\cup (3, 4]"), "[1, 2) U (3, 4]");
  EXPECT_EQ(describe("\\{3, 1\\}"), "{3, 1}");
  EXPECT_EQ(describe("1, 2"), "{1, 2}");
  EXPECT_EQ(describe("\\text{(B)}"), "'b'");
  EXPECT_EQ(describe("New  York"), "'new york'");
  // Brackets inside the answer turn a comma into a separator, not a thousands group.
  EXPECT_EQ(describe("(1,000)"), "(1, 0)");
  EXPECT_EQ(describe("1,000"), "1000");
}

TEST(MathAnswer, RefusesWhatItCannotRead) {
  for (std::string answer :
       {"", "x+1", "2x", "\\sin x", "1/0", "0^0", "\\sqrt{-2}", "(1, 2", "\\frac{1}{2", "[5)", "5 \\text{ or } 6",
        "1 2", "3+", "\\infty + 1", "[\\infty, 2)", "50\\% + 1", "\\unknown{3}", "2^{5000}", "\\sqrt[1]{4}"}) {
    EXPECT_FALSE(parse_math_answer(answer)) << answer << " parsed as " << describe(answer);
  }
}

TEST(MathAnswer, EqualityIsSymmetricAndUsesTheTolerance) {
  MathAnswer sqrt2 = parsed("\\sqrt{2}"), close = parsed("1.4142135623"), far = parsed("1.41421");
  EXPECT_TRUE(math_answers_equal(sqrt2, close, 1e-9));
  EXPECT_TRUE(math_answers_equal(close, sqrt2, 1e-9));
  EXPECT_FALSE(math_answers_equal(sqrt2, far, 1e-9));
  EXPECT_TRUE(math_answers_equal(sqrt2, far, 1e-5));
  // Exact values are never compared with the tolerance.
  EXPECT_FALSE(math_answers_equal(parsed("1/3"), parsed("0.3333333333333"), 0.1));
  EXPECT_TRUE(math_answers_equal(parsed("\\sqrt{2}\\cdot\\sqrt{2} - 2"), parsed("0"), 1e-9));
}

TEST(MathReference, Gsm8k) {
  EXPECT_EQ(gsm8k_reference("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72"), "72");
  EXPECT_EQ(gsm8k_reference("a\n#### 1,080  \n"), "1,080");
  EXPECT_EQ(gsm8k_reference("#### 3\nthen #### 4"), "4");
  EXPECT_EQ(gsm8k_reference("no answer"), std::nullopt);
  EXPECT_EQ(gsm8k_reference("#### \n"), std::nullopt);
}

TEST(MathReference, MathSolutions) {
  EXPECT_EQ(math_reference("So $x = \\boxed{\\frac{1}{2}}$."), "\\frac{1}{2}");
  EXPECT_EQ(math_reference("\\boxed{\\left\\{ \\frac{a}{b} \\right\\}}"), "\\left\\{ \\frac{a}{b} \\right\\}");
  EXPECT_EQ(math_reference("\\boxed{1} then \\boxed{2}"), "2");
  EXPECT_EQ(math_reference("\\boxed{1} then \\fbox{2}"), "2");
  EXPECT_EQ(math_reference("\\fbox{1} then \\boxed{2}"), "2");
  EXPECT_EQ(math_reference("\\boxed{1} then \\boxed{2"), "1");
  EXPECT_EQ(math_reference("so the answer is $\\boxed 5$."), "5");
  EXPECT_EQ(math_reference("\\boxed {7}"), "7");
  EXPECT_EQ(math_reference("\\boxed{ } nothing"), std::nullopt);
  EXPECT_EQ(math_reference("no box"), std::nullopt);
}

const MathVerifyReward& reward_default() {
  static const MathVerifyReward reward(nullptr);
  return reward;
}

TEST(MathVerify, ExtractionOrderIsConfigurable) {
  const MathVerifyReward tags_only(nlohmann::json{{"extract", {"answer_tag"}}});
  EXPECT_EQ(tags_only.verdict("<answer>4</answer>", "4"), MathVerdict::kCorrect);
  EXPECT_EQ(tags_only.verdict("\\boxed{4}", "4"), MathVerdict::kWrong);
  const MathVerifyReward whole(nlohmann::json{{"extract", {"whole"}}});
  EXPECT_EQ(whole.verdict(" 3/4 ", "0.75"), MathVerdict::kCorrect);
  EXPECT_EQ(whole.verdict("3/4, maybe 1", "0.75"), MathVerdict::kWrong);
  EXPECT_THROW(extract_math_answer("x", {"nope"}), std::invalid_argument);

  const MathVerifyReward latex(nlohmann::json{{"extract", {"boxed", "last_latex", "last_number"}}});
  EXPECT_EQ(latex.verdict("The answer is $\\frac{3}{4}$.", "0.75"), MathVerdict::kCorrect);
  EXPECT_EQ(reward_default().verdict("The answer is $\\frac{3}{4}$.", "0.75"), MathVerdict::kWrong);  // last number: 4
  EXPECT_EQ(latex.verdict("so $$\\dfrac12$$", "1/2"), MathVerdict::kCorrect);
  EXPECT_EQ(latex.verdict("first $1$, then \\(2\\pi\\) here", "2\\pi"), MathVerdict::kCorrect);
  EXPECT_EQ(latex.verdict("$1$ then \\[ 3 \\] then $4$", "4"), MathVerdict::kCorrect);
  EXPECT_EQ(latex.verdict("it costs \\$5, not \\$6", "6"), MathVerdict::kCorrect);  // escaped: the last number
  EXPECT_EQ(extract_math_answer("a $x$ b $$y$$", {"last_latex"}), "y");
  EXPECT_EQ(extract_math_answer("unpaired $5", {"last_latex"}), std::nullopt);
}

std::optional<double> score(const RewardFunction& fn, std::string_view completion, const Metadata& metadata) {
  return fn.score(RewardInput{.prompt = "", .completion = completion, .metadata = metadata});
}

TEST(MathVerify, ScoresAndReferenceFormats) {
  const MathVerifyReward reward(nlohmann::json{{"correct", 2.0}, {"wrong", -1.0}});
  EXPECT_EQ(score(reward, "\\boxed{\\frac12}", {{"answer", "0.5"}}), 2.0);
  EXPECT_EQ(score(reward, "\\boxed{3}", {{"answer", "0.5"}}), -1.0);
  EXPECT_EQ(score(reward, "no answer", {{"answer", "0.5"}}), -1.0);
  EXPECT_EQ(score(reward, "\\boxed{x+}", {{"answer", "0.5"}}), -1.0);
  EXPECT_EQ(score(reward, "\\boxed{0.5}", {{"answer", 0.5}}), 2.0);
  EXPECT_EQ(score(reward, "\\boxed{42}", {{"answer", 42}}), 2.0);
  EXPECT_EQ(score(reward, "\\boxed{2}", {{"answer", {"1", "2"}}}), 2.0);

  const MathVerifyReward gsm8k(nlohmann::json{{"reference_format", "gsm8k"}});
  EXPECT_EQ(score(gsm8k, "#### 1080", {{"answer", "so 1,000 + 80\n#### 1,080"}}), 1.0);
  const MathVerifyReward math(nlohmann::json{{"answer_field", "solution"}, {"reference_format", "math"}});
  EXPECT_EQ(score(math, "\\boxed{\\dfrac{1}{2}}", {{"solution", "Hence $\\boxed{\\frac{1}{2}}$."}}), 1.0);
  EXPECT_THROW(score(math, "\\boxed{1}", {{"solution", "no box here"}}), std::runtime_error);
}

TEST(MathVerify, UnparseableReferenceIsCountedNoScore) {
  RewardSet set(nlohmann::json::parse(R"([{"name": "math", "kind": "math_verify"}])"));
  Metadata bad = {{"answer", "x^2 + 1"}};
  for (int i = 0; i < 3; ++i) {
    RewardSet::Result r = set.score(RewardInput{.prompt = "", .completion = "\\boxed{5}", .metadata = bad});
    EXPECT_FALSE(r.per_function[0]);
    EXPECT_FALSE(r.total);
  }
  Metadata missing = {{"solution", "5"}};
  set.score(RewardInput{.prompt = "", .completion = "\\boxed{5}", .metadata = missing});
  std::map<std::string, int64_t> errors = set.error_counts();
  EXPECT_EQ(errors["math: reference in metadata field 'answer' is not a math answer"], 3);
  EXPECT_EQ(errors["math: metadata has no field 'answer'"], 1);
  Metadata good = {{"answer", "5"}};
  EXPECT_EQ(set.score(RewardInput{.prompt = "", .completion = "\\boxed{5}", .metadata = good}).total, 1.0);
}

std::string config_error(const nlohmann::json& options) {
  try {
    MathVerifyReward reward(options);
  } catch (const RewardConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(MathVerify, ConfigErrors) {
  EXPECT_NE(config_error({{"tolerance", 1}}).find("unknown option 'tolerance'"), std::string::npos);
  EXPECT_NE(config_error({{"reference_format", "csv"}}).find("reference_format"), std::string::npos);
  EXPECT_NE(config_error({{"extract", {"boxed", "bogus"}}}).find("unknown method 'bogus'"), std::string::npos);
  EXPECT_NE(config_error({{"extract", nlohmann::json::array()}}).find("at least one"), std::string::npos);
  EXPECT_NE(config_error({{"relative_tolerance", 2}}).find("relative_tolerance"), std::string::npos);
  EXPECT_NE(config_error({{"correct", "1"}}).find("must be a number"), std::string::npos);
  EXPECT_EQ(make_reward_function("math_verify", nullptr)->kind(), "math_verify");
}

TEST(MathVerify, MegabyteInputsStayFast) {
  const MathVerifyReward reward(nullptr);
  const size_t size = 10 << 20;
  std::string alternating;
  while (alternating.size() < size) alternating += "\\fbox{\\boxed{";
  std::string boxes;
  while (boxes.size() < size) boxes += "\\boxed{";
  // Each is wrong but one: nothing to extract, or an answer over the bounds (never a fall-through).
  const std::pair<std::string, MathVerdict> inputs[] = {
      {std::string(size, '{'), MathVerdict::kWrong},
      {std::string(size, '9'), MathVerdict::kWrong},
      {std::string(size, '('), MathVerdict::kWrong},
      {alternating, MathVerdict::kWrong},
      {boxes, MathVerdict::kWrong},
      {"\\boxed{" + std::string(size, '1') + "}", MathVerdict::kWrong},
      {"\\boxed{" + std::string(size, '{') + "}", MathVerdict::kWrong},
      {"<answer>" + std::string(size, '-') + "1</answer>", MathVerdict::kWrong},
      {std::string(size, '\0') + "\\boxed{1}", MathVerdict::kCorrect},
  };
  for (const auto& [input, expected] : inputs) {
    Clock::time_point start = Clock::now();
    EXPECT_EQ(reward.verdict(input, "1"), expected) << "input starting with '" << input.substr(0, 16) << "'";
    EXPECT_LT(seconds_since(start), 2.0) << "input starting with '" << input.substr(0, 16) << "'";
  }
  // The parser refuses long answers before reading them.
  Clock::time_point start = Clock::now();
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(parse_math_answer(std::string(kMaxMathAnswerChars + 1, '1')));
  EXPECT_LT(seconds_since(start), 2.0);
  // The longest accepted answers, made of the costliest pieces, are still quick.
  std::string roots;
  while (roots.size() + 16 < kMaxMathAnswerChars) roots += "\\sqrt[64]{7}+";
  roots += "1";
  start = Clock::now();
  for (int i = 0; i < 100; ++i) (void)parse_math_answer(roots);
  EXPECT_LT(seconds_since(start), 2.0);
}

}  // namespace
}  // namespace cohort::reward
