// HDF5 checkpoints: writing, verified reading, publishing and the config comparison of a resume.
#include "trainer/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "kernels/error.h"
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

// zlib's crc32 of the bytes, in 16 MiB pieces on all threads, joined with crc32_combine: a checksum
// pass over 1.5 GB on one thread would cost as much as writing the file.
uint32_t crc_of(const void* data, size_t bytes) {
  constexpr size_t piece = size_t(16) << 20;
  const auto* p = static_cast<const Bytef*>(data);
  const int64_t pieces = (int64_t)((bytes + piece - 1) / piece);
  std::vector<uLong> crcs((size_t)pieces);
#pragma omp parallel for schedule(dynamic, 1) if (pieces > 1)
  for (int64_t i = 0; i < pieces; ++i) {
    size_t begin = (size_t)i * piece, n = std::min(piece, bytes - begin);
    crcs[i] = crc32(crc32(0L, Z_NULL, 0), p + begin, (uInt)n);
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int64_t i = 0; i < pieces; ++i) {
    size_t n = std::min(piece, bytes - (size_t)i * piece);
    crc = crc32_combine(crc, crcs[i], (z_off_t)n);
  }
  return (uint32_t)crc;
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
          {"qkv_bias", c.qkv_bias}};
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

// Reads a dataset whose element type is `memory_type` (checked against the stored class and size),
// verifying its crc32. Returns the dims through `dims`.
// Reads dataset `name` into out (resized to fit, or, with `into`, into that many elements there after
// checking the count), checking its element type against T and verifying its crc32.
template <typename T>
void read_dataset_into(hid_t where, const fs::path& file, const std::string& name, hid_t memory_type,
                       H5T_class_t want_class, std::vector<hsize_t>* dims_out, std::vector<T>* out, T* into,
                       int64_t into_count) {
  H5Check check{file};
  COHORT_REQUIRE(H5Lexists(where, name.c_str(), H5P_DEFAULT) > 0,
                 "checkpoint " << file.string() << ": dataset " << name << " is missing");
  H5Handle ds(check(H5Dopen2(where, name.c_str(), H5P_DEFAULT), "opening " + name), H5Dclose);
  H5Handle type(check(H5Dget_type(ds), "type of " + name), H5Tclose);
  COHORT_REQUIRE(H5Tget_class(type) == want_class && H5Tget_size(type) == sizeof(T),
                 "checkpoint " << file.string() << ": dataset " << name << " has the wrong element type");
  H5Handle space(check(H5Dget_space(ds), "dataspace of " + name), H5Sclose);
  int rank = check(H5Sget_simple_extent_ndims(space), "rank of " + name);
  COHORT_REQUIRE(rank >= 1 && rank <= 8,
                 "checkpoint " << file.string() << ": dataset " << name << " has rank " << rank);
  std::vector<hsize_t> dims((size_t)rank);
  check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "dims of " + name);
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  // The file's size bounds what a dataset can hold; a forged header must not make us allocate more.
  std::error_code ec;
  uintmax_t file_bytes = fs::file_size(file, ec);
  COHORT_REQUIRE(!ec && count * sizeof(T) <= file_bytes,
                 "checkpoint " << file.string() << ": dataset " << name << " claims more data than the file holds");
  if (dims_out) *dims_out = dims;
  T* dest = into;
  if (into) {
    COHORT_REQUIRE((int64_t)count == into_count, "checkpoint " << file.string() << ": dataset " << name << " holds "
                                                               << count << " values, the model config " << into_count);
  } else {
    out->assign((size_t)count, T{});
    dest = out->data();
  }
  if (count > 0) check(H5Dread(ds, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dest), "reading " + name);
  COHORT_REQUIRE(H5Aexists(ds, "crc32") > 0,
                 "checkpoint " << file.string() << ": dataset " << name << " has no crc32 attribute");
  H5Handle attr(check(H5Aopen(ds, "crc32", H5P_DEFAULT), "crc32 of " + name), H5Aclose);
  uint32_t stored = 0;
  check(H5Aread(attr, H5T_NATIVE_UINT32, &stored), "reading crc32 of " + name);
  uint32_t actual = crc_of(dest, (size_t)count * sizeof(T));
  COHORT_REQUIRE(stored == actual, "checkpoint " << file.string() << ": dataset " << name
                                                 << " fails its checksum (stored crc32 " << stored << ", data "
                                                 << actual << "): the file is corrupted");
}

template <typename T>
std::vector<T> read_dataset(hid_t where, const fs::path& file, const std::string& name, hid_t memory_type,
                            H5T_class_t want_class, std::vector<hsize_t>* dims_out = nullptr) {
  std::vector<T> out;
  read_dataset_into<T>(where, file, name, memory_type, want_class, dims_out, &out, nullptr, 0);
  return out;
}

std::string read_text(hid_t where, const fs::path& file, const std::string& name) {
  std::vector<uint8_t> bytes = read_dataset<uint8_t>(where, file, name, H5T_NATIVE_UINT8, H5T_INTEGER);
  return std::string(bytes.begin(), bytes.end());
}

std::vector<float> read_tensors(hid_t file_id, const fs::path& file, const std::string& group,
                                const std::vector<ParameterInfo>& layout) {
  const ParameterInfo& last = layout.back();
  std::vector<float> flat((size_t)(last.offset + last.numel));
  for (const ParameterInfo& p : layout) {
    std::vector<hsize_t> dims;
    read_dataset_into<float>(file_id, file, group + "/" + p.name, H5T_NATIVE_FLOAT, H5T_FLOAT, &dims, nullptr,
                             flat.data() + p.offset, p.numel);
    bool same = dims.size() == p.shape.size();
    for (size_t i = 0; same && i < dims.size(); ++i) same = (int64_t)dims[i] == p.shape[i];
    COHORT_REQUIRE(same, "checkpoint " << file.string() << ": " << group << "/" << p.name
                                       << " has a shape other than the model config's");
  }
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

// Creates every dataset (collectively, under MPI-IO), writes this process's pieces (independently) and the
// joined crc32 attributes.
void write_pieces(hid_t file, const fs::path& path, const std::vector<Piece>& pieces) {
  H5Check check{path};
  for (const Piece& p : pieces) {
    const hid_t file_type = p.is_float ? H5T_IEEE_F32LE : H5T_STD_U8LE;
    const hid_t memory_type = p.is_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
    H5Handle space(check(H5Screate_simple((int)p.dims.size(), p.dims.data(), nullptr), "dataspace of " + p.name),
                   H5Sclose);
    // Every byte is written once, by H5Dwrite below: no fill values first.
    H5Handle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "dataset properties"), H5Pclose);
    check(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "fill time");
    H5Handle ds(check(H5Dcreate2(file, p.name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                      "creating dataset " + p.name),
                H5Dclose);
    if (p.count > 0) {
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
    H5Handle scalar(check(H5Screate(H5S_SCALAR), "attribute space"), H5Sclose);
    H5Handle attr(check(H5Acreate2(ds, "crc32", H5T_STD_U32LE, scalar, H5P_DEFAULT, H5P_DEFAULT), "crc32 of " + p.name),
                  H5Aclose);
    check(H5Awrite(attr, H5T_NATIVE_UINT32, &p.crc), "writing crc32 of " + p.name);
  }
}

// Gives every process every piece's total size and joined crc32: a gather of (count, crc) over the learners,
// the crcs combined in rank order (shards are contiguous and rank-ordered), byte datasets' offsets from the
// counts before this rank's.
void join_pieces(std::vector<Piece>& pieces, MPI_Comm comm) {
  int rank = 0, size = 1;
  if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank), MPI_Comm_size(comm, &size);
  const size_t n = pieces.size();
  std::vector<uint64_t> mine(2 * n), all(2 * n * (size_t)size);
  for (size_t i = 0; i < n; ++i) mine[2 * i] = (uint64_t)pieces[i].count, mine[2 * i + 1] = pieces[i].crc;
  if (comm == MPI_COMM_NULL) {
    all = mine;
  } else {
    COHORT_REQUIRE(MPI_Allgather(mine.data(), (int)mine.size(), MPI_UINT64_T, all.data(), (int)mine.size(),
                                 MPI_UINT64_T, comm) == MPI_SUCCESS,
                   "checkpoint: gathering the learners' checksums failed");
  }
  for (size_t i = 0; i < n; ++i) {
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t total = 0, before = 0;
    for (int r = 0; r < size; ++r) {
      uint64_t count = all[2 * n * r + 2 * i], piece_crc = all[2 * n * r + 2 * i + 1];
      size_t elem = pieces[i].is_float ? sizeof(float) : 1;
      if (count > 0) crc = crc32_combine(crc, (uLong)piece_crc, (z_off_t)(count * elem));
      if (r < rank) before += count;
      total += count;
    }
    pieces[i].crc = (uint32_t)crc;
    if (!pieces[i].is_float) pieces[i].dims = {(hsize_t)total}, pieces[i].begin = (int64_t)before;
  }
}

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
  for (Piece& p : pieces) p.crc = crc_of(p.data, (size_t)p.count * (p.is_float ? sizeof(float) : 1));
  join_pieces(pieces, learners);

  fs::path tmp = path;
  tmp += ".tmp";
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
    write_pieces(file, path, pieces);
    check(H5Fflush(file, H5F_SCOPE_GLOBAL), "flushing");
  }
  // Every learner's bytes are in the file once it is closed; learner 0 makes them durable and renames.
  std::string failure;
  if (lead) {
    try {
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
  try {
    state = nlohmann::json::parse(read_text(file, path, "/state.json"));
  } catch (const nlohmann::json::exception& e) {
    COHORT_REQUIRE(false, "checkpoint " << path.string() << ": /state.json: " << e.what());
  }
  COHORT_REQUIRE(state.value("format", "") == "cohort-checkpoint" && state.value("format_version", 0) == 1,
                 "checkpoint " << path.string() << ": not a cohort checkpoint of format version 1");
  nlohmann::json model_json;
  bool in_flight = false;
  try {
    model_json = nlohmann::json::parse(read_text(file, path, "/model_config.json"));
    c.state.step = state.at("step").get<int64_t>();
    c.state.optimizer_steps = state.at("optimizer_steps").get<int64_t>();
    c.state.learners = state.value("learners", int64_t(1));
    c.state.data_cursor = state.at("data_cursor");
    c.state.extra = state.value("extra", nlohmann::json::object());
    in_flight = state.value("in_flight", false);
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
  if (state.value("has_reference", false)) c.reference = read_tensors(file, path, "/reference", layout);
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
        read_dataset<float>(file, path, d.name, H5T_NATIVE_FLOAT, H5T_FLOAT, &dims);
      } else {
        read_dataset<uint8_t>(file, path, d.name, H5T_NATIVE_UINT8, H5T_INTEGER, &dims);
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

std::vector<std::string> config_differences(const std::string& saved_yaml, const std::string& current_yaml) {
  static const std::set<std::string> may_change = {"train.steps",
                                                   "train.eval_every",
                                                   "train.eval_prompts",
                                                   "train.checkpoint_every",
                                                   "train.keep_checkpoints",
                                                   "train.resume",
                                                   "train.log_rollouts",
                                                   "run.threads",
                                                   "run.name",
                                                   "run.dir",
                                                   "distributed.learners",
                                                   "distributed.rollout_workers",
                                                   "distributed.colocated",
                                                   "distributed.bucket_mb",
                                                   "distributed.timeout_s"};
  std::map<std::string, std::string> a, b;
  flatten(YAML::Load(saved_yaml), "", a);
  flatten(YAML::Load(current_yaml), "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<std::string> out;
  for (const std::string& k : keys) {
    if (may_change.count(k)) continue;
    auto x = a.find(k), y = b.find(k);
    std::string va = x == a.end() ? "(absent)" : x->second, vb = y == b.end() ? "(absent)" : y->second;
    if (va != vb) out.push_back(k + ": " + va + " in the checkpoint, " + vb + " now");
  }
  return out;
}

}  // namespace cohort::trainer
