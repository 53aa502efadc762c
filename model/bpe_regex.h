// The pre-tokenizer's regular expressions: PCRE2 with UTF, Unicode properties and JIT, iterated the
// way Hugging Face tokenizers iterates its Oniguruma regexes, so that split points agree.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace cohort::bpe {

// Rewrites the Oniguruma (Ruby syntax) escapes whose meaning PCRE2 does not share, so that a
// tokenizer.json regex splits text as Hugging Face splits it:
//   \s, \S  -> \p{White_Space}, \P{White_Space}  (PCRE2's \s also takes U+180E; Oniguruma's does not)
//   \w      -> letters, marks, decimal digits and connectors (Oniguruma's Unicode \w; PCRE2 10.42
//              takes all numbers and no marks); \W likewise outside a character class
//   \h, \H  -> hexadecimal digits and their complement outside a class (PCRE2: horizontal space)
//   \p{L}, \p{N} (and \P outside a class) -> with the letters and numbers of Unicode 15 and 16
// Throws cohort::Error (naming `what` and the pattern) for Oniguruma-only syntax PCRE2 would read
// differently: nested character classes and class intersection (&&).
std::string onig_to_pcre2(std::string_view pattern, std::string_view what);

class Regex {
 public:
  // `literal`: the pattern is a plain string (a Split's {"String": ...}), matched as is.
  // Throws cohort::Error naming `what`, PCRE2's message, the offset and the pattern when PCRE2
  // rejects it. Oniguruma patterns go through onig_to_pcre2 first.
  Regex(std::string_view pattern, bool literal, std::string_view what);
  ~Regex();
  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(start, end) for every match in subject, in order, the way Oniguruma's
  // find_iter does: the search resumes where the last match ended, and an empty match right where
  // the previous match ended is skipped by one character. Precondition: subject is valid UTF-8.
  template <class OnMatch>
  void for_each_match(std::string_view subject, OnMatch&& on_match) const {
    size_t last_end = 0;
    size_t last_match_end = std::string_view::npos;
    size_t start = 0, end = 0;
    while (last_end <= subject.size() && find(subject, last_end, &start, &end)) {
      if (start == end && end == last_match_end) {
        last_end += last_end < subject.size() ? utf8_length(subject[last_end]) : 1;
        continue;
      }
      last_end = end;
      last_match_end = end;
      on_match(start, end);
    }
  }

  // The first match at or after `from`; false when there is none. Throws cohort::Error when PCRE2
  // fails (match limit, JIT stack), naming the pattern.
  bool find(std::string_view subject, size_t from, size_t* start, size_t* end) const;

  const std::string& pattern() const { return pattern_; }

 private:
  static size_t utf8_length(char lead) {
    const auto b = static_cast<unsigned char>(lead);
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  }

  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  std::string pattern_;
};

}  // namespace cohort::bpe
