// Writing cohort's models as GGUF for llama.cpp and Ollama, and loading such files back
// into a Transformer. The layout follows what llama.cpp's converter (convert_hf_to_gguf.py)
// produces for Llama, Qwen2 and Qwen3 checkpoints, so that llama.cpp computes what cohort does;
// the header parser and tensor decoding live in model/gguf_reader.cpp.
#include "model/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"
#include "model/atomic_file.h"

namespace cohort {
namespace {

constexpr uint32_t kAlignment = 32;  // GGUF's default; written explicitly as general.alignment
constexpr int64_t kQ8BlockElements = 32;
constexpr int64_t kQ8BlockBytes = 34;

// llama.cpp's llama_ftype values for general.file_type.
uint32_t file_type(GgufDtype dtype) {
  switch (dtype) {
    case GgufDtype::f32:
      return 0;  // ALL_F32
    case GgufDtype::f16:
      return 1;  // MOSTLY_F16
    case GgufDtype::q8_0:
      return 7;  // MOSTLY_Q8_0
    case GgufDtype::bf16:
      return 32;  // MOSTLY_BF16
  }
  return 0;
}

// The header, built in memory: metadata pairs then tensor infos, little-endian.
class HeaderEncoder {
 public:
  void put_bytes(const void* p, size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  template <typename T>
  void put(T value) {
    put_bytes(&value, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    put_bytes(s.data(), s.size());
  }
  void key(const std::string& k, GgufValueType type) {
    COHORT_REQUIRE(keys_.insert(k).second, "GGUF export: metadata key '" << k << "' is written twice");
    put_string(k);
    put<uint32_t>((uint32_t)type);
    ++pairs_;
  }
  void kv_u32(const std::string& k, uint64_t v) {
    COHORT_REQUIRE(v <= UINT32_MAX, "GGUF export: " << k << " = " << v << " does not fit the uint32 llama.cpp reads");
    key(k, GgufValueType::uint32);
    put<uint32_t>((uint32_t)v);
  }
  void kv_f32(const std::string& k, double v) {
    key(k, GgufValueType::float32);
    put<float>((float)v);
  }
  void kv_bool(const std::string& k, bool v) {
    key(k, GgufValueType::boolean);
    put<uint8_t>(v ? 1 : 0);
  }
  void kv_string(const std::string& k, const std::string& v) {
    key(k, GgufValueType::string);
    put_string(v);
  }
  void kv_strings(const std::string& k, const std::vector<std::string>& v) {
    key(k, GgufValueType::array);
    put<uint32_t>((uint32_t)GgufValueType::string);
    put<uint64_t>(v.size());
    for (const auto& s : v) put_string(s);
  }
  void kv_int32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, GgufValueType::array);
    put<uint32_t>((uint32_t)GgufValueType::int32);
    put<uint64_t>(v.size());
    put_bytes(v.data(), v.size() * sizeof(int32_t));
  }
  bool has_key(const std::string& k) const { return keys_.count(k) > 0; }
  uint64_t pairs() const { return pairs_; }
  const std::string& bytes() const { return bytes_; }
  void clear_bytes() { bytes_.clear(); }

 private:
  std::string bytes_;
  std::set<std::string> keys_;
  uint64_t pairs_ = 0;
};

// One tensor as it will be written.
struct PlannedTensor {
  const ParameterInfo* parameter = nullptr;
  std::string name;
  std::vector<uint64_t> dims;
  GgmlType type = GgmlType::f32;
  uint64_t bytes = 0, offset = 0;
  int64_t rotary_heads = 0;  // > 0: rows are permuted to llama.cpp's interleaved rotary order
};

// Q8_0, as ggml lays it out: per 32 consecutive values an f16 scale d then 32 int8 q, with
// x ~ q * d. The scale is max|x| / 127 rounded to f16, and q = round(x / d) uses that
// rounded scale (clamped to +-127), so each value is off by at most d/2 plus 127 times the
// scale's own f16 rounding error. (ggml's reference quantizer divides by the unrounded
// scale; both decode the same way.)
void quantize_q8_0(const float* x, int64_t n, uint8_t* out, const std::string& name) {
  for (int64_t block = 0; block < n / kQ8BlockElements; ++block) {
    const float* v = x + block * kQ8BlockElements;
    uint8_t* o = out + block * kQ8BlockBytes;
    float amax = 0;
    bool finite = true;
    for (int64_t i = 0; i < kQ8BlockElements; ++i) {
      finite = finite && std::isfinite(v[i]);
      amax = std::max(amax, std::fabs(v[i]));
    }
    COHORT_REQUIRE(finite, "GGUF export: tensor '"
                               << name << "' holds a non-finite value in elements " << block * kQ8BlockElements << ".."
                               << block * kQ8BlockElements + kQ8BlockElements - 1 << ", which Q8_0 cannot represent");
    const uint16_t scale_bits = float_to_half(amax / 127.0f);
    const float scale = half_to_float(scale_bits);
    COHORT_REQUIRE(std::isfinite(scale), "GGUF export: tensor '" << name << "' has a value of magnitude " << amax
                                                                 << ", too large for a Q8_0 (f16) scale");
    std::memcpy(o, &scale_bits, 2);
    for (int64_t i = 0; i < kQ8BlockElements; ++i) {
      const float q = scale == 0 ? 0.0f : std::clamp(std::round(v[i] / scale), -127.0f, 127.0f);
      o[2 + i] = (uint8_t)(int8_t)q;
    }
  }
}

}  // namespace

void gguf_permute_rotary_rows(float* rows, int64_t heads, int64_t head_dim, int64_t row_length, bool to_interleaved) {
  COHORT_REQUIRE(heads > 0 && head_dim > 0 && head_dim % 2 == 0 && row_length > 0,
                 "gguf_permute_rotary_rows: need heads > 0, an even head_dim and row_length > 0, got "
                     << heads << ", " << head_dim << ", " << row_length);
  const int64_t half = head_dim / 2, head_elements = head_dim * row_length;
  std::vector<float> head((size_t)head_elements);
  for (int64_t h = 0; h < heads; ++h) {
    float* block = rows + h * head_elements;
    std::copy(block, block + head_elements, head.begin());
    // Rotate-half row i * half + j (i = 0: first half, 1: second) is interleaved row 2j + i.
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t halves_row = i * half + j, interleaved_row = 2 * j + i;
        const int64_t from = to_interleaved ? halves_row : interleaved_row;
        const int64_t to = to_interleaved ? interleaved_row : halves_row;
        std::copy(head.begin() + from * row_length, head.begin() + (from + 1) * row_length, block + to * row_length);
      }
  }
}

void write_gguf(const Transformer& model, const ByteTokenizer& tokenizer, const std::string& path, GgufDtype dtype,
                const std::map<std::string, std::string>& extra_metadata) {
  const ModelConfig& c = model.config();
  const int64_t head_dim = c.resolved_head_dim();
  // llama.cpp's qwen2 graph is the one with q/k/v biases and rotate-half ("NEOX") rotary, its
  // qwen3 graph the one with the q/k norm (attn_q_norm, attn_k_norm) and the same rotary; its
  // llama graph rotates interleaved pairs, hence the row permutation below. (llama.cpp's qwen2
  // also assumes heads * head_dim == hidden; cohort's reader does not.)
  COHORT_REQUIRE(!(c.qkv_bias && c.qk_norm), "GGUF export of model '"
                                                 << c.name << "': q/k/v biases together with the q/k norm match no "
                                                 << "llama.cpp architecture (qwen2 has the biases, qwen3 the norm)");
  const std::string arch = c.qk_norm ? "qwen3" : c.qkv_bias ? "qwen2" : "llama";
  // llama.cpp takes Llama 3.1's scaling as a per-frequency tensor (rope_freqs.weight) that no
  // cohort parameter holds; linear scaling is two metadata keys.
  COHORT_REQUIRE(c.rope_scaling.type != RopeScaling::Type::llama3,
                 "GGUF export of model '" << c.name << "': rope scaling llama3 is not supported in GGUF (llama.cpp "
                                          << "wants a rope_freqs tensor cohort does not write); export it with "
                                          << "--format hf instead");
  const bool permute_rotary = arch == "llama";
  const int32_t tokenizer_vocab = tokenizer.vocab_size();
  COHORT_REQUIRE(c.vocab >= tokenizer_vocab, "GGUF export of model '" << c.name << "': its vocab (" << c.vocab
                                                                      << ") is smaller than the tokenizer's ("
                                                                      << tokenizer_vocab << ")");

  HeaderEncoder header;
  header.kv_string("general.architecture", arch);
  header.kv_string("general.name", c.name);
  header.kv_u32("general.alignment", kAlignment);
  header.kv_u32("general.file_type", file_type(dtype));
  header.kv_u32(arch + ".context_length", (uint64_t)c.max_seq_len);
  header.kv_u32(arch + ".embedding_length", (uint64_t)c.hidden);
  header.kv_u32(arch + ".block_count", (uint64_t)c.layers);
  header.kv_u32(arch + ".feed_forward_length", (uint64_t)c.intermediate);
  header.kv_u32(arch + ".attention.head_count", (uint64_t)c.heads);
  header.kv_u32(arch + ".attention.head_count_kv", (uint64_t)c.kv_heads);
  header.kv_f32(arch + ".attention.layer_norm_rms_epsilon", c.rms_eps);
  header.kv_f32(arch + ".rope.freq_base", c.rope_theta);
  header.kv_u32(arch + ".rope.dimension_count", (uint64_t)head_dim);  // cohort rotates the whole head
  if (c.rope_scaling.type == RopeScaling::Type::linear) {
    header.kv_string(arch + ".rope.scaling.type", "linear");
    header.kv_f32(arch + ".rope.scaling.factor", c.rope_scaling.factor);
  }
  if (head_dim * c.heads != c.hidden) {
    header.kv_u32(arch + ".attention.key_length", (uint64_t)head_dim);
    header.kv_u32(arch + ".attention.value_length", (uint64_t)head_dim);
  }
  header.kv_u32(arch + ".vocab_size", (uint64_t)c.vocab);

  // The tokenizer as llama.cpp reads a byte-level BPE vocabulary: byte b is the GPT-2
  // byte-to-unicode character of b (the strings of to_hf_tokenizer_json), then the special
  // tokens by name, then placeholders for ids the model has and the tokenizer does not.
  // With no merges, llama.cpp's BPE splits text into single bytes, which are our ids.
  std::vector<std::string> tokens((size_t)c.vocab);
  std::vector<int32_t> token_types((size_t)c.vocab, 1);  // llama.cpp's LLAMA_TOKEN_TYPE_NORMAL
  const nlohmann::json vocab = tokenizer.to_hf_tokenizer_json().at("model").at("vocab");
  for (const auto& [text, id] : vocab.items()) {
    const int64_t i = id.get<int64_t>();
    COHORT_REQUIRE(i >= 0 && i < ByteTokenizer::kNumByteTokens,
                   "GGUF export: byte token '" << text << "' has id " << i);
    tokens[(size_t)i] = text;
  }
  for (int32_t id = ByteTokenizer::kNumByteTokens; id < tokenizer_vocab; ++id) {
    tokens[(size_t)id] = tokenizer.special_name(id);
    token_types[(size_t)id] = 3;  // CONTROL
  }
  for (int64_t id = tokenizer_vocab; id < c.vocab; ++id) {
    tokens[(size_t)id] = "<|unused_" + std::to_string(id - tokenizer_vocab) + "|>";
    token_types[(size_t)id] = 5;  // UNUSED
  }
  for (int32_t b = 0; b < ByteTokenizer::kNumByteTokens; ++b)
    COHORT_REQUIRE(!tokens[(size_t)b].empty(), "GGUF export: the tokenizer export has no string for byte " << b);
  header.kv_string("tokenizer.ggml.model", "gpt2");
  header.kv_string("tokenizer.ggml.pre", "default");
  header.kv_strings("tokenizer.ggml.tokens", tokens);
  header.kv_int32s("tokenizer.ggml.token_type", token_types);
  header.kv_strings("tokenizer.ggml.merges", {});
  header.kv_u32("tokenizer.ggml.bos_token_id", (uint64_t)tokenizer.bos_id());
  header.kv_u32("tokenizer.ggml.eos_token_id", (uint64_t)tokenizer.eos_id());
  header.kv_u32("tokenizer.ggml.padding_token_id", (uint64_t)tokenizer.pad_id());
  header.kv_bool("tokenizer.ggml.add_bos_token", true);
  for (const auto& [k, v] : extra_metadata) {
    COHORT_REQUIRE(!k.empty(), "GGUF export: an extra metadata key is empty");
    COHORT_REQUIRE(!header.has_key(k),
                   "GGUF export: extra metadata key '" << k << "' collides with a key cohort writes");
    header.kv_string(k, v);
  }
  const uint64_t metadata_pairs = header.pairs();
  const std::string metadata = header.bytes();
  header.clear_bytes();

  // Tensors in parameter order, each starting on an alignment boundary.
  std::vector<PlannedTensor> plan;
  uint64_t offset = 0;
  for (const ParameterInfo& p : model.parameters()) {
    PlannedTensor t;
    t.parameter = &p;
    t.name = gguf_tensor_name(p.name);
    t.dims.assign(p.shape.rbegin(), p.shape.rend());
    const bool vector = p.shape.size() == 1;  // norm weights and biases stay f32, as in llama.cpp's converter
    switch (vector ? GgufDtype::f32 : dtype) {
      case GgufDtype::f32:
        t.type = GgmlType::f32;
        break;
      case GgufDtype::f16:
        t.type = GgmlType::f16;
        break;
      case GgufDtype::bf16:
        t.type = GgmlType::bf16;
        break;
      case GgufDtype::q8_0:
        // Q8_0 blocks run along a row; a row that is not a whole number of blocks falls
        // back to f16, as llama.cpp's converter does.
        t.type = p.shape.back() % kQ8BlockElements == 0 ? GgmlType::q8_0 : GgmlType::f16;
        break;
    }
    t.bytes = t.type == GgmlType::f32    ? (uint64_t)p.numel * 4
              : t.type == GgmlType::q8_0 ? (uint64_t)(p.numel / kQ8BlockElements * kQ8BlockBytes)
                                         : (uint64_t)p.numel * 2;
    if (permute_rotary && (p.name.find("self_attn.q_proj.") != std::string::npos ||
                           p.name.find("self_attn.k_proj.") != std::string::npos))
      t.rotary_heads = p.name.find("q_proj") != std::string::npos ? c.heads : c.kv_heads;
    t.offset = offset;
    offset += (t.bytes + kAlignment - 1) / kAlignment * kAlignment;
    header.put_string(t.name);
    header.put<uint32_t>((uint32_t)t.dims.size());
    for (uint64_t d : t.dims) header.put<uint64_t>(d);
    header.put<uint32_t>((uint32_t)t.type);
    header.put<uint64_t>(t.offset);
    plan.push_back(std::move(t));
  }

  AtomicOutputFile out(path);
  out.write("GGUF", 4);
  const uint32_t version = 3;
  const uint64_t tensor_count = plan.size();
  out.write(&version, 4);
  out.write(&tensor_count, 8);
  out.write(&metadata_pairs, 8);
  out.write(metadata.data(), (int64_t)metadata.size());
  out.write(header.bytes().data(), (int64_t)header.bytes().size());
  out.pad(kAlignment);
  const uint64_t data_start = out.written();

  const float* weights = model.weights().data();
  std::vector<float> values;
  std::vector<uint8_t> encoded;
  for (const PlannedTensor& t : plan) {
    const ParameterInfo& p = *t.parameter;
    values.assign(weights + p.offset, weights + p.offset + p.numel);
    if (t.rotary_heads > 0)
      gguf_permute_rotary_rows(values.data(), t.rotary_heads, head_dim, p.shape.size() == 2 ? p.shape[1] : 1, true);
    encoded.resize((size_t)t.bytes);
    switch (t.type) {
      case GgmlType::f32:
        std::memcpy(encoded.data(), values.data(), (size_t)t.bytes);
        break;
      case GgmlType::f16:
      case GgmlType::bf16: {
        uint16_t* h = reinterpret_cast<uint16_t*>(encoded.data());
        if (t.type == GgmlType::bf16) {
          float_to_bf16(values.data(), h, p.numel);
        } else {
          for (int64_t i = 0; i < p.numel; ++i) h[i] = float_to_half(values[(size_t)i]);
        }
        break;
      }
      case GgmlType::q8_0:
        quantize_q8_0(values.data(), p.numel, encoded.data(), t.name);
        break;
    }
    COHORT_REQUIRE(out.written() - data_start == t.offset, "GGUF export: tensor '" << t.name << "' would start at "
                                                                                   << out.written() - data_start
                                                                                   << ", planned " << t.offset);
    out.write(encoded.data(), (int64_t)t.bytes);
    out.pad(kAlignment);  // ggml pads after every tensor, the last one included
  }
  out.commit();
}

std::unique_ptr<Transformer> load_gguf_model(GgufReader& reader) {
  const GgufFile& file = reader.file();
  const std::string where = "GGUF file '" + file.path + "'";
  const ModelConfig config = gguf_model_config(file);  // every tensor checked: names, dims, ranges
  const bool llama = file.get_string("general.architecture") == "llama";
  const int64_t head_dim = config.resolved_head_dim();
  auto model = std::make_unique<Transformer>(config);
  float* weights = model->weights().data();
  for (const ParameterInfo& p : model->parameters()) {
    const std::string name = gguf_tensor_name(p.name);
    const GgufTensorInfo* tensor = file.find_tensor(name);
    const std::vector<uint64_t> dims(p.shape.rbegin(), p.shape.rend());
    COHORT_REQUIRE(tensor != nullptr && tensor->dims == dims,
                   where << ": tensor '" << name << "' is missing or has other dims than parameter '" << p.name << "'");
    reader.read_tensor(*tensor, weights + p.offset);
    if (llama && (p.name.find("self_attn.q_proj.") != std::string::npos ||
                  p.name.find("self_attn.k_proj.") != std::string::npos)) {
      const int64_t heads = p.name.find("q_proj") != std::string::npos ? config.heads : config.kv_heads;
      gguf_permute_rotary_rows(weights + p.offset, heads, head_dim, p.shape.size() == 2 ? p.shape[1] : 1, false);
    }
  }
  return model;
}

std::unique_ptr<Transformer> load_gguf_model(const std::string& path) {
  GgufReader reader(path);
  return load_gguf_model(reader);
}

}  // namespace cohort
