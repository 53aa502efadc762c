// A file written under a temporary name and renamed into place once complete and synced, so a crash
// leaves either the old file or the whole new one: every weight file and model-directory file cohort
// writes goes through it. Destroyed before commit() (an error on the way), it removes the temporary.
#pragma once

#include <cstdint>
#include <string>

namespace cohort {

class AtomicOutputFile {
 public:
  // Creates path + ".tmp"; throws cohort::Error naming it when that fails.
  explicit AtomicOutputFile(const std::string& path);
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;
  ~AtomicOutputFile();

  void write(const void* data, int64_t bytes);
  void write(const std::string& text) { write(text.data(), (int64_t)text.size()); }
  // Zero bytes up to the next multiple of `alignment` (at most 64).
  void pad(uint64_t alignment);
  uint64_t written() const { return written_; }
  // fsync, close, rename over the path, then fsync the directory (best effort: some file systems refuse
  // it, and the file is complete and in place either way).
  void commit();

 private:
  std::string path_, temporary_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t written_ = 0;
};

}  // namespace cohort
