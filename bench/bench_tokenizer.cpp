// Tokenizer throughput: cohort's BpeTokenizer encode and decode in MB/s of text, beside Hugging
// Face `tokenizers` on the same file, the same lines and the same thread count, in the same run.
// cohort encodes each line with encode(line, add_bos=false, parse_special=true); tokenizers with
// encode_batch(lines, add_special_tokens=False) under RAYON_NUM_THREADS=N (and
// TOKENIZERS_PARALLELISM=false for N=1), plus a Python loop of single encode() calls. Decode is
// decode per line against decode_batch. Each figure is the best of --reps runs (caches warm).
//
//   bench_tokenizer [--tokenizer tokenizer.json --text FILE] [--threads N] [--reps N]
//
// Without --tokenizer it trains the GPT-2, Llama 3 and Qwen2-style tokenizers and writes ~4 MB of
// mixed text with tests/hf/check_tokenizers.py (needs `tokenizers`; says "skipped" without it).
// Prints one JSON line per implementation and thread count, then a table.

#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/bpe_tokenizer.h"

namespace {

namespace fs = std::filesystem;
using cohort::BpeTokenizer;
using Clock = std::chrono::steady_clock;

std::string python() {
  return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}
std::string script() {
  return std::string(COHORT_SOURCE_DIR) + "/tests/hf/check_tokenizers.py";
}

// Runs a shell command and returns its standard output; rc gets the exit status.
std::string run(const std::string& command, int* rc) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    *rc = -1;
    return out;
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = pclose(pipe);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  std::vector<std::string> lines;
  std::string all = text.str();
  size_t start = 0;
  for (size_t i = 0; i <= all.size(); ++i) {  // as Python's str.split("\n")
    if (i == all.size() || all[i] == '\n') {
      lines.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  }
  return lines;
}

// Best wall time of `reps` runs of work(line_begin, line_end) spread over `threads` threads. The
// threads live across the runs, as a worker pool would, so their word caches stay warm.
template <class Work>
double best_seconds(size_t count, int threads, int reps, Work&& work) {
  double best = 1e300;
  if (threads == 1) {
    for (int rep = 0; rep < reps; ++rep) {
      const auto start = Clock::now();
      work(size_t{0}, count);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
    }
    return best;
  }
  std::barrier sync(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int rep = 0; rep < reps; ++rep) {
        sync.arrive_and_wait();
        work(count * t / threads, count * (t + 1) / threads);
        sync.arrive_and_wait();
      }
    });
  }
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = Clock::now();
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  for (std::thread& thread : pool) thread.join();
  return best;
}

struct Figures {
  double encode_mb_s = 0, decode_mb_s = 0, single_mb_s = 0;
  long tokens = 0;
  bool have = false;
  std::string skipped;
};

Figures bench_cohort(const fs::path& tokenizer_json, const std::vector<std::string>& lines, int threads, int reps,
                     double megabytes) {
  const BpeTokenizer tok = BpeTokenizer::from_file(tokenizer_json);
  std::vector<std::vector<int32_t>> ids(lines.size());
  const double encode_s = best_seconds(lines.size(), threads, reps, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) ids[i] = tok.encode(lines[i], false, true);
  });
  std::vector<std::string> decoded(lines.size());
  const double decode_s = best_seconds(lines.size(), threads, reps, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) decoded[i] = tok.decode(ids[i], false);
  });
  Figures f;
  f.have = true;
  f.encode_mb_s = megabytes / encode_s;
  f.decode_mb_s = megabytes / decode_s;
  for (const auto& line_ids : ids) f.tokens += static_cast<long>(line_ids.size());
  return f;
}

Figures bench_tokenizers(const fs::path& tokenizer_json, const fs::path& text, int threads, int reps) {
  Figures f;
  int rc = 0;
  const std::string command = python() + " " + script() + " bench " + tokenizer_json.string() + " " + text.string() +
                              " --threads " + std::to_string(threads) + " --reps " + std::to_string(reps) + " 2>&1";
  const std::string out = run(command, &rc);
  const size_t brace = out.rfind("\n{") == std::string::npos ? out.find('{') : out.rfind("\n{") + 1;
  if (rc != 0 || brace == std::string::npos) {
    std::istringstream lines(out);
    std::string last, line;
    while (std::getline(lines, line)) {
      if (!line.empty()) last = line;
    }
    f.skipped = "tokenizers: skipped (" + last + ")";
    return f;
  }
  const nlohmann::json j = nlohmann::json::parse(out.substr(brace));
  f.have = true;
  f.encode_mb_s = j.at("encode_mb_s").get<double>();
  f.decode_mb_s = j.at("decode_mb_s").get<double>();
  f.single_mb_s = j.at("encode_single_calls_mb_s").get<double>();
  f.tokens = j.at("tokens").get<long>();
  return f;
}

int usage() {
  std::cerr << "usage: bench_tokenizer [--tokenizer tokenizer.json --text FILE] [--threads N] [--reps N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, fs::path>> tokenizers;
  fs::path text;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage();
    if (arg == "--tokenizer") {
      const fs::path path = argv[++i];
      tokenizers.emplace_back(path.parent_path().filename().string(), path);
    } else if (arg == "--text") {
      text = argv[++i];
    } else if (arg == "--threads") {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--reps") {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      return usage();
    }
  }
  fs::path scratch;
  if (tokenizers.empty()) {
    char dir_template[] = "/tmp/cohort_bench_tokenizer_XXXXXX";
    if (!mkdtemp(dir_template)) return 1;
    scratch = dir_template;
    int rc = 0;
    const std::string out =
        run(python() + " " + script() + " make " + scratch.string() + " --lines 0 --bench-bytes 4000000 2>&1", &rc);
    if (rc != 0) {
      std::cout << "bench_tokenizer: skipped: tokenizers not installable or failed to train ("
                << out.substr(out.rfind('\n', out.size() - 2) + 1);
      fs::remove_all(scratch);
      return 0;
    }
    for (const char* name : {"gpt2", "llama3", "qwen2"})
      tokenizers.emplace_back(name, scratch / name / "tokenizer.json");
    text = scratch / "bench.txt";
  }
  if (text.empty()) return usage();
  const std::vector<std::string> lines = read_lines(text);
  double megabytes = 0;
  for (const std::string& line : lines) megabytes += static_cast<double>(line.size()) / 1e6;

  std::vector<nlohmann::json> records;
  std::vector<int> thread_counts = {1};
  if (threads > 1) thread_counts.push_back(threads);
  std::printf("# %s: %.2f MB in %zu lines; best of %d runs\n", text.string().c_str(), megabytes, lines.size(), reps);
  std::printf("%-8s %-8s %8s %14s %14s %14s %16s %12s\n", "tokenizer", "threads", "impl", "encode MB/s", "decode MB/s",
              "vs tokenizers", "1-call enc MB/s", "tokens");
  for (const auto& [name, path] : tokenizers) {
    for (const int n : thread_counts) {
      const Figures ours = bench_cohort(path, lines, n, reps, megabytes);
      const Figures theirs = bench_tokenizers(path, text, n, reps);
      std::printf("%-8s %-8d %8s %14.2f %14.2f %14s %16s %12ld\n", name.c_str(), n, "cohort", ours.encode_mb_s,
                  ours.decode_mb_s, "", "", ours.tokens);
      nlohmann::json record = {{"bench", "tokenizer"},
                               {"tokenizer", name},
                               {"threads", n},
                               {"megabytes", megabytes},
                               {"impl", "cohort"},
                               {"encode_mb_s", ours.encode_mb_s},
                               {"decode_mb_s", ours.decode_mb_s},
                               {"tokens", ours.tokens}};
      records.push_back(record);
      if (!theirs.have) {
        std::printf("%-8s %-8d %8s %s\n", name.c_str(), n, "tokenizers", theirs.skipped.c_str());
        continue;
      }
      char ratio[64];
      std::snprintf(ratio, sizeof(ratio), "x%.2f / x%.2f", ours.encode_mb_s / theirs.encode_mb_s,
                    ours.decode_mb_s / theirs.decode_mb_s);
      std::printf("%-8s %-8d %8s %14.2f %14.2f %14s %16.2f %12ld%s\n", name.c_str(), n, "HF", theirs.encode_mb_s,
                  theirs.decode_mb_s, ratio, theirs.single_mb_s, theirs.tokens,
                  theirs.tokens == ours.tokens ? "" : "  (token counts differ!)");
      record["impl"] = "tokenizers";
      record["encode_mb_s"] = theirs.encode_mb_s;
      record["decode_mb_s"] = theirs.decode_mb_s;
      record["encode_single_calls_mb_s"] = theirs.single_mb_s;
      record["tokens"] = theirs.tokens;
      records.push_back(record);
    }
  }
  for (const nlohmann::json& record : records) std::printf("%s\n", record.dump().c_str());
  if (!scratch.empty()) fs::remove_all(scratch);
  return 0;
}
