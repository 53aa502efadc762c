// Hugging Face config.json: the fields transformers reads for Llama, Qwen2 and Qwen3, the round
// trip through from_hf_config (rope scaling included), real-world configs (Qwen2.5, TinyLlama,
// Llama 3.2, Qwen3), and errors that name the bad field, or the unsupported architecture or option
// with its value.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "model/hf_config.h"

using namespace cohort;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.heads, b.heads);
  EXPECT_EQ(a.kv_heads, b.kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.intermediate, b.intermediate);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rms_eps, b.rms_eps);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_TRUE(a.rope_scaling == b.rope_scaling)
      << rope_scaling_name(a.rope_scaling.type) << " vs " << rope_scaling_name(b.rope_scaling.type);
}

// from_hf_config(hf) must throw a cohort::Error whose message holds every needle.
void expect_error(const json& hf, std::vector<std::string> needles) {
  try {
    from_hf_config(hf);
    ADD_FAILURE() << "from_hf_config should fail for " << hf.dump() << " (expected: " << needles[0] << ")";
  } catch (const Error& e) {
    std::string what = e.what();
    for (const auto& needle : needles)
      EXPECT_NE(what.find(needle), std::string::npos) << "missing '" << needle << "' in: " << what;
  }
}

// Qwen2.5-0.5B-Instruct's config.json, as published.
const char* kQwen25Config = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

// TinyLlama-1.1B-Chat-v1.0's config.json, as published.
const char* kTinyLlamaConfig = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
  "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 32,
  "num_hidden_layers": 22, "num_key_value_heads": 4, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": null, "rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.35.0", "use_cache": true, "vocab_size": 32000})";

// Llama-3.2-1B's config.json, as published: llama3 rope scaling, tied, eos a list.
const char* kLlama32Config = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

// Qwen3-0.6B's config.json, as published: head_dim 128 beside hidden / heads = 64, rope_theta an integer.
const char* kQwen3Config = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960,
  "max_window_layers": 28, "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
  "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

}  // namespace

TEST(HfConfig, LlamaFields) {
  ModelConfig c = model_config_named("small");  // no biases, untied
  c.rope_theta = 500000.0, c.rms_eps = 1e-5;
  json hf = to_hf_config(c, 256, 257, "bfloat16");
  EXPECT_EQ(hf["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(hf["model_type"], "llama");
  EXPECT_EQ(hf["hidden_size"], 256);
  EXPECT_EQ(hf["intermediate_size"], 768);
  EXPECT_EQ(hf["num_hidden_layers"], 4);
  EXPECT_EQ(hf["num_attention_heads"], 8);
  EXPECT_EQ(hf["num_key_value_heads"], 4);
  EXPECT_EQ(hf["head_dim"], 32);
  EXPECT_EQ(hf["vocab_size"], c.vocab);
  EXPECT_EQ(hf["max_position_embeddings"], 512);
  EXPECT_EQ(hf["rope_theta"], 500000.0);
  EXPECT_EQ(hf["rms_norm_eps"], 1e-5);
  EXPECT_EQ(hf["tie_word_embeddings"], false);
  EXPECT_EQ(hf["hidden_act"], "silu");
  EXPECT_EQ(hf["attention_bias"], false);
  EXPECT_EQ(hf["mlp_bias"], false);
  EXPECT_TRUE(hf["rope_scaling"].is_null());
  EXPECT_EQ(hf["torch_dtype"], "bfloat16");
  EXPECT_EQ(hf["bos_token_id"], 256);
  EXPECT_EQ(hf["eos_token_id"], 257);
  EXPECT_FALSE(hf.contains("use_sliding_window"));
}

TEST(HfConfig, Qwen2FieldsWhenQkvBias) {
  ModelConfig c = model_config_named("tiny");  // q/k/v biases, tied
  json hf = to_hf_config(c, 256, 257);
  EXPECT_EQ(hf["architectures"], json::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(hf["model_type"], "qwen2");
  EXPECT_EQ(hf["use_sliding_window"], false);
  EXPECT_EQ(hf["tie_word_embeddings"], true);
  EXPECT_EQ(hf["torch_dtype"], "float32");
  EXPECT_FALSE(hf.contains("attention_bias"));  // Qwen2 has no such option: its q/k/v biases are always there
}

TEST(HfConfig, RoundTrip) {
  ModelConfig odd = model_config_named("tiny");
  odd.qkv_bias = false, odd.tie_embeddings = false, odd.head_dim = 16, odd.kv_heads = 1;
  odd.rope_theta = 1234567.5, odd.rms_eps = 3e-7;
  odd.rope_scaling = {RopeScaling::Type::llama3, 16.0, 0.5, 3.0, 48};
  ModelConfig qwen3 = model_config_named("tiny");
  qwen3.name = "qwen3", qwen3.qkv_bias = false, qwen3.qk_norm = true, qwen3.head_dim = 12;
  ModelConfig linear = qwen3;
  linear.tie_embeddings = false, linear.rope_scaling.type = RopeScaling::Type::linear, linear.rope_scaling.factor = 2.5;
  for (ModelConfig c : {model_config_named("tiny"), model_config_named("small"), model_config_named("bench-124m"), odd,
                        qwen3, linear}) {
    SCOPED_TRACE(c.name);
    ModelConfig back = from_hf_config(to_hf_config(c, 1, 2));
    expect_same(back, c);
    EXPECT_EQ(back.name, c.qk_norm ? "qwen3" : c.qkv_bias ? "qwen2" : "llama");
    // Through text too, as a file would carry it.
    expect_same(from_hf_config(json::parse(to_hf_config(c, 1, 2).dump(2))), c);
  }
}

TEST(HfConfig, ReadsPublishedConfigs) {
  ModelConfig qwen = from_hf_config(json::parse(kQwen25Config));
  EXPECT_EQ(qwen.hidden, 896);
  EXPECT_EQ(qwen.layers, 24);
  EXPECT_EQ(qwen.heads, 14);
  EXPECT_EQ(qwen.kv_heads, 2);
  EXPECT_EQ(qwen.resolved_head_dim(), 64);
  EXPECT_EQ(qwen.intermediate, 4864);
  EXPECT_EQ(qwen.vocab, 151936);
  EXPECT_EQ(qwen.max_seq_len, 32768);
  EXPECT_EQ(qwen.rope_theta, 1e6);
  EXPECT_EQ(qwen.rms_eps, 1e-6);
  EXPECT_TRUE(qwen.tie_embeddings);
  EXPECT_TRUE(qwen.qkv_bias);

  ModelConfig llama = from_hf_config(json::parse(kTinyLlamaConfig));
  EXPECT_EQ(llama.hidden, 2048);
  EXPECT_EQ(llama.kv_heads, 4);
  EXPECT_EQ(llama.resolved_head_dim(), 64);
  EXPECT_EQ(llama.rms_eps, 1e-5);
  EXPECT_FALSE(llama.tie_embeddings);
  EXPECT_FALSE(llama.qkv_bias);
}

TEST(HfConfig, DefaultsOfOptionalFields) {
  json hf = {{"model_type", "llama"},          {"hidden_size", 64},        {"intermediate_size", 128},
             {"num_hidden_layers", 2},         {"num_attention_heads", 4}, {"vocab_size", 100},
             {"max_position_embeddings", 256}, {"head_dim", nullptr}};
  ModelConfig c = from_hf_config(hf);
  EXPECT_EQ(c.kv_heads, 4);  // no grouped-query attention unless said
  EXPECT_EQ(c.resolved_head_dim(), 16);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_eps, 1e-6);
  EXPECT_FALSE(c.tie_embeddings);
  // architectures alone names the family. (Qwen2Config's num_key_value_heads defaults to 32, more
  // than these 4 heads: FamilyDefaults checks it.)
  hf.erase("model_type");
  hf["architectures"] = {"Qwen2ForCausalLM"};
  hf["num_key_value_heads"] = 2;
  EXPECT_TRUE(from_hf_config(hf).qkv_bias);
}

TEST(HfConfig, MissingAndInvalidFields) {
  const json good = json::parse(kTinyLlamaConfig);
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                          "max_position_embeddings"}) {
    json hf = good;
    hf.erase(key);
    expect_error(hf, {"missing required field", key});
  }
  json hf = good;
  hf["hidden_size"] = "2048";
  expect_error(hf, {"'hidden_size'", "must be an integer", "\"2048\""});
  hf = good;
  hf["num_hidden_layers"] = 22.5;
  expect_error(hf, {"'num_hidden_layers'", "must be an integer"});
  hf = good;
  hf["rope_theta"] = "fast";
  expect_error(hf, {"'rope_theta'", "must be a number"});
  hf = good;
  hf["tie_word_embeddings"] = 1;
  expect_error(hf, {"'tie_word_embeddings'", "true or false"});
  hf = good;
  hf["num_key_value_heads"] = 5;  // 32 heads are not divisible by 5
  expect_error(hf, {"kv_heads"});
  hf = good;
  hf["num_attention_heads"] = 0;
  expect_error(hf, {"heads must be positive"});
  hf = good;
  hf["head_dim"] = -8;
  expect_error(hf, {"head_dim"});
  hf = good;
  hf["vocab_size"] = json(uint64_t(1) << 63);
  expect_error(hf, {"'vocab_size'", "too large"});
  expect_error(json::array({1, 2}), {"must be a JSON object"});
  expect_error(json::object(), {"neither 'model_type' nor 'architectures'"});
}

TEST(HfConfig, UnsupportedArchitecturesAndOptions) {
  json hf = json::parse(kTinyLlamaConfig);
  hf["model_type"] = "mistral";
  hf["architectures"] = {"MistralForCausalLM"};
  expect_error(hf, {"unsupported model_type 'mistral'", "llama", "qwen2"});
  hf.erase("model_type");
  expect_error(hf, {"unsupported architecture 'MistralForCausalLM'"});
  hf = json::parse(kTinyLlamaConfig);
  hf["architectures"] = {"LlamaForSequenceClassification"};
  expect_error(hf, {"unsupported architecture 'LlamaForSequenceClassification'", "LlamaForCausalLM"});
  hf = json::parse(kTinyLlamaConfig);
  hf["model_type"] = 7;
  expect_error(hf, {"'model_type' must be a string"});

  hf = json::parse(kTinyLlamaConfig);
  hf["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};  // Llama 3.1 needs all four keys
  expect_error(hf, {"rope_scaling needs 'low_freq_factor'"});
  hf = json::parse(kTinyLlamaConfig);
  hf["attention_bias"] = true;
  expect_error(hf, {"attention_bias true", "not supported"});
  hf = json::parse(kTinyLlamaConfig);
  hf["mlp_bias"] = true;
  expect_error(hf, {"mlp_bias true"});
  hf = json::parse(kTinyLlamaConfig);
  hf["hidden_act"] = "gelu";
  expect_error(hf, {"hidden_act \"gelu\"", "silu"});
  hf = json::parse(kQwen25Config);
  hf["use_sliding_window"] = true;
  expect_error(hf, {"use_sliding_window true", "not supported"});
  hf = json::parse(kQwen3Config);
  hf["use_sliding_window"] = true;
  expect_error(hf, {"use_sliding_window true", "not supported"});
}

TEST(HfConfig, Qwen3Fields) {
  ModelConfig c = model_config_named("tiny");
  c.qkv_bias = false, c.qk_norm = true, c.head_dim = 16;  // 4 heads of 16 beside hidden 32
  json hf = to_hf_config(c, 256, 257, "bfloat16");
  EXPECT_EQ(hf["architectures"], json::array({"Qwen3ForCausalLM"}));
  EXPECT_EQ(hf["model_type"], "qwen3");
  EXPECT_EQ(hf["head_dim"], 16);
  EXPECT_EQ(hf["attention_bias"], false);
  EXPECT_EQ(hf["use_sliding_window"], false);
  EXPECT_TRUE(hf["sliding_window"].is_null());
  EXPECT_TRUE(hf["rope_scaling"].is_null());
  EXPECT_FALSE(hf.contains("mlp_bias"));
  // No Hugging Face family has both q/k/v biases and the q/k norm.
  c.qkv_bias = true;
  try {
    to_hf_config(c, 1, 2);
    ADD_FAILURE() << "q/k/v biases with the q/k norm should be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("both q/k/v biases and the q/k norm"), std::string::npos) << e.what();
  }
}

TEST(HfConfig, RopeScalingFields) {
  ModelConfig c = model_config_named("small");
  c.rope_scaling = {RopeScaling::Type::llama3, 32.0, 1.0, 4.0, 256};
  json hf = to_hf_config(c, 1, 2);
  EXPECT_EQ(hf["rope_scaling"], (json{{"rope_type", "llama3"},
                                      {"factor", 32.0},
                                      {"low_freq_factor", 1.0},
                                      {"high_freq_factor", 4.0},
                                      {"original_max_position_embeddings", 256}}));
  c.rope_scaling = {RopeScaling::Type::linear, 2.0};
  EXPECT_EQ(to_hf_config(c, 1, 2)["rope_scaling"], (json{{"rope_type", "linear"}, {"factor", 2.0}}));
  // The older spelling "type", and "default", which is no scaling.
  hf = json::parse(kTinyLlamaConfig);
  hf["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  ModelConfig read = from_hf_config(hf);
  EXPECT_EQ(read.rope_scaling.type, RopeScaling::Type::linear);
  EXPECT_EQ(read.rope_scaling.factor, 4.0);
  hf["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(from_hf_config(hf).rope_scaling.type, RopeScaling::Type::none);
  // transformers 5 writes rope_parameters, which carries rope_theta too.
  hf = json::parse(kQwen3Config);
  hf.erase("rope_scaling"), hf.erase("rope_theta");
  hf["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}};
  read = from_hf_config(hf);
  EXPECT_EQ(read.rope_theta, 1e6);
  EXPECT_EQ(read.rope_scaling.type, RopeScaling::Type::none);
  hf["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 5e5}};
  read = from_hf_config(hf);
  EXPECT_EQ(read.rope_theta, 5e5);
  EXPECT_EQ(read.rope_scaling.factor, 2.0);
}

TEST(HfConfig, ReadsLlama32AndQwen3Configs) {
  ModelConfig llama = from_hf_config(json::parse(kLlama32Config));
  EXPECT_EQ(llama.name, "llama");
  EXPECT_EQ(llama.resolved_head_dim(), 64);
  EXPECT_EQ(llama.kv_heads, 8);
  EXPECT_EQ(llama.max_seq_len, 131072);
  EXPECT_EQ(llama.rope_theta, 5e5);
  EXPECT_TRUE(llama.tie_embeddings);
  EXPECT_FALSE(llama.qk_norm);
  EXPECT_TRUE(llama.rope_scaling == (RopeScaling{RopeScaling::Type::llama3, 32.0, 1.0, 4.0, 8192}));

  ModelConfig qwen3 = from_hf_config(json::parse(kQwen3Config));
  EXPECT_EQ(qwen3.name, "qwen3");
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_FALSE(qwen3.qkv_bias);
  EXPECT_EQ(qwen3.hidden, 1024);
  EXPECT_EQ(qwen3.head_dim, 128) << "head_dim 128 differs from hidden / heads = 64";
  EXPECT_EQ(qwen3.kv_heads, 8);
  EXPECT_EQ(qwen3.rope_theta, 1e6);
  EXPECT_EQ(qwen3.rope_scaling.type, RopeScaling::Type::none);
  EXPECT_TRUE(qwen3.tie_embeddings);
  // Embedding 151936 x 1024, 28 layers of 15730944 (q/k norms included), the final norm: the 0.6B of its name.
  EXPECT_EQ(parameter_count(qwen3), 596049920);
}

TEST(HfConfig, FamilyDefaults) {
  // Qwen3Config's head_dim defaults to 128; Qwen2Config's and Qwen3Config's num_key_value_heads to
  // 32 when the key is absent (and to num_attention_heads when it is null), LlamaConfig's to the heads.
  json hf = {{"model_type", "qwen3"},         {"hidden_size", 256},        {"intermediate_size", 512},
             {"num_hidden_layers", 2},        {"num_attention_heads", 64}, {"vocab_size", 100},
             {"max_position_embeddings", 256}};
  ModelConfig c = from_hf_config(hf);
  EXPECT_EQ(c.resolved_head_dim(), 128);
  EXPECT_EQ(c.kv_heads, 32);
  EXPECT_FALSE(c.tie_embeddings);
  hf["num_key_value_heads"] = nullptr;
  EXPECT_EQ(from_hf_config(hf).kv_heads, 64);
  hf.erase("num_key_value_heads");
  hf["model_type"] = "qwen2";
  c = from_hf_config(hf);
  EXPECT_EQ(c.kv_heads, 32);
  EXPECT_EQ(c.resolved_head_dim(), 4);
  hf["model_type"] = "llama";
  EXPECT_EQ(from_hf_config(hf).kv_heads, 64);
  hf.erase("model_type");
  hf["architectures"] = {"Qwen3ForCausalLM"};
  EXPECT_TRUE(from_hf_config(hf).qk_norm) << "architectures alone names Qwen3";
}

// Every option cohort does not implement is refused with its key and value in the message.
TEST(HfConfig, RefusesWhatCohortDoesNotImplement) {
  const json llama = json::parse(kLlama32Config), qwen3 = json::parse(kQwen3Config);
  struct Case {
    json base;
    std::string key;
    json value;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {llama,
       "rope_scaling",
       {{"rope_type", "dynamic"}, {"factor", 2.0}},
       {"rope_scaling.rope_type \"dynamic\"", "not supported"}},
      {llama,
       "rope_scaling",
       {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}},
       {"rope_scaling.type \"yarn\"", "default, linear and llama3"}},
      {llama, "rope_scaling", {{"rope_type", "longrope"}, {"long_factor", {1.0}}}, {"\"longrope\""}},
      {llama,
       "rope_scaling",
       {{"rope_type", "linear"}, {"factor", 2.0}, {"attention_factor", 0.5}},
       {"rope_scaling.attention_factor 0.5", "not supported"}},
      {llama,
       "rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"low_freq_factor", 1.0},
        {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 8192},
        {"mscale", 1.0}},
       {"rope_scaling.mscale 1.0"}},
      {llama, "rope_scaling", {{"rope_type", "linear"}}, {"rope_scaling needs 'factor'"}},
      {llama, "rope_scaling", {{"rope_type", "linear"}, {"factor", "2"}}, {"'rope_scaling.factor' must be a number"}},
      {llama, "rope_scaling", {{"rope_type", "linear"}, {"factor", -2.0}}, {"positive factor", "-2"}},
      {llama, "rope_scaling", {{"rope_type", "linear"}, {"type", "llama3"}, {"factor", 2.0}}, {"disagree"}},
      {llama,
       "rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"low_freq_factor", 4.0},
        {"high_freq_factor", 1.0},
        {"original_max_position_embeddings", 8192}},
       {"low_freq_factor < high_freq_factor"}},
      {llama,
       "rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"low_freq_factor", 1.0},
        {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 8192.5}},
       {"original_max_position_embeddings' must be a positive integer"}},
      {llama, "rope_scaling", "linear", {"'rope_scaling' must be an object"}},
      {llama, "rope_parameters", {{"rope_type", "default"}}, {"both 'rope_parameters'", "and 'rope_scaling'"}},
      {llama, "partial_rotary_factor", 0.5, {"partial_rotary_factor 0.5", "not supported"}},
      {llama, "quantization_config", {{"quant_method", "gptq"}}, {"quantization_config", "gptq", "not supported"}},
      {llama, "attention_bias", true, {"attention_bias true"}},
      {llama, "layer_types", {"full_attention", "sliding_attention"}, {"layer_types[1] \"sliding_attention\""}},
      {qwen3, "attention_bias", true, {"attention_bias true", "Qwen3 biases"}},
      {qwen3, "use_sliding_window", true, {"use_sliding_window true"}},
      {json::parse(kQwen25Config), "use_mrope", true, {"use_mrope true", "one-dimensional"}},
      {qwen3, "hidden_act", "gelu_pytorch_tanh", {"hidden_act \"gelu_pytorch_tanh\""}},
      {qwen3, "model_type", "qwen3_moe", {"unsupported model_type 'qwen3_moe'", "'qwen3'"}},
      {qwen3,
       "architectures",
       {"Qwen2ForCausalLM"},
       {"unsupported architecture 'Qwen2ForCausalLM'", "Qwen3ForCausalLM"}},
  };
  for (const Case& c : cases) {
    json hf = c.base;
    hf[c.key] = c.value;
    SCOPED_TRACE(c.key + " = " + c.value.dump());
    expect_error(hf, c.needles);
  }
  // A full_attention layer_types list is what a plain decoder has.
  json hf = qwen3;
  hf["layer_types"] = json::array();
  for (int i = 0; i < 28; ++i) hf["layer_types"].push_back("full_attention");
  EXPECT_TRUE(from_hf_config(hf).qk_norm);
  hf = llama;
  hf["partial_rotary_factor"] = 1.0;
  EXPECT_NO_THROW(from_hf_config(hf));
}

TEST(HfConfig, ToHfConfigRejectsBadInput) {
  ModelConfig c = model_config_named("tiny");
  EXPECT_THROW(to_hf_config(c, 1, 2, "int8"), Error);
  EXPECT_THROW(to_hf_config(c, 1, (int32_t)c.vocab, "float32"), Error);
  EXPECT_THROW(to_hf_config(c, -1, 2, "float32"), Error);
  c.heads = 3;  // 32 is not divisible by 3
  EXPECT_THROW(to_hf_config(c, 1, 2), Error);
}

TEST(HfConfig, WritesConfigJsonIntoNewDirectory) {
  const fs::path dir = fs::temp_directory_path() / ("cohort_hf_config_" + std::to_string((long)::getpid())) / "a" / "b";
  fs::remove_all(dir.parent_path().parent_path());
  ModelConfig c = model_config_named("small");
  write_hf_config(c, dir.string(), 256, 257, "bfloat16");
  EXPECT_TRUE(fs::exists(dir / "config.json"));
  EXPECT_FALSE(fs::exists(dir / "config.json.tmp"));
  std::ifstream in(dir / "config.json");
  json written = json::parse(in);
  EXPECT_EQ(written, to_hf_config(c, 256, 257, "bfloat16"));
  expect_same(read_hf_config(dir.string()), c);
  expect_same(read_hf_config((dir / "config.json").string()), c);
  // Overwriting works, and read errors name the file.
  write_hf_config(model_config_named("tiny"), dir.string(), 256, 257, "float32");
  EXPECT_TRUE(read_hf_config(dir.string()).qkv_bias);
  std::ofstream(dir / "config.json") << R"({"model_type": "llama", "hidden_size": 8})";
  try {
    read_hf_config(dir.string());
    ADD_FAILURE() << "an incomplete config.json should not load";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("intermediate_size"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "config.json") << "{not json";
  EXPECT_THROW(read_hf_config(dir.string()), Error);
  EXPECT_THROW(read_hf_config((dir / "absent").string()), Error);
  fs::remove_all(dir.parent_path().parent_path());
}
