// Chat templates: the shipped Qwen2.5, Qwen3, Llama 3.1/3.2/3.3 and DeepSeek-R1-Distill
// templates rendered over tests/model/chat_templates/conversations.json, and the single
// constructs of constructs.json, must equal byte for byte what jinja2 renders in
// transformers' environment (expected/, written by tests/hf/check_chat_templates.py);
// unsupported constructs are refused naming construct and line; hostile templates hit limits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "model/chat_template.h"

using namespace cohort;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

fs::path data_dir() {
  if (const char* d = std::getenv("COHORT_CHAT_TEMPLATE_DATA")) return d;
  return fs::path(__FILE__).parent_path() / "chat_templates";
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << p;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ojson load_json(const std::string& name) {
  return ojson::parse(read_text(data_dir() / name));
}

// One render the jinja2 script also performs; `path` is its file under expected/, less the
// .txt/.error suffix.
struct Case {
  std::string path;
  std::string source;
  std::string origin;
  ojson messages;
  bool add_generation_prompt = false;
  ojson context = ojson::object();
};

std::vector<Case> template_cases() {
  std::vector<Case> cases;
  const ojson conversations = load_json("conversations.json")["conversations"];
  const ojson templates = load_json("templates.json")["templates"];
  for (const auto& t : templates) {
    const std::string file = t["file"].get<std::string>();
    const std::string source = read_text(data_dir() / file);
    for (const auto& conv : conversations) {
      for (bool gen : {false, true}) {
        Case c;
        c.path = t["name"].get<std::string>() + "/" + conv["name"].get<std::string>() + (gen ? ".gen" : ".nogen");
        c.source = source;
        c.origin = file;
        c.messages = conv["messages"];
        c.add_generation_prompt = gen;
        const ojson template_context = t.value("context", ojson::object());
        const ojson conversation_context = conv.value("context", ojson::object());
        for (const auto& [k, v] : template_context.items()) c.context[k] = v;
        for (const auto& [k, v] : conversation_context.items()) c.context[k] = v;
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

std::vector<Case> construct_cases() {
  std::vector<Case> cases;
  const ojson constructs = load_json("constructs.json")["constructs"];
  for (const auto& con : constructs) {
    Case c;
    c.path = "constructs/" + con["name"].get<std::string>();
    c.source = con["template"].get<std::string>();
    c.origin = c.path;
    c.context = con.value("context", ojson::object());
    c.messages = c.context.contains("messages") ? c.context["messages"] : ojson::array();
    c.context.erase("messages");
    cases.push_back(std::move(c));
  }
  return cases;
}

// Renders a case: {true, text} or {false, error message}.
std::pair<bool, std::string> render_case(const Case& c) {
  try {
    return {true, ChatTemplate::parse(c.source, c.origin).render(c.messages, c.add_generation_prompt, c.context)};
  } catch (const Error& e) {
    return {false, e.what()};
  }
}

void expect_matches_jinja2(const std::vector<Case>& cases) {
  const fs::path expected = data_dir() / "expected";
  size_t renders = 0, errors = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path);
    const auto [ok, text] = render_case(c);
    if (fs::exists(expected / (c.path + ".txt"))) {
      ++renders;
      EXPECT_TRUE(ok) << "jinja2 renders this, cohort failed: " << text;
      if (ok) {
        EXPECT_EQ(text, read_text(expected / (c.path + ".txt")));
      }
    } else if (fs::exists(expected / (c.path + ".error"))) {
      ++errors;
      EXPECT_FALSE(ok) << "jinja2 raised " << read_text(expected / (c.path + ".error")) << ", cohort rendered:\n"
                       << text;
    } else {
      ADD_FAILURE() << "no expected render; run tests/hf/check_chat_templates.py write-expected";
    }
  }
  EXPECT_GT(renders, errors);
}

std::string render_error(const std::string& source, const ojson& messages = ojson::array(),
                         const ChatTemplateLimits& limits = {}) {
  try {
    ChatTemplate::parse(source, "t.jinja", limits).render(messages, false);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for: " << source;
  return {};
}

std::string render(const std::string& source, const ojson& messages = ojson::array(), bool gen = false,
                   const ojson& extra = ojson::object()) {
  return ChatTemplate::parse(source, "t.jinja").render(messages, gen, extra);
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "cohort_chat_template_XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
};

}  // namespace

TEST(ChatTemplate, ShippedTemplatesRenderAsJinja2) {
  expect_matches_jinja2(template_cases());
}

TEST(ChatTemplate, ConstructsRenderAsJinja2) {
  expect_matches_jinja2(construct_cases());
}

// tests/hf/check_chat_templates.sh runs this with COHORT_CHAT_TEMPLATE_RENDER_DIR set and
// compares what it writes with jinja2 rendering the same cases at test time.
TEST(ChatTemplate, WritesRendersForJinja2Check) {
  const char* dir = std::getenv("COHORT_CHAT_TEMPLATE_RENDER_DIR");
  if (!dir) GTEST_SKIP() << "set COHORT_CHAT_TEMPLATE_RENDER_DIR to write cohort's renders";
  std::vector<Case> cases = template_cases();
  for (auto& c : construct_cases()) cases.push_back(std::move(c));
  for (const auto& c : cases) {
    const auto [ok, text] = render_case(c);
    const fs::path out = fs::path(dir) / (c.path + (ok ? ".txt" : ".error"));
    fs::create_directories(out.parent_path());
    std::ofstream(out, std::ios::binary) << text;
  }
}

TEST(ChatTemplate, QwenGenerationPromptAndThinking) {
  const std::string qwen3 = read_text(data_dir() / "qwen3.jinja");
  const ojson messages = ojson::parse(R"([{"role": "user", "content": "Hi"}])");
  EXPECT_EQ(render(qwen3, messages, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render(qwen3, messages, true, {{"enable_thinking", false}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(render(qwen3, messages, false), "<|im_start|>user\nHi<|im_end|>\n");
}

// Llama 3.2 dates its system prompt with strftime_now when no date_string is given, as
// transformers defines it (datetime.now().strftime).
TEST(ChatTemplate, StrftimeNowIsToday) {
  auto today = [] {
    std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[64];
    std::strftime(buf, sizeof buf, "%d %b %Y", &local);
    return std::string(buf);
  };
  const std::string before = today();
  const std::string out = render(read_text(data_dir() / "llama-3.2-instruct.jinja"),
                                 ojson::parse(R"([{"role": "user", "content": "Hi"}])"), true);
  const std::string after = today();
  EXPECT_TRUE(out.find("Today Date: " + before + "\n") != std::string::npos ||
              out.find("Today Date: " + after + "\n") != std::string::npos)
      << out;
}

TEST(ChatTemplate, UnsupportedConstructsAreRefusedWithTheirLine) {
  struct Refusal {
    std::string source, needle, line;
  };
  const std::vector<Refusal> refusals = {
      {"{% include 'other.jinja' %}", "unsupported Jinja construct: {% include %}", ":1:"},
      {"a\n{% extends 'base' %}", "{% extends %}", ":2:"},
      {"line one\n{{ text|wordwrap(20) }}", "unsupported Jinja construct: filter 'wordwrap'", ":2:"},
      {"\n\n\n{% if x is escaped %}{% endif %}", "unsupported Jinja construct: test 'escaped'", ":4:"},
      {"\n\n{% raw %}{{ x }}{% endraw %}", "unsupported Jinja construct: {% raw %}", ":3:"},
      {"{% macro m() %}\n{{ caller() }}{% endmacro %}", "'caller' inside a macro", ":2:"},
      {"{% for x in y recursive %}{% endfor %}", "recursive for loop", ":1:"},
      {"{% call m() %}{% endcall %}", "{% call %}", ":1:"},
      {"{% filter upper %}x{% endfilter %}", "{% filter %}", ":1:"},
      {"{% with a = 1 %}{% endwith %}", "{% with %}", ":1:"},
      {"{{ f(*args) }}", "*args / **kwargs", ":1:"},
      {"{{ 0x1F }}", "base prefix", ":1:"},
      {"{{ '\\N{EM DASH}' }}", "\\N{...}", ":1:"},
      {"{% set x | upper %}a{% endset %}", "filtered block", ":1:"},
      {"{% do x.append(1) %}", "{% do %}", ":1:"},
      {"x\n\n{{ lipsum(2) }}", "the global function 'lipsum'", ":3:"},
      {"{{ 'a'.zfill(3) }}", "the string method 'zfill'", ":1:"},
      {"{{ '%s!' % name }}", "'%' string formatting", ":1:"},
      {"{% for x in [1] %}{{ loop.changed(x) }}{% endfor %}", "loop.changed", ":1:"},
  };
  for (const auto& r : refusals) {
    SCOPED_TRACE(r.source);
    const std::string e = render_error(r.source);
    EXPECT_NE(e.find(r.needle), std::string::npos) << e;
    EXPECT_NE(e.find("t.jinja" + r.line), std::string::npos) << e;
  }
}

TEST(ChatTemplate, SyntaxErrorsNameTheLine) {
  const std::vector<std::pair<std::string, std::string>> errors = {
      {"{% if x %}\nno end", "t.jinja:2: unexpected end of template, expected 'elif' or 'else' or 'endif'"},
      {"ok\n{{ x", "t.jinja:2: unexpected end of template inside a tag"},
      {"{% endfor %}", "t.jinja:1: unexpected 'endfor'"},
      {"{% break %}", "t.jinja:1: 'break' outside of a loop"},
      {"a\n{# never closed", "t.jinja:2: missing end of comment tag"},
      {"{% frobnicate %}", "t.jinja:1: unknown statement 'frobnicate'"},
      {"{{ 'open }}", "t.jinja:1: unterminated string literal"},
      {"{{ (1, 2] }}", "t.jinja:1: unexpected ']', expected ')'"},
      {"{{ a b }}", "t.jinja:1: expected end of print statement, got 'b'"},
      {"{% set true = 1 %}", "t.jinja:1: cannot assign to 'true'"},
      {"{{ x is defined is none }}", "t.jinja:1: you cannot chain multiple tests with 'is'"},
  };
  for (const auto& [source, message] : errors) {
    SCOPED_TRACE(source);
    const std::string e = render_error(source);
    EXPECT_NE(e.find(message), std::string::npos) << e;
  }
}

TEST(ChatTemplate, RuntimeErrorsNameTheLine) {
  std::string e = render_error("a\n{{ raise_exception('Conversation roles must alternate') }}");
  EXPECT_NE(e.find("t.jinja:2: the template raised an exception: Conversation roles must alternate"), std::string::npos)
      << e;
  e = render_error("\n{{ messages[0]['role'] }}");
  EXPECT_NE(e.find("t.jinja:2: 'list object' has no element 0"), std::string::npos) << e;
  e = render_error("{{ 'x' + messages[0].content }}", ojson::parse(R"([{"content": null}])"));
  EXPECT_NE(e.find("can only concatenate str (not \"NoneType\") to str"), std::string::npos) << e;
}

// A hostile template cannot hang or exhaust memory: every bound ends the render with an error.
TEST(ChatTemplate, HostileTemplatesHitLimits) {
  ChatTemplateLimits small;
  small.max_steps = 100000;
  std::string e = render_error("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                               ojson::array(), small);
  EXPECT_NE(e.find("exceeded the limit of 100000 steps"), std::string::npos) << e;

  e = render_error("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
  EXPECT_NE(e.find("exceeds the render limit"), std::string::npos) << e;
  e = render_error("{{ 'x' * 1000000000000 }}");
  EXPECT_NE(e.find("exceeds the render limit"), std::string::npos) << e;
  e = render_error("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}");
  EXPECT_NE(e.find("items exceeds the render limit"), std::string::npos) << e;
  e = render_error("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}");
  EXPECT_NE(e.find("output exceeds the limit"), std::string::npos) << e;
  // Each step cheap to count but expensive to run: scanning a 1 MB string 100000 times.
  e = render_error("{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{% if 'y' in s %}{% endif %}{% endfor %}");
  EXPECT_NE(e.find("exceeded its work limit"), std::string::npos) << e;
  e = render_error("{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{% set n = s.find('y') %}{% endfor %}");
  EXPECT_NE(e.find("exceeded its work limit"), std::string::npos) << e;
  // Deep statement nesting times macro recursion is bounded before the C++ stack is.
  std::string nested = "{% macro f(n) %}";
  for (int i = 0; i < 60; ++i) nested += "{% if true %}";
  nested += "{{ f(n + 1) }}";
  for (int i = 0; i < 60; ++i) nested += "{% endif %}";
  e = render_error(nested + "{% endmacro %}{{ f(0) }}");
  EXPECT_NE(e.find("nested too deeply to render"), std::string::npos) << e;
  e = render_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  EXPECT_NE(e.find("macro calls nested deeper than 64"), std::string::npos) << e;
  e = render_error("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
  EXPECT_NE(e.find("nested too deeply"), std::string::npos) << e;
  e = render_error("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}");
  EXPECT_NE(e.find("nested too deeply"), std::string::npos) << e;
  e = render_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  EXPECT_NE(e.find("nested too deeply to print"), std::string::npos) << e;
  e = render_error("{{ 99999999999999999999 }}");
  EXPECT_NE(e.find("does not fit int64"), std::string::npos) << e;
  e = render_error("{{ 9223372036854775807 + 1 }}");
  EXPECT_NE(e.find("integer overflow"), std::string::npos) << e;
  ChatTemplateLimits tiny;
  tiny.max_source_bytes = 8;
  EXPECT_THROW(ChatTemplate::parse("{{ 'longer than eight' }}", "t.jinja", tiny), Error);
}

TEST(ChatTemplate, ConversationMustBeValid) {
  const ChatTemplate t = ChatTemplate::parse("{{ messages[0].content }}", "t.jinja");
  EXPECT_THROW(t.render(ojson::object(), false), Error);
  EXPECT_THROW(t.render(ojson::array({{{"content", std::string("\xff\xfe")}}}), false), Error);
  EXPECT_THROW(t.render(ojson::array(), false, ojson::array()), Error);
  EXPECT_THROW(ChatTemplate::parse(std::string("{{ '\xc3' }}"), "t.jinja"), Error);
}

// JSON key order reaches tojson as given; a plain (sorted) nlohmann::json converts.
TEST(ChatTemplate, KeyOrderAndPlainJson) {
  const std::string source = "{{ messages[0] | tojson }}";
  EXPECT_EQ(render(source, ojson::parse(R"([{"role": "user", "content": "x", "a": 1}])")),
            R"({"role": "user", "content": "x", "a": 1})");
  const nlohmann::json plain = nlohmann::json::parse(R"([{"role": "user", "content": "x"}])");
  EXPECT_EQ(ChatTemplate::parse(source, "t").render(plain, false), R"({"content": "x", "role": "user"})");
}

TEST(ChatTemplate, ExtraContextOverridesDefaults) {
  const std::string source = "{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ bos_token }}|{{ custom }}";
  EXPECT_EQ(render(source, ojson::array(), true), "None|None|True||");
  EXPECT_EQ(render(source, ojson::array(), false, {{"tools", {1}}, {"bos_token", "<s>"}, {"custom", 2.5}}),
            "[1]|None|False|<s>|2.5");
}

TEST(ChatTemplate, FromTokenizerConfig) {
  TempDir dir;
  ojson config = ojson::parse(R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>",
    "unk_token": null,
    "additional_special_tokens": ["<x>", {"content": "<y>"}]
  })");
  config["chat_template"] =
      "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"
      "{{ additional_special_tokens|join(',') }}{{ unk_token is defined }}";
  dir.write("tokenizer_config.json", config.dump());
  const ChatTemplate t = ChatTemplate::from_tokenizer_config(dir.path.string());
  EXPECT_EQ(t.render(ojson::parse(R"([{"content": "a"}, {"content": "b"}])"), false), "<s>a</s>b</s><x>,<y>False");
  EXPECT_EQ(t.special_tokens()["bos_token"], "<s>");
  EXPECT_NE(t.origin().find("tokenizer_config.json"), std::string::npos);
  // An extra context value overrides the tokenizer's.
  EXPECT_EQ(t.render(ojson::array(), false, {{"bos_token", "B"}}), "B<x>,<y>False");

  dir.write("tokenizer_config.json", R"({"chat_template": [
    {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "default {{ 1 + 1 }}"}]})");
  EXPECT_EQ(
      ChatTemplate::from_tokenizer_config((dir.path / "tokenizer_config.json").string()).render(ojson::array(), false),
      "default 2");

  dir.write("tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "x"}]})");
  try {
    ChatTemplate::from_tokenizer_config(dir.path.string());
    ADD_FAILURE() << "a template list without 'default' must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none named 'default'"), std::string::npos) << e.what();
  }

  dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir.path.string()), Error);
  dir.write("chat_template.jinja", "from file {{ eos_token }}");
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(dir.path.string()).render(ojson::array(), false), "from file </s>");

  dir.write("tokenizer_config.json", R"({"chat_template": "{% include 'x' %}"})");
  try {
    ChatTemplate::from_tokenizer_config(dir.path.string());
    ADD_FAILURE() << "an unsupported construct must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json chat_template:1: unsupported Jinja construct"),
              std::string::npos)
        << e.what();
  }

  dir.write("tokenizer_config.json", "{not json");
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir.path.string()), Error);
  EXPECT_THROW(ChatTemplate::from_tokenizer_config((dir.path / "missing").string()), Error);
}
