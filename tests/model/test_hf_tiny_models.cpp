// Tiny random Llama (llama3 rope scaling, sharded f32), Qwen2 (linear rope scaling, bf16, tied) and
// Qwen3 (q/k norm, head_dim other than hidden / heads, f16) directories made by
// tests/hf/make_tiny_models.py: cohort loads each as model.init would, and its logits, from the training
// forward and from prefill plus KV-cache decoding, must equal the ones stored beside the weights
// (transformers', or the script's reference implementation where transformers has no Qwen3) to a
// relative error under 1e-4; generation_config.json's eos ids must come through; and exporting the
// loaded model (cohort export's save_model_directory) must give the same tensors again.
// Skipped unless COHORT_HF_TINY_DIR names the directory; tests/hf/check_transformers.sh sets it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "model/byte_tokenizer.h"
#include "model/model_directory.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "common/model_files.h"

using namespace cohort;
using namespace cohort::testing;
namespace fs = std::filesystem;

namespace {

// max |a - b| / max |b|, as tests/model/check_hf_load.py measures it.
double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs((double)got[i] - (double)want[i]));
    scale = std::max(scale, std::fabs((double)want[i]));
  }
  return std::isfinite(diff) ? diff / scale : INFINITY;
}

// Every tensor of a directory's weights (model.safetensors, or the shards of the index): name -> (dtype, shape).
std::map<std::string, std::pair<std::string, std::vector<int64_t>>> tensors_of(const fs::path& dir) {
  std::vector<fs::path> files;
  if (fs::exists(dir / kSafetensorsIndexFile)) {
    const nlohmann::json index = nlohmann::json::parse(read_bytes(dir / kSafetensorsIndexFile));
    std::set<std::string> shards;
    for (const auto& [name, shard] : index.at("weight_map").items()) shards.insert(shard.get<std::string>());
    for (const auto& shard : shards) files.push_back(dir / shard);
  } else {
    files.push_back(dir / "model.safetensors");
  }
  std::map<std::string, std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& file : files)
    for (const SafetensorsEntry& e : read_safetensors_header(file.string())) out[e.name] = {e.dtype, e.shape};
  return out;
}

// Logits (B, V) of the last position of every prefix: a prefill of the first half, then one token a step.
std::vector<float> decoded_logits(Transformer& model, const std::vector<int32_t>& tokens) {
  const int64_t T = (int64_t)tokens.size(), V = model.config().vocab, prefill = T / 2;
  KVCache cache(model.config(), 1, T);
  std::vector<float> all((size_t)(T * V), 0.0f), logits((size_t)V);
  int32_t slot = 0, start = 0, n = (int32_t)prefill;
  model.decode(cache, tokens.data(), &slot, &start, &n, 1, prefill, logits.data());
  std::copy(logits.begin(), logits.end(), all.begin() + (prefill - 1) * V);
  for (int64_t t = prefill; t < T; ++t) {
    start = (int32_t)t, n = 1;
    model.decode(cache, tokens.data() + t, &slot, &start, &n, 1, 1, logits.data());
    std::copy(logits.begin(), logits.end(), all.begin() + t * V);
  }
  return all;
}

}  // namespace

TEST(HfTinyModels, LogitsEqualTheReferenceAndExportKeepsTheTensors) {
  const char* root = std::getenv("COHORT_HF_TINY_DIR");
  if (root == nullptr || *root == '\0')
    GTEST_SKIP() << "COHORT_HF_TINY_DIR is not set (tests/hf/check_transformers.sh makes the models and sets it)";
  int families = 0;
  for (const char* name : {"llama", "qwen2", "qwen3"}) {
    const fs::path dir = fs::path(root) / name;
    SCOPED_TRACE(dir.string());
    ASSERT_TRUE(fs::exists(dir / "expected_logits.json")) << "make_tiny_models.py did not write " << dir;
    const nlohmann::json expected = nlohmann::json::parse(read_bytes(dir / "expected_logits.json"));
    const std::vector<int32_t> tokens = expected.at("tokens").get<std::vector<int32_t>>();
    const std::vector<float> want = expected.at("logits").get<std::vector<float>>();

    std::unique_ptr<Transformer> model = load_model_directory(dir);
    const ModelConfig& c = model->config();
    const int64_t T = (int64_t)tokens.size(), V = c.vocab;
    ASSERT_EQ((int64_t)want.size(), T * V);
    // The features each family is here to carry actually reached the model.
    EXPECT_EQ(c.name, expected.at("model_type").get<std::string>());
    EXPECT_EQ(c.qk_norm, expected.at("qk_norm").get<bool>());
    EXPECT_EQ(std::string(rope_scaling_name(c.rope_scaling.type)), expected.at("rope_type").get<std::string>());
    EXPECT_EQ(read_generation_config(dir).eos_token_ids, expected.at("eos_token_ids").get<std::vector<int32_t>>());

    const std::vector<int32_t> lengths = {(int32_t)T}, targets(tokens.size(), -1);
    std::vector<float> logprob((size_t)T), logits((size_t)(T * V));
    model->forward(tokens.data(), lengths.data(), targets.data(), 1, T, logprob.data(), nullptr);
    model->last_forward_logits(logits.data());
    const double forward_error = relative_error(logits, want);
    std::vector<float> decoded = decoded_logits(*model, tokens), want_decoded = want;
    for (int64_t t = 0; t < T / 2 - 1; ++t)  // the prefill returns only its last position
      std::fill_n(want_decoded.begin() + t * V, V, 0.0f), std::fill_n(decoded.begin() + t * V, V, 0.0f);
    const double decode_error = relative_error(decoded, want_decoded);
    EXPECT_LT(forward_error, 1e-4) << "training forward logits vs " << expected.at("source");
    EXPECT_LT(decode_error, 1e-4) << "prefill + decode logits vs " << expected.at("source");

    // Export after load: the same tensor names and shapes, the values bit for bit (bf16 stays bf16,
    // f32 and f16 are written as f32, the f16 values exactly).
    const auto source = tensors_of(dir);
    bool all_bf16 = true;
    for (const auto& [tensor, info] : source) all_bf16 = all_bf16 && info.first == "BF16";
    const fs::path exported = fs::path(root) / (std::string(name) + "-export");
    const SafetensorsDtype dtype = all_bf16 ? SafetensorsDtype::bf16 : SafetensorsDtype::f32;
    save_model_directory(*model, ByteTokenizer(), exported, dtype);
    const auto written = tensors_of(exported);
    ASSERT_EQ(written.size(), source.size());
    for (const auto& [tensor, info] : source) {
      auto it = written.find(tensor);
      ASSERT_NE(it, written.end()) << tensor << " is missing from the export";
      EXPECT_EQ(it->second.second, info.second) << tensor;
      EXPECT_EQ(it->second.first, all_bf16 ? "BF16" : "F32") << tensor;
    }
    std::unique_ptr<Transformer> again = load_model_directory(exported);
    ASSERT_EQ(again->weights().size(), model->weights().size());
    EXPECT_EQ(std::memcmp(again->weights().data(), model->weights().data(), model->weights().size() * 4), 0)
        << "the export holds other values than the directory it was loaded from";
    // cohort's logits on the export, for check_hf_load.py to compare with transformers'.
    std::ofstream(exported / "expected_logits.json") << nlohmann::json{{"tokens", tokens}, {"logits", logits}}.dump();

    std::cout << "hf-tiny: " << name << ": " << c.name << (c.qk_norm ? " (q/k norm)" : "") << ", rope "
              << rope_scaling_name(c.rope_scaling.type) << ", " << source.size() << " tensors in "
              << source.begin()->second.first << ": logits vs " << expected.at("source").get<std::string>()
              << ": forward max relative error " << forward_error << ", decode " << decode_error
              << "; export after load: " << written.size() << " identical tensors\n";
    ++families;
  }
  EXPECT_EQ(families, 3);
}
