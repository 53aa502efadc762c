// Reading GGUF: the header parser, the ModelConfig a file implies, and tensor decoding.
// Everything here treats the file as hostile: each count, length and offset is checked
// against the bytes that remain before anything is allocated or read, with overflow-checked
// arithmetic. It needs no Transformer (the loader is in model/gguf.cpp), so the fuzz target
// tests/fuzz/fuzz_gguf.cpp links it with only config.cpp, byte_tokenizer.cpp and fp8.cpp.
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <sstream>
#include <unordered_set>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"
#include "model/gguf.h"

namespace cohort {

// Tensor data and metadata are copied to memory as they are; a big-endian host would need swaps.
static_assert(std::endian::native == std::endian::little, "GGUF files are little-endian; this host is not");

namespace {

constexpr uint64_t kMaxKeyBytes = 65535;      // the specification's limit on a key
constexpr uint64_t kMaxTensorNameBytes = 63;  // ggml's GGML_MAX_NAME (64) less its NUL
constexpr uint32_t kMaxDims = 4;              // ggml's GGML_MAX_DIMS
constexpr uint64_t kQ8BlockElements = 32;     // Q8_0: an f16 scale and 32 int8 values
constexpr uint64_t kQ8BlockBytes = 34;
constexpr uint64_t kChunkElements = 1u << 20;  // elements decoded per read (4 MB of floats)
// The smallest encodings: a metadata pair is a key length (8), a type (4) and at least one
// value byte; a tensor info is a name length (8), n_dims (4), a type (4) and an offset (8).
constexpr uint64_t kMinKeyValueBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 24;
// Limits on the hyperparameters, far above any released model, so that the sizes derived
// from them (rotary tables, products of dimensions) stay small and never overflow.
constexpr int64_t kMaxDimension = int64_t(1) << 24;
constexpr int64_t kMaxRotaryTableElements = int64_t(1) << 28;  // context_length * head_dim

const char* value_type_name(uint32_t type) {
  static const char* const names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  return type < std::size(names) ? names[type] : "unknown";
}

// Bytes per element of a metadata type inside an array; strings take at least their length.
uint64_t value_type_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::uint8:
    case GgufValueType::int8:
    case GgufValueType::boolean:
      return 1;
    case GgufValueType::uint16:
    case GgufValueType::int16:
      return 2;
    case GgufValueType::uint32:
    case GgufValueType::int32:
    case GgufValueType::float32:
      return 4;
    case GgufValueType::uint64:
    case GgufValueType::int64:
    case GgufValueType::float64:
    case GgufValueType::string:
      return 8;
    case GgufValueType::array:
      return 0;
  }
  return 0;
}

// ggml's names for its tensor types, so an error can say "Q4_K" rather than "12".
std::string ggml_type_name(uint32_t type) {
  static const char* const names[] = {
      "F32",     "F16",   "Q4_0",   "Q4_1",  "Q4_2 (removed)", "Q4_3 (removed)", "Q5_0", "Q5_1",    "Q8_0",
      "Q8_1",    "Q2_K",  "Q3_K",   "Q4_K",  "Q5_K",           "Q6_K",           "Q8_K", "IQ2_XXS", "IQ2_XS",
      "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S",          "IQ4_XS",         "I8",   "I16",     "I32",
      "I64",     "F64",   "IQ1_M",  "BF16"};
  if (type < std::size(names)) return names[type];
  return "unknown type " + std::to_string(type);
}

std::string dims_string(const std::vector<uint64_t>& dims) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << "]";
  return s.str();
}

std::string where_of(const std::string& path) {
  return "GGUF file '" + path + "'";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Byte sources

class GgufSource {
 public:
  virtual ~GgufSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset; the caller has checked offset + n <= size(), and this
  // checks again so that no caller's slip can read out of bounds.
  virtual void read(uint64_t offset, void* destination, uint64_t n, const std::string& what) = 0;
  const std::string& name() const { return name_; }

 protected:
  explicit GgufSource(std::string name) : name_(std::move(name)) {}
  void check_range(uint64_t offset, uint64_t n, const std::string& what) const {
    COHORT_REQUIRE(offset <= size() && n <= size() - offset,
                   where_of(name_) << ": reading " << what << " at byte " << offset << " (" << n
                                   << " bytes) runs past the end of the " << size() << "-byte file");
  }

 private:
  std::string name_;
};

namespace {

class MemorySource final : public GgufSource {
 public:
  MemorySource(std::span<const uint8_t> bytes, const std::string& name) : GgufSource(name), bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, void* destination, uint64_t n, const std::string& what) override {
    check_range(offset, n, what);
    if (n > 0) std::memcpy(destination, bytes_.data() + offset, (size_t)n);
  }

 private:
  std::span<const uint8_t> bytes_;
};

class FileSource final : public GgufSource {
 public:
  explicit FileSource(const std::string& path) : GgufSource(path), file_(nullptr, &std::fclose) {
    std::error_code ec;
    COHORT_REQUIRE(!std::filesystem::is_directory(path, ec), where_of(path) << " is a directory, expected a file");
    file_.reset(std::fopen(path.c_str(), "rb"));
    COHORT_REQUIRE(file_ != nullptr, "cannot open " << where_of(path) << ": " << std::strerror(errno));
    struct stat st {};
    COHORT_REQUIRE(::fstat(::fileno(file_.get()), &st) == 0,
                   "cannot stat " << where_of(path) << ": " << std::strerror(errno));
    size_ = (uint64_t)st.st_size;
  }
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* destination, uint64_t n, const std::string& what) override {
    check_range(offset, n, what);
    if (n == 0) return;
    COHORT_REQUIRE(
        ::fseeko(file_.get(), (off_t)offset, SEEK_SET) == 0,
        where_of(name()) << ": cannot seek to byte " << offset << " to read " << what << ": " << std::strerror(errno));
    size_t got = std::fread(destination, 1, (size_t)n, file_.get());
    COHORT_REQUIRE(got == (size_t)n, where_of(name()) << ": reading " << what << " at byte " << offset << " got " << got
                                                      << " of " << n << " bytes (was the file truncated while open?)");
  }

 private:
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
  uint64_t size_ = 0;
};

// Reads the header front to back; every read is checked against the bytes that remain.
class Cursor {
 public:
  Cursor(GgufSource& source) : source_(source), where_(where_of(source.name())) {}
  const std::string& where() const { return where_; }
  uint64_t position() const { return position_; }
  uint64_t remaining() const { return source_.size() - position_; }

  void need(uint64_t n, const std::string& what) const {
    COHORT_REQUIRE(n <= remaining(), where_ << " is truncated: " << what << " at byte " << position_ << " needs " << n
                                            << " bytes, but the file ends after " << remaining() << " more");
  }
  void bytes(void* destination, uint64_t n, const std::string& what) {
    need(n, what);
    source_.read(position_, destination, n, what);
    position_ += n;
  }
  template <typename T>
  T scalar(const std::string& what) {
    T value;
    bytes(&value, sizeof(T), what);
    return value;
  }
  std::string string(const std::string& what, uint64_t max_bytes) {
    const uint64_t length = scalar<uint64_t>("the length of " + what);
    COHORT_REQUIRE(length <= max_bytes, where_ << ": " << what << " at byte " << position_ - 8 << " claims " << length
                                               << " bytes, more than the limit of " << max_bytes << " (corrupt file?)");
    need(length, what);  // before the allocation
    std::string text((size_t)length, '\0');
    bytes(text.data(), length, what);
    return text;
  }

 private:
  GgufSource& source_;
  std::string where_;
  uint64_t position_ = 0;
};

GgufValue read_scalar(Cursor& cursor, GgufValueType type, const std::string& what) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::uint8:
      v.value = (uint64_t)cursor.scalar<uint8_t>(what);
      break;
    case GgufValueType::int8:
      v.value = (int64_t)cursor.scalar<int8_t>(what);
      break;
    case GgufValueType::uint16:
      v.value = (uint64_t)cursor.scalar<uint16_t>(what);
      break;
    case GgufValueType::int16:
      v.value = (int64_t)cursor.scalar<int16_t>(what);
      break;
    case GgufValueType::uint32:
      v.value = (uint64_t)cursor.scalar<uint32_t>(what);
      break;
    case GgufValueType::int32:
      v.value = (int64_t)cursor.scalar<int32_t>(what);
      break;
    case GgufValueType::uint64:
      v.value = cursor.scalar<uint64_t>(what);
      break;
    case GgufValueType::int64:
      v.value = cursor.scalar<int64_t>(what);
      break;
    case GgufValueType::float32:
      v.value = (double)cursor.scalar<float>(what);
      break;
    case GgufValueType::float64:
      v.value = cursor.scalar<double>(what);
      break;
    case GgufValueType::boolean: {
      const uint8_t b = cursor.scalar<uint8_t>(what);
      COHORT_REQUIRE(b <= 1, cursor.where() << ": " << what << " is a bool stored as " << (int)b << ", not 0 or 1");
      v.value = b == 1;
      break;
    }
    case GgufValueType::string:
      v.value = cursor.string(what, cursor.remaining());
      break;
    case GgufValueType::array:
      COHORT_REQUIRE(false, cursor.where() << ": " << what << ": arrays of arrays are not supported");
  }
  return v;
}

GgufValueType read_value_type(Cursor& cursor, const std::string& what) {
  const uint32_t type = cursor.scalar<uint32_t>("the type of " + what);
  COHORT_REQUIRE(type <= (uint32_t)GgufValueType::float64,
                 cursor.where() << ": " << what << " has unknown value type " << type << " (GGUF defines 0..12)");
  return (GgufValueType)type;
}

GgufValue read_value(Cursor& cursor, const std::string& what) {
  const GgufValueType type = read_value_type(cursor, what);
  if (type != GgufValueType::array) return read_scalar(cursor, type, what);

  GgufArray array;
  array.element_type = read_value_type(cursor, "the elements of " + what);
  COHORT_REQUIRE(array.element_type != GgufValueType::array,
                 cursor.where() << ": " << what << " is an array of arrays, which is not supported");
  array.size = cursor.scalar<uint64_t>("the length of " + what);
  const uint64_t element_bytes = value_type_bytes(array.element_type);
  // Every element takes at least element_bytes of the file: a length the rest of the file
  // cannot hold is refused before anything is reserved.
  COHORT_REQUIRE(array.size <= cursor.remaining() / element_bytes,
                 cursor.where() << ": " << what << " claims " << array.size << " elements of "
                                << value_type_name((uint32_t)array.element_type) << " but only " << cursor.remaining()
                                << " bytes of the file remain (truncated or corrupt)");
  if (array.element_type == GgufValueType::string) {
    array.strings.reserve((size_t)array.size);
    for (uint64_t i = 0; i < array.size; ++i)
      array.strings.push_back(cursor.string(what + " element " + std::to_string(i), cursor.remaining()));
  } else {
    array.bytes.resize((size_t)(array.size * element_bytes));
    cursor.bytes(array.bytes.data(), array.bytes.size(), what);
  }
  GgufValue v;
  v.type = GgufValueType::array;
  v.value = std::move(array);
  return v;
}

// Bytes a tensor of `elements` (first dimension dim0) takes in ggml type `type`; throws for
// a type this reader cannot decode or a Q8_0 row that is not a whole number of blocks.
uint64_t tensor_bytes(const std::string& where, const std::string& name, uint32_t type, uint64_t dim0,
                      uint64_t elements) {
  uint64_t bytes = 0;
  bool overflow = false;
  switch (type) {
    case (uint32_t)GgmlType::f32:
      overflow = __builtin_mul_overflow(elements, uint64_t(4), &bytes);
      break;
    case (uint32_t)GgmlType::f16:
    case (uint32_t)GgmlType::bf16:
      overflow = __builtin_mul_overflow(elements, uint64_t(2), &bytes);
      break;
    case (uint32_t)GgmlType::q8_0:
      COHORT_REQUIRE(dim0 % kQ8BlockElements == 0, where << ", tensor '" << name << "': Q8_0 rows of " << dim0
                                                         << " elements are not a whole number of 32-element blocks");
      overflow = __builtin_mul_overflow(elements / kQ8BlockElements, kQ8BlockBytes, &bytes);
      break;
    default:
      COHORT_REQUIRE(false, where << ", tensor '" << name << "' has ggml type " << type << " (" << ggml_type_name(type)
                                  << "), which cohort cannot decode (supported: F32, F16, BF16, Q8_0)");
  }
  COHORT_REQUIRE(!overflow,
                 where << ", tensor '" << name << "': " << elements << " elements take more bytes than fit in 64 bits");
  return bytes;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The header

namespace {

GgufFile parse_header(GgufSource& source) {
  Cursor cursor(source);
  const std::string& where = cursor.where();
  GgufFile file;
  file.path = source.name();
  file.file_size = source.size();
  COHORT_REQUIRE(source.size() >= 24,
                 where << " is truncated: " << source.size() << " bytes, shorter than the 24-byte GGUF header");
  char magic[4];
  cursor.bytes(magic, 4, "the magic");
  COHORT_REQUIRE(std::memcmp(magic, "GGUF", 4) == 0,
                 where << " is not a GGUF file: it starts with bytes " << std::hex << (int)(uint8_t)magic[0] << " "
                       << (int)(uint8_t)magic[1] << " " << (int)(uint8_t)magic[2] << " " << (int)(uint8_t)magic[3]
                       << std::dec << ", not the magic \"GGUF\"");
  file.version = cursor.scalar<uint32_t>("the version");
  // Versions 2 and 3 lay a little-endian file out identically (3 added big-endian files,
  // which announce themselves as a byte-swapped version); version 1 had 32-bit counts.
  COHORT_REQUIRE(file.version == 2 || file.version == 3, where << ": unsupported GGUF version " << file.version
                                                               << (file.version > 0xffff ? " (a big-endian file?)" : "")
                                                               << "; cohort reads versions 2 and 3");
  const uint64_t tensor_count = cursor.scalar<uint64_t>("the tensor count");
  const uint64_t kv_count = cursor.scalar<uint64_t>("the metadata count");
  COHORT_REQUIRE(kv_count <= cursor.remaining() / kMinKeyValueBytes,
                 where << ": the header claims " << kv_count << " metadata entries, more than the "
                       << cursor.remaining() << " remaining bytes can hold (truncated or corrupt)");
  COHORT_REQUIRE(tensor_count <= cursor.remaining() / kMinTensorInfoBytes,
                 where << ": the header claims " << tensor_count << " tensors, more than the " << cursor.remaining()
                       << " remaining bytes can hold (truncated or corrupt)");

  file.metadata.reserve((size_t)kv_count);
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = cursor.string("metadata key #" + std::to_string(i), kMaxKeyBytes);
    COHORT_REQUIRE(!key.empty(), where << ": metadata key #" << i << " is empty");
    COHORT_REQUIRE(!file.metadata_index.count(key), where << ": duplicate metadata key '" << key << "'");
    GgufValue value = read_value(cursor, "metadata key '" + key + "'");
    file.metadata_index[key] = file.metadata.size();
    file.metadata.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* alignment = file.find("general.alignment")) {
    COHORT_REQUIRE(alignment->type == GgufValueType::uint32,
                   where << ": general.alignment must be a uint32, got " << value_type_name((uint32_t)alignment->type));
    file.alignment = std::get<uint64_t>(alignment->value);
    COHORT_REQUIRE(file.alignment > 0 && (file.alignment & (file.alignment - 1)) == 0,
                   where << ": general.alignment " << file.alignment << " is not a power of two");
  }

  file.tensors.reserve((size_t)tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info;
    info.name = cursor.string("the name of tensor #" + std::to_string(i), kMaxTensorNameBytes);
    COHORT_REQUIRE(!info.name.empty(), where << ": tensor #" << i << " has an empty name");
    COHORT_REQUIRE(!file.tensor_index.count(info.name), where << ": duplicate tensor name '" << info.name << "'");
    const std::string tensor = "tensor '" + info.name + "'";
    const uint32_t n_dims = cursor.scalar<uint32_t>("the dimension count of " + tensor);
    COHORT_REQUIRE(n_dims <= kMaxDims,
                   where << ", " << tensor << " has " << n_dims << " dimensions; ggml allows at most " << kMaxDims);
    info.elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = cursor.scalar<uint64_t>("a dimension of " + tensor);
      info.dims.push_back(dim);
      COHORT_REQUIRE(dim <= (uint64_t)std::numeric_limits<int64_t>::max() &&
                         !__builtin_mul_overflow(info.elements, dim, &info.elements) &&
                         info.elements <= (uint64_t)std::numeric_limits<int64_t>::max(),
                     where << ", " << tensor << ": dims " << dims_string(info.dims)
                           << "... overflow: more elements than fit in 64 bits");
    }
    info.type = cursor.scalar<uint32_t>("the type of " + tensor);
    info.bytes = tensor_bytes(where, info.name, info.type, n_dims > 0 ? info.dims[0] : 1, info.elements);
    COHORT_REQUIRE(!(info.type == (uint32_t)GgmlType::q8_0 && n_dims == 0),
                   where << ", " << tensor << ": a Q8_0 tensor needs at least one dimension");
    info.offset = cursor.scalar<uint64_t>("the data offset of " + tensor);
    COHORT_REQUIRE(info.offset % file.alignment == 0, where << ", " << tensor << ": data offset " << info.offset
                                                            << " is not a multiple of the alignment "
                                                            << file.alignment);
    file.tensor_index[info.name] = file.tensors.size();
    file.tensors.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment after the header (the
  // alignment is at most 2^32 and the position at most the file size: no overflow).
  const uint64_t header_end = cursor.position();
  file.data_offset = (header_end + file.alignment - 1) / file.alignment * file.alignment;
  if (!file.tensors.empty()) {
    COHORT_REQUIRE(file.data_offset <= file.file_size, where << " is truncated: the data section would start at byte "
                                                             << file.data_offset << ", beyond the end of the "
                                                             << file.file_size << "-byte file");
  }
  const uint64_t data_bytes = file.data_offset <= file.file_size ? file.file_size - file.data_offset : 0;
  for (const GgufTensorInfo& info : file.tensors) {
    COHORT_REQUIRE(info.offset <= data_bytes && info.bytes <= data_bytes - info.offset,
                   where << ", tensor '" << info.name << "': its data [" << info.offset << ", "
                         << (info.offset + std::min(info.bytes, ~uint64_t(0) - info.offset)) << ") of type "
                         << ggml_type_name(info.type) << " and dims " << dims_string(info.dims)
                         << " lies outside the data section of " << data_bytes << " bytes (truncated or corrupt)");
  }
  std::vector<size_t> order(file.tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const GgufTensorInfo &x = file.tensors[a], &y = file.tensors[b];
    return x.offset != y.offset ? x.offset < y.offset : x.bytes < y.bytes;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo &previous = file.tensors[order[i - 1]], &current = file.tensors[order[i]];
    COHORT_REQUIRE(current.offset >= previous.offset + previous.bytes,
                   where << ": the data of tensors '" << previous.name << "' [" << previous.offset << ", "
                         << previous.offset + previous.bytes << ") and '" << current.name << "' [" << current.offset
                         << ", " << current.offset + current.bytes << ") overlap");
  }
  return file;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Values and look-ups

bool GgufValue::is_integer() const {
  return std::holds_alternative<uint64_t>(value) || std::holds_alternative<int64_t>(value);
}

int64_t GgufValue::integer_element(uint64_t i) const {
  const GgufArray* array = std::get_if<GgufArray>(&value);
  COHORT_REQUIRE(array != nullptr, "GGUF value is a " << value_type_name((uint32_t)type) << ", not an array");
  COHORT_REQUIRE(i < array->size, "GGUF array index " << i << " is out of range (size " << array->size << ")");
  const uint8_t* p = array->bytes.data() + i * value_type_bytes(array->element_type);
  auto load = [p](auto zero) {
    decltype(zero) x;
    std::memcpy(&x, p, sizeof(x));
    return x;
  };
  switch (array->element_type) {
    case GgufValueType::uint8:
      return load(uint8_t(0));
    case GgufValueType::int8:
      return load(int8_t(0));
    case GgufValueType::uint16:
      return load(uint16_t(0));
    case GgufValueType::int16:
      return load(int16_t(0));
    case GgufValueType::uint32:
      return load(uint32_t(0));
    case GgufValueType::int32:
      return load(int32_t(0));
    case GgufValueType::int64:
      return load(int64_t(0));
    case GgufValueType::uint64: {
      const uint64_t x = load(uint64_t(0));
      COHORT_REQUIRE(x <= (uint64_t)std::numeric_limits<int64_t>::max(),
                     "GGUF array element " << i << " = " << x << " does not fit int64");
      return (int64_t)x;
    }
    default:
      COHORT_REQUIRE(false,
                     "GGUF array of " << value_type_name((uint32_t)array->element_type) << " has no integer elements");
  }
  return 0;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_index.find(key);
  return it == metadata_index.end() ? nullptr : &metadata[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index.find(name);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

namespace {
const GgufValue& require_key(const GgufFile& file, const std::string& key) {
  const GgufValue* v = file.find(key);
  COHORT_REQUIRE(v != nullptr, where_of(file.path) << " has no metadata key '" << key << "'");
  return *v;
}
[[noreturn]] void wrong_type(const GgufFile& file, const std::string& key, const GgufValue& v, const char* expected) {
  COHORT_REQUIRE(false, where_of(file.path) << ": metadata key '" << key << "' is a "
                                            << value_type_name((uint32_t)v.type) << ", expected " << expected);
  std::abort();  // unreachable: COHORT_REQUIRE(false) throws
}
}  // namespace

int64_t GgufFile::get_integer(const std::string& key) const {
  const GgufValue& v = require_key(*this, key);
  if (const int64_t* i = std::get_if<int64_t>(&v.value)) return *i;
  if (const uint64_t* u = std::get_if<uint64_t>(&v.value)) {
    COHORT_REQUIRE(*u <= (uint64_t)std::numeric_limits<int64_t>::max(),
                   where_of(path) << ": metadata key '" << key << "' = " << *u << " does not fit int64");
    return (int64_t)*u;
  }
  wrong_type(*this, key, v, "an integer");
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require_key(*this, key);
  if (const double* f = std::get_if<double>(&v.value)) return *f;
  wrong_type(*this, key, v, "a float32 or float64");
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require_key(*this, key);
  if (const std::string* s = std::get_if<std::string>(&v.value)) return *s;
  wrong_type(*this, key, v, "a string");
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = require_key(*this, key);
  if (const bool* b = std::get_if<bool>(&v.value)) return *b;
  wrong_type(*this, key, v, "a bool");
}

const GgufArray& GgufFile::get_array(const std::string& key) const {
  const GgufValue& v = require_key(*this, key);
  if (const GgufArray* a = std::get_if<GgufArray>(&v.value)) return *a;
  wrong_type(*this, key, v, "an array");
}

// ---------------------------------------------------------------------------------------
// Reader and tensor decoding

GgufReader::GgufReader(const std::string& path) : source_(std::make_unique<FileSource>(path)) {
  file_ = parse_header(*source_);
}

GgufReader::GgufReader(std::span<const uint8_t> bytes, const std::string& name)
    : source_(std::make_unique<MemorySource>(bytes, name)) {
  file_ = parse_header(*source_);
}

GgufReader::~GgufReader() = default;

GgufFile read_gguf_header(const std::string& path) {
  FileSource source(path);
  return parse_header(source);
}

GgufFile parse_gguf(std::span<const uint8_t> bytes, const std::string& name) {
  MemorySource source(bytes, name);
  return parse_header(source);
}

void GgufReader::read_tensor(const GgufTensorInfo& tensor, float* out) {
  const GgufTensorInfo* known = file_.find_tensor(tensor.name);
  COHORT_REQUIRE(known != nullptr && known->offset == tensor.offset && known->bytes == tensor.bytes,
                 where_of(file_.path) << ": tensor '" << tensor.name << "' is not one of this file's tensors");
  const uint64_t begin = file_.data_offset + tensor.offset;
  const std::string what = "tensor '" + tensor.name + "'";
  switch (tensor.type) {
    case (uint32_t)GgmlType::f32:
      source_->read(begin, out, tensor.bytes, what);
      return;
    case (uint32_t)GgmlType::f16:
    case (uint32_t)GgmlType::bf16: {
      const bool bf16 = tensor.type == (uint32_t)GgmlType::bf16;
      std::vector<uint16_t> chunk((size_t)std::min<uint64_t>(tensor.elements, kChunkElements));
      for (uint64_t done = 0; done < tensor.elements;) {
        const uint64_t n = std::min<uint64_t>(tensor.elements - done, kChunkElements);
        source_->read(begin + done * 2, chunk.data(), n * 2, what);
        for (uint64_t i = 0; i < n; ++i) out[done + i] = bf16 ? bf16_to_float(chunk[i]) : half_to_float(chunk[i]);
        done += n;
      }
      return;
    }
    case (uint32_t)GgmlType::q8_0: {
      const uint64_t blocks = tensor.elements / kQ8BlockElements, chunk_blocks = kChunkElements / kQ8BlockElements;
      std::vector<uint8_t> chunk((size_t)(std::min(blocks, chunk_blocks) * kQ8BlockBytes));
      for (uint64_t done = 0; done < blocks;) {
        const uint64_t n = std::min(blocks - done, chunk_blocks);
        source_->read(begin + done * kQ8BlockBytes, chunk.data(), n * kQ8BlockBytes, what);
        for (uint64_t b = 0; b < n; ++b) {
          const uint8_t* block = chunk.data() + b * kQ8BlockBytes;
          uint16_t scale_bits;
          std::memcpy(&scale_bits, block, 2);
          const float scale = half_to_float(scale_bits);
          float* y = out + (done + b) * kQ8BlockElements;
          for (uint64_t i = 0; i < kQ8BlockElements; ++i) y[i] = (float)(int8_t)block[2 + i] * scale;
        }
        done += n;
      }
      return;
    }
    default:
      // The parser accepted only the types above.
      COHORT_REQUIRE(false, where_of(file_.path)
                                << ": tensor '" << tensor.name << "' has undecodable type " << tensor.type);
  }
}

std::vector<float> GgufReader::read_tensor(const std::string& name) {
  const GgufTensorInfo* tensor = file_.find_tensor(name);
  COHORT_REQUIRE(tensor != nullptr, where_of(file_.path) << " has no tensor '" << name << "'");
  std::vector<float> values((size_t)tensor->elements);
  read_tensor(*tensor, values.data());
  return values;
}

// ---------------------------------------------------------------------------------------
// Names and the model config

std::string gguf_tensor_name(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  static const std::pair<const char*, const char*> per_layer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  const std::string prefix = "model.layers.";
  if (hf_name.starts_with(prefix)) {
    const size_t dot = hf_name.find('.', prefix.size());
    const std::string layer = hf_name.substr(prefix.size(), dot == std::string::npos ? 0 : dot - prefix.size());
    if (dot != std::string::npos && !layer.empty() && std::all_of(layer.begin(), layer.end(), ::isdigit)) {
      const std::string rest = hf_name.substr(dot + 1);
      for (const auto& [hf, gguf] : per_layer)
        if (rest == hf) return "blk." + layer + "." + gguf;
    }
  }
  COHORT_REQUIRE(false, "parameter '" << hf_name << "' has no GGUF tensor name");
  return {};
}

ModelConfig gguf_model_config(const GgufFile& file) {
  const std::string where = where_of(file.path);
  const std::string& arch = file.get_string("general.architecture");
  COHORT_REQUIRE(
      arch == "llama" || arch == "qwen2" || arch == "qwen3",
      where << ": general.architecture '" << arch << "' is not supported (cohort loads llama, qwen2 and qwen3)");
  auto key = [&](const char* suffix) { return arch + "." + suffix; };
  auto has = [&](const char* suffix) { return file.find(key(suffix)) != nullptr; };
  auto dimension = [&](const char* suffix) {
    const std::string k = key(suffix);
    const int64_t v = file.get_integer(k);
    COHORT_REQUIRE(v >= 1 && v <= kMaxDimension,
                   where << ": metadata key '" << k << "' = " << v << " is outside [1, " << kMaxDimension << "]");
    return v;
  };
  auto positive_float = [&](const char* suffix) {
    const std::string k = key(suffix);
    const double v = file.get_float(k);
    COHORT_REQUIRE(std::isfinite(v) && v > 0,
                   where << ": metadata key '" << k << "' = " << v << " must be positive and finite");
    return v;
  };

  ModelConfig c;
  c.name = file.find("general.name") ? file.get_string("general.name") : std::string("gguf");
  c.hidden = dimension("embedding_length");
  c.layers = dimension("block_count");
  c.heads = dimension("attention.head_count");
  c.kv_heads = has("attention.head_count_kv") ? dimension("attention.head_count_kv") : c.heads;
  c.intermediate = dimension("feed_forward_length");
  c.max_seq_len = dimension("context_length");
  c.rms_eps = positive_float("attention.layer_norm_rms_epsilon");
  c.rope_theta = has("rope.freq_base") ? positive_float("rope.freq_base") : 10000.0;

  int64_t head_dim = 0;
  if (has("attention.key_length")) {
    head_dim = dimension("attention.key_length");
  } else {
    COHORT_REQUIRE(c.hidden % c.heads == 0, where << ": " << key("embedding_length") << " (" << c.hidden
                                                  << ") is not divisible by " << key("attention.head_count") << " ("
                                                  << c.heads << ") and " << key("attention.key_length")
                                                  << " is not given");
    head_dim = c.hidden / c.heads;
  }
  if (has("attention.value_length")) {
    COHORT_REQUIRE(dimension("attention.value_length") == head_dim, where << ": " << key("attention.value_length")
                                                                          << " differs from the key length " << head_dim
                                                                          << "; cohort's attention needs them equal");
  }
  if (has("rope.dimension_count")) {
    COHORT_REQUIRE(dimension("rope.dimension_count") == head_dim,
                   where << ": " << key("rope.dimension_count") << " = "
                         << file.get_integer(key("rope.dimension_count"))
                         << " rotates part of each head; cohort rotates all " << head_dim << " dimensions");
  }
  if (has("rope.scaling.type")) {
    // llama.cpp's linear scaling multiplies positions by 1 / rope.scaling.factor, as Hugging Face's
    // linear rope_scaling does; its other types (yarn, longrope) cohort does not implement.
    const std::string& scaling = file.get_string(key("rope.scaling.type"));
    COHORT_REQUIRE(scaling == "none" || scaling == "linear",
                   where << ": " << key("rope.scaling.type") << " '" << scaling
                         << "' is not supported (cohort implements none and linear here)");
    if (scaling == "linear") {
      COHORT_REQUIRE(has("rope.scaling.factor"), where << ": " << key("rope.scaling.type") << " 'linear' needs "
                                                       << key("rope.scaling.factor") << ", which is missing");
      c.rope_scaling.type = RopeScaling::Type::linear;
      c.rope_scaling.factor = positive_float("rope.scaling.factor");
    }
  }
  COHORT_REQUIRE(c.max_seq_len * head_dim <= kMaxRotaryTableElements,
                 where << ": " << key("context_length") << " " << c.max_seq_len << " times head dim " << head_dim
                       << " exceeds " << kMaxRotaryTableElements << " (the rotary tables would not fit)");
  c.head_dim = head_dim * c.heads == c.hidden ? 0 : head_dim;

  // The vocabulary size is token_embd's second dimension; {arch}.vocab_size, where given,
  // must agree.
  const GgufTensorInfo* embedding = file.find_tensor("token_embd.weight");
  COHORT_REQUIRE(embedding != nullptr, where << " has no tensor 'token_embd.weight'");
  COHORT_REQUIRE(embedding->dims.size() == 2 && embedding->dims[0] == (uint64_t)c.hidden && embedding->dims[1] >= 1 &&
                     embedding->dims[1] < (uint64_t(1) << 31),
                 where << ", tensor 'token_embd.weight': dims " << dims_string(embedding->dims) << ", expected ["
                       << c.hidden << ", vocab]");
  c.vocab = (int64_t)embedding->dims[1];
  if (has("vocab_size")) {
    COHORT_REQUIRE(file.get_integer(key("vocab_size")) == c.vocab,
                   where << ": " << key("vocab_size") << " = " << file.get_integer(key("vocab_size"))
                         << " but token_embd.weight has " << c.vocab << " rows");
  }
  c.tie_embeddings = file.find_tensor("output.weight") == nullptr;
  c.qkv_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = arch == "qwen3";  // llama.cpp's qwen3 graph: q/k norm, no biases
  COHORT_REQUIRE(!(c.qk_norm && c.qkv_bias),
                 where << ": a qwen3 file with q/k/v biases (blk.0.attn_q.bias) is not supported (Qwen3 has none)");
  try {
    validate(c);
  } catch (const Error& e) {
    COHORT_REQUIRE(false, where << " describes an invalid model: " << e.what());
  }

  // Every layer has at least 9 tensors: refuse a layer count the tensor list cannot back
  // before walking it.
  const int64_t tensors_per_layer = c.qkv_bias ? 12 : c.qk_norm ? 11 : 9;
  COHORT_REQUIRE(c.layers <= (int64_t)file.tensors.size() / tensors_per_layer,
                 where << ": " << key("block_count") << " = " << c.layers << " needs at least "
                       << c.layers * tensors_per_layer << " tensors, but the file has " << file.tensors.size());

  // Each tensor the model needs, with the dims (fastest first) the config implies.
  const uint64_t C = c.hidden, I = c.intermediate, V = c.vocab, q_dim = c.heads * head_dim,
                 kv_dim = c.kv_heads * head_dim;
  std::unordered_set<std::string> expected;  // at most tensors_per_layer * layers + 3 names
  auto expect = [&](const std::string& name, std::vector<uint64_t> dims) {
    const GgufTensorInfo* t = file.find_tensor(name);
    COHORT_REQUIRE(t != nullptr, where << " has no tensor '" << name << "' (dims " << dims_string(dims) << ") that a "
                                       << arch << " model with these hyperparameters needs");
    COHORT_REQUIRE(t->dims == dims, where << ", tensor '" << name << "': dims " << dims_string(t->dims)
                                          << " in the file, but the hyperparameters imply " << dims_string(dims));
    expected.insert(name);
  };
  expect("token_embd.weight", {C, V});
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    expect(p + "attn_norm.weight", {C});
    expect(p + "attn_q.weight", {C, q_dim});
    expect(p + "attn_k.weight", {C, kv_dim});
    expect(p + "attn_v.weight", {C, kv_dim});
    if (c.qkv_bias) {
      expect(p + "attn_q.bias", {q_dim});
      expect(p + "attn_k.bias", {kv_dim});
      expect(p + "attn_v.bias", {kv_dim});
    }
    expect(p + "attn_output.weight", {q_dim, C});
    if (c.qk_norm) {
      expect(p + "attn_q_norm.weight", {(uint64_t)head_dim});
      expect(p + "attn_k_norm.weight", {(uint64_t)head_dim});
    }
    expect(p + "ffn_norm.weight", {C});
    expect(p + "ffn_gate.weight", {C, I});
    expect(p + "ffn_up.weight", {C, I});
    expect(p + "ffn_down.weight", {I, C});
  }
  expect("output_norm.weight", {C});
  if (!c.tie_embeddings) expect("output.weight", {C, V});
  if (expected.size() != file.tensors.size()) {
    // An unused tensor (rope_freqs, an output bias) would change what the model computes
    // in llama.cpp but not in cohort, so it is an error rather than ignored.
    for (const GgufTensorInfo& t : file.tensors)
      COHORT_REQUIRE(expected.count(t.name), where << ": unexpected tensor '" << t.name << "': a " << arch
                                                   << " model with these hyperparameters has no such parameter");
  }
  return c;
}

}  // namespace cohort
