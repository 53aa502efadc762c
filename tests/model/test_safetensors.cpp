// safetensors: bit-exact f32 and bf16-rounded round trips, the file layout HF expects
// (8-aligned JSON header, HF names, no tied lm_head), F16 input, atomic writes, and every
// kind of bad file (each corrupted by hand from a good one) failing with an error that
// names what is wrong and leaving the model as it was; and the sharded model directory
// (shards + model.safetensors.index.json): its layout, round trip, the removal of the form
// an earlier save left, and every kind of bad index; a Qwen3 directory with llama3 rope scaling
// round trip (export after load gives the same bytes), and generation_config.json's eos ids.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"
#include "model/byte_tokenizer.h"
#include "model/hf_config.h"
#include "model/model_directory.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "common/model_files.h"

using namespace cohort;
using namespace cohort::testing;
namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

ModelConfig untied_config() {
  ModelConfig c = model_config_named("tiny");
  c.name = "tiny-untied";
  c.qkv_bias = false, c.tie_embeddings = false, c.vocab = 50, c.head_dim = 16;  // head_dim != hidden / heads
  return c;
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | (uint8_t)bytes[i];
  return n;
}

std::string length_prefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)(uint8_t)(n >> (8 * i));
  return s;
}

// A safetensors file taken apart so a test can corrupt its header and put it back.
struct RawFile {
  ordered_json header;
  std::string data;

  static RawFile read(const fs::path& path) {
    std::string bytes = read_bytes(path);
    uint64_t n = header_length(bytes);
    return RawFile{ordered_json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
  }
  void write(const fs::path& path) const {
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    write_bytes(path, length_prefix(text.size()) + text + data);
  }
};

class Safetensors : public ::testing::Test {
 protected:
  fs::path dir_;
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("cohort_safetensors_" + std::string(info->name()) + "_" + std::to_string((long)::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A good file of `model` with its header (and data) edited by `corrupt`.
  fs::path corrupted(const Transformer& model, const std::function<void(RawFile&)>& corrupt) {
    fs::path path = dir_ / "corrupt.safetensors";
    save_safetensors(model, path.string());
    RawFile raw = RawFile::read(path);
    corrupt(raw);
    raw.write(path);
    return path;
  }
};

// Runs load_safetensors on `path` expecting a cohort::Error whose message holds every
// one of `needles`; the model's weights must be unchanged afterwards.
void expect_load_error(const fs::path& path, const ModelConfig& config, std::vector<std::string> needles,
                       bool allow_extra = false) {
  Transformer model = random_model(config, 99);
  const std::vector<float> before = model.weights();
  try {
    load_safetensors(model, path.string(), allow_extra);
    ADD_FAILURE() << "loading " << path << " should have failed (expected: " << needles[0] << ")";
  } catch (const Error& e) {
    std::string what = e.what();
    for (const auto& needle : needles)
      EXPECT_NE(what.find(needle), std::string::npos) << "missing '" << needle << "' in: " << what;
  }
  EXPECT_EQ(std::memcmp(model.weights().data(), before.data(), before.size() * sizeof(float)), 0)
      << "a failed load changed the model";
}

}  // namespace

TEST_F(Safetensors, F32RoundTripIsBitExact) {
  for (const ModelConfig& config : {model_config_named("tiny"), untied_config()}) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 1);
    // Values where a lossy path would show: signed zero, a subnormal, extremes, NaN, inf.
    auto& w = model.weights();
    w[1] = -0.0f, w[2] = 1e-40f, w[3] = 3.4e38f, w[4] = -1.17549435e-38f, w[5] = std::nanf(""), w[6] = -INFINITY;
    fs::path path = dir_ / "model.safetensors";
    save_safetensors(model, path.string());
    Transformer loaded(config);
    SafetensorsLoadReport report = load_safetensors(loaded, path.string());
    EXPECT_TRUE(report.extra_tensors.empty());
    ASSERT_EQ(loaded.weights().size(), w.size());
    EXPECT_EQ(std::memcmp(loaded.weights().data(), w.data(), w.size() * sizeof(float)), 0);
    EXPECT_EQ((int64_t)fs::file_size(path), 8 + (int64_t)header_length(read_bytes(path)) + 4 * model.num_parameters());
  }
}

TEST_F(Safetensors, Bf16RoundTripEqualsBf16Rounding) {
  for (const ModelConfig& config : {model_config_named("tiny"), untied_config()}) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 2);
    fs::path path = dir_ / "model.safetensors";
    save_safetensors(model, path.string(), SafetensorsDtype::bf16);
    for (const auto& entry : read_safetensors_header(path.string())) EXPECT_EQ(entry.dtype, "BF16") << entry.name;
    Transformer loaded(config);
    load_safetensors(loaded, path.string());
    int bad = 0, changed = 0;
    for (size_t i = 0; i < model.weights().size(); ++i) {
      float want = bf16_to_float(float_to_bf16(model.weights()[i]));
      bad += std::memcmp(&want, &loaded.weights()[i], sizeof(float)) != 0;
      changed += want != model.weights()[i];
    }
    EXPECT_EQ(bad, 0) << "weights that differ from their bf16 rounding";
    EXPECT_GT(changed, 0) << "bf16 rounding changed nothing; the test would prove nothing";
    EXPECT_EQ((int64_t)fs::file_size(path), 8 + (int64_t)header_length(read_bytes(path)) + 2 * model.num_parameters());
  }
}

TEST_F(Safetensors, HeaderIsAlignedJsonWithHfNames) {
  for (const ModelConfig& config : {model_config_named("tiny"), untied_config()}) {
    SCOPED_TRACE(config.name);
    Transformer model = random_model(config, 3);
    fs::path path = dir_ / "model.safetensors";
    save_safetensors(model, path.string(), SafetensorsDtype::f32, {{"format", "pt"}, {"producer", "cohort"}});
    const std::string bytes = read_bytes(path);
    const uint64_t n = header_length(bytes);
    EXPECT_EQ(n % 8, 0u);
    const std::string text = bytes.substr(8, n);
    EXPECT_EQ(text[0], '{');
    EXPECT_EQ(text.find_last_not_of(' '), text.rfind('}')) << "padding must be spaces after the JSON";
    nlohmann::json header = nlohmann::json::parse(text);  // throws on invalid JSON
    EXPECT_EQ(header["__metadata__"], (nlohmann::json{{"format", "pt"}, {"producer", "cohort"}}));
    EXPECT_EQ(read_safetensors_metadata(path.string()),
              (std::map<std::string, std::string>{{"format", "pt"}, {"producer", "cohort"}}));

    EXPECT_EQ(header.size(), model.parameters().size() + 1);
    EXPECT_TRUE(header.contains("model.embed_tokens.weight"));
    EXPECT_TRUE(header.contains("model.layers.1.mlp.down_proj.weight"));
    EXPECT_TRUE(header.contains("model.norm.weight"));
    EXPECT_EQ(header.contains("lm_head.weight"), !config.tie_embeddings) << "a tied lm_head is not written";
    EXPECT_EQ(header.contains("model.layers.0.self_attn.q_proj.bias"), config.qkv_bias);

    // Entries in parameter order, contiguous from 0 to the end of the file.
    std::vector<SafetensorsEntry> entries = read_safetensors_header(path.string());
    ASSERT_EQ(entries.size(), model.parameters().size());
    int64_t offset = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      const ParameterInfo& p = model.parameters()[i];
      EXPECT_EQ(entries[i].name, p.name);
      EXPECT_EQ(entries[i].dtype, "F32");
      EXPECT_EQ(entries[i].shape, p.shape);
      EXPECT_EQ(entries[i].begin, offset);
      EXPECT_EQ(entries[i].end, offset + 4 * p.numel);
      EXPECT_EQ(header[p.name]["data_offsets"], (nlohmann::json{offset, offset + 4 * p.numel}));
      offset += 4 * p.numel;
    }
    EXPECT_EQ(offset, (int64_t)(bytes.size() - 8 - n));
    // The data is the weights, little-endian, in that order.
    EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, model.weights().data(), (size_t)offset), 0);
  }
}

TEST_F(Safetensors, EmptyMetadataWritesNoMetadataEntry) {
  Transformer model = random_model(model_config_named("tiny"), 4);
  fs::path path = dir_ / "model.safetensors";
  save_safetensors(model, path.string(), SafetensorsDtype::f32, {});
  EXPECT_FALSE(RawFile::read(path).header.contains("__metadata__"));
  EXPECT_TRUE(read_safetensors_metadata(path.string()).empty());
  Transformer loaded(model.config());
  load_safetensors(loaded, path.string());
  EXPECT_EQ(loaded.weights(), model.weights());
}

TEST_F(Safetensors, LoadsF16AndMixedDtypes) {
  // Half bit patterns and their exact values: normal, negative, subnormal, signed zero, max, inf.
  const std::vector<std::pair<uint16_t, float>> halves = {{0x3C00, 1.0f},
                                                          {0xC000, -2.0f},
                                                          {0x3555, 0.333251953125f},
                                                          {0x0001, 5.9604644775390625e-8f},
                                                          {0x8000, -0.0f},
                                                          {0x7BFF, 65504.0f},
                                                          {0xFC00, -INFINITY},
                                                          {0x03FF, 6.09755516052246094e-5f},
                                                          {0x0400, 6.103515625e-5f},
                                                          {0x2E66, 0.0999755859375f}};
  const ModelConfig config = untied_config();
  Transformer model = random_model(config, 5);
  fs::path path = dir_ / "model.safetensors";
  std::vector<float> want = model.weights();
  // Rewrite every other tensor as F16 holding the patterns above; the rest stay F32.
  RawFile raw;
  raw.header["__metadata__"] = {{"format", "pt"}};
  for (size_t t = 0; t < model.parameters().size(); ++t) {
    const ParameterInfo& p = model.parameters()[t];
    const int64_t begin = (int64_t)raw.data.size();
    if (t % 2 == 0) {
      for (int64_t i = 0; i < p.numel; ++i) {
        const auto& [bits, value] = halves[(size_t)(i + t) % halves.size()];
        raw.data.append(reinterpret_cast<const char*>(&bits), 2);
        want[(size_t)(p.offset + i)] = value;
      }
    } else {
      raw.data.append(reinterpret_cast<const char*>(model.weights().data() + p.offset), (size_t)p.numel * 4);
    }
    raw.header[p.name] = {
        {"dtype", t % 2 == 0 ? "F16" : "F32"}, {"shape", p.shape}, {"data_offsets", {begin, (int64_t)raw.data.size()}}};
  }
  raw.write(path);
  Transformer loaded(config);
  load_safetensors(loaded, path.string());
  EXPECT_EQ(std::memcmp(loaded.weights().data(), want.data(), want.size() * sizeof(float)), 0);
}

TEST_F(Safetensors, LoadsTensorsStoredInAnyOrder) {
  // HF's writer sorts tensors by dtype and name, not by layer; the header order is free.
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 6);
  RawFile raw;
  const auto& params = model.parameters();
  for (size_t k = params.size(); k-- > 0;) {
    const ParameterInfo& p = params[k];
    const int64_t begin = (int64_t)raw.data.size();
    raw.data.append(reinterpret_cast<const char*>(model.weights().data() + p.offset), (size_t)p.numel * 4);
    raw.header[p.name] = {{"dtype", "F32"}, {"shape", p.shape}, {"data_offsets", {begin, (int64_t)raw.data.size()}}};
  }
  fs::path path = dir_ / "reversed.safetensors";
  raw.write(path);
  Transformer loaded(config);
  load_safetensors(loaded, path.string());
  EXPECT_EQ(loaded.weights(), model.weights());
}

TEST_F(Safetensors, AtomicWriteLeavesNoTemporaryFile) {
  Transformer model = random_model(model_config_named("tiny"), 7);
  fs::path path = dir_ / "model.safetensors";
  save_safetensors(model, path.string());
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  // Overwriting replaces the file whole.
  Transformer other = random_model(model_config_named("tiny"), 8);
  save_safetensors(other, path.string(), SafetensorsDtype::bf16);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EXPECT_EQ(read_safetensors_header(path.string())[0].dtype, "BF16");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(Safetensors, FailedWriteKeepsThePreviousFile) {
  Transformer model = random_model(model_config_named("tiny"), 9);
  fs::path path = dir_ / "model.safetensors";
  save_safetensors(model, path.string());
  const std::string before = read_bytes(path);
  // The temporary name is taken by a directory, so the write cannot start.
  fs::create_directory(path.string() + ".tmp");
  Transformer other = random_model(model_config_named("tiny"), 10);
  try {
    save_safetensors(other, path.string());
    ADD_FAILURE() << "save should fail when the temporary file cannot be created";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors.tmp"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(path), before);
  // A directory that does not exist: an error, and nothing left behind.
  fs::path missing = dir_ / "no" / "such" / "dir" / "model.safetensors";
  EXPECT_THROW(save_safetensors(other, missing.string()), Error);
  EXPECT_FALSE(fs::exists(missing.string() + ".tmp"));
}

TEST_F(Safetensors, MissingOrUnreadableFile) {
  const ModelConfig config = model_config_named("tiny");
  expect_load_error(dir_ / "absent.safetensors", config, {"absent.safetensors", "cannot open"});
  expect_load_error(dir_, config, {"is a directory"});
  EXPECT_THROW(read_safetensors_header((dir_ / "absent.safetensors").string()), Error);
}

TEST_F(Safetensors, TruncatedFile) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 11);
  fs::path path = dir_ / "model.safetensors";
  save_safetensors(model, path.string());
  const std::string bytes = read_bytes(path);

  write_bytes(path, bytes.substr(0, 5));
  expect_load_error(path, config, {"model.safetensors", "truncated", "5 bytes"});
  write_bytes(path, "");
  expect_load_error(path, config, {"truncated", "0 bytes"});
  // Cut inside the header: the length now runs beyond the file.
  write_bytes(path, bytes.substr(0, 8 + header_length(bytes) / 2));
  expect_load_error(path, config, {"header length", "beyond the end of the file"});
  // Cut inside the data: the last tensor's range is out of the file.
  write_bytes(path, bytes.substr(0, bytes.size() - 10));
  expect_load_error(path, config, {"model.norm.weight", "out of range", "truncated"});
}

TEST_F(Safetensors, BadHeaderLength) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 12);
  fs::path path = dir_ / "model.safetensors";
  save_safetensors(model, path.string());
  const std::string bytes = read_bytes(path);

  write_bytes(path, length_prefix(bytes.size()) + bytes.substr(8));
  expect_load_error(path, config, {"header length " + std::to_string(bytes.size()), "beyond the end of the file"});
  // Absurd lengths are refused before anything is allocated.
  for (uint64_t n : {uint64_t(1) << 40, ~uint64_t(0), (uint64_t(100) << 20) + 1}) {
    write_bytes(path, length_prefix(n) + bytes.substr(8));
    expect_load_error(path, config, {"header length " + std::to_string(n), "exceeds the limit"});
  }
  // A length that cuts the JSON short.
  write_bytes(path, length_prefix(16) + bytes.substr(8));
  expect_load_error(path, config, {"not valid JSON"});
}

TEST_F(Safetensors, BadJson) {
  const ModelConfig config = model_config_named("tiny");
  fs::path path = dir_ / "model.safetensors";
  const std::string data(64, '\0');
  write_bytes(path, length_prefix(16) + "{\"a\": [1, 2,  " + data);
  expect_load_error(path, config, {"model.safetensors", "not valid JSON"});
  write_bytes(path, length_prefix(8) + "[1, 2]  " + data);
  expect_load_error(path, config, {"must be a JSON object", "array"});
  write_bytes(path, length_prefix(8) + "{\"x\": 1}" + data);
  expect_load_error(path, config, {"tensor 'x'", "must be an object"});
  write_bytes(path, length_prefix(24) + "{\"__metadata__\":{\"a\":1}}" + data);
  expect_load_error(path, config, {"__metadata__ value 'a' must be a string"});
}

TEST_F(Safetensors, WrongShapeNamesBothShapes) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 13);
  // Same element count, other shape: only the model can tell.
  fs::path path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"]["shape"] = {2, 16}; });
  expect_load_error(path, config, {"model.norm.weight", "[2, 16]", "[32]"});
  // A shape that disagrees with the byte range is caught by the header check.
  path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"]["shape"] = {33}; });
  expect_load_error(path, config, {"model.norm.weight", "hold 128 bytes", "needs 132"});
  // A file for another model size.
  ModelConfig wider = config;
  wider.intermediate = 96;
  path = dir_ / "wide.safetensors";
  save_safetensors(random_model(wider, 14), path.string());
  expect_load_error(path, config, {"model.layers.0.mlp.gate_proj.weight", "[96, 32]", "[64, 32]"});
  // Shapes whose element or byte count overflows 64 bits.
  path = corrupted(model, [](RawFile& raw) {
    raw.header["model.norm.weight"]["shape"] = {int64_t(1) << 40, int64_t(1) << 40};
  });
  expect_load_error(path, config, {"model.norm.weight", "more elements than fit in 64 bits"});
  path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"]["shape"] = {int64_t(1) << 62}; });
  expect_load_error(path, config, {"model.norm.weight", "more bytes than fit in 64 bits"});
  path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"]["shape"] = {-32}; });
  expect_load_error(path, config, {"model.norm.weight", "non-negative integers"});
}

TEST_F(Safetensors, MissingTensor) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 15);
  fs::path path = corrupted(model, [](RawFile& raw) { raw.header.erase("model.layers.1.mlp.up_proj.weight"); });
  expect_load_error(path, config, {"corrupt.safetensors", "no tensor 'model.layers.1.mlp.up_proj.weight'", "[64, 32]"});
  // A tied model's file has no lm_head: loading it into an untied model says why.
  ModelConfig untied = config;
  untied.tie_embeddings = false;
  path = dir_ / "tied.safetensors";
  save_safetensors(model, path.string());
  expect_load_error(path, untied, {"no tensor 'lm_head.weight'", "tied embeddings"});
  // And a Qwen2 file without its biases does not load into a model that has them.
  ModelConfig no_bias = config;
  no_bias.qkv_bias = false;
  save_safetensors(random_model(no_bias, 16), path.string());
  expect_load_error(path, config, {"no tensor 'model.layers.0.self_attn.q_proj.bias'"});
}

TEST_F(Safetensors, ExtraTensorNeedsAllowExtra) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 17);
  fs::path path = corrupted(model, [](RawFile& raw) {
    const int64_t begin = (int64_t)raw.data.size();
    raw.data.append(8, '\x01');
    raw.header["model.layers.0.self_attn.rotary_emb.inv_freq"] = {
        {"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {begin, begin + 8}}};
  });
  expect_load_error(path, config, {"1 tensor(s)", "model.layers.0.self_attn.rotary_emb.inv_freq", "allow_extra"});
  Transformer loaded(config);
  SafetensorsLoadReport report = load_safetensors(loaded, path.string(), /*allow_extra=*/true);
  EXPECT_EQ(report.extra_tensors, std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
  EXPECT_EQ(loaded.weights(), model.weights());

  // An untied file loaded into the tied model: lm_head.weight is the extra one.
  ModelConfig untied = config;
  untied.tie_embeddings = false;
  path = dir_ / "untied.safetensors";
  save_safetensors(random_model(untied, 18), path.string());
  expect_load_error(path, config, {"'lm_head.weight'"});
  report = load_safetensors(loaded, path.string(), true);
  EXPECT_EQ(report.extra_tensors, std::vector<std::string>{"lm_head.weight"});
}

TEST_F(Safetensors, BadDtype) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 19);
  fs::path path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"]["dtype"] = "Q4_K"; });
  expect_load_error(path, config, {"model.norm.weight", "unknown dtype 'Q4_K'"});
  EXPECT_THROW(read_safetensors_header(path.string()), Error);
  // A real safetensors dtype of the right size, but not a float cohort can load.
  path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"]["dtype"] = "I32"; });
  expect_load_error(path, config, {"model.norm.weight", "dtype I32 cannot be loaded", "F32, BF16, F16"});
  EXPECT_EQ(read_safetensors_header(path.string()).size(), model.parameters().size());  // the header itself is fine
  path = corrupted(model, [](RawFile& raw) { raw.header["model.norm.weight"].erase("dtype"); });
  expect_load_error(path, config, {"model.norm.weight", "\"dtype\""});
  // With an I32 extra tensor the load still works when extras are allowed.
  path = corrupted(model, [](RawFile& raw) {
    const int64_t begin = (int64_t)raw.data.size();
    raw.data.append(4, '\0');
    raw.header["step"] = {{"dtype", "I32"}, {"shape", nlohmann::json::array()}, {"data_offsets", {begin, begin + 4}}};
  });
  Transformer loaded(config);
  EXPECT_EQ(load_safetensors(loaded, path.string(), true).extra_tensors, std::vector<std::string>{"step"});
}

TEST_F(Safetensors, BadOffsets) {
  const ModelConfig config = model_config_named("tiny");
  Transformer model = random_model(config, 20);
  const std::string norm = "model.norm.weight", layer = "model.layers.1.post_attention_layernorm.weight";
  // Past the end of the data.
  fs::path path = corrupted(model, [&](RawFile& raw) {
    const int64_t end = (int64_t)raw.data.size();
    raw.header[norm]["data_offsets"] = {end, end + 128};
  });
  expect_load_error(path, config, {norm, "out of range"});
  // Two tensors on the same bytes.
  path = corrupted(model, [&](RawFile& raw) { raw.header[norm]["data_offsets"] = raw.header[layer]["data_offsets"]; });
  expect_load_error(path, config, {"overlap", norm, layer});
  // Partly overlapping.
  path = corrupted(model, [&](RawFile& raw) {
    int64_t begin = raw.header[layer]["data_offsets"][0].get<int64_t>() + 64;
    raw.header[norm]["data_offsets"] = {begin, begin + 128};
  });
  expect_load_error(path, config, {"overlap", norm, layer});
  // Malformed ranges.
  for (const nlohmann::json& offsets :
       {nlohmann::json{-128, 0}, nlohmann::json{128, 0}, nlohmann::json{0}, nlohmann::json{0.5, 128.5},
        nlohmann::json("0-128"), nlohmann::json{uint64_t(1) << 63, (uint64_t(1) << 63) + 128}}) {
    path = corrupted(model, [&](RawFile& raw) { raw.header[norm]["data_offsets"] = offsets; });
    expect_load_error(path, config, {norm, "data_offsets must be [begin, end]"});
  }
}

// Writes Hugging Face directories (config.json, model.safetensors, tokenizer.json) and the
// logits cohort computes for a fixed prompt from the weights as stored, for
// tests/model/check_hf_load.py to compare against transformers: Qwen2 (tied, biases),
// Qwen2 with head_dim != hidden / heads, and untied Llama, each in f32 and bf16. Kept
// where COHORT_HF_CHECK_DIR points; otherwise written to a temporary directory, checked
// here and removed.
TEST_F(Safetensors, ExportsHfDirectoryForPythonCheck) {
  const char* keep = std::getenv("COHORT_HF_CHECK_DIR");
  if (keep != nullptr && *keep == '\0') keep = nullptr;
  ModelConfig qwen2_head16 = model_config_named("tiny");
  qwen2_head16.name = "tiny-head16", qwen2_head16.head_dim = 16, qwen2_head16.kv_heads = 1;
  for (const ModelConfig& config : {model_config_named("tiny"), qwen2_head16, untied_config()}) {
    for (SafetensorsDtype dtype : {SafetensorsDtype::f32, SafetensorsDtype::bf16}) {
      const bool bf16 = dtype == SafetensorsDtype::bf16;
      ModelConfig c = config;
      c.vocab = ByteTokenizer::kVocabSize, c.rope_theta = 500000.0, c.rms_eps = 1e-5;
      SCOPED_TRACE(c.name + (bf16 ? " bf16" : " f32"));
      const fs::path out = (keep ? fs::path(keep) : dir_) / (c.name + (bf16 ? "-bf16" : ""));
      Transformer model(c);
      model.init_random(21);
      for (size_t i = 0; i < model.weights().size(); i += 5) model.weights()[i] += 0.1f * std::cos((float)i);
      write_hf_config(c, out.string(), ByteTokenizer::kBosId, ByteTokenizer::kEosId, bf16 ? "bfloat16" : "float32");
      save_safetensors(model, (out / "model.safetensors").string(), dtype);
      std::ofstream(out / "tokenizer.json") << ByteTokenizer().to_hf_tokenizer_json().dump(2);

      ModelConfig reread = read_hf_config(out.string());
      EXPECT_EQ(reread.hidden, c.hidden);
      EXPECT_EQ(reread.resolved_head_dim(), c.resolved_head_dim());
      EXPECT_EQ(reread.kv_heads, c.kv_heads);
      EXPECT_EQ(reread.qkv_bias, c.qkv_bias);
      EXPECT_EQ(reread.tie_embeddings, c.tie_embeddings);
      Transformer loaded(reread);
      load_safetensors(loaded, (out / "model.safetensors").string());
      if (!bf16) {
        EXPECT_EQ(loaded.weights(), model.weights());
      }

      const std::vector<int32_t> tokens = ByteTokenizer().encode("The answer is 42.\n", /*add_bos=*/true);
      const int64_t T = (int64_t)tokens.size();
      const std::vector<int32_t> lengths = {(int32_t)T}, targets(tokens.size(), -1);
      std::vector<float> logprob(tokens.size()), entropy(tokens.size()), logits((size_t)(T * c.vocab));
      loaded.forward(tokens.data(), lengths.data(), targets.data(), 1, T, logprob.data(), entropy.data());
      loaded.last_forward_logits(logits.data());
      for (float x : logits) ASSERT_TRUE(std::isfinite(x));
      nlohmann::json expected = {{"tokens", tokens}, {"logits", logits}, {"vocab", c.vocab}};
      std::ofstream(out / "expected_logits.json") << expected.dump();
    }
  }
}

namespace {

// Tensor data per shard for the sharded-directory tests: the tiny model (about 106 KB of f32) splits
// into 5+ shards, and its embedding (33 KB) is larger than the limit, so it gets a shard of its own.
constexpr int64_t kSmallShardBytes = 16 * 1024;

std::string shard_name(size_t i, size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i, count);
  return name;
}

nlohmann::json read_index(const fs::path& dir) {
  return nlohmann::json::parse(read_bytes(dir / kSafetensorsIndexFile));
}

void write_index(const fs::path& dir, const nlohmann::json& index) {
  write_bytes(dir / kSafetensorsIndexFile, index.dump(2));
}

// The shard files the index names, in name order (which is shard order).
std::vector<std::string> shards_of(const nlohmann::json& index) {
  std::set<std::string> names;
  for (const auto& [tensor, shard] : index["weight_map"].items()) names.insert(shard.get<std::string>());
  return {names.begin(), names.end()};
}

// load_model_directory on `dir` must throw a cohort::Error naming the index file and holding every
// one of `needles`.
void expect_directory_error(const fs::path& dir, const std::vector<std::string>& needles,
                            const std::string& named_file = kSafetensorsIndexFile) {
  try {
    load_model_directory(dir);
    ADD_FAILURE() << "loading " << dir << " should have failed (expected: " << needles[0] << ")";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find((dir / named_file).string()), std::string::npos)
        << "the error does not name " << named_file << ": " << what;
    for (const auto& needle : needles)
      EXPECT_NE(what.find(needle), std::string::npos) << "missing '" << needle << "' in: " << what;
  }
}

}  // namespace

TEST_F(Safetensors, ShardedDirectoryHasHfIndexAndLoadsBitExact) {
  for (SafetensorsDtype dtype : {SafetensorsDtype::f32, SafetensorsDtype::bf16}) {
    const bool bf16 = dtype == SafetensorsDtype::bf16;
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    const int64_t element_bytes = bf16 ? 2 : 4;
    Transformer model = random_model(model_config_named("tiny"), 30);
    const fs::path dir = dir_ / (bf16 ? "bf16" : "f32");
    save_model_directory(model, ByteTokenizer(), dir, dtype, kSmallShardBytes);
    EXPECT_FALSE(fs::exists(dir / "model.safetensors")) << "a sharded directory has no single weight file";

    const nlohmann::json index = read_index(dir);
    // Hugging Face's form: two keys, sorted, indented by 2, a newline at the end.
    EXPECT_EQ(read_bytes(dir / kSafetensorsIndexFile), index.dump(2) + "\n");
    ASSERT_EQ(index.size(), 2u) << index.dump();
    EXPECT_EQ(index["metadata"], (nlohmann::json{{"total_size", element_bytes * model.num_parameters()}}));
    const auto& params = model.parameters();
    ASSERT_EQ(index["weight_map"].size(), params.size());

    const std::vector<std::string> shards = shards_of(index);
    ASSERT_GE(shards.size(), 3u);
    for (size_t i = 0; i < shards.size(); ++i) EXPECT_EQ(shards[i], shard_name(i + 1, shards.size()));
    // Shard by shard, the tensors are parameters() in order; each shard is within the limit unless it
    // is one tensor larger than it, and no shard was closed while the next tensor still fitted.
    size_t k = 0;
    int64_t total = 0, previous_bytes = -1;
    bool oversized_tensor_alone = false;
    for (const std::string& shard : shards) {
      SCOPED_TRACE(shard);
      const std::vector<SafetensorsEntry> entries = read_safetensors_header((dir / shard).string());
      ASSERT_FALSE(entries.empty());
      EXPECT_EQ(read_safetensors_metadata((dir / shard).string()),
                (std::map<std::string, std::string>{{"format", "pt"}}));
      int64_t bytes = 0;
      for (const SafetensorsEntry& entry : entries) {
        ASSERT_LT(k, params.size());
        EXPECT_EQ(entry.name, params[k].name);
        EXPECT_EQ(entry.shape, params[k].shape);
        EXPECT_EQ(entry.dtype, bf16 ? "BF16" : "F32");
        EXPECT_EQ(index["weight_map"].value(entry.name, std::string()), shard) << entry.name;
        EXPECT_EQ(entry.end - entry.begin, element_bytes * params[k].numel);
        bytes += entry.end - entry.begin;
        ++k;
      }
      EXPECT_TRUE(bytes <= kSmallShardBytes || entries.size() == 1) << bytes << " bytes in " << entries.size();
      oversized_tensor_alone |= bytes > kSmallShardBytes;
      if (previous_bytes >= 0) {
        EXPECT_GT(previous_bytes + (entries[0].end - entries[0].begin), kSmallShardBytes)
            << "the shard before had room for " << entries[0].name;
      }
      previous_bytes = bytes;
      total += bytes;
      // The data is the shard's tensors and nothing else.
      EXPECT_EQ((int64_t)fs::file_size(dir / shard),
                8 + (int64_t)header_length(read_bytes(dir / shard)) + entries.back().end);
    }
    EXPECT_EQ(k, params.size());
    EXPECT_EQ(total, index["metadata"]["total_size"].get<int64_t>());
    EXPECT_TRUE(oversized_tensor_alone) << "no tensor was larger than the limit; that case went untested";

    std::vector<float> want = model.weights();
    if (bf16)
      for (float& w : want) w = bf16_to_float(float_to_bf16(w));
    std::unique_ptr<Transformer> loaded = load_model_directory(dir);
    ASSERT_EQ(loaded->weights().size(), want.size());
    EXPECT_EQ(std::memcmp(loaded->weights().data(), want.data(), want.size() * sizeof(float)), 0);
  }
}

TEST_F(Safetensors, ShardPlanEdges) {
  Transformer model = random_model(model_config_named("tiny"), 31);
  const int64_t total = 4 * model.num_parameters();
  // Exactly at the limit is one file; one byte under it is sharded.
  EXPECT_EQ(plan_safetensors_shards(model, SafetensorsDtype::f32, total).size(), 1u);
  EXPECT_EQ(plan_safetensors_shards(model, SafetensorsDtype::bf16, total / 2).size(), 1u);
  EXPECT_GE(plan_safetensors_shards(model, SafetensorsDtype::f32, total - 1).size(), 2u);
  // A limit of one byte gives every tensor its own shard.
  const auto every = plan_safetensors_shards(model, SafetensorsDtype::f32, 1);
  ASSERT_EQ(every.size(), model.parameters().size());
  for (size_t i = 0; i < every.size(); ++i) {
    EXPECT_EQ(every[i].first, i);
    EXPECT_EQ(every[i].last, i + 1);
    EXPECT_EQ(every[i].bytes, 4 * model.parameters()[i].numel);
    EXPECT_EQ(every[i].file, shard_name(i + 1, every.size()));
  }
  EXPECT_THROW(plan_safetensors_shards(model, SafetensorsDtype::f32, 0), Error);
  // An invalid limit is refused before anything is written.
  EXPECT_THROW(save_model_directory(model, ByteTokenizer(), dir_ / "out", SafetensorsDtype::f32, -1), Error);
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(Safetensors, SavesReplaceTheOtherWeightForm) {
  const std::set<std::string> common = {"config.json", "generation_config.json", "tokenizer.json",
                                        "tokenizer_config.json", "README.md"};
  const fs::path dir = dir_ / "model";
  fs::create_directories(dir);
  write_bytes(dir / "README.md", "not cohort's; a save leaves it alone\n");
  auto expect_files = [&](const std::set<std::string>& weights) {
    std::set<std::string> want = common;
    want.insert(weights.begin(), weights.end());
    EXPECT_EQ(file_names(dir), want);
  };
  auto sharded_files = [&](size_t count) {
    std::set<std::string> files = {kSafetensorsIndexFile};
    for (size_t i = 1; i <= count; ++i) files.insert(shard_name(i, count));
    return files;
  };
  auto expect_loads = [&](const Transformer& model) {
    std::unique_ptr<Transformer> loaded = load_model_directory(dir);
    EXPECT_EQ(loaded->weights(), model.weights());
  };
  // Each save from another model, so a stale file that is read shows as wrong weights.
  Transformer first = random_model(model_config_named("tiny"), 32);
  save_model_directory(first, ByteTokenizer(), dir);
  expect_files({"model.safetensors"});
  expect_loads(first);

  Transformer second = random_model(model_config_named("tiny"), 33);
  save_model_directory(second, ByteTokenizer(), dir, SafetensorsDtype::f32, kSmallShardBytes);
  const size_t many = shards_of(read_index(dir)).size();
  ASSERT_GE(many, 3u);
  expect_files(sharded_files(many));
  expect_loads(second);

  // Fewer, larger shards: every shard of the earlier split goes (none has the new names).
  Transformer third = random_model(model_config_named("tiny"), 34);
  save_model_directory(third, ByteTokenizer(), dir, SafetensorsDtype::f32, 4 * third.num_parameters() / 2);
  const size_t few = shards_of(read_index(dir)).size();
  ASSERT_LT(few, many);
  ASSERT_GE(few, 2u);
  expect_files(sharded_files(few));
  expect_loads(third);

  // Back under the limit: one file, no index, no shards.
  Transformer fourth = random_model(model_config_named("tiny"), 35);
  save_model_directory(fourth, ByteTokenizer(), dir);
  expect_files({"model.safetensors"});
  expect_loads(fourth);
}

TEST_F(Safetensors, BadShardIndex) {
  Transformer model = random_model(model_config_named("tiny"), 36);
  int cases = 0;
  // A fresh sharded directory for each case, its index and shard names handed to `corrupt`.
  auto sharded =
      [&](const std::function<void(const fs::path&, nlohmann::json&, const std::vector<std::string>&)>& corrupt) {
        const fs::path dir = dir_ / ("case" + std::to_string(cases++));
        save_model_directory(model, ByteTokenizer(), dir, SafetensorsDtype::f32, kSmallShardBytes);
        nlohmann::json index = read_index(dir);
        const std::vector<std::string> shards = shards_of(index);
        EXPECT_GE(shards.size(), 3u);
        corrupt(dir, index, shards);
        return dir;
      };
  auto rewrite_index = [&](const std::function<void(nlohmann::json&, const std::vector<std::string>&)>& edit) {
    return sharded([&](const fs::path& dir, nlohmann::json& index, const std::vector<std::string>& shards) {
      edit(index, shards);
      write_index(dir, index);
    });
  };
  // The first tensor in a shard file.
  auto first_tensor = [](const fs::path& dir, const std::string& shard) {
    return read_safetensors_header((dir / shard).string()).at(0).name;
  };

  // Not JSON, or not the right JSON.
  fs::path dir = sharded([](const fs::path& d, nlohmann::json&, const std::vector<std::string>&) {
    write_bytes(d / kSafetensorsIndexFile, "{\"weight_map\": {\"model.norm.weight\": ");
  });
  expect_directory_error(dir, {"not valid JSON"});
  dir = sharded([](const fs::path& d, nlohmann::json&, const std::vector<std::string>&) {
    write_bytes(d / kSafetensorsIndexFile, "");
  });
  expect_directory_error(dir, {"not valid JSON"});
  dir = rewrite_index([](nlohmann::json& index, const std::vector<std::string>&) { index = {1, 2}; });
  expect_directory_error(dir, {"must be a JSON object", "array"});
  dir = rewrite_index([](nlohmann::json& index, const std::vector<std::string>&) { index.erase("weight_map"); });
  expect_directory_error(dir, {"no object \"weight_map\""});
  dir = rewrite_index([](nlohmann::json& index, const std::vector<std::string>&) { index["weight_map"] = "all"; });
  expect_directory_error(dir, {"no object \"weight_map\"", "string"});
  dir = rewrite_index(
      [](nlohmann::json& index, const std::vector<std::string>&) { index["weight_map"]["model.norm.weight"] = 3; });
  expect_directory_error(dir, {"weight_map entry 'model.norm.weight' must be a file name", "number"});

  // A shard that is not there.
  dir = sharded(
      [](const fs::path& d, nlohmann::json&, const std::vector<std::string>& shards) { fs::remove(d / shards[1]); });
  expect_directory_error(dir, {"'" + shards_of(read_index(dir))[1] + "', which is not a file in"});
  dir = rewrite_index([](nlohmann::json& index, const std::vector<std::string>&) {
    index["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors";
  });
  expect_directory_error(dir, {"'model.norm.weight'", "'model-00009-of-00009.safetensors', which is not a file in"});

  // Names that leave the directory, or could: refused even when the file they reach exists.
  for (const std::string& prefix : {std::string("./"), std::string("../case") + std::to_string(cases) + "/",
                                    (dir_ / ("case" + std::to_string(cases))).string() + "/"}) {
    dir = rewrite_index([&](nlohmann::json& index, const std::vector<std::string>& shards) {
      for (auto& [tensor, shard] : index["weight_map"].items())
        if (shard == shards[0]) shard = prefix + shards[0];
    });
    expect_directory_error(dir, {"names '" + prefix, "not a plain file name"});
  }
  for (const std::string& name : {std::string(".."), std::string("..model.safetensors"), std::string("")}) {
    dir = rewrite_index([&](nlohmann::json& index, const std::vector<std::string>&) {
      index["weight_map"]["model.norm.weight"] = name;
    });
    expect_directory_error(dir, {"'model.norm.weight' names '" + name + "'", "not a plain file name"});
  }

  // The map and the shards disagree.
  dir = rewrite_index([](nlohmann::json& index, const std::vector<std::string>& shards) {
    index["weight_map"]["model.layers.0.self_attn.rotary_emb.inv_freq"] = shards[0];
  });
  expect_directory_error(dir, {"puts tensor 'model.layers.0.self_attn.rotary_emb.inv_freq' in '", "no such tensor"});
  std::string moved;
  dir = sharded([&](const fs::path& d, nlohmann::json& index, const std::vector<std::string>& shards) {
    moved = first_tensor(d, shards[1]);
    index["weight_map"][moved] = shards[2];
    write_index(d, index);
  });
  {
    const std::vector<std::string> shards = shards_of(read_index(dir));
    expect_directory_error(dir, {"shard '" + shards[1] + "' holds tensor '" + moved + "'",
                                 "the weight_map puts it in '" + shards[2] + "'"});
  }
  dir = sharded([&](const fs::path& d, nlohmann::json& index, const std::vector<std::string>& shards) {
    moved = first_tensor(d, shards[1]);
    index["weight_map"].erase(moved);
    write_index(d, index);
  });
  expect_directory_error(dir, {"holds tensor '" + moved + "', which the weight_map does not list"});
  // One tensor in two shards (the map names one of them).
  dir = sharded([&](const fs::path& d, nlohmann::json&, const std::vector<std::string>& shards) {
    moved = first_tensor(d, shards[0]);
    const RawFile from = RawFile::read(d / shards[0]);
    RawFile to = RawFile::read(d / shards[2]);
    const int64_t begin = from.header[moved]["data_offsets"][0], end = from.header[moved]["data_offsets"][1];
    const int64_t at = (int64_t)to.data.size();
    to.data += from.data.substr((size_t)begin, (size_t)(end - begin));
    to.header[moved] = from.header[moved];
    to.header[moved]["data_offsets"] = {at, at + end - begin};
    to.write(d / shards[2]);
  });
  {
    const std::vector<std::string> shards = shards_of(read_index(dir));
    expect_directory_error(dir, {"tensor '" + moved + "' is in both '" + shards[0] + "' and '" + shards[2] + "'"});
  }
  // A tensor the model needs, in neither the map nor the shards.
  dir = sharded([&](const fs::path& d, nlohmann::json& index, const std::vector<std::string>& shards) {
    moved = first_tensor(d, shards[1]);
    index["weight_map"].erase(moved);
    write_index(d, index);
    RawFile raw = RawFile::read(d / shards[1]);
    raw.header.erase(moved);
    raw.write(d / shards[1]);
  });
  expect_directory_error(dir, {"has no tensor '" + moved + "'", "needs"});
  // A tensor the model does not have, in both.
  dir = sharded([&](const fs::path& d, nlohmann::json& index, const std::vector<std::string>& shards) {
    RawFile raw = RawFile::read(d / shards[1]);
    const int64_t at = (int64_t)raw.data.size();
    raw.data.append(8, '\x01');
    raw.header["model.extra.weight"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {at, at + 8}}};
    raw.write(d / shards[1]);
    index["weight_map"]["model.extra.weight"] = shards[1];
    write_index(d, index);
  });
  expect_directory_error(dir, {"1 tensor(s)", "'model.extra.weight'"});

  // A bad shard: the error names the shard, as load_safetensors does.
  std::string broken;
  dir = sharded([&](const fs::path& d, nlohmann::json&, const std::vector<std::string>& shards) {
    broken = shards[1];
    const std::string bytes = read_bytes(d / broken);
    write_bytes(d / broken, bytes.substr(0, bytes.size() - 10));
  });
  expect_directory_error(dir, {"out of range", "truncated"}, broken);
  dir = sharded([&](const fs::path& d, nlohmann::json&, const std::vector<std::string>& shards) {
    broken = shards.back();
    RawFile raw = RawFile::read(d / broken);
    raw.header["model.norm.weight"]["shape"] = {2, 16};
    raw.write(d / broken);
  });
  expect_directory_error(dir, {"tensor 'model.norm.weight'", "[2, 16]", "[32]"}, broken);
}

// A Qwen3 model (q/k norm, head_dim other than hidden / heads) with llama3 rope scaling through the
// model directory: config.json says Qwen3ForCausalLM with the scaling, f32 comes back bit for bit and
// bf16 as the bf16 rounding, and loading then exporting again gives the same tensors.
TEST_F(Safetensors, Qwen3DirectoryRoundTrip) {
  ModelConfig c = model_config_named("tiny");
  c.name = "qwen3", c.qkv_bias = false, c.qk_norm = true, c.head_dim = 12, c.tie_embeddings = false;
  c.rope_scaling = {RopeScaling::Type::llama3, 8.0, 1.0, 4.0, 32};
  Transformer model = random_model(c, 31);
  const fs::path first = dir_ / "first", second = dir_ / "second", bf16 = dir_ / "bf16";
  save_model_directory(model, ByteTokenizer(), first);
  const nlohmann::json config = nlohmann::json::parse(read_bytes(first / "config.json"));
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"Qwen3ForCausalLM"}));
  EXPECT_EQ(config["rope_scaling"]["rope_type"], "llama3");
  std::set<std::string> names;
  for (const auto& e : read_safetensors_header((first / "model.safetensors").string())) names.insert(e.name);
  EXPECT_TRUE(names.count("model.layers.1.self_attn.q_norm.weight"));
  EXPECT_TRUE(names.count("model.layers.1.self_attn.k_norm.weight"));

  std::unique_ptr<Transformer> loaded = load_model_directory(first);
  EXPECT_TRUE(loaded->config().qk_norm);
  EXPECT_EQ(loaded->config().resolved_head_dim(), 12);
  EXPECT_TRUE(loaded->config().rope_scaling == c.rope_scaling);
  EXPECT_EQ(std::memcmp(loaded->weights().data(), model.weights().data(), model.weights().size() * 4), 0);
  save_model_directory(*loaded, ByteTokenizer(), second);
  EXPECT_EQ(read_bytes(second / "model.safetensors"), read_bytes(first / "model.safetensors"))
      << "export after load writes the same tensors, byte for byte";
  EXPECT_EQ(read_bytes(second / "config.json"), read_bytes(first / "config.json"));

  save_model_directory(model, ByteTokenizer(), bf16, SafetensorsDtype::bf16);
  std::unique_ptr<Transformer> from_bf16 = load_model_directory(bf16);
  int bad = 0;
  for (size_t i = 0; i < model.weights().size(); ++i) {
    const float want = bf16_to_float(float_to_bf16(model.weights()[i]));
    bad += std::memcmp(&want, &from_bf16->weights()[i], 4) != 0;
  }
  EXPECT_EQ(bad, 0) << "bf16 weights load as their exact widening";
}

TEST_F(Safetensors, GenerationConfigReadsEosIdOrList) {
  const fs::path dir = dir_ / "generation";
  fs::create_directories(dir);
  EXPECT_TRUE(read_generation_config(dir).eos_token_ids.empty()) << "no file: no ids";
  EXPECT_TRUE(read_generation_config(dir).source.empty());

  write_bytes(dir / "config.json", R"({"vocab_size": 1000, "eos_token_id": 7, "bos_token_id": 1})");
  GenerationConfig g = read_generation_config(dir);
  EXPECT_EQ(g.eos_token_ids, std::vector<int32_t>{7}) << "config.json stands in without generation_config.json";
  EXPECT_EQ(g.bos_token_id, 1);
  EXPECT_FALSE(g.pad_token_id.has_value());
  EXPECT_EQ(g.source, dir / "config.json");

  // Llama 3's form: a list of ids, which takes precedence over config.json.
  write_bytes(dir / "generation_config.json", R"({"bos_token_id": 5, "eos_token_id": [8, 9, 10], "pad_token_id": 3,
                                                  "do_sample": true, "temperature": 0.6})");
  g = read_generation_config(dir);
  EXPECT_EQ(g.eos_token_ids, (std::vector<int32_t>{8, 9, 10}));
  EXPECT_EQ(g.bos_token_id, 5);
  EXPECT_EQ(g.pad_token_id, 3);
  EXPECT_EQ(g.source, dir / "generation_config.json");
  write_bytes(dir / "generation_config.json", R"({"eos_token_id": null})");
  EXPECT_TRUE(read_generation_config(dir).eos_token_ids.empty());

  auto expect_error = [&](const std::string& text, std::vector<std::string> needles) {
    write_bytes(dir / "generation_config.json", text);
    try {
      read_generation_config(dir);
      ADD_FAILURE() << "should fail: " << text;
    } catch (const Error& e) {
      for (const auto& needle : needles)
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
            << "missing '" << needle << "' in " << e.what();
    }
  };
  expect_error(R"({"eos_token_id": "</s>"})", {"generation_config.json", "'eos_token_id'", "\"</s>\""});
  expect_error(R"({"eos_token_id": [1, -2]})", {"'eos_token_id'", "non-negative token id or a list"});
  expect_error(R"({"eos_token_id": [1, 1000]})", {"'eos_token_id'", "vocabulary size 1000"});
  expect_error(R"({"bos_token_id": [1, 2]})", {"'bos_token_id'", "non-negative token id"});
  expect_error(R"({"eos_token_id": 1,)", {"generation_config.json", "not valid JSON"});
  expect_error(R"([1])", {"must hold a JSON object"});

  // What save_model_directory writes reads back.
  fs::remove_all(dir);
  save_model_directory(random_model(model_config_named("tiny"), 1), ByteTokenizer(), dir);
  g = read_generation_config(dir);
  EXPECT_EQ(g.eos_token_ids, std::vector<int32_t>{ByteTokenizer::kEosId});
  EXPECT_EQ(g.bos_token_id, ByteTokenizer::kBosId);
  EXPECT_EQ(g.pad_token_id, ByteTokenizer().pad_id());
}
