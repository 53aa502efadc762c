// The tree-walking interpreter behind ChatTemplate::render. Each construct mirrors what
// jinja2 compiles it to in Python; the comments name the jinja2 or CPython behaviour a
// branch reproduces where it is not obvious.
#include "model/jinja_interpreter.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <optional>

#include "kernels/error.h"
#include "model/jinja_special_casing.h"

namespace cohort::jinja {

namespace {

// A failure located at a template line; EvalError becomes one at the innermost expression.
struct RenderError {
  std::string message;
  int line;
};

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      for (const auto& [k, v] : f->vars) {
        if (k == name) return &v;
      }
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [k, v] : vars) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};
using FramePtr = std::shared_ptr<Frame>;

FramePtr child_frame(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

Value str_value(std::string s) {
  return Value::string(std::move(s));
}

[[noreturn]] void fail_undefined(const Value& v) {
  eval_fail(v.undefined_hint().empty() ? "an undefined value was used" : v.undefined_hint());
}

void require_defined(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
}

// ---- argument binding for builtins (Python's positional-or-keyword parameters) ----

std::vector<std::optional<Value>> bind_args(const Arguments& args, const std::vector<std::string>& names,
                                            const std::string& fname) {
  if (args.positional.size() > names.size()) {
    eval_fail(fname + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
              std::to_string(args.positional.size()) + " given)");
  }
  std::vector<std::optional<Value>> out(names.size());
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (const auto& [k, v] : args.keyword) {
    auto it = std::find(names.begin(), names.end(), k);
    if (it == names.end()) eval_fail(fname + "() got an unexpected keyword argument '" + k + "'");
    auto& slot = out[static_cast<size_t>(it - names.begin())];
    if (slot) eval_fail(fname + "() got multiple values for argument '" + k + "'");
    slot = v;
  }
  return out;
}

const std::string& need_string(const Value& v, const std::string& what) {
  require_defined(v);
  if (!v.is_string()) eval_fail(what + " must be a string, not " + type_name(v));
  return v.as_string();
}

int64_t need_int(const Value& v, const std::string& what) {
  require_defined(v);
  if (v.kind() != Value::Kind::Int && v.kind() != Value::Kind::Bool) {
    eval_fail(what + " must be an integer, not " + type_name(v));
  }
  return v.as_int();
}

// ---- Python str methods over code points ----

using U32 = std::u32string;

bool in_chars(char32_t c, const std::optional<U32>& chars) {
  return chars ? chars->find(c) != U32::npos : py_isspace(c);
}

std::string py_strip(const std::string& s, const std::optional<Value>& chars_arg, bool left, bool right) {
  std::optional<U32> chars;
  if (chars_arg && !chars_arg->is_none()) chars = utf8_decode(need_string(*chars_arg, "strip argument"));
  U32 cps = utf8_decode(s);
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && in_chars(cps[b], chars)) ++b;
  }
  if (right) {
    while (e > b && in_chars(cps[e - 1], chars)) --e;
  }
  return utf8_encode(cps.substr(b, e - b));
}

std::vector<Value> py_split(const std::string& s, const std::optional<Value>& sep_arg, int64_t maxsplit,
                            bool from_right) {
  std::vector<std::string> parts;
  if (!sep_arg || sep_arg->is_none()) {  // runs of whitespace; no empty strings
    U32 cps = utf8_decode(s);
    if (from_right) std::reverse(cps.begin(), cps.end());
    size_t i = 0;
    while (true) {
      while (i < cps.size() && py_isspace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        // The remainder keeps its whitespace on the far side ('a b '.split(None, 1) == ['a', 'b ']).
        U32 rest = cps.substr(i);
        if (from_right) std::reverse(rest.begin(), rest.end());
        parts.push_back(utf8_encode(rest));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !py_isspace(cps[j])) ++j;
      U32 word = cps.substr(i, j - i);
      if (from_right) std::reverse(word.begin(), word.end());
      parts.push_back(utf8_encode(word));
      i = j;
    }
    if (from_right) std::reverse(parts.begin(), parts.end());
  } else {
    const std::string& sep = need_string(*sep_arg, "split separator");
    if (sep.empty()) eval_fail("empty separator");
    if (!from_right) {
      size_t start = 0;
      while (true) {
        const size_t at = s.find(sep, start);
        if (at == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit)) {
          parts.push_back(s.substr(start));
          break;
        }
        parts.push_back(s.substr(start, at - start));
        start = at + sep.size();
      }
    } else {
      size_t end = s.size();
      while (true) {
        const size_t at = end >= sep.size() ? s.rfind(sep, end - sep.size()) : std::string::npos;
        if (at == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit)) {
          parts.push_back(s.substr(0, end));
          break;
        }
        parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
        end = at;
      }
      std::reverse(parts.begin(), parts.end());
    }
  }
  std::vector<Value> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.push_back(str_value(std::move(p)));
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count,
                       const Budget& budget) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {  // Python inserts `repl` before every character and at the end
    const U32 cps = utf8_decode(s);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i < cps.size()) utf8_append(out, cps[i]);
      budget.check_string(out.size());
    }
    return out;
  }
  size_t start = 0;
  while (true) {
    const size_t at = s.find(old, start);
    if (at == std::string::npos || (count >= 0 && done >= count)) break;
    out.append(s, start, at - start);
    out += repl;
    budget.check_string(out.size());
    start = at + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  budget.check_string(out.size());
  return out;
}

char32_t to_upper(char32_t c) {
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_lower(char32_t c) {
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_title(char32_t c) {
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}

bool category_in(char32_t c, std::initializer_list<utf8proc_category_t> cats) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return std::find(cats.begin(), cats.end(), cat) != cats.end();
}

// Python's _PyUnicode_IsCased and _PyUnicode_IsCaseIgnorable, from categories and mappings.
bool is_cased(char32_t c) {
  return category_in(c, {UTF8PROC_CATEGORY_LU, UTF8PROC_CATEGORY_LL, UTF8PROC_CATEGORY_LT}) || to_upper(c) != c ||
         to_lower(c) != c;
}
bool is_case_ignorable(char32_t c) {
  static constexpr char32_t kMidLetter[] = {0x27,   0x2E,   0x3A,   0xB7,   0x5F4,  0x2018, 0x2019, 0x2024,
                                            0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
  return std::find(std::begin(kMidLetter), std::end(kMidLetter), c) != std::end(kMidLetter) ||
         category_in(c, {UTF8PROC_CATEGORY_MN, UTF8PROC_CATEGORY_ME, UTF8PROC_CATEGORY_CF, UTF8PROC_CATEGORY_LM,
                         UTF8PROC_CATEGORY_SK});
}

const SpecialCasing* special_casing(char32_t c) {
  const auto* it = std::lower_bound(std::begin(kSpecialCasing), std::end(kSpecialCasing), c,
                                    [](const SpecialCasing& s, char32_t x) { return s.code_point < x; });
  return it != std::end(kSpecialCasing) && it->code_point == c ? it : nullptr;
}

void append_upper(U32& out, char32_t c) {
  if (const SpecialCasing* s = special_casing(c)) {
    out += s->upper;
  } else {
    out.push_back(to_upper(c));
  }
}

void append_title(U32& out, char32_t c) {
  if (const SpecialCasing* s = special_casing(c)) {
    out += s->title;
  } else {
    out.push_back(to_title(c));
  }
}

// CPython's lower_ucs4: U+0130 lower-cases to two code points, and a capital sigma ending a
// word becomes the final sigma.
void append_lower(U32& out, const U32& cps, size_t i) {
  const char32_t c = cps[i];
  if (c == 0x130) {
    out += U"i\u0307";
    return;
  }
  if (c != 0x3A3) {
    out.push_back(to_lower(c));
    return;
  }
  ptrdiff_t j = static_cast<ptrdiff_t>(i) - 1;
  while (j >= 0 && is_case_ignorable(cps[static_cast<size_t>(j)])) --j;
  bool final_sigma = j >= 0 && is_cased(cps[static_cast<size_t>(j)]);
  if (final_sigma) {
    size_t k = i + 1;
    while (k < cps.size() && is_case_ignorable(cps[k])) ++k;
    final_sigma = k == cps.size() || !is_cased(cps[k]);
  }
  out.push_back(final_sigma ? 0x3C2 : 0x3C3);
}

std::string py_upper(const std::string& s) {
  U32 out;
  for (char32_t c : utf8_decode(s)) append_upper(out, c);
  return utf8_encode(out);
}

std::string py_lower(const std::string& s) {
  const U32 cps = utf8_decode(s);
  U32 out;
  for (size_t i = 0; i < cps.size(); ++i) append_lower(out, cps, i);
  return utf8_encode(out);
}

std::string py_title(const std::string& s) {
  const U32 cps = utf8_decode(s);
  U32 out;
  bool previous_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    if (previous_cased) {
      append_lower(out, cps, i);
    } else {
      append_title(out, c);
    }
    previous_cased = is_cased(c);
  }
  return utf8_encode(out);
}

// jinja2's title filter (not str.title): each run split off by [-\s({\[<]+ gets its first
// character upper-cased and the rest lower-cased.
std::string jinja_title(const std::string& s) {
  const U32 cps = utf8_decode(s);
  auto is_separator = [](char32_t c) {
    return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  };
  U32 out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    const bool sep = is_separator(cps[i]);
    while (j < cps.size() && is_separator(cps[j]) == sep) ++j;
    const U32 rest = cps.substr(i + 1, j - i - 1);
    append_upper(out, cps[i]);
    for (size_t k = 0; k < rest.size(); ++k) append_lower(out, rest, k);
    i = j;
  }
  return utf8_encode(out);
}

std::string py_capitalize(const std::string& s) {
  const U32 cps = utf8_decode(s);
  U32 out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      append_title(out, cps[i]);
    } else {
      append_lower(out, cps, i);
    }
  }
  return utf8_encode(out);
}

bool is_alpha(char32_t c) {
  return category_in(c, {UTF8PROC_CATEGORY_LU, UTF8PROC_CATEGORY_LL, UTF8PROC_CATEGORY_LT, UTF8PROC_CATEGORY_LM,
                         UTF8PROC_CATEGORY_LO});
}
bool is_digit(char32_t c) {
  return category_in(c, {UTF8PROC_CATEGORY_ND});
}

template <typename Pred>
bool all_of_nonempty(const std::string& s, Pred pred) {
  const U32 cps = utf8_decode(s);
  return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred);
}

// str.isupper() / str.islower(): some character of that case and none of the other.
bool py_case_check(const std::string& s, bool upper) {
  bool found = false;
  for (char32_t c : utf8_decode(s)) {
    const bool is_lower = to_upper(c) != c && to_lower(c) == c;
    const bool is_upper = to_lower(c) != c && to_upper(c) == c;
    if (upper ? is_lower : is_upper) return false;
    found = found || (upper ? is_upper : is_lower);
  }
  return found;
}

int64_t cp_index_of_byte(const std::string& s, size_t byte_pos) {
  int64_t n = 0;
  for (size_t i = 0; i < byte_pos; ++i) n += (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
  return n;
}

// Python's slice semantics (sequence.indices) for length n.
std::vector<int64_t> slice_indices(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop,
                                   std::optional<int64_t> step_opt) {
  const int64_t step = step_opt.value_or(1);
  if (step == 0) eval_fail("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt, int64_t lo, int64_t hi) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) x += n;
    return std::clamp(x, lo, hi);
  };
  int64_t b, e;
  if (step > 0) {
    b = clamp(start, 0, 0, n);
    e = clamp(stop, n, 0, n);
  } else {
    b = clamp(start, n - 1, -1, n - 1);
    e = clamp(stop, -1, -1, n - 1);
  }
  std::vector<int64_t> idx;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) idx.push_back(i);
  return idx;
}

int64_t checked(bool overflow, int64_t value) {
  if (overflow) eval_fail("integer overflow (Python integers are unbounded, cohort's are 64-bit)");
  return value;
}

// CPython's float_divmod: returns (floordiv, mod).
std::pair<double, double> float_divmod(double vx, double wx) {
  if (wx == 0) eval_fail("float division by zero");
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  return {floordiv, mod};
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// Python str.splitlines() boundaries.
bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

std::vector<std::string> py_splitlines(const std::string& s) {
  const U32 cps = utf8_decode(s);
  std::vector<std::string> lines;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    while (j < cps.size() && !is_line_break(cps[j])) ++j;
    lines.push_back(utf8_encode(cps.substr(i, j - i)));
    if (j < cps.size() && cps[j] == '\r' && j + 1 < cps.size() && cps[j + 1] == '\n') ++j;
    i = j + 1;
  }
  return lines;
}

// Python's float(str): optional whitespace, a decimal or inf/nan literal.
std::optional<double> parse_py_float(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  if (s.find_first_of("xXpP") != std::string::npos) return std::nullopt;  // strtod's hex floats
  return d;
}

std::optional<int64_t> parse_py_int(const std::string& text, int64_t base) {
  std::string s = py_strip(text, std::nullopt, true, true);
  if (s.empty() || base < 2 || base > 36) return std::nullopt;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    i = 1;
  }
  if (i >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool prev_underscore = true;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (prev_underscore) return std::nullopt;
      prev_underscore = true;
      continue;
    }
    int d = std::isdigit(static_cast<unsigned char>(c))   ? c - '0'
            : std::isalpha(static_cast<unsigned char>(c)) ? std::tolower(c) - 'a' + 10
                                                          : 99;
    if (d >= base) return std::nullopt;
    bool o1 = __builtin_mul_overflow(v, base, &v);
    bool o2 = __builtin_add_overflow(v, d, &v);
    if (o1 || o2) eval_fail("integer overflow (Python integers are unbounded, cohort's are 64-bit)");
    prev_underscore = false;
  }
  if (prev_underscore) return std::nullopt;
  return neg ? -v : v;
}

// Python attribute names of str, dict and list that cohort does not implement: using one is
// refused rather than silently rendering as undefined.
const std::vector<std::string> kStrAttributes = {
    "casefold",  "center",       "encode",     "expandtabs",  "format",   "format_map", "index",     "isascii",
    "isdecimal", "isidentifier", "isnumeric",  "isprintable", "istitle",  "ljust",      "maketrans", "partition",
    "rindex",    "rjust",        "rpartition", "splitlines",  "swapcase", "translate",  "zfill"};
const std::vector<std::string> kMutatingDictMethods = {"clear", "pop", "popitem", "setdefault", "update"};
const std::vector<std::string> kMutatingListMethods = {"append", "clear",  "extend",  "insert",
                                                       "pop",    "remove", "reverse", "sort"};

bool contains(const std::vector<std::string>& names, const std::string& n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

class Interpreter {
 public:
  Interpreter(const Template& tmpl, const RenderLimits& limits) : tmpl_(tmpl), limits_(limits) {
    budget_.max_string_bytes = limits.max_output_bytes;
    budget_.max_list_items = limits.max_list_items;
    budget_.max_work_bytes = limits.max_work_bytes;
  }

  std::string run(const Dict& context) {
    auto globals = std::make_shared<Frame>();
    install_globals(*globals);
    auto root = child_frame(globals);
    for (const auto& [k, v] : context.items) root->set(k, v);
    std::string out;
    out_ = &out;
    exec_body(tmpl_.body, root);
    return out;
  }

  // A namespace can hold itself (`{% set ns.me = ns %}`): empty every one the render made, so
  // that no reference cycle outlives it.
  ~Interpreter() {
    for (const auto& weak : namespaces_) {
      if (auto ns = weak.lock()) {
        std::vector<std::pair<std::string, Value>> items;
        items.swap(ns->items);
      }
    }
  }

 private:
  enum class Flow { Normal, Break, Continue };

  // Statements and expressions nested through macro calls: bounded so that no template can
  // overflow the C++ stack (about 1 KB a level, measured with -fstack-usage).
  static constexpr int kMaxRenderDepth = 1000;
  struct DepthGuard {
    Interpreter& in;
    DepthGuard(Interpreter& interpreter, int line) : in(interpreter) {
      if (++in.depth_ > kMaxRenderDepth) {
        --in.depth_;
        throw RenderError{"template nested too deeply to render (" + std::to_string(kMaxRenderDepth) + " levels)",
                          line};
      }
    }
    ~DepthGuard() { --in.depth_; }
  };

  // ---- statements ----

  void step(int line) {
    if (++steps_ > limits_.max_steps) {
      throw RenderError{"render exceeded the limit of " + std::to_string(limits_.max_steps) + " steps", line};
    }
  }

  void emit(const std::string& s, int line) {
    try {
      budget_.charge(s.size());
    } catch (const EvalError& e) {
      throw RenderError{e.message, line};
    }
    out_->append(s);
    if (out_->size() > limits_.max_output_bytes) {
      throw RenderError{"output exceeds the limit of " + std::to_string(limits_.max_output_bytes) + " bytes", line};
    }
  }

  Flow exec_body(const Body& body, const FramePtr& frame) {
    for (const auto& s : body) {
      const Flow f = exec(*s, frame);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  template <typename F>
  auto at_line(int line, F&& f) {
    try {
      return f();
    } catch (const EvalError& e) {
      throw RenderError{e.message, line};
    }
  }

  std::string capture(const Body& body, const FramePtr& frame) {
    std::string buffer;
    std::string* saved = out_;
    out_ = &buffer;
    try {
      exec_body(body, frame);
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    return buffer;
  }

  void assign_targets(const Stmt& s, const FramePtr& frame, const Value& v) {
    if (!s.unpack) {
      frame->set(s.targets[0], v);
      return;
    }
    const std::vector<Value> items = at_line(s.line, [&] { return py_iterate(v); });
    if (items.size() != s.targets.size()) {
      throw RenderError{items.size() > s.targets.size()
                            ? "too many values to unpack (expected " + std::to_string(s.targets.size()) + ")"
                            : "not enough values to unpack (expected " + std::to_string(s.targets.size()) + ", got " +
                                  std::to_string(items.size()) + ")",
                        s.line};
    }
    for (size_t i = 0; i < items.size(); ++i) frame->set(s.targets[i], items[i]);
  }

  Flow exec(const Stmt& s, const FramePtr& frame) {
    DepthGuard guard(*this, s.line);
    step(s.line);
    switch (s.kind) {
      case Stmt::Kind::Data:
        emit(s.text, s.line);
        return Flow::Normal;
      case Stmt::Kind::Print: {
        const Value v = eval(*s.expr, frame);
        emit(at_line(s.line, [&] { return py_str(v); }), s.line);
        return Flow::Normal;
      }
      case Stmt::Kind::If:
        for (const auto& [cond, body] : s.branches) {
          if (truthy(eval(*cond, frame))) return exec_body(body, frame);
        }
        return exec_body(s.else_body, frame);
      case Stmt::Kind::For:
        return exec_for(s, frame);
      case Stmt::Kind::Set: {
        const Value v = eval(*s.expr, frame);
        if (!s.target_attr.empty()) {
          const Value* ns = frame->find(s.targets[0]);
          if (!ns || ns->kind() != Value::Kind::Namespace) {
            throw RenderError{"cannot assign attribute on non-namespace object", s.line};
          }
          ns->namespace_attrs().set(s.target_attr, v);
        } else {
          assign_targets(s, frame, v);
        }
        return Flow::Normal;
      }
      case Stmt::Kind::SetBlock:
        frame->set(s.targets[0], str_value(capture(s.body, frame)));
        return Flow::Normal;
      case Stmt::Kind::Macro:
        frame->set(s.name, make_macro(s, frame));
        return Flow::Normal;
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
      case Stmt::Kind::Generation:
        return exec_body(s.body, frame);
    }
    return Flow::Normal;
  }

  Flow exec_for(const Stmt& s, const FramePtr& frame) {
    const Value iterable = eval(*s.expr, frame);
    std::vector<Value> items = at_line(s.line, [&] {
      budget_.charge(Budget::cost(iterable));
      return py_iterate(iterable);
    });
    if (s.filter) {  // `for x in xs if cond`: the condition sees the target but no `loop`
      std::vector<Value> kept;
      for (const auto& item : items) {
        step(s.line);
        auto f = child_frame(frame);
        assign_targets(s, f, item);
        if (truthy(eval(*s.filter, f))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec_body(s.else_body, frame);
    auto shared_items = std::make_shared<const std::vector<Value>>(std::move(items));
    for (size_t i = 0; i < shared_items->size(); ++i) {
      step(s.line);
      // Each iteration is a fresh scope: what the body sets does not survive into the next.
      auto f = child_frame(frame);
      assign_targets(s, f, (*shared_items)[i]);
      auto state = std::make_shared<LoopState>();
      state->items = shared_items;
      state->index0 = i;
      f->set("loop", Value::loop(std::move(state)));
      if (exec_body(s.body, f) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value make_macro(const Stmt& s, const FramePtr& defining_frame) {
    auto c = std::make_shared<Callable>();
    c->name = s.name;
    const Stmt* macro = &s;
    // The frame that defined the macro holds the macro: a strong reference back would be a cycle.
    std::weak_ptr<Frame> scope = defining_frame;
    c->call = [this, macro, scope](Arguments& args) -> Value {
      const FramePtr defining_frame = scope.lock();
      if (!defining_frame) eval_fail("macro '" + macro->name + "' called after the scope that defined it ended");
      if (args.positional.size() > macro->params.size()) {
        eval_fail("macro '" + macro->name + "' takes not more than " + std::to_string(macro->params.size()) +
                  " argument(s)");
      }
      if (call_depth_ >= limits_.max_call_depth) {
        eval_fail("macro calls nested deeper than " + std::to_string(limits_.max_call_depth));
      }
      step(macro->line);
      auto f = child_frame(defining_frame);
      std::vector<bool> bound(macro->params.size(), false);
      for (size_t i = 0; i < args.positional.size(); ++i) {
        f->set(macro->params[i], args.positional[i]);
        bound[i] = true;
      }
      for (auto& [k, v] : args.keyword) {
        auto it = std::find(macro->params.begin(), macro->params.end(), k);
        if (it == macro->params.end()) eval_fail("macro '" + macro->name + "' takes no keyword argument '" + k + "'");
        const size_t i = static_cast<size_t>(it - macro->params.begin());
        if (bound[i]) eval_fail("macro '" + macro->name + "' got multiple values for argument '" + k + "'");
        f->set(k, v);
        bound[i] = true;
      }
      for (size_t i = 0; i < macro->params.size(); ++i) {
        if (bound[i]) continue;
        f->set(macro->params[i], macro->defaults[i]
                                     ? eval(*macro->defaults[i], f)
                                     : Value::undefined("parameter '" + macro->params[i] + "' was not provided"));
      }
      ++call_depth_;
      std::string body;
      try {
        body = capture(macro->body, f);
      } catch (...) {
        --call_depth_;
        throw;
      }
      --call_depth_;
      return str_value(std::move(body));
    };
    return Value::callable(std::move(c));
  }

  // ---- globals ----

  static Value builtin(std::string name, std::function<Value(Arguments&)> fn) {
    auto c = std::make_shared<Callable>();
    c->name = std::move(name);
    c->call = std::move(fn);
    return Value::callable(std::move(c));
  }

  void install_globals(Frame& g) {
    g.set("raise_exception", builtin("raise_exception", [](Arguments& a) -> Value {
            auto p = bind_args(a, {"message"}, "raise_exception");
            eval_fail("the template raised an exception: " + (p[0] ? py_str(*p[0]) : std::string()));
          }));
    g.set("strftime_now", builtin("strftime_now", [](Arguments& a) -> Value {
            auto p = bind_args(a, {"format"}, "strftime_now");
            if (!p[0]) eval_fail("strftime_now() missing the format argument");
            const std::string& fmt = need_string(*p[0], "strftime_now format");
            const std::time_t now = std::time(nullptr);
            std::tm local{};
            localtime_r(&now, &local);
            std::string buf(256 + fmt.size() * 8, '\0');
            const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &local);
            if (n == 0 && !fmt.empty()) eval_fail("strftime_now: format produced no output");
            buf.resize(n);
            return str_value(std::move(buf));
          }));
    g.set("namespace", builtin("namespace", [this](Arguments& a) -> Value {
            auto attrs = std::make_shared<Dict>();
            if (a.positional.size() > 1) eval_fail("namespace() takes at most one positional argument");
            if (!a.positional.empty()) {
              if (a.positional[0].kind() != Value::Kind::Dict) eval_fail("namespace() argument must be a dict");
              *attrs = a.positional[0].as_dict();
            }
            for (auto& [k, v] : a.keyword) attrs->set(k, v);
            namespaces_.push_back(attrs);
            return Value::namespace_object(std::move(attrs));
          }));
    g.set("dict", builtin("dict", [](Arguments& a) -> Value {
            auto d = std::make_shared<Dict>();
            if (a.positional.size() > 1) eval_fail("dict() takes at most one positional argument");
            if (!a.positional.empty()) {
              if (a.positional[0].kind() != Value::Kind::Dict) eval_fail("dict() argument must be a dict");
              *d = a.positional[0].as_dict();
            }
            for (auto& [k, v] : a.keyword) d->set(k, v);
            return Value::dict(std::move(d));
          }));
    g.set("range", builtin("range", [this](Arguments& a) -> Value {
            if (!a.keyword.empty()) eval_fail("range() takes no keyword arguments");
            if (a.positional.empty() || a.positional.size() > 3) eval_fail("range expected 1 to 3 arguments");
            int64_t start = 0, stop, stride = 1;
            if (a.positional.size() == 1) {
              stop = need_int(a.positional[0], "range() argument");
            } else {
              start = need_int(a.positional[0], "range() argument");
              stop = need_int(a.positional[1], "range() argument");
              if (a.positional.size() == 3) stride = need_int(a.positional[2], "range() argument");
            }
            if (stride == 0) eval_fail("range() arg 3 must not be zero");
            std::vector<Value> items;
            for (int64_t i = start; stride > 0 ? i < stop : i > stop; i += stride) {
              // jinja2.sandbox.MAX_RANGE
              if (items.size() >= 100000) {
                eval_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
              }
              items.push_back(Value::integer(i));
            }
            budget_.check_list(items.size());
            return Value::list(std::move(items));
          }));
  }

  // ---- expressions ----

  Value lookup(const std::string& name, const FramePtr& frame) const {
    if (const Value* v = frame->find(name)) return *v;
    if (name == "lipsum" || name == "cycler" || name == "joiner") {
      eval_fail("unsupported Jinja construct: the global function '" + name + "'");
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  Value eval(const Expr& e, const FramePtr& frame) {
    DepthGuard guard(*this, e.line);
    try {
      Value v = eval_node(e, frame);
      // Names, constants and lookups hand out existing values; everything else built its result.
      if (e.kind != Expr::Kind::Const && e.kind != Expr::Kind::Name && e.kind != Expr::Kind::Getattr &&
          e.kind != Expr::Kind::Getitem) {
        budget_.charge(Budget::cost(v));
      }
      return v;
    } catch (const EvalError& err) {
      throw RenderError{err.message, e.line};
    }
  }

  std::optional<Value> eval_optional(const ExprPtr& e, const FramePtr& frame) {
    if (!e) return std::nullopt;
    return eval(*e, frame);
  }

  Arguments eval_args(const Expr& e, const FramePtr& frame, size_t first) {
    Arguments a;
    for (size_t i = first; i < e.children.size(); ++i) a.positional.push_back(eval(*e.children[i], frame));
    for (const auto& [k, v] : e.keyword) a.keyword.emplace_back(k, eval(*v, frame));
    return a;
  }

  Value eval_node(const Expr& e, const FramePtr& frame) {
    switch (e.kind) {
      case Expr::Kind::Const:
        return e.constant;
      case Expr::Kind::Name:
        return lookup(e.name, frame);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        std::vector<Value> items;
        for (const auto& c : e.children) items.push_back(eval(*c, frame));
        return e.kind == Expr::Kind::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
      }
      case Expr::Kind::Dict: {
        auto d = std::make_shared<Dict>();
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value k = eval(*e.children[i], frame);
          if (!k.is_string()) eval_fail("unsupported Jinja construct: a dict key of type " + type_name(k));
          d->set(k.as_string(), eval(*e.children[i + 1], frame));
        }
        return Value::dict(std::move(d));
      }
      case Expr::Kind::Getattr:
        return get_attr(eval(*e.children[0], frame), e.name);
      case Expr::Kind::Getitem:
        return get_item(eval(*e.children[0], frame), eval(*e.children[1], frame));
      case Expr::Kind::Slice: {
        const Value obj = eval(*e.children[0], frame);
        auto bound = [&](size_t i) -> std::optional<int64_t> {
          const auto v = eval_optional(e.children[i], frame);
          if (!v || v->is_none()) return std::nullopt;
          return need_int(*v, "slice index");
        };
        return slice(obj, bound(1), bound(2), bound(3));
      }
      case Expr::Kind::Call: {
        const Value callee = eval(*e.children[0], frame);
        Arguments args = eval_args(e, frame, 1);
        return call(callee, args);
      }
      case Expr::Kind::Filter: {
        const Value operand = eval(*e.children[0], frame);
        Arguments args = eval_args(e, frame, 1);
        budget_.charge(Budget::cost(operand));
        return apply_filter(e.name, operand, args);
      }
      case Expr::Kind::Test: {
        const Value operand = eval(*e.children[0], frame);
        Arguments args = eval_args(e, frame, 1);
        const bool r = apply_test(e.name, operand, args);
        return Value::boolean(e.negated ? !r : r);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.children[0], frame);
        require_defined(v);
        if (v.kind() == Value::Kind::Float) return Value::floating(e.name == "-" ? -v.as_float() : v.as_float());
        if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Bool) {
          if (e.name == "+") return Value::integer(v.as_int());
          return Value::integer(checked(v.as_int() == INT64_MIN, -v.as_int()));
        }
        eval_fail("bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
      }
      case Expr::Kind::Binary:
        return binary(e.name, eval(*e.children[0], frame), eval(*e.children[1], frame));
      case Expr::Kind::Compare: {
        Value left = eval(*e.children[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.children[i + 1], frame);
          const std::string& op = e.ops[i];
          bool r;
          if (op == "==") {
            r = py_equal(left, right);
          } else if (op == "!=") {
            r = !py_equal(left, right);
          } else if (op == "in" || op == "notin") {
            budget_.charge(Budget::cost(right));
            r = py_contains(right, left) == (op == "in");
          } else {
            r = py_order(left, right, op);
          }
          if (!r) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::And: {
        Value left = eval(*e.children[0], frame);
        return truthy(left) ? eval(*e.children[1], frame) : left;
      }
      case Expr::Kind::Or: {
        Value left = eval(*e.children[0], frame);
        return truthy(left) ? left : eval(*e.children[1], frame);
      }
      case Expr::Kind::Not:
        return Value::boolean(!truthy(eval(*e.children[0], frame)));
      case Expr::Kind::CondExpr:
        if (truthy(eval(*e.children[1], frame))) return eval(*e.children[0], frame);
        if (e.children[2]) return eval(*e.children[2], frame);
        return Value::undefined("the inline if-expression evaluated to false and had no else");
    }
    eval_fail("unknown expression");
  }

  Value call(const Value& callee, Arguments& args) {
    if (callee.is_undefined()) fail_undefined(callee);
    if (callee.kind() != Value::Kind::Callable) eval_fail("'" + type_name(callee) + "' object is not callable");
    return callee.as_callable().call(args);
  }

  // ---- arithmetic (Python's operators) ----

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string s = py_str(a) + py_str(b);
      budget_.check_string(s.size());
      return str_value(std::move(s));
    }
    if (a.is_string() && op == "%") eval_fail("unsupported Jinja construct: '%' string formatting");
    require_defined(a);
    require_defined(b);
    const bool ints = (a.kind() == Value::Kind::Int || a.kind() == Value::Kind::Bool) &&
                      (b.kind() == Value::Kind::Int || b.kind() == Value::Kind::Bool);
    const bool nums = a.is_number() && b.is_number();
    auto unsupported = [&]() -> Value {
      eval_fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (op == "+") {
      if (ints) {
        int64_t r = 0;
        const bool overflow = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
        return Value::integer(checked(overflow, r));
      }
      if (nums) return Value::floating(a.as_float() + b.as_float());
      if (a.is_string()) {
        if (!b.is_string()) eval_fail("can only concatenate str (not \"" + type_name(b) + "\") to str");
        budget_.check_string(a.as_string().size() + b.as_string().size());
        return str_value(a.as_string() + b.as_string());
      }
      if (a.is_sequence_like()) {
        if (b.kind() != a.kind()) {
          eval_fail("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
        }
        budget_.check_list(a.as_list().size() + b.as_list().size());
        std::vector<Value> items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        return a.kind() == Value::Kind::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
      }
      return unsupported();
    }
    if (op == "-") {
      if (ints) {
        int64_t r = 0;
        const bool overflow = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
        return Value::integer(checked(overflow, r));
      }
      if (nums) return Value::floating(a.as_float() - b.as_float());
      return unsupported();
    }
    if (op == "*") {
      if (ints) {
        int64_t r = 0;
        const bool overflow = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
        return Value::integer(checked(overflow, r));
      }
      if (nums) return Value::floating(a.as_float() * b.as_float());
      const Value* seq = a.is_string() || a.is_sequence_like() ? &a : &b;
      const Value* count = seq == &a ? &b : &a;
      if ((seq->is_string() || seq->is_sequence_like()) &&
          (count->kind() == Value::Kind::Int || count->kind() == Value::Kind::Bool)) {
        const int64_t n = std::max<int64_t>(0, count->as_int());
        if (seq->is_string()) {
          const size_t size = seq->as_string().size();
          if (size && static_cast<uint64_t>(n) > budget_.max_string_bytes / size) budget_.check_string(SIZE_MAX);
          std::string s;
          for (int64_t i = 0; i < n; ++i) s += seq->as_string();
          return str_value(std::move(s));
        }
        const size_t size = seq->as_list().size();
        if (size && static_cast<uint64_t>(n) > budget_.max_list_items / size) budget_.check_list(SIZE_MAX);
        std::vector<Value> items;
        for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq->as_list().begin(), seq->as_list().end());
        return seq->kind() == Value::Kind::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
      }
      return unsupported();
    }
    if (op == "/") {
      if (!nums) return unsupported();
      if (b.as_float() == 0) eval_fail(ints ? "division by zero" : "float division by zero");
      return Value::floating(a.as_float() / b.as_float());
    }
    if (op == "//" || op == "%") {
      if (ints) {
        const int64_t x = a.as_int(), y = b.as_int();
        if (y == 0) eval_fail("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) checked(true, 0);
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          q -= 1;
          r += y;
        }
        return Value::integer(op == "//" ? q : r);
      }
      if (nums) {
        const auto [q, r] = float_divmod(a.as_float(), b.as_float());
        return Value::floating(op == "//" ? q : r);
      }
      return unsupported();
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        int64_t base = a.as_int(), exp = b.as_int(), r = 1;
        while (exp > 0) {
          if (exp & 1) checked(__builtin_mul_overflow(r, base, &r), 0);
          exp >>= 1;
          if (exp > 0) checked(__builtin_mul_overflow(base, base, &base), 0);
        }
        return Value::integer(r);
      }
      if (nums) {
        const double x = a.as_float(), y = b.as_float();
        if (x == 0 && y < 0) eval_fail("0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) eval_fail("unsupported Jinja construct: a complex power");
        return Value::floating(std::pow(x, y));
      }
      return unsupported();
    }
    eval_fail("unknown operator " + op);
  }

  // ---- attribute and item access (jinja2.sandbox getattr / getitem) ----

  Value method(const Value& self, const std::string& name, std::function<Value(const Value&, Arguments&)> fn) {
    auto c = std::make_shared<Callable>();
    c->name = name;
    c->call = [this, self, fn = std::move(fn)](Arguments& a) {
      budget_.charge(Budget::cost(self));
      return fn(self, a);
    };
    return Value::callable(std::move(c));
  }

  Value get_attr(const Value& obj, const std::string& name) {
    switch (obj.kind()) {
      case Value::Kind::Undefined:
        fail_undefined(obj);
      case Value::Kind::Dict: {
        if (name.rfind("__", 0) == 0 || contains(kMutatingDictMethods, name)) {
          return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe");
        }
        if (Value m = dict_method(obj, name); !m.is_undefined()) return m;
        if (const Value* v = obj.as_dict().find(name)) return *v;
        return Value::undefined("'dict object' has no attribute '" + name + "'");
      }
      case Value::Kind::String: {
        if (Value m = string_method(obj, name); !m.is_undefined()) return m;
        if (contains(kStrAttributes, name)) eval_fail("unsupported Jinja construct: the string method '" + name + "'");
        return Value::undefined("'str object' has no attribute '" + name + "'");
      }
      case Value::Kind::List:
      case Value::Kind::Tuple: {
        if (contains(kMutatingListMethods, name)) {
          return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe");
        }
        if (Value m = list_method(obj, name); !m.is_undefined()) return m;
        if (name == "copy") eval_fail("unsupported Jinja construct: the list method 'copy'");
        return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
      }
      case Value::Kind::Namespace: {
        if (const Value* v = obj.as_dict().find(name)) return *v;
        return Value::undefined("'Namespace object' has no attribute '" + name + "'");
      }
      case Value::Kind::Loop:
        return loop_attr(obj, name);
      default:
        return Value::undefined("'" + type_name(obj) + " object' has no attribute '" + name + "'");
    }
  }

  Value get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) fail_undefined(obj);
    switch (obj.kind()) {
      case Value::Kind::Dict:
        if (key.is_string()) {
          if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
          return get_attr(obj, key.as_string());  // jinja2 falls back to the attribute (methods)
        }
        return Value::undefined("'dict object' has no attribute " + py_repr(key));
      case Value::Kind::String:
      case Value::Kind::List:
      case Value::Kind::Tuple: {
        if (key.kind() == Value::Kind::Int || key.kind() == Value::Kind::Bool) {
          const int64_t n = py_len(obj);
          int64_t i = key.as_int();
          if (i < 0) i += n;
          if (i < 0 || i >= n) {
            return Value::undefined("'" + type_name(obj) + " object' has no element " + std::to_string(key.as_int()));
          }
          if (obj.is_string()) {
            const U32 cps = utf8_decode(obj.as_string());
            std::string s;
            utf8_append(s, cps[static_cast<size_t>(i)]);
            return str_value(std::move(s));
          }
          return obj.as_list()[static_cast<size_t>(i)];
        }
        if (key.is_string()) return get_attr(obj, key.as_string());
        return Value::undefined("'" + type_name(obj) + " object' has no element " + py_repr(key));
      }
      case Value::Kind::Namespace:
      case Value::Kind::Loop:
        if (key.is_string()) return get_attr(obj, key.as_string());
        return Value::undefined("'" + type_name(obj) + " object' has no element " + py_repr(key));
      default:
        return Value::undefined("'" + type_name(obj) + " object' has no element " + py_repr(key));
    }
  }

  Value slice(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
              std::optional<int64_t> step) {
    require_defined(obj);
    if (obj.is_string()) {
      const U32 cps = utf8_decode(obj.as_string());
      U32 out;
      for (int64_t i : slice_indices(static_cast<int64_t>(cps.size()), start, stop, step)) out.push_back(cps[i]);
      return str_value(utf8_encode(out));
    }
    if (obj.is_sequence_like()) {
      const auto& items = obj.as_list();
      std::vector<Value> out;
      for (int64_t i : slice_indices(static_cast<int64_t>(items.size()), start, stop, step)) out.push_back(items[i]);
      return obj.kind() == Value::Kind::List ? Value::list(std::move(out)) : Value::tuple(std::move(out));
    }
    return Value::undefined("'" + type_name(obj) + " object' cannot be sliced");
  }

  Value loop_attr(const Value& obj, const std::string& name) {
    const LoopState& l = obj.as_loop();
    const int64_t n = static_cast<int64_t>(l.items->size()), i = static_cast<int64_t>(l.index0);
    if (name == "index0") return Value::integer(i);
    if (name == "index") return Value::integer(i + 1);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem") return i > 0 ? (*l.items)[i - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem") return i + 1 < n ? (*l.items)[i + 1] : Value::undefined("there is no next item");
    if (name == "cycle") {
      return method(obj, name, [](const Value& self, Arguments& a) -> Value {
        if (a.positional.empty()) eval_fail("no items for cycling given");
        return a.positional[self.as_loop().index0 % a.positional.size()];
      });
    }
    if (name == "changed") eval_fail("unsupported Jinja construct: loop.changed");
    return Value::undefined("'LoopContext object' has no attribute '" + name + "'");
  }

  Value dict_method(const Value& obj, const std::string& name) {
    if (name == "items") {
      return method(obj, name, [this](const Value& self, Arguments& a) {
        bind_args(a, {}, "items");
        return items_of(self);
      });
    }
    if (name == "keys") {
      return method(obj, name, [](const Value& self, Arguments& a) {
        bind_args(a, {}, "keys");
        return Value::list(py_iterate(self));
      });
    }
    if (name == "values") {
      return method(obj, name, [](const Value& self, Arguments& a) {
        bind_args(a, {}, "values");
        std::vector<Value> out;
        for (const auto& kv : self.as_dict().items) out.push_back(kv.second);
        return Value::list(std::move(out));
      });
    }
    if (name == "get") {
      return method(obj, name, [](const Value& self, Arguments& a) {
        if (!a.keyword.empty()) eval_fail("get() takes no keyword arguments");
        auto p = bind_args(a, {"key", "default"}, "get");
        if (!p[0]) eval_fail("get expected at least 1 argument, got 0");
        const Value* v = p[0]->is_string() ? self.as_dict().find(p[0]->as_string()) : nullptr;
        return v ? *v : p[1].value_or(Value::none());
      });
    }
    if (name == "copy" || name == "fromkeys") eval_fail("unsupported Jinja construct: the dict method '" + name + "'");
    return Value();
  }

  Value list_method(const Value& obj, const std::string& name) {
    if (name == "index" || name == "count") {
      return method(obj, name, [name](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"value"}, name);
        if (!p[0]) eval_fail(name + "() takes exactly one argument");
        int64_t n = 0;
        const auto& items = self.as_list();
        for (size_t i = 0; i < items.size(); ++i) {
          if (!py_equal(items[i], *p[0])) continue;
          if (name == "index") return Value::integer(static_cast<int64_t>(i));
          ++n;
        }
        if (name == "index") eval_fail(py_repr(*p[0]) + " is not in list");
        return Value::integer(n);
      });
    }
    return Value();
  }

  Value string_method(const Value& obj, const std::string& name) {
    using Fn = std::function<Value(const Value&, Arguments&)>;
    auto m = [&](Fn fn) { return method(obj, name, std::move(fn)); };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      return m([name](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"chars"}, name);
        return str_value(py_strip(self.as_string(), p[0], name != "rstrip", name != "lstrip"));
      });
    }
    if (name == "split" || name == "rsplit") {
      return m([this, name](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"sep", "maxsplit"}, name);
        const int64_t maxsplit = p[1] ? need_int(*p[1], "maxsplit") : -1;
        auto parts = py_split(self.as_string(), p[0], maxsplit, name == "rsplit");
        budget_.check_list(parts.size());
        return Value::list(std::move(parts));
      });
    }
    if (name == "startswith" || name == "endswith") {
      return m([name](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"prefix"}, name);
        if (!p[0]) eval_fail(name + "() takes at least 1 argument (0 given)");
        const std::string& s = self.as_string();
        auto test = [&](const Value& affix) {
          const std::string& x = need_string(affix, name + " argument");
          if (x.size() > s.size()) return false;
          return name == "startswith" ? s.compare(0, x.size(), x) == 0
                                      : s.compare(s.size() - x.size(), x.size(), x) == 0;
        };
        if (p[0]->kind() == Value::Kind::Tuple) {
          for (const auto& x : p[0]->as_list()) {
            if (test(x)) return Value::boolean(true);
          }
          return Value::boolean(false);
        }
        return Value::boolean(test(*p[0]));
      });
    }
    if (name == "replace") {
      return m([this](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"old", "new", "count"}, "replace");
        if (!p[0] || !p[1]) eval_fail("replace expected at least 2 arguments");
        const int64_t count = p[2] ? need_int(*p[2], "replace count") : -1;
        return str_value(py_replace(self.as_string(), need_string(*p[0], "replace argument"),
                                    need_string(*p[1], "replace argument"), count, budget_));
      });
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
      return m([name](const Value& self, Arguments& a) {
        bind_args(a, {}, name);
        const std::string& s = self.as_string();
        if (name == "upper") return str_value(py_upper(s));
        if (name == "lower") return str_value(py_lower(s));
        if (name == "title") return str_value(py_title(s));
        return str_value(py_capitalize(s));
      });
    }
    if (name == "find" || name == "rfind" || name == "count") {
      return m([name](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"sub"}, name);
        if (!p[0]) eval_fail(name + "() takes at least 1 argument (0 given)");
        const std::string& s = self.as_string();
        const std::string& sub = need_string(*p[0], name + " argument");
        if (name == "count") {
          if (sub.empty()) return Value::integer(py_len(self) + 1);
          int64_t n = 0;
          for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
          return Value::integer(n);
        }
        const size_t at = name == "find" ? s.find(sub) : s.rfind(sub);
        return Value::integer(at == std::string::npos ? -1 : cp_index_of_byte(s, at));
      });
    }
    if (name == "join") {
      return m([this](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"iterable"}, "join");
        if (!p[0]) eval_fail("join() takes exactly one argument (0 given)");
        std::string out;
        size_t i = 0;
        for (const auto& item : py_iterate(*p[0])) {
          if (!item.is_string()) {
            eval_fail("sequence item " + std::to_string(i) + ": expected str instance, " + type_name(item) + " found");
          }
          if (i++) out += self.as_string();
          out += item.as_string();
          budget_.check_string(out.size());
        }
        return str_value(std::move(out));
      });
    }
    if (name == "removeprefix" || name == "removesuffix") {
      return m([name](const Value& self, Arguments& a) {
        auto p = bind_args(a, {"affix"}, name);
        if (!p[0]) eval_fail(name + "() takes exactly one argument (0 given)");
        const std::string& s = self.as_string();
        const std::string& x = need_string(*p[0], name + " argument");
        if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return str_value(s.substr(x.size()));
        if (name == "removesuffix" && !x.empty() && x.size() <= s.size() &&
            s.compare(s.size() - x.size(), x.size(), x) == 0) {
          return str_value(s.substr(0, s.size() - x.size()));
        }
        return self;
      });
    }
    if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
        name == "islower") {
      return m([name](const Value& self, Arguments& a) {
        bind_args(a, {}, name);
        const std::string& s = self.as_string();
        if (name == "isdigit") return Value::boolean(all_of_nonempty(s, is_digit));
        if (name == "isalpha") return Value::boolean(all_of_nonempty(s, is_alpha));
        if (name == "isalnum")
          return Value::boolean(all_of_nonempty(s, [](char32_t c) { return is_alpha(c) || is_digit(c); }));
        if (name == "isspace") return Value::boolean(all_of_nonempty(s, py_isspace));
        return Value::boolean(py_case_check(s, name == "isupper"));
      });
    }
    return Value();
  }

  // ---- filters (jinja2.filters, with transformers' tojson) ----

  Value items_of(const Value& v) {
    if (v.is_undefined()) return Value::list({});
    if (v.kind() != Value::Kind::Dict) eval_fail("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, x] : v.as_dict().items) out.push_back(Value::tuple({str_value(k), x}));
    return Value::list(std::move(out));
  }

  // jinja2's make_attrgetter: a dotted path, each part looked up with getitem.
  Value attr_path(const Value& item, const std::string& path) {
    Value v = item;
    size_t start = 0;
    while (true) {
      const size_t dot = path.find('.', start);
      const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      });
      v = get_item(v, numeric ? Value::integer(std::stoll(part)) : str_value(part));
      if (dot == std::string::npos) return v;
      start = dot + 1;
    }
  }

  // The key jinja2's sort/unique/min/max compare by: lower-cased strings unless case-sensitive.
  Value sort_key(const Value& item, const std::optional<Value>& attribute, bool case_sensitive) {
    Value v = attribute && !attribute->is_none() ? attr_path(item, py_str(*attribute)) : item;
    if (!case_sensitive && v.is_string()) return str_value(py_lower(v.as_string()));
    return v;
  }

  Value apply_filter(const std::string& name, const Value& v, Arguments& a) {
    auto p = [&](std::vector<std::string> names) { return bind_args(a, names, name); };
    if (name == "trim") {
      auto args = p({"chars"});
      return str_value(py_strip(py_str(v), args[0], true, true));
    }
    if (name == "tojson") {
      auto args = p({"ensure_ascii", "indent", "separators", "sort_keys"});
      JsonOptions o;
      o.max_bytes = budget_.max_string_bytes;
      o.ensure_ascii = args[0] && truthy(*args[0]);
      if (args[1] && !args[1]->is_none()) {
        if (args[1]->is_string()) {
          o.indent = args[1]->as_string();
        } else {
          const int64_t n = need_int(*args[1], "tojson indent");
          budget_.check_string(static_cast<size_t>(std::max<int64_t>(0, n)));
          o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
        }
      }
      if (args[2] && !args[2]->is_none()) {
        const auto parts = py_iterate(*args[2]);
        if (parts.size() != 2) eval_fail("tojson separators must be a pair of strings");
        o.separators = std::make_pair(need_string(parts[0], "separator"), need_string(parts[1], "separator"));
      }
      o.sort_keys = args[3] && truthy(*args[3]);
      return str_value(json_dumps(v, o));
    }
    if (name == "length" || name == "count") {
      p({});
      return Value::integer(py_len(v));
    }
    if (name == "string") {
      p({});
      return str_value(py_str(v));
    }
    if (name == "safe") {
      p({});
      return str_value(py_str(v));
    }
    if (name == "escape" || name == "e") {
      p({});
      return str_value(html_escape(py_str(v)));
    }
    if (name == "list") {
      p({});
      auto items = py_iterate(v);
      budget_.check_list(items.size());
      return Value::list(std::move(items));
    }
    if (name == "items") {
      p({});
      return items_of(v);
    }
    if (name == "join") {
      auto args = p({"d", "attribute"});
      const std::string sep = args[0] ? py_str(*args[0]) : std::string();
      std::string out;
      size_t i = 0;
      for (const auto& item : py_iterate(v)) {
        if (i++) out += sep;
        out += py_str(args[1] && !args[1]->is_none() ? attr_path(item, py_str(*args[1])) : item);
        budget_.check_string(out.size());
      }
      return str_value(std::move(out));
    }
    if (name == "first" || name == "last") {
      p({});
      const auto items = py_iterate(v);
      if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
      return name == "first" ? items.front() : items.back();
    }
    if (name == "default" || name == "d") {
      auto args = p({"default_value", "boolean"});
      const bool boolean = args[1] && truthy(*args[1]);
      if (v.is_undefined() || (boolean && !truthy(v))) return args[0].value_or(str_value(""));
      return v;
    }
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
      p({});
      const std::string s = py_str(v);
      if (name == "upper") return str_value(py_upper(s));
      if (name == "lower") return str_value(py_lower(s));
      if (name == "title") return str_value(jinja_title(s));
      return str_value(py_capitalize(s));
    }
    if (name == "replace") {
      auto args = p({"old", "new", "count"});
      if (!args[0] || !args[1]) eval_fail("replace filter needs old and new");
      const int64_t count = args[2] && !args[2]->is_none() ? need_int(*args[2], "replace count") : -1;
      return str_value(py_replace(py_str(v), py_str(*args[0]), py_str(*args[1]), count, budget_));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      const bool by_attr = name == "selectattr" || name == "rejectattr";
      const bool keep_when = name == "select" || name == "selectattr";
      if (!a.keyword.empty()) eval_fail(name + "() takes no keyword arguments");
      size_t k = 0;
      std::string attr;
      if (by_attr) {
        if (a.positional.empty()) eval_fail(name + "() needs an attribute name");
        attr = py_str(a.positional[k++]);
      }
      std::optional<std::string> test;
      if (k < a.positional.size()) test = need_string(a.positional[k++], name + " test name");
      if (test && !is_supported_test(*test)) eval_fail("unsupported Jinja construct: test '" + *test + "'");
      Arguments test_args;
      test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(k), a.positional.end());
      std::vector<Value> out;
      for (const auto& item : py_iterate(v)) {
        const Value x = by_attr ? attr_path(item, attr) : item;
        const bool r = test ? apply_test(*test, x, test_args) : truthy(x);
        if (r == keep_when) out.push_back(item);
      }
      return Value::list(std::move(out));
    }
    if (name == "map") {
      std::vector<Value> out;
      const Value* attribute = nullptr;
      std::optional<Value> dflt;
      for (const auto& [k, x] : a.keyword) {
        if (k == "attribute") {
          attribute = &x;
        } else if (k == "default") {
          dflt = x;
        } else if (a.positional.empty()) {
          eval_fail("map() got an unexpected keyword argument '" + k + "'");
        }
      }
      if (attribute) {
        if (!a.positional.empty()) eval_fail("map() takes either an attribute or a filter name");
        for (const auto& item : py_iterate(v)) {
          Value x = attr_path(item, py_str(*attribute));
          out.push_back(x.is_undefined() && dflt ? *dflt : x);
        }
        return Value::list(std::move(out));
      }
      if (a.positional.empty()) eval_fail("map() needs a filter name or attribute=");
      const std::string filter = need_string(a.positional[0], "map filter name");
      if (!is_supported_filter(filter)) eval_fail("unsupported Jinja construct: filter '" + filter + "'");
      for (const auto& item : py_iterate(v)) {
        Arguments fa;
        fa.positional.assign(a.positional.begin() + 1, a.positional.end());
        fa.keyword = a.keyword;
        out.push_back(apply_filter(filter, item, fa));
      }
      return Value::list(std::move(out));
    }
    if (name == "int") {
      auto args = p({"default", "base"});
      const Value dflt = args[0].value_or(Value::integer(0));
      const int64_t base = args[1] ? need_int(*args[1], "int base") : 10;
      require_defined(v);
      if (v.is_string()) {
        if (auto i = parse_py_int(v.as_string(), base)) return Value::integer(*i);
        if (auto f = parse_py_float(v.as_string()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18) {
          return Value::integer(static_cast<int64_t>(*f));
        }
        return dflt;
      }
      if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Bool) return Value::integer(v.as_int());
      if (v.kind() == Value::Kind::Float) {
        if (!std::isfinite(v.as_float()) || std::fabs(v.as_float()) >= 9.2e18) return dflt;
        return Value::integer(static_cast<int64_t>(v.as_float()));
      }
      return dflt;
    }
    if (name == "float") {
      auto args = p({"default"});
      const Value dflt = args[0].value_or(Value::floating(0.0));
      require_defined(v);
      if (v.is_number()) return Value::floating(v.as_float());
      if (v.is_string()) {
        if (auto f = parse_py_float(v.as_string())) return Value::floating(*f);
      }
      return dflt;
    }
    if (name == "abs") {
      p({});
      require_defined(v);
      if (v.kind() == Value::Kind::Float) return Value::floating(std::fabs(v.as_float()));
      if (v.kind() == Value::Kind::Int || v.kind() == Value::Kind::Bool) {
        return Value::integer(checked(v.as_int() == INT64_MIN, std::abs(v.as_int())));
      }
      eval_fail("bad operand type for abs(): '" + type_name(v) + "'");
    }
    if (name == "indent") {
      auto args = p({"width", "first", "blank"});
      std::string unit = "    ";
      if (args[0]) {
        if (args[0]->is_string()) {
          unit = args[0]->as_string();
        } else {
          const int64_t n = need_int(*args[0], "indent width");
          budget_.check_string(static_cast<size_t>(std::max<int64_t>(0, n)));
          unit = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
        }
      }
      const bool first = args[1] && truthy(*args[1]);
      const bool blank = args[2] && truthy(*args[2]);
      std::vector<std::string> lines = py_splitlines(py_str(v) + "\n");
      std::string rv;
      if (blank) {
        for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + unit : std::string()) + lines[i];
      } else {
        rv = lines.empty() ? std::string() : lines[0];
        for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? std::string() : unit) + lines[i];
      }
      if (first) rv = unit + rv;
      budget_.check_string(rv.size());
      return str_value(std::move(rv));
    }
    if (name == "reverse") {
      p({});
      if (v.is_string()) {
        U32 cps = utf8_decode(v.as_string());
        std::reverse(cps.begin(), cps.end());
        return str_value(utf8_encode(cps));
      }
      auto items = py_iterate(v);
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (name == "sort" || name == "unique" || name == "min" || name == "max") {
      std::vector<std::optional<Value>> args =
          name == "sort" ? p({"reverse", "case_sensitive", "attribute"}) : p({"case_sensitive", "attribute"});
      if (name != "sort") args.insert(args.begin(), std::nullopt);
      const bool reverse = args[0] && truthy(*args[0]);
      const bool case_sensitive = args[1] && truthy(*args[1]);
      auto items = py_iterate(v);
      std::vector<Value> keys;
      for (const auto& item : items) keys.push_back(sort_key(item, args[2], case_sensitive));
      if (name == "unique") {
        std::vector<Value> out, seen;
        for (size_t i = 0; i < items.size(); ++i) {
          if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, keys[i]); })) {
            seen.push_back(keys[i]);
            out.push_back(items[i]);
          }
        }
        return Value::list(std::move(out));
      }
      std::vector<size_t> order(items.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        return reverse ? py_order(keys[y], keys[x], "<") : py_order(keys[x], keys[y], "<");
      });
      if (name == "min" || name == "max") {
        if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
        // Python's min/max return the first of equal extremes.
        size_t best = 0;
        for (size_t i = 1; i < items.size(); ++i) {
          if (name == "min" ? py_order(keys[i], keys[best], "<") : py_order(keys[best], keys[i], "<")) best = i;
        }
        return items[best];
      }
      std::vector<Value> out;
      for (size_t i : order) out.push_back(items[i]);
      return Value::list(std::move(out));
    }
    if (name == "sum") {
      auto args = p({"attribute", "start"});
      Value total = args[1].value_or(Value::integer(0));
      for (const auto& item : py_iterate(v)) {
        total = binary("+", total, args[0] && !args[0]->is_none() ? attr_path(item, py_str(*args[0])) : item);
      }
      return total;
    }
    eval_fail("unsupported Jinja construct: filter '" + name + "'");
  }

  // ---- tests (jinja2.tests) ----

  bool apply_test(const std::string& name, const Value& v, Arguments& a) {
    auto arg = [&]() -> Value {
      auto p = bind_args(a, {"other"}, name);
      if (!p[0]) eval_fail("the test '" + name + "' needs an argument");
      return *p[0];
    };
    auto no_args = [&] { bind_args(a, {}, name); };
    if (name == "defined") return no_args(), !v.is_undefined();
    if (name == "undefined") return no_args(), v.is_undefined();
    if (name == "none") return no_args(), v.is_none();
    if (name == "boolean") return no_args(), v.kind() == Value::Kind::Bool;
    if (name == "false") return no_args(), v.kind() == Value::Kind::Bool && !v.as_bool();
    if (name == "true") return no_args(), v.kind() == Value::Kind::Bool && v.as_bool();
    if (name == "integer") return no_args(), v.kind() == Value::Kind::Int;
    if (name == "float") return no_args(), v.kind() == Value::Kind::Float;
    if (name == "number") return no_args(), v.is_number();
    if (name == "string") return no_args(), v.is_string();
    if (name == "mapping") return no_args(), v.kind() == Value::Kind::Dict;
    if (name == "iterable") {
      no_args();
      switch (v.kind()) {
        case Value::Kind::String:
        case Value::Kind::List:
        case Value::Kind::Tuple:
        case Value::Kind::Dict:
        case Value::Kind::Undefined:  // Undefined defines __iter__
        case Value::Kind::Loop:
          return true;
        default:
          return false;
      }
    }
    if (name == "sequence") {
      no_args();
      switch (v.kind()) {
        case Value::Kind::String:
        case Value::Kind::List:
        case Value::Kind::Tuple:
        case Value::Kind::Dict:
        case Value::Kind::Undefined:
          return true;  // Undefined has __len__ and __getitem__
        default:
          return false;
      }
    }
    if (name == "callable") {
      no_args();  // Undefined and the loop object define __call__ too
      return v.kind() == Value::Kind::Callable || v.kind() == Value::Kind::Loop || v.is_undefined();
    }
    if (name == "odd" || name == "even") {
      no_args();
      const Value r = binary("%", v, Value::integer(2));
      return name == "odd" ? py_equal(r, Value::integer(1)) : py_equal(r, Value::integer(0));
    }
    if (name == "divisibleby") return py_equal(binary("%", v, arg()), Value::integer(0));
    if (name == "lower" || name == "upper") return no_args(), py_case_check(py_str(v), name == "upper");
    if (name == "eq" || name == "equalto" || name == "==") return py_equal(v, arg());
    if (name == "ne" || name == "!=") return !py_equal(v, arg());
    if (name == "lt" || name == "<") return py_order(v, arg(), "<");
    if (name == "le" || name == "<=") return py_order(v, arg(), "<=");
    if (name == "gt" || name == ">") return py_order(v, arg(), ">");
    if (name == "ge" || name == ">=") return py_order(v, arg(), ">=");
    if (name == "in") return py_contains(arg(), v);
    if (name == "sameas") {
      const Value o = arg();
      if (v.kind() != o.kind()) return false;
      switch (v.kind()) {
        case Value::Kind::None:
        case Value::Kind::Undefined:
          return v.is_none();  // distinct Undefined objects are never `is`
        case Value::Kind::Bool:
          return v.as_bool() == o.as_bool();
        case Value::Kind::Int:  // CPython caches the small integers
          return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
        default:
          return v.identity() != nullptr && v.identity() == o.identity();
      }
    }
    eval_fail("unsupported Jinja construct: test '" + name + "'");
  }

  const Template& tmpl_;
  const RenderLimits& limits_;
  Budget budget_;
  std::string* out_ = nullptr;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int depth_ = 0;
  std::vector<std::weak_ptr<Dict>> namespaces_;
};

}  // namespace

std::string render(const Template& tmpl, const Dict& context, const RenderLimits& limits) {
  Interpreter interpreter(tmpl, limits);
  try {
    return interpreter.run(context);
  } catch (const RenderError& e) {
    throw Error(tmpl.origin + ":" + std::to_string(e.line) + ": " + e.message);
  } catch (const EvalError& e) {
    throw Error(tmpl.origin + ": " + e.message);
  }
}

}  // namespace cohort::jinja
