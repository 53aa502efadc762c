#pragma once
// Config machinery: each option is declared once (dotted key, field, default, help, constraints) in a Schema,
// and that one declaration drives YAML parsing, `key=value` overrides, validation, --help and the resolved
// config that is printed and saved with a run. Errors name the file, the line, the key and what was expected.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace cohort::config {

class SchemaLoader;

// Every config problem: a bad file, a bad override, a failed check, or a bad declaration (a programming error).
// what() holds one problem per line; messages() holds them one by one.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message);
  explicit ConfigError(std::vector<std::string> messages);
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  std::vector<std::string> messages_;
};

// Binds dotted keys ("rollout.temperature") to fields of a settings struct. The fields must outlive the Schema.
// Keys are segments of [A-Za-z0-9_-] joined by dots; a key is either a value or a section, never both.
class Schema {
 public:
  Schema();
  ~Schema();
  Schema(Schema&&) noexcept;
  Schema& operator=(Schema&&) noexcept;
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  // Each add* sets *field to def at once and records the key. A bad key, a duplicate, a key that is also a section
  // of another key, or a default that breaks its own range or choices throws ConfigError. Ranges are inclusive.
  void add(std::string key, int64_t* field, int64_t def, std::string help, std::optional<int64_t> min = {},
           std::optional<int64_t> max = {});
  void add(std::string key, double* field, double def, std::string help, std::optional<double> min = {},
           std::optional<double> max = {});
  void add(std::string key, bool* field, bool def, std::string help);
  // choices empty: any string.
  void add(std::string key, std::string* field, std::string def, std::string help,
           std::vector<std::string> choices = {});
  void add(std::string key, std::vector<std::string>* field, std::vector<std::string> def, std::string help);
  // A whole YAML subtree (say a list of reward function objects), kept as JSON and not checked key by key.
  void add(std::string key, nlohmann::json* field, nlohmann::json def, std::string help);
  // Parsed from and printed as the names; every value the field may hold at to_yaml() time must have a name.
  template <typename E>
  void add_enum(std::string key, E* field, E def, std::string help, std::vector<std::pair<std::string, E>> names);

  // Runs after everything parsed without error; returns "" or a message that names the keys involved.
  void add_check(std::function<std::string()> check);

  // Reads the YAML file at path, then applies the "a.b.c=value" overrides in order (the value is read as YAML, so
  // `x=0.7`, `flag=true`, `list=[a, b]` work; `x=` is the empty string), then runs the checks. Values apply on top
  // of the current ones. Throws ConfigError with every problem found (file and overrides together); fields may then
  // hold a mix of old and new values.
  void load(const std::string& path, const std::vector<std::string>& overrides);
  // The same for YAML text; source_name stands for the file in messages.
  void load_string(const std::string& yaml_text, const std::string& source_name,
                   const std::vector<std::string>& overrides);

  // Every declared key with its current value, nested as YAML mappings in declaration order; loading it into a
  // fresh Schema gives the same values.
  std::string to_yaml() const;
  // One line per key: key, type (with range or choices), default, help.
  std::string help() const;
  // The same as a Markdown table (docs/config.md holds it, and a test keeps the two equal).
  std::string markdown() const;
  // Whether the key was given in a file or an override; throws ConfigError for an undeclared key.
  bool was_set(const std::string& key) const;
  // The declared keys, in declaration order.
  std::vector<std::string> keys() const;

  struct Option;  // one declaration; defined in config.cpp

 private:
  friend class SchemaLoader;  // config.cpp: walks YAML against the declarations

  void add_enum_by_index(std::string key, std::string help, std::vector<std::string> names, size_t default_index,
                         std::function<void(size_t)> set_index, std::function<size_t()> current_index);
  void declare(std::unique_ptr<Option> option);
  const Option* find(const std::string& key) const;

  std::vector<std::unique_ptr<Option>> options_;  // in declaration order
  std::map<std::string, size_t> index_of_key_;
  std::map<std::string, std::string> sections_;  // each proper prefix of a key -> the first key under it
  std::vector<std::function<std::string()>> checks_;
};

template <typename E>
void Schema::add_enum(std::string key, E* field, E def, std::string help,
                      std::vector<std::pair<std::string, E>> names) {
  std::vector<std::string> labels;
  std::vector<E> values;
  for (auto& [label, value] : names) {
    labels.push_back(label);
    values.push_back(value);
  }
  size_t default_index = values.size();
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] == def) {
      default_index = i;
      break;
    }
  }
  add_enum_by_index(
      std::move(key), std::move(help), std::move(labels), default_index,
      [field, values](size_t i) { *field = values[i]; },
      [field, values]() {
        for (size_t i = 0; i < values.size(); ++i) {
          if (values[i] == *field) return i;
        }
        return values.size();
      });
}

}  // namespace cohort::config
