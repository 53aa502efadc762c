// Checkpoint write and load time beside the disk's own speed: a bench-124m checkpoint (fp32 weights and
// both AdamW moments, about 1.5 GB) written and read through trainer/checkpoint.h, and the same number of
// bytes written with one plain sequential write + fsync and read back, in the same run, on the same disk.
// Prints one JSON object per measurement and the ratios. Usage: bench_checkpoint [--model NAME] [--dir DIR]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/random.h"
#include "model/transformer.h"
#include "trainer/checkpoint.h"

using namespace cohort;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
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

double plain_read(const fs::path& path, std::vector<char>& data) {
  auto t0 = Clock::now();
  int fd = ::open(path.c_str(), O_RDONLY);
  COHORT_REQUIRE(fd >= 0, "cannot open " << path);
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::read(fd, data.data() + done, data.size() - done);
    COHORT_REQUIRE(n > 0, "read of " << path << " failed");
    done += (size_t)n;
  }
  ::close(fd);
  return seconds_since(t0);
}
}  // namespace

int main(int argc, char** argv) {
  std::string size = "bench-124m", dir = "bench-checkpoint.tmp";
  int repeats = 2;
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
    fs::create_directories(dir);
    Transformer model(model_config_named(size));
    model.init_random(1);
    const int64_t n = model.num_parameters();
    std::vector<float> m(n), v(n);
    Rng rng(5);
    for (int64_t i = 0; i < n; ++i) m[i] = (float)rng.normal() * 1e-3f, v[i] = (float)(rng.uniform() * 1e-6);
    trainer::TrainingState state;
    state.step = 100, state.optimizer_steps = 100, state.data_cursor = {{"epoch", 0}};
    const double bytes = 3.0 * n * sizeof(float);
    std::vector<char> plain((size_t)bytes, 1);
    double best_ck = 1e30, best_plain = 1e30, best_load = 1e30, best_read = 1e30;
    fs::path ck = fs::path(dir) / "step_00000100.h5", raw = fs::path(dir) / "plain.bin";
    for (int r = 0; r < repeats; ++r) {
      // Alternate, so both meet the disk in the same state.
      best_plain = std::min(best_plain, plain_write(raw, plain));
      fs::remove(ck);  // a run writes each checkpoint under a new name
      auto t0 = Clock::now();
      trainer::write_checkpoint(ck, model, {&m, &v, 0, {}}, nullptr, state, "seed: 1\n");
      best_ck = std::min(best_ck, seconds_since(t0));
      best_read = std::min(best_read, plain_read(raw, plain));
      t0 = Clock::now();
      trainer::CheckpointContents c = trainer::read_checkpoint(ck);
      best_load = std::min(best_load, seconds_since(t0));
      COHORT_REQUIRE(c.weights == model.weights() && c.adam_m == m && c.adam_v == v, "checkpoint round trip differs");
    }
    std::printf("{\"bench\":\"checkpoint_write\",\"model\":\"%s\",\"bytes\":%.0f,\"seconds\":%.3f,\"gb_per_s\":%.2f}\n",
                size.c_str(), bytes, best_ck, bytes / best_ck / 1e9);
    std::printf("{\"bench\":\"plain_write\",\"bytes\":%.0f,\"seconds\":%.3f,\"gb_per_s\":%.2f}\n", bytes, best_plain,
                bytes / best_plain / 1e9);
    std::printf("{\"bench\":\"checkpoint_load\",\"model\":\"%s\",\"seconds\":%.3f,\"gb_per_s\":%.2f}\n", size.c_str(),
                best_load, bytes / best_load / 1e9);
    std::printf("{\"bench\":\"plain_read\",\"seconds\":%.3f,\"gb_per_s\":%.2f}\n", best_read, bytes / best_read / 1e9);
    std::printf(
        "checkpoint write %.2fx the plain write (goal <= 1.5x); load %.2fx the plain read (load verifies "
        "every checksum)\n",
        best_ck / best_plain, best_load / best_read);
    fs::remove_all(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_checkpoint: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
