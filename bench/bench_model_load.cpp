// Peak memory of loading a Hugging Face directory of Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14
// heads, 2 kv heads, MLP 4864, vocab 151936, tied) from bf16 safetensors, beside the size of its fp32
// weights: load_model_directory must hold one fp32 copy of the weights, never the file's bytes or a
// second copy beside it. The bench writes the directory itself (config.json, and model.safetensors
// with seeded bf16 values streamed out tensor by tensor, never holding the model), then loads it and
// reads the peak resident set (VmHWM in /proc/self/status, and getrusage's ru_maxrss), and checks a few
// loaded values against the ones written. Prints one JSON object.
// Usage: bench_model_load [--dir DIR] [--keep]
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"
#include "kernels/random.h"
#include "model/hf_config.h"
#include "model/model_directory.h"
#include "model/transformer.h"

using namespace cohort;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kSeed = 0x5EED;
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // splitmix64's increment (kernels/random.h)

ModelConfig qwen25_half_billion_shape() {
  ModelConfig c;
  c.name = "qwen2.5-0.5b-shape";
  c.hidden = 896, c.layers = 24, c.heads = 14, c.kv_heads = 2, c.intermediate = 4864, c.vocab = 151936;
  c.max_seq_len = 32768, c.rope_theta = 1e6, c.tie_embeddings = true, c.qkv_bias = true;
  return c;
}

// The value written for element i of the flat parameter order: Rng(kSeed)'s (i + 1)-th draw, uniform in
// [-0.05, 0.05), rounded to bf16; norm weights are 1.
uint16_t value_bits(uint64_t draw, bool is_norm) {
  if (is_norm) return float_to_bf16(1.0f);
  const double u = (double)(draw >> 11) * (1.0 / 9007199254740992.0);
  return float_to_bf16((float)(0.1 * u - 0.05));
}

bool is_norm(const ParameterInfo& p) {
  return p.name.ends_with("norm.weight");
}

// model.safetensors in bf16, parameters in layout order, written in 1 MiB pieces.
int64_t write_bf16_safetensors(const ModelConfig& c, const fs::path& path) {
  const std::vector<ParameterInfo> layout = parameter_layout(c);
  nlohmann::ordered_json header = {{"__metadata__", {{"format", "pt"}}}};
  for (const ParameterInfo& p : layout)
    header[p.name] = {
        {"dtype", "BF16"}, {"shape", p.shape}, {"data_offsets", {2 * p.offset, 2 * (p.offset + p.numel)}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  COHORT_REQUIRE(out, "cannot create " << path.string());
  const uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), (std::streamsize)text.size());
  Rng rng(kSeed);
  std::vector<uint16_t> piece(size_t(1) << 19);
  for (const ParameterInfo& p : layout) {
    for (int64_t done = 0; done < p.numel;) {
      const int64_t n = std::min<int64_t>(p.numel - done, (int64_t)piece.size());
      for (int64_t i = 0; i < n; ++i) piece[(size_t)i] = value_bits(rng.next_u64(), is_norm(p));
      out.write(reinterpret_cast<const char*>(piece.data()), n * 2);
      done += n;
    }
  }
  out.close();
  COHORT_REQUIRE(out, "writing " << path.string() << " failed");
  return (int64_t)fs::file_size(path);
}

// A "VmXXX:  N kB" line of /proc/self/status, in bytes; 0 where absent.
int64_t proc_status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key) + 1)) * 1024;
  return 0;
}

int64_t max_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return (int64_t)usage.ru_maxrss * 1024;  // Linux reports kilobytes
}

double gib(int64_t bytes) {
  return (double)bytes / (1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = fs::temp_directory_path() / ("cohort_bench_model_load_" + std::to_string((long)::getpid()));
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--keep") {
      keep = true;
    } else {
      std::fprintf(stderr, "bench_model_load: unknown option %s (options: --dir DIR, --keep)\n", arg.c_str());
      return 2;
    }
  }
  try {
    const ModelConfig c = qwen25_half_billion_shape();
    fs::create_directories(dir);
    auto t0 = Clock::now();
    write_hf_config(c, dir.string(), 151643, 151645, "bfloat16");
    const int64_t file_bytes = write_bf16_safetensors(c, dir / "model.safetensors");
    const double write_seconds = std::chrono::duration<double>(Clock::now() - t0).count();

    const int64_t rss_before = proc_status_bytes("VmRSS:"), peak_before = proc_status_bytes("VmHWM:");
    t0 = Clock::now();
    std::unique_ptr<Transformer> model = load_model_directory(dir);
    const double load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const int64_t peak = proc_status_bytes("VmHWM:"), rss_after = proc_status_bytes("VmRSS:");
    const int64_t fp32_bytes = 4 * model->num_parameters();

    // Spot checks: the loaded fp32 value of element i is the bf16 written for it, widened.
    int64_t mismatches = 0, checked = 0;
    for (const ParameterInfo& p : model->parameters())
      for (int64_t i : {int64_t(0), p.numel / 2, p.numel - 1}) {
        Rng draw(kSeed + (uint64_t)(p.offset + i) * kGolden);
        const float want = bf16_to_float(value_bits(draw.next_u64(), is_norm(p)));
        mismatches += std::memcmp(&want, &model->weights()[(size_t)(p.offset + i)], sizeof(float)) != 0;
        ++checked;
      }
    COHORT_REQUIRE(mismatches == 0, mismatches << " of " << checked << " spot-checked weights differ from the file");

    const nlohmann::json result = {
        {"bench", "model_load"},
        {"model", c.name},
        {"parameters", model->num_parameters()},
        {"file", "model.safetensors (BF16)"},
        {"file_bytes", file_bytes},
        {"fp32_weights_bytes", fp32_bytes},
        {"rss_before_load_bytes", rss_before},
        {"peak_rss_before_load_bytes", peak_before},
        {"peak_rss_bytes", peak},
        {"ru_maxrss_bytes", max_rss_bytes()},
        {"rss_after_load_bytes", rss_after},
        {"peak_over_fp32_weights", (double)peak / (double)fp32_bytes},
        {"peak_minus_start_over_fp32_weights", (double)(peak - rss_before) / (double)fp32_bytes},
        {"write_seconds", write_seconds},
        {"load_seconds", load_seconds},
        {"load_gb_per_s", (double)file_bytes / 1e9 / load_seconds},
        {"spot_checked_values", checked}};
    std::printf("%s\n", result.dump().c_str());
    std::printf(
        "# load peak RSS %.2f GiB (%.2f GiB before the load) beside %.2f GiB of fp32 weights "
        "(%.3fx) from a %.2f GiB bf16 file, %.1f s\n",
        gib(peak), gib(rss_before), gib(fp32_bytes), (double)peak / (double)fp32_bytes, gib(file_bytes), load_seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model_load: %s\n", e.what());
    if (!keep) fs::remove_all(dir);
    return 1;
  }
  if (!keep) fs::remove_all(dir);
  return 0;
}
