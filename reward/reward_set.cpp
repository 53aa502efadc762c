// RewardSet: the configured reward functions with their weights. It is the firewall between
// untrusted completions and the trainer: a function that throws or returns NaN yields "no score"
// for that sample (TRL's None, never a silent 0.0), and the failure is counted and logged once.
// It also decides where each function runs: in this process, in the isolation pool's worker
// processes (plugins, functions marked isolate), or on remote reward servers (kind remote).
#include <cmath>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>

#include "reward/client.h"
#include "reward/isolation_pool.h"
#include "reward/plugin_loader.h"
#include "reward/protocol.h"
#include "reward/reward_function.h"

namespace cohort::reward {
namespace {

// Bounds on what errors can cost: after this many distinct messages a function's further new ones
// share one counter, so a function that puts the completion into its messages cannot grow the map
// without bound.
constexpr int kMaxDistinctErrorsPerFunction = 32;

Clock::time_point far_future() {
  return Clock::now() + std::chrono::hours(24 * 365);
}

}  // namespace

struct RewardSet::State {
  std::mutex mutex;
  std::map<std::string, int64_t> counts;
  std::vector<int> distinct;  // distinct messages per function, to bound the map's size
  UnscoredCounts unscored;
  std::once_flag pool_once, client_once;
  std::unique_ptr<IsolationPool> pool;
  std::unique_ptr<RewardClient> client;
};

RewardSet::RewardSet(RewardSet&&) noexcept = default;
RewardSet& RewardSet::operator=(RewardSet&&) noexcept = default;
RewardSet::~RewardSet() = default;

RewardSet::RewardSet(const nlohmann::json& config, ServiceOptions service) : service_(std::move(service)) {
  if (!config.is_array() || config.empty()) {
    throw RewardConfigError("rewards: expected a non-empty JSON array of reward function objects, got " +
                            std::string(config.type_name()));
  }
  for (const std::string& path : service_.plugins) load_reward_plugin(path);
  for (size_t i = 0; i < config.size(); ++i) {
    const nlohmann::json& entry = config[i];
    std::string where = "rewards[" + std::to_string(i) + "]";
    if (!entry.is_object()) throw RewardConfigError(where + ": expected an object, got " + entry.type_name());
    auto kind = entry.find("kind");
    if (kind == entry.end() || !kind->is_string()) {
      std::string known;
      for (const auto& name : reward_kinds()) known += (known.empty() ? "" : ", ") + name;
      throw RewardConfigError(where + ": \"kind\" (a string) is required; known kinds: " + known + ", remote");
    }
    std::string name = kind->get<std::string>();
    if (auto it = entry.find("name"); it != entry.end()) {
      if (!it->is_string() || it->get<std::string>().empty()) {
        throw RewardConfigError(where + ": \"name\" must be a non-empty string");
      }
      name = it->get<std::string>();
    }
    where += " ('" + name + "')";
    double weight = 1.0;
    if (auto it = entry.find("weight"); it != entry.end()) {
      if (!it->is_number() || !std::isfinite(it->get<double>())) {
        throw RewardConfigError(where + ": \"weight\" must be a finite number, got " + it->dump());
      }
      weight = it->get<double>();
    }
    bool isolate = service_.isolate;
    if (auto it = entry.find("isolate"); it != entry.end()) {
      if (!it->is_boolean()) throw RewardConfigError(where + ": \"isolate\" must be true or false, got " + it->dump());
      isolate = it->get<bool>();
    }
    double timeout = service_.timeout_s;
    if (auto it = entry.find("timeout_s"); it != entry.end()) {
      if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>()))
        throw RewardConfigError(where + ": \"timeout_s\" must be a positive number of seconds, got " + it->dump());
      timeout = it->get<double>();
    }
    for (size_t j = 0; j < names_.size(); ++j) {
      if (names_[j] == name) {
        throw RewardConfigError(where + ": duplicate name '" + name + "' (also rewards[" + std::to_string(j) +
                                "]); give each function a distinct \"name\"");
      }
    }
    nlohmann::json options = nlohmann::json::object();
    for (const auto& [key, value] : entry.items()) {
      if (key != "name" && key != "kind" && key != "weight" && key != "isolate" && key != "timeout_s")
        options[key] = value;
    }
    if (*kind == "remote") {
      if (service_.endpoints.empty())
        throw RewardConfigError(where + ": kind remote needs reward servers: set reward.endpoints");
      std::string function = name;
      for (const auto& [key, value] : options.items()) {
        if (key != "function" || !value.is_string() || value.get<std::string>().empty())
          throw RewardConfigError(where +
                                  ": kind remote takes one option, \"function\" (the server's function "
                                  "name, a non-empty string); got \"" +
                                  key + "\"");
        function = value.get<std::string>();
      }
      functions_.push_back(nullptr);
      where_.push_back(Where::remote);
      remote_names_.push_back(function);
    } else {
      try {
        functions_.push_back(make_reward_function(kind->get<std::string>(), options));
      } catch (const RewardConfigError& e) {
        throw RewardConfigError(where + ": " + e.what());
      }
      where_.push_back(isolate || is_plugin_kind(kind->get<std::string>()) ? Where::isolated : Where::local);
      remote_names_.emplace_back();
    }
    names_.push_back(name);
    weights_.push_back(weight);
    timeouts_.push_back(timeout);
  }
  if (!service_.endpoints.empty()) RewardClient::check_options(service_);
  state_ = std::make_unique<State>();
  state_->distinct.assign(functions_.size(), 0);
}

std::string RewardSet::placement(size_t i) const {
  switch (where_.at(i)) {
    case Where::local:
      return "in process";
    case Where::isolated:
      return "isolated";
    case Where::remote:
      return "remote '" + remote_names_[i] + "'";
  }
  return "";
}

IsolationPool& RewardSet::pool() const {
  std::call_once(state_->pool_once, [&] {
    std::vector<IsolatedFunction> isolated;
    for (size_t i = 0; i < functions_.size(); ++i)
      if (where_[i] == Where::isolated) isolated.push_back({names_[i], functions_[i].get()});
    int64_t workers = service_.workers > 0 ? service_.workers : std::max(1u, std::thread::hardware_concurrency());
    state_->pool = std::make_unique<IsolationPool>(std::move(isolated), workers, service_.worker_memory_mb);
  });
  return *state_->pool;
}

RewardClient& RewardSet::client() const {
  std::call_once(state_->client_once, [&] { state_->client = std::make_unique<RewardClient>(service_); });
  return *state_->client;
}

OutcomeMatrix RewardSet::score_outcomes(const std::vector<RewardInput>& inputs, const std::vector<size_t>& which,
                                        Clock::time_point deadline, const ParallelFor& parallel) const {
  const size_t n = inputs.size();
  OutcomeMatrix out(n, which.size());
  std::vector<size_t> local, isolated, remote;  // positions k in `which`
  for (size_t k = 0; k < which.size(); ++k) {
    const size_t f = which[k];
    if (f >= functions_.size()) throw std::out_of_range("RewardSet: no function " + std::to_string(f));
    (where_[f] == Where::local ? local : where_[f] == Where::isolated ? isolated : remote).push_back(k);
  }
  // Remote and isolated functions wait on other processes: they run beside the in-process ones.
  std::future<void> remote_done, isolated_done;
  // Remote and isolated parts run on their own threads only when something else runs beside them.
  const auto policy = [&](bool others) { return others ? std::launch::async : std::launch::deferred; };
  if (!remote.empty() && n > 0) {
    remote_done = std::async(policy(!local.empty() || !isolated.empty()), [&] {
      std::vector<std::string> functions;
      double timeout = 0;
      for (size_t k : remote) {
        functions.push_back(remote_names_[which[k]]);
        timeout = std::max(timeout, timeouts_[which[k]]);
      }
      OutcomeMatrix got = client().score(inputs, functions, timeout, deadline);
      for (size_t i = 0; i < n; ++i)
        for (size_t r = 0; r < remote.size(); ++r) out[i][remote[r]] = std::move(got[i][r]);
    });
  }
  if (!isolated.empty() && n > 0) {
    isolated_done = std::async(policy(!local.empty()), [&] {
      std::vector<IsolatedTask> tasks;
      std::vector<size_t> pool_index(functions_.size(), 0);
      for (size_t f = 0, p = 0; f < functions_.size(); ++f)
        if (where_[f] == Where::isolated) pool_index[f] = p++;
      for (size_t i = 0; i < n; ++i)
        for (size_t k : isolated) tasks.push_back({pool_index[which[k]], &inputs[i], timeouts_[which[k]]});
      std::vector<Outcome> got = pool().run(tasks, deadline);
      for (size_t i = 0, t = 0; i < n; ++i)
        for (size_t k : isolated) out[i][k] = std::move(got[t++]);
    });
  }
  if (!local.empty()) {
    auto body = [&](int64_t i) {
      for (size_t k : local) out[(size_t)i][k] = score_input(*functions_[which[k]], inputs[(size_t)i]);
    };
    if (parallel) {
      parallel((int64_t)n, body);
    } else {
      for (size_t i = 0; i < n; ++i) body((int64_t)i);
    }
  }
  // Wait for both before rethrowing either's exception: they write into `out`.
  std::exception_ptr failure;
  for (std::future<void>* f : {&isolated_done, &remote_done}) {  // a deferred part runs here, first
    if (!f->valid()) continue;
    try {
      f->get();
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < which.size(); ++k) record(which[k], out[i][k]);
  return out;
}

std::vector<RewardSet::Result> RewardSet::score_batch(const std::vector<RewardInput>& inputs,
                                                      const ParallelFor& parallel) const {
  std::vector<size_t> all(functions_.size());
  for (size_t f = 0; f < all.size(); ++f) all[f] = f;
  OutcomeMatrix outcomes = score_outcomes(inputs, all, far_future(), parallel);
  std::vector<Result> results(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    Result& r = results[i];
    r.per_function.resize(all.size());
    r.reasons.resize(all.size());
    double total = 0.0;
    bool any_scored = false;
    for (size_t f = 0; f < all.size(); ++f) {
      r.reasons[f] = outcomes[i][f].reason;
      if (!outcomes[i][f].scored()) continue;
      r.per_function[f] = outcomes[i][f].value;
      total += weights_[f] * outcomes[i][f].value;
      any_scored = true;
    }
    if (any_scored) r.total = total;
  }
  return results;
}

RewardSet::Result RewardSet::score(const RewardInput& in) const {
  return score_batch({in}).front();
}

void RewardSet::record(size_t function_index, const Outcome& outcome) const {
  if (outcome.scored()) return;
  // Counting must not turn a bad sample into a crash, so even allocation failure is swallowed.
  try {
    std::lock_guard<std::mutex> lock(state_->mutex);
    ++state_->unscored[outcome.reason];
    if (outcome.reason == Unscored::not_applicable) return;
    std::string key = names_[function_index] + ": " + printable(outcome.message);
    auto it = state_->counts.find(key);
    if (it == state_->counts.end() && state_->distinct[function_index] >= kMaxDistinctErrorsPerFunction) {
      key = names_[function_index] + ": (further distinct errors)";
      it = state_->counts.find(key);
    }
    if (it != state_->counts.end()) {
      ++it->second;
      return;
    }
    ++state_->distinct[function_index];
    state_->counts.emplace(key, 1);
    std::fprintf(stderr,
                 "cohort reward: function '%s' gave no score (%s): %s (logged once; later occurrences are counted "
                 "in the reward error counts)\n",
                 names_[function_index].c_str(), unscored_name(outcome.reason),
                 key.c_str() + names_[function_index].size() + 2);
  } catch (...) {
  }
}

std::map<std::string, int64_t> RewardSet::error_counts() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->counts;
}

UnscoredCounts RewardSet::unscored_counts() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->unscored;
}

int64_t RewardSet::workers_replaced() const {
  return state_->pool ? state_->pool->workers_replaced() : 0;
}

}  // namespace cohort::reward
