// Python semantics for the Jinja interpreter's values: str/repr/json.dumps formatting,
// equality, ordering, membership and iteration as CPython 3 defines them.
#include "model/jinja_value.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace cohort::jinja {

namespace {

constexpr int kMaxNesting = 200;  // deeper values are refused when printed or serialised

std::string hex(uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*x", digits, v);
  return buf;
}

}  // namespace

[[noreturn]] void eval_fail(std::string message) {
  throw EvalError{std::move(message)};
}

Value Value::undefined(std::string hint) {
  Value v;
  v.hint_ = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.bool_ = b;
  v.int_ = b ? 1 : 0;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.int_ = i;
  return v;
}
Value Value::floating(double f) {
  Value v;
  v.kind_ = Kind::Float;
  v.float_ = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.string_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::list(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::List;
  v.list_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}
Value Value::tuple(std::vector<Value> items) {
  Value v = list(std::move(items));
  v.kind_ = Kind::Tuple;
  return v;
}
Value Value::dict(std::shared_ptr<const Dict> d) {
  Value v;
  v.kind_ = Kind::Dict;
  v.dict_ = std::const_pointer_cast<Dict>(std::move(d));
  return v;
}
Value Value::namespace_object(std::shared_ptr<Dict> attrs) {
  Value v;
  v.kind_ = Kind::Namespace;
  v.dict_ = std::move(attrs);
  return v;
}
Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.kind_ = Kind::Callable;
  v.callable_ = std::move(c);
  return v;
}
Value Value::loop(std::shared_ptr<const LoopState> l) {
  Value v;
  v.kind_ = Kind::Loop;
  v.loop_ = std::move(l);
  return v;
}

const void* Value::identity() const {
  switch (kind_) {
    case Kind::String:
      return string_.get();
    case Kind::List:
    case Kind::Tuple:
      return list_.get();
    case Kind::Dict:
    case Kind::Namespace:
      return dict_.get();
    case Kind::Callable:
      return callable_.get();
    case Kind::Loop:
      return loop_.get();
    default:
      return nullptr;
  }
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(const std::string& key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

void Budget::check_string(size_t bytes) const {
  if (bytes > max_string_bytes) {
    eval_fail("a string of " + std::to_string(bytes) + " bytes exceeds the render limit of " +
              std::to_string(max_string_bytes));
  }
}

void Budget::check_list(size_t items) const {
  if (items > max_list_items) {
    eval_fail("a list of " + std::to_string(items) + " items exceeds the render limit of " +
              std::to_string(max_list_items));
  }
}

void Budget::charge(uint64_t bytes) {
  work += bytes;
  if (work > max_work_bytes) {
    eval_fail("render exceeded its work limit of " + std::to_string(max_work_bytes) + " bytes built or scanned");
  }
}

uint64_t Budget::cost(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::String:
      return v.as_string().size();
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      uint64_t c = v.as_list().size() * sizeof(Value);
      for (const auto& e : v.as_list()) {
        if (e.is_string()) c += e.as_string().size();
      }
      return c;
    }
    case Value::Kind::Dict:
    case Value::Kind::Namespace:
      return v.as_dict().items.size() * (sizeof(Value) + sizeof(std::string));
    default:
      return 1;
  }
}

// ---- Unicode ----

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t c;
    int extra;
    if (b0 < 0x80) {
      c = b0;
      extra = 0;
    } else if ((b0 & 0xE0) == 0xC0) {
      c = b0 & 0x1F;
      extra = 1;
    } else if ((b0 & 0xF0) == 0xE0) {
      c = b0 & 0x0F;
      extra = 2;
    } else if ((b0 & 0xF8) == 0xF0) {
      c = b0 & 0x07;
      extra = 3;
    } else {
      eval_fail("invalid UTF-8 in a string");
    }
    for (int k = 1; k <= extra; ++k) {
      if (i + k >= s.size()) eval_fail("truncated UTF-8 in a string");
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) eval_fail("invalid UTF-8 in a string");
      c = (c << 6) | (b & 0x3F);
    }
    static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (c < kMin[extra] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) eval_fail("invalid UTF-8 in a string");
    out.push_back(c);
    i += extra + 1;
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

// str.isprintable() for one code point: not a control, format, surrogate, private-use,
// unassigned or separator character (the space itself is printable).
bool py_isprintable(char32_t c) {
  if (c == ' ') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

std::string repr_string(const std::string& s) {
  const std::u32string cps = utf8_decode(s);
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : cps) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x" + hex(c, 2);
    } else if (c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else if (!py_isprintable(c)) {
      if (c <= 0xFF) {
        out += "\\x" + hex(c, 2);
      } else if (c <= 0xFFFF) {
        out += "\\u" + hex(c, 4);
      } else {
        out += "\\U" + hex(c, 8);
      }
    } else {
      utf8_append(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

void repr_into(std::string& out, const Value& v, int depth);

void repr_sequence(std::string& out, const std::vector<Value>& items, int depth, char open, char close, bool tuple) {
  out.push_back(open);
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    repr_into(out, items[i], depth + 1);
  }
  if (tuple && items.size() == 1) out.push_back(',');
  out.push_back(close);
}

void repr_dict(std::string& out, const Dict& d, int depth) {
  out.push_back('{');
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i) out += ", ";
    out += repr_string(d.items[i].first);
    out += ": ";
    repr_into(out, d.items[i].second, depth + 1);
  }
  out.push_back('}');
}

void repr_into(std::string& out, const Value& v, int depth) {
  if (depth > kMaxNesting) eval_fail("value nested too deeply to print");
  switch (v.kind()) {
    case Value::Kind::Undefined:
      out += "Undefined";
      return;
    case Value::Kind::String:
      out += repr_string(v.as_string());
      return;
    case Value::Kind::List:
      repr_sequence(out, v.as_list(), depth, '[', ']', false);
      return;
    case Value::Kind::Tuple:
      repr_sequence(out, v.as_list(), depth, '(', ')', true);
      return;
    case Value::Kind::Dict:
      repr_dict(out, v.as_dict(), depth);
      return;
    case Value::Kind::Namespace:
      out += "<Namespace ";
      repr_dict(out, v.as_dict(), depth);
      out += ">";
      return;
    default:
      out += py_str(v);
      return;
  }
}

}  // namespace

// ---- conversions ----

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) eval_fail("integer " + std::to_string(u) + " does not fit int64");
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      utf8_decode(s);  // validates: Python strings are always valid Unicode
      return Value::string(s);
    }
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      d->items.reserve(j.size());
      for (const auto& [k, e] : j.items()) {
        utf8_decode(k);
        d->items.emplace_back(k, from_json(e));
      }
      return Value::dict(std::move(d));
    }
    default:
      eval_fail("unsupported JSON value (binary or discarded)");
  }
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return false;
    case Value::Kind::Bool:
      return v.as_bool();
    case Value::Kind::Int:
      return v.as_int() != 0;
    case Value::Kind::Float:
      return v.as_float() != 0.0;
    case Value::Kind::String:
      return !v.as_string().empty();
    case Value::Kind::List:
    case Value::Kind::Tuple:
      return !v.as_list().empty();
    case Value::Kind::Dict:
      return !v.as_dict().items.empty();
    default:
      return true;
  }
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // shortest round-trip digits: [-]d[.ddd]e(+|-)XX
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::stoi(sci.substr(e + 1));
  const int decpt = exponent + 1;  // value = 0.DIGITS x 10^decpt
  const int ndigits = static_cast<int>(digits.size());
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (ndigits > 1) out += "." + digits.substr(1);
    const int x = decpt - 1;
    out += x < 0 ? "e-" : "e+";
    const std::string xs = std::to_string(x < 0 ? -x : x);
    out += (xs.size() < 2 ? "0" : "") + xs;
  } else if (decpt <= 0) {
    out = "0." + std::string(-decpt, '0') + digits;
  } else if (decpt >= ndigits) {
    out = digits + std::string(decpt - ndigits, '0') + ".0";
  } else {
    out = digits.substr(0, decpt) + "." + digits.substr(decpt);
  }
  return sign + out;
}

std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return "";
    case Value::Kind::None:
      return "None";
    case Value::Kind::Bool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::Int:
      return std::to_string(v.as_int());
    case Value::Kind::Float:
      return py_float_repr(v.as_float());
    case Value::Kind::String:
      return v.as_string();
    case Value::Kind::Callable:
      eval_fail("cannot convert the function '" + v.as_callable().name + "' to a string");
    case Value::Kind::Loop:
      eval_fail("cannot convert the loop object to a string");
    default: {
      std::string out;
      repr_into(out, v, 0);
      return out;
    }
  }
}

std::string py_repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return "Undefined";
    case Value::Kind::None:
      return "NoneType";
    case Value::Kind::Bool:
      return "bool";
    case Value::Kind::Int:
      return "int";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "str";
    case Value::Kind::List:
      return "list";
    case Value::Kind::Tuple:
      return "tuple";
    case Value::Kind::Dict:
      return "dict";
    case Value::Kind::Namespace:
      return "Namespace";
    case Value::Kind::Callable:
      return "function";
    case Value::Kind::Loop:
      return "LoopContext";
  }
  return "object";
}

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::Float || b.kind() == Value::Kind::Float) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return true;
    case Value::Kind::String:
      return a.as_string() == b.as_string();
    case Value::Kind::List:
    case Value::Kind::Tuple: {
      const auto &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!py_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::Dict: {
      const auto &x = a.as_dict(), &y = b.as_dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* w = y.find(k);
        if (!w || !py_equal(v, *w)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool py_order(const Value& a, const Value& b, const std::string& op) {
  if (a.is_undefined()) eval_fail(a.undefined_hint().empty() ? "undefined value compared" : a.undefined_hint());
  if (b.is_undefined()) eval_fail(b.undefined_hint().empty() ? "undefined value compared" : b.undefined_hint());
  auto result = [&](int c) {
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  };
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::Float || b.kind() == Value::Kind::Float) {
      const double x = a.as_float(), y = b.as_float();
      if (op == "<") return x < y;
      if (op == "<=") return x <= y;
      if (op == ">") return x > y;
      return x >= y;
    }
    return result(a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) return result(a.as_string().compare(b.as_string()));
  if (a.kind() == b.kind() && a.is_sequence_like()) {
    const auto &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_equal(x[i], y[i])) return py_order(x[i], y[i], op);
    }
    return result(x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0);
  }
  eval_fail("'" + op + "' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

bool py_contains(const Value& container, const Value& needle) {
  switch (container.kind()) {
    case Value::Kind::String:
      if (!needle.is_string()) {
        eval_fail("'in <string>' requires string as left operand, not " + type_name(needle));
      }
      return container.as_string().find(needle.as_string()) != std::string::npos;
    case Value::Kind::List:
    case Value::Kind::Tuple:
      for (const auto& e : container.as_list()) {
        if (py_equal(e, needle)) return true;
      }
      return false;
    case Value::Kind::Dict:
      if (needle.kind() == Value::Kind::List || needle.kind() == Value::Kind::Dict) {
        eval_fail("unhashable type: '" + type_name(needle) + "'");
      }
      return needle.is_string() && container.as_dict().find(needle.as_string()) != nullptr;
    case Value::Kind::Undefined:
      return false;
    default:
      eval_fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

std::vector<Value> py_iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::List:
    case Value::Kind::Tuple:
      return v.as_list();
    case Value::Kind::String: {
      std::vector<Value> out;
      for (char32_t c : utf8_decode(v.as_string())) {
        std::string s;
        utf8_append(s, c);
        out.push_back(Value::string(std::move(s)));
      }
      return out;
    }
    case Value::Kind::Dict: {
      std::vector<Value> out;
      for (const auto& kv : v.as_dict().items) out.push_back(Value::string(kv.first));
      return out;
    }
    case Value::Kind::Undefined:
      return {};
    default:
      eval_fail("'" + type_name(v) + "' object is not iterable");
  }
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::String: {
      int64_t n = 0;
      for (char c : v.as_string()) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      return n;
    }
    case Value::Kind::List:
    case Value::Kind::Tuple:
      return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::Dict:
      return static_cast<int64_t>(v.as_dict().items.size());
    case Value::Kind::Undefined:
      return 0;
    default:
      eval_fail("object of type '" + type_name(v) + "' has no len()");
  }
}

// ---- json.dumps ----

namespace {

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u" + hex(c, 4);
        } else if (ensure_ascii && c > 0x7E) {
          if (c > 0xFFFF) {
            const char32_t v = c - 0x10000;
            out += "\\u" + hex(0xD800 | (v >> 10), 4) + "\\u" + hex(0xDC00 | (v & 0x3FF), 4);
          } else {
            out += "\\u" + hex(c, 4);
          }
        } else {
          utf8_append(out, c);
        }
    }
  }
  out.push_back('"');
}

struct JsonWriter {
  const JsonOptions& options;
  std::string item_separator, key_separator;
  std::string out;

  void check() const {
    if (out.size() > options.max_bytes) {
      eval_fail("tojson output exceeds the render limit of " + std::to_string(options.max_bytes) + " bytes");
    }
  }

  void newline(int level) {
    out.push_back('\n');
    for (int i = 0; i < level; ++i) out += *options.indent;
    check();
  }

  void write(const Value& v, int level) {
    if (level > kMaxNesting) eval_fail("value nested too deeply for tojson");
    switch (v.kind()) {
      case Value::Kind::None:
        out += "null";
        break;
      case Value::Kind::Bool:
        out += v.as_bool() ? "true" : "false";
        break;
      case Value::Kind::Int:
        out += std::to_string(v.as_int());
        break;
      case Value::Kind::Float: {
        const double d = v.as_float();
        if (std::isnan(d)) {
          out += "NaN";
        } else if (std::isinf(d)) {
          out += d < 0 ? "-Infinity" : "Infinity";
        } else {
          out += py_float_repr(d);
        }
        break;
      }
      case Value::Kind::String:
        json_string(out, v.as_string(), options.ensure_ascii);
        break;
      case Value::Kind::List:
      case Value::Kind::Tuple: {
        const auto& items = v.as_list();
        if (items.empty()) {
          out += "[]";
          break;
        }
        out.push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          if (options.indent) newline(level + 1);
          write(items[i], level + 1);
        }
        if (options.indent) newline(level);
        out.push_back(']');
        break;
      }
      case Value::Kind::Dict: {
        std::vector<const std::pair<std::string, Value>*> items;
        for (const auto& kv : v.as_dict().items) items.push_back(&kv);
        if (items.empty()) {
          out += "{}";
          break;
        }
        if (options.sort_keys) {
          std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        }
        out.push_back('{');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          if (options.indent) newline(level + 1);
          json_string(out, items[i]->first, options.ensure_ascii);
          out += key_separator;
          write(items[i]->second, level + 1);
        }
        if (options.indent) newline(level);
        out.push_back('}');
        break;
      }
      default:
        eval_fail("Object of type " + type_name(v) + " is not JSON serializable");
    }
    check();
  }
};

}  // namespace

std::string json_dumps(const Value& v, const JsonOptions& options) {
  JsonWriter w{options, options.indent ? "," : ", ", ": ", {}};
  if (options.separators) {
    w.item_separator = options.separators->first;
    w.key_separator = options.separators->second;
  }
  w.write(v, 0);
  return std::move(w.out);
}

}  // namespace cohort::jinja
