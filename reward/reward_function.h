// The reward interface the rollout and trainer code score completions through: one function
// turns (prompt, completion, dataset row) into a score or "no score", and a RewardSet combines
// several with weights and keeps one bad completion from ever stopping training.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reward/outcome.h"

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

class IsolationPool;
class RewardClient;

// Several functions with weights. Config: a non-empty JSON array of objects
// {"name": "accuracy", "kind": "exact_match", "weight": 1.0, ...kind options}; name defaults to
// kind, weight to 1.0; names unique. Keys every entry may carry besides its kind's options:
//   "isolate": true    score in the isolation pool's worker processes (reward/isolation_pool.h)
//   "timeout_s": N     deadline per sample for an isolated or remote function (service.timeout_s)
// Kind "remote" scores on the reward servers of service.endpoints; its option "function" names the
// server's function (default: the entry's name). A plugin's kinds (service.plugins) always run isolated.
class RewardSet {
 public:
  explicit RewardSet(const nlohmann::json& config, ServiceOptions service = {});
  RewardSet(RewardSet&&) noexcept;
  RewardSet& operator=(RewardSet&&) noexcept;
  ~RewardSet();

  struct Result {
    std::vector<std::optional<double>> per_function;  // in config order
    std::optional<double> total;    // weighted sum over the functions that scored; nullopt when none scored
    std::vector<Unscored> reasons;  // per function: none when it scored, else why not
  };

  // Runs body(i) for i in [0, n), in parallel where the caller has threads to give (the trainer passes
  // an OpenMP loop); an empty one runs in order.
  using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t)>& body)>;

  // Never throws for a bad completion: a function that throws (or returns a non-finite value, hangs
  // or crashes in isolation, or whose server is unreachable under on_unavailable: skip) gives "no
  // score" for that sample; the error is counted per (function, message) and logged to stderr the
  // first time each is seen. Under on_unavailable: stop an unreachable server throws RewardUnavailable.
  // Safe to call from several threads at once.
  Result score(const RewardInput& in) const;
  std::vector<Result> score_batch(const std::vector<RewardInput>& inputs, const ParallelFor& parallel = {}) const;
  // The outcomes of the functions `which` (indices into names()) for every input: [input][k]. Isolated
  // functions not done by `deadline` time out; in-process functions are not interrupted.
  OutcomeMatrix score_outcomes(const std::vector<RewardInput>& inputs, const std::vector<size_t>& which,
                               Clock::time_point deadline, const ParallelFor& parallel = {}) const;

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<double>& weights() const { return weights_; }
  // Where function i runs: "in process", "isolated" or "remote 'NAME'".
  std::string placement(size_t i) const;
  // Errors counted so far: "function: message" -> count.
  std::map<std::string, int64_t> error_counts() const;
  // Samples x functions without a score so far, by reason.
  UnscoredCounts unscored_counts() const;
  // Isolated worker processes killed (timeouts) or lost (crashes) and replaced so far.
  int64_t workers_replaced() const;

 private:
  struct State;  // counters, the pool and the client, behind a pointer so a RewardSet can be moved
  enum class Where { local, isolated, remote };
  void record(size_t function_index, const Outcome& outcome) const;
  IsolationPool& pool() const;
  RewardClient& client() const;

  std::vector<std::string> names_;
  std::vector<double> weights_;
  std::vector<std::unique_ptr<RewardFunction>> functions_;  // null for remote functions
  std::vector<Where> where_;
  std::vector<std::string> remote_names_;
  std::vector<double> timeouts_;
  ServiceOptions service_;
  std::unique_ptr<State> state_;
};

// No reward server could be reached and reward.on_unavailable is stop: the run ends with the reason.
class RewardUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cohort::reward
