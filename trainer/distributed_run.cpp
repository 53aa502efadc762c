// GRPO across the ranks of an mpirun (docs/distributed.md).
//
// Ranks [0, learners) are learners and the rest rollout workers, or every rank is both (colocated). Each
// step, every rollout worker draws the same prompts from the same seeded cursor and generates and scores
// the groups g with g % workers == its index, with the sampling seeds a single process would use; it sends
// each learner l the groups with g % learners == l as one protobuf RolloutBatch. Learners train data-
// parallel on what they received (trainer/learner.h), and learner 0 sends the new weights to the workers
// as flat buckets. Schedules:
//   sync     worker: [weights k-1] generate k, send         learner: receive k, train k, [send weights k]
//   async-1  worker: [weights k-2] generate k, send         learner: receive k, [send weights k-1], train k
// so under async-1 a worker generates step k+1 while the learners train on step k (policy lag 1).
// Learner 0 writes the run directory, the metrics and the log; every per-role timing reaches it.
#include <mpi.h>

#include <algorithm>
#include <iterator>
#include <sstream>

#include "comm/channel.h"
#include "comm/mpi_check.h"
#include "comm/proto/rollout.pb.h"
#include "comm/roles.h"
#include "kernels/error.h"
#include "kernels/threads.h"
#include "rollout/template.h"
#include "trainer/run.h"
#include "trainer/run_common.h"
#include "trainer/weight_sync.h"

namespace cohort::trainer {

using namespace detail;

namespace {

constexpr int kRolloutTag = 17;

// The ranks with `member` set, as a communicator (MPI_COMM_NULL elsewhere).
MPI_Comm split_world(bool member, int rank) {
  MPI_Comm out = MPI_COMM_NULL;
  COHORT_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, member ? 0 : MPI_UNDEFINED, rank, &out));
  return out;
}

std::unique_ptr<comm::MpiCollective> collective_of(MPI_Comm comm, double timeout_s) {
  if (comm == MPI_COMM_NULL) return nullptr;
  auto c = std::make_unique<comm::MpiCollective>(comm, timeout_s);
  COHORT_MPI_CHECK(MPI_Comm_free(&comm));
  return c;
}

void set_score(proto::Score* out, const std::optional<double>& v) {
  out->set_scored(v.has_value());
  out->set_value(v.value_or(0.0));
}

std::optional<double> score_of(const proto::Score& s) {
  return s.scored() ? std::optional<double>(s.value()) : std::nullopt;
}

struct RolloutResult {
  std::vector<proto::ScoredGroup> groups;
  proto::PhaseTimes times;
  int64_t generated_tokens = 0;
};

// The rollout side of a step: this worker's groups of the step's prompts, generated and scored.
RolloutResult rollout_step(const Settings& s, const Common& c, rollout::GenerationEngine& engine,
                           const rollout::PromptDataset& train, const std::vector<int64_t>& indices, int64_t step,
                           int worker, int workers, int64_t version) {
  const int64_t G = s.rollout.group_size;
  RolloutResult out;
  std::vector<rollout::GenerationRequest> requests;
  std::vector<const rollout::PromptRecord*> records;
  std::vector<std::string> prompts;
  for (int64_t g = worker; g < (int64_t)indices.size(); g += workers) {
    proto::ScoredGroup& group = out.groups.emplace_back();
    std::string text = rollout::fill_template(s.data.prompt_template, train[indices[g]].row);
    std::vector<int32_t> ids = c.tokenizer.encode(text, true);
    group.set_group_index(g);
    group.set_prompt_index(indices[g]);
    group.set_prompt(text);
    group.mutable_prompt_tokens()->Add(ids.begin(), ids.end());
    group.set_policy_version(version);
    for (int64_t j = 0; j < G; ++j) {
      rollout::GenerationRequest r;
      r.prompt = ids, r.max_new_tokens = s.rollout.max_new_tokens, r.sampling = s.rollout.sampling();
      // The seed a single process gives request g * G + j of round 1 of this step.
      r.seed = derive_seed((uint64_t)s.run.seed, 3, (uint64_t)step * 1000003 + 1, (uint64_t)(g * G + j));
      requests.push_back(std::move(r));
      records.push_back(&train[indices[g]]);
      prompts.push_back(text);
    }
  }
  auto t0 = Clock::now();
  std::vector<rollout::Completion> completions = engine.generate(requests);
  out.times.set_generate(seconds_since(t0));
  out.generated_tokens = engine.last_stats().generated_tokens;
  t0 = Clock::now();
  std::vector<reward::RewardSet::Result> scores = score_all(*c.rewards, records, prompts, completions);
  out.times.set_reward(seconds_since(t0));
  for (size_t i = 0; i < completions.size(); ++i) {
    proto::ScoredCompletion* sc = out.groups[i / G].add_completions();
    sc->mutable_tokens()->Add(completions[i].tokens.begin(), completions[i].tokens.end());
    sc->mutable_logprobs()->Add(completions[i].logprobs.begin(), completions[i].logprobs.end());
    sc->set_truncated(completions[i].finish == rollout::FinishReason::length);
    sc->set_text(completions[i].text);
    for (const auto& v : scores[i].per_function) set_score(sc->add_scores(), v);
    set_score(sc->mutable_total(), scores[i].total);
  }
  return out;
}

// The groups a worker sends learner l: those with group_index % learners == l.
proto::RolloutBatch batch_for(const RolloutResult& r, int64_t step, int worker_rank, int learner, int learners) {
  proto::RolloutBatch b;
  b.set_step(step);
  b.set_worker(worker_rank);
  for (const auto& g : r.groups)
    if (g.group_index() % learners == learner) *b.add_groups() = g;
  *b.mutable_times() = r.times;
  b.set_generated_tokens(r.generated_tokens);
  return b;
}

void max_into(proto::PhaseTimes& a, const proto::PhaseTimes& b) {
  a.set_generate(std::max(a.generate(), b.generate()));
  a.set_reward(std::max(a.reward(), b.reward()));
  a.set_sync(std::max(a.sync(), b.sync()));
  a.set_idle(std::max(a.idle(), b.idle()));
}

}  // namespace

RunSummary run_grpo_distributed(const Settings& s, const std::string& yaml, std::ostream& log_out) {
  auto t_start = Clock::now();
  check_grpo_settings(s);
  int rank = 0, size = 1;
  COHORT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  COHORT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  const comm::RoleLayout layout = role_layout(s.distributed, size);
  const comm::Role role = comm::role_of(rank, size, layout);
  COHORT_REQUIRE(!s.algorithm.dynamic_sampling,
                 "algorithm.dynamic_sampling runs in a single process only for now; turn it off under mpirun");
  const bool is_learner = role != comm::Role::rollout, is_worker = role != comm::Role::learner;
  const bool colocated = layout.colocated, async = s.distributed.schedule == Schedule::async_1;
  const int L = layout.learners, W = layout.rollout_workers;
  const int worker_index = colocated ? rank : rank - L;
  std::ostringstream quiet;
  std::ostream& log = rank == 0 ? log_out : quiet;
  log << "distributed: " << size << " ranks, schedule " << (async ? "async-1" : "sync") << "\n"
      << comm::describe(layout, size)
      << "note: checkpoints and resume run in one process only for now; this run writes its final model/ "
         "(docs/checkpoints.md)\n";

  const double timeout = s.distributed.timeout_s;
  auto learners = collective_of(split_world(is_learner, rank), timeout);
  auto sync_group = collective_of(split_world(!colocated && (rank == 0 || is_worker), rank), timeout);
  comm::MessageChannel channel(MPI_COMM_WORLD, timeout);

  std::unique_ptr<RunDirectory> dir;
  if (rank == 0) dir = std::make_unique<RunDirectory>(s, yaml);
  Common c = setup(s, log);
  Transformer& model = *c.model;
  rollout::PromptDataset train = load_train_prompts(s, log);
  rollout::DataCursor cursor(train.size(), derive_seed((uint64_t)s.run.seed, 2, 0));
  const int64_t steps = s.train.steps, G = s.rollout.group_size, acc_index = accuracy_index(s, *c.rewards);
  std::unique_ptr<Learner> learner;
  if (is_learner)
    learner = std::make_unique<Learner>(model, s, steps * s.algorithm.num_iterations * s.algorithm.mini_batches,
                                        learners.get());
  std::unique_ptr<rollout::GenerationEngine> engine;
  if (is_worker)
    engine = std::make_unique<rollout::GenerationEngine>(model, c.tokenizer, engine_options(s, c.tokenizer));
  const int64_t bucket_bytes = std::max<int64_t>(4, (int64_t)(s.distributed.bucket_mb * (1 << 20)));
  auto sync_weights = [&](int64_t version) {
    return broadcast_weights(*sync_group, model.weights().data(), model.num_parameters(), 0, bucket_bytes,
                             s.distributed.sync_dtype, version);
  };

  RunSummary summary;
  if (rank == 0) summary = evaluate_before_training(model, s, c, *dir, log);
  auto t_loop = Clock::now();
  int64_t version = 0;  // a worker's: the learner step its weights come from
  for (int64_t step = 1; step <= steps; ++step) {
    auto t_step = Clock::now();
    RolloutResult mine;
    if (is_worker) {
      double sync_wait = 0, sync_total = 0;
      if (!colocated && step >= (async ? 3 : 2)) {
        SyncStats st = sync_weights(0);
        version = st.version, sync_wait = st.wait_seconds, sync_total = st.seconds;
      }
      mine =
          rollout_step(s, c, *engine, train, cursor.next(s.rollout.prompts_per_step), step, worker_index, W, version);
      mine.times.set_sync(sync_total - sync_wait);
      mine.times.set_idle(sync_wait);
      if (!colocated)
        for (int l = 0; l < L; ++l) channel.send(l, kRolloutTag, batch_for(mine, step, rank, l, L).SerializeAsString());
    }
    if (!is_learner) continue;

    // Learner: this step's groups, from every worker (or from this rank's own rollout).
    proto::PhaseTimes worker_times, learner_times;
    int64_t generated = 0;
    std::vector<proto::ScoredGroup> groups;
    if (colocated) {
      groups = std::move(mine.groups), worker_times = mine.times, generated = mine.generated_tokens;
    } else {
      auto t0 = Clock::now();
      for (int w = 0; w < W; ++w) {
        proto::RolloutBatch b;
        COHORT_REQUIRE(b.ParseFromString(channel.recv(L + w, kRolloutTag)),
                       "rank " << rank << ": step " << step << ": the rollout batch from rank " << L + w
                               << " is not a valid RolloutBatch message");
        COHORT_REQUIRE(b.step() == step, "rank " << rank << ": expected step " << step << " from rank " << L + w
                                                 << ", got step " << b.step());
        for (auto& g : *b.mutable_groups()) groups.push_back(std::move(g));
        max_into(worker_times, b.times());
        generated += b.generated_tokens();
      }
      learner_times.set_idle(seconds_since(t0));
      if (async && step >= 2 && step <= steps - 1 && rank == 0) learner_times.set_sync(sync_weights(step - 1).seconds);
    }
    std::sort(groups.begin(), groups.end(),
              [](const auto& a, const auto& b) { return a.group_index() < b.group_index(); });

    // Advantages (the batch std over all learners when asked for), samples and rollout statistics.
    std::vector<std::optional<double>> totals;
    for (const auto& g : groups) {
      COHORT_REQUIRE(g.completions_size() == G, "rank " << rank << ": group " << g.group_index() << " has "
                                                        << g.completions_size() << " completions, expected " << G);
      for (const auto& sc : g.completions()) totals.push_back(score_of(sc.total()));
    }
    std::optional<double> batch_std;
    if (s.algorithm.advantages.scale == ScaleRewards::batch) {
      double m[3] = {0, 0, 0};
      for (const auto& t : totals)
        if (t) m[0] += 1, m[1] += *t, m[2] += *t * *t;
      learners->all_reduce_sum(m, 3);
      batch_std = batch_std_of(m[0], m[1], m[2]);
    }
    std::vector<double> advantages;
    AdvantageStats adv_stats = group_advantages(totals, G, s.algorithm.advantages, advantages, batch_std);
    StepStats stats(c.rewards->names().size());
    stats.add_groups(adv_stats);
    std::vector<Sample> samples;
    for (const auto& g : groups) {
      for (const auto& sc : g.completions()) {
        Sample& x = samples.emplace_back();
        x.prompt.assign(g.prompt_tokens().begin(), g.prompt_tokens().end());
        x.completion.assign(sc.tokens().begin(), sc.tokens().end());
        x.rollout_logprobs.assign(sc.logprobs().begin(), sc.logprobs().end());
        x.advantage = advantages[samples.size() - 1];
        x.truncated = sc.truncated();
        std::vector<std::optional<double>> per_function;
        for (const auto& v : sc.scores()) per_function.push_back(score_of(v));
        COHORT_REQUIRE(per_function.size() == c.rewards->names().size(),
                       "rank " << rank << ": a completion carries " << per_function.size() << " scores, expected "
                               << c.rewards->names().size());
        stats.add_sample(score_of(sc.total()), per_function, acc_index, (double)sc.tokens_size(), sc.truncated(),
                         (double)(step - 1 - g.policy_version()));
      }
    }
    auto t0 = Clock::now();
    UpdateMetrics u = learner->grpo_update(samples, derive_seed((uint64_t)s.run.seed, 4, step));
    learner_times.set_train(seconds_since(t0));
    if (!colocated && !async && step <= steps - 1 && rank == 0) learner_times.set_sync(sync_weights(step).seconds);
    stats.sum_over(*learners);
    // The slowest rank per phase (colocated ranks each know only their own rollout timings).
    double lt[] = {learner_times.train(), learner_times.sync(), learner_times.idle(), worker_times.generate(),
                   worker_times.reward(), worker_times.sync(),  worker_times.idle()};
    learners->all_reduce_max(lt, std::size(lt));
    double generated_total = (double)generated;  // disaggregated: every learner already counts every worker's
    if (colocated) learners->all_reduce_sum(&generated_total, 1);
    if (rank != 0) continue;

    nlohmann::json m;
    m["step"] = step;
    stats.write(m, c.rewards->names());
    write_update_metrics(m, u);
    m["rollout_tokens_per_s"] = lt[3] > 0 ? generated_total / lt[3] : 0.0;
    m["train_tokens_per_s"] = lt[0] > 0 ? u.tokens / lt[0] : 0.0;
    // Per role, the slowest rank's seconds in each phase.
    m["time/generate"] = lt[3];
    m["time/reward"] = lt[4];
    m["time/train"] = lt[0];
    m["time/rollout/sync"] = lt[5];
    m["time/rollout/idle"] = lt[6];
    m["time/learner/sync"] = lt[1];
    m["time/learner/idle"] = lt[2];
    m["threads"] = openmp_threads();
    m["threads/openblas"] = openblas_threads();
    std::optional<EvalResult> e = evaluate_at_step(model, s, c, step, steps, m, summary);
    m["time/step"] = seconds_since(t_step);
    dir->write_metrics(m);
    std::vector<RolloutLogEntry> entries;
    for (size_t i = 0; i < std::min(samples.size(), (size_t)s.train.log_rollouts); ++i) {
      const auto& g = groups[i / G];
      const auto& sc = g.completions((int)(i % G));
      RolloutLogEntry r{g.prompt(), sc.text(), !sc.truncated(), samples[i].advantage, score_of(sc.total()), {}};
      for (const auto& v : sc.scores()) r.per_function.push_back(score_of(v));
      entries.push_back(std::move(r));
    }
    write_rollout_log(*dir, step, s.train.log_rollouts, entries, c.rewards->names());
    progress_line(log, step, steps, stats.reward_mean(), stats.accuracy(), stats.length_mean(), u.kl,
                  seconds_since(t_step), seconds_since(t_loop));
    if (e) log_eval(log, ("at step " + std::to_string(step)).c_str(), *e);
  }
  channel.flush();
  for (const auto& [what, count] : c.rewards->error_counts())
    std::cerr << "cohort: rank " << rank << ": reward errors: " << what << " (" << count << " samples got no score)\n";
  if (rank == 0) {
    save_model_directory(model, c.tokenizer, dir->path / "model");
    log << "saved model to " << (dir->path / "model").string() << "\n";
  }
  summary.steps = steps;
  summary.seconds = seconds_since(t_start);
  return summary;
}

}  // namespace cohort::trainer
