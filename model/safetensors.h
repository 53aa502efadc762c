// Hugging Face safetensors, the weight file that vLLM, SGLang and transformers load: an
// 8-byte little-endian header length N, N bytes of JSON naming each tensor's dtype, shape
// and byte range, then the raw data; or, for weights past a size limit, Hugging Face's
// sharded form (model-00001-of-0000N.safetensors ... and model.safetensors.index.json).
// Files are read as untrusted input (every size is checked before anything is allocated)
// and written atomically (tmp, fsync, rename).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace cohort {

enum class SafetensorsDtype { f32, bf16 };

// Writes the model's parameters under their HF names in parameters() order (a tied
// lm_head is not a parameter, so it is not written, as HF does), converting to dtype
// (bf16 rounds to nearest even). metadata becomes the header's "__metadata__".
// Writes path + ".tmp", fsyncs it, renames it over path and fsyncs the directory, so a
// crash leaves either the old file or the whole new one. Throws cohort::Error on I/O failure.
void save_safetensors(const Transformer& model, const std::string& path, SafetensorsDtype dtype = SafetensorsDtype::f32,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

struct SafetensorsLoadReport {
  std::vector<std::string> extra_tensors;  // in the file but not in the model (only with allow_extra)
};

// Loads every parameter of `model` from the file; F32, BF16 and F16 are accepted and
// converted to f32. Throws cohort::Error naming the file (and the tensor) for: a missing
// or truncated file, a header length beyond the file, bad JSON, a tensor the model needs
// that is missing, a shape mismatch, offsets out of range or overlapping, an unknown or
// unsupported dtype, and tensors the model does not have unless allow_extra (they are then
// listed in the report). Every check runs before the first weight is written, so a bad
// file leaves the model as it was; only an I/O error while reading the data can leave it
// partly loaded (and still throws).
SafetensorsLoadReport load_safetensors(Transformer& model, const std::string& path, bool allow_extra = false);

// One header entry; begin and end are byte offsets relative to the start of the data.
struct SafetensorsEntry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;
};

// The validated header (everything load_safetensors checks that does not depend on a
// model), entries in file order. "__metadata__" is not an entry; see read_safetensors_metadata.
std::vector<SafetensorsEntry> read_safetensors_header(const std::string& path);
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

// The sharded form, as transformers' save_pretrained writes it: shard files named
// model-00001-of-0000N.safetensors and an index, model.safetensors.index.json, holding
// {"metadata": {"total_size": tensor data bytes}, "weight_map": {tensor name: shard file}}.
inline constexpr char kSafetensorsIndexFile[] = "model.safetensors.index.json";

// parameters()[first, last) go into `file`; bytes is their tensor data in the file's dtype.
struct SafetensorsShard {
  std::string file;
  size_t first = 0, last = 0;
  int64_t bytes = 0;
};

// The model's parameters in parameters() order, split where adding the next tensor would take
// a shard's data past max_shard_bytes (a tensor larger than that gets a shard of its own). One
// shard means the weights fit in a single file. Throws cohort::Error unless max_shard_bytes > 0.
std::vector<SafetensorsShard> plan_safetensors_shards(const Transformer& model, SafetensorsDtype dtype,
                                                      int64_t max_shard_bytes);

// Writes each shard of `plan` into dir (as save_safetensors does, metadata {"format": "pt"}),
// then dir/model.safetensors.index.json; every file atomically, the index last, so the index
// never names a shard that is not complete. Leaves other files in dir alone.
void save_safetensors_shards(const Transformer& model, const std::vector<SafetensorsShard>& plan,
                             const std::string& dir, SafetensorsDtype dtype = SafetensorsDtype::f32);

// Loads the model from an index and the shards it names (in the index's directory), with every
// check of load_safetensors plus the index's own: errors name the index file for bad JSON, a
// weight_map without string values, a shard name holding '/' or '..' or naming no file, a tensor
// the map puts in a shard that lacks it, a shard tensor the map does not list or puts elsewhere,
// and a tensor in two shards. The index's "metadata" is not read (writers disagree on its
// contents). As with load_safetensors, everything is checked before the first weight is written.
SafetensorsLoadReport load_safetensors_sharded(Transformer& model, const std::string& index_path,
                                               bool allow_extra = false);

}  // namespace cohort
