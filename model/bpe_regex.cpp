// PCRE2 behind the pre-tokenizer: compile once (UTF, UCP, JIT), match with per-thread match data
// and JIT stack, and translate the few Oniguruma escapes that PCRE2 reads differently.

#include "model/bpe_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "kernels/error.h"

namespace cohort::bpe {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// One per thread, shared by every Regex: the match data (only the overall match is read) and a
// JIT stack large enough for backtracking over long runs of one class (the default 32 KiB is not).
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
    COHORT_REQUIRE(data && context && stack, "tokenizer regex: out of memory for PCRE2 match data");
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;
};

MatchScratch& match_scratch() {
  thread_local MatchScratch scratch;
  return scratch;
}

// Letters and numbers of Unicode 15.0 to 16.0, which Hugging Face's Oniguruma knows and PCRE2 10.42
// (Unicode 14) does not: CJK Extensions H and I, Garay, Kawi, Tulu-Tigalari and others, and a few
// additions to old blocks (U+1C89, U+A7CB). Adding them to \\p{L} and \\p{N} is harmless where
// PCRE2 already has them. Found by testing every code point against tokenizers 0.21.
constexpr std::string_view kNewLetters =
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}\\x{113D3}"
    "\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"
    "\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}\\x{16D40}-\\x{16D6C}\\x{18CFF}"
    "\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}"
    "\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}";
constexpr std::string_view kNewNumbers =
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}";

}  // namespace

std::string onig_to_pcre2(std::string_view pattern, std::string_view what) {
  static constexpr std::string_view kWord = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
  static constexpr std::string_view kHex = "0-9a-fA-F";
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  size_t class_start = 0;  // index in pattern just after '[' or '[^'
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      switch (e) {
        case 's':
          out += "\\p{White_Space}";
          break;
        case 'S':
          out += "\\P{White_Space}";
          break;
        case 'w':
          if (in_class) {
            out += kWord;
          } else {
            out += '[';
            out += kWord;
            out += ']';
          }
          break;
        case 'W':
          if (in_class) {
            out += "\\W";
          } else {
            out += "[^";
            out += kWord;
            out += ']';
          }
          break;
        case 'h':
          if (in_class) {
            out += kHex;
          } else {
            out += '[';
            out += kHex;
            out += ']';
          }
          break;
        case 'H':
          if (in_class) {
            out += "\\H";
          } else {
            out += "[^";
            out += kHex;
            out += ']';
          }
          break;
        case 'p':
        case 'P': {
          // \p{L} and \p{N} with the newer letters and numbers; \P{..} inside a class stays as it is.
          const std::string_view rest = pattern.substr(i + 1);
          const bool letter = rest.starts_with("{L}"), number = rest.starts_with("{N}");
          if ((letter || number) && !(in_class && e == 'P')) {
            const std::string_view extra = letter ? kNewLetters : kNewNumbers;
            if (!in_class) out += e == 'p' ? "[" : "[^";
            out += letter ? "\\p{L}" : "\\p{N}";
            out += extra;
            if (!in_class) out += ']';
            i += 3;
          } else {
            out += '\\';
            out += e;
          }
          break;
        }
        default:
          out += '\\';
          out += e;
      }
      continue;
    }
    if (!in_class) {
      out += c;
      if (c == '[') {
        in_class = true;
        if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
        class_start = i + 1;
      }
      continue;
    }
    // Inside a class: ']' first is a literal; '[:name:]' is a POSIX class; any other '[' opens
    // a nested class in Oniguruma, which PCRE2 would read as a literal bracket.
    if (c == ']' && i != class_start) {
      in_class = false;
    } else if (c == '[') {
      const size_t close = pattern.find(":]", i + 2);
      COHORT_REQUIRE(
          i + 1 < pattern.size() && pattern[i + 1] == ':' && close != std::string_view::npos,
          what << ": regex uses a nested character class (Oniguruma-only syntax cohort cannot translate): " << pattern);
      out.append(pattern.substr(i, close + 2 - i));
      i = close + 1;
      continue;
    } else if (c == '&' && i + 1 < pattern.size() && pattern[i + 1] == '&') {
      COHORT_REQUIRE(
          false,
          what << ": regex uses class intersection && (Oniguruma-only syntax cohort cannot translate): " << pattern);
    }
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern, bool literal, std::string_view what) : pattern_(pattern) {
  const std::string compiled = literal ? std::string(pattern) : onig_to_pcre2(pattern, what);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_LITERAL takes no UCP (nothing in a literal depends on it). The pattern is checked as UTF-8 here;
  // subjects are not (encode() repairs them first).
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  code_ =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options, &error, &offset, nullptr);
  COHORT_REQUIRE(code_ != nullptr, what << ": PCRE2 rejects the regex (" << pcre2_message(error) << " at offset "
                                        << offset << "): " << pattern);
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  pcre2_code_free(code_);
}

Regex::Regex(Regex&& other) noexcept : code_(other.code_), jit_(other.jit_), pattern_(std::move(other.pattern_)) {
  other.code_ = nullptr;
}

Regex& Regex::operator=(Regex&& other) noexcept {
  if (this != &other) {
    pcre2_code_free(code_);
    code_ = other.code_;
    jit_ = other.jit_;
    pattern_ = std::move(other.pattern_);
    other.code_ = nullptr;
  }
  return *this;
}

bool Regex::find(std::string_view subject, size_t from, size_t* start, size_t* end) const {
  MatchScratch& scratch = match_scratch();
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const int rc =
      jit_ ? pcre2_jit_match(code_, text, subject.size(), from, 0, scratch.data, scratch.context)
           : pcre2_match(code_, text, subject.size(), from, PCRE2_NO_UTF_CHECK, scratch.data, scratch.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  COHORT_REQUIRE(rc >= 0, "tokenizer regex: PCRE2 match failed (" << pcre2_message(rc) << ") on " << subject.size()
                                                                  << " bytes of text for the pattern " << pattern_);
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
  *start = ovector[0];
  *end = ovector[1];
  return true;
}

}  // namespace cohort::bpe
