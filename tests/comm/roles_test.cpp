#include "comm/roles.h"

#include <gtest/gtest.h>

#include "comm/mpi_check.h"

namespace cohort::comm {
namespace {

std::string error_of(const RoleLayout& layout, int world_size) {
  try {
    validate(layout, world_size);
  } catch (const CommError& e) {
    return e.what();
  }
  return "";
}

TEST(Roles, SplitLayoutAssignsLearnersThenRollout) {
  const RoleLayout layout{2, 3, false};
  EXPECT_NO_THROW(validate(layout, 5));
  for (int r = 0; r < 2; ++r) EXPECT_EQ(role_of(r, 5, layout), Role::learner) << "rank " << r;
  for (int r = 2; r < 5; ++r) EXPECT_EQ(role_of(r, 5, layout), Role::rollout) << "rank " << r;
}

TEST(Roles, ColocatedEveryRankDoesBoth) {
  const RoleLayout layout{4, 4, true};
  for (int r = 0; r < 4; ++r) EXPECT_EQ(role_of(r, 4, layout), Role::both);
  EXPECT_EQ(role_of(0, 1, RoleLayout{1, 1, true}), Role::both);
}

TEST(Roles, CountsThatDoNotAddUpNameTheNumbers) {
  EXPECT_EQ(error_of(RoleLayout{2, 2, false}, 3),
            "distributed.learners (2) + distributed.rollout_workers (2) = 4, but mpirun started 3 ranks");
  EXPECT_EQ(error_of(RoleLayout{1, 1, false}, 1),
            "distributed.learners (1) + distributed.rollout_workers (1) = 2, but mpirun started 1 rank");
}

TEST(Roles, ColocatedCountsMustEqualWorld) {
  const std::string msg = error_of(RoleLayout{2, 2, true}, 3);
  EXPECT_NE(msg.find("distributed.colocated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mpirun started 3 ranks"), std::string::npos) << msg;
}

TEST(Roles, NonPositiveCountsAndBadRanksThrow) {
  EXPECT_NE(error_of(RoleLayout{0, 2, false}, 2).find("distributed.learners must be at least 1"), std::string::npos);
  EXPECT_NE(error_of(RoleLayout{2, -1, false}, 1).find("distributed.rollout_workers must be at least 1"),
            std::string::npos);
  EXPECT_THROW(validate(RoleLayout{1, 1, false}, 0), CommError);
  EXPECT_THROW(role_of(2, 2, RoleLayout{1, 1, false}), CommError);
  EXPECT_THROW(role_of(-1, 2, RoleLayout{1, 1, false}), CommError);
  EXPECT_THROW(describe(RoleLayout{1, 1, false}, 3), CommError);
}

TEST(Roles, DescribeListsRanksPerRole) {
  EXPECT_EQ(describe(RoleLayout{2, 2, false}, 4), "learners: 2 (ranks 0-1)\nrollout workers: 2 (ranks 2-3)\n");
  EXPECT_EQ(describe(RoleLayout{1, 3, false}, 4), "learners: 1 (rank 0)\nrollout workers: 3 (ranks 1-3)\n");
  EXPECT_EQ(describe(RoleLayout{2, 2, true}, 2),
            "learners: 2 (ranks 0-1, colocated)\nrollout workers: 2 (ranks 0-1, colocated)\n");
}

TEST(Roles, RoleNames) {
  EXPECT_STREQ(role_name(Role::learner), "learner");
  EXPECT_STREQ(role_name(Role::rollout), "rollout");
  EXPECT_STREQ(role_name(Role::both), "both");
}

TEST(Roles, OneGpuPerRankOnItsNode) {
  EXPECT_EQ(device_of(0, 8, 8), 0);
  EXPECT_EQ(device_of(7, 8, 8), 7);
  EXPECT_EQ(device_of(1, 2, 8), 1);
  try {
    device_of(0, 9, 8);
    ADD_FAILURE() << "9 ranks on 8 GPUs must be refused";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("this node runs 9 ranks but has 8 GPUs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(device_of(0, 1, 0), CommError);
  EXPECT_THROW(device_of(2, 2, 8), CommError);
}

}  // namespace
}  // namespace cohort::comm
