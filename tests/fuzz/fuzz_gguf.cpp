// Fuzzes the GGUF reader, which parses untrusted model files: the header (metadata, tensor
// infos, ranges), the ModelConfig derived from it and the decoding of every tensor. Each
// input is tried twice: as a whole file, and as edits to a small valid Llama file built
// here, so that mutations reach the config and tensor checks even from printable seeds
// (tests/fuzz/run's seeds cannot hold NUL bytes). Any cohort::Error is a correct refusal;
// a crash, sanitizer report, leak or timeout is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "model/gguf.h"

namespace {

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

// A valid GGUF v3 file of a one-layer Llama (hidden 32, 2 heads of 16, 1 KV head, MLP 32,
// vocab 4) with tensors in F32, F16, BF16 and Q8_0, every value set.
std::string template_file() {
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
  };
  const std::vector<Tensor> tensors = {
      {"token_embd.weight", {32, 4}, 0},     {"blk.0.attn_norm.weight", {32}, 0},
      {"blk.0.attn_q.weight", {32, 32}, 8},  {"blk.0.attn_k.weight", {32, 16}, 1},
      {"blk.0.attn_v.weight", {32, 16}, 30}, {"blk.0.attn_output.weight", {32, 32}, 8},
      {"blk.0.ffn_norm.weight", {32}, 0},    {"blk.0.ffn_gate.weight", {32, 32}, 8},
      {"blk.0.ffn_up.weight", {32, 32}, 1},  {"blk.0.ffn_down.weight", {32, 32}, 8},
      {"output_norm.weight", {32}, 0},
  };
  std::string out = "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors.size());
  put<uint64_t>(out, 11);
  auto u32 = [&](const std::string& key, uint32_t v) {
    put_string(out, key);
    put<uint32_t>(out, 4);
    put<uint32_t>(out, v);
  };
  put_string(out, "general.architecture");
  put<uint32_t>(out, 8);
  put_string(out, "llama");
  u32("general.alignment", 32);
  u32("llama.context_length", 8);
  u32("llama.embedding_length", 32);
  u32("llama.block_count", 1);
  u32("llama.feed_forward_length", 32);
  u32("llama.attention.head_count", 2);
  u32("llama.attention.head_count_kv", 1);
  put_string(out, "llama.attention.layer_norm_rms_epsilon");
  put<uint32_t>(out, 6);
  put<float>(out, 1e-5f);
  u32("llama.rope.dimension_count", 16);
  put_string(out, "tokenizer.ggml.token_type");
  put<uint32_t>(out, 9);
  put<uint32_t>(out, 5);
  put<uint64_t>(out, 4);
  for (int32_t t : {1, 1, 3, 5}) put<int32_t>(out, t);
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.dims) n *= d;
    const uint64_t bytes = t.type == 0 ? n * 4 : t.type == 8 ? n / 32 * 34 : n * 2;
    put_string(out, t.name);
    put<uint32_t>(out, (uint32_t)t.dims.size());
    for (uint64_t d : t.dims) put<uint64_t>(out, d);
    put<uint32_t>(out, t.type);
    put<uint64_t>(out, offset);
    sizes.push_back(bytes);
    offset += (bytes + 31) / 32 * 32;
  }
  out.append((32 - out.size() % 32) % 32, '\0');
  for (uint64_t bytes : sizes) {
    for (uint64_t i = 0; i < bytes; ++i) out += (char)(i * 7 % 61);  // small finite values
    out.append((32 - out.size() % 32) % 32, '\0');
  }
  return out;
}

void parse_and_decode(std::span<const uint8_t> bytes) {
  try {
    cohort::GgufReader reader(bytes, "fuzz.gguf");
    const cohort::GgufFile& file = reader.file();
    // Bounded by the file: every tensor's bytes were checked against its size.
    std::vector<float> values;
    for (const cohort::GgufTensorInfo& tensor : file.tensors) {
      values.resize((size_t)tensor.elements);
      reader.read_tensor(tensor, values.data());
    }
    for (const auto& [key, value] : file.metadata)
      if (const auto* array = std::get_if<cohort::GgufArray>(&value.value); array && array->size > 0) {
        try {
          (void)value.integer_element(array->size - 1);
        } catch (const cohort::Error&) {
        }
      }
    (void)cohort::gguf_model_config(file);
  } catch (const cohort::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  parse_and_decode(std::span<const uint8_t>(data, size));

  // The input as edits to the template: each 3 bytes (position high, position low, value)
  // overwrite one byte; a last lone byte, if any, cuts the file to that fraction of its size.
  static const std::string good = template_file();
  std::string edited = good;
  size_t i = 0;
  for (; i + 3 <= size; i += 3) edited[((size_t)data[i] << 8 | data[i + 1]) % edited.size()] = (char)data[i + 2];
  if (i < size) edited.resize(edited.size() * data[i] / 256);
  parse_and_decode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(edited.data()), edited.size()));
  return 0;
}
