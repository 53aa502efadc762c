// Fuzzes the safetensors reader, which parses untrusted weight files: the 8-byte header length, the JSON
// header (names, dtypes, shapes, data offsets, __metadata__) and its checks against the file's size. Each
// input is written to a file (the reader reads files) and read as a header and as metadata. Any cohort::Error
// is a correct refusal; a crash, sanitizer report, leak or timeout is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "kernels/error.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/cohort_fuzz_safetensors_" + std::to_string(getpid()) + ".safetensors";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    std::vector<cohort::SafetensorsEntry> entries = cohort::read_safetensors_header(path);
    for (const auto& e : entries)
      if (e.end < e.begin) __builtin_trap();  // a validated header never holds a negative range
  } catch (const cohort::Error&) {
  }
  try {
    cohort::read_safetensors_metadata(path);
  } catch (const cohort::Error&) {
  }
  return 0;
}
