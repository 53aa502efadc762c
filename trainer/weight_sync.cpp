#include "trainer/weight_sync.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/error.h"

namespace cohort::trainer {

namespace {

void send_buckets(comm::Collective& group, float* weights, int64_t n, int root, int64_t bucket_bytes, SyncDtype dtype,
                  SyncStats& stats) {
  if (dtype == SyncDtype::fp32) {
    const int64_t per_bucket = bucket_bytes / 4;
    for (int64_t off = 0; off < n; off += per_bucket) {
      const int64_t c = std::min(per_bucket, n - off);
      group.broadcast(weights + off, c, root);
      stats.bytes += c * 4, stats.buckets += 1;
    }
    return;
  }
  const bool is_root = group.rank() == root;
  const int64_t per_bucket = bucket_bytes / 2;
  std::vector<uint16_t> staging((size_t)std::min(per_bucket, n));
  for (int64_t off = 0; off < n; off += per_bucket) {
    const int64_t c = std::min(per_bucket, n - off);
    if (is_root) float_to_bf16(weights + off, staging.data(), c);
    group.broadcast_bytes(staging.data(), c * 2, root);
    if (!is_root) bf16_to_float(staging.data(), weights + off, c);
    stats.bytes += c * 2, stats.buckets += 1;
  }
}

}  // namespace

SyncStats broadcast_weights(comm::Collective& group, float* weights, int64_t n, int root, int64_t bucket_bytes,
                            SyncDtype dtype, int64_t version) {
  COHORT_REQUIRE(bucket_bytes >= 4, "weight sync bucket of " << bucket_bytes << " bytes is too small");
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  SyncStats stats;
  int64_t header[2] = {n, version};
  group.broadcast_bytes(header, sizeof header, root);
  stats.wait_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  stats.version = header[1];
  COHORT_REQUIRE(header[0] == n, "rank " << group.rank() << " of the weight-sync group: the sender has " << header[0]
                                         << " parameters but this rank's model has " << n
                                         << " (do all ranks load the same model?)");
  send_buckets(group, weights, n, root, bucket_bytes, dtype, stats);
  stats.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return stats;
}

comm::RoleLayout role_layout(const DistributedSettings& d, int world_size) {
  comm::RoleLayout layout;
  layout.colocated = d.colocated;
  if (d.colocated) {
    layout.learners = d.learners ? (int)d.learners : world_size;
    layout.rollout_workers = d.rollout_workers ? (int)d.rollout_workers : world_size;
  } else {
    layout.learners = (int)d.learners;
    layout.rollout_workers = d.rollout_workers ? (int)d.rollout_workers : world_size - (int)d.learners;
  }
  comm::validate(layout, world_size);
  return layout;
}

}  // namespace cohort::trainer
