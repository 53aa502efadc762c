// The pieces every training run sets up the same way: the model, the rewards, the data, the engine options and
// the run's random streams.
#include "trainer/run_setup.h"

#include <filesystem>

#include "kernels/error.h"
#include "model/bpe_tokenizer.h"
#include "model/model_directory.h"
#include "kernels/random.h"
#include "model/gguf.h"
#include "model/hf_config.h"
#include "model/safetensors.h"
#include "trainer/checkpoint.h"
#include "trainer/run.h"
#include "rollout/template.h"

namespace cohort::trainer::detail {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

uint64_t stream_seed(uint64_t run_seed, Stream stream, uint64_t step, uint64_t index) {
  Rng r(run_seed ^ ((uint64_t)stream * 0x9E3779B97F4A7C15ull));
  Rng s(r.next_u64() ^ (step * 0xBF58476D1CE4E5B9ull) ^ (index * 0x94D049BB133111EBull));
  return s.next_u64();
}

uint64_t sampling_seed(uint64_t run_seed, int64_t step, int64_t round, int64_t index) {
  return stream_seed(run_seed, Stream::sampling, (uint64_t)step * 1000003 + (uint64_t)round, (uint64_t)index);
}

namespace {
std::unique_ptr<Transformer> make_model(const Settings& s, const Tokenizer& tok, std::ostream& log) {
  std::unique_ptr<Transformer> model;
  if (s.model.init == "random") {
    ModelConfig c = model_config_named(s.model.size);
    COHORT_REQUIRE(c.vocab >= tok.vocab_size(), "model.size '" << s.model.size << "' has vocab " << c.vocab
                                                               << ", smaller than the tokenizer's "
                                                               << tok.vocab_size());
    model = std::make_unique<Transformer>(c);
    model->init_random(stream_seed((uint64_t)s.run.seed, Stream::init));
    log << "model: random " << c.name << ", " << model->num_parameters() << " parameters, seed " << s.run.seed << "\n";
  } else {
    model = load_model_from(s.model.init);
    log << "model: " << s.model.init << ", " << model->num_parameters() << " parameters\n";
  }
  model->set_compute(s.model.compute);
  return model;
}

}  // namespace

Prompt make_prompt(const Settings& s, const Common& c, const nlohmann::json& row) {
  Prompt p;
  const std::string filled = rollout::fill_template(rollout::resolve_prompt_template(s.data.prompt_template), row);
  if (!s.rollout.chat) {
    p.text = filled;
    p.ids = c.tokenizer->encode(p.text, /*add_bos=*/true);
    return p;
  }
  if (c.chat) {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    messages.push_back({{"role", "user"}, {"content", filled}});
    p.text = c.chat->render(messages, /*add_generation_prompt=*/true, nlohmann::ordered_json::object());
  } else {
    p.text = rollout::chat_prompt("", filled);
  }
  p.ids = c.tokenizer->encode(p.text, /*add_bos=*/false, /*parse_special=*/true);
  return p;
}

void save_run_model(const Common& c, const Transformer& model, const std::filesystem::path& dir) {
  if (c.tokenizer_dir.empty())
    save_model_directory(model, ByteTokenizer(), dir);
  else
    save_model_directory_with_tokenizer_of(model, c.tokenizer_dir, dir);
}

rollout::EngineOptions engine_options(const Settings& s, const Tokenizer& tok) {
  rollout::EngineOptions o;
  o.max_batch = s.rollout.max_batch;
  o.stop_token_ids = tok.eos_ids();
  o.stop_strings = s.rollout.stop_strings;
  return o;
}

int64_t accuracy_index(const Settings& s, const reward::RewardSet& rewards) {
  for (size_t i = 0; i < rewards.names().size(); ++i)
    if (rewards.names()[i] == s.train.accuracy_reward) return (int64_t)i;
  return 0;  // the first function stands in when none carries the accuracy name
}

Common setup(const Settings& s, std::ostream& log) {
  // The thread count was chosen by the caller (launch/main.cpp: --threads, run.threads, COHORT_THREADS).
  Common c;
  const std::filesystem::path init = s.model.init;
  if (s.model.init != "random" && std::filesystem::is_regular_file(init / "tokenizer.json")) {
    c.tokenizer = load_tokenizer(init);
    c.tokenizer_dir = init;
    log << "tokenizer: " << (init / "tokenizer.json").string() << ", " << c.tokenizer->vocab_size() << " tokens\n";
    if (s.rollout.chat) c.chat = ChatTemplate::from_tokenizer_config((init / "tokenizer_config.json").string());
  } else {
    c.tokenizer = std::make_unique<ByteTokenizer>();
  }
  c.model = make_model(s, *c.tokenizer, log);
  c.model->set_logit_temperature(s.rollout.temperature > 0 ? s.rollout.temperature : 1.0);
  c.rewards = std::make_unique<reward::RewardSet>(s.rewards, s.reward);
  if (!s.data.test.empty())
    c.test = std::make_unique<rollout::PromptDataset>(load_prompts(s, s.data.test, "test", log));
  return c;
}

rollout::PromptDataset load_prompts(const Settings& s, const std::string& path, const char* what, std::ostream& log) {
  rollout::DatasetOptions o;
  o.path = path, o.prompt_field = s.data.prompt_field, o.skip_malformed = s.data.skip_malformed;
  o.format = s.data.format;
  rollout::DatasetLoadReport report;
  rollout::PromptDataset prompts = rollout::PromptDataset::load_jsonl(o, &report);
  log << "data: " << prompts.size() << " " << what << " prompts from " << path
      << (report.skipped ? " (" + std::to_string(report.skipped) + " malformed lines skipped)" : "")
      << (report.no_reference ? " (" + std::to_string(report.no_reference) + " without a final answer to score)" : "")
      << "\n";
  return prompts;
}

}  // namespace cohort::trainer::detail

namespace cohort::trainer {

namespace {
// Whether path names something load_model_from reads, and its config: the error it would give, or "".
std::string model_source_problem(const std::string& init) {
  namespace fs = std::filesystem;
  const fs::path p = init;
  try {
    COHORT_REQUIRE(fs::exists(p), "model.init: '" << init
                                                  << "' does not exist (random, a checkpoint, a GGUF file "
                                                     "or a Hugging Face model directory)");
    if (p.extension() == ".h5") {
      read_checkpoint(p, CheckpointParts::metadata);
    } else if (p.extension() == ".gguf") {
      read_gguf_header(p.string());
    } else {
      COHORT_REQUIRE(fs::is_directory(p), "model.init: '" << init
                                                          << "' is neither a checkpoint (.h5), a GGUF file (.gguf) "
                                                             "nor a model directory");
      read_hf_config((p / "config.json").string());
      COHORT_REQUIRE(fs::exists(p / "model.safetensors") || fs::exists(p / kSafetensorsIndexFile),
                     "model.init: " << init << " holds neither model.safetensors nor " << kSafetensorsIndexFile);
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

void validate_settings(const Settings& s, RunKind kind) {
  std::vector<std::string> problems;
  auto check = [&](bool ok, std::string message) {
    if (!ok) problems.push_back(std::move(message));
  };
  if (kind == RunKind::grpo) check(!s.data.train.empty(), "data.train is empty: GRPO needs a JSONL file of prompts");
  if (kind == RunKind::sft)
    check(!s.data.train.empty(), "data.train is empty: SFT needs a JSONL file of prompt/response pairs");
  if (kind == RunKind::eval)
    check(!s.data.test.empty(), "data.test is empty: eval needs a JSONL file of held-out prompts");
  for (const auto& [key, path] :
       {std::pair<const char*, const std::string&>{"data.train", s.data.train}, {"data.test", s.data.test}})
    check(path.empty() || std::filesystem::is_regular_file(path), std::string(key) + ": '" + path + "' is not a file");
  if (kind != RunKind::sft) {
    check(s.rollout.group_size >= 2 || kind == RunKind::eval,
          "rollout.group_size must be at least 2 for group-relative advantages");
    check(!s.rewards.empty(), "rewards is empty: configure at least one reward function");
    if (!s.rewards.empty()) {
      try {
        reward::RewardSet set(s.rewards, s.reward);
      } catch (const std::exception& e) {
        problems.push_back(e.what());
      }
    }
  }
  if (s.model.init != "random") {
    std::string problem = model_source_problem(s.model.init);
    check(problem.empty(), problem);
  }
  if (!problems.empty()) {
    std::string all;
    for (const std::string& p : problems) all += (all.empty() ? "" : "\n") + p;
    throw Error(all);
  }
}

}  // namespace cohort::trainer
