// What every training run sets up the same way (internal to trainer/): the model, the rewards and the test
// set, the training prompts, the generation options, and the run's random streams.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/byte_tokenizer.h"
#include "model/chat_template.h"
#include "model/transformer.h"
#include "reward/reward_function.h"
#include "rollout/dataset.h"
#include "rollout/engine.h"
#include "trainer/settings.h"

namespace cohort::trainer::detail {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0);

// Every random stream of a run, by purpose. The numbers are part of a run's identity: change one and the
// same seed gives another run.
enum class Stream : uint64_t { init = 1, data_order = 2, sampling = 3, minibatch_order = 4, sft_order = 5 };

// The seed of one stream: a function of (run seed, stream, step, index) alone, never of a rank or of how the
// work is batched, so the same config and seed give the same run in one process and across any number of
// ranks. index is an item's place in its step (a sampling request's), not the rank that handles it.
uint64_t stream_seed(uint64_t run_seed, Stream stream, uint64_t step = 0, uint64_t index = 0);
// Sampling request `index` of dynamic-sampling round `round` (1 first) of step `step`.
uint64_t sampling_seed(uint64_t run_seed, int64_t step, int64_t round, int64_t index);

struct Common {
  std::unique_ptr<Tokenizer> tokenizer;  // model.init's tokenizer.json, else the byte tokenizer
  std::filesystem::path tokenizer_dir;   // the directory it came from; empty for the byte tokenizer
  std::optional<ChatTemplate> chat;      // rollout.chat with a model directory: its chat template
  std::unique_ptr<Transformer> model;
  std::unique_ptr<reward::RewardSet> rewards;
  std::unique_ptr<rollout::PromptDataset> test;
};
// The model (model.init: random from stream init, or a checkpoint / GGUF / model directory, whose
// tokenizer.json and chat template come with it), the rewards and data.test. The thread count was chosen by the caller
// (launch/main.cpp).
Common setup(const Settings& s, std::ostream& log);

// The text the model is given for a dataset row (data.prompt_template, a built-in's name resolved, filled
// from the row) and its token ids. Under rollout.chat the filled text is a user message rendered through the
// model's chat template with the generation prompt (the byte tokenizer's own layout, rollout::chat_prompt,
// without one), encoded with its special tokens and no extra bos, as transformers' apply_chat_template does.
struct Prompt {
  std::string text;
  std::vector<int32_t> ids;
};
Prompt make_prompt(const Settings& s, const Common& c, const nlohmann::json& row);
rollout::EngineOptions engine_options(const Settings& s, const Tokenizer& tok);
// The run's model as a Hugging Face directory (a run's model/), with the tokenizer it trained with.
void save_run_model(const Common& c, const Transformer& model, const std::filesystem::path& dir);
// The reward function whose score of 1 counts as correct (train.accuracy_reward, else the first).
int64_t accuracy_index(const Settings& s, const reward::RewardSet& rewards);
// The prompts of a data file (data.train or data.test, `what` names it in the log line) in data.format.
rollout::PromptDataset load_prompts(const Settings& s, const std::string& path, const char* what, std::ostream& log);

}  // namespace cohort::trainer::detail
