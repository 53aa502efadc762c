// The table of built-in reward kinds: the one place a kind name becomes a RewardFunction, so the
// list in errors and in reward_kinds() can never disagree with what is constructible.
#include "reward/reward_function.h"

#include <functional>

#include "reward/answer.h"
#include "reward/code_tests.h"
#include "reward/countdown.h"
#include "reward/format.h"
#include "reward/length.h"
#include "reward/math_verify.h"
#include "reward/plugin_loader.h"

namespace cohort::reward {
namespace {

using Factory = std::function<std::unique_ptr<RewardFunction>(const nlohmann::json&)>;

template <typename T>
Factory factory() {
  return [](const nlohmann::json& options) { return std::make_unique<T>(options); };
}

// Sorted by name, which is the order reward_kinds() and error messages list them in.
const std::vector<std::pair<std::string, Factory>>& builtin_kinds() {
  static const std::vector<std::pair<std::string, Factory>> kinds = {
      {"code_tests", factory<CodeTestsReward>()},
      {"countdown", factory<CountdownReward>()},
      {"exact_match", factory<ExactMatchReward>()},
      {"format", factory<FormatReward>()},
      {"length_penalty", factory<LengthPenaltyReward>()},
      {"math_verify", factory<MathVerifyReward>()},
      {"overlong", factory<OverlongReward>()},
  };
  return kinds;
}

}  // namespace

// Built-ins only: plugin kinds depend on what this process loaded (plugin_kinds()).
std::vector<std::string> reward_kinds() {
  std::vector<std::string> names;
  for (const auto& [name, make] : builtin_kinds()) names.push_back(name);
  return names;
}

std::unique_ptr<RewardFunction> make_reward_function(std::string_view kind, const nlohmann::json& options) {
  for (const auto& [name, make] : builtin_kinds()) {
    if (name == kind) return make(options);
  }
  if (auto function = make_plugin_reward_function(kind, options)) return function;
  std::string known;
  for (const auto& name : reward_kinds()) known += (known.empty() ? "" : ", ") + name;
  std::string plugins;
  for (const auto& name : plugin_kinds()) plugins += (plugins.empty() ? "" : ", ") + name;
  throw RewardConfigError("unknown reward kind '" + std::string(kind) + "'; known kinds: " + known +
                          "; plugin kinds: " + (plugins.empty() ? "(no reward plugin loaded)" : plugins));
}

}  // namespace cohort::reward
