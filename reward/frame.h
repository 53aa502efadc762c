// Framing of the reward protocol (docs/reward-protocol.md): a 4-byte big-endian length, then that many
// bytes of one serialized message. The decoder is incremental and never allocates more than the bytes
// that actually arrived, so a peer that announces a large frame and sends nothing costs nothing.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cohort::reward {

constexpr uint32_t kDefaultMaxFrameBytes = 16u << 20;

// A peer broke the framing or a socket failed; the connection cannot continue.
class FrameError : public std::runtime_error {
 public:
  explicit FrameError(const std::string& what, bool timeout = false) : std::runtime_error(what), timed_out(timeout) {}
  bool timed_out;  // the deadline passed (the peer may be alive but slow)
};

// The 4 length bytes followed by the payload.
std::string encode_frame(std::string_view payload);

class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_frame_bytes = kDefaultMaxFrameBytes) : max_frame_bytes_(max_frame_bytes) {}

  // Appends received bytes; returns how many were taken (fewer than given when a frame completed: call
  // next() and then feed the rest).
  size_t feed(const char* data, size_t size);
  // The completed frame's payload, once; nullopt while the frame is incomplete.
  std::optional<std::string> next();

  // The announced length was over the limit: the connection must be closed (the payload is not read).
  bool too_large() const { return too_large_; }
  uint32_t announced_length() const { return length_; }
  // Some bytes of a frame arrived and it is not complete yet.
  bool in_frame() const { return header_bytes_ > 0 && !complete_; }
  uint32_t max_frame_bytes() const { return max_frame_bytes_; }

 private:
  uint32_t max_frame_bytes_;
  unsigned char header_[4] = {};
  int header_bytes_ = 0;
  uint32_t length_ = 0;
  bool too_large_ = false;
  bool complete_ = false;
  std::string payload_;
};

// Blocking frame I/O on a POSIX stream socket, each bounded by an absolute deadline (the client and the
// isolation pool's workers use these; the server is asynchronous). Throw FrameError on timeout, EOF,
// a socket error or a frame over max_frame_bytes.
using Deadline = std::chrono::steady_clock::time_point;
void write_frame(int fd, std::string_view payload, Deadline deadline);
std::string read_frame(int fd, uint32_t max_frame_bytes, Deadline deadline);
// Reads exactly size bytes; false on EOF before the first byte, FrameError on a later EOF, error or timeout.
bool read_exactly(int fd, char* data, size_t size, Deadline deadline);

}  // namespace cohort::reward
