// A run's checkpoints: resume selection and checks, saving and publishing, restoring a learner.
#include "trainer/run_checkpoint.h"

#include <filesystem>
#include <sstream>

#include "kernels/error.h"
#include "trainer/run_directory.h"

namespace cohort::trainer::detail {

namespace {
// The checkpoint train.resume points at: auto takes checkpoints/latest when there is one.
std::filesystem::path resume_path(const Settings& s, const std::filesystem::path& checkpoints) {
  if (s.train.resume == "never") return {};
  if (s.train.resume == "auto") return latest_checkpoint(checkpoints);
  COHORT_REQUIRE(std::filesystem::exists(s.train.resume),
                 "train.resume: '" << s.train.resume << "' is neither auto, never nor an existing checkpoint");
  return s.train.resume;
}
}  // namespace

std::optional<CheckpointContents> checkpoint_to_resume(const Settings& s, const std::string& yaml, const char* kind,
                                                       CheckpointParts parts) {
  std::filesystem::path from = resume_path(s, RunDirectory::path_of(s) / "checkpoints");
  if (from.empty()) return std::nullopt;
  CheckpointContents c = read_checkpoint(from, parts);
  const std::string wrote = c.state.extra.value("run", "grpo");
  COHORT_REQUIRE(wrote == kind, "cannot resume from " << from.string() << ": a cohort "
                                                      << (wrote == "sft" ? "sft" : "train")
                                                      << " run wrote it, and this is a cohort "
                                                      << (std::string(kind) == "sft" ? "sft" : "train")
                                                      << " run (name this run otherwise, or train.resume=never)");
  std::vector<std::string> differ = config_differences(c.config_yaml, yaml);
  if (!differ.empty()) {
    std::ostringstream msg;
    msg << "cannot resume from " << from.string() << ": its config differs from this run's in " << differ.size()
        << (differ.size() == 1 ? " key" : " keys") << " (train.resume=never starts afresh):";
    for (const std::string& d : differ) msg << "\n  " << d;
    throw Error(msg.str());
  }
  return c;
}

void save_run_checkpoint(const Settings& s, const std::string& yaml, const char* kind, const Transformer& model,
                         Learner& learner, TrainingState state, const RunSummary& summary, std::string in_flight,
                         int learner_rank, MPI_Comm learners) {
  const std::filesystem::path checkpoints = RunDirectory::path_of(s) / "checkpoints";
  std::filesystem::create_directories(checkpoints);
  state.optimizer_steps = learner.optimizer().steps_taken();
  state.extra = {{"run", kind},
                 {"accuracy_before", summary.accuracy_before},
                 {"reward_before", summary.reward_before},
                 {"accuracy_after", summary.accuracy_after},
                 {"reward_after", summary.reward_after}};
  LearnerShard shard{&learner.optimizer().first_moments(), &learner.optimizer().second_moments(), learner.shard_begin(),
                     std::move(in_flight)};
  const std::filesystem::path path = checkpoint_path(checkpoints, state.step);
  write_checkpoint(path, model, shard, learner.reference_weights(), state, yaml, learners);
  if (learner_rank == 0) publish_checkpoint(checkpoints, path, s.train.keep_checkpoints);
}

RunSummary resumed_summary(const Settings& s, const TrainingState& state) {
  RunSummary summary;
  summary.run_dir = RunDirectory::path_of(s).string();
  summary.accuracy_before = state.extra.value("accuracy_before", -1.0);
  summary.reward_before = state.extra.value("reward_before", 0.0);
  summary.accuracy_after = state.extra.value("accuracy_after", -1.0);
  summary.reward_after = state.extra.value("reward_after", 0.0);
  return summary;
}

void restore_learner(Learner& learner, const CheckpointContents& c) {
  const int64_t b = learner.shard_begin(), n = learner.shard_size();
  COHORT_REQUIRE(c.adam_m.size() == c.adam_v.size() && (int64_t)c.adam_m.size() >= b + n,
                 "the checkpoint's optimizer state holds " << c.adam_m.size() << " values, the model more");
  learner.optimizer().restore(std::vector<float>(c.adam_m.begin() + b, c.adam_m.begin() + b + n),
                              std::vector<float>(c.adam_v.begin() + b, c.adam_v.begin() + b + n),
                              c.state.optimizer_steps);
  if (std::vector<float>* ref = learner.reference_weights()) {
    COHORT_REQUIRE(c.reference.size() == ref->size(),
                   "the checkpoint has no reference policy, but algorithm.beta > 0 needs one");
    *ref = c.reference;
  }
}

}  // namespace cohort::trainer::detail
