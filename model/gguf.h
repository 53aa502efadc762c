// GGUF, the single-file model format of llama.cpp and Ollama: a header of typed key/value
// metadata (hyperparameters, tokenizer) and tensor descriptions, then the aligned tensor data.
// cohort writes its Llama/Qwen2 decoders and the byte tokenizer the way llama.cpp's own
// converter does, and reads such files back as untrusted input.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "model/byte_tokenizer.h"
#include "model/config.h"
#include "model/transformer.h"

namespace cohort {

// How write_gguf stores the 2-D weight matrices; 1-D tensors (norm weights, biases) are
// always f32, as llama.cpp's converter keeps them.
enum class GgufDtype { f32, f16, bf16, q8_0 };

// Metadata value types, numbered as in the GGUF specification.
enum class GgufValueType : uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

// ggml tensor types this code reads and writes, numbered as in ggml.h. Other ggml types are
// recognised by name in error messages but not decoded.
enum class GgmlType : uint32_t { f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30 };

// An array value. Numeric and bool elements stay as the little-endian bytes of the file
// (element i at bytes[i * size .. ]), so a large array costs no more memory than it took on
// disk; GgufValue::integer_element reads integer elements. Arrays of arrays are refused.
struct GgufArray {
  GgufValueType element_type = GgufValueType::uint8;
  uint64_t size = 0;
  std::vector<std::string> strings;  // element_type == string
  std::vector<uint8_t> bytes;        // any other element_type
};

// One metadata value: unsigned types are held as uint64_t, signed as int64_t, float32 and
// float64 as double, bool, string, or an array.
struct GgufValue {
  GgufValueType type = GgufValueType::uint32;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;

  bool is_integer() const;
  // Element i of a numeric array (any integer type) as int64_t; throws for a uint64 element
  // above INT64_MAX, a non-integer array or an index out of range.
  int64_t integer_element(uint64_t i) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // fastest-varying first: the reverse of the row-major shape
  uint32_t type = 0;           // a ggml type; one of GgmlType once read_gguf_header accepted it
  uint64_t offset = 0;         // into the data section, a multiple of the alignment
  uint64_t bytes = 0;          // size of the data, from dims and type
  uint64_t elements = 0;
};

// A validated GGUF header: everything in it has been checked against the file size.
struct GgufFile {
  std::string path;  // for messages: the file name, or the name given to the in-memory parser
  uint32_t version = 0;
  uint64_t file_size = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;                                 // file offset of the data section
  std::vector<std::pair<std::string, GgufValue>> metadata;  // in file order, keys unique
  std::vector<GgufTensorInfo> tensors;                      // in file order, names unique

  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Typed look-ups that throw cohort::Error naming the file and the key when the key is
  // missing or holds another type. get_integer accepts every integer type.
  int64_t get_integer(const std::string& key) const;
  double get_float(const std::string& key) const;  // float32 or float64
  const std::string& get_string(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const GgufArray& get_array(const std::string& key) const;

  // Position of each key in metadata and of each name in tensors, filled by the parser.
  std::map<std::string, size_t> metadata_index, tensor_index;
};

// Writes `model` and `tokenizer` as a GGUF v3 file that llama.cpp loads: architecture "llama"
// (or "qwen2" when the model has q/k/v biases, "qwen3" when it has the q/k norm) with llama.cpp's
// metadata keys and tensor names (linear rope scaling as rope.scaling.type/factor), 2-D weights in `dtype`, the
// tokenizer as a byte-level BPE vocabulary with no merges (padded with unused placeholder tokens up to the model's
// vocab), and `extra_metadata` as string values (a key that collides with one written here is an error). Written to
// path + ".tmp", fsynced and renamed into place. Throws cohort::Error on I/O failure, for a
// model whose vocab is smaller than the tokenizer's, for non-finite weights in q8_0, for llama3
// rope scaling (llama.cpp wants it as a rope_freqs tensor) and for q/k/v biases with the q/k norm.
void write_gguf(const Transformer& model, const ByteTokenizer& tokenizer, const std::string& path, GgufDtype dtype,
                const std::map<std::string, std::string>& extra_metadata = {});

// Parses and validates a GGUF header (magic, version 2 or 3, metadata, tensor infos: sizes,
// types, alignment, ranges inside the data section, no overlaps or duplicates). Throws
// cohort::Error naming the file and the problem; never reads outside the file or allocates
// more than the file's size justifies.
GgufFile read_gguf_header(const std::string& path);
// The same over a whole file held in memory; `name` stands for the file in messages.
GgufFile parse_gguf(std::span<const uint8_t> bytes, const std::string& name = "<memory>");

class GgufSource;  // where the bytes come from: a file or memory (model/gguf_reader.cpp)

// An open GGUF file: its validated header and bounds-checked, dequantizing access to the
// tensor data. The span constructor does not copy: the bytes must outlive the reader.
class GgufReader {
 public:
  explicit GgufReader(const std::string& path);
  explicit GgufReader(std::span<const uint8_t> bytes, const std::string& name = "<memory>");
  ~GgufReader();
  GgufReader(const GgufReader&) = delete;
  GgufReader& operator=(const GgufReader&) = delete;

  const GgufFile& file() const { return file_; }
  // Decodes `tensor` (one of file().tensors) to f32 into out[0 .. tensor.elements): F32 is
  // copied bit for bit, F16 and BF16 widened exactly, Q8_0 expanded as q * d. Nothing else
  // is undone: rows of a llama file's q/k stay in llama.cpp's rotary order.
  void read_tensor(const GgufTensorInfo& tensor, float* out);
  std::vector<float> read_tensor(const std::string& name);

 private:
  std::unique_ptr<GgufSource> source_;
  GgufFile file_;
};

// The ModelConfig a GGUF file describes, checked against its tensors: architecture llama,
// qwen2 or qwen3 (the q/k norm), rope scaling none or linear, the hyperparameter keys (a missing one is named), and
// every tensor the model needs present with the shape the config implies, and no other tensor. Reads no tensor data;
// since every tensor has been checked against the file size, the model it describes is no larger than the file
// justifies.
ModelConfig gguf_model_config(const GgufFile& file);

// Reads a GGUF file written by write_gguf or llama.cpp's converter (F32, F16, BF16, Q8_0
// tensors) into a new model: the config from gguf_model_config, every tensor dequantized
// to f32 and, for llama, q/k rows returned to cohort's rotate-half order. Throws
// cohort::Error naming the file and the problem.
std::unique_ptr<Transformer> load_gguf_model(const std::string& path);
std::unique_ptr<Transformer> load_gguf_model(GgufReader& reader);

// The GGUF name of a cohort (Hugging Face) parameter name, e.g.
// model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight; throws for a name that
// has no GGUF counterpart.
std::string gguf_tensor_name(const std::string& hf_name);

// llama.cpp's "llama" architecture rotates interleaved pairs (x[2i], x[2i+1]) where cohort
// and Hugging Face rotate halves (x[i], x[i + head_dim/2]); llama.cpp's converter reorders
// the rows of q_proj and k_proj (and their biases) within each head so both compute the
// same attention. rows: (heads * head_dim, row_length), row-major, permuted in place;
// to_interleaved false applies the inverse.
void gguf_permute_rotary_rows(float* rows, int64_t heads, int64_t head_dim, int64_t row_length, bool to_interleaved);

}  // namespace cohort
