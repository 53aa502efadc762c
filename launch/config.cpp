// Config machinery: parses YAML and `key=value` overrides against the declared options, reports every problem
// with its file, line, key, expectation and given value, and prints the resolved config and --help from the same
// declarations. Scalars follow YAML 1.2's core schema (true/false only, no yes/no) whatever yaml-cpp would accept.
#include "launch/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <variant>

#include <yaml-cpp/yaml.h>

namespace cohort::config {

namespace {

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined += separator;
    joined += parts[i];
  }
  return joined;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r\n";
  size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  size_t end = text.find_last_not_of(space);
  return text.substr(begin, end - begin + 1);
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  for (const auto& name : names) quoted.push_back("'" + name + "'");
  return join(quoted, ", ");
}

// ---- YAML 1.2 core schema scalars ----

bool is_null_word(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool parse_bool_word(std::string_view s, bool* value) {
  if (s == "true" || s == "True" || s == "TRUE") {
    *value = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    *value = false;
    return true;
  }
  return false;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// [-+]?[0-9]+
bool looks_like_int(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!is_digit(s[i])) return false;
  }
  return true;
}

bool is_special_float(std::string_view s) {
  std::string_view magnitude = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? s.substr(1) : s;
  if (magnitude == ".inf" || magnitude == ".Inf" || magnitude == ".INF") return true;
  return s == ".nan" || s == ".NaN" || s == ".NAN";
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, or .inf/.nan
bool looks_like_float(std::string_view s) {
  if (is_special_float(s)) return true;
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exponent_digits = 0;
    while (i < s.size() && is_digit(s[i])) ++i, ++exponent_digits;
    if (exponent_digits == 0) return false;
  }
  return i == s.size();
}

// Precondition: looks_like_int(s). False when it does not fit in 64 bits.
bool to_int64(std::string_view s, int64_t* value) {
  if (s[0] == '+') s.remove_prefix(1);
  auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), *value);
  return error == std::errc() && end == s.data() + s.size();
}

// Precondition: looks_like_int(s) || looks_like_float(s). False when it does not fit in a double.
bool to_double(std::string_view s, double* value) {
  bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (is_special_float(s)) {
    *value = (s[1] == 'i' || s[1] == 'I') ? HUGE_VAL : std::nan("");
  } else {
    auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), *value);
    // An underflow to zero or a subnormal is a value a user may mean; an overflow is not.
    if (error == std::errc::result_out_of_range) {
      if (std::isinf(std::strtod(std::string(s).c_str(), nullptr))) return false;
      *value = std::strtod(std::string(s).c_str(), nullptr);
    } else if (error != std::errc() || end != s.data() + s.size()) {
      return false;
    }
  }
  if (negative) *value = -*value;
  return true;
}

// The shortest text that reads back as the same double, always recognisable as a float.
std::string format_double(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, end);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

// For ranges in messages: 2 rather than 2.0.
std::string format_bound(double value) {
  std::string text = format_double(value);
  if (text.size() > 2 && text.compare(text.size() - 2, 2, ".0") == 0) text.resize(text.size() - 2);
  return text;
}

// A plain scalar (no quotes, no tag) is typed by its text; a quoted or !!str one is a string.
bool is_plain(const YAML::Node& node) {
  return node.Tag() == "?";
}

std::string shorten(std::string text) {
  constexpr size_t kMaxShown = 60;
  if (text.size() > kMaxShown) text = text.substr(0, kMaxShown) + "...";
  std::string shown;
  for (char c : text) {
    if (c == '\n') {
      shown += "\\n";
    } else if (c == '\t') {
      shown += "\\t";
    } else {
      shown += c;
    }
  }
  return shown;
}

std::string describe_given(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsScalar() && node.Scalar().empty()) return "an empty string";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (is_plain(node)) return "'" + shorten(node.Scalar()) + "'";
  return "\"" + shorten(node.Scalar()) + "\" (a quoted string)";
}

// A string a YAML reader would type as something else (or mangle) is written in double quotes.
bool needs_quotes(const std::string& text) {
  bool ignored;
  if (is_null_word(text) || parse_bool_word(text, &ignored)) return true;
  if (looks_like_int(text) || looks_like_float(text)) return true;
  // YAML 1.1 readers (PyYAML) take these as booleans, and 0x/0o as integers.
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"yes", "no", "on", "off"}) {
    if (lower == word) return true;
  }
  return lower.rfind("0x", 0) == 0 || lower.rfind("0o", 0) == 0;
}

void emit_string(YAML::Emitter& out, const std::string& text) {
  if (needs_quotes(text)) out << YAML::DoubleQuoted;
  out << text;
}

// ---- YAML <-> JSON for subtree options ----

// Returns "" or what is wrong.
std::string yaml_to_json(const YAML::Node& node, nlohmann::json* out) {
  if (!node.IsDefined() || node.IsNull()) {
    *out = nullptr;
  } else if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    bool flag;
    int64_t integer;
    double number;
    if (!is_plain(node)) {
      *out = text;
    } else if (is_null_word(text)) {
      *out = nullptr;
    } else if (parse_bool_word(text, &flag)) {
      *out = flag;
    } else if (looks_like_int(text) && to_int64(text, &integer)) {
      *out = integer;
    } else if ((looks_like_int(text) || looks_like_float(text)) && to_double(text, &number)) {
      *out = number;
    } else {
      *out = text;
    }
  } else if (node.IsSequence()) {
    *out = nlohmann::json::array();
    for (const auto& item : node) {
      nlohmann::json converted;
      std::string problem = yaml_to_json(item, &converted);
      if (!problem.empty()) return problem;
      out->push_back(std::move(converted));
    }
  } else {
    *out = nlohmann::json::object();
    for (const auto& entry : node) {  // entry holds copies of the nodes; it->first would dangle
      const YAML::Node name_node = entry.first;
      std::string line = std::to_string(name_node.Mark().line + 1);
      if (!name_node.IsScalar()) return "a mapping key at line " + line + " is not a name";
      const std::string name = name_node.Scalar();
      if (out->contains(name)) return "key '" + name + "' is given twice (line " + line + ")";
      std::string problem = yaml_to_json(entry.second, &(*out)[name]);
      if (!problem.empty()) return problem;
    }
  }
  return "";
}

void emit_json(YAML::Emitter& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out << YAML::Null;
      break;
    case nlohmann::json::value_t::boolean:
      out << (value.get<bool>() ? "true" : "false");
      break;
    case nlohmann::json::value_t::number_integer:
      out << value.get<int64_t>();
      break;
    case nlohmann::json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      break;
    case nlohmann::json::value_t::number_float:
      out << format_double(value.get<double>());
      break;
    case nlohmann::json::value_t::string:
      emit_string(out, value.get<std::string>());
      break;
    case nlohmann::json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : value) emit_json(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [name, item] : value.items()) {
        out << YAML::Key;
        emit_string(out, name);
        out << YAML::Value;
        emit_json(out, item);
      }
      out << YAML::EndMap;
      break;
    case nlohmann::json::value_t::binary:
      out << YAML::Null;  // never produced from YAML
      break;
  }
}

// ---- suggestions ----

// Damerau-Levenshtein distance (optimal string alignment: a transposition counts as one edit).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// How many edits still count as a typo of a name this long.
size_t typo_budget(size_t length) {
  return length <= 3 ? 1 : length <= 10 ? 2 : 3;
}

std::string last_segment(const std::string& key) {
  size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

// The candidate within a typo of word, or "".
std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = typo_budget(word.size()) + 1;
  for (const auto& candidate : candidates) {
    size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& suggestion) {
  return suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)";
}

}  // namespace

// ---- ConfigError ----

ConfigError::ConfigError(const std::string& message) : ConfigError(std::vector<std::string>{message}) {}

ConfigError::ConfigError(std::vector<std::string> messages)
    : std::runtime_error(join(messages, "\n")), messages_(std::move(messages)) {}

// ---- declarations ----

namespace {

struct EnumBinding {
  std::vector<std::string> names;
  std::function<void(size_t)> set_index;
  std::function<size_t()> current_index;  // names.size() when the field holds an unnamed value
};

}  // namespace

struct Schema::Option {
  std::string key;
  std::string help;
  std::variant<int64_t*, double*, bool*, std::string*, std::vector<std::string>*, nlohmann::json*, EnumBinding> field;
  std::optional<int64_t> int_min, int_max;
  std::optional<double> float_min, float_max;
  std::vector<std::string> choices;  // for strings; empty: any
  std::string default_text;          // the default as one line of YAML
  bool was_set = false;
};

namespace {

using Option = Schema::Option;

template <typename T>
std::string range_text(const std::optional<T>& min, const std::optional<T>& max, std::string (*format)(T)) {
  if (min && max) return " in [" + format(*min) + ", " + format(*max) + "]";
  if (min) return " >= " + format(*min);
  if (max) return " <= " + format(*max);
  return "";
}

std::string format_int(int64_t value) {
  return std::to_string(value);
}

// What a value must look like, for messages: "expected <this>".
std::string expectation(const Option& option) {
  switch (option.field.index()) {
    case 0:
      return "an integer" + range_text(option.int_min, option.int_max, format_int);
    case 1:
      return "a number" + range_text(option.float_min, option.float_max, format_bound);
    case 2:
      return "true or false";
    case 3:
      return option.choices.empty() ? "a string" : "one of " + quoted_list(option.choices);
    case 4:
      return "a list of strings";
    case 5:
      return "any YAML value";
    default:
      return "one of " + quoted_list(std::get<EnumBinding>(option.field).names);
  }
}

// The type column of --help.
std::string type_text(const Option& option) {
  switch (option.field.index()) {
    case 0:
      return "int" + range_text(option.int_min, option.int_max, format_int);
    case 1:
      return "float" + range_text(option.float_min, option.float_max, format_bound);
    case 2:
      return "bool";
    case 3:
      return option.choices.empty() ? "string" : "one of " + join(option.choices, "|");
    case 4:
      return "list of strings";
    case 5:
      return "YAML value";
    default:
      return "one of " + join(std::get<EnumBinding>(option.field).names, "|");
  }
}

bool in_range(int64_t value, const Option& option) {
  return (!option.int_min || value >= *option.int_min) && (!option.int_max || value <= *option.int_max);
}

bool in_range(double value, const Option& option) {
  if (std::isnan(value)) return !option.float_min && !option.float_max;
  return (!option.float_min || value >= *option.float_min) && (!option.float_max || value <= *option.float_max);
}

// Parses node into the option's field. Returns "" or the problem ("expected ..., got ...").
std::string assign(Option& option, const YAML::Node& node) {
  auto expected = [&](const std::string& given) { return "expected " + expectation(option) + ", got " + given; };
  const bool plain_scalar = node.IsDefined() && node.IsScalar() && is_plain(node);
  const std::string text = node.IsDefined() && node.IsScalar() ? node.Scalar() : "";

  if (auto* field = std::get_if<int64_t*>(&option.field)) {
    int64_t value;
    if (!plain_scalar || !looks_like_int(text)) return expected(describe_given(node));
    if (!to_int64(text, &value)) return expected(describe_given(node) + ", which does not fit in 64 bits");
    if (!in_range(value, option)) return expected(describe_given(node));
    **field = value;
  } else if (auto* field = std::get_if<double*>(&option.field)) {
    double value;
    if (!plain_scalar || !(looks_like_int(text) || looks_like_float(text))) return expected(describe_given(node));
    if (!to_double(text, &value)) return expected(describe_given(node) + ", which does not fit in a double");
    if (!in_range(value, option)) return expected(describe_given(node));
    **field = value;
  } else if (auto* field = std::get_if<bool*>(&option.field)) {
    bool value;
    if (!plain_scalar || !parse_bool_word(text, &value)) return expected(describe_given(node));
    **field = value;
  } else if (auto* field = std::get_if<std::string*>(&option.field)) {
    if (!node.IsDefined() || !node.IsScalar()) return expected(describe_given(node));
    if (!option.choices.empty() &&
        std::find(option.choices.begin(), option.choices.end(), text) == option.choices.end()) {
      return expected(describe_given(node)) + did_you_mean(closest(text, option.choices));
    }
    **field = text;
  } else if (auto* field = std::get_if<std::vector<std::string>*>(&option.field)) {
    if (!node.IsDefined() || !node.IsSequence()) return expected(describe_given(node));
    std::vector<std::string> values;
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) {
        return expected("a list whose item " + std::to_string(i + 1) + " is " + describe_given(node[i]));
      }
      values.push_back(node[i].Scalar());
    }
    **field = std::move(values);
  } else if (auto* field = std::get_if<nlohmann::json*>(&option.field)) {
    nlohmann::json value;
    std::string problem = yaml_to_json(node, &value);
    if (!problem.empty()) return problem;
    **field = std::move(value);
  } else {
    auto& binding = std::get<EnumBinding>(option.field);
    if (!node.IsDefined() || !node.IsScalar()) return expected(describe_given(node));
    auto found = std::find(binding.names.begin(), binding.names.end(), text);
    if (found == binding.names.end())
      return expected(describe_given(node)) + did_you_mean(closest(text, binding.names));
    binding.set_index(static_cast<size_t>(found - binding.names.begin()));
  }
  return "";
}

// Writes the option's current value.
void emit_value(YAML::Emitter& out, const Option& option) {
  if (auto* field = std::get_if<int64_t*>(&option.field)) {
    out << **field;
  } else if (auto* field = std::get_if<double*>(&option.field)) {
    out << format_double(**field);
  } else if (auto* field = std::get_if<bool*>(&option.field)) {
    out << (**field ? "true" : "false");
  } else if (auto* field = std::get_if<std::string*>(&option.field)) {
    emit_string(out, **field);
  } else if (auto* field = std::get_if<std::vector<std::string>*>(&option.field)) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& item : **field) emit_string(out, item);
    out << YAML::EndSeq;
  } else if (auto* field = std::get_if<nlohmann::json*>(&option.field)) {
    emit_json(out, **field);
  } else {
    const auto& binding = std::get<EnumBinding>(option.field);
    size_t index = binding.current_index();
    if (index >= binding.names.size()) {
      throw ConfigError("config key '" + option.key + "' holds an enum value that has no name");
    }
    emit_string(out, binding.names[index]);
  }
}

std::string one_line_yaml(const Option& option) {
  YAML::Emitter out;
  out.SetSeqFormat(YAML::Flow);
  out.SetMapFormat(YAML::Flow);
  emit_value(out, option);
  return out.c_str();
}

bool is_valid_segment(const std::string& segment) {
  if (segment.empty()) return false;
  for (char c : segment) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// "a.b.c" -> {"a", "a.b"}
std::vector<std::string> proper_prefixes(const std::string& key) {
  std::vector<std::string> prefixes;
  for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
    prefixes.push_back(key.substr(0, dot));
  }
  return prefixes;
}

std::unique_ptr<Option> make_option(std::string key, std::string help) {
  auto option = std::make_unique<Option>();
  option->key = std::move(key);
  option->help = std::move(help);
  return option;
}

}  // namespace

Schema::Schema() = default;
Schema::~Schema() = default;
Schema::Schema(Schema&&) noexcept = default;
Schema& Schema::operator=(Schema&&) noexcept = default;

void Schema::declare(std::unique_ptr<Option> option) {
  const std::string& key = option->key;
  std::string segment;
  std::istringstream segments(key);
  bool valid = !key.empty() && key.back() != '.';
  while (valid && std::getline(segments, segment, '.')) valid = is_valid_segment(segment);
  if (!valid) {
    throw ConfigError("config key '" + key +
                      "' is not valid: use names of letters, digits, '_' and '-' joined by dots");
  }
  if (index_of_key_.count(key)) throw ConfigError("config key '" + key + "' is declared twice");
  if (auto section = sections_.find(key); section != sections_.end()) {
    throw ConfigError("config key '" + key + "' is declared as a value but is already a section (of '" +
                      section->second + "')");
  }
  for (const auto& prefix : proper_prefixes(key)) {
    if (index_of_key_.count(prefix)) {
      throw ConfigError("config key '" + key + "' is declared under '" + prefix + "', which is a value, not a section");
    }
  }
  for (const auto& prefix : proper_prefixes(key)) sections_.emplace(prefix, key);
  index_of_key_.emplace(key, options_.size());
  options_.push_back(std::move(option));
}

const Schema::Option* Schema::find(const std::string& key) const {
  auto found = index_of_key_.find(key);
  return found == index_of_key_.end() ? nullptr : options_[found->second].get();
}

namespace {

void require_field(const void* field, const std::string& key) {
  if (field == nullptr) throw ConfigError("config key '" + key + "' is declared with a null field");
}

}  // namespace

void Schema::add(std::string key, int64_t* field, int64_t def, std::string help, std::optional<int64_t> min,
                 std::optional<int64_t> max) {
  require_field(field, key);
  auto option = make_option(std::move(key), std::move(help));
  option->field = field;
  option->int_min = min;
  option->int_max = max;
  if (min && max && *min > *max) throw ConfigError("config key '" + option->key + "' has an empty range");
  if (!in_range(def, *option)) {
    throw ConfigError("config key '" + option->key + "': the default " + std::to_string(def) + " is not " +
                      expectation(*option));
  }
  Option& declared = *option;
  declare(std::move(option));
  *field = def;
  declared.default_text = one_line_yaml(declared);
}

void Schema::add(std::string key, double* field, double def, std::string help, std::optional<double> min,
                 std::optional<double> max) {
  require_field(field, key);
  auto option = make_option(std::move(key), std::move(help));
  option->field = field;
  option->float_min = min;
  option->float_max = max;
  if (min && max && !(*min <= *max)) throw ConfigError("config key '" + option->key + "' has an empty range");
  if (!in_range(def, *option)) {
    throw ConfigError("config key '" + option->key + "': the default " + format_double(def) + " is not " +
                      expectation(*option));
  }
  Option& declared = *option;
  declare(std::move(option));
  *field = def;
  declared.default_text = one_line_yaml(declared);
}

void Schema::add(std::string key, bool* field, bool def, std::string help) {
  require_field(field, key);
  auto option = make_option(std::move(key), std::move(help));
  option->field = field;
  Option& declared = *option;
  declare(std::move(option));
  *field = def;
  declared.default_text = one_line_yaml(declared);
}

void Schema::add(std::string key, std::string* field, std::string def, std::string help,
                 std::vector<std::string> choices) {
  require_field(field, key);
  auto option = make_option(std::move(key), std::move(help));
  option->field = field;
  option->choices = std::move(choices);
  if (!option->choices.empty() &&
      std::find(option->choices.begin(), option->choices.end(), def) == option->choices.end()) {
    throw ConfigError("config key '" + option->key + "': the default '" + def + "' is not " + expectation(*option));
  }
  Option& declared = *option;
  declare(std::move(option));
  *field = std::move(def);
  declared.default_text = one_line_yaml(declared);
}

void Schema::add(std::string key, std::vector<std::string>* field, std::vector<std::string> def, std::string help) {
  require_field(field, key);
  auto option = make_option(std::move(key), std::move(help));
  option->field = field;
  Option& declared = *option;
  declare(std::move(option));
  *field = std::move(def);
  declared.default_text = one_line_yaml(declared);
}

void Schema::add(std::string key, nlohmann::json* field, nlohmann::json def, std::string help) {
  require_field(field, key);
  auto option = make_option(std::move(key), std::move(help));
  option->field = field;
  Option& declared = *option;
  declare(std::move(option));
  *field = std::move(def);
  declared.default_text = one_line_yaml(declared);
}

void Schema::add_enum_by_index(std::string key, std::string help, std::vector<std::string> names, size_t default_index,
                               std::function<void(size_t)> set_index, std::function<size_t()> current_index) {
  if (names.empty()) throw ConfigError("config key '" + key + "' is an enum with no names");
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::find(names.begin(), names.begin() + i, names[i]) != names.begin() + i) {
      throw ConfigError("config key '" + key + "' names two enum values '" + names[i] + "'");
    }
  }
  if (default_index >= names.size()) throw ConfigError("config key '" + key + "': the default value has no name");
  auto option = make_option(std::move(key), std::move(help));
  option->field = EnumBinding{std::move(names), set_index, std::move(current_index)};
  Option& declared = *option;
  declare(std::move(option));
  set_index(default_index);
  declared.default_text = one_line_yaml(declared);
}

void Schema::add_check(std::function<std::string()> check) {
  checks_.push_back(std::move(check));
}

// ---- loading ----

// Walks YAML against the declarations of one Schema, collecting every problem.
class SchemaLoader {
 public:
  explicit SchemaLoader(Schema& schema) : schema_(schema) {}

  void apply_file(const YAML::Node& root, const std::string& path) {
    Source source{path, false};
    if (!root.IsDefined() || root.IsNull()) return;  // an empty file sets nothing
    if (!root.IsMap()) {
      problems_.push_back(source.at(root.Mark()) + ": expected a mapping of config keys at the top, got " +
                          describe_given(root));
      return;
    }
    first_line_of_key_.clear();
    apply_mapping("", root, source);
  }

  void apply_override(const std::string& text) {
    Source source{"command line: '" + text + "'", true};
    size_t equals = text.find('=');
    std::string key = trim(text.substr(0, equals));
    if (equals == std::string::npos || key.empty()) {
      problems_.push_back(source.name + ": expected KEY=VALUE, such as rollout.temperature=0.7");
      return;
    }
    std::string value = text.substr(equals + 1);
    YAML::Node node;
    try {
      node = YAML::Load(trim(value).empty() ? "\"\"" : value);
    } catch (const YAML::Exception& error) {
      problems_.push_back(source.name + ": the value is not valid YAML: " + error.msg);
      return;
    }
    apply(key, node, YAML::Mark::null_mark(), source);
  }

  std::vector<std::string>& problems() { return problems_; }

 private:
  struct Source {
    std::string name;  // the file, or "command line: 'KEY=VALUE'"
    bool is_override;
    std::string at(const YAML::Mark& mark) const {
      return is_override || mark.line < 0 ? name : name + ":" + std::to_string(mark.line + 1);
    }
  };

  void apply_mapping(const std::string& prefix, const YAML::Node& mapping, const Source& source) {
    std::map<std::string, int> line_of_name;
    for (const auto& entry : mapping) {  // entry holds copies of the nodes; it->first would dangle
      const YAML::Node name_node = entry.first;
      if (!name_node.IsScalar()) {
        problems_.push_back(source.at(name_node.Mark()) + ": expected a key name, got " + describe_given(name_node));
        continue;
      }
      const std::string& name = name_node.Scalar();
      std::string key = prefix.empty() ? name : prefix + "." + name;
      auto [first, inserted] = line_of_name.emplace(name, name_node.Mark().line);
      if (!inserted) {
        problems_.push_back(source.at(name_node.Mark()) + ": " + key + ": given twice (first at line " +
                            std::to_string(first->second + 1) + ")");
        continue;
      }
      apply(key, entry.second, name_node.Mark(), source);
    }
  }

  void apply(const std::string& key, const YAML::Node& value, const YAML::Mark& mark, const Source& source) {
    if (auto found = schema_.index_of_key_.find(key); found != schema_.index_of_key_.end()) {
      Option& option = *schema_.options_[found->second];
      if (!source.is_override) {
        // A key may be reached twice in one file through dotted names: `a.b: 1` and `a: {b: 2}`.
        auto [first, inserted] = first_line_of_key_.emplace(key, mark.line);
        if (!inserted) {
          problems_.push_back(source.at(mark) + ": " + key + ": given twice (first at line " +
                              std::to_string(first->second + 1) + ")");
          return;
        }
      }
      std::string problem = assign(option, value);
      if (problem.empty()) {
        option.was_set = true;
      } else {
        problems_.push_back(source.at(mark) + ": " + key + ": " + problem);
      }
      return;
    }
    if (auto section = schema_.sections_.find(key); section != schema_.sections_.end()) {
      if (value.IsMap()) {
        apply_mapping(key, value, source);
      } else if (!value.IsNull()) {  // a section with every entry commented out is fine
        problems_.push_back(source.at(mark) + ": " + key + ": expected a section (a mapping with keys such as '" +
                            section->second.substr(key.size() + 1) + "'), got " + describe_given(value));
      }
      return;
    }
    for (const auto& prefix : proper_prefixes(key)) {
      if (const Option* option = schema_.find(prefix)) {
        problems_.push_back(source.at(mark) + ": unknown key '" + key + "': '" + prefix + "' is a single value (" +
                            type_text(*option) + ") with no keys under it");
        return;
      }
    }
    problems_.push_back(source.at(mark) + ": unknown key '" + key + "'" + did_you_mean(suggest_key(key)));
  }

  // A declared key or section within a typo of the whole dotted key, else one whose last segment is the same (or
  // within one edit), the nearest first.
  std::string suggest_key(const std::string& unknown) const {
    std::vector<std::string> candidates;
    for (const auto& option : schema_.options_) candidates.push_back(option->key);
    for (const auto& [section, first_key] : schema_.sections_) candidates.push_back(section);
    std::string suggestion = closest(unknown, candidates);
    if (!suggestion.empty()) return suggestion;
    const std::string unknown_last = last_segment(unknown);
    size_t best_distance = std::string::npos;
    for (const auto& candidate : candidates) {
      size_t last_distance = edit_distance(unknown_last, last_segment(candidate));
      bool same_name = last_distance == 0 || (last_distance == 1 && unknown_last.size() >= 4);
      size_t distance = edit_distance(unknown, candidate) + last_distance;
      if (same_name && distance < best_distance) {
        suggestion = candidate;
        best_distance = distance;
      }
    }
    return suggestion;
  }

  Schema& schema_;
  std::vector<std::string> problems_;
  std::map<std::string, int> first_line_of_key_;
};

void Schema::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    throw ConfigError("cannot read config file '" + path + "': it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot read config file '" + path + "': " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError("cannot read config file '" + path + "': " + std::strerror(errno));
  load_string(text.str(), path, overrides);
}

void Schema::load_string(const std::string& yaml_text, const std::string& source_name,
                         const std::vector<std::string>& overrides) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& error) {
    if (error.mark.line < 0) throw ConfigError(source_name + ": invalid YAML: " + error.msg);
    std::string line = std::to_string(error.mark.line + 1), column = std::to_string(error.mark.column + 1);
    throw ConfigError(source_name + ":" + line + ":" + column + ": invalid YAML: " + error.msg + " (line " + line +
                      ", column " + column + ")");
  }
  SchemaLoader loader(*this);
  if (documents.size() > 1) {
    loader.problems().push_back(source_name + ": holds " + std::to_string(documents.size()) +
                                " YAML documents (separated by '---'); a config is one");
  } else if (documents.size() == 1) {
    loader.apply_file(documents[0], source_name);
  }
  for (const auto& override_text : overrides) loader.apply_override(override_text);
  if (!loader.problems().empty()) throw ConfigError(std::move(loader.problems()));

  std::vector<std::string> failed_checks;
  for (const auto& check : checks_) {
    std::string problem;
    try {
      problem = check();
    } catch (const std::exception& error) {
      problem = error.what();
    }
    if (!problem.empty()) failed_checks.push_back(source_name + ": " + problem);
  }
  if (!failed_checks.empty()) throw ConfigError(std::move(failed_checks));
}

// ---- printing ----

namespace {

// The declared keys as a tree of sections, each in the order its first key was declared.
struct SectionTree {
  const Option* option = nullptr;
  std::vector<std::pair<std::string, std::unique_ptr<SectionTree>>> children;

  SectionTree& child(const std::string& name) {
    for (auto& [child_name, child_tree] : children) {
      if (child_name == name) return *child_tree;
    }
    children.emplace_back(name, std::make_unique<SectionTree>());
    return *children.back().second;
  }

  void emit(YAML::Emitter& out) const {
    if (option != nullptr) {
      emit_value(out, *option);
      return;
    }
    out << YAML::BeginMap;
    for (const auto& [name, tree] : children) {
      out << YAML::Key;
      emit_string(out, name);  // a section named "null" or "1" must read back as that name
      out << YAML::Value;
      tree->emit(out);
    }
    out << YAML::EndMap;
  }
};

}  // namespace

std::string Schema::to_yaml() const {
  if (options_.empty()) return "{}\n";
  SectionTree root;
  for (const auto& option : options_) {
    SectionTree* node = &root;
    std::istringstream segments(option->key);
    std::string segment;
    while (std::getline(segments, segment, '.')) node = &node->child(segment);
    node->option = option.get();
  }
  YAML::Emitter out;
  root.emit(out);
  return std::string(out.c_str()) + "\n";
}

std::string Schema::help() const {
  // Columns line up, but one long entry does not push every line far to the right.
  constexpr size_t kMaxTypeWidth = 28;
  constexpr size_t kMaxDefaultWidth = 24;
  size_t key_width = 0, type_width = 0, default_width = 0;
  for (const auto& option : options_) {
    key_width = std::max(key_width, option->key.size());
    type_width = std::max(type_width, std::min(type_text(*option).size(), kMaxTypeWidth));
    default_width = std::max(default_width, std::min(option->default_text.size() + 9, kMaxDefaultWidth));
  }
  auto pad = [](std::string text, size_t width) {
    if (text.size() < width) text.append(width - text.size(), ' ');
    return text;
  };
  std::string text;
  for (const auto& option : options_) {
    text += "  " + pad(option->key, key_width) + "  " + pad(type_text(*option), type_width) + "  " +
            pad("default: " + option->default_text, default_width) + "  " + option->help + "\n";
  }
  return text;
}

std::string Schema::markdown() const {
  auto cell = [](std::string text) {
    std::string out;
    for (char c : text) {
      if (c == '|')
        out += "\\|";
      else if (c == '\n')
        out += ' ';
      else
        out += c;
    }
    return out;
  };
  std::string text = "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& option : options_)
    text += "| `" + option->key + "` | " + cell(type_text(*option)) + " | `" + cell(option->default_text) + "` | " +
            cell(option->help) + " |\n";
  return text;
}

bool Schema::was_set(const std::string& key) const {
  const Option* option = find(key);
  if (option == nullptr) throw ConfigError("was_set: '" + key + "' is not a declared config key");
  return option->was_set;
}

std::vector<std::string> Schema::keys() const {
  std::vector<std::string> keys;
  for (const auto& option : options_) keys.push_back(option->key);
  return keys;
}

}  // namespace cohort::config
