// Weight-sync benchmark, under mpirun with 2+ ranks (rank 0 sends, the others receive): for each named
// model size, seconds to send its flat fp32 weights as cohort does (buckets of distributed.bucket_mb, fp32
// and bf16), beside the two references measured in the same run: one MPI_Bcast of the whole buffer (the
// MPI bandwidth ceiling) and one broadcast per parameter tensor (how per-parameter weight sync works).
// Prints one JSON object per (model, method).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "comm/collective.h"
#include "comm/world.h"
#include "model/config.h"
#include "model/transformer.h"
#include "trainer/weight_sync.h"

using namespace cohort;

namespace {

// Best of `repeats` timings of fn, each started together on every rank and ended when the slowest is done.
template <typename F>
double best_seconds(int repeats, F&& fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    fn();
    double local = MPI_Wtime() - t0, slowest = 0;
    MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    best = std::min(best, slowest);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  comm::World world(&argc, &argv);
  std::vector<std::string> sizes = {"small", "bench-124m"};
  double bucket_mb = 32;
  int repeats = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bucket-mb" && i + 1 < argc)
      bucket_mb = std::stod(argv[++i]);
    else if (a == "--repeats" && i + 1 < argc)
      repeats = std::stoi(argv[++i]);
    else if (a == "--models" && i + 1 < argc) {
      sizes.clear();
      std::string list = argv[++i];
      for (size_t p = 0; p <= list.size();) {
        size_t q = std::min(list.find(',', p), list.size());
        sizes.push_back(list.substr(p, q - p));
        p = q + 1;
      }
    } else {
      if (world.rank() == 0)
        std::fprintf(stderr, "usage: bench_weight_sync [--models a,b] [--bucket-mb X] [--repeats N]\n");
      return 2;
    }
  }
  if (world.size() < 2) {
    std::fprintf(stderr, "bench_weight_sync: run under mpirun with at least 2 ranks\n");
    return 2;
  }
  comm::MpiCollective group(MPI_COMM_WORLD, 600);
  const int64_t bucket_bytes = (int64_t)(bucket_mb * (1 << 20));
  for (const std::string& size : sizes) {
    Transformer model(model_config_named(size));
    model.init_random(1);
    const int64_t n = model.num_parameters();
    float* w = model.weights().data();
    const double bytes = 4.0 * (double)n;
    auto report = [&](const char* method, double seconds, double wire_bytes, int64_t calls) {
      if (world.rank() != 0) return;
      std::printf(
          "{\"bench\":\"weight_sync\",\"model\":\"%s\",\"parameters\":%lld,\"ranks\":%d,\"method\":\"%s\","
          "\"calls\":%lld,\"bytes\":%.0f,\"seconds\":%.6f,\"GB_per_s\":%.3f}\n",
          size.c_str(), (long long)n, world.size(), method, (long long)calls, wire_bytes, seconds,
          wire_bytes / seconds / 1e9);
      std::fflush(stdout);
    };
    double whole = best_seconds(repeats, [&] { group.broadcast(w, n, 0); });
    report("mpi_bcast_whole_buffer", whole, bytes, 1);
    trainer::SyncStats fp32{}, bf16{};
    double bucketed = best_seconds(
        repeats, [&] { fp32 = trainer::broadcast_weights(group, w, n, 0, bucket_bytes, trainer::SyncDtype::fp32); });
    report("cohort_buckets_fp32", bucketed, (double)fp32.bytes, fp32.buckets + 1);
    // bf16 receivers overwrite their weights with rounded ones; rank 0's stay exact.
    double half = best_seconds(
        repeats, [&] { bf16 = trainer::broadcast_weights(group, w, n, 0, bucket_bytes, trainer::SyncDtype::bf16); });
    report("cohort_buckets_bf16", half, (double)bf16.bytes, bf16.buckets + 1);
    const auto& params = model.parameters();
    double per_tensor = best_seconds(repeats, [&] {
      for (const auto& p : params) group.broadcast(w + p.offset, p.numel, 0);
    });
    report("per_parameter_bcast", per_tensor, bytes, (int64_t)params.size());
  }
  return 0;
}
