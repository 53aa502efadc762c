// Tests for prompt templates: placeholder filling from a dataset row, literal braces,
// errors that name the field or the offset, and the exact chat layout.
#include "rollout/template.h"

#include <gtest/gtest.h>

#include <string>

#include "kernels/error.h"
#include "model/byte_tokenizer.h"

namespace cohort::rollout {
namespace {

using nlohmann::json;

// The message of the cohort::Error that fn throws, or "" with a test failure.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected cohort::Error";
  return "";
}

TEST(Template, FillsStringsVerbatimAndOtherValuesAsJson) {
  const json row = {{"prompt", "37+45="}, {"quote", "say \"hi\"\n"}, {"target", 22},
                    {"ratio", 0.5},       {"numbers", {3, 5, 7}},    {"words", {"a", "b"}},
                    {"flag", true},       {"nothing", nullptr},      {"meta", {{"k", 1}}}};
  EXPECT_EQ(fill_template("Q: {prompt}", row), "Q: 37+45=");
  EXPECT_EQ(fill_template("{quote}", row), "say \"hi\"\n");
  EXPECT_EQ(fill_template("Using the numbers {numbers}, make {target}.", row), "Using the numbers [3,5,7], make 22.");
  EXPECT_EQ(fill_template("{ratio} {words} {flag} {nothing} {meta}", row), "0.5 [\"a\",\"b\"] true null {\"k\":1}");
  EXPECT_EQ(fill_template("{target}{target}", row), "2222");
  EXPECT_EQ(fill_template("no placeholders", row), "no placeholders");
  EXPECT_EQ(fill_template("", row), "");
  // Field names are taken exactly, spaces and dots included.
  EXPECT_EQ(fill_template("{a b}|{x.y}", json{{"a b", "1"}, {"x.y", "2"}}), "1|2");
}

TEST(Template, DoubledBracesAreLiteral) {
  const json row = {{"name", "x"}};
  EXPECT_EQ(fill_template("{{name}}", row), "{name}");
  EXPECT_EQ(fill_template("{{{name}}}", row), "{x}");
  EXPECT_EQ(fill_template("json: {{\"k\": {name}}}", row), "json: {\"k\": x}");
  EXPECT_EQ(fill_template("}}{{", row), "}{");
  // A value is inserted as it is, never expanded again.
  EXPECT_EQ(fill_template("{name}", json{{"name", "{other}"}}), "{other}");
}

TEST(Template, UnknownFieldIsAnErrorNamingIt) {
  const json row = {{"prompt", "p"}, {"answer", "a"}};
  const std::string message = error_of([&] { fill_template("A: {answr}", row); });
  EXPECT_NE(message.find("unknown field \"answr\""), std::string::npos) << message;
  EXPECT_NE(message.find("offset 3"), std::string::npos) << message;
  EXPECT_NE(message.find("answer, prompt"), std::string::npos) << message;  // lists what the row has

  const std::string not_object = error_of([] { fill_template("{prompt}", json::array({1})); });
  EXPECT_NE(not_object.find("\"prompt\""), std::string::npos) << not_object;
  EXPECT_NE(not_object.find("array"), std::string::npos) << not_object;
  // A row that is not an object is fine when nothing needs filling.
  EXPECT_EQ(fill_template("plain {{}}", json()), "plain {}");
}

TEST(Template, MalformedBracesAreErrorsNamingTheOffset) {
  const json row = {{"a", "1"}};
  std::string message = error_of([&] { fill_template("abc {a", row); });
  EXPECT_NE(message.find("unclosed '{' at offset 4"), std::string::npos) << message;
  message = error_of([&] { fill_template("{a} {", row); });
  EXPECT_NE(message.find("unclosed '{' at offset 4"), std::string::npos) << message;
  message = error_of([&] { fill_template("x}y", row); });
  EXPECT_NE(message.find("lone '}' at offset 1"), std::string::npos) << message;
  message = error_of([&] { fill_template("{a}}", row); });
  EXPECT_NE(message.find("lone '}' at offset 3"), std::string::npos) << message;
  message = error_of([&] { fill_template("ab{}", row); });
  EXPECT_NE(message.find("empty placeholder"), std::string::npos) << message;
  EXPECT_NE(message.find("offset 2"), std::string::npos) << message;
  message = error_of([&] { fill_template("{a{a}}", row); });
  EXPECT_NE(message.find("'{' at offset 2 inside the placeholder opened at offset 0"), std::string::npos) << message;
}

TEST(Template, ChatLayoutIsExact) {
  EXPECT_EQ(chat_prompt("You are helpful.", "2+2="),
            "<|im_start|>system\nYou are helpful.<|im_end|>\n"
            "<|im_start|>user\n2+2=<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(chat_prompt("", "2+2="), "<|im_start|>user\n2+2=<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chat_prompt("", ""), "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Template, ChatLayoutTokenizesToTurnMarkers) {
  ByteTokenizer tokenizer;
  const std::vector<int32_t> ids = tokenizer.encode(chat_prompt("s", "u"), false, /*parse_special=*/true);
  const int32_t start = ByteTokenizer::kImStartId, end = ByteTokenizer::kImEndId;
  std::vector<int32_t> want = {start};
  for (char c : std::string("system\ns")) want.push_back(c);
  want.push_back(end);
  want.push_back('\n');
  want.push_back(start);
  for (char c : std::string("user\nu")) want.push_back(c);
  want.push_back(end);
  want.push_back('\n');
  want.push_back(start);
  for (char c : std::string("assistant\n")) want.push_back(c);
  EXPECT_EQ(ids, want);
}

TEST(Template, BuiltInTemplatesByName) {
  const nlohmann::json row = {{"prompt", "What is 2+3?"}};
  const std::string r1 = fill_template(resolve_prompt_template("r1-zero"), row);
  EXPECT_EQ(r1.find("A conversation between User and Assistant."), 0u);
  EXPECT_NE(r1.find("<think> reasoning process here </think> <answer> answer here </answer>"), std::string::npos);
  EXPECT_EQ(r1.substr(r1.size() - 30), "User: What is 2+3?. Assistant:");
  EXPECT_EQ(fill_template(resolve_prompt_template("step-by-step-boxed"), row),
            "What is 2+3?\nPlease reason step by step, and put your final answer within \\boxed{}.");
  EXPECT_EQ(resolve_prompt_template("Q: {prompt}"), "Q: {prompt}") << "anything else is a pattern";
}

}  // namespace
}  // namespace cohort::rollout
