#include "comm/roles.h"

#include "comm/mpi_check.h"

namespace cohort::comm {
namespace {

std::string rank_range(int first, int count) {
  if (count == 1) return "rank " + std::to_string(first);
  return "ranks " + std::to_string(first) + "-" + std::to_string(first + count - 1);
}

std::string counts(const RoleLayout& layout) {
  return "distributed.learners (" + std::to_string(layout.learners) + ") + distributed.rollout_workers (" +
         std::to_string(layout.rollout_workers) + ")";
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::learner:
      return "learner";
    case Role::rollout:
      return "rollout";
    case Role::both:
      return "both";
  }
  return "unknown";
}

void validate(const RoleLayout& layout, int world_size) {
  if (world_size < 1) throw CommError("world size must be at least 1, got " + std::to_string(world_size));
  if (layout.learners < 1) {
    throw CommError("distributed.learners must be at least 1, got " + std::to_string(layout.learners));
  }
  if (layout.rollout_workers < 1) {
    throw CommError("distributed.rollout_workers must be at least 1, got " + std::to_string(layout.rollout_workers));
  }
  if (layout.colocated) {
    if (layout.learners != world_size || layout.rollout_workers != world_size) {
      throw CommError("distributed.colocated is set, so every rank is both a learner and a rollout worker and " +
                      std::string("distributed.learners (") + std::to_string(layout.learners) +
                      ") and distributed.rollout_workers (" + std::to_string(layout.rollout_workers) +
                      ") must both equal the world size, but mpirun started " + std::to_string(world_size) +
                      (world_size == 1 ? " rank" : " ranks"));
    }
    return;
  }
  const long long total = static_cast<long long>(layout.learners) + layout.rollout_workers;
  if (total != world_size) {
    throw CommError(counts(layout) + " = " + std::to_string(total) + ", but mpirun started " +
                    std::to_string(world_size) + (world_size == 1 ? " rank" : " ranks"));
  }
}

Role role_of(int rank, int world_size, const RoleLayout& layout) {
  validate(layout, world_size);
  if (rank < 0 || rank >= world_size) {
    throw CommError("rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world_size) + " ranks");
  }
  if (layout.colocated) return Role::both;
  return rank < layout.learners ? Role::learner : Role::rollout;
}

int device_of(int local_rank, int local_size, int device_count) {
  if (device_count < 1)
    throw CommError("no GPU is visible to this rank (device count " + std::to_string(device_count) + ")");
  if (local_size > device_count) {
    throw CommError("this node runs " + std::to_string(local_size) + " ranks but has " + std::to_string(device_count) +
                    " GPUs: start at most one rank per GPU");
  }
  if (local_rank < 0 || local_rank >= local_size) {
    throw CommError("local rank " + std::to_string(local_rank) + " is outside the node's " +
                    std::to_string(local_size) + " ranks");
  }
  return local_rank;
}

std::string describe(const RoleLayout& layout, int world_size) {
  validate(layout, world_size);
  if (layout.colocated) {
    const std::string ranks = rank_range(0, world_size);
    return "learners: " + std::to_string(world_size) + " (" + ranks + ", colocated)\n" +
           "rollout workers: " + std::to_string(world_size) + " (" + ranks + ", colocated)\n";
  }
  return "learners: " + std::to_string(layout.learners) + " (" + rank_range(0, layout.learners) + ")\n" +
         "rollout workers: " + std::to_string(layout.rollout_workers) + " (" +
         rank_range(layout.learners, layout.rollout_workers) + ")\n";
}

}  // namespace cohort::comm
