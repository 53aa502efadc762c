// Reward plugins: dlopen a library, check its ABI version, collect the functions it registers and
// publish them all at once (or none) in the process-wide registry; then wrap a function and its
// state as a RewardFunction. The C ABI the plugin speaks is reward/plugin.h.
#include "reward/plugin_loader.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

#include "reward/plugin.h"

namespace cohort::reward {
namespace {

// Host-side buffers for a plugin's create error and score message; plugin.h promises at least 256.
constexpr size_t kPluginMessageCap = 1024;

struct PluginFunction {
  cohort_reward_function_def def;  // name and description point into the strings below
  std::string name;
  std::string description;
  std::string path;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const PluginFunction>, std::less<>> kinds;
  std::map<std::string, std::vector<std::string>> kinds_by_path;  // canonical path -> kinds, in registration order
  std::vector<std::string> load_order;
};

// Never destroyed: RewardFunctions that outlive main's locals may still look into it at exit.
Registry& registry() {
  static Registry* instance = new Registry;
  return *instance;
}

// The functions one cohort_reward_plugin_register call offers, checked as they arrive and
// published only if the whole call succeeds. Touched only by the loading thread, which holds the
// registry's mutex throughout.
struct PendingLoad {
  const Registry* registry;
  std::string path;
  std::vector<PluginFunction> functions;
  std::string refusal;  // the first reason a function was refused; empty while all were accepted
};

std::string check_function(const PendingLoad& load, const cohort_reward_function_def* def) {
  if (def == nullptr) return "registered a NULL function definition";
  if (def->name == nullptr) return "registered a function with a NULL name";
  std::string_view name(def->name, strnlen(def->name, COHORT_REWARD_PLUGIN_MAX_NAME + 1));
  bool valid = !name.empty() && name.size() <= COHORT_REWARD_PLUGIN_MAX_NAME &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
               });
  if (!valid) {
    return "function name '" + std::string(name) + "' is invalid (1 to " +
           std::to_string(COHORT_REWARD_PLUGIN_MAX_NAME) + " characters from [A-Za-z0-9_])";
  }
  if (def->score == nullptr) return "function '" + std::string(name) + "' has no score function";
  for (const auto& builtin : reward_kinds()) {
    if (builtin == name) return "function '" + std::string(name) + "' has the name of a built-in reward kind";
  }
  if (auto it = load.registry->kinds.find(name); it != load.registry->kinds.end()) {
    return "function '" + std::string(name) + "' is already defined by the reward plugin '" + it->second->path + "'";
  }
  for (const auto& function : load.functions) {
    if (function.name == name) return "function '" + std::string(name) + "' is registered twice";
  }
  return "";
}

// registry->register_function: must not let an exception into the plugin's C frames.
int register_function(void* host, const cohort_reward_function_def* def) {
  auto* load = static_cast<PendingLoad*>(host);
  try {
    std::string refusal = check_function(*load, def);
    if (refusal.empty()) {
      load->functions.push_back(PluginFunction{
          .def = *def, .name = def->name, .description = def->description ? def->description : "", .path = load->path});
      return 0;
    }
    if (load->refusal.empty()) load->refusal = refusal;
  } catch (const std::exception& e) {
    if (load->refusal.empty()) load->refusal = std::string("registering a function failed: ") + e.what();
  } catch (...) {
    if (load->refusal.empty()) load->refusal = "registering a function failed";
  }
  return 1;
}

// A plugin-written buffer as a string, whether or not the plugin terminated it.
std::string bounded_message(const char* buffer, size_t capacity) {
  return std::string(buffer, strnlen(buffer, capacity));
}

class PluginRewardFunction final : public RewardFunction {
 public:
  PluginRewardFunction(std::shared_ptr<const PluginFunction> function, const nlohmann::json& options)
      : function_(std::move(function)) {
    const std::string& kind = function_->name;
    if (!options.is_null() && !options.is_object()) {
      throw RewardConfigError(kind + ": options must be a JSON object, got " + std::string(options.type_name()));
    }
    bool no_options = options.is_null() || options.empty();
    if (function_->def.create == nullptr) {
      if (!no_options) {
        throw RewardConfigError(kind + ": takes no options, got " +
                                options.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
      return;
    }
    std::string options_json =
        no_options ? "{}" : options.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    char error[kPluginMessageCap] = {};
    state_ = function_->def.create(options_json.c_str(), error, sizeof error);
    if (state_ == nullptr) {
      std::string reason = bounded_message(error, sizeof error);
      throw RewardConfigError(kind + ": the plugin refused its options: " +
                              (reason.empty() ? "(create failed without a message)" : reason));
    }
  }

  ~PluginRewardFunction() override {
    if (state_ != nullptr && function_->def.destroy != nullptr) function_->def.destroy(state_);
  }

  PluginRewardFunction(const PluginRewardFunction&) = delete;
  PluginRewardFunction& operator=(const PluginRewardFunction&) = delete;

  std::string_view kind() const override { return function_->name; }

  std::optional<double> score(const RewardInput& in) const override {
    // Copies give each text the NUL terminator plugin.h promises; a string_view need not have one.
    std::string prompt(in.prompt);
    std::string completion(in.completion);
    std::string metadata =
        in.metadata.is_null() ? "{}" : in.metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    cohort_reward_sample sample{
        .prompt = prompt.c_str(),
        .prompt_len = prompt.size(),
        .completion = completion.c_str(),
        .completion_len = completion.size(),
        .metadata_json = metadata.c_str(),
        .metadata_json_len = metadata.size(),
        .completion_tokens = in.completion_tokens,
        .truncated = in.truncated ? 1 : 0,
    };
    double value = 0.0;
    char message[kPluginMessageCap] = {};
    int status = function_->def.score(state_, &sample, &value, message, sizeof message);
    switch (status) {
      case COHORT_REWARD_SCORED:
        return value;
      case COHORT_REWARD_NO_SCORE:
        return std::nullopt;
      case COHORT_REWARD_ERROR: {
        std::string reason = bounded_message(message, sizeof message);
        throw std::runtime_error(reason.empty() ? "error status without a message" : reason);
      }
      default:
        throw std::runtime_error("returned the unknown status " + std::to_string(status));
    }
  }

 private:
  std::shared_ptr<const PluginFunction> function_;
  void* state_ = nullptr;
};

}  // namespace

std::vector<std::string> load_reward_plugin(const std::string& path) {
  auto fail = [&](const std::string& why) { throw RewardConfigError("reward plugin '" + path + "': " + why); };
  std::error_code error;
  std::string canonical = std::filesystem::canonical(path, error).string();
  if (error) fail(error.message());

  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  if (auto it = reg.kinds_by_path.find(canonical); it != reg.kinds_by_path.end()) return it->second;

  dlerror();  // clear a stale error so the one below is ours
  void* handle = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* reason = dlerror();
    fail(std::string("cannot load: ") + (reason ? reason : "dlopen failed"));
  }
  // Until the plugin's register function runs, nothing of it has been used and it can be unloaded;
  // afterwards it stays, since it may have handed out pointers or started threads.
  auto refuse_unused = [&](const std::string& why) {
    dlclose(handle);
    fail(why);
  };
  using AbiVersionFunction = uint32_t (*)();
  using RegisterFunction = int (*)(const cohort_reward_registry*);
  auto abi_version = reinterpret_cast<AbiVersionFunction>(dlsym(handle, "cohort_reward_plugin_abi_version"));
  if (abi_version == nullptr) {
    refuse_unused("does not export cohort_reward_plugin_abi_version; is it a cohort reward plugin?");
  }
  auto register_plugin = reinterpret_cast<RegisterFunction>(dlsym(handle, "cohort_reward_plugin_register"));
  if (register_plugin == nullptr) refuse_unused("does not export cohort_reward_plugin_register");
  uint32_t version = abi_version();
  if (version != COHORT_REWARD_PLUGIN_ABI_VERSION) {
    refuse_unused("the plugin was built for reward plugin ABI version " + std::to_string(version) +
                  ", but this cohort speaks ABI version " + std::to_string(COHORT_REWARD_PLUGIN_ABI_VERSION) +
                  "; rebuild it against this cohort's reward/plugin.h");
  }

  PendingLoad load{.registry = &reg, .path = canonical, .functions = {}, .refusal = {}};
  cohort_reward_registry host{
      .abi_version = COHORT_REWARD_PLUGIN_ABI_VERSION, .host = &load, .register_function = register_function};
  int status = register_plugin(&host);
  if (!load.refusal.empty()) fail(load.refusal);
  if (status != 0) fail("cohort_reward_plugin_register failed (returned " + std::to_string(status) + ")");
  if (load.functions.empty()) fail("registered no reward functions");

  std::vector<std::string> kinds;
  for (auto& function : load.functions) {
    auto published = std::make_shared<PluginFunction>(std::move(function));
    published->def.name = published->name.c_str();
    published->def.description = published->description.c_str();
    kinds.push_back(published->name);
    reg.kinds.emplace(published->name, std::move(published));
  }
  reg.kinds_by_path.emplace(canonical, kinds);
  reg.load_order.push_back(canonical);
  return kinds;
}

bool is_plugin_kind(std::string_view kind) {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  return reg.kinds.find(kind) != reg.kinds.end();
}

std::vector<std::string> plugin_kinds() {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  std::vector<std::string> kinds;
  for (const auto& [kind, function] : reg.kinds) kinds.push_back(kind);
  return kinds;
}

std::optional<PluginKindInfo> plugin_kind_info(std::string_view kind) {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  auto it = reg.kinds.find(kind);
  if (it == reg.kinds.end()) return std::nullopt;
  return PluginKindInfo{.kind = it->second->name, .description = it->second->description, .path = it->second->path};
}

std::vector<std::string> loaded_reward_plugins() {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  return reg.load_order;
}

std::unique_ptr<RewardFunction> make_plugin_reward_function(std::string_view kind, const nlohmann::json& options) {
  std::shared_ptr<const PluginFunction> function;
  {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mutex);
    auto it = reg.kinds.find(kind);
    if (it == reg.kinds.end()) return nullptr;
    function = it->second;
  }
  return std::make_unique<PluginRewardFunction>(std::move(function), options);
}

}  // namespace cohort::reward
