// Tests for reward plugins: the keyword test plugin through make_reward_function (in this
// process) and RewardSet (which scores plugin kinds in the isolation pool's workers), options
// reaching create, every field of the sample reaching score, every refusal (ABI version, missing
// file or symbol, bad registrations), idempotent loads, and an error status becoming a counted
// "no score". The hang, crash and hungry plugins are only loaded here; their functions run in
// worker processes in the isolation pool's tests.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "reward/plugin.h"
#include "reward/plugin_loader.h"
#include "reward/reward_function.h"

namespace cohort::reward {
namespace {

RewardInput input(std::string_view completion, const Metadata& metadata, int64_t tokens = 0, bool truncated = false) {
  return RewardInput{.prompt = "q",
                     .completion = completion,
                     .metadata = metadata,
                     .completion_tokens = tokens,
                     .truncated = truncated};
}

// The RewardConfigError text of load_reward_plugin(path), or "(loaded)".
std::string load_error(const std::string& path) {
  try {
    load_reward_plugin(path);
  } catch (const RewardConfigError& e) {
    return e.what();
  }
  return "(loaded)";
}

std::string config_error(const nlohmann::json& config) {
  try {
    RewardSet set(config);
  } catch (const RewardConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string canonical(const std::string& path) {
  return std::filesystem::canonical(path).string();
}

TEST(RewardPlugin, LoadsAndRegistersKinds) {
  std::vector<std::string> kinds = load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  EXPECT_EQ(kinds, (std::vector<std::string>{"keyword_contains", "sample_fields"}));
  EXPECT_TRUE(is_plugin_kind("keyword_contains"));
  EXPECT_TRUE(is_plugin_kind("sample_fields"));
  EXPECT_FALSE(is_plugin_kind("exact_match"));
  std::vector<std::string> all = plugin_kinds();
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_NE(std::find(all.begin(), all.end(), "keyword_contains"), all.end());

  std::optional<PluginKindInfo> info = plugin_kind_info("keyword_contains");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->kind, "keyword_contains");
  EXPECT_EQ(info->description, "1 when the completion contains the option 'keyword'");
  EXPECT_EQ(info->path, canonical(COHORT_TEST_PLUGIN_KEYWORD));
  EXPECT_FALSE(plugin_kind_info("exact_match"));
  std::vector<std::string> loaded = loaded_reward_plugins();
  EXPECT_NE(std::find(loaded.begin(), loaded.end(), canonical(COHORT_TEST_PLUGIN_KEYWORD)), loaded.end());
  // reward_kinds() stays the built-ins.
  std::vector<std::string> builtins = reward_kinds();
  EXPECT_EQ(std::find(builtins.begin(), builtins.end(), "keyword_contains"), builtins.end());
}

TEST(RewardPlugin, LoadingTwiceIsANoOp) {
  std::vector<std::string> first = load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  size_t loaded = loaded_reward_plugins().size();
  EXPECT_EQ(load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD), first);
  // Another spelling of the same file, through a symbolic link and "./", is the same plugin.
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("cohort_plugin_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::path link = dir / "link.so";
  std::filesystem::remove(link);
  std::filesystem::create_symlink(canonical(COHORT_TEST_PLUGIN_KEYWORD), link);
  EXPECT_EQ(load_reward_plugin((dir / "." / "link.so").string()), first);
  EXPECT_EQ(loaded_reward_plugins().size(), loaded);
  std::filesystem::remove_all(dir);
}

TEST(RewardPlugin, ScoresThroughMakeRewardFunction) {
  load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  std::unique_ptr<RewardFunction> function = make_reward_function("keyword_contains", {{"keyword", "42"}});
  EXPECT_EQ(function->kind(), "keyword_contains");
  Metadata metadata = {{"answer", "42"}};
  EXPECT_EQ(function->score(input("the answer is 42", metadata)), 1.0);
  EXPECT_EQ(function->score(input("the answer is 41", metadata)), 0.0);
  EXPECT_EQ(function->score(input("", metadata)), 0.0);
  // The length is authoritative: a NUL inside the completion does not end it.
  EXPECT_EQ(function->score(input(std::string_view("a\0b42", 5), metadata)), 1.0);
  // A completion that is a prefix of a longer buffer ends where its length says.
  std::string_view prefix = std::string_view("4242").substr(0, 1);
  EXPECT_EQ(function->score(input(prefix, metadata)), 0.0);
}

TEST(RewardPlugin, OptionsReachCreate) {
  load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  std::unique_ptr<RewardFunction> seven = make_reward_function("keyword_contains", {{"keyword", "seven"}});
  Metadata metadata = nlohmann::json::object();
  EXPECT_EQ(seven->score(input("six seven", metadata)), 1.0);
  EXPECT_EQ(seven->score(input("the answer is 42", metadata)), 0.0);

  try {
    make_reward_function("keyword_contains", nullptr);
    FAIL() << "missing option accepted";
  } catch (const RewardConfigError& e) {
    EXPECT_TRUE(contains(e.what(),
                         "keyword_contains: the plugin refused its options: option 'keyword' (a string) "
                         "is required"))
        << e.what();
  }
  EXPECT_THROW(make_reward_function("keyword_contains", nlohmann::json::array({1})), RewardConfigError);
  // A function without create takes no options.
  EXPECT_TRUE(contains(config_error(nlohmann::json::parse(R"([{"kind": "sample_fields", "extra": 1}])")),
                       "rewards[0] ('sample_fields'): sample_fields: takes no options"));
  EXPECT_EQ(make_reward_function("sample_fields", nlohmann::json::object())->kind(), "sample_fields");
}

TEST(RewardPlugin, EveryFieldOfTheSampleArrives) {
  load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  std::unique_ptr<RewardFunction> fields = make_reward_function("sample_fields", nullptr);
  Metadata metadata = {{"answer", "42"}};
  // 1000 * prompt length ("q") + completion_tokens + 0.5 when truncated.
  EXPECT_EQ(fields->score(input("x", metadata, 7)), 1007.0);
  EXPECT_EQ(fields->score(input("x", metadata, 7, true)), 1007.5);
  EXPECT_EQ(fields->score(input("x", nullptr, 3)), 1003.0);  // null metadata arrives as "{}"
  EXPECT_EQ(fields->score(input("x", {{"skip", true}}, 3)), std::nullopt);
  // Text views with no NUL after them still arrive NUL-terminated (the plugin checks).
  std::string long_prompt = "abcdef";
  RewardInput sliced{.prompt = std::string_view(long_prompt).substr(0, 2),
                     .completion = std::string_view(long_prompt).substr(2, 2),
                     .metadata = metadata,
                     .completion_tokens = 1,
                     .truncated = false};
  EXPECT_EQ(fields->score(sliced), 2001.0);
}

TEST(RewardPlugin, ScoresThroughRewardSet) {
  load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  RewardSet set(nlohmann::json::parse(R"([
    {"name": "has_42", "kind": "keyword_contains", "keyword": "42", "weight": 2.0},
    {"kind": "exact_match"}
  ])"));
  EXPECT_EQ(set.names(), (std::vector<std::string>{"has_42", "exact_match"}));
  Metadata metadata = {{"answer", "42"}};
  RewardSet::Result result = set.score(input("42", metadata));
  EXPECT_EQ(result.per_function, (std::vector<std::optional<double>>{1.0, 1.0}));
  EXPECT_EQ(result.total, 3.0);
  result = set.score(input("the answer: 41", metadata));
  EXPECT_EQ(result.per_function, (std::vector<std::optional<double>>{0.0, 0.0}));
  EXPECT_TRUE(set.error_counts().empty());
  EXPECT_TRUE(contains(config_error(nlohmann::json::parse(R"([{"kind": "keyword_contains"}])")),
                       "rewards[0] ('keyword_contains'): keyword_contains: the plugin refused its options"));
}

TEST(RewardPlugin, UnknownKindListsPluginKinds) {
  load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);
  try {
    make_reward_function("keyword_contain", nullptr);
    FAIL() << "unknown kind accepted";
  } catch (const RewardConfigError& e) {
    std::string message = e.what();
    std::string builtins;
    for (const auto& name : reward_kinds()) builtins += (builtins.empty() ? "" : ", ") + name;
    EXPECT_TRUE(contains(message, "known kinds: " + builtins + "; plugin kinds: ")) << message;
    EXPECT_TRUE(contains(message, "plugin kinds: ")) << message;
    EXPECT_TRUE(contains(message, "keyword_contains")) << message;
  }
}

TEST(RewardPlugin, UnknownAbiVersionIsRefusedNamingBoth) {
  std::string message = load_error(COHORT_TEST_PLUGIN_BAD_VERSION);
  EXPECT_TRUE(contains(message, std::string("reward plugin '") + COHORT_TEST_PLUGIN_BAD_VERSION + "'")) << message;
  EXPECT_TRUE(contains(message, "ABI version 999")) << message;
  EXPECT_TRUE(contains(message, "ABI version " + std::to_string(COHORT_REWARD_PLUGIN_ABI_VERSION))) << message;
  EXPECT_FALSE(is_plugin_kind("bad_version"));
  // Still refused the second time: a failed load is not remembered as loaded.
  EXPECT_TRUE(contains(load_error(COHORT_TEST_PLUGIN_BAD_VERSION), "ABI version 999"));
}

TEST(RewardPlugin, MissingFileIsRefused) {
  std::string message = load_error("/nonexistent/libnothing.so");
  EXPECT_TRUE(contains(message, "reward plugin '/nonexistent/libnothing.so'")) << message;
  EXPECT_TRUE(contains(message, "No such file")) << message;
}

TEST(RewardPlugin, NonLibraryIsRefusedWithDlerror) {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("cohort_not_a_plugin_" + std::to_string(getpid()) + ".so");
  std::ofstream(path) << "not an ELF file\n";
  std::string message = load_error(path.string());
  std::filesystem::remove(path);
  EXPECT_TRUE(contains(message, "reward plugin '" + path.string() + "': cannot load: ")) << message;
  EXPECT_TRUE(contains(message, path.string() + ": ")) << message;  // dlerror names the file and the reason
}

TEST(RewardPlugin, LibraryWithoutEntryPointsIsRefused) {
  std::string message = load_error(COHORT_TEST_PLUGIN_NO_REGISTER);
  EXPECT_TRUE(contains(message, "does not export cohort_reward_plugin_register")) << message;

  // libm: a shared library, but no plugin.
  void* libm = dlopen("libm.so.6", RTLD_LAZY);
  ASSERT_NE(libm, nullptr) << dlerror();
  Dl_info where{};
  ASSERT_NE(dladdr(dlsym(libm, "cos"), &where), 0);
  message = load_error(where.dli_fname);
  EXPECT_TRUE(contains(message, "does not export cohort_reward_plugin_abi_version; is it a cohort reward plugin?"))
      << message;
}

TEST(RewardPlugin, BadRegistrationsAreRefusedAndRegisterNothing) {
  load_reward_plugin(COHORT_TEST_PLUGIN_KEYWORD);  // for "taken"
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"duplicate", "function 'bad_register_ok' is registered twice"},
      {"builtin", "function 'exact_match' has the name of a built-in reward kind"},
      {"taken", "function 'keyword_contains' is already defined by the reward plugin '" +
                    canonical(COHORT_TEST_PLUGIN_KEYWORD) + "'"},
      {"invalid_name", "function name 'bad name!' is invalid"},
      {"no_score", "function 'bad_register_ok' has no score function"},
      {"fail", "cohort_reward_plugin_register failed (returned 1)"},
      {"none", "registered no reward functions"},
  };
  for (const auto& [mode, expected] : cases) {
    setenv("COHORT_TEST_REGISTER_MODE", mode.c_str(), 1);
    std::string message = load_error(COHORT_TEST_PLUGIN_BAD_REGISTER);
    EXPECT_TRUE(contains(message, expected)) << mode << ": " << message;
    EXPECT_FALSE(is_plugin_kind("bad_register_ok")) << mode;
  }
  unsetenv("COHORT_TEST_REGISTER_MODE");
  EXPECT_EQ(plugin_kind_info("keyword_contains")->path, canonical(COHORT_TEST_PLUGIN_KEYWORD));
}

TEST(RewardPlugin, ErrorStatusIsACountedNoScore) {
  EXPECT_EQ(load_reward_plugin(COHORT_TEST_PLUGIN_ERROR), (std::vector<std::string>{"always_error"}));
  std::unique_ptr<RewardFunction> function = make_reward_function("always_error", nullptr);
  Metadata metadata = nlohmann::json::object();
  try {
    function->score(input("x", metadata));
    FAIL() << "error status did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "plugin says no");
  }

  RewardSet set(nlohmann::json::parse(R"([
    {"kind": "always_error"},
    {"name": "unterminated", "kind": "always_error", "unterminated": true},
    {"kind": "format", "pattern": "x"}
  ])"));
  for (int i = 0; i < 3; ++i) {
    RewardSet::Result result = set.score(input("x", metadata));
    EXPECT_EQ(result.per_function, (std::vector<std::optional<double>>{std::nullopt, std::nullopt, 1.0}));
    EXPECT_EQ(result.total, 1.0);
  }
  std::map<std::string, int64_t> errors = set.error_counts();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors["always_error: plugin says no"], 3);
  // A message without its NUL is cut at the buffer's end (and then by RewardSet's own bound).
  auto unterminated = std::find_if(errors.begin(), errors.end(),
                                   [](const auto& entry) { return entry.first.starts_with("unterminated: xxx"); });
  ASSERT_NE(unterminated, errors.end());
  EXPECT_EQ(unterminated->second, 3);

  std::unique_ptr<RewardFunction> raw = make_reward_function("always_error", {{"unterminated", true}});
  try {
    raw->score(input("x", metadata));
    FAIL() << "error status did not throw";
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    EXPECT_GE(message.size(), 256u);
    EXPECT_LE(message.size(), 1024u);
    EXPECT_EQ(message.find_first_not_of('x'), std::string::npos);
  }
}

TEST(RewardPlugin, MisbehavingPluginsLoadButAreNotScoredHere) {
  EXPECT_EQ(load_reward_plugin(COHORT_TEST_PLUGIN_HANG), (std::vector<std::string>{"hang"}));
  EXPECT_EQ(load_reward_plugin(COHORT_TEST_PLUGIN_CRASH), (std::vector<std::string>{"crash"}));
  EXPECT_EQ(load_reward_plugin(COHORT_TEST_PLUGIN_HUNGRY), (std::vector<std::string>{"hungry"}));
  for (std::string kind : {"hang", "crash", "hungry"}) {
    EXPECT_EQ(make_reward_function(kind, nullptr)->kind(), kind);  // construction only: score is the pool's to test
  }
}

// The example plugin (examples/reward_plugin) built against an installed cohort; run by
// tests/cli/plugin_example_test.sh, which sets COHORT_EXAMPLE_PLUGIN. Scored in this process.
TEST(RewardPlugin, ExamplePlugin) {
  const char* path = std::getenv("COHORT_EXAMPLE_PLUGIN");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "COHORT_EXAMPLE_PLUGIN is not set";
  EXPECT_EQ(load_reward_plugin(path), (std::vector<std::string>{"keywords_mentioned"}));

  std::vector<std::unique_ptr<RewardFunction>> functions;
  functions.push_back(make_reward_function("keywords_mentioned", nullptr));
  functions.push_back(make_reward_function("keywords_mentioned", {{"fraction", true}}));
  functions.push_back(make_reward_function("keywords_mentioned", {{"field", "terms"}, {"case_sensitive", true}}));
  // Each function's score, or -1 for an error.
  using Scores = std::vector<std::optional<double>>;
  auto score = [&](std::string_view completion, const Metadata& metadata) {
    Scores scores;
    for (const auto& function : functions) {
      try {
        scores.push_back(function->score(input(completion, metadata)));
      } catch (const std::runtime_error& e) {
        EXPECT_TRUE(contains(e.what(), "is not a list of strings")) << e.what();
        scores.push_back(-1.0);
      }
    }
    return scores;
  };
  Metadata both = {{"keywords", {"Paris", "Seine"}}, {"terms", {"Paris"}}};
  EXPECT_EQ(score("PARIS lies on the seine.", both), (Scores{1.0, 1.0, 0.0}));
  EXPECT_EQ(score("Paris, France", both), (Scores{0.0, 0.5, 1.0}));
  EXPECT_EQ(score("", both), (Scores{0.0, 0.0, 0.0}));
  // Escapes in the row decode before matching: "caf\u00e9" is "café", "\ud83d\ude00" one emoji.
  Metadata escaped = nlohmann::json::parse(R"({"keywords": ["caf\u00e9", "\ud83d\ude00", "a\"b", "tab\there"]})");
  EXPECT_EQ(score("Un caf\xc3\xa9 \xf0\x9f\x98\x80 a\"b tab\there", escaped), (Scores{1.0, 1.0, std::nullopt}));
  EXPECT_EQ(score("Un cafe", escaped), (Scores{0.0, 0.0, std::nullopt}));
  // Other members of any shape before the field are skipped.
  Metadata nested =
      nlohmann::json::parse(R"({"a": {"b": [1, {"c": null}], "d": "x\"}"}, "e": -1.5e3, "keywords": ["x"]})");
  EXPECT_EQ(score("x", nested), (Scores{1.0, 1.0, std::nullopt}));
  // No keywords for this row: no score. A field that is not a list of strings: an error.
  EXPECT_EQ(score("Paris", {{"answer", "1"}}), (Scores{std::nullopt, std::nullopt, std::nullopt}));
  EXPECT_EQ(score("Paris", {{"keywords", nlohmann::json::array()}}),
            (Scores{std::nullopt, std::nullopt, std::nullopt}));
  EXPECT_EQ(score("Paris", {{"keywords", {"Paris", 3}}}), (Scores{-1.0, -1.0, std::nullopt}));
  EXPECT_EQ(score("Paris", {{"keywords", "Paris"}}), (Scores{-1.0, -1.0, std::nullopt}));

  EXPECT_TRUE(contains(config_error(nlohmann::json::parse(R"([{"kind": "keywords_mentioned", "feild": "x"}])")),
                       "unknown option 'feild' (known: field, case_sensitive, fraction)"));
  EXPECT_TRUE(contains(config_error(nlohmann::json::parse(R"([{"kind": "keywords_mentioned", "fraction": 1}])")),
                       "option 'fraction' must be true or false"));
  EXPECT_TRUE(contains(config_error(nlohmann::json::parse(R"([{"kind": "keywords_mentioned", "field": ""}])")),
                       "option 'field' must be a non-empty string"));
}

}  // namespace
}  // namespace cohort::reward
