// The math_verify reward: extract a completion's final answer and compare it with the reference
// as mathematics, not as text ("\dfrac{1}{2}" = "0.5", "[1, 2)" is not "(1, 2]"), and the pure
// reference extractors the GSM8K and MATH task loaders share with it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reward/math_answer.h"
#include "reward/reward_function.h"

namespace cohort::reward {

// GSM8K's reference from a row's `answer` field: what follows the last "####" on its line,
// trimmed ("...\n#### 1,080" gives "1,080"); nullopt when there is no "####" or nothing after it.
std::optional<std::string> gsm8k_reference(std::string_view answer_field);

// MATH's reference from a row's `solution`: the content of the last \boxed{...} or \fbox{...}
// whose braces balance, nested braces included ("\boxed{\frac{1}{2}}" gives "\frac{1}{2}"), trimmed;
// else the last brace-less "\boxed 5" up to the next '$' or line end. nullopt when there is none.
// Linear in the solution's length.
std::optional<std::string> math_reference(std::string_view solution);

// Extraction methods of math_verify, tried in the order given; the first that finds a non-empty
// answer wins:
//   "boxed"        the last balanced \boxed{} or \fbox{} (as math_reference)
//   "answer_tag"   the content of the last <answer>...</answer>
//   "hash"         the rest of the line after the last "####"
//   "last_latex"   the content of the last $...$, $$...$$, \(...\) or \[...\]
//   "last_number"  the last number ("-1,234.5", "3/4"), as exact_match's last_number
//   "whole"        the whole text
// Throws std::invalid_argument for an unknown method.
std::optional<std::string> extract_math_answer(std::string_view text, const std::vector<std::string>& methods);
const std::vector<std::string>& math_extract_methods();

enum class MathVerdict { kCorrect, kWrong, kNoScore };

// Options:
//   answer_field        ("answer") metadata key of the reference
//   reference_format    ("answer") what that field holds: "answer" (the answer itself: a string, a
//                       number, or an array of them, any one matching), "gsm8k" (GSM8K's answer
//                       text, read with gsm8k_reference) or "math" (a MATH solution, read with
//                       math_reference)
//   extract             (["boxed", "answer_tag", "hash", "last_number"]) extraction order
//   correct, wrong      (1.0, 0.0) the scores
//   relative_tolerance  (1e-9) for values that are not exact rationals (\sqrt{2}, \pi)
//   max_chars           (1 MiB) only the completion's tail is searched
// A reference that is missing or does not parse is "no score" (thrown, so RewardSet counts it);
// a completion with no answer, or one that does not parse, scores `wrong`.
class MathVerifyReward final : public RewardFunction {
 public:
  explicit MathVerifyReward(const nlohmann::json& options);
  std::string_view kind() const override { return "math_verify"; }
  std::optional<double> score(const RewardInput& in) const override;

  // One completion against one reference answer (an answer, not a GSM8K or MATH field): kNoScore
  // when the reference does not parse.
  MathVerdict verdict(std::string_view completion, std::string_view reference) const;

 private:
  MathVerdict verdict(std::string_view completion, const std::vector<MathAnswer>& references) const;

  std::string answer_field_;
  std::string reference_format_;
  std::vector<std::string> extract_;
  double correct_;
  double wrong_;
  double relative_tolerance_;
  size_t max_chars_;
};

}  // namespace cohort::reward
