// HDF5 checkpoints on a tiny model: a bit-identical round trip of every part, clear refusals of files that
// are missing, not HDF5, truncated, corrupted or of another format or model config, a corruption sweep
// (a flipped byte is either refused or harmless, never silently different data), publishing, and the
// config comparison of a resume.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "kernels/error.h"
#include "trainer/checkpoint.h"

using namespace cohort;
using namespace cohort::trainer;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system's temporary directory, removed with everything in it.
class TemporaryDirectory {
 public:
  TemporaryDirectory() {
    static std::atomic<int> counter{0};
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("cohort_checkpoint_" + std::to_string((long)::getpid()) + "_" +
                                         (test ? std::string(test->name()) : "x") + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TemporaryDirectory() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), (std::streamsize)bytes.size());
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// The message of the cohort::Error that f throws, or a note saying it threw something else or nothing.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT A cohort::Error: ") + typeid(e).name() + ": " + e.what();
  }
  return "NO ERROR THROWN";
}

// Values whose bit patterns all differ from each other and from the other vectors' (`salt`), with the
// awkward ones a checkpoint must still keep bit for bit: -0, a denormal, infinity and a NaN with a payload.
std::vector<float> distinct_values(size_t n, uint32_t salt) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::bit_cast<float>(0x3a000000u + (salt << 20) + (uint32_t)i * 3u);
  if (n > 4) {
    v[0] = -0.0f;
    v[1] = std::bit_cast<float>(0x00000001u + salt);  // denormal
    v[2] = -INFINITY;
    v[3] = std::bit_cast<float>(0x7fc00000u | (0x1234u + salt));  // quiet NaN with a payload
  }
  return v;
}

// Empty when a and b hold the same bits; otherwise says where they first differ.
std::string bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) {
      std::ostringstream s;
      s << "element " << i << ": bits " << std::hex << std::bit_cast<uint32_t>(a[i]) << " and "
        << std::bit_cast<uint32_t>(b[i]);
      return s.str();
    }
  }
  return "";
}

bool same_model_config(const ModelConfig& a, const ModelConfig& b) {
  return a.name == b.name && a.hidden == b.hidden && a.layers == b.layers && a.heads == b.heads &&
         a.kv_heads == b.kv_heads && a.head_dim == b.head_dim && a.intermediate == b.intermediate &&
         a.vocab == b.vocab && a.max_seq_len == b.max_seq_len && a.rope_theta == b.rope_theta &&
         a.rms_eps == b.rms_eps && a.tie_embeddings == b.tie_embeddings && a.qkv_bias == b.qkv_bias &&
         a.qk_norm == b.qk_norm && a.rope_scaling == b.rope_scaling;
}

// Empty when two read checkpoints are the same in every part; otherwise the first part that differs.
std::string contents_difference(const CheckpointContents& a, const CheckpointContents& b) {
  const std::pair<const char*, const std::vector<float>*> tensors[][2] = {
      {{"weights", &a.weights}, {"", &b.weights}},
      {{"adam_m", &a.adam_m}, {"", &b.adam_m}},
      {{"adam_v", &a.adam_v}, {"", &b.adam_v}},
      {{"reference", &a.reference}, {"", &b.reference}}};
  for (const auto& t : tensors) {
    std::string d = bit_difference(*t[0].second, *t[1].second);
    if (!d.empty()) return std::string(t[0].first) + ": " + d;
  }
  if (a.state.step != b.state.step) return "state.step";
  if (a.state.optimizer_steps != b.state.optimizer_steps) return "state.optimizer_steps";
  if (a.state.learners != b.state.learners) return "state.learners";
  if (a.state.data_cursor != b.state.data_cursor) return "state.data_cursor";
  if (a.state.extra != b.state.extra) return "state.extra";
  if (a.state.in_flight != b.state.in_flight) return "state.in_flight";
  if (a.config_yaml != b.config_yaml) return "config_yaml";
  if (!same_model_config(a.model_config, b.model_config)) return "model_config";
  return "";
}

// HDF5 objects left open by every file this process has opened: a read must close all it opened.
int64_t open_hdf5_objects() {
  return (int64_t)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
}

// The bytes of the byte dataset `name`, read straight from the file.
std::string read_text_dataset(const fs::path& path, const std::string& name) {
  std::string text;
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(file, 0) << path;
  if (file < 0) return text;
  hid_t ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(ds, 0) << name;
  if (ds >= 0) {
    hid_t space = H5Dget_space(ds);
    text.resize((size_t)H5Sget_simple_extent_npoints(space));
    EXPECT_GE(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()), 0) << name;
    H5Sclose(space);
    H5Dclose(ds);
  }
  H5Fclose(file);
  return text;
}

// Replaces dataset `name` of a checkpoint by one of the given file type, shape and bytes, with a matching crc32
// attribute, the way a writer of another format (or a checkpoint edited by hand) would leave it: only the
// checksum passes.
void replace_dataset(const fs::path& path, const std::string& name, hid_t file_type, hid_t memory_type,
                     const std::vector<hsize_t>& dims, const void* data, size_t bytes) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0) << "opening " << path;
  ASSERT_GE(H5Ldelete(file, name.c_str(), H5P_DEFAULT), 0) << name;
  hid_t space = H5Screate_simple((int)dims.size(), dims.data(), nullptr);
  hid_t ds = H5Dcreate2(file, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(ds, 0) << name;
  ASSERT_GE(H5Dwrite(ds, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), static_cast<const Bytef*>(data), (uInt)bytes);
  hid_t scalar = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(ds, "crc32", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(attr, 0);
  ASSERT_GE(H5Awrite(attr, H5T_NATIVE_UINT32, &crc), 0);
  H5Aclose(attr);
  H5Sclose(scalar);
  H5Dclose(ds);
  H5Sclose(space);
  ASSERT_GE(H5Fclose(file), 0);
}

void replace_text_dataset(const fs::path& path, const std::string& name, const std::string& text) {
  replace_dataset(path, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, {(hsize_t)text.size()}, text.data(), text.size());
}

// Flips the bits of `mask` in the byte at `offset` of the file, in place.
void flip_byte(const fs::path& path, size_t offset, unsigned char mask = 0xff) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  unsigned char b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, (off_t)offset), 1);
  b ^= mask;
  ASSERT_EQ(::pwrite(fd, &b, 1, (off_t)offset), 1);
  ::close(fd);
}

// The parts of a checkpoint a test writes and then expects back.
struct Written {
  std::unique_ptr<Transformer> model;
  std::vector<float> adam_m, adam_v, reference;
  TrainingState state;
  std::string config_yaml, in_flight;
};

class Checkpoint : public ::testing::Test {
 protected:
  static Written make(const ModelConfig& config = model_config_named("tiny")) {
    Written w;
    w.model = std::make_unique<Transformer>(config);
    w.model->init_random(7);
    const size_t n = (size_t)w.model->num_parameters();
    w.adam_m = distinct_values(n, 1);
    w.adam_v = distinct_values(n, 2);
    w.reference = distinct_values(n, 3);
    w.state.step = 17;
    w.state.optimizer_steps = 34;
    w.state.learners = 1;
    w.state.data_cursor = {{"epoch", 2}, {"position", 123}, {"order", {5, 3, 1, 4}}, {"seed", 18446744073709551557ull}};
    w.state.extra = {{"best_accuracy", 0.375}, {"tokens_seen", 1234567}, {"note", "ünïcode"}};
    w.config_yaml = "model:\n  size: tiny\ntrain:\n  steps: 20\nrun:\n  name: checkpoint-test\n";
    // A serialized message is binary: NULs and high bytes must survive.
    w.in_flight = std::string("\x0a\x03gr\x00up\xff\x80", 9) + std::string(300, '\x7f');
    return w;
  }

  static void write(const fs::path& path, const Written& w, bool with_reference, bool with_in_flight) {
    LearnerShard shard;
    shard.adam_m = &w.adam_m;
    shard.adam_v = &w.adam_v;
    shard.begin = 0;
    if (with_in_flight) shard.in_flight = w.in_flight;
    write_checkpoint(path, *w.model, shard, with_reference ? &w.reference : nullptr, w.state, w.config_yaml);
  }

  // Expects c to hold exactly what was written.
  static void expect_read_back(const CheckpointContents& c, const Written& w, bool with_reference,
                               bool with_in_flight) {
    EXPECT_EQ(bit_difference(c.weights, w.model->weights()), "") << "weights";
    EXPECT_EQ(bit_difference(c.adam_m, w.adam_m), "") << "adam_m";
    EXPECT_EQ(bit_difference(c.adam_v, w.adam_v), "") << "adam_v";
    if (with_reference) {
      EXPECT_EQ(bit_difference(c.reference, w.reference), "") << "reference";
    } else {
      EXPECT_TRUE(c.reference.empty()) << "no reference was written, " << c.reference.size() << " values came back";
    }
    EXPECT_EQ(c.state.step, 17);
    EXPECT_EQ(c.state.optimizer_steps, 34);
    EXPECT_EQ(c.state.learners, 1);
    EXPECT_EQ(c.state.data_cursor, w.state.data_cursor) << c.state.data_cursor.dump();
    EXPECT_EQ(c.state.data_cursor["seed"].get<uint64_t>(), 18446744073709551557ull);
    EXPECT_EQ(c.state.extra, w.state.extra) << c.state.extra.dump();
    if (with_in_flight) {
      ASSERT_EQ(c.state.in_flight.size(), 1u) << "one learner wrote one batch";
      EXPECT_EQ(c.state.in_flight[0], w.in_flight);
    } else {
      EXPECT_TRUE(c.state.in_flight.empty());
    }
    EXPECT_EQ(c.config_yaml, w.config_yaml);
    EXPECT_TRUE(same_model_config(c.model_config, w.model->config())) << c.model_config.name;
  }

  TemporaryDirectory dir_;
};

}  // namespace

TEST_F(Checkpoint, RoundTripWithReferenceIsBitIdentical) {
  Written w = make();
  const fs::path path = dir_.path() / "step_00000017.h5";
  write(path, w, /*with_reference=*/true, /*with_in_flight=*/true);
  EXPECT_TRUE(fs::is_regular_file(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp")) << "the temporary file is renamed into place";
  expect_read_back(read_checkpoint(path), w, true, true);
  EXPECT_EQ(open_hdf5_objects(), 0) << "read_checkpoint leaves HDF5 objects open";
}

TEST_F(Checkpoint, RoundTripWithoutReferenceOrInFlightIsBitIdentical) {
  Written w = make();
  const fs::path path = dir_.path() / "step_00000017.h5";
  write(path, w, /*with_reference=*/false, /*with_in_flight=*/false);
  expect_read_back(read_checkpoint(path), w, false, false);
  for (const CheckpointDataset& d : list_checkpoint(path)) {
    EXPECT_NE(d.name.rfind("/reference/", 0), 0u) << d.name << " written without a reference";
    EXPECT_NE(d.name.rfind("/in_flight/", 0), 0u) << d.name << " written without an in-flight batch";
  }
}

TEST_F(Checkpoint, OverwritingAPathReplacesTheCheckpoint) {
  Written w = make();
  const fs::path path = dir_.path() / "step_00000017.h5";
  write(path, w, true, true);
  w.model->weights()[5] = 42.0f;
  w.state.step = 18;
  write(path, w, false, false);
  CheckpointContents c = read_checkpoint(path);
  EXPECT_EQ(c.weights[5], 42.0f);
  EXPECT_EQ(c.state.step, 18);
  EXPECT_TRUE(c.reference.empty());
  EXPECT_TRUE(c.state.in_flight.empty());
}

TEST_F(Checkpoint, MetadataLeavesTensorsEmptyAndWeightsReadsOnlyWeights) {
  Written w = make();
  const fs::path path = dir_.path() / "step_00000017.h5";
  write(path, w, true, true);

  CheckpointContents meta = read_checkpoint(path, CheckpointParts::metadata);
  EXPECT_TRUE(meta.weights.empty() && meta.adam_m.empty() && meta.adam_v.empty() && meta.reference.empty());
  EXPECT_EQ(meta.state.step, 17);
  EXPECT_EQ(meta.state.extra, w.state.extra);
  EXPECT_EQ(meta.config_yaml, w.config_yaml);
  EXPECT_TRUE(same_model_config(meta.model_config, w.model->config()));

  CheckpointContents weights = read_checkpoint(path, CheckpointParts::weights);
  EXPECT_EQ(bit_difference(weights.weights, w.model->weights()), "");
  EXPECT_TRUE(weights.adam_m.empty() && weights.adam_v.empty() && weights.reference.empty());
  EXPECT_EQ(weights.state.optimizer_steps, 34);

  // "Only the weights" means the optimizer datasets are not even read: corrupting one does not matter then.
  const std::string bytes = read_file_bytes(path);
  const char* m = reinterpret_cast<const char*>(w.adam_m.data() + 100);
  const size_t at = bytes.find(std::string(m, 64));
  ASSERT_NE(at, std::string::npos) << "the AdamW first moments are not in the file as written";
  flip_byte(path, at + 8);
  EXPECT_EQ(bit_difference(read_checkpoint(path, CheckpointParts::weights).weights, w.model->weights()), "");
  EXPECT_NE(error_of([&] { read_checkpoint(path); }).find("fails its checksum"), std::string::npos);
}

TEST_F(Checkpoint, LoadModelFromACheckpointTakesItsModelConfig) {
  // A checkpoint of another model config than "tiny": the loaded model is the checkpoint's.
  ModelConfig other = model_config_named("tiny");
  other.name = "tiny-3-layers";
  other.layers = 3;
  other.intermediate = 48;
  Written w = make(other);
  const fs::path path = dir_.path() / "other.h5";
  write(path, w, false, false);
  std::unique_ptr<Transformer> model = load_model_from(path);
  ASSERT_TRUE(model);
  EXPECT_TRUE(same_model_config(model->config(), other));
  EXPECT_NE(model->num_parameters(), Transformer(model_config_named("tiny")).num_parameters());
  EXPECT_EQ(bit_difference(model->weights(), w.model->weights()), "");

  const std::string neither = error_of([&] { load_model_from(dir_.path() / "weights.bin"); });
  EXPECT_NE(neither.find("weights.bin"), std::string::npos) << neither;
  EXPECT_NE(neither.find("neither a checkpoint"), std::string::npos) << neither;
}

TEST_F(Checkpoint, KeepsQwen3QkNormAndRopeScaling) {
  // A Qwen3-like model (q/k norm, no biases) with Llama 3's rope scaling: a resumed or exported run must be
  // the same model, not one with plain RoPE and no q/k norm.
  ModelConfig qwen3 = model_config_named("tiny");
  qwen3.name = "tiny-qwen3";
  qwen3.qkv_bias = false;
  qwen3.qk_norm = true;
  qwen3.rope_scaling.type = RopeScaling::Type::llama3;
  qwen3.rope_scaling.factor = 8.0;
  qwen3.rope_scaling.low_freq_factor = 1.0;
  qwen3.rope_scaling.high_freq_factor = 4.0;
  qwen3.rope_scaling.original_max_position_embeddings = 32;
  Written w = make(qwen3);
  const fs::path path = dir_.path() / "qwen3.h5";
  write(path, w, false, false);
  CheckpointContents c = read_checkpoint(path);
  EXPECT_TRUE(c.model_config.qk_norm);
  EXPECT_EQ(c.model_config.rope_scaling.type, RopeScaling::Type::llama3);
  EXPECT_TRUE(same_model_config(c.model_config, qwen3));
  std::unique_ptr<Transformer> model = load_model_from(path);
  EXPECT_EQ(bit_difference(model->weights(), w.model->weights()), "");
}

TEST_F(Checkpoint, RefusesWhatIsNotAFile) {
  for (const fs::path& path : {dir_.path() / "absent.h5", dir_.path()}) {
    const std::string e = error_of([&] { read_checkpoint(path); });
    EXPECT_NE(e.find(path.string()), std::string::npos) << e;
    EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  }
  const std::string e = error_of([&] { load_model_from(dir_.path() / "absent.h5"); });
  EXPECT_NE(e.find("absent.h5"), std::string::npos) << e;
}

TEST_F(Checkpoint, RefusesAFileThatIsNotHdf5) {
  std::string noise(64 * 1024, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (char& c : noise) x = x * 6364136223846793005ull + 1442695040888963407ull, c = (char)(x >> 56);
  for (const std::string& bytes : {noise, std::string(), std::string("{\"format\": \"cohort-checkpoint\"}\n")}) {
    const fs::path path = dir_.path() / "noise.h5";
    write_file_bytes(path, bytes);
    const std::string e = error_of([&] { read_checkpoint(path); });
    EXPECT_NE(e.find(path.string()), std::string::npos) << e;
    EXPECT_NE(e.find("is not an HDF5 file"), std::string::npos) << e;
    EXPECT_NE(error_of([&] { list_checkpoint(path); }).find("is not an HDF5 file"), std::string::npos);
  }
}

TEST_F(Checkpoint, RefusesATruncatedFile) {
  Written w = make();
  const fs::path good = dir_.path() / "good.h5";
  write(good, w, true, true);
  const std::string bytes = read_file_bytes(good);
  for (double fraction : {0.0001, 0.1, 0.5, 0.9, 0.99, 0.9999}) {
    const size_t keep = std::max<size_t>(1, (size_t)((double)bytes.size() * fraction));
    ASSERT_LT(keep, bytes.size());
    const fs::path path = dir_.path() / "truncated.h5";
    write_file_bytes(path, bytes.substr(0, keep));
    for (CheckpointParts parts : {CheckpointParts::metadata, CheckpointParts::everything}) {
      const std::string e = error_of([&] { read_checkpoint(path, parts); });
      EXPECT_NE(e.find(path.string()), std::string::npos) << keep << " of " << bytes.size() << " bytes: " << e;
      EXPECT_NE(e.find("truncated"), std::string::npos) << keep << " of " << bytes.size() << " bytes: " << e;
    }
    EXPECT_EQ(open_hdf5_objects(), 0) << "a refused file is closed";
  }
}

TEST_F(Checkpoint, AFlippedByteInATensorFailsItsChecksum) {
  Written w = make();
  // A pattern found nowhere else in the file marks where one tensor's data lies.
  const ParameterInfo& down = w.model->parameter("model.layers.1.mlp.down_proj.weight");
  for (int64_t i = 0; i < down.numel; ++i)
    w.model->weights()[(size_t)(down.offset + i)] = std::bit_cast<float>(0x4b000000u + (uint32_t)i * 0x9e37u);
  const fs::path good = dir_.path() / "good.h5";
  write(good, w, true, true);
  const std::string bytes = read_file_bytes(good);

  struct Target {
    std::string dataset, marker;
  };
  const ParameterInfo& q = w.model->parameter("model.layers.0.self_attn.q_proj.weight");
  const std::vector<Target> targets = {
      {"/weights/model.layers.1.mlp.down_proj.weight",
       std::string(reinterpret_cast<const char*>(w.model->weights().data() + down.offset), 64)},
      {"/optimizer/v/model.layers.0.self_attn.q_proj.weight",
       std::string(reinterpret_cast<const char*>(w.adam_v.data() + q.offset), 64)},
      {"/reference/model.layers.0.self_attn.q_proj.weight",
       std::string(reinterpret_cast<const char*>(w.reference.data() + q.offset), 64)},
      {"/state.json", "\"optimizer_steps\": 34"},
      {"/config.yaml", "checkpoint-test"},
      {"/in_flight/learner_0", w.in_flight.substr(0, 24)}};
  for (const Target& t : targets) {
    const size_t at = bytes.find(t.marker);
    ASSERT_NE(at, std::string::npos) << t.dataset << ": its bytes are not in the file as written";
    ASSERT_EQ(bytes.find(t.marker, at + 1), std::string::npos) << t.dataset << ": the marker is not unique";
    const fs::path path = dir_.path() / "flipped.h5";
    std::string flipped = bytes;
    flipped[at + t.marker.size() / 2] = (char)~flipped[at + t.marker.size() / 2];
    write_file_bytes(path, flipped);
    const std::string e = error_of([&] { read_checkpoint(path); });
    EXPECT_NE(e.find(path.string()), std::string::npos) << e;
    EXPECT_NE(e.find("dataset " + t.dataset + " fails its checksum"), std::string::npos) << e;
    // cohort inspect shows the mismatch instead of refusing the whole file.
    bool listed = false;
    for (const CheckpointDataset& d : list_checkpoint(path)) {
      if (d.name != t.dataset) continue;
      listed = true;
      EXPECT_NE(d.stored_crc32, d.actual_crc32) << d.name;
      EXPECT_NE(d.dtype.find("fails its checksum"), std::string::npos) << d.dtype;
    }
    EXPECT_TRUE(listed) << t.dataset << " is not listed";
  }
  for (const CheckpointDataset& d : list_checkpoint(good)) EXPECT_EQ(d.stored_crc32, d.actual_crc32) << d.name;
}

TEST_F(Checkpoint, RefusesAStateOfAnotherFormat) {
  Written w = make();
  const fs::path good = dir_.path() / "good.h5";
  write(good, w, false, false);
  const nlohmann::json state = nlohmann::json::parse(read_text_dataset(good, "/state.json"));
  ASSERT_EQ(state.at("format"), "cohort-checkpoint");

  struct Case {
    std::string text, expected;
  };
  std::vector<Case> cases;
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = state;
    edit(j);
    return j.dump(2);
  };
  const std::string other_format = "not a cohort checkpoint of format version 1";
  cases.push_back({edited([](nlohmann::json& j) { j["format"] = "other-trainer"; }), other_format});
  cases.push_back({edited([](nlohmann::json& j) { j["format_version"] = 2; }), other_format});
  cases.push_back({edited([](nlohmann::json& j) { j.erase("format"); }), other_format});
  cases.push_back({edited([](nlohmann::json& j) { j["step"] = -1; }), "out of range"});
  cases.push_back({edited([](nlohmann::json& j) { j["learners"] = 0; }), "out of range"});
  cases.push_back({edited([](nlohmann::json& j) { j.erase("optimizer_steps"); }), "/state.json: "});
  cases.push_back({edited([](nlohmann::json& j) { j["step"] = "seventeen"; }), "/state.json: "});
  cases.push_back({"{\"format\": \"cohort-checkpoint\", ", "/state.json: "});
  for (const Case& c : cases) {
    const fs::path path = dir_.path() / "edited.h5";
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    replace_text_dataset(path, "/state.json", c.text);
    for (CheckpointParts parts : {CheckpointParts::metadata, CheckpointParts::everything}) {
      const std::string e = error_of([&] { read_checkpoint(path, parts); });
      EXPECT_NE(e.find(path.string()), std::string::npos) << c.text << "\n -> " << e;
      EXPECT_NE(e.find(c.expected), std::string::npos) << c.text << "\n -> " << e;
    }
  }
  EXPECT_EQ(open_hdf5_objects(), 0);
}

// A state.json that is JSON but not an object of the expected types must be refused like any other bad state.
TEST_F(Checkpoint, RefusesAStateThatIsNotAJsonObject) {
  Written w = make();
  const fs::path good = dir_.path() / "good.h5";
  write(good, w, false, false);
  for (const std::string text :
       {"[1, 2, 3]", "42", "\"cohort-checkpoint\"", "null", "{\"format\": 5, \"format_version\": 1}",
        "{\"format\": \"cohort-checkpoint\", \"format_version\": \"1\"}"}) {
    const fs::path path = dir_.path() / "edited.h5";
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    replace_text_dataset(path, "/state.json", text);
    const std::string e = error_of([&] { read_checkpoint(path); });
    EXPECT_NE(e.find(path.string()), std::string::npos) << text << "\n -> " << e;
    EXPECT_NE(e.find("/state.json"), std::string::npos) << text << "\n -> " << e;
  }
}

TEST_F(Checkpoint, RefusesAModelConfigThatDisagreesWithTheTensors) {
  Written w = make();
  const fs::path good = dir_.path() / "good.h5";
  write(good, w, true, false);
  const nlohmann::json config = nlohmann::json::parse(read_text_dataset(good, "/model_config.json"));
  ASSERT_EQ(config.at("hidden"), 32);

  struct Case {
    std::string field;
    nlohmann::json value;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"intermediate", 96,
       "dataset /weights/model.layers.0.mlp.gate_proj.weight holds 2048 values, the model config 3072"},
      {"layers", 3, "dataset /weights/model.layers.2.input_layernorm.weight is missing"},
      {"tie_embeddings", false, "dataset /weights/lm_head.weight is missing"},
      {"vocab", 300, "dataset /weights/model.embed_tokens.weight holds"},
      {"heads", 0, "/model_config.json: model config 'tiny': heads must be positive"},
      {"hidden", "32", "/model_config.json: "}};
  for (const Case& c : cases) {
    nlohmann::json edited = config;
    edited[c.field] = c.value;
    const fs::path path = dir_.path() / "edited.h5";
    fs::copy_file(good, path, fs::copy_options::overwrite_existing);
    replace_text_dataset(path, "/model_config.json", edited.dump(2));
    const std::string e = error_of([&] { read_checkpoint(path); });
    EXPECT_NE(e.find(path.string()), std::string::npos) << c.field << " -> " << e;
    EXPECT_NE(e.find(c.expected), std::string::npos) << c.field << " -> " << e;
    EXPECT_NE(error_of([&] { load_model_from(path); }).find(c.expected), std::string::npos) << c.field;
  }

  // The same number of values in another shape (a transposed down_proj) is refused too.
  const fs::path path = dir_.path() / "transposed.h5";
  fs::copy_file(good, path, fs::copy_options::overwrite_existing);
  const ParameterInfo& down = w.model->parameter("model.layers.1.mlp.down_proj.weight");
  ASSERT_EQ(down.shape, (std::vector<int64_t>{32, 64}));
  replace_dataset(path, "/reference/model.layers.1.mlp.down_proj.weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {64, 32},
                  w.reference.data() + down.offset, (size_t)down.numel * sizeof(float));
  const std::string e = error_of([&] { read_checkpoint(path); });
  EXPECT_NE(e.find("/reference/model.layers.1.mlp.down_proj.weight has a shape other than the model config's"),
            std::string::npos)
      << e;
  EXPECT_NO_THROW(read_checkpoint(path, CheckpointParts::weights)) << "the reference is not read for the weights";

  // A float tensor stored as bytes is refused for its element type.
  const fs::path as_bytes = dir_.path() / "as_bytes.h5";
  fs::copy_file(good, as_bytes, fs::copy_options::overwrite_existing);
  const std::string raw(reinterpret_cast<const char*>(w.model->weights().data() + down.offset),
                        (size_t)down.numel * sizeof(float));
  replace_text_dataset(as_bytes, "/weights/model.layers.1.mlp.down_proj.weight", raw);
  EXPECT_NE(error_of([&] {
              read_checkpoint(as_bytes);
            }).find("dataset /weights/model.layers.1.mlp.down_proj.weight has the wrong element type"),
            std::string::npos);
  EXPECT_EQ(open_hdf5_objects(), 0);
}

// One byte flipped anywhere in the file: read_checkpoint refuses it with a cohort::Error naming the file or
// returns exactly what was written (the byte was padding or free space); it never crashes, hangs or returns
// other data. HDF5 keeps its metadata (superblock, object headers, attributes, group heaps and B-trees) in
// 2 KiB blocks spread between the datasets' data, not only in the first 4 KiB, so the offsets are every byte
// of the superblock and the root group's start, the rest of the metadata at a stride and the data at a wider
// one (~700 reads). Even offsets get all 8 bits flipped, odd ones a single bit. COHORT_CHECKPOINT_SWEEP=all
// flips every metadata byte instead: 51768 offsets of this 485523-byte file, ~7 minutes on 2 busy cores;
// with libhdf5 1.10.8 that found no crash, hang, silent change or exception other than cohort::Error.
TEST_F(Checkpoint, AFlippedByteAnywhereIsRefusedOrHarmless) {
  Written w = make();
  const fs::path path = dir_.path() / "sweep.h5";
  write(path, w, true, true);
  const CheckpointContents original = read_checkpoint(path);
  const size_t size = (size_t)fs::file_size(path);

  // Where the datasets' data lies, from HDF5 itself.
  std::vector<std::pair<size_t, size_t>> data;  // [begin, end)
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (const CheckpointDataset& d : list_checkpoint(path)) {
    hid_t ds = H5Dopen2(file, d.name.c_str(), H5P_DEFAULT);
    const haddr_t at = H5Dget_offset(ds);
    const hsize_t bytes = H5Dget_storage_size(ds);
    if (at != HADDR_UNDEF && bytes > 0) data.emplace_back((size_t)at, (size_t)(at + bytes));
    H5Dclose(ds);
  }
  H5Fclose(file);
  ASSERT_GT(data.size(), 100u) << "every tensor of weights, moments and reference";
  auto in_data = [&](size_t offset) {
    for (const auto& [begin, end] : data)
      if (offset >= begin && offset < end) return true;
    return false;
  };
  const char* sweep = std::getenv("COHORT_CHECKPOINT_SWEEP");
  const bool all = sweep && std::string(sweep) == "all";
  std::vector<size_t> offsets;
  size_t metadata_seen = 0;
  for (size_t offset = 0; offset < size; ++offset) {
    if (in_data(offset)) {
      if (offset % 4001 == 0) offsets.push_back(offset);
    } else if (all || offset < 256 || metadata_seen++ % 151 == 0) {
      offsets.push_back(offset);
    }
  }
  offsets.push_back(size - 1);

  std::vector<std::string> failures;
  size_t refused = 0, data_offsets = 0, data_refused = 0;
  for (size_t offset : offsets) {
    const unsigned char mask = offset % 2 == 0 ? 0xff : (unsigned char)(1u << (offset / 2 % 8));
    const std::string where = "offset " + std::to_string(offset) + " ^ " + std::to_string(mask) + ": ";
    flip_byte(path, offset, mask);
    bool was_refused = false;
    try {
      const std::string d = contents_difference(read_checkpoint(path), original);
      if (!d.empty()) failures.push_back(where + "read back a different " + d);
    } catch (const Error& e) {
      was_refused = true;
      if (std::string(e.what()).find(path.string()) == std::string::npos)
        failures.push_back(where + "the message does not name the file: " + e.what());
    } catch (const std::exception& e) {
      failures.push_back(where + "threw " + typeid(e).name() + " (" + e.what() + "), not a cohort::Error");
    }
    refused += was_refused;
    if (in_data(offset)) ++data_offsets, data_refused += was_refused;
    if (open_hdf5_objects() != 0) {
      failures.push_back(where + "HDF5 objects left open");
      break;
    }
    flip_byte(path, offset, mask);
  }
  std::string listed;
  for (size_t i = 0; i < failures.size() && i < 20; ++i) listed += "\n  " + failures[i];
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << offsets.size() << " flipped bytes:" << listed;
  // A crc32 catches every change of one byte, so data bytes are always refused (and the flips did happen).
  EXPECT_EQ(data_refused, data_offsets) << "flips of a dataset's data that were not refused";
  EXPECT_GT(data_offsets, 50u);
  EXPECT_GT(refused, data_refused) << "no metadata flip was refused: were the flips made?";
  EXPECT_EQ(contents_difference(read_checkpoint(path), original), "") << "every flip was undone";
  std::printf("[ sweep    ] %zu offsets of %zu bytes, %zu refused, %zu harmless\n", offsets.size(), size, refused,
              offsets.size() - refused);
}

// cohort inspect lists a checkpoint dataset by dataset, marking the broken ones: a dataset whose stored shape
// claims 2^62 more elements than it holds (one bit flipped in its dataspace) is one of them, not an exception
// of another type that ends the listing.
TEST_F(Checkpoint, ListingADatasetOfAnImpossibleShapeIsACohortError) {
  Written w = make();
  const fs::path path = dir_.path() / "step_00000017.h5";
  write(path, w, false, false);
  // A dataset of a length found nowhere else in the file, so that its dataspace can be found by that length.
  const hsize_t length = 4099;
  std::vector<float> values = distinct_values(length, 4);
  replace_dataset(path, "/weights/model.norm.weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {length}, values.data(),
                  values.size() * sizeof(float));
  const std::string bytes = read_file_bytes(path);
  const std::string length_bytes(reinterpret_cast<const char*>(&length), sizeof length);
  const size_t at = bytes.find(length_bytes);
  ASSERT_NE(at, std::string::npos);
  flip_byte(path, at + 7, 0x40);  // the dimension becomes 2^62 + 4099; times 4 bytes that wraps to 16396
  {
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/weights/model.norm.weight", H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[8] = {};
    EXPECT_EQ(H5Sget_simple_extent_dims(space, dims, nullptr), 1);
    EXPECT_EQ(dims[0], (hsize_t(1) << 62) + length) << "the flip did not hit the dataspace";
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
  }
  const std::string read = error_of([&] { read_checkpoint(path); });
  EXPECT_NE(read.find("dataset /weights/model.norm.weight holds"), std::string::npos) << read;
  try {
    bool listed = false;
    for (const CheckpointDataset& d : list_checkpoint(path)) {
      if (d.name != "/weights/model.norm.weight") continue;
      listed = true;
      EXPECT_NE(d.dtype.find("claims more data than the file holds"), std::string::npos) << d.dtype;
    }
    EXPECT_TRUE(listed);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "list_checkpoint threw " << typeid(e).name() << " (" << e.what() << "), not a cohort::Error";
  }
}

TEST_F(Checkpoint, AFailedWriteLeavesThePreviousFileUntouched) {
  Written w = make();
  const fs::path path = dir_.path() / "step_00000017.h5";
  write(path, w, true, true);
  const std::string before = read_file_bytes(path);
  std::vector<float> short_m(w.adam_m.begin(), w.adam_m.end() - 1);
  LearnerShard shard;
  shard.adam_m = &short_m;
  shard.adam_v = &w.adam_v;
  const std::string e = error_of([&] { write_checkpoint(path, *w.model, shard, nullptr, w.state, w.config_yaml); });
  EXPECT_NE(e.find(path.string()), std::string::npos) << e;
  EXPECT_NE(e.find("does not fit"), std::string::npos) << e;
  EXPECT_EQ(read_file_bytes(path), before);
  std::vector<float> short_reference(3);
  shard.adam_m = &w.adam_m;
  EXPECT_NE(error_of([&] {
              write_checkpoint(path, *w.model, shard, &short_reference, w.state, w.config_yaml);
            }).find("reference size mismatch"),
            std::string::npos);
  EXPECT_EQ(read_file_bytes(path), before);
}

TEST_F(Checkpoint, PublishKeepsTheNewestAndNamesTheLatest) {
  const fs::path dir = dir_.path() / "checkpoints";
  fs::create_directories(dir);
  EXPECT_EQ(checkpoint_path(dir, 12), dir / "step_00000012.h5");
  EXPECT_EQ(latest_checkpoint(dir), fs::path()) << "no latest yet";
  write_file_bytes(dir / "notes.txt", "not a checkpoint");
  write_file_bytes(dir / "step_00000001.json", "not a checkpoint either");
  // publish_checkpoint only moves names; the files need not be real checkpoints here.
  for (int64_t step = 1; step <= 5; ++step) {
    const fs::path written = checkpoint_path(dir, step);
    write_file_bytes(written, "step " + std::to_string(step));
    publish_checkpoint(dir, written, /*keep=*/2);
    EXPECT_EQ(latest_checkpoint(dir), written);
    EXPECT_EQ(read_file_bytes(dir / "latest"), written.filename().string() + "\n");
    std::set<std::string> kept;
    for (const auto& e : fs::directory_iterator(dir)) kept.insert(e.path().filename().string());
    std::set<std::string> expected = {"latest", "notes.txt", "step_00000001.json", written.filename().string()};
    if (step > 1) expected.insert(checkpoint_path(dir, step - 1).filename().string());
    EXPECT_EQ(kept, expected) << "after publishing step " << step;
  }
  // keep = 0 still keeps the checkpoint just published.
  publish_checkpoint(dir, checkpoint_path(dir, 5), 0);
  EXPECT_TRUE(fs::exists(checkpoint_path(dir, 5)));
  EXPECT_FALSE(fs::exists(checkpoint_path(dir, 4)));
  EXPECT_EQ(latest_checkpoint(dir), checkpoint_path(dir, 5));
}

TEST_F(Checkpoint, LatestRefusesANameOutsideItsDirectory) {
  const fs::path dir = dir_.path();
  for (const std::string name : {"../elsewhere/step_00000001.h5", "/etc/passwd", "sub/step_00000001.h5"}) {
    write_file_bytes(dir / "latest", name + "\n");
    const std::string e = error_of([&] { latest_checkpoint(dir); });
    EXPECT_NE(e.find((dir / "latest").string()), std::string::npos) << e;
    EXPECT_NE(e.find("names '" + name + "'"), std::string::npos) << e;
  }
  write_file_bytes(dir / "latest", "");
  EXPECT_EQ(latest_checkpoint(dir), fs::path()) << "an empty latest names nothing";
}

TEST_F(Checkpoint, ALeftoverOfACrashedWriteDoesNotChangeTheLatest) {
  const fs::path dir = dir_.path() / "checkpoints";
  fs::create_directories(dir);
  Written w = make();
  const fs::path first = checkpoint_path(dir, 17);
  write(first, w, false, false);
  publish_checkpoint(dir, first, 3);
  // A crash while writing step 18: half a checkpoint under its temporary name, and a latest.tmp of a
  // publish that never got to its rename.
  const fs::path second = checkpoint_path(dir, 18);
  const std::string bytes = read_file_bytes(first);
  write_file_bytes(second.string() + ".tmp", bytes.substr(0, bytes.size() / 2));
  write_file_bytes(dir / "latest.tmp", second.filename().string() + "\n");
  EXPECT_EQ(latest_checkpoint(dir), first);
  EXPECT_EQ(read_checkpoint(latest_checkpoint(dir)).state.step, 17);

  // The next write of step 18 replaces the leftover, and publishing it moves latest on.
  w.state.step = 18;
  write(second, w, false, false);
  EXPECT_FALSE(fs::exists(second.string() + ".tmp"));
  EXPECT_EQ(latest_checkpoint(dir), first) << "written but not yet published";
  publish_checkpoint(dir, second, 3);
  EXPECT_EQ(latest_checkpoint(dir), second);
  EXPECT_FALSE(fs::exists(dir / "latest.tmp"));
  EXPECT_EQ(read_checkpoint(latest_checkpoint(dir)).state.step, 18);
}

TEST_F(Checkpoint, DifferencesReportTheModelButNotWhatAResumeMayChange) {
  const std::string saved =
      "run:\n  name: first\n  dir: runs\n  seed: 1\n  threads: 4\nmodel:\n  size: tiny\n  init: random\n"
      "train:\n  steps: 20\n  eval_every: 5\n  checkpoint_every: 10\n  resume: auto\n"
      "optim:\n  lr: 0.001\nrollout:\n  stop_strings: [\"</answer>\", \"\\n\\n\"]\n"
      "distributed:\n  learners: 1\n  rollout_workers: 0\n  colocated: true\n";
  EXPECT_TRUE(config_differences(saved, saved).empty());

  std::string resumed = saved;
  auto set = [&](const std::string& from, const std::string& to) {
    const size_t at = resumed.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    resumed.replace(at, from.size(), to);
  };
  set("size: tiny", "size: small");
  set("steps: 20", "steps: 40");
  set("name: first", "name: second");
  set("learners: 1", "learners: 2");
  set("threads: 4", "threads: 16");
  set("rollout_workers: 0", "rollout_workers: 3");
  set("colocated: true", "colocated: false");
  set("resume: auto", "resume: never");
  EXPECT_EQ(config_differences(saved, resumed),
            (std::vector<std::string>{"model.size: tiny in the checkpoint, small now"}));

  set("lr: 0.001", "lr: 0.002");
  set("seed: 1", "seed: 2");
  EXPECT_EQ(config_differences(saved, resumed),
            (std::vector<std::string>{"model.size: tiny in the checkpoint, small now",
                                      "optim.lr: 0.001 in the checkpoint, 0.002 now",
                                      "run.seed: 1 in the checkpoint, 2 now"}));

  // Where the rewards run may change (servers move); which rewards there are may not.
  const std::string served = saved +
                             "reward:\n  endpoints: [\"10.0.0.1:50051\"]\n  workers: 2\n"
                             "rewards:\n  - {kind: exact_match}\n";
  std::string moved = served;
  moved.replace(moved.find("10.0.0.1"), 8, "10.0.0.9");
  moved.replace(moved.find("workers: 2"), 10, "workers: 8");
  EXPECT_TRUE(config_differences(served, moved).empty());
  moved.replace(moved.find("exact_match"), 11, "math_verify");
  EXPECT_EQ(config_differences(served, moved).size(), 1u);

  // A key only one side has, and a list value.
  const std::string more = saved + "algorithm:\n  beta: 0.04\n";
  EXPECT_EQ(config_differences(saved, more),
            (std::vector<std::string>{"algorithm.beta: (absent) in the checkpoint, 0.04 now"}));
  std::string fewer_stops = saved;
  fewer_stops.replace(fewer_stops.find(", \"\\n\\n\""), 8, "");
  const std::vector<std::string> d = config_differences(saved, fewer_stops);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].rfind("rollout.stop_strings: [", 0), 0u) << d[0];
}
