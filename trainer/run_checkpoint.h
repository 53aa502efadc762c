// A run's checkpoints (internal to trainer/): which one train.resume names, and saving one of a learner's
// state into runs/NAME/checkpoints/ and publishing it (trainer/checkpoint.h has the format).
#pragma once

#include <mpi.h>

#include <optional>
#include <string>

#include "model/transformer.h"
#include "trainer/checkpoint.h"
#include "trainer/learner.h"
#include "trainer/run.h"
#include "trainer/settings.h"

namespace cohort::trainer::detail {

// The checkpoint train.resume names (auto: checkpoints/latest when there is one), read and checked against
// this run's config: one that differs in anything but the keys a resume may change (config_differences) is
// refused naming every differing key, as is one another kind of run wrote (kind: "grpo" or "sft"). Nothing
// when the run starts afresh.
std::optional<CheckpointContents> checkpoint_to_resume(const Settings& s, const std::string& yaml, const char* kind,
                                                       CheckpointParts parts);

// Writes step `state.step`'s checkpoint of `learner` (every learner of `learners` at once, MPI_COMM_NULL for
// one) and, on learner 0, publishes it as checkpoints/latest keeping train.keep_checkpoints. The summary's
// figures and the run's kind go into the state so a resumed run reports and checks them.
void save_run_checkpoint(const Settings& s, const std::string& yaml, const char* kind, const Transformer& model,
                         Learner& learner, TrainingState state, const RunSummary& summary, std::string in_flight,
                         int learner_rank, MPI_Comm learners = MPI_COMM_NULL);

// A resumed run's summary: the checkpoint's figures (a run resumed at its last step has nothing left to do).
RunSummary resumed_summary(const Settings& s, const TrainingState& state);

// Restores the learner's optimizer shard (re-cut from the full moments whatever the learner count that
// wrote them) and its reference policy from a checkpoint.
void restore_learner(Learner& learner, const CheckpointContents& c);

}  // namespace cohort::trainer::detail
