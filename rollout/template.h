// Prompt templates: turning a dataset row into the text the model sees. fill_template
// puts row fields into a user-written pattern; chat_prompt lays out a chat turn for the
// byte tokenizer's special tokens.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cohort::rollout {

// Replaces every "{field}" with row[field]: strings verbatim, anything else (numbers,
// booleans, null, arrays, objects) as its compact JSON text, e.g. [3,5,7]. "{{" and "}}"
// stand for literal braces. Throws cohort::Error naming the field when row has no such
// field (or row is not an object), and naming the offset of an unclosed "{", an empty
// "{}", a "{" inside a placeholder or a lone "}".
std::string fill_template(std::string_view tmpl, const nlohmann::json& row);

// data.prompt_template may name a built-in template instead of giving a pattern:
//   r1-zero             DeepSeek-R1-Zero's (DeepSeek-R1 paper, table 1): the assistant reasons inside
//                       <think> </think> and answers inside <answer> </answer>, "User: {prompt}. Assistant:"
//   step-by-step-boxed  "{prompt}\nPlease reason step by step, and put your final answer within \boxed{}."
//                       (DeepSeek-R1's usage recommendation; the chat variant, for rollout.chat)
// Any other text is returned as it is.
std::string_view resolve_prompt_template(std::string_view name_or_pattern);

// Simple chat layout for the byte tokenizer (its special-token names become ids when the
// caller encodes with parse_special=true):
// "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
// with the system turn left out when system is empty. The text is inserted verbatim.
std::string chat_prompt(std::string_view system, std::string_view user);

}  // namespace cohort::rollout
