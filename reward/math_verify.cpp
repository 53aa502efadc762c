// Reference extraction for GSM8K and MATH, answer extraction from completions, and the
// math_verify reward that joins them to math_answer's parser. Every scan is linear in the text;
// the parser refuses anything over its bounds before doing work proportional to it.
#include "reward/math_verify.h"

#include <stdexcept>

#include "reward/answer.h"
#include "reward/options.h"
#include "reward/text.h"

namespace cohort::reward {
namespace {

// The content of the last "\boxed{" or "\fbox{" whose brace closes. Candidates are tried from the
// last one back; one that has not closed by the start of the next one never closes (the later
// one's brace never does), so each scan stops there. Each pattern's last position is cached and
// searched again only below the candidate just given up, so the total work is linear.
std::optional<std::string_view> last_braced_box(std::string_view text) {
  constexpr std::string_view kPatterns[] = {"\\boxed{", "\\fbox{"};
  size_t found[2] = {text.rfind(kPatterns[0]), text.rfind(kPatterns[1])};
  size_t limit = text.size();
  while (true) {
    int which = -1;
    for (int p = 0; p < 2; ++p) {
      if (found[p] != std::string_view::npos && (which < 0 || found[p] > found[which])) which = p;
    }
    if (which < 0) return std::nullopt;
    size_t pos = found[which];
    size_t begin = pos + kPatterns[which].size();
    int64_t depth = 1;
    for (size_t i = begin; i < limit; ++i) {
      if (text[i] == '{') {
        ++depth;
      } else if (text[i] == '}' && --depth == 0) {
        return text.substr(begin, i - begin);
      }
    }
    limit = pos;
    found[which] = pos == 0 ? std::string_view::npos : text.rfind(kPatterns[which], pos - 1);
  }
}

// "\boxed 5$" (a few MATH solutions): up to the next '$' or line end. "\boxed {5}" is the braced
// form with a space. Only the last such candidate is looked at.
std::optional<std::string_view> last_spaced_box(std::string_view text) {
  constexpr std::string_view kPattern = "\\boxed ";
  size_t pos = text.rfind(kPattern);
  if (pos == std::string_view::npos) return std::nullopt;
  size_t begin = pos + kPattern.size();
  while (begin < text.size() && is_ascii_space(text[begin])) ++begin;
  if (begin < text.size() && text[begin] == '{') {
    int64_t depth = 0;
    for (size_t i = begin; i < text.size(); ++i) {
      if (text[i] == '{') {
        ++depth;
      } else if (text[i] == '}' && --depth == 0) {
        return text.substr(begin + 1, i - begin - 1);
      }
    }
    return std::nullopt;
  }
  size_t end = text.find_first_of("$\n", begin);
  return text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
}

std::optional<std::string> last_box(std::string_view text) {
  std::optional<std::string_view> content = last_braced_box(text);
  if (!content || trim(*content).empty()) content = last_spaced_box(text);
  if (!content || trim(*content).empty()) return std::nullopt;
  return std::string(trim(*content));
}

// The content of the last $...$, $$...$$, \(...\) or \[...\] ("\$" is a dollar sign, not a
// delimiter); the span whose closing delimiter comes last wins. A few reverse searches: linear.
std::optional<std::string_view> last_latex(std::string_view text) {
  auto unescaped_dollar_before = [&](size_t end) -> size_t {  // the last '$' in text[0, end)
    while (end > 0) {
      size_t pos = text.rfind('$', end - 1);
      if (pos == std::string_view::npos) return pos;
      if (pos == 0 || text[pos - 1] != '\\') return pos;
      end = pos - 1;
    }
    return std::string_view::npos;
  };
  std::optional<std::string_view> best;
  size_t best_close = 0;
  size_t close = unescaped_dollar_before(text.size());
  if (close != std::string_view::npos) {
    bool display = close > 0 && text[close - 1] == '$';
    size_t content_end = display ? close - 1 : close;
    size_t open = unescaped_dollar_before(content_end);
    if (display && open != std::string_view::npos) {
      open = open > 0 && text[open - 1] == '$' ? open : std::string_view::npos;
    }
    if (open != std::string_view::npos) {
      best = text.substr(open + 1, content_end - open - 1);
      best_close = close + 1;
    }
  }
  for (auto [opener, closer] : {std::pair<std::string_view, std::string_view>{"\\(", "\\)"}, {"\\[", "\\]"}}) {
    size_t c = text.rfind(closer);
    if (c == std::string_view::npos || c < opener.size() || (best && c + closer.size() <= best_close)) continue;
    size_t o = text.rfind(opener, c - opener.size());
    if (o == std::string_view::npos) continue;
    best = text.substr(o + opener.size(), c - o - opener.size());
    best_close = c + closer.size();
  }
  return best;
}

}  // namespace

std::optional<std::string> gsm8k_reference(std::string_view answer_field) {
  return extract_answer(answer_field, {"hash"});
}

std::optional<std::string> math_reference(std::string_view solution) {
  return last_box(solution);
}

const std::vector<std::string>& math_extract_methods() {
  static const std::vector<std::string> methods = {"boxed", "answer_tag", "hash", "last_latex", "last_number", "whole"};
  return methods;
}

std::optional<std::string> extract_math_answer(std::string_view text, const std::vector<std::string>& methods) {
  for (const std::string& method : methods) {
    std::optional<std::string> found;
    if (method == "boxed") {
      found = last_box(text);
    } else if (method == "last_latex") {
      std::optional<std::string_view> content = last_latex(text);
      if (content && !trim(*content).empty()) found = std::string(trim(*content));
    } else if (method == "answer_tag" || method == "hash" || method == "last_number" || method == "whole") {
      found = extract_answer(text, {method});
    } else {
      throw std::invalid_argument("unknown math answer extraction method '" + method + "'");
    }
    if (found) return found;
  }
  return std::nullopt;
}

MathVerifyReward::MathVerifyReward(const nlohmann::json& options) {
  OptionReader reader(
      "math_verify", options,
      {"answer_field", "reference_format", "extract", "correct", "wrong", "relative_tolerance", "max_chars"});
  answer_field_ = reader.string("answer_field", "answer");
  reference_format_ = reader.string("reference_format", "answer");
  extract_ = reader.strings("extract", {"boxed", "answer_tag", "hash", "last_number"});
  correct_ = reader.number("correct", 1.0);
  wrong_ = reader.number("wrong", 0.0);
  relative_tolerance_ = reader.number("relative_tolerance", 1e-9);
  max_chars_ = static_cast<size_t>(reader.integer("max_chars", 1 << 20, 1, int64_t{1} << 40));
  if (reference_format_ != "answer" && reference_format_ != "gsm8k" && reference_format_ != "math") {
    reader.fail("option 'reference_format' must be \"answer\", \"gsm8k\" or \"math\", got \"" + reference_format_ +
                "\"");
  }
  if (!(relative_tolerance_ >= 0 && relative_tolerance_ < 1)) {
    reader.fail("option 'relative_tolerance' must be in [0, 1)");
  }
  if (extract_.empty()) reader.fail("option 'extract' must name at least one method");
  for (const std::string& method : extract_) {
    bool known = false;
    for (const std::string& m : math_extract_methods()) known = known || m == method;
    if (!known) {
      reader.fail("option 'extract': unknown method '" + method +
                  "'; known methods: boxed, answer_tag, hash, last_latex, last_number, whole");
    }
  }
}

MathVerdict MathVerifyReward::verdict(std::string_view completion, const std::vector<MathAnswer>& references) const {
  std::optional<std::string> extracted = extract_math_answer(tail(completion, max_chars_), extract_);
  if (!extracted) return MathVerdict::kWrong;
  std::optional<MathAnswer> answer = parse_math_answer(*extracted);
  if (!answer) return MathVerdict::kWrong;
  for (const MathAnswer& reference : references) {
    if (math_answers_equal(reference, *answer, relative_tolerance_)) return MathVerdict::kCorrect;
  }
  return MathVerdict::kWrong;
}

MathVerdict MathVerifyReward::verdict(std::string_view completion, std::string_view reference) const {
  std::optional<MathAnswer> parsed = parse_math_answer(reference);
  if (!parsed) return MathVerdict::kNoScore;
  return verdict(completion, std::vector<MathAnswer>{std::move(*parsed)});
}

std::optional<double> MathVerifyReward::score(const RewardInput& in) const {
  // Messages name the field but never the sample, so RewardSet counts each kind of error once.
  if (!in.metadata.is_object()) throw std::runtime_error("metadata is not a JSON object");
  auto it = in.metadata.find(answer_field_);
  if (it == in.metadata.end()) throw std::runtime_error("metadata has no field '" + answer_field_ + "'");
  std::vector<std::string> texts;
  if (reference_format_ == "answer") {
    auto add = [&](const nlohmann::json& value) {
      if (value.is_string()) {
        texts.push_back(value.get<std::string>());
      } else if (value.is_number()) {
        texts.push_back(value.dump());
      } else {
        throw std::runtime_error("metadata field '" + answer_field_ +
                                 "' must be a string, a number or a non-empty array of them");
      }
    };
    if (it->is_array()) {
      for (const auto& item : *it) add(item);
    } else {
      add(*it);
    }
    if (texts.empty()) throw std::runtime_error("metadata field '" + answer_field_ + "' is an empty array");
  } else {
    if (!it->is_string()) throw std::runtime_error("metadata field '" + answer_field_ + "' must be a string");
    const std::string& field = it->get_ref<const std::string&>();
    std::optional<std::string> reference =
        reference_format_ == "gsm8k" ? gsm8k_reference(field) : math_reference(field);
    if (!reference) {
      throw std::runtime_error("metadata field '" + answer_field_ + "' has no " +
                               (reference_format_ == "gsm8k" ? "'#### answer'" : "\\boxed{} answer"));
    }
    texts.push_back(std::move(*reference));
  }
  std::vector<MathAnswer> references;
  for (const std::string& text : texts) {
    std::optional<MathAnswer> parsed = parse_math_answer(text);
    if (!parsed) throw std::runtime_error("reference in metadata field '" + answer_field_ + "' is not a math answer");
    references.push_back(std::move(*parsed));
  }
  return verdict(in.completion, references) == MathVerdict::kCorrect ? correct_ : wrong_;
}

}  // namespace cohort::reward
