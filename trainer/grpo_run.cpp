// The GRPO run: one loop for one process and for every rank of an mpirun (docs/distributed.md). One process
// is a world of one rank that is learner and rollout worker at once; under mpirun the ranks are split into
// learners and rollout workers (or are both, colocated). Per step:
//   rollout worker: [receive weights] -> draw prompts -> generate -> score -> (dynamic sampling: again) -> send
//   learner:        receive groups -> advantages -> update -> [send weights] -> metrics -> [checkpoint]
// Under async-1 a worker generates step k+1 while the learners train on step k (policy lag 1), so a
// checkpoint at step k also holds step k+1's rollout, already generated. Learner 0 writes the run directory,
// the metrics and the log; every per-role timing reaches it.
#include <mpi.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <iostream>
#include <sstream>

#include "comm/channel.h"
#include "comm/mpi_check.h"
#include "comm/proto/rollout.pb.h"
#include "comm/roles.h"
#include "kernels/error.h"
#include "kernels/threads.h"
#include "model/model_directory.h"
#include "rollout/template.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluation.h"
#include "trainer/run.h"
#include "trainer/run_checkpoint.h"
#include "trainer/run_directory.h"
#include "trainer/run_setup.h"
#include "trainer/step_metrics.h"
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

// This rank's place in the job: its roles and the groups it talks in.
struct Topology {
  int rank = 0, size = 1;
  comm::RoleLayout layout;
  bool learner = true, worker = true, colocated = true, async = false;
  int learners_count = 1, workers_count = 1;
  std::unique_ptr<comm::Collective> learners, workers;  // null where this rank is not one
  std::unique_ptr<comm::Collective> sync_group;         // learner 0 and the workers, when they are apart
  MPI_Comm learners_comm = MPI_COMM_NULL;               // for MPI-IO checkpoints under several learners
  std::unique_ptr<comm::MessageChannel> channel;        // rollouts from workers to learners, when apart
};

Topology make_topology(const Settings& s) {
  Topology t;
  int initialized = 0;
  COHORT_MPI_CHECK(MPI_Initialized(&initialized));
  if (initialized) {
    COHORT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &t.rank));
    COHORT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &t.size));
  }
  t.layout = role_layout(s.distributed, t.size);
  t.async = s.distributed.schedule == Schedule::async_1;
  if (t.size == 1) {
    t.learners = std::make_unique<comm::LocalCollective>();
    t.workers = std::make_unique<comm::LocalCollective>();
    return t;
  }
  const comm::Role role = comm::role_of(t.rank, t.size, t.layout);
  t.learner = role != comm::Role::rollout, t.worker = role != comm::Role::learner;
  t.colocated = t.layout.colocated;
  t.learners_count = t.layout.learners, t.workers_count = t.layout.rollout_workers;
  const double timeout = s.distributed.timeout_s;
  auto learners = collective_of(split_world(t.learner, t.rank), timeout);
  if (learners && learners->size() > 1) t.learners_comm = learners->communicator();
  t.learners = std::move(learners);
  t.workers = collective_of(split_world(t.worker, t.rank), timeout);
  t.sync_group = collective_of(split_world(!t.colocated && (t.rank == 0 || t.worker), t.rank), timeout);
  if (!t.colocated) t.channel = std::make_unique<comm::MessageChannel>(MPI_COMM_WORLD, timeout);
  return t;
}

void set_score(proto::Score* out, const std::optional<double>& v, reward::Unscored why = reward::Unscored::none) {
  out->set_scored(v.has_value());
  out->set_value(v.value_or(0.0));
  if (!v) out->set_unscored_reason((uint32_t)why);
}

std::optional<double> score_of(const proto::Score& s) {
  return s.scored() ? std::optional<double>(s.value()) : std::nullopt;
}

// Whether a group's scored completions disagree: a group where all agree has no advantage to learn from.
bool has_signal(const proto::ScoredGroup& g) {
  std::optional<double> first;
  for (const auto& c : g.completions()) {
    std::optional<double> t = score_of(c.total());
    if (!t) continue;
    if (first && *t != *first) return true;
    if (!first) first = t;
  }
  return false;
}

// A step's rollout as one learner holds it, however it came: generated here (colocated), received from the
// workers, or read from a checkpoint's in-flight batch.
struct StepRollout {
  std::vector<proto::ScoredGroup> groups;  // kept groups; group_index is the place in the step's batch
  proto::PhaseTimes times;                 // the slowest worker's seconds per phase
  int64_t generated_tokens = 0, rounds = 0, dropped_groups = 0;
  std::string data_cursor;  // JSON: the workers' cursor after this step's prompts
};

void max_into(proto::PhaseTimes& a, const proto::PhaseTimes& b) {
  a.set_generate(std::max(a.generate(), b.generate()));
  a.set_reward(std::max(a.reward(), b.reward()));
  a.set_sync(std::max(a.sync(), b.sync()));
  a.set_idle(std::max(a.idle(), b.idle()));
}

// The groups of `r` that learner `learner` of `learners` trains on (group_index % learners), as a message.
proto::RolloutBatch batch_of(const StepRollout& r, int64_t step, int sender, int learner, int learners) {
  proto::RolloutBatch b;
  b.set_step(step);
  b.set_worker(sender);
  for (const auto& g : r.groups)
    if (g.group_index() % learners == learner) *b.add_groups() = g;
  *b.mutable_times() = r.times;
  b.set_generated_tokens(r.generated_tokens);
  b.set_data_cursor(r.data_cursor);
  b.set_rounds(r.rounds);
  b.set_dropped_groups(r.dropped_groups);
  return b;
}

// Joins messages of one step: every group, the slowest times, the counts of the first (every worker reports
// the step's rounds and drops; generated tokens are summed when the messages come from different workers).
StepRollout join_batches(std::vector<proto::RolloutBatch> batches, bool sum_tokens) {
  StepRollout r;
  for (proto::RolloutBatch& b : batches) {
    for (auto& g : *b.mutable_groups()) r.groups.push_back(std::move(g));
    max_into(r.times, b.times());
    r.generated_tokens = sum_tokens ? r.generated_tokens + b.generated_tokens() : b.generated_tokens();
  }
  if (!batches.empty()) {
    r.rounds = batches[0].rounds(), r.dropped_groups = batches[0].dropped_groups();
    r.data_cursor = batches[0].data_cursor();
  }
  std::sort(r.groups.begin(), r.groups.end(),
            [](const auto& a, const auto& b) { return a.group_index() < b.group_index(); });
  return r;
}

// The rollout side of a step on one worker of `workers`: rounds of drawing the prompts still wanted (every
// worker draws the same ones), generating and scoring this worker's groups (group g of a round when g % W is
// its rank), until prompts_per_step groups are kept. Without dynamic sampling every group is kept and one
// round is the step; with it, groups without signal are dropped (until the last round) and the workers
// exchange which, so all number the kept groups alike. Request seeds depend on (step, round, place in the
// round) alone: one process and any number of workers sample the same completions.
StepRollout rollout_step(const Settings& s, const Common& c, rollout::GenerationEngine& engine,
                         const rollout::PromptDataset& train, rollout::DataCursor& cursor, comm::Collective& workers,
                         int64_t step, int64_t version) {
  const int64_t G = s.rollout.group_size, P = s.rollout.prompts_per_step;
  const int64_t W = workers.size(), w = workers.rank();
  const bool dynamic = s.algorithm.dynamic_sampling;
  StepRollout out;
  double t_generate = 0, t_reward = 0;
  for (int64_t kept = 0; kept < P;) {
    const int64_t round = ++out.rounds, want = P - kept;
    const std::vector<int64_t> indices = cursor.next(want);
    std::vector<proto::ScoredGroup> mine;
    std::vector<rollout::GenerationRequest> requests;
    std::vector<const rollout::PromptRecord*> records;
    std::vector<std::string> prompts;
    for (int64_t g = w; g < want; g += W) {
      proto::ScoredGroup& group = mine.emplace_back();
      Prompt prompt = make_prompt(s, c, train[indices[g]].row);
      const std::string& text = prompt.text;
      const std::vector<int32_t>& ids = prompt.ids;
      group.set_group_index(g);
      group.set_prompt_index(indices[g]);
      group.set_prompt(text);
      group.mutable_prompt_tokens()->Add(ids.begin(), ids.end());
      group.set_policy_version(version);
      for (int64_t j = 0; j < G; ++j) {
        rollout::GenerationRequest r;
        r.prompt = ids, r.max_new_tokens = s.rollout.max_new_tokens, r.sampling = s.rollout.sampling();
        r.seed = sampling_seed((uint64_t)s.run.seed, step, round, g * G + j);
        requests.push_back(std::move(r));
        records.push_back(&train[indices[g]]);
        prompts.push_back(text);
      }
    }
    auto t0 = Clock::now();
    std::vector<rollout::Completion> completions = engine.generate(requests);
    t_generate += seconds_since(t0);
    out.generated_tokens += engine.last_stats().generated_tokens;
    t0 = Clock::now();
    std::vector<reward::RewardSet::Result> scores = score_all(*c.rewards, records, prompts, completions);
    t_reward += seconds_since(t0);
    for (size_t i = 0; i < completions.size(); ++i) {
      proto::ScoredCompletion* sc = mine[i / G].add_completions();
      sc->mutable_tokens()->Add(completions[i].tokens.begin(), completions[i].tokens.end());
      sc->mutable_logprobs()->Add(completions[i].logprobs.begin(), completions[i].logprobs.end());
      sc->set_truncated(completions[i].finish == rollout::FinishReason::length);
      sc->set_text(completions[i].text);
      for (size_t f = 0; f < scores[i].per_function.size(); ++f)
        set_score(sc->add_scores(), scores[i].per_function[f], scores[i].reasons[f]);
      set_score(sc->mutable_total(), scores[i].total);
    }
    // keep[g]: whether group g of this round stays; under dynamic sampling each worker fills its own and
    // the sum over workers tells everyone all of them.
    const bool filter = dynamic && round < s.algorithm.dynamic_sampling_max_rounds;
    std::vector<double> keep((size_t)want, filter ? 0.0 : 1.0);
    if (filter) {
      for (const auto& g : mine) keep[(size_t)g.group_index()] = has_signal(g) ? 1.0 : 0.0;
      workers.all_reduce_sum(keep.data(), want);
    }
    size_t next_mine = 0;
    for (int64_t g = 0; g < want; ++g) {
      const bool is_mine = g % W == w;
      if (keep[(size_t)g] > 0) {
        if (is_mine) {
          mine[next_mine].set_group_index(kept);
          out.groups.push_back(std::move(mine[next_mine]));
        }
        ++kept;
      } else {
        ++out.dropped_groups;
      }
      if (is_mine) ++next_mine;
    }
  }
  out.times.set_generate(t_generate);
  out.times.set_reward(t_reward);
  out.data_cursor = cursor.state().dump();
  return out;
}

// This learner's share of step `step`'s rollout, one message from every worker.
StepRollout receive_rollout(const Topology& t, int64_t step) {
  std::vector<proto::RolloutBatch> batches((size_t)t.workers_count);
  for (int w = 0; w < t.workers_count; ++w) {
    const int from = t.learners_count + w;
    COHORT_REQUIRE(batches[w].ParseFromString(t.channel->recv(from, kRolloutTag)),
                   "rank " << t.rank << ": step " << step << ": the rollout batch from rank " << from
                           << " is not a valid RolloutBatch message");
    COHORT_REQUIRE(batches[w].step() == step, "rank " << t.rank << ": expected step " << step << " from rank " << from
                                                      << ", got step " << batches[w].step());
  }
  return join_batches(std::move(batches), /*sum_tokens=*/true);
}

// A step's advantages, samples and rollout statistics from the groups a learner holds. Under
// algorithm.advantages.scale = batch the batch std is over every learner's groups.
struct LearnerBatch {
  std::vector<Sample> samples;
  StepStats stats;
};

LearnerBatch learner_batch(const Settings& s, const Common& c, comm::Collective& learners,
                           const std::vector<proto::ScoredGroup>& groups, int64_t step, int rank) {
  const int64_t G = s.rollout.group_size, acc_index = accuracy_index(s, *c.rewards);
  std::vector<std::optional<double>> totals;
  for (const auto& g : groups) {
    COHORT_REQUIRE(g.completions_size() == G, "rank " << rank << ": group " << g.group_index() << " has "
                                                      << g.completions_size() << " completions, expected " << G);
    for (const auto& sc : g.completions()) totals.push_back(score_of(sc.total()));
  }
  std::optional<double> batch_std;
  if (s.algorithm.advantages.scale == ScaleRewards::batch && learners.size() > 1) {
    double m[3] = {0, 0, 0};
    for (const auto& t : totals)
      if (t) m[0] += 1, m[1] += *t, m[2] += *t * *t;
    learners.all_reduce_sum(m, 3);
    batch_std = batch_std_of(m[0], m[1], m[2]);
  }
  std::vector<double> advantages;
  AdvantageStats adv_stats = group_advantages(totals, G, s.algorithm.advantages, advantages, batch_std);
  LearnerBatch out{{}, StepStats(c.rewards->names().size())};
  out.stats.add_groups(adv_stats);
  for (const auto& g : groups) {
    for (const auto& sc : g.completions()) {
      Sample& x = out.samples.emplace_back();
      x.prompt.assign(g.prompt_tokens().begin(), g.prompt_tokens().end());
      x.completion.assign(sc.tokens().begin(), sc.tokens().end());
      x.rollout_logprobs.assign(sc.logprobs().begin(), sc.logprobs().end());
      x.advantage = advantages[out.samples.size() - 1];
      x.truncated = sc.truncated();
      std::vector<std::optional<double>> per_function;
      for (const auto& v : sc.scores()) {
        per_function.push_back(score_of(v));
        if (!v.scored()) out.stats.add_unscored(v.unscored_reason());
      }
      COHORT_REQUIRE(per_function.size() == c.rewards->names().size(),
                     "rank " << rank << ": a completion carries " << per_function.size() << " scores, expected "
                             << c.rewards->names().size());
      out.stats.add_sample(score_of(sc.total()), per_function, acc_index, (double)sc.tokens_size(), sc.truncated(),
                           (double)(step - 1 - g.policy_version()));
    }
  }
  return out;
}

}  // namespace

RunSummary run_grpo(const Settings& s, const std::string& yaml, std::ostream& log_out, const Console& console) {
  auto t_start = Clock::now();
  validate_settings(s, RunKind::grpo);
  Topology t = make_topology(s);
  std::optional<PrefixedStream> prefixed;
  if (console.all_ranks && t.size > 1) prefixed.emplace(log_out, "[rank " + std::to_string(t.rank) + "] ");
  std::ostream& log = console.verbosity == 0 ? null_stream()
                      : prefixed             ? *prefixed
                      : t.rank == 0          ? log_out
                                             : null_stream();
  if (t.size > 1)
    log << "distributed: " << t.size << " ranks, schedule " << (t.async ? "async-1" : "sync") << "\n"
        << comm::describe(t.layout, t.size);

  // The loop's state beyond the model, the optimizer and the reference policy: the step, the data cursor,
  // the workers' policy version and, under async-1, the next step's rollout already generated.
  std::optional<CheckpointContents> resumed =
      checkpoint_to_resume(s, yaml, "grpo", t.learner ? CheckpointParts::everything : CheckpointParts::weights);
  std::unique_ptr<RunDirectory> dir;
  if (t.rank == 0) dir = std::make_unique<RunDirectory>(s, yaml, resumed ? resumed->state.step : -1);
  Common c = setup(s, log);
  Transformer& model = *c.model;
  rollout::PromptDataset train = load_prompts(s, s.data.train, "training", log);
  rollout::DataCursor cursor(train.size(), stream_seed((uint64_t)s.run.seed, Stream::data_order));
  const int64_t steps = s.train.steps;
  std::unique_ptr<Learner> learner;
  if (t.learner)
    learner = std::make_unique<Learner>(model, s, steps * s.algorithm.num_iterations * s.algorithm.mini_batches,
                                        t.learners.get());
  std::unique_ptr<rollout::GenerationEngine> engine;
  if (t.worker)
    engine = std::make_unique<rollout::GenerationEngine>(model, *c.tokenizer, engine_options(s, *c.tokenizer));
  const int64_t bucket_bytes = std::max<int64_t>(4, (int64_t)(s.distributed.bucket_mb * (1 << 20)));
  auto sync_weights = [&](int64_t version) {
    return broadcast_weights(*t.sync_group, model.weights().data(), model.num_parameters(), 0, bucket_bytes,
                             s.distributed.sync_dtype, version);
  };

  RunSummary summary;
  int64_t first_step = 1;
  int64_t version = 0;                   // a worker's: the learner step its weights come from
  std::string workers_cursor;            // learners apart from the workers: the cursor the workers reported
  std::optional<StepRollout> in_flight;  // learners, async-1: the next step's rollout, already received
  bool worker_skips_first_step = false;  // workers: that rollout was generated before the resume
  if (resumed) {
    const CheckpointContents& r = *resumed;
    COHORT_REQUIRE((int64_t)r.weights.size() == model.num_parameters(),
                   "the checkpoint holds " << r.weights.size() << " parameters, the model " << model.num_parameters());
    model.weights() = std::move(resumed->weights);
    // A run with another number of learners re-cuts the optimizer state into its own shards.
    if (learner) restore_learner(*learner, r);
    cursor.restore(r.state.data_cursor);
    workers_cursor = r.state.data_cursor.dump();
    first_step = r.state.step + 1;
    version = r.state.step;
    if (!r.state.in_flight.empty() && first_step <= steps) {
      worker_skips_first_step = true;
      if (learner) {
        std::vector<proto::RolloutBatch> saved(r.state.in_flight.size());
        for (size_t i = 0; i < saved.size(); ++i)
          COHORT_REQUIRE(saved[i].ParseFromString(r.state.in_flight[i]),
                         "the checkpoint's in-flight rollout of learner " << i << " is not a RolloutBatch");
        StepRollout all = join_batches(std::move(saved), /*sum_tokens=*/false);
        in_flight.emplace();
        for (auto& g : all.groups)
          if (g.group_index() % t.learners_count == t.learners->rank()) in_flight->groups.push_back(std::move(g));
        in_flight->times = all.times, in_flight->generated_tokens = all.generated_tokens;
        in_flight->rounds = all.rounds, in_flight->dropped_groups = all.dropped_groups;
        in_flight->data_cursor = all.data_cursor;
      }
    }
    summary = resumed_summary(s, r.state);
    log << "resumed at step " << r.state.step << " of " << steps << "\n";
  } else if (t.rank == 0) {
    summary = evaluate_before_training(model, s, c, *dir, log);
  }

  auto t_loop = Clock::now();
  for (int64_t step = first_step; step <= steps; ++step) {
    auto t_step = Clock::now();
    StepRollout mine;
    if (t.worker && !(step == first_step && worker_skips_first_step)) {
      double sync_wait = 0, sync_total = 0;
      if (t.colocated) {
        version = step - 1;  // the learner's own weights
      } else if (step >= (t.async ? 3 : 2) && step > first_step) {
        SyncStats st = sync_weights(0);
        version = st.version, sync_wait = st.wait_seconds, sync_total = st.seconds;
      }
      mine = rollout_step(s, c, *engine, train, cursor, *t.workers, step, version);
      mine.times.set_sync(sync_total - sync_wait);
      mine.times.set_idle(sync_wait);
      if (!t.colocated)
        for (int l = 0; l < t.learners_count; ++l)
          t.channel->send(l, kRolloutTag, batch_of(mine, step, t.rank, l, t.learners_count).SerializeAsString());
    }
    if (!t.learner) continue;

    // Learner: this step's groups, from every worker (or from this rank's own rollout).
    proto::PhaseTimes learner_times;
    StepRollout r;
    if (t.colocated) {
      r = std::move(mine);
    } else if (in_flight) {
      r = std::move(*in_flight);
      in_flight.reset();
    } else {
      auto t0 = Clock::now();
      r = receive_rollout(t, step);
      learner_times.set_idle(seconds_since(t0));
    }
    if (!t.colocated) workers_cursor = r.data_cursor;
    if (!t.colocated && t.async && step >= 2 && step <= steps - 1 && t.rank == 0)
      learner_times.set_sync(sync_weights(step - 1).seconds);

    LearnerBatch batch = learner_batch(s, c, *t.learners, r.groups, step, t.rank);
    auto t0 = Clock::now();
    UpdateMetrics u =
        learner->grpo_update(batch.samples, stream_seed((uint64_t)s.run.seed, Stream::minibatch_order, step));
    learner_times.set_train(seconds_since(t0));
    if (!t.colocated && !t.async && step <= steps - 1 && t.rank == 0)
      learner_times.set_sync(sync_weights(step).seconds);
    batch.stats.sum_over(*t.learners);
    // The slowest rank per phase (colocated ranks each know only their own rollout timings).
    double lt[] = {learner_times.train(), learner_times.sync(), learner_times.idle(), r.times.generate(),
                   r.times.reward(),      r.times.sync(),       r.times.idle()};
    t.learners->all_reduce_max(lt, std::size(lt));
    double generated = (double)r.generated_tokens;  // apart: every learner already counts every worker's
    if (t.colocated) t.learners->all_reduce_sum(&generated, 1);

    std::optional<EvalResult> e;
    if (t.rank == 0) {
      nlohmann::json m;
      m["step"] = step;
      batch.stats.write(m, c.rewards->names());
      m["dynamic_sampling/rounds"] = r.rounds;
      m["dynamic_sampling/dropped_groups"] = r.dropped_groups;
      write_update_metrics(m, u);
      m["rollout_tokens_per_s"] = lt[3] > 0 ? generated / lt[3] : 0.0;
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
      e = evaluate_at_step(model, s, c, step, steps, m, summary);
      m["time/step"] = seconds_since(t_step);
      dir->write_metrics(m);
      // A few completions per step, for reading.
      std::vector<RolloutLogEntry> entries;
      const int64_t G = s.rollout.group_size;
      for (size_t i = 0; i < std::min(batch.samples.size(), (size_t)s.train.log_rollouts); ++i) {
        const auto& g = r.groups[i / G];
        const auto& sc = g.completions((int)(i % G));
        RolloutLogEntry entry{g.prompt(),           sc.text(), !sc.truncated(), batch.samples[i].advantage,
                              score_of(sc.total()), {}};
        for (const auto& v : sc.scores()) entry.per_function.push_back(score_of(v));
        entries.push_back(std::move(entry));
      }
      write_rollout_log(*dir, step, s.train.log_rollouts, entries, c.rewards->names());
      if (s.train.report_every > 0 && step % s.train.report_every == 0 && step < steps) refresh_report(*dir, log);
      progress_line(log, step, steps, batch.stats.reward_mean(), batch.stats.accuracy(), batch.stats.length_mean(),
                    u.kl, seconds_since(t_step),
                    // elapsed as if every step took this run's average, so the ETA holds after a resume
                    seconds_since(t_loop) * step / (double)(step - first_step + 1));
      if (e) log_eval(log, ("at step " + std::to_string(step)).c_str(), *e);
      if (console.verbosity >= 2) {
        char line[256];
        std::snprintf(line, sizeof line,
                      "  phases: generate %.2f s, reward %.2f s, train %.2f s, sync %.2f s (rollout) %.2f s "
                      "(learner), idle %.2f s (rollout) %.2f s (learner), %d threads\n",
                      lt[3], lt[4], lt[0], lt[5], lt[1], lt[6], lt[2], openmp_threads());
        log << line;
      }
    }

    if (step == steps || (s.train.checkpoint_every > 0 && step % s.train.checkpoint_every == 0)) {
      // Under async-1 the workers are generating the next step: that rollout is part of the state.
      if (!t.colocated && t.async && step < steps) in_flight = receive_rollout(t, step + 1);
      TrainingState state;
      state.step = step;
      state.data_cursor = nlohmann::json::parse(t.colocated ? cursor.state().dump()
                                                : in_flight ? in_flight->data_cursor
                                                            : workers_cursor);
      std::string saved_rollout;
      if (in_flight)
        saved_rollout =
            batch_of(*in_flight, step + 1, t.rank, t.learners->rank(), t.learners_count).SerializeAsString();
      save_run_checkpoint(s, yaml, "grpo", model, *learner, state, summary, std::move(saved_rollout),
                          t.learners->rank(), t.learners_comm);
    }
  }
  if (t.channel) t.channel->flush();
  for (const auto& [what, count] : c.rewards->error_counts()) {
    if (t.size == 1)
      log << "reward errors: " << what << " (" << count << " samples got no score)\n";
    else
      std::cerr << "cohort: rank " << t.rank << ": reward errors: " << what << " (" << count
                << " samples got no score)\n";
  }
  if (t.rank == 0) {
    save_run_model(c, model, dir->path / "model");
    refresh_report(*dir, log);
    log << "saved model to " << (dir->path / "model").string() << "\n";
  }
  summary.steps = steps;
  summary.seconds = seconds_since(t_start);
  return summary;
}

}  // namespace cohort::trainer
