// Parsing and comparing math answers: a one-pass tokenizer that folds LaTeX spellings into a few
// token kinds, then a recursive-descent parser whose every level counts against kMaxMathDepth. The
// arithmetic is on 128-bit fractions with every operation checked, so an overflow is a refusal,
// never a wrong value; only \sqrt, \pi and fractional powers leave exact arithmetic for doubles.
#include "reward/math_answer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <utility>

#include "reward/text.h"

namespace cohort::reward {
namespace {

using MathUnsigned = unsigned __int128;
// Exact values stay within +-kIntMax, so negation and absolute values never overflow.
constexpr MathInt kIntMax = static_cast<MathInt>((static_cast<MathUnsigned>(1) << 127) - 1);
constexpr int kMaxDecimalExponent = 76;  // 1e76 cannot fit anyway; larger exponents are refused unread
constexpr int64_t kMaxIntegerPower = 4096;
constexpr int64_t kMaxRootIndex = 64;

// ---------------------------------------------------------------------------------------------
// Checked 128-bit arithmetic and exact fractions.

MathUnsigned magnitude(MathInt x) {
  return x < 0 ? static_cast<MathUnsigned>(-x) : static_cast<MathUnsigned>(x);
}

bool checked_add(MathInt a, MathInt b, MathInt* out) {
  if ((b > 0 && a > kIntMax - b) || (b < 0 && a < -kIntMax - b)) return false;
  *out = a + b;
  return true;
}

bool checked_mul(MathInt a, MathInt b, MathInt* out) {
  if (a == 0 || b == 0) {
    *out = 0;
    return true;
  }
  MathUnsigned ua = magnitude(a), ub = magnitude(b);
  if (ua > static_cast<MathUnsigned>(kIntMax) / ub) return false;
  MathInt product = static_cast<MathInt>(ua * ub);
  *out = (a < 0) != (b < 0) ? -product : product;
  return true;
}

MathInt gcd(MathInt a, MathInt b) {
  MathUnsigned x = magnitude(a), y = magnitude(b);
  while (y != 0) {
    MathUnsigned r = x % y;
    x = y;
    y = r;
  }
  return static_cast<MathInt>(x);
}

double to_double(MathInt numerator, MathInt denominator) {
  return static_cast<double>(numerator) / static_cast<double>(denominator);
}

std::optional<MathNumber> exact(MathInt numerator, MathInt denominator) {
  if (denominator == 0) return std::nullopt;
  if (denominator < 0) numerator = -numerator, denominator = -denominator;
  MathInt divisor = gcd(numerator, denominator);  // > 0: the denominator is not 0
  MathNumber n;
  n.numerator = numerator / divisor;
  n.denominator = denominator / divisor;
  n.approx = to_double(n.numerator, n.denominator);
  return n;
}

std::optional<MathNumber> approximate(double value) {
  if (!std::isfinite(value)) return std::nullopt;
  MathNumber n;
  n.kind = MathNumber::Kind::kApprox;
  n.approx = value;
  return n;
}

bool is_exact(const MathNumber& n) {
  return n.kind == MathNumber::Kind::kExact;
}
bool is_finite(const MathNumber& n) {
  return n.kind != MathNumber::Kind::kInfinite;
}
bool is_exact_integer(const MathNumber& n) {
  return is_exact(n) && n.denominator == 1;
}

std::optional<MathNumber> negate(const MathNumber& a) {
  MathNumber n = a;
  n.numerator = -n.numerator;
  n.approx = -n.approx;
  return n;
}

std::optional<MathNumber> add(const MathNumber& a, const MathNumber& b) {
  if (!is_finite(a) || !is_finite(b)) return std::nullopt;
  if (!is_exact(a) || !is_exact(b)) return approximate(a.approx + b.approx);
  // Scaling by the denominators' cofactors keeps the products as small as they can be.
  MathInt divisor = gcd(a.denominator, b.denominator);
  MathInt a_scale = b.denominator / divisor, b_scale = a.denominator / divisor;
  MathInt left, right, numerator, denominator;
  if (!checked_mul(a.numerator, a_scale, &left) || !checked_mul(b.numerator, b_scale, &right) ||
      !checked_add(left, right, &numerator) || !checked_mul(a.denominator, a_scale, &denominator)) {
    return std::nullopt;
  }
  return exact(numerator, denominator);
}

std::optional<MathNumber> multiply(const MathNumber& a, const MathNumber& b) {
  if (!is_finite(a) || !is_finite(b)) return std::nullopt;
  if (!is_exact(a) || !is_exact(b)) return approximate(a.approx * b.approx);
  MathInt g1 = gcd(a.numerator, b.denominator), g2 = gcd(b.numerator, a.denominator);
  MathInt numerator, denominator;
  if (!checked_mul(a.numerator / g1, b.numerator / g2, &numerator) ||
      !checked_mul(a.denominator / g2, b.denominator / g1, &denominator)) {
    return std::nullopt;
  }
  return exact(numerator, denominator);
}

std::optional<MathNumber> reciprocal(const MathNumber& a) {
  if (!is_finite(a)) return std::nullopt;
  if (!is_exact(a)) return a.approx == 0 ? std::nullopt : approximate(1 / a.approx);
  return exact(a.denominator, a.numerator);  // nullopt for 0
}

std::optional<MathNumber> divide(const MathNumber& a, const MathNumber& b) {
  std::optional<MathNumber> inverse = reciprocal(b);
  return inverse ? multiply(a, *inverse) : std::nullopt;
}

// base^exponent for an exact base and 0 <= exponent <= kMaxIntegerPower, by squaring; overflow
// stops it within a few steps unless the base is 0 or +-1.
std::optional<MathInt> integer_power(MathInt base, int64_t exponent) {
  MathInt result = 1;
  while (exponent > 0) {
    if ((exponent & 1) && !checked_mul(result, base, &result)) return std::nullopt;
    exponent >>= 1;
    if (exponent > 0 && !checked_mul(base, base, &base)) return std::nullopt;
  }
  return result;
}

// The integer n-th root of x >= 0 when x is a perfect n-th power.
std::optional<MathInt> exact_root(MathInt x, int64_t n) {
  MathInt low = 0, high = 1;
  while (true) {  // smallest power of two whose n-th power exceeds x: at most 128 doublings
    std::optional<MathInt> p = integer_power(high, n);
    if (!p || *p > x) break;
    low = high;
    if (!checked_mul(high, 2, &high)) break;
  }
  while (high - low > 1) {
    MathInt middle = low + (high - low) / 2;
    std::optional<MathInt> p = integer_power(middle, n);
    if (p && *p <= x) {
      low = middle;
    } else {
      high = middle;
    }
  }
  std::optional<MathInt> p = integer_power(low, n);
  if (p && *p == x) return low;
  return std::nullopt;
}

// The n-th root (2 <= n <= kMaxRootIndex): exact when numerator and denominator are perfect powers.
std::optional<MathNumber> root(const MathNumber& x, int64_t n) {
  if (!is_finite(x) || n < 2 || n > kMaxRootIndex) return std::nullopt;
  bool negative = x.approx < 0 || (is_exact(x) && x.numerator < 0);
  if (negative && n % 2 == 0) return std::nullopt;  // no complex numbers
  if (is_exact(x)) {
    std::optional<MathInt> top = exact_root(negative ? -x.numerator : x.numerator, n);
    std::optional<MathInt> bottom = exact_root(x.denominator, n);
    if (top && bottom) return exact(negative ? -*top : *top, *bottom);
  }
  double magnitude_root = std::pow(std::fabs(x.approx), 1.0 / static_cast<double>(n));
  return approximate(negative ? -magnitude_root : magnitude_root);
}

std::optional<MathNumber> raise(const MathNumber& base, const MathNumber& exponent) {
  if (!is_finite(base) || !is_finite(exponent)) return std::nullopt;
  if (is_exact_integer(exponent)) {
    if (exponent.numerator > kMaxIntegerPower || exponent.numerator < -kMaxIntegerPower) return std::nullopt;
    int64_t n = static_cast<int64_t>(exponent.numerator);
    if (n == 0) {
      if (is_exact(base) ? base.numerator == 0 : base.approx == 0) return std::nullopt;  // 0^0
      return exact(1, 1);
    }
    if (!is_exact(base)) return approximate(std::pow(base.approx, static_cast<double>(n)));
    std::optional<MathInt> top = integer_power(base.numerator, n < 0 ? -n : n);
    std::optional<MathInt> bottom = integer_power(base.denominator, n < 0 ? -n : n);
    if (!top || !bottom) return std::nullopt;
    return n < 0 ? exact(*bottom, *top) : exact(*top, *bottom);
  }
  if (is_exact(exponent) && exponent.denominator <= kMaxRootIndex) {
    // p/q: the q-th root, then the integer power p.
    std::optional<MathNumber> r = root(base, static_cast<int64_t>(exponent.denominator));
    std::optional<MathNumber> p = exact(exponent.numerator, 1);
    return r && p ? raise(*r, *p) : std::nullopt;
  }
  if (base.approx <= 0) return std::nullopt;
  return approximate(std::pow(base.approx, exponent.approx));
}

bool numbers_equal(const MathNumber& a, const MathNumber& b, double relative_tolerance) {
  if (!is_finite(a) || !is_finite(b)) return !is_finite(a) && !is_finite(b) && (a.approx > 0) == (b.approx > 0);
  if (is_exact(a) && is_exact(b)) return a.numerator == b.numerator && a.denominator == b.denominator;
  double difference = std::fabs(a.approx - b.approx);
  return difference <= kMathAbsoluteTolerance ||
         difference <= relative_tolerance * std::max(std::fabs(a.approx), std::fabs(b.approx));
}

// ---------------------------------------------------------------------------------------------
// Tokens.

enum class TokenType : uint8_t {
  kNumber,
  kWord,  // a run of ASCII letters (and non-ASCII bytes that mean nothing here)
  kText,  // the content of \text{...}, \mbox{...}, \mathrm{...}
  kPlus,
  kMinus,
  kMul,
  kDiv,
  kCaret,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kSetOpen,   // \{ \lbrace
  kSetClose,  // \} \rbrace
  kComma,
  kEquals,  // = \in \approx
  kPercent,
  kPeriod,
  kColon,
  kFrac,
  kSqrt,
  kPi,
  kInfinity,
  kEmptySet,
  kCup,
  kPunctuation,  // ! ? ; ' : harmless in word answers, meaningless in math
  kOther,        // anything else: an unknown command, | < > & ...
};

struct Token {
  TokenType type = TokenType::kOther;
  bool space_before = false;
  bool integer = false;   // kNumber: written without a decimal point or an exponent
  std::string_view text;  // kWord, kText: the bytes
  MathNumber value;       // kNumber
};

bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool starts_with(std::string_view s, size_t at, std::string_view prefix) {
  return s.substr(at, prefix.size()) == prefix;
}

struct UnicodeSpelling {
  std::string_view bytes;
  TokenType type;  // kOther: a space; kPunctuation: nothing (dropped)
};

// UTF-8 spellings models write for the ASCII and LaTeX ones.
constexpr UnicodeSpelling kUnicodeSpellings[] = {
    {"\xE2\x88\x92", TokenType::kMinus},     // U+2212 minus sign
    {"\xE2\x80\x93", TokenType::kMinus},     // U+2013 en dash
    {"\xC3\x97", TokenType::kMul},           // U+00D7 multiplication sign
    {"\xC2\xB7", TokenType::kMul},           // U+00B7 middle dot
    {"\xE2\x8B\x85", TokenType::kMul},       // U+22C5 dot operator
    {"\xC3\xB7", TokenType::kDiv},           // U+00F7 division sign
    {"\xCF\x80", TokenType::kPi},            // U+03C0 pi
    {"\xE2\x88\x9A", TokenType::kSqrt},      // U+221A square root
    {"\xE2\x88\x9E", TokenType::kInfinity},  // U+221E infinity
    {"\xE2\x88\xAA", TokenType::kCup},       // U+222A union
    {"\xE2\x88\x85", TokenType::kEmptySet},  // U+2205 empty set
    {"\xC2\xB0", TokenType::kPunctuation},   // U+00B0 degree sign: dropped
    {"\xC2\xA0", TokenType::kOther},         // U+00A0 no-break space
    {"\xE2\x80\x89", TokenType::kOther},     // U+2009 thin space
    {"\xE2\x80\xAF", TokenType::kOther},     // U+202F narrow no-break space
};

const UnicodeSpelling* unicode_spelling(std::string_view s, size_t at) {
  for (const UnicodeSpelling& spelling : kUnicodeSpellings) {
    if (starts_with(s, at, spelling.bytes)) return &spelling;
  }
  return nullptr;
}

constexpr std::pair<char, TokenType> kPunctuation[] = {
    {'+', TokenType::kPlus},        {'-', TokenType::kMinus},        {'*', TokenType::kMul},
    {'/', TokenType::kDiv},         {'^', TokenType::kCaret},        {'(', TokenType::kLParen},
    {')', TokenType::kRParen},      {'[', TokenType::kLBracket},     {']', TokenType::kRBracket},
    {'{', TokenType::kLBrace},      {'}', TokenType::kRBrace},       {',', TokenType::kComma},
    {'=', TokenType::kEquals},      {'%', TokenType::kPercent},      {'.', TokenType::kPeriod},
    {':', TokenType::kColon},       {'!', TokenType::kPunctuation},  {'?', TokenType::kPunctuation},
    {';', TokenType::kPunctuation}, {'\'', TokenType::kPunctuation}, {'"', TokenType::kPunctuation},
};

struct Command {
  std::string_view name;
  enum Action : uint8_t { kToken, kDrop, kSpace, kRawText, kDelimiter } action;
  TokenType type = TokenType::kOther;
};

constexpr Command kCommands[] = {
    {"frac", Command::kToken, TokenType::kFrac},
    {"dfrac", Command::kToken, TokenType::kFrac},
    {"tfrac", Command::kToken, TokenType::kFrac},
    {"cfrac", Command::kToken, TokenType::kFrac},
    {"sqrt", Command::kToken, TokenType::kSqrt},
    {"pi", Command::kToken, TokenType::kPi},
    {"infty", Command::kToken, TokenType::kInfinity},
    {"emptyset", Command::kToken, TokenType::kEmptySet},
    {"varnothing", Command::kToken, TokenType::kEmptySet},
    {"cdot", Command::kToken, TokenType::kMul},
    {"times", Command::kToken, TokenType::kMul},
    {"ast", Command::kToken, TokenType::kMul},
    {"div", Command::kToken, TokenType::kDiv},
    {"cup", Command::kToken, TokenType::kCup},
    {"in", Command::kToken, TokenType::kEquals},
    {"approx", Command::kToken, TokenType::kEquals},
    {"lbrace", Command::kToken, TokenType::kSetOpen},
    {"rbrace", Command::kToken, TokenType::kSetClose},
    {"left", Command::kDelimiter},
    {"right", Command::kDelimiter},
    {"big", Command::kDelimiter},
    {"Big", Command::kDelimiter},
    {"bigg", Command::kDelimiter},
    {"Bigg", Command::kDelimiter},
    {"bigl", Command::kDelimiter},
    {"bigr", Command::kDelimiter},
    {"Bigl", Command::kDelimiter},
    {"Bigr", Command::kDelimiter},
    {"biggl", Command::kDelimiter},
    {"biggr", Command::kDelimiter},
    {"displaystyle", Command::kDrop},
    {"textstyle", Command::kDrop},
    {"circ", Command::kDrop},
    {"degree", Command::kDrop},
    {"textbf", Command::kDrop},
    {"mathbf", Command::kDrop},
    {"boldsymbol", Command::kDrop},
    {"bm", Command::kDrop},
    {"boxed", Command::kDrop},
    {"fbox", Command::kDrop},
    {"quad", Command::kSpace},
    {"qquad", Command::kSpace},
    {"text", Command::kRawText},
    {"mbox", Command::kRawText},
    {"textrm", Command::kRawText},
    {"textnormal", Command::kRawText},
    {"textit", Command::kRawText},
    {"textsf", Command::kRawText},
    {"texttt", Command::kRawText},
    {"mathrm", Command::kRawText},
    {"mathit", Command::kRawText},
};

const Command* find_command(std::string_view name) {
  for (const Command& command : kCommands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

class Tokenizer {
 public:
  explicit Tokenizer(std::string_view s) : s_(s) {}

  bool run(std::vector<Token>* out) {
    out_ = out;
    while (i_ < s_.size()) {
      if (out_->size() > kMaxMathTokens) return false;
      char c = s_[i_];
      if (is_ascii_space(c) || c == '~') {
        space_ = true;
        ++i_;
      } else if (c == '$') {
        ++i_;
      } else if (is_ascii_digit(c) || (c == '.' && i_ + 1 < s_.size() && is_ascii_digit(s_[i_ + 1]))) {
        if (!number()) return false;
      } else if (c == '\\') {
        if (!command()) return false;
      } else if (c == '^' && degrees_follow()) {
        // ^\circ and ^{\circ}: degrees, dropped with their caret.
      } else if (const UnicodeSpelling* spelling = unicode_spelling(s_, i_)) {
        i_ += spelling->bytes.size();
        if (spelling->type == TokenType::kOther) {
          space_ = true;
        } else if (spelling->type != TokenType::kPunctuation) {
          emit(spelling->type);
        }
      } else if (is_letter(c) || static_cast<unsigned char>(c) >= 0x80) {
        word();
      } else {
        punctuation(c);
        ++i_;
      }
    }
    return out_->size() <= kMaxMathTokens;
  }

 private:
  Token& emit(TokenType type) {
    Token token;
    token.type = type;
    token.space_before = space_;
    space_ = false;
    if (type != TokenType::kNumber) single_digits_ = 0;
    if (type == TokenType::kLParen || type == TokenType::kLBracket || type == TokenType::kLBrace ||
        type == TokenType::kSetOpen) {
      ++depth_;
    } else if ((type == TokenType::kRParen || type == TokenType::kRBracket || type == TokenType::kRBrace ||
                type == TokenType::kSetClose) &&
               depth_ > 0) {
      --depth_;
    }
    out_->push_back(token);
    return out_->back();
  }

  bool digits_at(size_t at, size_t count) const {
    if (at + count > s_.size()) return false;
    for (size_t k = at; k < at + count; ++k) {
      if (!is_ascii_digit(s_[k])) return false;
    }
    return true;
  }

  // The length of a thousands separator at i_ followed by exactly three digits, else 0: "{,}" and
  // "\," anywhere, a bare "," only outside brackets (inside them it separates elements).
  size_t thousands_separator() const {
    size_t length = 0;
    if (starts_with(s_, i_, "{,}")) {
      length = 3;
    } else if (starts_with(s_, i_, "\\,")) {
      length = 2;
    } else if (depth_ == 0 && starts_with(s_, i_, ",")) {
      length = 1;
    }
    if (length == 0 || !digits_at(i_ + length, 3) || digits_at(i_ + length + 3, 1)) return 0;
    return length;
  }

  bool append_digit(MathInt* value, char digit) const {
    return checked_mul(*value, 10, value) && checked_add(*value, digit - '0', value);
  }

  // digits [thousands groups] [. digits] [e[+-]digits]; right after \frac or \sqrt without braces,
  // one digit ("\frac12" is 1/2).
  bool number() {
    MathInt numerator = 0, denominator = 1;
    bool integer = true;
    if (single_digits_ > 0 && is_ascii_digit(s_[i_])) {
      int remaining = single_digits_ - 1;
      append_digit(&numerator, s_[i_++]);
      Token& token = emit(TokenType::kNumber);
      token.integer = true;
      token.value = *exact(numerator, 1);
      single_digits_ = remaining;
      return true;
    }
    size_t integer_digits = 0;
    bool leading_zero = s_[i_] == '0';
    while (i_ < s_.size() && is_ascii_digit(s_[i_])) {
      if (!append_digit(&numerator, s_[i_++])) return false;
      ++integer_digits;
    }
    if (integer_digits >= 1 && integer_digits <= 3 && !leading_zero) {
      while (size_t length = thousands_separator()) {
        i_ += length;
        for (int k = 0; k < 3; ++k) {
          if (!append_digit(&numerator, s_[i_++])) return false;
        }
      }
    }
    if (i_ + 1 < s_.size() && s_[i_] == '.' && is_ascii_digit(s_[i_ + 1])) {
      integer = false;
      ++i_;
      while (i_ < s_.size() && is_ascii_digit(s_[i_])) {
        if (!append_digit(&numerator, s_[i_++]) || !checked_mul(denominator, 10, &denominator)) return false;
      }
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t k = i_ + 1;
      bool negative = false;
      if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) negative = s_[k++] == '-';
      if (digits_at(k, 1)) {
        integer = false;
        int exponent = 0;
        while (k < s_.size() && is_ascii_digit(s_[k])) {
          exponent = exponent * 10 + (s_[k++] - '0');
          if (exponent > kMaxDecimalExponent) return false;
        }
        i_ = k;
        for (int e = 0; e < exponent; ++e) {
          if (!checked_mul(negative ? denominator : numerator, 10, negative ? &denominator : &numerator)) return false;
        }
      }
    }
    std::optional<MathNumber> value = exact(numerator, denominator);
    if (!value) return false;
    Token& token = emit(TokenType::kNumber);
    token.integer = integer;
    token.value = *value;
    return true;
  }

  void word() {
    size_t begin = i_;
    while (i_ < s_.size() && (is_letter(s_[i_]) || static_cast<unsigned char>(s_[i_]) >= 0x80)) {
      if (static_cast<unsigned char>(s_[i_]) >= 0x80 && unicode_spelling(s_, i_)) break;
      ++i_;
    }
    std::string_view w = s_.substr(begin, i_ - begin);
    // Plain-text spellings of the commands.
    if (w == "pi") {
      emit(TokenType::kPi);
    } else if (w == "sqrt") {
      emit(TokenType::kSqrt);
    } else if (w == "infinity" || w == "inf") {
      emit(TokenType::kInfinity);
    } else {
      emit(TokenType::kWord).text = w;
    }
  }

  bool degrees_follow() {
    size_t k = i_ + 1;
    while (k < s_.size() && is_ascii_space(s_[k])) ++k;
    bool braced = k < s_.size() && s_[k] == '{';
    if (braced) {
      ++k;
      while (k < s_.size() && is_ascii_space(s_[k])) ++k;
    }
    if (!starts_with(s_, k, "\\circ") || (k + 5 < s_.size() && is_letter(s_[k + 5]))) return false;
    k += 5;
    if (braced) {
      while (k < s_.size() && is_ascii_space(s_[k])) ++k;
      if (k >= s_.size() || s_[k] != '}') return false;
      ++k;
    }
    i_ = k;
    return true;
  }

  bool command() {
    ++i_;  // the backslash
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (!is_letter(c)) {
      ++i_;
      switch (c) {
        case '{':
          emit(TokenType::kSetOpen);
          return true;
        case '}':
          emit(TokenType::kSetClose);
          return true;
        case '%':
          emit(TokenType::kPercent);
          return true;
        case '$':
        case '!':
        case '(':
        case ')':
        case '[':
        case ']':
          return true;
        case ' ':
        case ',':
        case ';':
        case ':':
        case '\\':
        case '\n':
          space_ = true;
          return true;
        default:
          return false;
      }
    }
    size_t begin = i_;
    while (i_ < s_.size() && is_letter(s_[i_])) ++i_;
    const Command* found = find_command(s_.substr(begin, i_ - begin));
    if (!found) return false;
    switch (found->action) {
      case Command::kToken:
        emit(found->type);
        if (found->type == TokenType::kFrac) single_digits_ = 2;
        if (found->type == TokenType::kSqrt) single_digits_ = 1;
        return true;
      case Command::kDrop:
        return true;
      case Command::kSpace:
        space_ = true;
        return true;
      case Command::kDelimiter:
        // \left. and \right. are invisible delimiters; others are the bracket that follows.
        while (i_ < s_.size() && is_ascii_space(s_[i_])) ++i_;
        if (i_ < s_.size() && s_[i_] == '.') ++i_;
        return true;
      case Command::kRawText:
        return raw_text();
    }
    return false;
  }

  // {content} with balanced braces, kept as bytes.
  bool raw_text() {
    while (i_ < s_.size() && is_ascii_space(s_[i_])) ++i_;
    if (i_ >= s_.size() || s_[i_] != '{') return false;
    size_t begin = ++i_;
    int64_t depth = 1;
    for (; i_ < s_.size(); ++i_) {
      if (s_[i_] == '{') {
        ++depth;
      } else if (s_[i_] == '}' && --depth == 0) {
        emit(TokenType::kText).text = s_.substr(begin, i_ - begin);
        ++i_;
        return true;
      }
    }
    return false;
  }

  void punctuation(char c) {
    for (const auto& [character, type] : kPunctuation) {
      if (character == c) {
        emit(type);
        return;
      }
    }
    emit(TokenType::kOther);
  }

  std::string_view s_;
  std::vector<Token>* out_ = nullptr;
  size_t i_ = 0;
  int depth_ = 0;
  bool space_ = false;
  int single_digits_ = 0;  // digits still to be read one at a time (braceless \frac and \sqrt arguments)
};

bool tokenize(std::string_view s, std::vector<Token>* out) {
  out->clear();
  return Tokenizer(s).run(out);
}

// ---------------------------------------------------------------------------------------------
// The expression parser, over tokens[begin, end).
//
// expression := term (('+' | '-') term)*
// term       := unary (('*' | '/') unary | implicit)*     implicit: before ( { \frac \sqrt \pi
// unary      := ('-' | '+') unary | power
// power      := primary ('^' unary)?
// primary    := number | mixed number | \pi | \infty | \emptyset | \frac arg arg | \sqrt [n] arg
//             | '(' list ')' | '[' list ']' | '(' a, b ']' | '[' a, b ')' | '{' list '}' | '\{' list '\}'
// list       := expression (',' expression)*

MathAnswer number_answer(const MathNumber& n) {
  MathAnswer a;
  a.number = n;
  return a;
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, size_t begin, size_t end)
      : tokens_(tokens), begin_(begin), pos_(begin), end_(end) {}

  std::optional<MathAnswer> parse() {
    std::optional<MathAnswer> value = expression(0);
    if (!value || pos_ != end_) return std::nullopt;
    return value;
  }

 private:
  const Token* peek(size_t ahead = 0) const { return pos_ + ahead < end_ ? &tokens_[pos_ + ahead] : nullptr; }
  bool next_is(TokenType type, size_t ahead = 0) const {
    const Token* t = peek(ahead);
    return t && t->type == type;
  }
  bool accept(TokenType type) {
    if (!next_is(type)) return false;
    ++pos_;
    return true;
  }

  using Operation = std::optional<MathNumber> (*)(const MathNumber&, const MathNumber&);
  static std::optional<MathAnswer> apply(Operation op, const std::optional<MathAnswer>& a,
                                         const std::optional<MathAnswer>& b) {
    if (!a || !b || a->kind != MathAnswer::Kind::kNumber || b->kind != MathAnswer::Kind::kNumber) return std::nullopt;
    std::optional<MathNumber> n = op(a->number, b->number);
    return n ? std::optional<MathAnswer>(number_answer(*n)) : std::nullopt;
  }
  static std::optional<MathNumber> subtract(const MathNumber& a, const MathNumber& b) {
    std::optional<MathNumber> minus_b = negate(b);
    return minus_b ? add(a, *minus_b) : std::nullopt;
  }

  std::optional<MathAnswer> expression(int depth) {
    if (depth > kMaxMathDepth) return std::nullopt;
    std::optional<MathAnswer> value = term(depth);
    while (value) {
      if (accept(TokenType::kPlus)) {
        value = apply(add, value, term(depth));
      } else if (accept(TokenType::kMinus)) {
        value = apply(subtract, value, term(depth));
      } else {
        break;
      }
    }
    return value;
  }

  bool implicit_factor_follows() const {
    const Token* t = peek();
    if (!t) return false;
    switch (t->type) {
      case TokenType::kLParen:
      case TokenType::kLBrace:
      case TokenType::kFrac:
      case TokenType::kSqrt:
      case TokenType::kPi:
        return true;
      default:
        return false;
    }
  }

  std::optional<MathAnswer> term(int depth) {
    std::optional<MathAnswer> value = unary(depth);
    while (value) {
      if (accept(TokenType::kMul)) {
        value = apply(multiply, value, unary(depth));
      } else if (accept(TokenType::kDiv)) {
        value = apply(divide, value, unary(depth));
      } else if (implicit_factor_follows()) {
        value = apply(multiply, value, power(depth));
      } else {
        break;
      }
    }
    return value;
  }

  std::optional<MathAnswer> unary(int depth) {
    if (depth > kMaxMathDepth) return std::nullopt;
    if (accept(TokenType::kMinus)) {
      std::optional<MathAnswer> value = unary(depth + 1);
      if (!value || value->kind != MathAnswer::Kind::kNumber) return std::nullopt;
      value->number = *negate(value->number);
      return value;
    }
    if (accept(TokenType::kPlus)) return unary(depth + 1);
    return power(depth);
  }

  std::optional<MathAnswer> power(int depth) {
    std::optional<MathAnswer> base = primary(depth);
    if (base && accept(TokenType::kCaret)) return apply(raise, base, unary(depth + 1));
    return base;
  }

  // An argument of \frac or \sqrt: a braced expression, or one token (\frac12, \frac\pi2, sqrt(2)).
  std::optional<MathAnswer> argument(int depth) {
    if (depth > kMaxMathDepth) return std::nullopt;
    if (accept(TokenType::kLBrace)) {
      std::optional<MathAnswer> value = expression(depth + 1);
      if (!accept(TokenType::kRBrace)) return std::nullopt;
      return value;
    }
    const Token* t = peek();
    if (t && t->type == TokenType::kNumber) {
      ++pos_;
      return number_answer(t->value);
    }
    if (t && (t->type == TokenType::kPi || t->type == TokenType::kLParen)) return primary(depth + 1);
    return std::nullopt;
  }

  // Whether the tokens at pos_ + ahead are a proper fraction of integer literals, \frac{1}{2} or
  // 1/2, so that an integer before them makes a mixed number; sets *length to its token count.
  bool proper_fraction_follows(size_t ahead, bool latex, size_t* length, MathNumber* value) const {
    size_t k = ahead;
    const Token* numerator = nullptr;
    const Token* denominator = nullptr;
    if (latex) {
      if (!next_is(TokenType::kFrac, k++)) return false;
      for (const Token** slot : {&numerator, &denominator}) {
        bool braced = next_is(TokenType::kLBrace, k);
        if (braced) ++k;
        if (!next_is(TokenType::kNumber, k)) return false;
        *slot = peek(k++);
        if (braced && !next_is(TokenType::kRBrace, k++)) return false;
      }
    } else {
      if (!next_is(TokenType::kNumber, k) || !peek(k)->space_before || !next_is(TokenType::kDiv, k + 1) ||
          !next_is(TokenType::kNumber, k + 2)) {
        return false;
      }
      numerator = peek(k);
      denominator = peek(k + 2);
      k += 3;
      if (next_is(TokenType::kCaret, k)) return false;
    }
    if (!numerator->integer || !denominator->integer) return false;
    const MathNumber &n = numerator->value, &d = denominator->value;
    if (n.numerator <= 0 || d.numerator <= n.numerator) return false;
    *length = k - ahead;
    *value = *exact(n.numerator, d.numerator);
    return true;
  }

  std::optional<MathAnswer> number() {
    const Token& t = tokens_[pos_];
    bool may_be_mixed = t.integer && t.value.numerator >= 0;
    if (may_be_mixed && pos_ > begin_) {
      // Only where a new value starts: "3/2 1/2" is not three and a half halves.
      TokenType before = tokens_[pos_ - 1].type;
      may_be_mixed = before == TokenType::kMinus || before == TokenType::kPlus || before == TokenType::kLParen ||
                     before == TokenType::kLBracket || before == TokenType::kLBrace || before == TokenType::kSetOpen ||
                     before == TokenType::kComma || before == TokenType::kEquals;
    }
    size_t length = 0;
    MathNumber fraction;
    if (may_be_mixed && (proper_fraction_follows(1, true, &length, &fraction) ||
                         proper_fraction_follows(1, false, &length, &fraction))) {
      pos_ += 1 + length;
      std::optional<MathNumber> sum = add(t.value, fraction);
      return sum ? std::optional<MathAnswer>(number_answer(*sum)) : std::nullopt;
    }
    ++pos_;
    return number_answer(t.value);
  }

  // Elements up to the closing token; the closer is left for the caller.
  bool list(int depth, std::vector<MathAnswer>* items) {
    while (true) {
      std::optional<MathAnswer> item = expression(depth + 1);
      if (!item) return false;
      items->push_back(std::move(*item));
      if (!accept(TokenType::kComma)) return true;
    }
  }

  std::optional<MathAnswer> primary(int depth) {
    if (depth > kMaxMathDepth) return std::nullopt;
    const Token* t = peek();
    if (!t) return std::nullopt;
    switch (t->type) {
      case TokenType::kNumber:
        return number();
      case TokenType::kPi:
        ++pos_;
        return number_answer(*approximate(std::numbers::pi));
      case TokenType::kInfinity: {
        ++pos_;
        MathNumber n;
        n.kind = MathNumber::Kind::kInfinite;
        n.approx = std::numeric_limits<double>::infinity();
        return number_answer(n);
      }
      case TokenType::kEmptySet: {
        ++pos_;
        MathAnswer set;
        set.kind = MathAnswer::Kind::kSet;
        return set;
      }
      case TokenType::kFrac: {
        ++pos_;
        std::optional<MathAnswer> numerator = argument(depth + 1);
        if (!numerator) return std::nullopt;
        return apply(divide, numerator, argument(depth + 1));
      }
      case TokenType::kSqrt: {
        ++pos_;
        int64_t index = 2;
        if (accept(TokenType::kLBracket)) {
          std::optional<MathAnswer> n = expression(depth + 1);
          if (!n || !accept(TokenType::kRBracket) || n->kind != MathAnswer::Kind::kNumber ||
              !is_exact_integer(n->number) || n->number.numerator < 2 || n->number.numerator > kMaxRootIndex) {
            return std::nullopt;
          }
          index = static_cast<int64_t>(n->number.numerator);
        }
        std::optional<MathAnswer> radicand = argument(depth + 1);
        if (!radicand || radicand->kind != MathAnswer::Kind::kNumber) return std::nullopt;
        std::optional<MathNumber> r = root(radicand->number, index);
        return r ? std::optional<MathAnswer>(number_answer(*r)) : std::nullopt;
      }
      case TokenType::kSetOpen: {
        ++pos_;
        MathAnswer set;
        set.kind = MathAnswer::Kind::kSet;
        if (accept(TokenType::kSetClose)) return set;
        if (!list(depth, &set.items) || !accept(TokenType::kSetClose)) return std::nullopt;
        return set;
      }
      case TokenType::kLBrace: {
        ++pos_;
        std::vector<MathAnswer> items;
        if (!list(depth, &items) || !accept(TokenType::kRBrace)) return std::nullopt;
        if (items.size() == 1) return std::move(items[0]);
        MathAnswer set;
        set.kind = MathAnswer::Kind::kSet;
        set.items = std::move(items);
        return set;
      }
      case TokenType::kLParen:
      case TokenType::kLBracket: {
        ++pos_;
        char open = t->type == TokenType::kLParen ? '(' : '[';
        std::vector<MathAnswer> items;
        if (!list(depth, &items)) return std::nullopt;
        char close;
        if (accept(TokenType::kRParen)) {
          close = ')';
        } else if (accept(TokenType::kRBracket)) {
          close = ']';
        } else {
          return std::nullopt;
        }
        if (items.size() == 1) {
          if ((open == '(') != (close == ')')) return std::nullopt;  // "[5)" is nothing
          return std::move(items[0]);
        }
        // Infinite values only as interval ends.
        for (size_t k = 0; k < items.size(); ++k) {
          bool infinite = items[k].kind == MathAnswer::Kind::kNumber && !is_finite(items[k].number);
          if (infinite && (items.size() != 2 || (k == 0 && open == '[') || (k == 1 && close == ']'))) {
            return std::nullopt;
          }
        }
        MathAnswer sequence;
        sequence.kind = MathAnswer::Kind::kSequence;
        sequence.open = open;
        sequence.close = close;
        sequence.items = std::move(items);
        return sequence;
      }
      default:
        return std::nullopt;
    }
  }

  const std::vector<Token>& tokens_;
  size_t begin_;
  size_t pos_;
  size_t end_;
};

// ---------------------------------------------------------------------------------------------
// From tokens to an answer: word answers, lists, equations, surrounding words and units.

bool is_open(TokenType t) {
  return t == TokenType::kLParen || t == TokenType::kLBracket || t == TokenType::kLBrace || t == TokenType::kSetOpen;
}
bool is_close(TokenType t) {
  return t == TokenType::kRParen || t == TokenType::kRBracket || t == TokenType::kRBrace || t == TokenType::kSetClose;
}

// The positions in [begin, end) of tokens of `type` outside every bracket; nullopt when the
// brackets do not balance.
std::optional<std::vector<size_t>> top_level(const std::vector<Token>& tokens, size_t begin, size_t end,
                                             TokenType type) {
  std::vector<size_t> found;
  int64_t depth = 0;
  for (size_t k = begin; k < end; ++k) {
    if (is_open(tokens[k].type)) {
      ++depth;
    } else if (is_close(tokens[k].type)) {
      if (--depth < 0) return std::nullopt;
    } else if (depth == 0 && tokens[k].type == type) {
      found.push_back(k);
    }
  }
  if (depth != 0) return std::nullopt;
  return found;
}

bool is_unit_word(const Token& t) {
  return t.type == TokenType::kText || t.type == TokenType::kWord;
}

bool is_percent_word(const Token& t) {
  return t.type == TokenType::kWord && (t.text == "percent" || t.text == "percentage" || t.text == "pct");
}

// A word that can only be prose or a unit: two or more letters (one letter is a variable).
bool is_long_word(const Token& t) {
  return t.type == TokenType::kText || (t.type == TokenType::kWord && t.text.size() >= 2);
}

// One side of an equation, or a list element without '=': strips leading words ("The answer
// is"), trailing units and periods and a percent sign, then parses A \cup B \cup ... or one value.
std::optional<MathAnswer> parse_value(const std::vector<Token>& tokens, size_t begin, size_t end) {
  while (begin < end && (is_long_word(tokens[begin]) || tokens[begin].type == TokenType::kColon) && begin + 1 < end &&
         !is_percent_word(tokens[begin])) {
    ++begin;
  }
  while (end > begin && tokens[end - 1].type == TokenType::kPeriod) --end;
  // Trailing units: words, \text{}, ^2 or ^{2} after them, '/' and \cdot between them, starting
  // with \text{} or a long word set off by a space ("5 cm", not "5cm", which reads as 5 c m).
  size_t unit = end;
  while (unit > begin) {
    const Token& t = tokens[unit - 1];
    if (is_unit_word(t) || t.type == TokenType::kPeriod) {
      --unit;
    } else if (t.type == TokenType::kNumber && unit - begin >= 3 && tokens[unit - 2].type == TokenType::kCaret &&
               is_unit_word(tokens[unit - 3])) {
      unit -= 2;
    } else if (t.type == TokenType::kRBrace && unit - begin >= 5 && tokens[unit - 2].type == TokenType::kNumber &&
               tokens[unit - 3].type == TokenType::kLBrace && tokens[unit - 4].type == TokenType::kCaret &&
               is_unit_word(tokens[unit - 5])) {
      unit -= 4;
    } else if ((t.type == TokenType::kDiv || t.type == TokenType::kMul) && unit < end && unit - begin >= 2 &&
               is_unit_word(tokens[unit - 2])) {
      --unit;
    } else {
      break;
    }
  }
  bool percent = false;
  while (unit < end && unit > begin) {
    const Token& first = tokens[unit];
    bool starts_unit = first.type == TokenType::kText || (is_long_word(first) && first.space_before);
    if (starts_unit) break;
    ++unit;  // the suffix may start later: "5x cm" keeps "5x"
  }
  if (unit < end && unit > begin) {
    percent = is_percent_word(tokens[unit]);
    end = unit;
  }
  if (end > begin && tokens[end - 1].type == TokenType::kPercent) {
    percent = true;
    --end;
  }
  if (begin >= end) return std::nullopt;

  std::optional<std::vector<size_t>> cups = top_level(tokens, begin, end, TokenType::kCup);
  if (!cups) return std::nullopt;
  std::optional<MathAnswer> result;
  if (cups->empty()) {
    result = Parser(tokens, begin, end).parse();
  } else {
    MathAnswer united;
    united.kind = MathAnswer::Kind::kUnion;
    size_t part_begin = begin;
    cups->push_back(end);
    for (size_t cup : *cups) {
      std::optional<MathAnswer> part = Parser(tokens, part_begin, cup).parse();
      if (!part || part->kind == MathAnswer::Kind::kNumber) return std::nullopt;
      united.items.push_back(std::move(*part));
      part_begin = cup + 1;
    }
    result = std::move(united);
  }
  if (result && percent) {
    if (result->kind != MathAnswer::Kind::kNumber || !is_finite(result->number)) return std::nullopt;
    result->percent = true;
  }
  return result;
}

// One list element: the last side of an equation that parses ("x = 5" and "5 = x" are 5).
std::optional<MathAnswer> parse_element(const std::vector<Token>& tokens, size_t begin, size_t end) {
  std::optional<std::vector<size_t>> equals = top_level(tokens, begin, end, TokenType::kEquals);
  if (!equals) return std::nullopt;
  size_t side_end = end;
  for (size_t k = equals->size(); k-- > 0;) {
    if (std::optional<MathAnswer> side = parse_value(tokens, (*equals)[k] + 1, side_end)) return side;
    side_end = (*equals)[k];
  }
  return parse_value(tokens, begin, side_end);
}

// A word answer: only words, \text{} and punctuation, no numbers or math. Lower-case ASCII
// letters and digits (and any non-ASCII bytes) in runs, joined by single spaces.
std::optional<std::string> word_answer(const std::vector<Token>& tokens) {
  std::string text;
  auto add_run = [&](std::string_view bytes) {
    bool pending_space = !text.empty();
    for (char c : bytes) {
      bool keep = is_letter(c) || is_ascii_digit(c) || static_cast<unsigned char>(c) >= 0x80;
      if (!keep) {
        pending_space = !text.empty();
        continue;
      }
      if (pending_space) text += ' ';
      pending_space = false;
      text += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
  };
  for (const Token& t : tokens) {
    switch (t.type) {
      case TokenType::kWord:
      case TokenType::kText:
        add_run(t.text);
        break;
      case TokenType::kLParen:
      case TokenType::kRParen:
      case TokenType::kPeriod:
      case TokenType::kComma:
      case TokenType::kColon:
      case TokenType::kMinus:
      case TokenType::kPunctuation:
        break;
      default:
        return std::nullopt;
    }
  }
  if (text.empty()) return std::nullopt;
  return text;
}

std::string integer_string(MathInt x) {
  if (x == 0) return "0";
  std::string digits;
  MathUnsigned u = magnitude(x);
  while (u > 0) {
    digits += static_cast<char>('0' + static_cast<int>(u % 10));
    u /= 10;
  }
  if (x < 0) digits += '-';
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string number_string(const MathNumber& n) {
  switch (n.kind) {
    case MathNumber::Kind::kExact: {
      // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "/" + std::string.
      std::string out = integer_string(n.numerator);
      if (n.denominator != 1) out.append("/").append(integer_string(n.denominator));
      return out;
    }
    case MathNumber::Kind::kApprox: {
      char buffer[40];
      std::snprintf(buffer, sizeof(buffer), "~%.10g", n.approx);
      return buffer;
    }
    case MathNumber::Kind::kInfinite:
      return n.approx > 0 ? "inf" : "-inf";
  }
  return "?";
}

// Whether every item of `a` equals one of `b`.
bool all_found(const std::vector<MathAnswer>& a, const std::vector<MathAnswer>& b, double relative_tolerance) {
  for (const MathAnswer& x : a) {
    bool found = false;
    for (const MathAnswer& y : b) {
      if (math_answers_equal(x, y, relative_tolerance)) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace

std::optional<MathAnswer> parse_math_answer(std::string_view answer) {
  if (answer.size() > kMaxMathAnswerChars) return std::nullopt;
  std::vector<Token> tokens;
  if (!tokenize(answer, &tokens)) return std::nullopt;
  while (!tokens.empty() && tokens.back().type == TokenType::kPeriod) tokens.pop_back();
  if (tokens.size() == 1 && tokens[0].type == TokenType::kText) {
    // \text{5 apples} or \text{(C)}: its content is the answer (one level only).
    std::string_view content = tokens[0].text;
    if (!tokenize(content, &tokens)) return std::nullopt;
    while (!tokens.empty() && tokens.back().type == TokenType::kPeriod) tokens.pop_back();
  }
  if (tokens.empty()) return std::nullopt;
  if (std::optional<std::string> words = word_answer(tokens)) {
    MathAnswer text;
    text.kind = MathAnswer::Kind::kText;
    text.text = std::move(*words);
    return text;
  }
  std::optional<std::vector<size_t>> commas = top_level(tokens, 0, tokens.size(), TokenType::kComma);
  if (!commas) return std::nullopt;
  if (commas->empty()) return parse_element(tokens, 0, tokens.size());
  // "1, 2" without brackets: the answers to "find all x", a set.
  MathAnswer set;
  set.kind = MathAnswer::Kind::kSet;
  size_t begin = 0;
  commas->push_back(tokens.size());
  for (size_t comma : *commas) {
    std::optional<MathAnswer> item = parse_element(tokens, begin, comma);
    if (!item) return std::nullopt;
    set.items.push_back(std::move(*item));
    begin = comma + 1;
  }
  return set;
}

bool math_answers_equal(const MathAnswer& a, const MathAnswer& b, double relative_tolerance) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case MathAnswer::Kind::kNumber: {
      if (numbers_equal(a.number, b.number, relative_tolerance)) return true;
      if (a.percent == b.percent) return false;
      // p% also means p/100.
      const MathNumber& percentage = a.percent ? a.number : b.number;
      const MathNumber& other = a.percent ? b.number : a.number;
      std::optional<MathNumber> fraction = divide(percentage, *exact(100, 1));
      return fraction && numbers_equal(*fraction, other, relative_tolerance);
    }
    case MathAnswer::Kind::kSequence:
      if (a.open != b.open || a.close != b.close || a.items.size() != b.items.size()) return false;
      for (size_t k = 0; k < a.items.size(); ++k) {
        if (!math_answers_equal(a.items[k], b.items[k], relative_tolerance)) return false;
      }
      return true;
    case MathAnswer::Kind::kSet:
    case MathAnswer::Kind::kUnion:
      return all_found(a.items, b.items, relative_tolerance) && all_found(b.items, a.items, relative_tolerance);
    case MathAnswer::Kind::kText:
      return a.text == b.text;
  }
  return false;
}

std::string describe_math_answer(const MathAnswer& answer) {
  auto join = [](const std::vector<MathAnswer>& items, std::string_view separator) {
    std::string out;
    for (size_t k = 0; k < items.size(); ++k) {
      if (k > 0) out += separator;
      out += describe_math_answer(items[k]);
    }
    return out;
  };
  switch (answer.kind) {
    case MathAnswer::Kind::kNumber:
      return number_string(answer.number) + (answer.percent ? "%" : "");
    case MathAnswer::Kind::kSequence:
      return std::string(1, answer.open).append(join(answer.items, ", ")).append(1, answer.close);
    case MathAnswer::Kind::kSet:
      return std::string("{").append(join(answer.items, ", ")).append("}");
    case MathAnswer::Kind::kUnion:
      return join(answer.items, " U ");
    case MathAnswer::Kind::kText:
      return "'" + answer.text + "'";
  }
  return "?";
}

}  // namespace cohort::reward
