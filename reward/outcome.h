// What scoring one sample with one function produced: a score, or "no score" with the reason, and the
// options that decide where a RewardSet's functions run (in process, in isolated worker processes, or on
// remote reward servers). Shared by the RewardSet, the isolation pool, the server and the client.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace cohort::reward {

// The reasons match the protocol's NoScoreReason (comm/proto/reward.proto).
enum class Unscored : uint8_t {
  none = 0,            // scored: Outcome::value holds the score
  not_applicable = 1,  // the function ran and gave no score
  failed = 2,          // it threw or returned a non-finite value
  timeout = 3,         // it ran past its deadline and was abandoned
  crashed = 4,         // its worker process died while scoring
  unavailable = 5,     // no reward server answered in time
};
const char* unscored_name(Unscored reason);

struct Outcome {
  Unscored reason = Unscored::not_applicable;
  double value = 0;
  std::string message;  // why there is no score, bounded; empty when scored

  bool scored() const { return reason == Unscored::none; }
  static Outcome score(double value) { return {Unscored::none, value, {}}; }
  static Outcome none(Unscored reason, std::string message = {}) { return {reason, 0, std::move(message)}; }
};

// Outcomes of samples x functions in one block (a vector per sample cost an allocation per sample):
// m[i][k] is sample i's outcome of function k.
class OutcomeMatrix {
 public:
  OutcomeMatrix() = default;
  OutcomeMatrix(size_t samples, size_t functions) : functions_(functions), cells_(samples * functions) {}
  size_t size() const { return functions_ ? cells_.size() / functions_ : 0; }
  size_t functions() const { return functions_; }
  std::span<Outcome> operator[](size_t sample) { return {cells_.data() + sample * functions_, functions_}; }
  std::span<const Outcome> operator[](size_t sample) const { return {cells_.data() + sample * functions_, functions_}; }

 private:
  size_t functions_ = 0;
  std::vector<Outcome> cells_;
};

// The counts of samples x functions that got no score, by reason, since a RewardSet was made.
struct UnscoredCounts {
  int64_t not_applicable = 0, failed = 0, timeout = 0, crashed = 0, unavailable = 0;
  int64_t& operator[](Unscored reason);
  UnscoredCounts operator-(const UnscoredCounts& earlier) const;
};

enum class OnUnavailable { skip, stop };

// Where and how a RewardSet runs its functions (the config's reward.* keys).
struct ServiceOptions {
  std::vector<std::string> endpoints;  // reward servers (HOST:PORT), tried in order with fail-over
  OnUnavailable on_unavailable = OnUnavailable::skip;
  std::string token_file;            // the servers' shared secret
  bool isolate = false;              // every local function in the isolated worker pool
  std::vector<std::string> plugins;  // shared libraries that add reward kinds; theirs always run isolated
  int64_t workers = 0;               // isolated worker processes (0: the cores)
  int64_t worker_memory_mb = 4096;   // address space a worker may add to what it inherited
  double timeout_s = 30;             // per sample and function, for isolated and remote functions
  int64_t batch_size = 64;           // samples per request to a reward server
  int64_t connections = 4;           // connections per reward server
  int64_t retries = 3;               // further attempts (on other servers first) after a failed request
  double connect_timeout_s = 5;
};

using Clock = std::chrono::steady_clock;

}  // namespace cohort::reward
