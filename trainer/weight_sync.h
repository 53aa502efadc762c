// Weight sync from the learner to rollout workers: the flat parameter buffer sent as a few large buckets
// (one broadcast per bucket, never one per tensor), in fp32 (exact) or bf16 (half the bytes).
#pragma once

#include <cstdint>

#include "comm/collective.h"
#include "comm/roles.h"
#include "trainer/settings.h"

namespace cohort::trainer {

struct SyncStats {
  int64_t bytes = 0;        // weights on the wire, per receiver
  int64_t buckets = 0;      // weight broadcasts issued (after the header)
  int64_t version = 0;      // the root's version, as received
  double wait_seconds = 0;  // until the header arrived: waiting for the root
  double seconds = 0;       // the whole sync, wait included
};

// Every rank of `group` calls it with the same bucket_bytes and dtype. A small header goes first (the
// parameter count, checked on every rank, and root's `version`, returned in SyncStats), then the weights.
// root's weights are sent, never changed; every other rank's are overwritten (rounded to bf16 and widened
// back when dtype is bf16).
SyncStats broadcast_weights(comm::Collective& group, float* weights, int64_t n, int root, int64_t bucket_bytes,
                            SyncDtype dtype, int64_t version = 0);

// The role layout that distributed.* gives a world of world_size ranks (0 counts filled in); throws
// comm::CommError when the numbers do not fit.
comm::RoleLayout role_layout(const DistributedSettings& d, int world_size);

}  // namespace cohort::trainer
