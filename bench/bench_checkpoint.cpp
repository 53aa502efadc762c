// Checkpoint write, load and resume time beside the disk's own speed: a bench-124m checkpoint (fp32 weights
// and both AdamW moments, about 1.5 GB) written and read through trainer/checkpoint.h, and the same number of
// bytes written with one plain sequential write + fsync and read back, in the same run, on the same disk.
// Prints one JSON object per round, one per measurement (the median of the rounds after a warm-up round)
// and the ratios of the medians.
// Usage: bench_checkpoint [--model NAME] [--dir DIR] [--repeats N]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/random.h"
#include "model/transformer.h"
#include "trainer/checkpoint.h"
#include "trainer/learner.h"
#include "trainer/run_checkpoint.h"

using namespace cohort;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// The ceiling: one write() loop of `bytes` from memory, then fsync, as a checkpoint must end.
double plain_write(const fs::path& path, const std::vector<char>& data) {
  fs::remove(path);  // a new file each time, as every checkpoint is
  auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  COHORT_REQUIRE(fd >= 0, "cannot create " << path);
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    COHORT_REQUIRE(n > 0, "write to " << path << " failed");
    done += (size_t)n;
  }
  COHORT_REQUIRE(::fsync(fd) == 0, "fsync failed");
  ::close(fd);
  return seconds_since(t0);
}

// One read() loop into `data`: memory already touched (the page cache's speed, no page faults), or, with
// `fresh`, a new vector of data.size() bytes allocated inside the timing, as a load into new memory must.
double plain_read(const fs::path& path, std::vector<char>& data, bool fresh) {
  auto t0 = Clock::now();
  std::vector<char> allocated;
  if (fresh) allocated.resize(data.size());
  char* into = fresh ? allocated.data() : data.data();
  int fd = ::open(path.c_str(), O_RDONLY);
  COHORT_REQUIRE(fd >= 0, "cannot open " << path);
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::read(fd, into + done, data.size() - done);
    COHORT_REQUIRE(n > 0, "read of " << path << " failed");
    done += (size_t)n;
  }
  ::close(fd);
  return seconds_since(t0);  // before the fresh vector is freed
}
}  // namespace

int main(int argc, char** argv) {
  std::string size = "bench-124m", dir = "bench-checkpoint.tmp";
  int repeats = 3;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      COHORT_REQUIRE(i + 1 < argc, "option " << a << " needs a value (options: --model --dir --repeats)");
      if (a == "--model")
        size = argv[++i];
      else if (a == "--dir")
        dir = argv[++i];
      else if (a == "--repeats")
        repeats = std::stoi(argv[++i]);
      else
        COHORT_REQUIRE(false, "unknown option " << a << " (options: --model --dir --repeats)");
    }
    COHORT_REQUIRE(repeats >= 1, "--repeats must be at least 1");
    fs::create_directories(dir);
    Transformer model(model_config_named(size));
    model.init_random(1);
    const int64_t n = model.num_parameters();
    std::vector<float> m(n), v(n);
    Rng rng(5);
    for (int64_t i = 0; i < n; ++i) m[i] = (float)rng.normal() * 1e-3f, v[i] = (float)(rng.uniform() * 1e-6);
    trainer::TrainingState state;
    state.step = 100, state.optimizer_steps = 100, state.data_cursor = {{"epoch", 0}};
    // What a resumed run has built before it restores the checkpoint into them: its model and its learner.
    trainer::Settings settings;
    Transformer resumed(model.config());
    trainer::Learner learner(resumed, settings, 1000);

    const double bytes = 3.0 * n * sizeof(float);
    std::vector<char> plain((size_t)bytes, 1);
    std::vector<double> write_s, plain_write_s, load_s, plain_read_s, fresh_read_s, resume_s;
    fs::path ck = fs::path(dir) / "step_00000100.h5", raw = fs::path(dir) / "plain.bin";
    // Round 0 warms up (the first 1.5 GB a process writes or allocates costs up to 4x more: the kernel finds
    // the pages); it is printed, not counted.
    for (int r = 0; r <= repeats; ++r) {
      // Alternate, so both meet the disk in the same state.
      const double plain_write_seconds = plain_write(raw, plain);
      fs::remove(ck);  // a run writes each checkpoint under a new name
      auto t0 = Clock::now();
      trainer::write_checkpoint(ck, model, {&m, &v, 0, {}}, nullptr, state, "seed: 1\n");
      const double write_seconds = seconds_since(t0);
      const double plain_read_seconds = plain_read(raw, plain, false),
                   fresh_read_seconds = plain_read(raw, plain, true);
      // Resume: the checkpoint read and verified, then restored the way a run restores it, up to where the
      // first new step can begin.
      t0 = Clock::now();
      trainer::CheckpointContents c = trainer::read_checkpoint(ck);
      const double load_seconds = seconds_since(t0);
      resumed.weights() = std::move(c.weights);
      trainer::detail::restore_learner(learner, c);
      const double resume_seconds = seconds_since(t0);
      COHORT_REQUIRE(resumed.weights() == model.weights() && learner.optimizer().first_moments() == m &&
                         learner.optimizer().second_moments() == v && learner.optimizer().steps_taken() == 100,
                     "checkpoint round trip differs");
      std::printf(
          "{\"round\":%d,%s\"checkpoint_write\":%.3f,\"plain_write\":%.3f,\"checkpoint_load\":%.3f,"
          "\"plain_read\":%.3f,\"plain_read_new_memory\":%.3f,\"resume\":%.3f}\n",
          r, r == 0 ? "\"warmup\":true," : "", write_seconds, plain_write_seconds, load_seconds, plain_read_seconds,
          fresh_read_seconds, resume_seconds);
      std::fflush(stdout);
      if (r == 0) continue;
      plain_write_s.push_back(plain_write_seconds), write_s.push_back(write_seconds);
      plain_read_s.push_back(plain_read_seconds), fresh_read_s.push_back(fresh_read_seconds);
      load_s.push_back(load_seconds), resume_s.push_back(resume_seconds);
    }
    auto line = [&](const char* bench, const std::vector<double>& s, bool with_model) {
      const double t = median(s);
      std::printf("{\"bench\":\"%s\"%s%s%s,\"bytes\":%.0f,\"seconds\":%.3f,\"gb_per_s\":%.2f,\"repeats\":%d}\n", bench,
                  with_model ? ",\"model\":\"" : "", with_model ? size.c_str() : "", with_model ? "\"" : "", bytes, t,
                  bytes / t / 1e9, repeats);
    };
    line("checkpoint_write", write_s, true);
    line("plain_write", plain_write_s, false);
    line("checkpoint_load", load_s, true);
    line("plain_read", plain_read_s, false);
    line("plain_read_new_memory", fresh_read_s, false);
    line("resume", resume_s, true);
    std::printf(
        "medians of %d: checkpoint write %.2fx the plain write (goal <= 1.5x); load %.2fx the plain read, %.2fx "
        "the plain read into new memory (load verifies every checksum); resume (load + restore into the model and "
        "the learner) %.3f s\n",
        repeats, median(write_s) / median(plain_write_s), median(load_s) / median(plain_read_s),
        median(load_s) / median(fresh_read_s), median(resume_s));
    fs::remove_all(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_checkpoint: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
