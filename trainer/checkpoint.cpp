// HDF5 checkpoints: writing, verified reading, publishing and the config comparison of a resume.
#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "kernels/error.h"
#include "kernels/threads.h"
#include "model/gguf.h"
#include "model/model_directory.h"

namespace cohort::trainer {

namespace fs = std::filesystem;

namespace {

// Raises HDF5's failures (negative ids and statuses) as cohort::Error naming the file and the call.
struct H5Check {
  const fs::path& file;
  template <typename T>
  T operator()(T status, const std::string& what) const {
    COHORT_REQUIRE(status >= 0, "checkpoint " << file.string() << ": " << what << " failed (HDF5)");
    return status;
  }
};

// An HDF5 id closed on scope exit.
class H5Handle {
 public:
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Handle() {
    if (id_ >= 0) close_(id_);
  }
  H5Handle(H5Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  operator hid_t() const { return id_; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void silence_hdf5_errors() {
  // HDF5 prints its error stack to stderr on every failed call; cohort reports its own message instead.
  static const bool once = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();
  (void)once;
}

#if defined(__x86_64__)
// x's two 64-bit halves carried forward by k's (a fold) onto `next`.
__attribute__((target("pclmul,sse4.1"))) inline __m128i fold_onto(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
}

// zlib's crc32, the same function bit for bit, by carry-less multiplication folding 64 bytes a step (Intel,
// "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction", 2009; the constants are the
// paper's for zlib's bit-reflected polynomial 0xEDB88320, as in Linux's crc32-pclmul and Chromium's zlib):
// 13 GB/s on one core of the machine of docs/performance.md, where zlib's own takes 4 GB/s, so the checksums
// of a 1.5 GB checkpoint cost 0.1 s instead of 0.4 s. Lengths under 64 bytes and the last len % 16 bytes go
// through zlib.
__attribute__((target("pclmul,sse4.1"))) uint32_t crc32_pclmul(uint32_t crc, const Bytef* buf, size_t len) {
  if (len < 64) return (uint32_t)crc32(crc, buf, (uInt)len);
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};  // fold by 4 x 128 bits
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};  // fold by 128 bits
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};  // 128 -> 64 bits
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};  // P(x)' and mu' for Barrett
  const size_t rest = len % 16;
  len -= rest;
  auto load = [](const Bytef* at) { return _mm_loadu_si128((const __m128i*)at); };  // SSE2 only
  __m128i x1 = _mm_xor_si128(load(buf), _mm_cvtsi32_si128((int)~crc)), x2 = load(buf + 16), x3 = load(buf + 32),
          x4 = load(buf + 48);
  __m128i k = _mm_load_si128((const __m128i*)k1k2);
  for (buf += 64, len -= 64; len >= 64; buf += 64, len -= 64) {
    x1 = fold_onto(x1, k, load(buf)), x2 = fold_onto(x2, k, load(buf + 16));
    x3 = fold_onto(x3, k, load(buf + 32)), x4 = fold_onto(x4, k, load(buf + 48));
  }
  k = _mm_load_si128((const __m128i*)k3k4);
  x1 = fold_onto(fold_onto(fold_onto(x1, k, x2), k, x3), k, x4);
  for (; len >= 16; buf += 16, len -= 16) x1 = fold_onto(x1, k, load(buf));
  // 128 bits to 64, then Barrett reduction to 32.
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), _mm_clmulepi64_si128(x1, k, 0x10));
  k = _mm_loadl_epi64((const __m128i*)k5k0);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x00), _mm_srli_si128(x1, 4));
  k = _mm_load_si128((const __m128i*)poly);
  __m128i x = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x10);
  x = _mm_clmulepi64_si128(_mm_and_si128(x, low32), k, 0x00);
  crc = ~(uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, x), 1);
  return rest ? (uint32_t)crc32(crc, buf, (uInt)rest) : crc;
}
#endif

// crc32(crc, data, bytes) exactly as zlib computes it, by crc32_pclmul where this CPU has the instructions and
// it agrees with zlib on a probe (checked once), else by zlib.
uint32_t crc32_update(uint32_t crc, const void* data, size_t bytes) {
  const auto* p = static_cast<const Bytef*>(data);
  if (bytes == 0) return crc;
#if defined(__x86_64__)
  static const bool fast = [] {
    if (!__builtin_cpu_supports("pclmul") || !__builtin_cpu_supports("sse4.1")) return false;
    Bytef probe[1000];
    for (size_t i = 0; i < sizeof probe; ++i) probe[i] = (Bytef)(i * 131 + 7);
    for (size_t n : {64, 65, 80, 127, 128, 129, 200, 1000})
      if (crc32_pclmul(0x12345678u, probe, n) != (uint32_t)crc32(0x12345678u, probe, (uInt)n)) return false;
    return true;
  }();
  if (fast) return crc32_pclmul(crc, p, bytes);
#endif
  for (size_t done = 0; done < bytes;) {  // zlib takes an unsigned int of bytes at a time
    const size_t n = std::min(bytes - done, size_t(1) << 30);
    crc = (uint32_t)crc32(crc, p + done, (uInt)n);
    done += n;
  }
  return crc;
}

// zlib's crc32 of the bytes, in 16 MiB pieces on all threads, joined with crc32_combine.
uint32_t crc_of(const void* data, size_t bytes) {
  constexpr size_t piece = size_t(16) << 20;
  const auto* p = static_cast<const Bytef*>(data);
  const int64_t pieces = (int64_t)((bytes + piece - 1) / piece);
  std::vector<uLong> crcs((size_t)pieces);
#pragma omp parallel for schedule(dynamic, 1) if (pieces > 1)
  for (int64_t i = 0; i < pieces; ++i) {
    size_t begin = (size_t)i * piece, n = std::min(piece, bytes - begin);
    crcs[i] = crc32_update(0, p + begin, n);
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int64_t i = 0; i < pieces; ++i) {
    size_t n = std::min(piece, bytes - (size_t)i * piece);
    crc = crc32_combine(crc, crcs[i], (z_off_t)n);
  }
  return (uint32_t)crc;
}

// The crc32s of many buffers at once, cut into chunks that any number of threads claim in turn, so that all
// of a checkpoint's checksums take the run's threads together, and so that reading can be one with them: a
// buffer added with add_read is first filled from a range of a file (pread), chunk by chunk, and each
// chunk's checksum is taken while its bytes are still in cache. work() may run on several threads at once;
// crc() and failure() are for after every work() has returned.
class ChunkedChecksums {
 public:
  void add(const void* data, size_t bytes) { add_buffer(static_cast<const Bytef*>(data), nullptr, bytes, -1, 0); }
  void add_read(void* into, size_t bytes, int fd, uint64_t file_offset) {
    add_buffer(static_cast<Bytef*>(into), static_cast<Bytef*>(into), bytes, fd, file_offset);
  }

  // Claims chunks until none are left. A failed read is recorded (failure()), not thrown.
  void work() noexcept {
    for (size_t c; (c = next_.fetch_add(1)) < chunks_.size();) {
      const Chunk& chunk = chunks_[c];
      const Buffer& b = buffers_[chunk.buffer];
      if (b.read_into && !read_range(b, chunk)) continue;
      crcs_[c] = crc32_update(0, b.data + chunk.begin, chunk.bytes);
    }
  }

  uint32_t crc(size_t buffer) const {
    const Buffer& b = buffers_[buffer];
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t c = b.first_chunk; c < b.first_chunk + b.chunks; ++c)
      crc = crc32_combine(crc, crcs_[c], (z_off_t)chunks_[c].bytes);
    return (uint32_t)crc;
  }
  const std::string& failure() const { return failure_; }

 private:
  // Small enough that a chunk read by pread is still in cache for its checksum, large enough that the
  // calls cost nothing beside the bytes.
  static constexpr size_t chunk_bytes = size_t(4) << 20;
  struct Buffer {
    const Bytef* data;
    Bytef* read_into;  // null: data is in memory already
    int fd;
    uint64_t file_offset;
    size_t first_chunk, chunks;
  };
  struct Chunk {
    size_t buffer, begin, bytes;
  };

  void add_buffer(const Bytef* data, Bytef* read_into, size_t bytes, int fd, uint64_t file_offset) {
    Buffer& b = buffers_.emplace_back(Buffer{data, read_into, fd, file_offset, chunks_.size(), 0});
    for (size_t begin = 0; begin < bytes; begin += chunk_bytes, ++b.chunks)
      chunks_.push_back({buffers_.size() - 1, begin, std::min(chunk_bytes, bytes - begin)});
    crcs_.resize(chunks_.size());
  }

  bool read_range(const Buffer& b, const Chunk& chunk) noexcept {
    for (size_t done = 0; done < chunk.bytes;) {
      ssize_t n = ::pread(b.fd, b.read_into + chunk.begin + done, chunk.bytes - done,
                          (off_t)(b.file_offset + chunk.begin + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::lock_guard<std::mutex> lock(failure_mutex_);
        if (failure_.empty())
          failure_ = n == 0 ? std::string("the file ends before the data (truncated)") : std::strerror(errno);
        return false;
      }
      done += (size_t)n;
    }
    return true;
  }

  std::vector<Buffer> buffers_;
  std::vector<Chunk> chunks_;
  std::vector<uLong> crcs_;
  std::atomic<size_t> next_{0};
  std::mutex failure_mutex_;
  std::string failure_;
};

// Runs work() on `threads - 1` helper threads from now until the returned threads are joined (cleared or
// destroyed); the caller's own share is a call of work() of its own, and the threads' work must not throw.
// Where the system will not start a thread, fewer help: the work is the same.
std::vector<std::jthread> start_helpers(int threads, const std::function<void()>& work) {
  std::vector<std::jthread> helpers;
  try {
    for (int i = 1; i < threads; ++i) helpers.emplace_back(work);
  } catch (const std::system_error&) {
  }
  return helpers;
}

// A file descriptor closed on scope exit.
struct FileDescriptor {
  int fd;
  explicit FileDescriptor(const fs::path& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
};

// Faults in the pages of [data, data + bytes) in one call instead of one fault per 4 KiB page at first touch
// (0.5 GB: 0.17-0.26 s instead of 0.25-0.39 s on the 2-core VM of docs/performance.md, where reading it
// from the page cache takes 0.1 s). A hint only: before Linux 5.14, nothing.
void prefault(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const uintptr_t page = 4096, begin = ((uintptr_t)data + page - 1) & ~(page - 1),
                  end = ((uintptr_t)data + bytes) & ~(page - 1);
  if (end > begin) (void)::madvise((void*)begin, end - begin, MADV_POPULATE_WRITE);
#else
  (void)data, (void)bytes;
#endif
}

nlohmann::json model_config_json(const ModelConfig& c) {
  return {{"name", c.name},
          {"hidden", c.hidden},
          {"layers", c.layers},
          {"heads", c.heads},
          {"kv_heads", c.kv_heads},
          {"head_dim", c.head_dim},
          {"intermediate", c.intermediate},
          {"vocab", c.vocab},
          {"max_seq_len", c.max_seq_len},
          {"rope_theta", c.rope_theta},
          {"rms_eps", c.rms_eps},
          {"tie_embeddings", c.tie_embeddings},
          {"qkv_bias", c.qkv_bias},
          {"qk_norm", c.qk_norm},
          {"rope_scaling",
           {{"type", rope_scaling_name(c.rope_scaling.type)},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}}}};
}

ModelConfig model_config_from(const nlohmann::json& j, const fs::path& file) {
  ModelConfig c;
  try {
    c.name = j.at("name").get<std::string>();
    c.hidden = j.at("hidden").get<int64_t>();
    c.layers = j.at("layers").get<int64_t>();
    c.heads = j.at("heads").get<int64_t>();
    c.kv_heads = j.at("kv_heads").get<int64_t>();
    c.head_dim = j.at("head_dim").get<int64_t>();
    c.intermediate = j.at("intermediate").get<int64_t>();
    c.vocab = j.at("vocab").get<int64_t>();
    c.max_seq_len = j.at("max_seq_len").get<int64_t>();
    c.rope_theta = j.at("rope_theta").get<double>();
    c.rms_eps = j.at("rms_eps").get<double>();
    c.tie_embeddings = j.at("tie_embeddings").get<bool>();
    c.qkv_bias = j.at("qkv_bias").get<bool>();
    // Absent from checkpoints written before Qwen3 and rope scaling: neither then.
    c.qk_norm = j.value("qk_norm", false);
    if (j.contains("rope_scaling")) {
      const nlohmann::json& r = j.at("rope_scaling");
      const std::string type = r.at("type").get<std::string>();
      COHORT_REQUIRE(type == rope_scaling_name(RopeScaling::Type::none) ||
                         type == rope_scaling_name(RopeScaling::Type::linear) ||
                         type == rope_scaling_name(RopeScaling::Type::llama3),
                     "checkpoint " << file.string() << ": /model_config.json: unknown rope scaling '" << type << "'");
      c.rope_scaling.type = type == rope_scaling_name(RopeScaling::Type::linear)   ? RopeScaling::Type::linear
                            : type == rope_scaling_name(RopeScaling::Type::llama3) ? RopeScaling::Type::llama3
                                                                                   : RopeScaling::Type::none;
      c.rope_scaling.factor = r.at("factor").get<double>();
      c.rope_scaling.low_freq_factor = r.at("low_freq_factor").get<double>();
      c.rope_scaling.high_freq_factor = r.at("high_freq_factor").get<double>();
      c.rope_scaling.original_max_position_embeddings = r.at("original_max_position_embeddings").get<int64_t>();
    }
  } catch (const std::exception& e) {
    COHORT_REQUIRE(false, "checkpoint " << file.string() << ": /model_config.json: " << e.what());
  }
  try {
    validate(c);
  } catch (const std::exception& e) {
    COHORT_REQUIRE(false, "checkpoint " << file.string() << ": /model_config.json: " << e.what());
  }
  return c;
}

void fsync_path(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  COHORT_REQUIRE(fd >= 0 || directory, "cannot open " << path.string() << " to sync it: " << std::strerror(errno));
  if (fd < 0) return;  // some file systems refuse to open directories; the rename is still atomic
  int rc = ::fsync(fd);
  ::close(fd);
  COHORT_REQUIRE(rc == 0 || directory, "fsync of " << path.string() << " failed: " << std::strerror(errno));
}

// Dataset `name` opened and checked: present, of element class want_class and size element_size, of rank 1
// to 8, holding `expected_count` values where that is not -1, claiming no more data than the file holds,
// with a crc32 attribute (its value in stored_crc).
struct CheckedDataset {
  H5Handle ds;
  std::vector<hsize_t> dims;
  hsize_t count = 1;
  uint32_t stored_crc = 0;
};

CheckedDataset open_checked(hid_t where, const fs::path& file, const std::string& name, H5T_class_t want_class,
                            size_t element_size, int64_t expected_count = -1) {
  H5Check check{file};
  COHORT_REQUIRE(H5Lexists(where, name.c_str(), H5P_DEFAULT) > 0,
                 "checkpoint " << file.string() << ": dataset " << name << " is missing");
  CheckedDataset d{H5Handle(check(H5Dopen2(where, name.c_str(), H5P_DEFAULT), "opening " + name), H5Dclose), {}, 1, 0};
  H5Handle type(check(H5Dget_type(d.ds), "type of " + name), H5Tclose);
  COHORT_REQUIRE(H5Tget_class(type) == want_class && H5Tget_size(type) == element_size,
                 "checkpoint " << file.string() << ": dataset " << name << " has the wrong element type");
  H5Handle space(check(H5Dget_space(d.ds), "dataspace of " + name), H5Sclose);
  int rank = check(H5Sget_simple_extent_ndims(space), "rank of " + name);
  COHORT_REQUIRE(rank >= 1 && rank <= 8,
                 "checkpoint " << file.string() << ": dataset " << name << " has rank " << rank);
  d.dims.resize((size_t)rank);
  check(H5Sget_simple_extent_dims(space, d.dims.data(), nullptr), "dims of " + name);
  // A forged dataspace can claim more than 2^64 values: the count saturates instead of wrapping around.
  constexpr hsize_t most = std::numeric_limits<hsize_t>::max();
  for (hsize_t n : d.dims) d.count = n != 0 && d.count > most / n ? most : d.count * n;
  COHORT_REQUIRE(expected_count < 0 || d.count == (hsize_t)expected_count,
                 "checkpoint " << file.string() << ": dataset " << name << " holds " << d.count
                               << " values, the model config " << expected_count);
  // The file's size bounds what a dataset can hold; a forged header must not make us allocate more.
  std::error_code ec;
  uintmax_t file_bytes = fs::file_size(file, ec);
  COHORT_REQUIRE(!ec && d.count <= file_bytes / element_size,
                 "checkpoint " << file.string() << ": dataset " << name << " claims more data than the file holds");
  COHORT_REQUIRE(H5Aexists(d.ds, "crc32") > 0,
                 "checkpoint " << file.string() << ": dataset " << name << " has no crc32 attribute");
  H5Handle attr(check(H5Aopen(d.ds, "crc32", H5P_DEFAULT), "crc32 of " + name), H5Aclose);
  check(H5Aread(attr, H5T_NATIVE_UINT32, &d.stored_crc), "reading crc32 of " + name);
  return d;
}

void require_checksum(const fs::path& file, const std::string& name, uint32_t stored, uint32_t actual) {
  COHORT_REQUIRE(stored == actual, "checkpoint " << file.string() << ": dataset " << name
                                                 << " fails its checksum (stored crc32 " << stored << ", data "
                                                 << actual << "): the file is corrupted");
}

// Reads dataset `name` (its element type checked against want_class and T), verifying its crc32. Returns
// the dims through `dims_out` and the crc32 of the data read through `actual_crc` (set before a mismatch
// is thrown).
template <typename T>
std::vector<T> read_dataset(hid_t where, const fs::path& file, const std::string& name, hid_t memory_type,
                            H5T_class_t want_class, std::vector<hsize_t>* dims_out = nullptr,
                            uint32_t* actual_crc = nullptr) {
  CheckedDataset d = open_checked(where, file, name, want_class, sizeof(T));
  if (dims_out) *dims_out = d.dims;
  std::vector<T> out((size_t)d.count);
  if (d.count > 0)
    H5Check{file}(H5Dread(d.ds, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "reading " + name);
  const uint32_t actual = crc_of(out.data(), out.size() * sizeof(T));
  if (actual_crc) *actual_crc = actual;
  require_checksum(file, name, d.stored_crc, actual);
  return out;
}

std::string read_text(hid_t where, const fs::path& file, const std::string& name) {
  std::vector<uint8_t> bytes = read_dataset<uint8_t>(where, file, name, H5T_NATIVE_UINT8, H5T_INTEGER);
  return std::string(bytes.begin(), bytes.end());
}

// Where a dataset's `bytes` of little-endian fp32 lie in the file, when they can be read from there as they
// are: one contiguous, unfiltered extent in the file itself, stored as this machine's floats. HADDR_UNDEF
// otherwise (other layouts, conversions, external files), and those are read through HDF5.
haddr_t raw_float_offset(hid_t ds, size_t bytes) {
  if (H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) <= 0) return HADDR_UNDEF;
  H5Handle type(H5Dget_type(ds), H5Tclose);
  if (type < 0 || H5Tequal(type, H5T_IEEE_F32LE) <= 0) return HADDR_UNDEF;
  H5Handle dcpl(H5Dget_create_plist(ds), H5Pclose);
  if (dcpl < 0 || H5Pget_layout(dcpl) != H5D_CONTIGUOUS || H5Pget_nfilters(dcpl) != 0 ||
      H5Pget_external_count(dcpl) != 0 || H5Dget_storage_size(ds) != (hsize_t)bytes)
    return HADDR_UNDEF;
  return H5Dget_offset(ds);
}

// The tensors of `group` as one flat vector in the layout's order. The metadata of every dataset is read
// and checked first; then the data of those stored as they are in memory (all of cohort's own) is read
// straight from the file on every thread, each piece checksummed while in cache, and the rest through HDF5.
std::vector<float> read_tensors(hid_t file_id, const fs::path& file, const std::string& group,
                                const std::vector<ParameterInfo>& layout) {
  const ParameterInfo& last = layout.back();
  const size_t total = (size_t)(last.offset + last.numel);
  std::vector<float> flat;
  flat.reserve(total);
  prefault(flat.data(), total * sizeof(float));
  flat.resize(total);
  std::error_code ec;
  const uintmax_t file_bytes = fs::file_size(file, ec);
  const FileDescriptor raw(file);
  COHORT_REQUIRE(raw.fd >= 0 && !ec, "checkpoint " << file.string() << " cannot be opened: " << std::strerror(errno));

  ChunkedChecksums checksums;
  std::vector<uint32_t> stored;
  for (const ParameterInfo& p : layout) {
    const std::string name = group + "/" + p.name;
    CheckedDataset d = open_checked(file_id, file, name, H5T_FLOAT, sizeof(float), p.numel);
    bool same = d.dims.size() == p.shape.size();
    for (size_t i = 0; same && i < d.dims.size(); ++i) same = (int64_t)d.dims[i] == p.shape[i];
    COHORT_REQUIRE(same,
                   "checkpoint " << file.string() << ": " << name << " has a shape other than the model config's");
    float* into = flat.data() + p.offset;
    const size_t bytes = (size_t)p.numel * sizeof(float);
    const haddr_t at = bytes > 0 ? raw_float_offset(d.ds, bytes) : HADDR_UNDEF;
    if (at != HADDR_UNDEF) {
      COHORT_REQUIRE(at <= file_bytes && bytes <= file_bytes - at,
                     "checkpoint " << file.string() << ": dataset " << name << " lies past the end of the file "
                                   << "(truncated)");
      checksums.add_read(into, bytes, raw.fd, (uint64_t)at);
    } else {
      if (bytes > 0)
        H5Check{file}(H5Dread(d.ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, into), "reading " + name);
      checksums.add(into, bytes);
    }
    stored.push_back(d.stored_crc);
  }
  {
    std::vector<std::jthread> helpers = start_helpers(thread_count(), [&checksums] { checksums.work(); });
    checksums.work();
  }
  COHORT_REQUIRE(checksums.failure().empty(),
                 "checkpoint " << file.string() << ": reading " << group << ": " << checksums.failure());
  for (size_t i = 0; i < layout.size(); ++i)
    require_checksum(file, group + "/" + layout[i].name, stored[i], checksums.crc(i));
  return flat;
}

H5Handle open_for_reading(const fs::path& path) {
  silence_hdf5_errors();
  COHORT_REQUIRE(fs::is_regular_file(path), "checkpoint " << path.string() << " does not exist");
  COHORT_REQUIRE(H5Fis_hdf5(path.c_str()) > 0,
                 "checkpoint " << path.string() << " is not an HDF5 file (or is truncated)");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  COHORT_REQUIRE(id >= 0, "checkpoint " << path.string() << " cannot be opened as HDF5 (truncated or corrupted)");
  return H5Handle(id, H5Fclose);
}

// What this process writes of one dataset: elements [begin, begin + count) of its flat, row-major data.
// Every learner lists the same datasets in the same order; a learner with nothing to write has count 0.
struct Piece {
  std::string name;
  bool is_float = true;
  std::vector<hsize_t> dims;  // tensors: the shape; bytes: set from the pieces' total
  const void* data = nullptr;
  int64_t begin = 0, count = 0;
  uint32_t crc = 0;  // of this piece, then of the whole dataset
};

// Selects flat elements [begin, begin + count) of a row-major 1-D or 2-D dataspace: at most a partial
// row, full rows and a partial row, joined.
void select_flat_range(hid_t space, const std::vector<hsize_t>& dims, int64_t begin, int64_t count,
                       const H5Check& check) {
  if (dims.size() == 1) {
    hsize_t start = (hsize_t)begin, n = (hsize_t)count;
    check(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &n, nullptr), "selecting a shard");
    return;
  }
  COHORT_REQUIRE(dims.size() == 2, "checkpoint: a tensor of rank " << dims.size() << " cannot be sharded");
  const int64_t cols = (int64_t)dims[1], end = begin + count;
  check(H5Sselect_none(space), "selecting a shard");
  auto add = [&](int64_t row, int64_t col, int64_t rows, int64_t n) {
    hsize_t start[2] = {(hsize_t)row, (hsize_t)col}, size[2] = {(hsize_t)rows, (hsize_t)n};
    check(H5Sselect_hyperslab(space, H5S_SELECT_OR, start, nullptr, size, nullptr), "selecting a shard");
  };
  int64_t pos = begin;
  if (pos % cols != 0) {  // the rest of a partial first row
    const int64_t n = std::min(cols - pos % cols, end - pos);
    add(pos / cols, pos % cols, 1, n);
    pos += n;
  }
  if (end - pos >= cols) {  // whole rows
    const int64_t rows = (end - pos) / cols;
    add(pos / cols, 0, rows, cols);
    pos += rows * cols;
  }
  if (pos < end) add(pos / cols, 0, 1, end - pos);  // the start of a last row
}

// Pass one of writing the pieces: creates every dataset (collectively, under MPI-IO) and writes this
// process's pieces into them (independently). Returns the datasets, open, for write_checksums.
std::deque<H5Handle> write_data(hid_t file, const fs::path& path, const std::vector<Piece>& pieces) {
  H5Check check{path};
  std::deque<H5Handle> datasets;
  for (const Piece& p : pieces) {
    const hid_t file_type = p.is_float ? H5T_IEEE_F32LE : H5T_STD_U8LE;
    const hid_t memory_type = p.is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
    H5Handle space(check(H5Screate_simple((int)p.dims.size(), p.dims.data(), nullptr), "dataspace of " + p.name),
                   H5Sclose);
    // Every byte is written once, by H5Dwrite below: no fill values first.
    H5Handle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "dataset properties"), H5Pclose);
    check(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "fill time");
    const H5Handle& ds =
        datasets.emplace_back(check(H5Dcreate2(file, p.name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                                    "creating dataset " + p.name),
                              H5Dclose);
    if (p.count == 0) continue;
    hsize_t total = 1;
    for (hsize_t d : p.dims) total *= d;
    if (p.begin == 0 && (hsize_t)p.count == total) {
      check(H5Dwrite(ds, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data), "writing " + p.name);
    } else {
      H5Handle file_space(check(H5Dget_space(ds), "dataspace of " + p.name), H5Sclose);
      select_flat_range(file_space, p.dims, p.begin, p.count, check);
      hsize_t n = (hsize_t)p.count;
      H5Handle memory_space(check(H5Screate_simple(1, &n, nullptr), "memory space"), H5Sclose);
      check(H5Dwrite(ds, memory_type, memory_space, file_space, H5P_DEFAULT, p.data), "writing " + p.name);
    }
  }
  return datasets;
}

// Pass two: the joined crc32 attribute of every dataset, the same on every process (collectively, under
// MPI-IO, once join_checksums has given every process every checksum).
void write_checksums(const std::deque<H5Handle>& datasets, const fs::path& path, const std::vector<Piece>& pieces) {
  H5Check check{path};
  H5Handle scalar(check(H5Screate(H5S_SCALAR), "attribute space"), H5Sclose);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const Piece& p = pieces[i];
    H5Handle attr(
        check(H5Acreate2(datasets[i], "crc32", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT), "crc32 of " + p.name),
        H5Aclose);
    check(H5Awrite(attr, H5T_NATIVE_UINT32, &p.crc), "writing crc32 of " + p.name);
  }
}

// Every learner's `mine` (the same number of values on each), one after another in rank order; without a
// communicator, this process's own.
std::vector<uint64_t> gather_per_piece(const std::vector<uint64_t>& mine, MPI_Comm comm, const char* what) {
  if (comm == MPI_COMM_NULL) return mine;
  int size = 1;
  MPI_Comm_size(comm, &size);
  std::vector<uint64_t> all(mine.size() * (size_t)size);
  COHORT_REQUIRE(MPI_Allgather(mine.data(), (int)mine.size(), MPI_UINT64_T, all.data(), (int)mine.size(), MPI_UINT64_T,
                               comm) == MPI_SUCCESS,
                 "checkpoint: gathering the learners' " << what << " failed");
  return all;
}

// Gives every process every byte dataset's total size and this process's offset in it, from the counts
// before this rank's (shards are contiguous and rank-ordered). Before any dataset is created.
void join_sizes(std::vector<Piece>& pieces, MPI_Comm comm) {
  int rank = 0;
  if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank);
  const size_t n = pieces.size();
  std::vector<uint64_t> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = (uint64_t)pieces[i].count;
  const std::vector<uint64_t> all = gather_per_piece(mine, comm, "sizes");
  const size_t size = all.size() / n;
  for (size_t i = 0; i < n; ++i) {
    if (pieces[i].is_float) continue;
    uint64_t total = 0, before = 0;
    for (size_t r = 0; r < size; ++r) {
      if ((int)r < rank) before += all[n * r + i];
      total += all[n * r + i];
    }
    pieces[i].dims = {(hsize_t)total}, pieces[i].begin = (int64_t)before;
  }
}

// Gives every process every dataset's crc32: each piece's, gathered over the learners and joined in rank
// order with crc32_combine. After this process's pieces' crcs are set.
void join_checksums(std::vector<Piece>& pieces, MPI_Comm comm) {
  const size_t n = pieces.size();
  std::vector<uint64_t> mine(2 * n);
  for (size_t i = 0; i < n; ++i) mine[2 * i] = (uint64_t)pieces[i].count, mine[2 * i + 1] = pieces[i].crc;
  const std::vector<uint64_t> all = gather_per_piece(mine, comm, "checksums");
  const size_t size = all.size() / (2 * n);
  for (size_t i = 0; i < n; ++i) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const size_t elem = pieces[i].is_float ? sizeof(float) : 1;
    for (size_t r = 0; r < size; ++r) {
      const uint64_t count = all[2 * n * r + 2 * i], piece_crc = all[2 * n * r + 2 * i + 1];
      if (count > 0) crc = crc32_combine(crc, (uLong)piece_crc, (z_off_t)(count * elem));
    }
    pieces[i].crc = (uint32_t)crc;
  }
}

// Starts writing a file's dirty pages to disk on a thread of its own, so the disk works while the caller
// computes; wait() returns 0 or the errno of the sync. The file must be synced again after its last write:
// this only shortens that sync.
class BackgroundSync {
 public:
  explicit BackgroundSync(const fs::path& path) : file_(path) {
    try {
      if (file_.fd >= 0) thread_ = std::jthread([this] { error_ = ::fdatasync(file_.fd) == 0 ? 0 : errno; });
    } catch (const std::system_error&) {  // no thread: the final sync does it all
    }
  }
  ~BackgroundSync() { wait(); }
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;
  // An error must be reported from here: the sync that saw it consumed it, and a later fsync of the file
  // may return 0.
  int wait() {
    if (thread_.joinable()) thread_.join();
    return error_;
  }

 private:
  FileDescriptor file_;
  int error_ = 0;
  std::jthread thread_;
};

}  // namespace

void write_checkpoint(const fs::path& path, const Transformer& model, const LearnerShard& shard,
                      const std::vector<float>* reference, const TrainingState& state, const std::string& config_yaml,
                      MPI_Comm learners) {
  silence_hdf5_errors();
  int rank = 0, size = 1;
  if (learners != MPI_COMM_NULL) MPI_Comm_rank(learners, &rank), MPI_Comm_size(learners, &size);
  const int64_t n = model.num_parameters();
  COHORT_REQUIRE(
      shard.adam_m && shard.adam_v && shard.adam_m->size() == shard.adam_v->size() && shard.begin >= 0 &&
          shard.begin + (int64_t)shard.adam_m->size() <= n && (size > 1 || (int64_t)shard.adam_m->size() == n),
      "checkpoint " << path.string() << ": an optimizer shard of " << (shard.adam_m ? shard.adam_m->size() : 0)
                    << " values at " << shard.begin << " does not fit the model's " << n);
  COHORT_REQUIRE(!reference || (int64_t)reference->size() == n,
                 "checkpoint " << path.string() << ": reference size mismatch");
  const bool lead = rank == 0;
  nlohmann::json s = {{"format", "cohort-checkpoint"},
                      {"format_version", 1},
                      {"step", state.step},
                      {"optimizer_steps", state.optimizer_steps},
                      {"learners", size},
                      {"data_cursor", state.data_cursor},
                      {"has_reference", reference != nullptr},
                      {"in_flight", !shard.in_flight.empty()},
                      {"extra", state.extra}};
  const std::string state_json = s.dump(2), model_json = model_config_json(model.config()).dump(2);

  std::vector<Piece> pieces;
  auto tensors = [&](const std::string& group, const float* flat, int64_t begin, int64_t count) {
    for (const ParameterInfo& p : model.parameters()) {
      Piece& x = pieces.emplace_back();
      x.name = group + "/" + p.name;
      x.dims.assign(p.shape.begin(), p.shape.end());
      const int64_t lo = std::max(begin, p.offset), hi = std::min(begin + count, p.offset + p.numel);
      if (flat && hi > lo) x.data = flat + (lo - begin), x.begin = lo - p.offset, x.count = hi - lo;
    }
  };
  auto bytes = [&](const std::string& name, const std::string& text, bool mine) {
    Piece& x = pieces.emplace_back();
    x.name = name, x.is_float = false;
    if (mine) x.data = text.data(), x.count = (int64_t)text.size();
  };
  tensors("/weights", lead ? model.weights().data() : nullptr, 0, n);
  tensors("/optimizer/m", shard.adam_m->data(), shard.begin, (int64_t)shard.adam_m->size());
  tensors("/optimizer/v", shard.adam_v->data(), shard.begin, (int64_t)shard.adam_v->size());
  if (reference) tensors("/reference", lead ? reference->data() : nullptr, 0, n);
  bytes("/state.json", state_json, lead);
  bytes("/config.yaml", config_yaml, lead);
  bytes("/model_config.json", model_json, lead);
  if (!shard.in_flight.empty())
    for (int r = 0; r < size; ++r) bytes("/in_flight/learner_" + std::to_string(r), shard.in_flight, r == rank);
  join_sizes(pieces, learners);

  // The data is written first, then its checksums are taken on all the run's threads while learner 0's
  // disk writes the data back (a sync on a thread of its own), then the checksums are written in a second
  // pass: attributes are created collectively, with the same values on every learner, so the gather of the
  // checksums must come between the data and the attributes. (Checksums taken on a second thread beside
  // HDF5's writes made those writes 3-4x slower on 2 cores, docs/performance.md.)
  ChunkedChecksums checksums;
  for (const Piece& p : pieces) checksums.add(p.data, (size_t)p.count * (p.is_float ? sizeof(float) : 1));
  fs::path tmp = path;
  tmp += ".tmp";
  std::optional<BackgroundSync> data_sync;
  {
    H5Check check{path};
    H5Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "file access properties"), H5Pclose);
    if (size > 1) check(H5Pset_fapl_mpio(fapl, learners, MPI_INFO_NULL), "MPI-IO file access");
    H5Handle file(check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "creating " + tmp.string()),
                  H5Fclose);
    for (const char* group : {"/weights", "/optimizer", "/optimizer/m", "/optimizer/v", "/reference", "/in_flight"}) {
      if ((std::string(group) == "/reference" && !reference) ||
          (std::string(group) == "/in_flight" && shard.in_flight.empty()))
        continue;
      H5Handle g(check(H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), std::string("group ") + group),
                 H5Gclose);
    }
    const std::deque<H5Handle> datasets = write_data(file, path, pieces);
    if (lead) data_sync.emplace(tmp);
    {
      std::vector<std::jthread> helpers = start_helpers(thread_count(), [&checksums] { checksums.work(); });
      checksums.work();
    }
    for (size_t i = 0; i < pieces.size(); ++i) pieces[i].crc = checksums.crc(i);
    join_checksums(pieces, learners);
    write_checksums(datasets, path, pieces);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flushing");
  }
  // Every learner's bytes are in the file once it is closed; learner 0 makes them durable and renames.
  std::string failure;
  if (lead) {
    try {
      const int early = data_sync->wait();
      COHORT_REQUIRE(early == 0, "fsync of " << tmp.string() << " failed: " << std::strerror(early));
      fsync_path(tmp, false);
      std::error_code ec;
      fs::rename(tmp, path, ec);
      COHORT_REQUIRE(!ec, "checkpoint: renaming " << tmp.string() << " to " << path.string() << ": " << ec.message());
      fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path(), true);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  if (size > 1) {
    int failed = failure.empty() ? 0 : 1;
    MPI_Bcast(&failed, 1, MPI_INT, 0, learners);
    COHORT_REQUIRE(!failed,
                   failure.empty() ? "checkpoint " + path.string() + ": learner 0 could not publish it" : failure);
  }
  COHORT_REQUIRE(failure.empty(), failure);
}

CheckpointContents read_checkpoint(const fs::path& path, CheckpointParts parts) {
  H5Handle file = open_for_reading(path);
  CheckpointContents c;
  nlohmann::json state;
  bool ours = false;
  try {
    // value() throws for a state that is not an object, or whose fields have other types.
    state = nlohmann::json::parse(read_text(file, path, "/state.json"));
    ours = state.value("format", "") == "cohort-checkpoint" && state.value("format_version", 0) == 1;
  } catch (const nlohmann::json::exception& e) {
    COHORT_REQUIRE(false, "checkpoint " << path.string() << ": /state.json: " << e.what());
  }
  COHORT_REQUIRE(ours, "checkpoint " << path.string() << ": not a cohort checkpoint of format version 1");
  nlohmann::json model_json;
  bool in_flight = false, has_reference = false;
  try {
    model_json = nlohmann::json::parse(read_text(file, path, "/model_config.json"));
    c.state.step = state.at("step").get<int64_t>();
    c.state.optimizer_steps = state.at("optimizer_steps").get<int64_t>();
    c.state.learners = state.value("learners", int64_t(1));
    c.state.data_cursor = state.at("data_cursor");
    c.state.extra = state.value("extra", nlohmann::json::object());
    in_flight = state.value("in_flight", false);
    has_reference = state.value("has_reference", false);
  } catch (const nlohmann::json::exception& e) {
    COHORT_REQUIRE(false, "checkpoint " << path.string() << ": /state.json: " << e.what());
  }
  COHORT_REQUIRE(
      c.state.step >= 0 && c.state.optimizer_steps >= 0 && c.state.learners >= 1 && c.state.learners <= 65536,
      "checkpoint " << path.string() << ": /state.json: step " << c.state.step << ", optimizer steps "
                    << c.state.optimizer_steps << ", learners " << c.state.learners << " are out of range");
  c.model_config = model_config_from(model_json, path);
  c.config_yaml = read_text(file, path, "/config.yaml");
  if (in_flight)
    for (int64_t r = 0; r < c.state.learners; ++r)
      c.state.in_flight.push_back(read_text(file, path, "/in_flight/learner_" + std::to_string(r)));
  if (parts == CheckpointParts::metadata) return c;
  const std::vector<ParameterInfo> layout = parameter_layout(c.model_config);
  c.weights = read_tensors(file, path, "/weights", layout);
  if (parts == CheckpointParts::weights) return c;
  c.adam_m = read_tensors(file, path, "/optimizer/m", layout);
  c.adam_v = read_tensors(file, path, "/optimizer/v", layout);
  if (has_reference) c.reference = read_tensors(file, path, "/reference", layout);
  return c;
}

std::vector<CheckpointDataset> list_checkpoint(const fs::path& path) {
  H5Handle file = open_for_reading(path);
  std::vector<std::string> names;
  H5Check check{path};
  check(H5Ovisit2(
            file, H5_INDEX_NAME, H5_ITER_NATIVE,
            [](hid_t, const char* name, const H5O_info_t* info, void* out) -> herr_t {
              if (info->type == H5O_TYPE_DATASET) static_cast<std::vector<std::string>*>(out)->push_back(name);
              return 0;
            },
            &names, H5O_INFO_BASIC),
        "listing datasets");
  std::vector<CheckpointDataset> out;
  for (const std::string& name : names) {
    CheckpointDataset d;
    d.name = "/" + name;
    H5Handle ds(check(H5Dopen2(file, d.name.c_str(), H5P_DEFAULT), "opening " + d.name), H5Dclose);
    H5Handle type(check(H5Dget_type(ds), "type of " + d.name), H5Tclose);
    bool is_float = H5Tget_class(type) == H5T_FLOAT;
    d.dtype = is_float ? "f32" : "u8";
    try {
      std::vector<hsize_t> dims;
      if (is_float) {
        read_dataset<float>(file, path, d.name, H5T_NATIVE_FLOAT, H5T_FLOAT, &dims, &d.actual_crc32);
      } else {
        read_dataset<uint8_t>(file, path, d.name, H5T_NATIVE_UINT8, H5T_INTEGER, &dims, &d.actual_crc32);
      }
      d.shape.assign(dims.begin(), dims.end());
    } catch (const Error& e) {
      d.dtype += " (" + std::string(e.what()) + ")";
    }
    H5Handle attr(check(H5Aopen(ds, "crc32", H5P_DEFAULT), "crc32 of " + d.name), H5Aclose);
    check(H5Aread(attr, H5T_NATIVE_UINT32, &d.stored_crc32), "crc32 of " + d.name);
    out.push_back(std::move(d));
  }
  return out;
}

std::unique_ptr<Transformer> load_model_from(const fs::path& path) {
  if (path.extension() == ".h5") {
    CheckpointContents c = read_checkpoint(path, CheckpointParts::weights);
    auto model = std::make_unique<Transformer>(c.model_config);
    model->weights() = std::move(c.weights);
    return model;
  }
  if (path.extension() == ".gguf") return load_gguf_model(path.string());
  COHORT_REQUIRE(fs::is_directory(path), "'" << path.string()
                                             << "' is neither a checkpoint (.h5), a GGUF file (.gguf) nor a model "
                                                "directory (config.json + model.safetensors)");
  return load_model_directory(path);
}

fs::path checkpoint_path(const fs::path& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "step_%08lld.h5", (long long)step);
  return dir / name;
}

fs::path latest_checkpoint(const fs::path& dir) {
  std::ifstream in(dir / "latest");
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) return {};
  COHORT_REQUIRE(name.find('/') == std::string::npos,
                 dir.string() << "/latest names '" << name << "', not a checkpoint in that directory");
  return dir / name;
}

void publish_checkpoint(const fs::path& dir, const fs::path& written, int64_t keep) {
  fs::path tmp = dir / "latest.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << written.filename().string() << "\n";
    out.flush();
    COHORT_REQUIRE(out.good(), "cannot write " << tmp.string());
  }
  fsync_path(tmp, false);
  std::error_code ec;
  fs::rename(tmp, dir / "latest", ec);
  COHORT_REQUIRE(!ec, "cannot publish " << (dir / "latest").string() << ": " << ec.message());
  fsync_path(dir, true);
  // Keep the newest `keep` (the one just published among them); step names sort by step.
  std::vector<fs::path> all;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && e.path().extension() == ".h5") all.push_back(e.path());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + (size_t)std::max<int64_t>(1, keep) < all.size(); ++i)
    if (all[i] != written) fs::remove(all[i], ec);
}

namespace {
void flatten(const YAML::Node& node, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node)
      flatten(kv.second, prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>(), out);
  } else {
    YAML::Emitter e;
    e << YAML::Flow << node;
    out[prefix] = e.c_str();
  }
}
}  // namespace

std::map<std::string, std::string> flat_config(const std::string& yaml) {
  std::map<std::string, std::string> out;
  flatten(YAML::Load(yaml), "", out);
  return out;
}

std::vector<std::string> config_differences(const std::string& saved_yaml, const std::string& current_yaml) {
  static const std::set<std::string> may_change = {"train.steps",
                                                   "train.eval_every",
                                                   "train.eval_prompts",
                                                   "train.checkpoint_every",
                                                   "train.keep_checkpoints",
                                                   "train.resume",
                                                   "train.log_rollouts",
                                                   "train.report_every",
                                                   "run.threads",
                                                   "run.name",
                                                   "run.dir",
                                                   "distributed.learners",
                                                   "distributed.rollout_workers",
                                                   "distributed.colocated",
                                                   "distributed.bucket_mb",
                                                   "distributed.timeout_s"};
  const std::map<std::string, std::string> a = flat_config(saved_yaml), b = flat_config(current_yaml);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<std::string> out;
  for (const std::string& k : keys) {
    // Where rewards run (servers, tokens, workers, timeouts) is operations, not the run's definition:
    // a resumed run may reach its reward servers at new addresses.
    if (may_change.count(k) || k.rfind("reward.", 0) == 0) continue;
    auto x = a.find(k), y = b.find(k);
    std::string va = x == a.end() ? "(absent)" : x->second, vb = y == b.end() ? "(absent)" : y->second;
    if (va != vb) out.push_back(k + ": " + va + " in the checkpoint, " + vb + " now");
  }
  return out;
}

}  // namespace cohort::trainer
