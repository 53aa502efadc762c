// GGUF for what the Qwen3 and rope-scaling work added: a Qwen3 model (the q/k norm) is written
// as llama.cpp's "qwen3" architecture (attn_q_norm / attn_k_norm, rotate-half rotary, no row
// permutation) and reads back bit for bit; linear rope scaling travels as rope.scaling.type and
// rope.scaling.factor; llama3 scaling and biases-with-q/k-norm are refused with a reason.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "kernels/error.h"
#include "model/byte_tokenizer.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "common/model_files.h"

using namespace cohort;
using namespace cohort::testing;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  return fs::temp_directory_path() / ("cohort_gguf_qwen3_" + name + "_" + std::to_string((long)::getpid()) + ".gguf");
}

ModelConfig tiny_qwen3() {
  ModelConfig c = model_config_named("tiny");
  c.name = "tiny-qwen3", c.qkv_bias = false, c.qk_norm = true, c.head_dim = 12, c.tie_embeddings = false;
  return c;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(GgufQwen3, RoundTripIsBitExactWithQkNormTensors) {
  ModelConfig linear = tiny_qwen3();
  linear.name = "tiny-qwen3-linear-rope", linear.tie_embeddings = true;
  linear.rope_scaling.type = RopeScaling::Type::linear, linear.rope_scaling.factor = 4.0;
  for (const ModelConfig& config : {tiny_qwen3(), linear}) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 3);
    const fs::path path = scratch(config.name);
    write_gguf(model, ByteTokenizer(), path.string(), GgufDtype::f32);
    const GgufFile file = read_gguf_header(path.string());
    EXPECT_EQ(file.get_string("general.architecture"), "qwen3");
    EXPECT_EQ(file.get_integer("qwen3.attention.key_length"), 12);
    std::set<std::string> names;
    for (const GgufTensorInfo& t : file.tensors) names.insert(t.name);
    EXPECT_TRUE(names.count("blk.0.attn_q_norm.weight"));
    EXPECT_TRUE(names.count("blk.1.attn_k_norm.weight"));
    EXPECT_FALSE(names.count("blk.0.attn_q.bias"));
    EXPECT_EQ(file.find_tensor("blk.0.attn_k_norm.weight")->dims, (std::vector<uint64_t>{12}));
    const bool scaled = config.rope_scaling.type == RopeScaling::Type::linear;
    EXPECT_EQ(file.find("qwen3.rope.scaling.type") != nullptr, scaled);
    if (scaled) {
      EXPECT_EQ(file.get_string("qwen3.rope.scaling.type"), "linear");
      EXPECT_EQ(file.get_float("qwen3.rope.scaling.factor"), 4.0);
    }

    std::unique_ptr<Transformer> back = load_gguf_model(path.string());
    EXPECT_TRUE(back->config().qk_norm);
    EXPECT_FALSE(back->config().qkv_bias);
    EXPECT_EQ(back->config().resolved_head_dim(), 12);
    EXPECT_TRUE(back->config().rope_scaling == config.rope_scaling);
    ASSERT_EQ(back->weights().size(), model.weights().size());
    EXPECT_EQ(std::memcmp(back->weights().data(), model.weights().data(), model.weights().size() * sizeof(float)), 0)
        << "qwen3 rows are not permuted (rotate-half in llama.cpp too), so f32 comes back bit for bit";
    fs::remove(path);
  }
}

TEST(GgufQwen3, RefusesWhatLlamaCppCannotTakeThisWay) {
  ModelConfig llama3 = model_config_named("tiny");
  llama3.qkv_bias = false;
  llama3.rope_scaling = {RopeScaling::Type::llama3, 8.0, 1.0, 4.0, 32};
  const fs::path path = scratch("refused");
  EXPECT_NE(error_of([&] {
              write_gguf(random_model(llama3, 1), ByteTokenizer(), path.string(), GgufDtype::f32);
            }).find("rope scaling llama3 is not supported in GGUF"),
            std::string::npos);
  ModelConfig both = tiny_qwen3();
  both.qkv_bias = true;
  EXPECT_NE(error_of([&] {
              write_gguf(random_model(both, 1), ByteTokenizer(), path.string(), GgufDtype::f32);
            }).find("q/k/v biases together with the q/k norm"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path)) << "a refused export writes nothing";
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}
