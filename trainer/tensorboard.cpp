// TensorBoard event files: TFRecord framing with masked CRC-32C around serialized Event messages.
#include "trainer/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "comm/proto/tensorboard.pb.h"
#include "kernels/error.h"
#include "model/atomic_file.h"

namespace cohort::trainer {

namespace {

// The byte-at-a-time table of the reflected Castagnoli polynomial 0x82F63B78; event files are small (a few
// KB per step), so the table is fast enough.
const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back((char)((v >> (8 * i)) & 0xff));
}

}  // namespace

uint32_t crc32c(const void* data, size_t bytes) {
  const auto& table = crc32c_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < bytes; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t bytes) {
  uint32_t c = crc32c(data, bytes);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void trim_event_files(const std::filesystem::path& dir, int64_t last_step) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) != 0 || entry.path().extension() == ".tmp") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string kept;
    for (size_t at = 0; at + 12 <= bytes.size();) {
      uint64_t length = 0;
      uint32_t length_crc = 0, data_crc = 0;
      std::memcpy(&length, bytes.data() + at, 8);
      std::memcpy(&length_crc, bytes.data() + at + 8, 4);
      if (length_crc != masked_crc32c(bytes.data() + at, 8) || length > bytes.size() - at - 12 - 4 ||
          at + 12 + length + 4 > bytes.size())
        break;
      std::memcpy(&data_crc, bytes.data() + at + 12 + length, 4);
      if (data_crc != masked_crc32c(bytes.data() + at + 12, length)) break;
      tensorboard::Event e;
      if (!e.ParseFromArray(bytes.data() + at + 12, (int)length)) break;
      if (e.step() <= last_step) kept.append(bytes, at, 12 + length + 4);
      at += 12 + length + 4;
    }
    if (kept.size() == bytes.size()) continue;
    AtomicOutputFile out(entry.path().string());
    out.write(kept);
    out.commit();
  }
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  // Seconds and microseconds: TensorBoard reads a directory's event files in name order, and a resumed run's
  // file must sort after the one it continues even within the same second.
  const double t = now_seconds();
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%lld.%06lld", (long long)t, (long long)((t - (double)(int64_t)t) * 1e6));
  path_ = dir / ("events.out.tfevents." + std::string(stamp) + "." + host + "." + std::to_string(getpid()) + ".cohort");
  out_.open(path_, std::ios::binary | std::ios::trunc);
  COHORT_REQUIRE(out_.good(), "cannot create the TensorBoard event file " << path_.string());
  tensorboard::Event e;
  e.set_wall_time(now_seconds());
  e.set_file_version("brain.Event:2");
  write_record(e.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& bytes) {
  std::string header;
  put_le(header, bytes.size(), 8);
  const uint32_t length_crc = masked_crc32c(header.data(), 8);
  put_le(header, length_crc, 4);
  std::string footer;
  put_le(footer, masked_crc32c(bytes.data(), bytes.size()), 4);
  out_ << header << bytes << footer;
  out_.flush();
  COHORT_REQUIRE(out_.good(), "cannot write the TensorBoard event file " << path_.string());
}

void TensorBoardWriter::scalar(std::string_view tag, int64_t step, double value) {
  tensorboard::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  tensorboard::Summary::Value* v = e.mutable_summary()->add_value();
  v->set_tag(std::string(tag));
  v->set_simple_value((float)value);
  write_record(e.SerializeAsString());
}

void TensorBoardWriter::scalars(const nlohmann::json& m) {
  const int64_t step = m.value("step", int64_t(0));
  tensorboard::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  for (const auto& [key, value] : m.items()) {
    if (key == "step" || !value.is_number()) continue;
    tensorboard::Summary::Value* v = e.mutable_summary()->add_value();
    v->set_tag(key);
    v->set_simple_value(value.get<float>());
  }
  if (e.summary().value_size() > 0) write_record(e.SerializeAsString());
}

void TensorBoardWriter::text(std::string_view tag, int64_t step, std::string_view markdown) {
  tensorboard::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  tensorboard::Summary::Value* v = e.mutable_summary()->add_value();
  v->set_tag(std::string(tag));
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  tensorboard::TensorProto* t = v->mutable_tensor();
  t->set_dtype(7);  // DT_STRING
  t->add_string_val(std::string(markdown));
  write_record(e.SerializeAsString());
}

}  // namespace cohort::trainer
