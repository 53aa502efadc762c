// How the MPI world is split into learners and rollout workers (config `distributed.*`). Pure functions.
#pragma once

#include <string>

namespace cohort::comm {

struct RoleLayout {
  int learners = 1;
  int rollout_workers = 1;
  // Every rank is both a learner and a rollout worker (the single-process quickstart, or one rank per GPU
  // doing both); then learners and rollout_workers must each equal the world size.
  bool colocated = false;
};

enum class Role { learner, rollout, both };

const char* role_name(Role role);

// Throws CommError with the numbers when the layout does not fit a world of world_size ranks.
void validate(const RoleLayout& layout, int world_size);

// Colocated: every rank is Role::both. Otherwise ranks [0, learners) are learners and the next
// rollout_workers ranks are rollout workers. Validates first; throws CommError for a rank outside the world.
Role role_of(int rank, int world_size, const RoleLayout& layout);

// The GPU a rank uses: its rank among the ranks on its node (one rank per GPU, as NCCL requires). Throws
// CommError naming both counts when the node runs more ranks than it has GPUs.
int device_of(int local_rank, int local_size, int device_count);

// One line per role with its ranks, e.g. "learners: 2 (ranks 0-1)\nrollout workers: 2 (ranks 2-3)\n".
std::string describe(const RoleLayout& layout, int world_size);

}  // namespace cohort::comm
