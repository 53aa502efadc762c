// Reading and writing safetensors. The header is parsed and checked whole (dtypes, shapes,
// byte ranges against the file size, overlaps) before any tensor data is touched, with
// overflow-checked arithmetic, so a hostile or truncated file is an error, never a huge
// allocation or a read past the end. Data is converted in bounded chunks.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"
#include "model/atomic_file.h"

namespace cohort {
namespace {

// Tensor data is copied to and from memory as is; a big-endian host would need byte swaps.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; this host is not");

// The limit the reference implementation (huggingface/safetensors) puts on the header.
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;
// Elements converted per chunk when the file's dtype differs from f32 (4 MB of floats).
constexpr int64_t kChunkElements = int64_t(1) << 20;

// Bytes per element of every dtype safetensors defines; 0 for anything else.
int64_t dtype_bytes(const std::string& dtype) {
  static const std::unordered_map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},   {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

// A non-negative JSON integer that fits int64_t.
bool non_negative_integer(const nlohmann::json& v, int64_t& out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > (uint64_t)std::numeric_limits<int64_t>::max()) return false;
    out = (int64_t)u;
    return true;
  }
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return out >= 0;
  }
  return false;
}

class InputFile {
 public:
  explicit InputFile(const std::string& path) : path_(path), file_(nullptr, &std::fclose) {
    std::error_code ec;
    COHORT_REQUIRE(!std::filesystem::is_directory(path, ec),
                   "safetensors file '" << path << "' is a directory, expected a file");
    file_.reset(std::fopen(path.c_str(), "rb"));
    COHORT_REQUIRE(file_ != nullptr, "cannot open safetensors file '" << path << "': " << std::strerror(errno));
    struct stat st {};
    COHORT_REQUIRE(::fstat(::fileno(file_.get()), &st) == 0,
                   "cannot stat safetensors file '" << path << "': " << std::strerror(errno));
    size_ = (int64_t)st.st_size;
  }
  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }

  // Reads exactly `bytes` at `offset` straight into `destination` (pread: no stdio buffer, no copy);
  // the caller has checked the range against size().
  void read(int64_t offset, void* destination, int64_t bytes, const std::string& what) {
    const int fd = ::fileno(file_.get());
    int64_t got = 0;
    while (got < bytes) {
      const ssize_t n =
          ::pread(fd, static_cast<char*>(destination) + got, (size_t)(bytes - got), (off_t)(offset + got));
      if (n < 0 && errno == EINTR) continue;
      COHORT_REQUIRE(n > 0, "safetensors file '" << path_ << "': reading " << what << " at byte " << offset << " got "
                                                 << got << " of " << bytes << " bytes ("
                                                 << (n == 0 ? "unexpected end of file" : std::strerror(errno)) << ")");
      got += n;
    }
  }

 private:
  std::string path_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
  int64_t size_ = 0;
};

struct Header {
  std::vector<SafetensorsEntry> entries;  // sorted by begin
  std::map<std::string, std::string> metadata;
  int64_t data_start = 0;  // file offset of the data section
};

Header parse_header(InputFile& file) {
  const std::string where = "safetensors file '" + file.path() + "'";
  COHORT_REQUIRE(file.size() >= 8,
                 where << " is truncated: " << file.size() << " bytes, shorter than the 8-byte header length");
  uint8_t length_bytes[8];
  file.read(0, length_bytes, 8, "the header length");
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length_bytes[i];
  COHORT_REQUIRE(header_bytes <= kMaxHeaderBytes, where << ": header length " << header_bytes
                                                        << " exceeds the limit of " << kMaxHeaderBytes
                                                        << " bytes (not a safetensors file, or a corrupt one)");
  COHORT_REQUIRE((int64_t)header_bytes <= file.size() - 8, where << ": header length " << header_bytes
                                                                 << " runs beyond the end of the file (" << file.size()
                                                                 << " bytes): truncated or corrupt");
  std::string text((size_t)header_bytes, '\0');
  file.read(8, text.data(), (int64_t)header_bytes, "the header");

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number too large
    COHORT_REQUIRE(false, where << ": header is not valid JSON (" << e.what() << ")");
  }
  COHORT_REQUIRE(json.is_object(), where << ": header must be a JSON object, got " << json.type_name());

  Header header;
  header.data_start = 8 + (int64_t)header_bytes;
  const int64_t data_bytes = file.size() - header.data_start;
  for (const auto& [name, value] : json.items()) {
    if (name == "__metadata__") {
      COHORT_REQUIRE(value.is_object(), where << ": __metadata__ must be an object, got " << value.type_name());
      for (const auto& [key, item] : value.items()) {
        COHORT_REQUIRE(item.is_string(),
                       where << ": __metadata__ value '" << key << "' must be a string, got " << item.type_name());
        header.metadata[key] = item.get<std::string>();
      }
      continue;
    }
    const std::string tensor = where + ", tensor '" + name + "'";
    COHORT_REQUIRE(value.is_object(), tensor << ": entry must be an object, got " << value.type_name());
    SafetensorsEntry entry;
    entry.name = name;

    auto dtype = value.find("dtype");
    COHORT_REQUIRE(dtype != value.end() && dtype->is_string(), tensor << ": missing string field \"dtype\"");
    entry.dtype = dtype->get<std::string>();
    const int64_t element_bytes = dtype_bytes(entry.dtype);
    COHORT_REQUIRE(element_bytes > 0, tensor << ": unknown dtype '" << entry.dtype << "'");

    auto shape = value.find("shape");
    COHORT_REQUIRE(shape != value.end() && shape->is_array(), tensor << ": missing array field \"shape\"");
    int64_t numel = 1;
    for (const auto& dim : *shape) {
      int64_t d = 0;
      COHORT_REQUIRE(non_negative_integer(dim, d),
                     tensor << ": shape " << shape->dump() << " must hold non-negative integers");
      COHORT_REQUIRE(!__builtin_mul_overflow(numel, d, &numel),
                     tensor << ": shape " << shape->dump() << " has more elements than fit in 64 bits");
      entry.shape.push_back(d);
    }
    int64_t expected_bytes = 0;
    COHORT_REQUIRE(!__builtin_mul_overflow(numel, element_bytes, &expected_bytes),
                   tensor << ": shape " << shape_string(entry.shape) << " of " << entry.dtype
                          << " has more bytes than fit in 64 bits");

    auto offsets = value.find("data_offsets");
    COHORT_REQUIRE(offsets != value.end() && offsets->is_array() && offsets->size() == 2 &&
                       non_negative_integer((*offsets)[0], entry.begin) &&
                       non_negative_integer((*offsets)[1], entry.end) && entry.begin <= entry.end,
                   tensor << ": data_offsets must be [begin, end] with 0 <= begin <= end, got "
                          << (offsets == value.end() ? std::string("nothing") : offsets->dump()));
    COHORT_REQUIRE(entry.end <= data_bytes, tensor << ": data_offsets [" << entry.begin << ", " << entry.end
                                                   << "] out of range: the data section holds " << data_bytes
                                                   << " bytes (truncated or corrupt file)");
    COHORT_REQUIRE(entry.end - entry.begin == expected_bytes,
                   tensor << ": data_offsets [" << entry.begin << ", " << entry.end << "] hold "
                          << entry.end - entry.begin << " bytes but " << entry.dtype << " of shape "
                          << shape_string(entry.shape) << " needs " << expected_bytes);
    header.entries.push_back(std::move(entry));
  }

  std::sort(header.entries.begin(), header.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < header.entries.size(); ++i) {
    const auto &previous = header.entries[i - 1], &current = header.entries[i];
    COHORT_REQUIRE(current.begin >= previous.end, where << ": tensors '" << previous.name << "' [" << previous.begin
                                                        << ", " << previous.end << ") and '" << current.name << "' ["
                                                        << current.begin << ", " << current.end << ") overlap");
  }
  return header;
}

// Reads one tensor's data (already validated against the file) into `destination` as f32. F32 is
// read in place; BF16 and F16 through a chunk of kChunkElements, so converting a bf16 file costs
// 2 MB beside the fp32 weights, never a copy of the file.
void read_tensor(InputFile& file, int64_t data_start, const SafetensorsEntry& entry, float* destination) {
  const int64_t numel = entry.dtype == "F32" ? (entry.end - entry.begin) / 4 : (entry.end - entry.begin) / 2;
  const std::string what = "tensor '" + entry.name + "'";
  if (entry.dtype == "F32") {
    file.read(data_start + entry.begin, destination, numel * 4, what);
    return;
  }
  const bool is_bf16 = entry.dtype == "BF16";
  std::vector<uint16_t> chunk((size_t)std::min(numel, kChunkElements));
  for (int64_t done = 0; done < numel;) {
    const int64_t n = std::min(numel - done, kChunkElements);
    file.read(data_start + entry.begin + done * 2, chunk.data(), n * 2, what);
    if (is_bf16) {
      bf16_to_float(chunk.data(), destination + done, n);
    } else {
      for (int64_t i = 0; i < n; ++i) destination[done + i] = half_to_float(chunk[i]);
    }
    done += n;
  }
}

// Element size of what save_safetensors writes.
int64_t element_bytes_of(SafetensorsDtype dtype) {
  return dtype == SafetensorsDtype::bf16 ? 2 : 4;
}

// Writes parameters()[first, last) under their HF names, data in that order.
void write_tensors(const Transformer& model, size_t first, size_t last, const std::string& path, SafetensorsDtype dtype,
                   const std::map<std::string, std::string>& metadata) {
  const bool bf16 = dtype == SafetensorsDtype::bf16;
  const int64_t element_bytes = element_bytes_of(dtype);
  const auto& params = model.parameters();
  // ordered_json keeps the entries in parameter order, which is also the data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  int64_t offset = 0;
  for (size_t k = first; k < last; ++k) {
    const ParameterInfo& p = params[k];
    const int64_t bytes = p.numel * element_bytes;
    header[p.name] = {{"dtype", bf16 ? "BF16" : "F32"}, {"shape", p.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-aligned

  AtomicOutputFile out(path);
  uint8_t length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = (uint8_t)((uint64_t)text.size() >> (8 * i));
  out.write(length_bytes, 8);
  out.write(text.data(), (int64_t)text.size());
  const float* weights = model.weights().data();
  std::vector<uint16_t> chunk;
  for (size_t k = first; k < last; ++k) {
    const ParameterInfo& p = params[k];
    const float* w = weights + p.offset;
    if (!bf16) {
      out.write(w, p.numel * 4);
      continue;
    }
    chunk.resize((size_t)std::min(p.numel, kChunkElements));
    for (int64_t done = 0; done < p.numel;) {
      const int64_t n = std::min(p.numel - done, kChunkElements);
      for (int64_t i = 0; i < n; ++i) chunk[i] = float_to_bf16(w[done + i]);
      out.write(chunk.data(), n * 2);
      done += n;
    }
  }
  out.commit();
}

// An open safetensors file and its validated header.
struct ParsedFile {
  InputFile file;
  Header header;
  explicit ParsedFile(const std::string& path) : file(path), header(parse_header(file)) {}
};

// The one path from safetensors files to the model's weights, for a single file and for the
// shards of an index alike: every tensor of `files` is a candidate (the caller has made sure no
// name appears twice), `where` names the whole (the file, or the index) in the errors about
// missing and extra tensors. Checks everything, then reads in file order.
SafetensorsLoadReport load_from_files(Transformer& model, std::vector<ParsedFile>& files, const std::string& where,
                                      bool allow_extra) {
  struct Source {
    size_t file_index;
    const SafetensorsEntry* entry;
  };
  std::unordered_map<std::string, Source> by_name;
  for (size_t f = 0; f < files.size(); ++f)
    for (const auto& entry : files[f].header.entries) by_name.emplace(entry.name, Source{f, &entry});

  std::vector<std::pair<Source, const ParameterInfo*>> plan;
  for (const auto& p : model.parameters()) {
    auto it = by_name.find(p.name);
    COHORT_REQUIRE(it != by_name.end(),
                   where << " has no tensor '" << p.name << "' (shape " << shape_string(p.shape) << ") that model '"
                         << model.config().name << "' needs"
                         << (p.name == "lm_head.weight"
                                 ? " (the model has its own lm_head; was the file saved from a model with tied "
                                   "embeddings?)"
                                 : ""));
    const SafetensorsEntry& entry = *it->second.entry;
    const std::string tensor =
        "safetensors file '" + files[it->second.file_index].file.path() + "', tensor '" + p.name + "'";
    COHORT_REQUIRE(entry.shape == p.shape, tensor << ": shape " << shape_string(entry.shape)
                                                  << " in the file, but the model expects " << shape_string(p.shape));
    COHORT_REQUIRE(entry.dtype == "F32" || entry.dtype == "BF16" || entry.dtype == "F16",
                   tensor << ": dtype " << entry.dtype << " cannot be loaded (accepted: F32, BF16, F16)");
    plan.emplace_back(it->second, &p);
  }

  SafetensorsLoadReport report;
  std::unordered_set<std::string> needed;
  for (const auto& p : model.parameters()) needed.insert(p.name);
  for (const auto& file : files)
    for (const auto& entry : file.header.entries)
      if (!needed.count(entry.name)) report.extra_tensors.push_back(entry.name);
  if (!allow_extra && !report.extra_tensors.empty()) {
    std::ostringstream names;
    for (size_t i = 0; i < report.extra_tensors.size() && i < 5; ++i)
      names << (i ? ", " : "") << "'" << report.extra_tensors[i] << "'";
    if (report.extra_tensors.size() > 5) names << ", ...";
    COHORT_REQUIRE(false, where << " has " << report.extra_tensors.size() << " tensor(s) that model '"
                                << model.config().name << "' does not have: " << names.str()
                                << " (pass allow_extra to ignore them)");
  }

  // In file order, so the reads move forward through each file.
  std::sort(plan.begin(), plan.end(), [](const auto& a, const auto& b) {
    return a.first.file_index != b.first.file_index ? a.first.file_index < b.first.file_index
                                                    : a.first.entry->begin < b.first.entry->begin;
  });
  float* weights = model.weights().data();
  for (const auto& [source, parameter] : plan) {
    ParsedFile& file = files[source.file_index];
    read_tensor(file.file, file.header.data_start, *source.entry, weights + parameter->offset);
  }
  return report;
}

}  // namespace

void save_safetensors(const Transformer& model, const std::string& path, SafetensorsDtype dtype,
                      const std::map<std::string, std::string>& metadata) {
  write_tensors(model, 0, model.parameters().size(), path, dtype, metadata);
}

SafetensorsLoadReport load_safetensors(Transformer& model, const std::string& path, bool allow_extra) {
  std::vector<ParsedFile> files;
  files.emplace_back(path);
  return load_from_files(model, files, "safetensors file '" + path + "'", allow_extra);
}

std::vector<SafetensorsEntry> read_safetensors_header(const std::string& path) {
  InputFile file(path);
  return parse_header(file).entries;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  InputFile file(path);
  return parse_header(file).metadata;
}

std::vector<SafetensorsShard> plan_safetensors_shards(const Transformer& model, SafetensorsDtype dtype,
                                                      int64_t max_shard_bytes) {
  COHORT_REQUIRE(max_shard_bytes > 0, "max_shard_bytes must be positive, got " << max_shard_bytes);
  const auto& params = model.parameters();
  std::vector<SafetensorsShard> plan;
  for (size_t k = 0; k < params.size(); ++k) {
    const int64_t bytes = params[k].numel * element_bytes_of(dtype);
    if (plan.empty() || (plan.back().last > plan.back().first && plan.back().bytes + bytes > max_shard_bytes))
      plan.push_back(SafetensorsShard{"", k, k, 0});
    plan.back().last = k + 1;
    plan.back().bytes += bytes;
  }
  if (plan.empty()) plan.push_back(SafetensorsShard{});  // a model without parameters: one empty file
  for (size_t i = 0; i < plan.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, plan.size());
    plan[i].file = name;
  }
  return plan;
}

void save_safetensors_shards(const Transformer& model, const std::vector<SafetensorsShard>& plan,
                             const std::string& dir, SafetensorsDtype dtype) {
  // nlohmann::json sorts its keys, as transformers' json.dumps(..., sort_keys=True) does.
  nlohmann::json weight_map = nlohmann::json::object();
  int64_t total_size = 0;
  for (const SafetensorsShard& shard : plan) {
    write_tensors(model, shard.first, shard.last, (std::filesystem::path(dir) / shard.file).string(), dtype,
                  {{"format", "pt"}});
    for (size_t k = shard.first; k < shard.last; ++k) weight_map[model.parameters()[k].name] = shard.file;
    total_size += shard.bytes;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", std::move(weight_map)}};
  AtomicOutputFile out((std::filesystem::path(dir) / kSafetensorsIndexFile).string());
  out.write(index.dump(2) + "\n");
  out.commit();
}

SafetensorsLoadReport load_safetensors_sharded(Transformer& model, const std::string& index_path, bool allow_extra) {
  namespace fs = std::filesystem;
  const std::string where = "safetensors index '" + index_path + "'";
  std::error_code ec;
  COHORT_REQUIRE(!fs::is_directory(index_path, ec), where << " is a directory, expected a file");
  std::ifstream in(index_path, std::ios::binary);
  COHORT_REQUIRE(in, "cannot open " << where << ": " << std::strerror(errno));
  const auto bytes = fs::file_size(index_path, ec);
  COHORT_REQUIRE(!ec, "cannot stat " << where << ": " << ec.message());
  // An index names every tensor once; even the largest models' are a few MB.
  COHORT_REQUIRE(bytes <= kMaxHeaderBytes, where << " is " << bytes << " bytes, beyond the limit of " << kMaxHeaderBytes
                                                 << " (not an index, or a corrupt one)");
  std::string text((size_t)bytes, '\0');
  in.read(text.data(), (std::streamsize)bytes);
  COHORT_REQUIRE(in.gcount() == (std::streamsize)bytes,
                 "cannot read " << where << ": got " << in.gcount() << " of " << bytes << " bytes");

  nlohmann::json index;
  try {
    index = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for a number too large
    COHORT_REQUIRE(false, where << " is not valid JSON (" << e.what() << ")");
  }
  COHORT_REQUIRE(index.is_object(), where << " must be a JSON object, got " << index.type_name());
  auto map = index.find("weight_map");
  COHORT_REQUIRE(map != index.end() && map->is_object(),
                 where << " has no object \"weight_map\""
                       << (map == index.end() ? std::string() : std::string(", got ") + map->type_name()));

  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, std::string> shard_of;  // tensor name -> shard file
  std::map<std::string, size_t> shard_index;    // shard file -> position in `files`, in name order
  for (const auto& [tensor, value] : map->items()) {
    COHORT_REQUIRE(value.is_string(),
                   where << ": weight_map entry '" << tensor << "' must be a file name, got " << value.type_name());
    const std::string shard = value.get<std::string>();
    COHORT_REQUIRE(!shard.empty() && shard.find('/') == std::string::npos && shard.find("..") == std::string::npos &&
                       shard.find('\0') == std::string::npos,
                   where << ": weight_map entry '" << tensor << "' names '" << shard
                         << "', which is not a plain file name (no '/', no '..'): shards lie beside the index");
    COHORT_REQUIRE(fs::is_regular_file(dir / shard, ec), where << ": weight_map entry '" << tensor << "' names '"
                                                               << shard << "', which is not a file in "
                                                               << (dir.empty() ? fs::path(".") : dir).string());
    shard_of[tensor] = shard;
    shard_index.emplace(shard, 0);
  }
  std::vector<ParsedFile> files;
  files.reserve(shard_index.size());
  for (auto& [shard, position] : shard_index) {
    position = files.size();
    files.emplace_back((dir / shard).string());
  }

  // Where each tensor really is, then whether that agrees with the map both ways.
  std::unordered_map<std::string, const std::string*> found;  // tensor name -> shard file holding it
  for (const auto& [shard, position] : shard_index)
    for (const auto& entry : files[position].header.entries) {
      auto [it, inserted] = found.emplace(entry.name, &shard);
      COHORT_REQUIRE(inserted, where << ": tensor '" << entry.name << "' is in both '" << *it->second << "' and '"
                                     << shard << "'");
    }
  for (const auto& [shard, position] : shard_index)
    for (const auto& entry : files[position].header.entries) {
      auto listed = shard_of.find(entry.name);
      COHORT_REQUIRE(listed != shard_of.end(), where << ": shard '" << shard << "' holds tensor '" << entry.name
                                                     << "', which the weight_map does "
                                                     << "not list");
      COHORT_REQUIRE(listed->second == shard, where << ": shard '" << shard << "' holds tensor '" << entry.name
                                                    << "', but the weight_map puts it in '" << listed->second << "'");
    }
  for (const auto& [tensor, shard] : shard_of)
    COHORT_REQUIRE(found.count(tensor), where << ": the weight_map puts tensor '" << tensor << "' in '" << shard
                                              << "', which has no such tensor");
  return load_from_files(model, files, where, allow_extra);
}

}  // namespace cohort
