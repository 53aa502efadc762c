// Under mpirun with 2-3 ranks: data-parallel learners give the weights one learner gives, weight sync is
// bit exact, and protobuf rollout batches reach the right learner from every sender.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "comm/channel.h"
#include "comm/collective.h"
#include "comm/mpi_check.h"
#include "comm/proto/rollout.pb.h"
#include "comm/world.h"
#include "kernels/cpu/fp8.h"
#include "kernels/random.h"
#include "trainer/learner.h"
#include "trainer/weight_sync.h"

using namespace cohort;
using namespace cohort::trainer;

namespace {

constexpr double kTimeoutS = 60.0;  // a hang becomes a CommError well inside CTest's limit

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// AdamW with eps = 1 is continuous in the gradient: a gradient summed in another order moves a weight by
// about lr times the rounding difference, instead of flipping the sign of a near-zero Adam step.
Settings dp_settings(LossAggregation aggregation) {
  Settings s;
  s.optim.lr = 1e-2;
  s.optim.eps = 1.0;
  s.optim.grad_clip = 0.05;  // small enough to clip: the norm must be the global one
  s.optim.weight_decay = 0.1;
  s.algorithm.loss.aggregation = aggregation;
  s.algorithm.loss.max_completion_tokens = 4;
  s.algorithm.num_iterations = 2;
  s.algorithm.micro_batch = 3;
  s.algorithm.mask_truncated = true;
  s.distributed.bucket_mb = 0.01;  // ~2600 floats: the tiny model's 27k parameters take several buckets
  return s;
}

std::vector<Sample> make_samples(int n) {
  std::vector<Sample> out;
  for (int i = 0; i < n; ++i) {
    Sample x;
    x.prompt = {256, 10 + i % 7, 20 + i % 5};
    for (int j = 0; j <= i % 4; ++j) x.completion.push_back(30 + (i * 3 + j) % 40);
    for (size_t j = 0; j < x.completion.size(); ++j) x.rollout_logprobs.push_back(-1.0f - 0.1f * j);
    x.advantage = (i % 5 - 2) * 0.5;
    x.truncated = i % 7 == 3;
    out.push_back(x);
  }
  return out;
}

std::vector<Sample> share_of(const std::vector<Sample>& all, int rank, int size) {
  std::vector<Sample> mine;
  for (size_t i = 0; i < all.size(); ++i)
    if ((int)(i % size) == rank) mine.push_back(all[i]);
  return mine;
}

void expect_weights_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  size_t where = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = std::fabs((double)a[i] - b[i]);
    if (d > worst) worst = d, where = i;
  }
  EXPECT_LE(worst, tol) << "rank " << world_rank() << ": weight " << where << " differs by " << worst;
}

// One learner and one data-parallel replica from the same initial weights.
struct LearnerPair {
  Transformer one{model_config_named("tiny")}, many{model_config_named("tiny")};
  comm::MpiCollective learners{MPI_COMM_WORLD, kTimeoutS};
  std::unique_ptr<Learner> single, replica;
  LearnerPair(const Settings& s, uint64_t seed) {
    one.init_random(seed), many.init_random(seed);
    single = std::make_unique<Learner>(one, s, 10);
    replica = std::make_unique<Learner>(many, s, 10, &learners);
  }
};

class DataParallel : public ::testing::TestWithParam<LossAggregation> {};

TEST_P(DataParallel, GrpoUpdatesMatchOneLearner) {
  Settings s = dp_settings(GetParam());
  std::vector<Sample> all = make_samples(23);  // not a multiple of 2 or 3: learners get unequal shares
  LearnerPair p(s, 11);
  std::vector<Sample> mine = share_of(all, p.learners.rank(), p.learners.size());
  for (uint64_t step = 1; step <= 2; ++step) {
    UpdateMetrics a = p.single->grpo_update(all, step);
    UpdateMetrics b = p.replica->grpo_update(mine, step);
    EXPECT_EQ(a.tokens, b.tokens) << "token counts are summed over learners";
    EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-5 * a.grad_norm);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * (1 + std::fabs(a.loss)));
    EXPECT_NEAR(a.entropy, b.entropy, 1e-5 * a.entropy);
    EXPECT_EQ(a.optimizer_steps, b.optimizer_steps);
  }
  EXPECT_GT(p.single->optimizer().steps_taken(), 0);
  expect_weights_close(p.one.weights(), p.many.weights(), 1e-6);
  // The weights moved, so equality is not the initial weights matching.
  Transformer init(model_config_named("tiny"));
  init.init_random(11);
  double moved = 0;
  for (size_t i = 0; i < init.weights().size(); ++i)
    moved = std::max(moved, (double)std::fabs(init.weights()[i] - p.many.weights()[i]));
  EXPECT_GT(moved, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Aggregations, DataParallel,
                         ::testing::Values(LossAggregation::token_mean, LossAggregation::seq_mean_token_mean,
                                           LossAggregation::seq_mean_token_sum_norm));

TEST(DataParallelSteps, SftStepMatchesOneLearner) {
  Settings s = dp_settings(LossAggregation::token_mean);
  std::vector<Sample> all = make_samples(10);
  LearnerPair p(s, 5);
  UpdateMetrics a = p.single->sft_step(all);
  UpdateMetrics b = p.replica->sft_step(share_of(all, p.learners.rank(), p.learners.size()));
  EXPECT_NEAR(a.loss, b.loss, 1e-5 * a.loss);
  expect_weights_close(p.one.weights(), p.many.weights(), 1e-6);
}

TEST(DataParallelSteps, LearnersWithoutSamplesStayInStep) {
  Settings s = dp_settings(LossAggregation::token_mean);
  std::vector<Sample> all = make_samples(6);
  LearnerPair p(s, 9);
  p.single->grpo_update(all, 3);
  p.replica->grpo_update(p.learners.rank() == 0 ? all : std::vector<Sample>{}, 3);
  expect_weights_close(p.one.weights(), p.many.weights(), 1e-6);
}

TEST(DataParallelSteps, OptimizerShardsTileTheParameters) {
  Transformer model(model_config_named("tiny"));
  comm::MpiCollective learners(MPI_COMM_WORLD, kTimeoutS);
  Learner replica(model, dp_settings(LossAggregation::token_mean), 10, &learners);
  std::vector<double> begin(learners.size(), 0.0), size(learners.size(), 0.0);
  begin[learners.rank()] = (double)replica.shard_begin(), size[learners.rank()] = (double)replica.shard_size();
  learners.all_reduce_sum(begin.data(), (int64_t)begin.size());
  learners.all_reduce_sum(size.data(), (int64_t)size.size());
  double next = 0;
  for (int r = 0; r < learners.size(); ++r) {
    EXPECT_EQ(begin[r], next) << "shard " << r;
    next += size[r];
  }
  EXPECT_EQ(next, (double)model.num_parameters());
}

std::vector<float> sender_weights(int64_t n) {
  std::vector<float> w((size_t)n);
  Rng rng(77);
  for (auto& x : w) x = (float)(rng.uniform() * 2 - 1) * 0.3f;
  return w;
}

TEST(WeightSync, Fp32ArrivesBitForBitFromEveryRoot) {
  comm::MpiCollective group(MPI_COMM_WORLD, kTimeoutS);
  const int64_t n = 10007;
  const std::vector<float> expected = sender_weights(n);
  for (int root = 0; root < group.size(); ++root) {
    std::vector<float> w = group.rank() == root ? expected : std::vector<float>((size_t)n, (float)group.rank());
    SyncStats st = broadcast_weights(group, w.data(), n, root, 4000, SyncDtype::fp32, 40 + root);
    EXPECT_EQ(std::memcmp(w.data(), expected.data(), n * sizeof(float)), 0) << "root " << root;
    EXPECT_EQ(st.buckets, 11) << "1000 floats per 4000-byte bucket";
    EXPECT_EQ(st.bytes, n * 4);
    EXPECT_EQ(st.version, 40 + root);
  }
}

TEST(WeightSync, Bf16ArrivesAsTheRoundedWeights) {
  comm::MpiCollective group(MPI_COMM_WORLD, kTimeoutS);
  const int64_t n = 3001;
  const std::vector<float> expected = sender_weights(n);
  std::vector<float> w = group.rank() == 0 ? expected : std::vector<float>((size_t)n, -5.f);
  SyncStats st = broadcast_weights(group, w.data(), n, 0, 1000, SyncDtype::bf16, 1);
  EXPECT_EQ(st.bytes, n * 2);
  EXPECT_EQ(st.buckets, 7) << "500 bf16 values per 1000-byte bucket";
  for (int64_t i = 0; i < n; ++i) {
    float want = group.rank() == 0 ? expected[i] : bf16_to_float(float_to_bf16(expected[i]));
    ASSERT_EQ(std::memcmp(&w[i], &want, 4), 0) << "rank " << group.rank() << " element " << i;
  }
}

TEST(Messages, RolloutBatchesReachEveryLearnerFromEverySender) {
  comm::MessageChannel channel(MPI_COMM_WORLD, kTimeoutS);
  const int me = channel.rank(), size = channel.size();
  for (int to = 0; to < size; ++to) {
    proto::RolloutBatch b;
    b.set_step(me * 10 + to);
    b.set_worker(me);
    proto::ScoredGroup* g = b.add_groups();
    g->set_group_index(me * 100 + to);
    g->set_prompt("12+30=");
    proto::ScoredCompletion* c = g->add_completions();
    c->set_text(std::string("4\xff\xfe", 3));  // model output is not always UTF-8
    c->add_tokens(me);
    c->mutable_total()->set_value(0.5 * me);
    c->mutable_total()->set_scored(true);
    channel.send(to, 5, b.SerializeAsString());
  }
  for (int from = 0; from < size; ++from) {
    proto::RolloutBatch b;
    ASSERT_TRUE(b.ParseFromString(channel.recv(from, 5))) << "from " << from;
    EXPECT_EQ(b.worker(), from);
    EXPECT_EQ(b.step(), from * 10 + me);
    ASSERT_EQ(b.groups_size(), 1);
    EXPECT_EQ(b.groups(0).group_index(), from * 100 + me);
    EXPECT_EQ(b.groups(0).completions(0).text(), std::string("4\xff\xfe", 3));
    EXPECT_EQ(b.groups(0).completions(0).total().value(), 0.5 * from);
  }
  channel.flush();
  EXPECT_EQ(channel.pending_sends(), 0);
}

TEST(Messages, ReceiveFromASilentPeerTimesOutNamingIt) {
  comm::MessageChannel channel(MPI_COMM_WORLD, 0.5);
  if (channel.rank() == 0) {
    try {
      channel.recv(1, 99);
      ADD_FAILURE() << "no message was sent, yet recv returned";
    } catch (const comm::CommError& e) {
      EXPECT_NE(std::string(e.what()).find("rank 0: receive from rank 1 (tag 99) timed out"), std::string::npos)
          << e.what();
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int failed = 0, any_failed = 1;
  {
    comm::World world(&argc, &argv);
    if (world.size() < 2) {
      std::fprintf(stderr, "run under mpirun with at least 2 ranks\n");
      return 1;
    }
    try {
      failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cohort: rank %d: uncaught %s\n", world.rank(), e.what());
      failed = 1;
    }
    if (MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) any_failed = 1;
    if (any_failed)
      std::fprintf(stderr, "cohort: rank %d: %s\n", world.rank(),
                   failed ? "tests failed on this rank" : "tests failed on another rank");
  }
  return any_failed ? 1 : 0;
}
