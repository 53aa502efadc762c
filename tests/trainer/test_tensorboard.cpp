// TensorBoard event files: CRC-32C against its published check value, and a file written by
// TensorBoardWriter read back record by record (framing, both checksums, the Event messages).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "comm/proto/tensorboard.pb.h"
#include "trainer/tensorboard.h"

using namespace cohort;

namespace {

// The records of a TFRecord file, each checked against its two masked CRC-32Cs.
std::vector<std::string> read_records(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  size_t at = 0;
  auto u32 = [&](size_t p) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + p, 4);
    return v;
  };
  while (at < bytes.size()) {
    EXPECT_LE(at + 12, bytes.size()) << "a truncated record header at " << at;
    if (at + 12 > bytes.size()) break;
    uint64_t length;
    std::memcpy(&length, bytes.data() + at, 8);
    EXPECT_EQ(u32(at + 8), trainer::masked_crc32c(bytes.data() + at, 8)) << "length crc at " << at;
    EXPECT_LE(at + 12 + length + 4, bytes.size());
    if (at + 12 + length + 4 > bytes.size()) break;
    out.emplace_back(bytes.substr(at + 12, length));
    EXPECT_EQ(u32(at + 12 + length), trainer::masked_crc32c(out.back().data(), length)) << "data crc at " << at;
    at += 12 + length + 4;
  }
  return out;
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesTheCheckValue) {
  // CRC-32C's check value: the CRC of the nine ASCII digits "123456789" (RFC 3720, B.4).
  EXPECT_EQ(trainer::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(trainer::crc32c("", 0), 0u);
  // 32 zero bytes, the first iSCSI test vector.
  std::string zeros(32, '\0');
  EXPECT_EQ(trainer::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
}

TEST(TensorBoard, WritesEventsTensorBoardCanFrame) {
  auto dir = std::filesystem::temp_directory_path() / ("cohort_tb_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::path file;
  {
    trainer::TensorBoardWriter w(dir);
    file = w.path();
    w.scalars({{"step", 3}, {"reward", 0.25}, {"kl", 1e-3}, {"note", "not a number"}});
    w.text("rollouts", 3, "**1.** hello");
    w.scalar("reward", 7, 0.5);
  }
  EXPECT_NE(file.filename().string().find("tfevents"), std::string::npos) << "TensorBoard looks for 'tfevents'";
  std::vector<std::string> records = read_records(file);
  ASSERT_EQ(records.size(), 4u);
  cohort::tensorboard::Event e;
  ASSERT_TRUE(e.ParseFromString(records[0]));
  EXPECT_EQ(e.file_version(), "brain.Event:2");
  ASSERT_TRUE(e.ParseFromString(records[1]));
  EXPECT_EQ(e.step(), 3);
  ASSERT_EQ(e.summary().value_size(), 2) << "numbers only, not 'step' or strings";
  EXPECT_EQ(e.summary().value(0).tag(), "kl");
  EXPECT_FLOAT_EQ(e.summary().value(0).simple_value(), 1e-3f);
  EXPECT_EQ(e.summary().value(1).tag(), "reward");
  EXPECT_FLOAT_EQ(e.summary().value(1).simple_value(), 0.25f);
  ASSERT_TRUE(e.ParseFromString(records[2]));
  EXPECT_EQ(e.summary().value(0).metadata().plugin_data().plugin_name(), "text");
  EXPECT_EQ(e.summary().value(0).tensor().dtype(), 7);
  EXPECT_EQ(e.summary().value(0).tensor().string_val(0), "**1.** hello");
  ASSERT_TRUE(e.ParseFromString(records[3]));
  EXPECT_EQ(e.step(), 7);
  // A resume after step 3 keeps the events up to it; a record cut short by a kill ends the file.
  {
    std::ofstream torn(file, std::ios::binary | std::ios::app);
    torn << std::string("\x40\0\0\0\0\0\0\0abc", 11);
  }
  trainer::trim_event_files(dir, 3);
  records = read_records(file);
  ASSERT_EQ(records.size(), 3u);
  ASSERT_TRUE(e.ParseFromString(records[2]));
  EXPECT_EQ(e.step(), 3);
  std::filesystem::remove_all(dir);
}
