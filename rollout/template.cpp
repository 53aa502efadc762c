// Placeholder filling for prompt templates and the chat layout of the built-in tasks.
#include "rollout/template.h"

#include "kernels/error.h"

namespace cohort::rollout {

std::string_view resolve_prompt_template(std::string_view name_or_pattern) {
  if (name_or_pattern == "r1-zero")
    return "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
           "assistant first thinks about the reasoning process in the mind and then provides the user with the "
           "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
           "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
           "User: {prompt}. Assistant:";
  if (name_or_pattern == "step-by-step-boxed")
    return "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{{}}.";
  return name_or_pattern;
}

std::string fill_template(std::string_view tmpl, const nlohmann::json& row) {
  std::string out;
  out.reserve(tmpl.size());
  size_t i = 0;
  while (i < tmpl.size()) {
    const char c = tmpl[i];
    if (c == '}') {
      COHORT_REQUIRE(i + 1 < tmpl.size() && tmpl[i + 1] == '}',
                     "template: lone '}' at offset " << i << " (write \"}}\" for a literal brace)");
      out += '}';
      i += 2;
      continue;
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < tmpl.size() && tmpl[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    const size_t close = tmpl.find_first_of("{}", i + 1);
    COHORT_REQUIRE(close != std::string_view::npos,
                   "template: unclosed '{' at offset " << i << " (write \"{{\" for a literal brace)");
    COHORT_REQUIRE(tmpl[close] == '}',
                   "template: '{' at offset " << close << " inside the placeholder opened at offset " << i);
    const std::string field(tmpl.substr(i + 1, close - i - 1));
    COHORT_REQUIRE(!field.empty(), "template: empty placeholder \"{}\" at offset " << i);
    COHORT_REQUIRE(row.is_object(), "template: field \"" << field << "\" cannot be filled: the row is a "
                                                         << row.type_name() << ", not an object");
    auto value = row.find(field);
    if (value == row.end()) {
      std::string known;
      for (auto it = row.begin(); it != row.end(); ++it) known += (known.empty() ? "" : ", ") + it.key();
      COHORT_REQUIRE(false, "template: unknown field \"" << field << "\" at offset " << i << " (the row has: "
                                                         << (known.empty() ? "no fields" : known) << ")");
    }
    out += value->is_string() ? value->get_ref<const std::string&>() : value->dump();
    i = close + 1;
  }
  return out;
}

std::string chat_prompt(std::string_view system, std::string_view user) {
  std::string out;
  out.reserve(system.size() + user.size() + 96);
  if (!system.empty()) {
    out += "<|im_start|>system\n";
    out += system;
    out += "<|im_end|>\n";
  }
  out += "<|im_start|>user\n";
  out += user;
  out += "<|im_end|>\n<|im_start|>assistant\n";
  return out;
}

}  // namespace cohort::rollout
