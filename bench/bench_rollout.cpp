// The rollout benchmark: the generation engine's tokens/s with continuous batching
// against static batching, on a workload whose lengths vary tenfold, as RL rollouts do
// (one long completion holds a static batch hostage while its finished slots sit idle).
// Prints one JSON object per mode, then one with the speedup.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/random.h"
#include "kernels/threads.h"
#include "model/byte_tokenizer.h"
#include "model/transformer.h"
#include "rollout/engine.h"

using namespace cohort;
using namespace cohort::rollout;
using Clock = std::chrono::steady_clock;

namespace {

// requests prompts of prompt_len random bytes; max_new_tokens spread evenly over
// [min_new, max_new] and shuffled, so long and short ones mix in every batch.
std::vector<GenerationRequest> make_requests(int64_t requests, int64_t prompt_len, int64_t min_new, int64_t max_new) {
  Rng rng(2024);
  std::vector<GenerationRequest> out((size_t)requests);
  for (int64_t i = 0; i < requests; ++i) {
    GenerationRequest& r = out[i];
    for (int64_t t = 0; t < prompt_len; ++t) r.prompt.push_back((int32_t)rng.below(256));
    double frac = requests > 1 ? (double)i / (double)(requests - 1) : 0.0;
    r.max_new_tokens = min_new + std::llround(frac * (double)(max_new - min_new));
    r.sampling.temperature = 1.f;
    r.seed = (uint64_t)i;
  }
  for (int64_t i = requests - 1; i > 0; --i) std::swap(out[i].max_new_tokens, out[rng.below(i + 1)].max_new_tokens);
  return out;
}

struct Run {
  std::vector<Completion> completions;
  GenerationStats stats;
  double seconds = 0;
};

// Best of `repeats` wall-clock runs of one generate() call.
Run time_generate(Transformer& model, const Tokenizer& tokenizer, const std::vector<GenerationRequest>& requests,
                  int64_t max_batch, bool continuous, int repeats) {
  EngineOptions options;
  options.max_batch = max_batch;
  options.continuous = continuous;
  GenerationEngine engine(model, tokenizer, options);
  Run best;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = Clock::now();
    std::vector<Completion> out = engine.generate(requests);
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r == 0 || s < best.seconds) best = {std::move(out), engine.last_stats(), s};
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  std::string size = "small";
  int64_t requests = 64, max_batch = 16, prompt_len = 16, min_new = 12, max_new = 120;
  int repeats = 3;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        COHORT_REQUIRE(i + 1 < argc, "option " << a << " needs a value");
        return argv[++i];
      };
      if (a == "--model")
        size = value();
      else if (a == "--requests")
        requests = std::stol(value());
      else if (a == "--max-batch")
        max_batch = std::stol(value());
      else if (a == "--prompt")
        prompt_len = std::stol(value());
      else if (a == "--min-new")
        min_new = std::stol(value());
      else if (a == "--max-new")
        max_new = std::stol(value());
      else if (a == "--repeats")
        repeats = std::stoi(value());
      else if (a == "--threads")
        threads = std::stoi(value());
      else
        COHORT_REQUIRE(false, "unknown option " << a
                                                << " (options: --model --requests --max-batch --prompt --min-new "
                                                   "--max-new --repeats --threads)");
    }
    COHORT_REQUIRE(requests >= 1 && max_batch >= 1 && prompt_len >= 1 && repeats >= 1,
                   "--requests, --max-batch, --prompt and --repeats must be positive");
    COHORT_REQUIRE(0 <= min_new && min_new <= max_new, "need 0 <= --min-new <= --max-new");
    apply_threads(threads, 0);  // --threads, else COHORT_THREADS, else the cores given

    ModelConfig c = model_config_named(size);
    Transformer model(c);
    model.init_random(1);
    ByteTokenizer tokenizer;
    std::vector<GenerationRequest> work = make_requests(requests, prompt_len, min_new, max_new);
    time_generate(model, tokenizer, make_requests(4, prompt_len, 4, 4), 4, true, 1);  // warm up threads and caches

    double tokens_per_s[2] = {0, 0};
    std::vector<Completion> outputs[2];
    const char* modes[2] = {"continuous", "static"};
    for (int m = 0; m < 2; ++m) {
      Run run = time_generate(model, tokenizer, work, max_batch, m == 0, repeats);
      tokens_per_s[m] = (double)run.stats.generated_tokens / run.seconds;
      outputs[m] = std::move(run.completions);
      std::printf(
          "{\"bench\":\"rollout\",\"mode\":\"%s\",\"model\":\"%s\",\"requests\":%ld,\"max_batch\":%ld,"
          "\"prompt_tokens\":%ld,\"generated_tokens\":%ld,\"decode_steps\":%ld,\"prefill_seconds\":%.4f,"
          "\"decode_seconds\":%.4f,\"seconds\":%.4f,\"tokens_per_s\":%.1f,\"threads\":%d}\n",
          modes[m], c.name.c_str(), (long)requests, (long)max_batch, (long)run.stats.prompt_tokens,
          (long)run.stats.generated_tokens, (long)run.stats.decode_steps, run.stats.prefill_seconds,
          run.stats.decode_seconds, run.seconds, tokens_per_s[m], thread_count());
      std::fflush(stdout);
    }
    // Each request samples from its own stream, so both modes should produce the same
    // tokens (logprobs agree to float rounding; see tests/rollout/test_engine.cpp).
    bool same_tokens = true;
    for (size_t r = 0; r < outputs[0].size(); ++r) same_tokens &= outputs[0][r].tokens == outputs[1][r].tokens;
    std::printf("{\"bench\":\"rollout\",\"speedup\":%.3f,\"continuous_over\":\"static\",\"same_tokens\":%s}\n",
                tokens_per_s[0] / tokens_per_s[1], same_tokens ? "true" : "false");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_rollout: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
