// The reward interface the rollout and trainer code score completions through: one function
// turns (prompt, completion, dataset row) into a score or "no score", and a RewardSet combines
// several with weights and keeps one bad completion from ever stopping training.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace cohort::reward {

// A reward configuration that cannot work (unknown kind or option, wrong type, bad pattern).
// Thrown at construction, before any completion is scored.
class RewardConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Metadata = nlohmann::json;  // the dataset row, e.g. {"answer": "42"} or {"numbers": [3, 5, 7], "target": 22}

struct RewardInput {
  std::string_view prompt;
  std::string_view completion;  // decoded completion text, special tokens removed; untrusted
  const Metadata& metadata;
  int64_t completion_tokens = 0;  // length in tokens
  bool truncated = false;         // stopped by the length limit, not a stop token
};

// A reward function is immutable after construction, so one instance may score from many
// threads at once.
class RewardFunction {
 public:
  virtual ~RewardFunction() = default;
  virtual std::string_view kind() const = 0;
  // A score, or std::nullopt for "no score" (left out of group means; advantage 0). May throw:
  // a RewardSet turns the exception into "no score" and counts it.
  virtual std::optional<double> score(const RewardInput& in) const = 0;
};

// kind names: "exact_match", "math_verify", "format", "countdown", "length_penalty", "overlong".
// Options are the function's JSON object (null means no options); an unknown option key is a
// RewardConfigError naming the key and the known ones.
std::unique_ptr<RewardFunction> make_reward_function(std::string_view kind, const nlohmann::json& options);
std::vector<std::string> reward_kinds();

// Several functions with weights. Config: a non-empty JSON array of objects
// {"name": "accuracy", "kind": "exact_match", "weight": 1.0, ...kind options}; name defaults to
// kind, weight to 1.0; names unique.
class RewardSet {
 public:
  explicit RewardSet(const nlohmann::json& config);
  RewardSet(RewardSet&&) noexcept;
  RewardSet& operator=(RewardSet&&) noexcept;
  ~RewardSet();

  struct Result {
    std::vector<std::optional<double>> per_function;  // in config order
    std::optional<double> total;  // weighted sum over the functions that scored; nullopt when none scored
  };

  // Never throws for a bad completion: a function that throws (or returns a non-finite value)
  // gives "no score" for that sample; the error is counted per (function, message) and logged to
  // stderr the first time each is seen. Safe to call from several threads at once.
  Result score(const RewardInput& in) const;

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<double>& weights() const { return weights_; }
  // Errors counted so far: "function: message" -> count.
  std::map<std::string, int64_t> error_counts() const;

 private:
  struct ErrorLog;  // counters and their mutex, behind a pointer so a RewardSet can be moved
  void record_error(size_t function_index, std::string_view message) const;

  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<std::unique_ptr<RewardFunction>> functions_;
  std::unique_ptr<ErrorLog> errors_;
};

}  // namespace cohort::reward
