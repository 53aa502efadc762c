// libFuzzer target for the math_verify reward: answer extraction, GSM8K and MATH reference
// extraction, the math answer parser and comparison. Model output is untrusted, so any bytes must
// give a defined result (no crash, no undefined behaviour in the 128-bit arithmetic, no deep
// recursion, no timeout), and the invariants below must hold for every input.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "reward/math_verify.h"

namespace {

using namespace cohort::reward;

void check(bool condition) {
  if (!condition) __builtin_trap();
}

bool contains(std::string_view text, const std::optional<std::string>& part) {
  return !part || (!part->empty() && text.find(*part) != std::string_view::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const MathVerifyReward reward(nullptr);
  static const MathVerifyReward every_method(
      nlohmann::json{{"extract", {"boxed", "answer_tag", "hash", "last_latex", "last_number", "whole"}}});
  static const MathVerifyReward gsm8k(nlohmann::json{{"reference_format", "gsm8k"}});
  static const MathVerifyReward math(nlohmann::json{{"reference_format", "math"}});

  std::string_view text(reinterpret_cast<const char*>(data), size);

  // Extraction gives a non-empty slice of the text.
  for (const std::string& method : math_extract_methods()) check(contains(text, extract_math_answer(text, {method})));
  check(contains(text, gsm8k_reference(text)));
  check(contains(text, math_reference(text)));

  // Parsing: equality is reflexive, and symmetric between the two halves.
  std::optional<MathAnswer> whole = parse_math_answer(text);
  if (whole) {
    check(math_answers_equal(*whole, *whole, 1e-9));
    std::string described = describe_math_answer(*whole);
    // An exact number prints as a fraction that parses back to the same value.
    if (whole->kind == MathAnswer::Kind::kNumber && whole->number.kind == MathNumber::Kind::kExact) {
      std::optional<MathAnswer> again = parse_math_answer(described);
      check(again && math_answers_equal(*whole, *again, 0));
    }
  }
  size_t split = size / 2;
  std::string_view left = text.substr(0, split), right = text.substr(split);
  std::optional<MathAnswer> a = parse_math_answer(left), b = parse_math_answer(right);
  if (a && b) check(math_answers_equal(*a, *b, 1e-9) == math_answers_equal(*b, *a, 1e-9));

  // Verdicts never throw; "no score" exactly when the reference does not parse.
  for (const MathVerifyReward* fn : {&reward, &every_method}) {
    MathVerdict v = fn->verdict(left, right);
    check((v == MathVerdict::kNoScore) == !b);
  }

  // Scores are the configured ones; the only exception is the counted "no score" one.
  Metadata metadata = {{"answer", std::string(right)}};
  RewardInput input{.prompt = "", .completion = left, .metadata = metadata};
  for (const MathVerifyReward* fn : {&reward, &gsm8k, &math}) {
    try {
      std::optional<double> score = fn->score(input);
      check(score && (*score == 0.0 || *score == 1.0));
    } catch (const std::runtime_error&) {
    }
  }
  return 0;
}
