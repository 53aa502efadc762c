// Checkpoints of a GRPO run in HDF5 (docs/checkpoints.md): everything a resumed run needs to continue
// exactly as if it had never stopped, in one file per checkpoint.
//
//   /weights/NAME            fp32 master weights under their Hugging Face names, row-major shapes
//   /optimizer/m/NAME        AdamW first moments (same shapes)
//   /optimizer/v/NAME        AdamW second moments
//   /reference/NAME          the frozen reference policy, only when algorithm.beta > 0
//   /state.json              uint8: the training state (step, optimizer steps, data cursor, ...) as JSON
//   /config.yaml             uint8: the resolved config of the run that wrote it
//   /model_config.json       uint8: the model's ModelConfig as JSON
//   /in_flight/learner_N     uint8: async-1 only, learner N's share of the next step's rollout
// Every dataset carries a "crc32" attribute of its bytes, verified on load. A checkpoint is written
// under a temporary name, synced, renamed into place, and only then named by checkpoints/latest, so a
// crash at any moment leaves the previous latest checkpoint complete and loadable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/transformer.h"

namespace cohort::trainer {

// The state of a run at the end of a step, beside the tensors: with the weights, the AdamW state and the
// reference policy, all the loop carries from one step to the next (random streams are functions of
// (seed, purpose, step, index), trainer/run_setup.h, so they hold no state to save).
struct TrainingState {
  int64_t step = 0;             // steps completed
  int64_t optimizer_steps = 0;  // AdamW steps taken (the schedule position)
  int64_t learners = 1;         // data-parallel learners of the run that wrote it
  nlohmann::json data_cursor;   // rollout::DataCursor::state() after the last prompts drawn
  // async-1 with separate rollout workers: the next step's rollout, generated while this step trained, as one
  // serialized proto::RolloutBatch per learner (the groups that learner had received). Empty otherwise.
  std::vector<std::string> in_flight;
  nlohmann::json extra = nlohmann::json::object();  // summary figures kept across a resume
};

struct CheckpointContents {
  std::vector<float> weights, adam_m, adam_v, reference;  // flat, in the model's parameter order
  TrainingState state;
  std::string config_yaml;
  ModelConfig model_config;
};

// One learner's part of what a checkpoint saves: its ZeRO-1 shard of the AdamW moments, flat parameters
// [begin, begin + m.size()), and (learner 0's is written) the training state; in_flight is this learner's
// own serialized batch, or empty.
struct LearnerShard {
  const std::vector<float>* adam_m = nullptr;
  const std::vector<float>* adam_v = nullptr;
  int64_t begin = 0;
  std::string in_flight;
};

// Writes path atomically (path + ".tmp", fsync, rename, fsync of the directory). reference may be null
// (no reference policy). With `learners` a communicator of several learners, every one of them calls it at
// once: the file is written through MPI-IO (parallel HDF5), each learner writing its optimizer shard into
// the global /optimizer datasets and learner 0 the weights, the reference and the state; the shards' crc32
// pieces are joined in rank order. MPI_COMM_NULL: one learner, whose shard is every parameter. Throws
// cohort::Error naming the file on any failure; the previous file at path, if any, is untouched then.
void write_checkpoint(const std::filesystem::path& path, const Transformer& model, const LearnerShard& shard,
                      const std::vector<float>* reference, const TrainingState& state, const std::string& config_yaml,
                      MPI_Comm learners = MPI_COMM_NULL);

// What read_checkpoint reads besides the state, the config and the model config.
enum class CheckpointParts { metadata, weights, everything };

// Reads and verifies a checkpoint: every dataset present with the shape its name implies for the
// stored model config, its checksum equal to the stored one. Throws cohort::Error naming the file and
// the dataset for a file that is not HDF5, truncated, corrupted or incomplete. metadata: the tensor vectors
// stay empty; weights: only the weights are read.
CheckpointContents read_checkpoint(const std::filesystem::path& path,
                                   CheckpointParts parts = CheckpointParts::everything);

// The model in any file cohort reads weights from: a checkpoint (.h5), a GGUF file (.gguf) or a Hugging
// Face model directory. Throws cohort::Error naming the path for anything else.
std::unique_ptr<Transformer> load_model_from(const std::filesystem::path& path);

// One dataset as `cohort inspect` shows it.
struct CheckpointDataset {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint32_t stored_crc32 = 0, actual_crc32 = 0;
};
std::vector<CheckpointDataset> list_checkpoint(const std::filesystem::path& path);

// The directory's latest published checkpoint (dir/latest names it), or an empty path when none.
std::filesystem::path latest_checkpoint(const std::filesystem::path& checkpoints_dir);
// Publishes dir/step_NNNNNNNN.h5 as the latest, then deletes all but the newest `keep` checkpoints.
void publish_checkpoint(const std::filesystem::path& checkpoints_dir, const std::filesystem::path& written,
                        int64_t keep);
std::filesystem::path checkpoint_path(const std::filesystem::path& checkpoints_dir, int64_t step);

// The keys of two resolved configs whose values differ, leaving out those a resumed run may change
// (train.steps, train.eval_every, train.eval_prompts, train.checkpoint_every, train.keep_checkpoints,
// train.resume, train.log_rollouts, run.threads, run.name, run.dir, and the layout and transport keys
// distributed.learners, distributed.rollout_workers, distributed.colocated, distributed.bucket_mb and
// distributed.timeout_s). Both are YAML as
// Schema::to_yaml writes it.
std::vector<std::string> config_differences(const std::string& saved_yaml, const std::string& current_yaml);
// A config's YAML as dotted keys and their values in YAML flow text ("optim.lr" -> "0.001").
std::map<std::string, std::string> flat_config(const std::string& yaml);

}  // namespace cohort::trainer
