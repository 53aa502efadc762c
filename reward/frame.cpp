// Reward protocol framing: the incremental decoder and deadline-bounded blocking socket I/O.
#include "reward/frame.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cohort::reward {

std::string encode_frame(std::string_view payload) {
  if (payload.size() > UINT32_MAX) throw FrameError("frame payload of " + std::to_string(payload.size()) + " bytes");
  const auto n = (uint32_t)payload.size();
  std::string out(4 + payload.size(), '\0');
  out[0] = (char)(n >> 24), out[1] = (char)(n >> 16), out[2] = (char)(n >> 8), out[3] = (char)n;
  std::memcpy(out.data() + 4, payload.data(), payload.size());
  return out;
}

size_t FrameDecoder::feed(const char* data, size_t size) {
  size_t taken = 0;
  while (taken < size && !complete_ && !too_large_) {
    if (header_bytes_ < 4) {
      header_[header_bytes_++] = (unsigned char)data[taken++];
      if (header_bytes_ == 4) {
        length_ = (uint32_t)header_[0] << 24 | (uint32_t)header_[1] << 16 | (uint32_t)header_[2] << 8 | header_[3];
        if (length_ > max_frame_bytes_)
          too_large_ = true;
        else if (length_ == 0)
          complete_ = true;
      }
      continue;
    }
    const size_t n = std::min(size - taken, (size_t)length_ - payload_.size());
    payload_.append(data + taken, n);
    taken += n;
    if (payload_.size() == length_) complete_ = true;
  }
  return taken;
}

std::optional<std::string> FrameDecoder::next() {
  if (!complete_) return std::nullopt;
  std::string out = std::move(payload_);
  payload_.clear();
  header_bytes_ = 0, length_ = 0, complete_ = false;
  return out;
}

namespace {

// Waits until fd is ready for `events` or the deadline passes (FrameError).
void wait_ready(int fd, short events, Deadline deadline, const char* what) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw FrameError(std::string("timed out ") + what, true);
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, (int)std::min<int64_t>(left.count() + 1, 60'000));
    if (r > 0) return;
    if (r < 0 && errno != EINTR) throw FrameError(std::string("poll failed ") + what + ": " + std::strerror(errno));
  }
}

}  // namespace

void write_frame(int fd, std::string_view payload, Deadline deadline) {
  const std::string frame = encode_frame(payload);
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_ready(fd, POLLOUT, deadline, "sending a frame");
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      throw FrameError(std::string("sending a frame failed: ") + (n < 0 ? std::strerror(errno) : "closed"));
    }
  }
}

bool read_exactly(int fd, char* data, size_t size, Deadline deadline) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::recv(fd, data + got, size - got, MSG_DONTWAIT);
    if (n > 0) {
      got += (size_t)n;
    } else if (n == 0) {
      if (got == 0) return false;
      throw FrameError("the peer closed the connection inside a frame");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_ready(fd, POLLIN, deadline, "waiting for a frame");
    } else if (errno != EINTR) {
      throw FrameError(std::string("receiving a frame failed: ") + std::strerror(errno));
    }
  }
  return true;
}

std::string read_frame(int fd, uint32_t max_frame_bytes, Deadline deadline) {
  unsigned char header[4];
  if (!read_exactly(fd, (char*)header, 4, deadline)) throw FrameError("the peer closed the connection");
  const uint32_t length = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 | header[3];
  if (length > max_frame_bytes) {
    throw FrameError("a frame of " + std::to_string(length) + " bytes is over the limit of " +
                     std::to_string(max_frame_bytes));
  }
  std::string payload(length, '\0');
  if (length > 0 && !read_exactly(fd, payload.data(), length, deadline))
    throw FrameError("the peer closed the connection inside a frame");
  return payload;
}

}  // namespace cohort::reward
