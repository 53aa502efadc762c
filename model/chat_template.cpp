// ChatTemplate: reading chat templates from tokenizer_config.json and rendering them with the
// variables transformers' apply_chat_template passes to jinja2.
#include "model/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/error.h"
#include "model/jinja_interpreter.h"
#include "model/jinja_parser.h"
#include "model/jinja_value.h"

namespace cohort {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  COHORT_REQUIRE(in, "cannot open " << path.string());
  std::ostringstream s;
  s << in.rdbuf();
  COHORT_REQUIRE(!in.bad(), "cannot read " << path.string());
  return s.str();
}

// A special token as tokenizer_config.json writes it: a string, or an AddedToken object.
std::optional<std::string> token_content(const nlohmann::ordered_json& v, const std::string& where) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw Error(where + " must be a string or an object with a string \"content\"");
}

}  // namespace

ChatTemplate ChatTemplate::parse(std::string source, std::string origin, const ChatTemplateLimits& limits) {
  ChatTemplate t;
  t.source_ = std::move(source);
  t.origin_ = std::move(origin);
  t.limits_ = limits;
  t.template_ = jinja::parse_template(t.source_, t.origin_, {limits.max_source_bytes, limits.max_nesting});
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& path, const ChatTemplateLimits& limits) {
  fs::path file = path;
  if (fs::is_directory(file)) file /= "tokenizer_config.json";
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": not valid JSON: " + e.what());
  }
  COHORT_REQUIRE(config.is_object(), file.string() << ": expected a JSON object");

  std::string source, origin;
  const auto it = config.find("chat_template");
  if (it != config.end() && it->is_string()) {
    source = it->get<std::string>();
    origin = file.string() + " chat_template";
  } else if (it != config.end() && it->is_array()) {
    std::string names;
    for (const auto& entry : *it) {
      COHORT_REQUIRE(entry.is_object() && entry.contains("name") && entry["name"].is_string() &&
                         entry.contains("template") && entry["template"].is_string(),
                     file.string() << ": chat_template entries must be {\"name\": string, \"template\": string}");
      const std::string name = entry["name"].get<std::string>();
      names += (names.empty() ? "" : ", ") + name;
      if (name == "default") {
        source = entry["template"].get<std::string>();
        origin = file.string() + " chat_template 'default'";
      }
    }
    COHORT_REQUIRE(!origin.empty(),
                   file.string() << ": chat_template lists templates (" << names << ") but none named 'default'");
  } else if (it != config.end() && !it->is_null()) {
    throw Error(file.string() + ": chat_template must be a string or a list of {name, template}");
  } else {
    const fs::path jinja_file = file.parent_path() / "chat_template.jinja";
    COHORT_REQUIRE(fs::exists(jinja_file), file.string()
                                               << " has no chat_template and there is no " << jinja_file.string());
    source = read_file(jinja_file);
    origin = jinja_file.string();
  }

  ChatTemplate t = parse(std::move(source), std::move(origin), limits);
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"}) {
    if (!config.contains(key)) continue;
    if (auto content = token_content(config[key], file.string() + ": " + key)) t.special_tokens_[key] = *content;
  }
  if (config.contains("additional_special_tokens") && !config["additional_special_tokens"].is_null()) {
    const auto& extra = config["additional_special_tokens"];
    COHORT_REQUIRE(extra.is_array(), file.string() << ": additional_special_tokens must be a list");
    auto list = nlohmann::ordered_json::array();
    for (const auto& e : extra) {
      if (auto content = token_content(e, file.string() + ": additional_special_tokens entry"))
        list.push_back(*content);
    }
    t.special_tokens_["additional_special_tokens"] = std::move(list);
  }
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra_context) const {
  COHORT_REQUIRE(template_, "render() on a ChatTemplate that was never parsed");
  COHORT_REQUIRE(messages.is_array(), origin_ << ": messages must be a JSON array");
  COHORT_REQUIRE(extra_context.is_object(), origin_ << ": extra_context must be a JSON object");
  jinja::Dict context;
  try {
    context.set("messages", jinja::from_json(messages));
    context.set("tools", jinja::Value::none());
    context.set("documents", jinja::Value::none());
    context.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
    for (const auto& [k, v] : special_tokens_.items()) context.set(k, jinja::from_json(v));
    for (const auto& [k, v] : extra_context.items()) context.set(k, jinja::from_json(v));
  } catch (const jinja::EvalError& e) {
    throw Error(origin_ + ": the conversation cannot be given to the template: " + e.message);
  }
  return jinja::render(*template_, context,
                       {limits_.max_output_bytes, limits_.max_list_items, limits_.max_steps, limits_.max_work_bytes,
                        limits_.max_call_depth});
}

}  // namespace cohort
