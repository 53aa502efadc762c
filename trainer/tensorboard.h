// TensorBoard event files, written by cohort itself: Event protobufs (comm/proto/tensorboard.proto, with
// TensorBoard's field numbers) in TFRecord framing (length, masked CRC-32C of the length, data, masked
// CRC-32C of the data), one file per launch in the run directory, so `tensorboard --logdir runs/` shows
// every scalar of metrics.jsonl and a few sampled completions per step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cohort::trainer {

// CRC-32C (Castagnoli), as TFRecord uses it, and its masked form: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t crc32c(const void* data, size_t bytes);
uint32_t masked_crc32c(const void* data, size_t bytes);

// A run resumed after step `last_step`: rewrites every event file of dir keeping only the events up to that
// step (the later ones are computed again), as metrics.jsonl keeps its lines up to it, so no reader sees a
// step twice. A record cut short by a kill ends the file there. Each file is replaced atomically.
void trim_event_files(const std::filesystem::path& dir, int64_t last_step);

class TensorBoardWriter {
 public:
  // Creates DIR/events.out.tfevents.SECONDS.MICROSECONDS.HOST.PID.cohort and writes its file_version record. Throws
  // cohort::Error naming the file when it cannot be created.
  explicit TensorBoardWriter(const std::filesystem::path& dir);

  void scalar(std::string_view tag, int64_t step, double value);
  // Every number of a metrics.jsonl line (all but "step") as a scalar of that step, in one event.
  void scalars(const nlohmann::json& metrics);
  // A text summary (rendered as Markdown by TensorBoard's text plugin).
  void text(std::string_view tag, int64_t step, std::string_view markdown);
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& bytes);
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace cohort::trainer
