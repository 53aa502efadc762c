// Loads reward plugins (shared libraries speaking reward/plugin.h's C ABI) into a process-wide
// registry, so that their functions become reward kinds that make_reward_function and RewardSet
// build like the built-ins. Loading happens once per library; libraries are never unloaded.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "reward/reward_function.h"

namespace cohort::reward {

// Loads the plugin at `path` and registers each of its functions as a reward kind; returns those
// kinds in the order the plugin registered them. Loading a library already loaded (same canonical
// path) does nothing and returns the same kinds. Throws RewardConfigError naming the path when the
// file cannot be loaded (dlerror's text), lacks an entry point, reports an ABI version the host
// does not know (the message names both versions), registers an invalid or duplicate name or one
// taken by a built-in kind or another plugin, or its register function fails; then no kind of it
// is registered. Safe to call from several threads.
std::vector<std::string> load_reward_plugin(const std::string& path);

// Whether `kind` names a function of a loaded plugin.
bool is_plugin_kind(std::string_view kind);

// The kinds of every loaded plugin, sorted. reward_kinds() lists the built-ins only: what a
// process can build depends on which plugins it loaded, and the built-in list is fixed.
std::vector<std::string> plugin_kinds();

struct PluginKindInfo {
  std::string kind;
  std::string description;  // the plugin's one-line description; may be empty
  std::string path;         // canonical path of the library that defines it
};
// A loaded plugin kind's description and library (for listings, and for worker processes that
// must load the same library), or std::nullopt when `kind` is not a plugin kind.
std::optional<PluginKindInfo> plugin_kind_info(std::string_view kind);

// The canonical paths of the loaded plugins, in load order.
std::vector<std::string> loaded_reward_plugins();

// The plugin function `kind` with `options` (a JSON object or null, passed to its create as JSON
// text), or nullptr when `kind` is not a plugin kind; make_reward_function calls it after the
// built-in table. Throws RewardConfigError when options are not an object or create refuses them.
// The returned function's score() runs the plugin's code in this process: a plugin that crashes
// or hangs takes the caller with it.
std::unique_ptr<RewardFunction> make_plugin_reward_function(std::string_view kind, const nlohmann::json& options);

}  // namespace cohort::reward
