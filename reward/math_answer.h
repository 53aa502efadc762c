// Final answers of math problems as values, for the math_verify reward: "\dfrac{3}{4}", "0.75" and
// "75\%" are the same number, "(1, 2]" is an interval, "\{1, 2\}" a set. Rational values are exact
// (128-bit fractions); \sqrt, \pi and fractional powers make a value approximate, compared with a
// relative tolerance. Parsing is bounded for any text: answers over kMaxMathAnswerChars or
// kMaxMathTokens, nesting deeper than kMaxMathDepth, or a number that does not fit are refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::reward {

constexpr size_t kMaxMathAnswerChars = 2048;
constexpr size_t kMaxMathTokens = 1024;
constexpr int kMaxMathDepth = 32;                 // brackets, braces, command arguments, signs, exponents
constexpr double kMathAbsoluteTolerance = 1e-12;  // approximate values this close to each other are equal

using MathInt = __int128;

struct MathNumber {
  enum class Kind : uint8_t {
    kExact,     // numerator / denominator, in lowest terms, denominator > 0
    kApprox,    // only `approx` is known (\sqrt{2}, \pi, 2^{0.5})
    kInfinite,  // \infty or -\infty (approx is +-infinity); only interval ends and negation
  };
  Kind kind = Kind::kExact;
  MathInt numerator = 0;
  MathInt denominator = 1;
  double approx = 0;  // the value as a double, for every kind
};

struct MathAnswer {
  enum class Kind : uint8_t {
    kNumber,    // `number`; `percent` when written with a % sign
    kSequence,  // a tuple or an interval: `open` '(' or '[', `close` ')' or ']', `items` in order
    kSet,       // \{1, 2\}, or a list "1, 2" without brackets: `items`, order and repeats ignored
    kUnion,     // A \cup B: `items`, order ignored
    kText,      // a word answer ("\text{(C)}", "Sunday"): `text`, lower-case words joined by spaces
  };
  Kind kind = Kind::kNumber;
  MathNumber number;
  bool percent = false;
  char open = 0;
  char close = 0;
  std::vector<MathAnswer> items;
  std::string text;
};

// The value of an extracted answer, or nullopt when it is not one this parser understands
// (variables, unknown commands, "2 or 3", malformed or over the bounds). What is accepted:
//   numbers     42, -3, 1,000,000 (thousands commas outside brackets), 1{,}000, 1\,000, 0.75, .5,
//               1.5e3, 3/4, \frac{3}{4} (\dfrac, \tfrac, \cfrac, \frac34), mixed 2\frac{1}{2} and
//               "2 1/2", 50\%, \sqrt{2}, \sqrt[3]{x}, \pi, \infty
//   operators   + - * / ^ with parentheses or braces, \cdot \times \div, implicit multiplication
//               before a bracket or a command (2\pi, 3\sqrt{2}, 2(3+1))
//   structures  (a, b) tuples, [a, b) (a, b] intervals, \{a, b\} sets, A \cup B, "a, b" lists
//   ignored     $ \( \) \[ \], \left \right, \! \, \; \quad, \displaystyle, \boxed, \textbf,
//               degrees (^\circ, \degree), \$, leading words ("The answer is"), trailing units
//               (\text{ cm}^2, \mbox{ dollars}, "meters"), a trailing period, the left side of
//               =, \in and \approx ("x = 5" is 5)
std::optional<MathAnswer> parse_math_answer(std::string_view answer);

// Whether two answers are the same value: exact numbers exactly, approximate ones within
// `relative_tolerance` (or kMathAbsoluteTolerance); a percentage p% equals p and p/100; tuples and
// intervals element-wise with the same brackets; sets and unions as sets; text as text. Symmetric.
bool math_answers_equal(const MathAnswer& a, const MathAnswer& b, double relative_tolerance);

// A readable form for messages and logs: "3/4", "~1.41421356", "(1, 2]", "{1, 2}", "50%", "'sunday'".
std::string describe_math_answer(const MathAnswer& answer);

}  // namespace cohort::reward
