// libFuzzer target for the reward protocol's frame decoder: any bytes, cut anywhere, must decode to the
// same frames as when fed whole, never allocate past the bytes received, and refuse an over-limit length.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "reward/frame.h"

namespace {
void check(bool condition) {
  if (!condition) __builtin_trap();
}

// Decodes `bytes` fed in pieces of `step` bytes; stops at a too-large frame.
std::vector<std::string> decode(const std::string& bytes, size_t step, bool* too_large) {
  cohort::reward::FrameDecoder d(1000);
  std::vector<std::string> frames;
  for (size_t at = 0; at < bytes.size() && !d.too_large();) {
    const size_t n = std::min(step, bytes.size() - at);
    const size_t used = d.feed(bytes.data() + at, n);
    check(used <= n);
    at += used;
    if (auto f = d.next())
      frames.push_back(*f);
    else
      check(used == n || d.too_large());
  }
  *too_large = d.too_large();
  return frames;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  bool big1 = false, big2 = false;
  const std::vector<std::string> whole = decode(bytes, bytes.size() + 1, &big1);
  const std::vector<std::string> pieces = decode(bytes, 1 + (size % 7), &big2);
  check(whole == pieces && big1 == big2);
  std::string again;
  for (const std::string& f : whole) {
    check(f.size() <= 1000);
    again += cohort::reward::encode_frame(f);
  }
  check(bytes.compare(0, again.size(), again) == 0);  // the frames are a prefix of the input
  return 0;
}
