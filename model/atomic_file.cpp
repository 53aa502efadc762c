// AtomicOutputFile: write to path.tmp, fsync, rename, fsync the directory.
#include "model/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "kernels/error.h"

namespace cohort {

AtomicOutputFile::AtomicOutputFile(const std::string& path) : path_(path), temporary_(path + ".tmp") {
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  COHORT_REQUIRE(fd_ >= 0, "cannot create '" << temporary_ << "': " << std::strerror(errno));
}

AtomicOutputFile::~AtomicOutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temporary_.c_str());
}

void AtomicOutputFile::write(const void* data, int64_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd_, p, (size_t)std::min<int64_t>(bytes, int64_t(1) << 30));
    if (n < 0 && errno == EINTR) continue;
    COHORT_REQUIRE(n > 0, "writing '" << temporary_ << "' failed: " << std::strerror(errno));
    p += n, bytes -= n;
    written_ += (uint64_t)n;
  }
}

void AtomicOutputFile::pad(uint64_t alignment) {
  static const char zeros[64] = {};
  COHORT_REQUIRE(alignment >= 1 && alignment <= sizeof zeros, "padding to " << alignment << " bytes is not supported");
  write(zeros, (int64_t)((alignment - written_ % alignment) % alignment));
}

void AtomicOutputFile::commit() {
  COHORT_REQUIRE(::fsync(fd_) == 0, "fsync of '" << temporary_ << "' failed: " << std::strerror(errno));
  int closed = ::close(fd_);
  fd_ = -1;
  COHORT_REQUIRE(closed == 0, "closing '" << temporary_ << "' failed: " << std::strerror(errno));
  COHORT_REQUIRE(::rename(temporary_.c_str(), path_.c_str()) == 0,
                 "renaming '" << temporary_ << "' to '" << path_ << "' failed: " << std::strerror(errno));
  committed_ = true;
  std::string directory = std::filesystem::path(path_).parent_path().string();
  int dir_fd = ::open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace cohort
