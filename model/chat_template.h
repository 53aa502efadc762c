// Chat templates: the Jinja `chat_template` of a Hugging Face tokenizer_config.json, rendered
// by cohort's own interpreter (model/jinja_*.{h,cpp}) byte for byte as transformers'
// apply_chat_template renders it with jinja2. docs/chat_templates.md lists the supported
// subset, the refusals and the environment settings matched.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace cohort {

namespace jinja {
struct Template;
}

// Bounds that make an untrusted template safe to parse and render: past any of them the
// call throws cohort::Error instead of hanging or exhausting memory.
struct ChatTemplateLimits {
  size_t max_source_bytes = size_t{1} << 20;    // template text
  int max_nesting = 256;                        // nested statements and expressions
  size_t max_output_bytes = size_t{16} << 20;   // the rendered text, and any string built on the way
  size_t max_list_items = size_t{1} << 20;      // any list built on the way
  uint64_t max_steps = 10'000'000;              // statements + loop iterations + macro calls
  uint64_t max_work_bytes = uint64_t{1} << 30;  // bytes built or scanned, all operations together
  int max_call_depth = 64;                      // nested macro calls
};

class ChatTemplate {
 public:
  // Parses `source`; `origin` names it in errors ("ORIGIN:LINE: what"). Throws cohort::Error
  // for a syntax error or a construct outside the supported subset, naming construct and line.
  static ChatTemplate parse(std::string source, std::string origin, const ChatTemplateLimits& limits = {});

  // The chat template of a tokenizer_config.json (`path` is the file or its directory):
  // `chat_template` as a string, or the entry named "default" of a list of {name, template};
  // failing both, a chat_template.jinja beside it. Its bos/eos/unk/pad/sep/cls/mask tokens
  // (a string or {"content": ...}) and additional_special_tokens become template variables,
  // as transformers passes its special_tokens_map.
  static ChatTemplate from_tokenizer_config(const std::string& path, const ChatTemplateLimits& limits = {});

  // Renders the conversation as transformers does: the template sees `messages`, `tools` and
  // `documents` (none unless extra_context sets them), `add_generation_prompt`, the special
  // tokens, then every key of extra_context (bos_token, eos_token, tools, date_string,
  // enable_thinking, ...), which override what came before. JSON objects keep their key order,
  // which tojson and iteration follow; pass ordered_json to keep it (a plain nlohmann::json
  // converts, with its keys sorted). Throws cohort::Error "ORIGIN:LINE: what" when the template
  // fails (raise_exception, a type error, an undefined value used, a limit exceeded).
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }
  // The variables from_tokenizer_config found (bos_token, eos_token, ...); empty after parse().
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }

 private:
  std::string source_;
  std::string origin_;
  ChatTemplateLimits limits_;
  std::shared_ptr<const jinja::Template> template_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace cohort
