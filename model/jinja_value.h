// The values of cohort's Jinja interpreter and the Python semantics they follow: what
// str(), repr(), json.dumps(), ==, <, +, truth and iteration do in Python, because chat
// templates are written against jinja2 running in Python and must render byte for byte alike.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cohort::jinja {

class Value;
struct Dict;
struct Callable;
struct LoopState;

// A Python-side failure inside a template (TypeError, UndefinedError, ...): the interpreter
// catches it and rethrows as cohort::Error naming the template and line.
struct EvalError {
  std::string message;
};
[[noreturn]] void eval_fail(std::string message);

// Python's str/list/tuple/dict/None/bool/int/float plus jinja2's Undefined, Namespace,
// callables (macros, builtins, bound methods) and the loop object. Lists and dicts are shared
// and immutable (ImmutableSandboxedEnvironment forbids mutating them); a namespace is shared
// and mutable, as `{% set ns.x = ... %}` writes into it.
class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Namespace, Callable, Loop };

  Value() = default;  // Undefined
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  static Value dict(std::shared_ptr<const Dict> d);
  static Value namespace_object(std::shared_ptr<Dict> attrs);
  static Value callable(std::shared_ptr<const Callable> c);
  static Value loop(std::shared_ptr<const LoopState> l);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_sequence_like() const { return kind_ == Kind::List || kind_ == Kind::Tuple; }

  bool as_bool() const { return bool_; }
  int64_t as_int() const { return int_; }  // Int, or Bool as 0/1
  double as_float() const { return kind_ == Kind::Float ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return *string_; }
  const std::vector<Value>& as_list() const { return *list_; }  // List or Tuple
  const Dict& as_dict() const { return *dict_; }                // Dict or Namespace
  Dict& namespace_attrs() const { return *dict_; }
  const Callable& as_callable() const { return *callable_; }
  const LoopState& as_loop() const { return *loop_; }
  const void* identity() const;  // for `is sameas` on shared objects
  // What an Undefined stands for, for error messages: "'foo' is undefined".
  const std::string& undefined_hint() const { return hint_; }

 private:
  Kind kind_ = Kind::Undefined;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> string_;
  std::shared_ptr<const std::vector<Value>> list_;
  std::shared_ptr<Dict> dict_;  // const for Kind::Dict by convention
  std::shared_ptr<const Callable> callable_;
  std::shared_ptr<const LoopState> loop_;
  std::string hint_;
};

// A Python dict with string keys, in insertion order (Python 3.7+ dicts keep it, and
// json.dumps, iteration and repr follow it).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

struct Arguments {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// A builtin function, bound method or macro. `call` throws EvalError for bad arguments.
struct Callable {
  std::string name;
  std::function<Value(Arguments&)> call;
};

// jinja2's LoopContext, materialised: the (filtered) items and the current position.
struct LoopState {
  std::shared_ptr<const std::vector<Value>> items;
  size_t index0 = 0;
};

// Bounds on what one render may build, so a hostile template cannot exhaust memory or time:
// a cap on any one string or list, and a cumulative count of the bytes every operation built
// or scanned (a list item counts as sizeof(Value) bytes).
struct Budget {
  size_t max_string_bytes = 0;
  size_t max_list_items = 0;
  uint64_t max_work_bytes = 0;
  uint64_t work = 0;
  void check_string(size_t bytes) const;
  void check_list(size_t items) const;
  void charge(uint64_t bytes);
  // What building or scanning v costs: string bytes, list items plus the strings directly in them.
  static uint64_t cost(const Value& v);
};

// Conversions between JSON (the conversation) and values. Strings must be valid UTF-8;
// integers must fit int64 (Python's are unbounded; cohort refuses the rest).
Value from_json(const nlohmann::ordered_json& j);

// Python semantics.
bool truthy(const Value& v);
std::string py_str(const Value& v);   // str(v); Undefined prints as ""
std::string py_repr(const Value& v);  // repr(v)
std::string py_float_repr(double d);
std::string type_name(const Value& v);  // Python's type name for error messages
bool py_equal(const Value& a, const Value& b);
// a OP b for OP in <, <=, >, >=; throws EvalError for unorderable types (Python's TypeError).
bool py_order(const Value& a, const Value& b, const std::string& op);
bool py_contains(const Value& container, const Value& needle);
std::vector<Value> py_iterate(const Value& v);  // list(v)
int64_t py_len(const Value& v);

// transformers' tojson: json.dumps(x, ensure_ascii, indent, separators, sort_keys).
struct JsonOptions {
  std::optional<std::string> indent;  // None, or the indent unit ("    " for indent=4)
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
  bool ensure_ascii = false;
  size_t max_bytes = SIZE_MAX;  // EvalError past this many output bytes
};
std::string json_dumps(const Value& v, const JsonOptions& options);

// Unicode helpers over UTF-8 strings (Python str works on code points).
std::u32string utf8_decode(const std::string& s);  // throws EvalError on invalid UTF-8
std::string utf8_encode(const std::u32string& s);
void utf8_append(std::string& out, char32_t c);
bool py_isspace(char32_t c);  // str.isspace / str.strip() / str.split() whitespace

}  // namespace cohort::jinja
