// Tests for RewardSet and the kind table: weights and totals, the no-score rule, a throwing
// function counted and logged once per message, config errors that name the entry, the kind and
// the key, and concurrent scoring from several threads with exact error counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "reward/reward_function.h"

namespace cohort::reward {
namespace {

RewardInput input(std::string_view completion, const Metadata& metadata, int64_t tokens = 0) {
  return RewardInput{.prompt = "q", .completion = completion, .metadata = metadata, .completion_tokens = tokens};
}

const nlohmann::json kAccuracyAndFormat = nlohmann::json::parse(R"([
  {"name": "accuracy", "kind": "exact_match", "weight": 1.0, "extract": ["answer_tag"]},
  {"kind": "format", "weight": 0.5}
])");

const char* kGood = "<think>6*7</think><answer>42</answer>";

std::string config_error(const nlohmann::json& config) {
  try {
    RewardSet set(config);
  } catch (const RewardConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RewardKinds, ListAndFactory) {
  EXPECT_EQ(reward_kinds(), (std::vector<std::string>{"code_tests", "countdown", "exact_match", "format",
                                                      "length_penalty", "math_verify", "overlong"}));
  for (std::string kind : {"countdown", "exact_match", "format"}) {
    EXPECT_EQ(make_reward_function(kind, nullptr)->kind(), kind);
  }
  EXPECT_EQ(make_reward_function("length_penalty", {{"target_tokens", 5}})->kind(), "length_penalty");
  EXPECT_EQ(make_reward_function("overlong", {{"max_tokens", 5}, {"cache_tokens", 1}})->kind(), "overlong");
  try {
    make_reward_function("exact", nullptr);
    FAIL() << "unknown kind accepted";
  } catch (const RewardConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("'exact'"), std::string::npos) << message;
    EXPECT_NE(message.find("countdown, exact_match, format, length_penalty, math_verify, overlong"), std::string::npos)
        << message;
  }
}

TEST(RewardSet, NamesWeightsAndWeightedTotal) {
  RewardSet set(kAccuracyAndFormat);
  EXPECT_EQ(set.names(), (std::vector<std::string>{"accuracy", "format"}));
  EXPECT_EQ(set.weights(), (std::vector<double>{1.0, 0.5}));
  Metadata metadata = {{"answer", "42"}};

  RewardSet::Result good = set.score(input(kGood, metadata));
  EXPECT_EQ(good.per_function, (std::vector<std::optional<double>>{1.0, 1.0}));
  EXPECT_EQ(good.total, 1.5);

  RewardSet::Result wrong = set.score(input("<think>x</think><answer>41</answer>", metadata));
  EXPECT_EQ(wrong.per_function, (std::vector<std::optional<double>>{0.0, 1.0}));
  EXPECT_EQ(wrong.total, 0.5);

  RewardSet::Result neither = set.score(input("41", metadata));
  EXPECT_EQ(neither.per_function, (std::vector<std::optional<double>>{0.0, 0.0}));
  EXPECT_EQ(neither.total, 0.0);  // scored zero, which is not "no score"
  EXPECT_TRUE(set.error_counts().empty());
}

TEST(RewardSet, DefaultWeightIsOneAndNegativeWeightsWork) {
  RewardSet set(nlohmann::json::parse(R"([
    {"kind": "length_penalty", "target_tokens": 10},
    {"name": "short", "kind": "length_penalty", "target_tokens": 10, "weight": -2}
  ])"));
  EXPECT_EQ(set.weights(), (std::vector<double>{1.0, -2.0}));
  Metadata metadata = Metadata::object();
  // Each scores -(15-10)/10 = -0.5; total 1*(-0.5) + (-2)*(-0.5) = 0.5.
  EXPECT_EQ(set.score(input("", metadata, 15)).total, 0.5);
}

TEST(RewardSet, ThrowingFunctionGivesNoScoreCountedOncePerMessage) {
  RewardSet set(kAccuracyAndFormat);
  Metadata no_answer = {{"question", "what is 6*7?"}};
  Metadata bad_answer = {{"answer", {{"nested", 1}}}};

  testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    RewardSet::Result result = set.score(input(kGood, no_answer));
    EXPECT_EQ(result.per_function[0], std::nullopt);
    EXPECT_EQ(result.per_function[1], 1.0);
    EXPECT_EQ(result.total, 0.5);  // only the format function scored
  }
  set.score(input(kGood, bad_answer));
  set.score(input(kGood, bad_answer));
  std::string log = testing::internal::GetCapturedStderr();

  std::map<std::string, int64_t> expected = {
      {"accuracy: metadata has no field 'answer'", 3},
      {"accuracy: metadata field 'answer' must be a string, a number or a non-empty array of them", 2},
  };
  EXPECT_EQ(set.error_counts(), expected);
  // One log line per distinct message, however often it happened.
  size_t lines = std::count(log.begin(), log.end(), '\n');
  EXPECT_EQ(lines, 2u) << log;
  EXPECT_NE(log.find("metadata has no field 'answer'"), std::string::npos) << log;
}

TEST(RewardSet, TotalIsNoScoreWhenNothingScored) {
  RewardSet set(nlohmann::json::parse(R"([{"kind": "exact_match"}, {"kind": "countdown", "weight": 2}])"));
  Metadata empty = Metadata::object();
  testing::internal::CaptureStderr();
  RewardSet::Result result = set.score(input("\\boxed{1}", empty));
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(result.per_function, (std::vector<std::optional<double>>{std::nullopt, std::nullopt}));
  EXPECT_EQ(result.total, std::nullopt);
  EXPECT_EQ(set.error_counts().size(), 2u);
}

TEST(RewardSet, ConfigErrorsNameEntryKindAndKey) {
  EXPECT_NE(config_error(nlohmann::json::object()).find("non-empty JSON array"), std::string::npos);
  EXPECT_NE(config_error(nlohmann::json::array()).find("non-empty JSON array"), std::string::npos);
  EXPECT_NE(config_error(nlohmann::json::parse(R"([3])")).find("rewards[0]: expected an object"), std::string::npos);
  EXPECT_NE(config_error(nlohmann::json::parse(R"([{"name": "a"}])")).find("\"kind\""), std::string::npos);

  std::string unknown_kind = config_error(nlohmann::json::parse(R"([{"kind": "format"}, {"kind": "exactmatch"}])"));
  EXPECT_NE(unknown_kind.find("rewards[1]"), std::string::npos) << unknown_kind;
  EXPECT_NE(unknown_kind.find("'exactmatch'"), std::string::npos) << unknown_kind;
  EXPECT_NE(unknown_kind.find("exact_match"), std::string::npos) << unknown_kind;

  std::string unknown_option =
      config_error(nlohmann::json::parse(R"([{"name": "fmt", "kind": "format", "pattrn": "x"}])"));
  EXPECT_NE(unknown_option.find("rewards[0] ('fmt')"), std::string::npos) << unknown_option;
  EXPECT_NE(unknown_option.find("'pattrn'"), std::string::npos) << unknown_option;
  EXPECT_NE(unknown_option.find("pattern"), std::string::npos) << unknown_option;

  std::string duplicate = config_error(nlohmann::json::parse(R"([{"kind": "format"}, {"kind": "format"}])"));
  EXPECT_NE(duplicate.find("duplicate name 'format'"), std::string::npos) << duplicate;
  EXPECT_EQ(config_error(nlohmann::json::parse(R"([{"kind": "format"}, {"kind": "format", "name": "f2"}])")),
            "(no error)");

  EXPECT_NE(config_error(nlohmann::json::parse(R"([{"kind": "format", "weight": "1"}])")).find("\"weight\""),
            std::string::npos);
  EXPECT_NE(config_error(nlohmann::json::parse(R"([{"kind": "format", "name": ""}])")).find("\"name\""),
            std::string::npos);
}

TEST(RewardSet, ConcurrentScoringFromFourThreads) {
  RewardSet set(nlohmann::json::parse(R"([
    {"name": "accuracy", "kind": "exact_match", "extract": ["answer_tag"]},
    {"kind": "format", "weight": 0.5},
    {"kind": "countdown"},
    {"kind": "overlong", "max_tokens": 20, "cache_tokens": 4}
  ])"));
  const Metadata with_answer = {{"answer", "42"}};
  const Metadata without_answer = {{"numbers", {3, 5, 7}}, {"target", 22}};
  constexpr int kThreads = 4, kPerThread = 2000;
  std::vector<int> mismatches(kThreads, 0);

  testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        bool odd = (i + t) % 2 == 1;
        RewardSet::Result result = set.score(input(kGood, odd ? without_answer : with_answer, 18));
        // Even: accuracy 1, format 1 (x0.5), countdown throws (no numbers), overlong -0.5 -> 1.0.
        // Odd: accuracy throws, format 0.5, countdown: "42" is no given number -> 0.1, overlong -0.5 -> 0.1.
        double expected = odd ? 0.5 + 0.1 - 0.5 : 1.0 + 0.5 - 0.5;
        if (!result.total || std::abs(*result.total - expected) > 1e-12) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::string log = testing::internal::GetCapturedStderr();

  EXPECT_EQ(mismatches, std::vector<int>(kThreads, 0));
  std::map<std::string, int64_t> counts = set.error_counts();
  ASSERT_EQ(counts.size(), 2u) << log;
  EXPECT_EQ(counts["accuracy: metadata has no field 'answer'"], kThreads * kPerThread / 2);
  int64_t countdown_errors = 0;
  for (const auto& [key, count] : counts) {
    if (key.rfind("countdown: ", 0) == 0) countdown_errors = count;
  }
  EXPECT_EQ(countdown_errors, kThreads * kPerThread / 2);
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
}

TEST(RewardSet, CanBeMoved) {
  RewardSet set(kAccuracyAndFormat);
  RewardSet moved(std::move(set));
  Metadata metadata = {{"answer", "42"}};
  EXPECT_EQ(moved.score(input(kGood, metadata)).total, 1.5);
  EXPECT_EQ(moved.names().size(), 2u);
}

}  // namespace
}  // namespace cohort::reward
