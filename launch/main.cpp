// The `cohort` command: train (GRPO), sft, eval, config, generate and model-info.
// Configs are YAML with dotted key=value overrides; every option is declared once in
// launch/options.cpp.
#include <CLI/CLI.hpp>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <vector>

#include "comm/world.h"
#include "kernels/error.h"
#include "kernels/threads.h"
#include "launch/config.h"
#include "launch/options.h"
#include "model/bpe_tokenizer.h"
#include "model/byte_tokenizer.h"
#include "model/chat_template.h"
#include "model/gguf.h"
#include "model/model_directory.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "reward/client.h"
#include "reward/plugin_loader.h"
#include "reward/server.h"
#include "rollout/engine.h"
#include "trainer/checkpoint.h"
#include "trainer/report.h"
#include "trainer/run.h"
#include "trainer/step_metrics.h"
#include "trainer/weight_sync.h"

namespace {

using namespace cohort;

// Loads CONFIG with overrides into settings; run.name defaults to the config's file name.
std::string load_settings(config::Schema& schema, trainer::Settings& settings, const std::string& path,
                          const std::vector<std::string>& overrides) {
  schema.load(path, overrides);
  if (settings.run.name.empty()) settings.run.name = std::filesystem::path(path).stem().string();
  return schema.to_yaml();
}

void print_summary(const char* what, const trainer::RunSummary& s) {
  std::printf("\n%s finished: %lld steps in %.1f s, run directory %s\n", what, (long long)s.steps, s.seconds,
              s.run_dir.c_str());
  if (s.accuracy_before >= 0)
    std::printf("  held-out accuracy  %6.1f%%  ->  %6.1f%%   (reward %.3f -> %.3f)\n", 100 * s.accuracy_before,
                100 * s.accuracy_after, s.reward_before, s.reward_after);
}

// `cohort inspect DIR` for a Hugging Face model directory (an export, a run's model/): its config and every
// tensor of model.safetensors or of the shards its index names, after loading it (which checks them all).
int inspect_model_directory(const std::filesystem::path& dir, bool as_json) {
  std::unique_ptr<Transformer> model = load_model_directory(dir);
  std::vector<std::string> files;
  if (std::filesystem::exists(dir / kSafetensorsIndexFile)) {
    std::ifstream in(dir / kSafetensorsIndexFile);
    const nlohmann::json index = nlohmann::json::parse(in);
    std::set<std::string> shards;
    for (const auto& [name, file] : index.at("weight_map").items()) shards.insert(file);
    files.assign(shards.begin(), shards.end());
  } else {
    files = {"model.safetensors"};
  }
  nlohmann::json j = {{"path", dir.string()},
                      {"format", "hf"},
                      {"config", nlohmann::json::parse(std::ifstream(dir / "config.json"))},
                      {"parameters", model->num_parameters()},
                      {"files", files},
                      {"tensors", nlohmann::json::array()}};
  for (const std::string& f : files)
    for (const SafetensorsEntry& e : read_safetensors_header((dir / f).string()))
      j["tensors"].push_back(
          {{"name", e.name}, {"dtype", e.dtype}, {"shape", e.shape}, {"bytes", e.end - e.begin}, {"file", f}});
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("hf %s: %s, %zu tensors in %zu file(s), %lld parameters\n", dir.c_str(),
              j["config"].value("architectures", nlohmann::json::array({"?"}))[0].get<std::string>().c_str(),
              j["tensors"].size(), files.size(), (long long)model->num_parameters());
  for (const auto& t : j["tensors"]) {
    std::string shape;
    for (const auto& v : t["shape"]) shape += (shape.empty() ? "" : "x") + std::to_string(v.get<int64_t>());
    std::printf("  %-48s %-5s %-16s %12lld bytes  %s\n", t["name"].get<std::string>().c_str(),
                t["dtype"].get<std::string>().c_str(), shape.c_str(), (long long)t["bytes"].get<int64_t>(),
                t["file"].get<std::string>().c_str());
  }
  return 0;
}

// `cohort inspect`: the datasets of a checkpoint with shapes and checksums, and its training state.
// Exits 1 when any dataset fails its checksum.
int inspect_checkpoint(const std::string& path_arg, bool as_json) {
  namespace fs = std::filesystem;
  fs::path path = path_arg;
  if (fs::is_directory(path) && !fs::exists(path / "checkpoints") && fs::exists(path / "config.json"))
    return inspect_model_directory(path, as_json);
  if (fs::is_directory(path)) {
    fs::path latest = trainer::latest_checkpoint(path / "checkpoints");
    COHORT_REQUIRE(!latest.empty(), path_arg << " is a directory without checkpoints/latest (not a run directory)");
    path = latest;
  }
  if (path.extension() == ".gguf") {
    GgufFile g = read_gguf_header(path.string());
    std::unique_ptr<Transformer> model = load_gguf_model(path.string());  // reads and checks every tensor
    nlohmann::json j = {
        {"path", path.string()}, {"format", "gguf"}, {"version", g.version}, {"tensors", nlohmann::json::array()}};
    for (const auto& t : g.tensors)
      j["tensors"].push_back({{"name", t.name}, {"type", t.type}, {"dims", t.dims}, {"bytes", t.bytes}});
    j["architecture"] = g.get_string("general.architecture");
    j["parameters"] = model->num_parameters();
    if (as_json) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf("gguf %s: version %u, architecture %s, %zu tensors, %lld parameters\n", path.c_str(), g.version,
                  j["architecture"].get<std::string>().c_str(), g.tensors.size(), (long long)model->num_parameters());
      for (const auto& t : g.tensors) {
        std::string dims;
        for (uint64_t d : t.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
        std::printf("  %-40s type %-3u %-16s %12llu bytes\n", t.name.c_str(), t.type, dims.c_str(),
                    (unsigned long long)t.bytes);
      }
    }
    return 0;
  }
  std::vector<trainer::CheckpointDataset> datasets = trainer::list_checkpoint(path);
  bool all_ok = true;
  nlohmann::json j = {{"path", path.string()}, {"datasets", nlohmann::json::array()}};
  for (const auto& d : datasets) {
    bool ok = d.dtype.find('(') == std::string::npos;  // list_checkpoint puts a failed read's reason there
    all_ok = all_ok && ok;
    j["datasets"].push_back(
        {{"name", d.name}, {"dtype", d.dtype}, {"shape", d.shape}, {"crc32", d.stored_crc32}, {"checksum_ok", ok}});
  }
  if (all_ok) {
    // list_checkpoint has already read and verified every tensor; only the state is left to read.
    trainer::CheckpointContents c = trainer::read_checkpoint(path, trainer::CheckpointParts::metadata);
    j["step"] = c.state.step;
    j["optimizer_steps"] = c.state.optimizer_steps;
    j["data_cursor"] = c.state.data_cursor;
    j["config"] = c.config_yaml;
  }
  if (as_json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("checkpoint %s\n", path.c_str());
    if (all_ok)
      std::printf("step %lld, optimizer steps %lld, data cursor %s\n", (long long)j["step"].get<int64_t>(),
                  (long long)j["optimizer_steps"].get<int64_t>(), j["data_cursor"].dump().c_str());
    std::printf("%-60s %-6s %-16s %10s %s\n", "dataset", "dtype", "shape", "crc32", "checksum");
    for (const auto& d : j["datasets"]) {
      std::string shape;
      for (const auto& v : d["shape"]) shape += (shape.empty() ? "" : "x") + std::to_string(v.get<int64_t>());
      std::printf("%-60s %-6s %-16s %10u %s\n", d["name"].get<std::string>().c_str(),
                  d["dtype"].get<std::string>().substr(0, 6).c_str(), shape.c_str(), d["crc32"].get<uint32_t>(),
                  d["checksum_ok"].get<bool>() ? "ok" : ("FAILED: " + d["dtype"].get<std::string>()).c_str());
    }
  }
  if (!all_ok) std::fprintf(stderr, "cohort: error: %s: a dataset fails its checksum\n", path.c_str());
  return all_ok ? 0 : 1;
}

}  // namespace

// The reward server's closing line: what it answered.
static void print_server_summary(const reward::v1::StatsReply& s) {
  std::printf(
      "cohort reward-server: stopped after %.0f s: %llu requests answered, %llu errors sent, %llu "
      "connections, %llu workers replaced\n",
      s.uptime_s(), (unsigned long long)s.requests(), (unsigned long long)s.errors(),
      (unsigned long long)s.connections_total(), (unsigned long long)s.workers_replaced());
}

int main(int argc, char** argv) {
  // Under mpirun every rank runs this; a plain process never touches MPI.
  std::unique_ptr<comm::World> world;
  try {
    if (comm::launched_by_mpi()) world = std::make_unique<comm::World>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cohort: error: %s\n", e.what());
    return 1;
  }
  const bool many = world && world->size() > 1;
  const bool rank0 = !world || world->rank() == 0;
  CLI::App app{"cohort: reinforcement learning (GRPO) for language models, in C++ and CUDA"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads may stand before or after the subcommand
  int64_t threads = 0;
  app.add_option("--threads", threads,
                 "compute threads; beats run.threads, which beats COHORT_THREADS, which beats the cores given")
      ->check(CLI::Range(int64_t(1), int64_t(4096)));

  trainer::Console console;
  bool quiet = false, verbose = false;
  app.add_flag("--quiet", quiet, "print errors and the final summary only");
  app.add_flag("--verbose", verbose, "also print each step's phase times");
  app.add_flag("--all-ranks", console.all_ranks, "under mpirun every rank prints, its lines prefixed [rank N]");
  std::string config_path;
  std::vector<std::string> overrides;
  auto add_config_args = [&](CLI::App* sub) {
    sub->add_option("config", config_path, "YAML config file")->required();
    sub->add_option("overrides", overrides, "dotted key=value overrides, e.g. rollout.temperature=0.7");
  };
  auto* train = app.add_subcommand("train", "GRPO training");
  add_config_args(train);
  auto* sft = app.add_subcommand("sft", "supervised fine-tuning on prompt/response pairs (warm start)");
  add_config_args(sft);
  auto* eval = app.add_subcommand("eval", "greedy accuracy and rewards on data.test, as a table and JSON");
  add_config_args(eval);
  std::string eval_checkpoint;
  eval->add_option("--checkpoint", eval_checkpoint, "checkpoint (.h5), GGUF file or model directory (sets model.init)");
  auto* show = app.add_subcommand("config", "print the resolved config and the role layout, then exit");
  add_config_args(show);
  int layout_ranks = 0;
  show->add_option("--np", layout_ranks, "lay the roles out for this many ranks (default: this launch's)");
  auto* options = app.add_subcommand("options", "list every config key with its type, default and help");
  bool options_markdown = false;
  options->add_flag("--markdown", options_markdown, "as the Markdown table docs/config.md holds");

  std::string size = "small", prompt = "Hello", checkpoint;
  uint64_t seed = 1;
  int64_t max_new = 32, samples = 1;
  double temperature = 0.0;
  auto* generate = app.add_subcommand("generate", "sample from a model directory or a seeded random model");
  generate->add_option("--checkpoint", checkpoint, "checkpoint (.h5), GGUF file or Hugging Face model directory");
  generate->add_option("--model", size, "named size of a random model when no checkpoint is given")
      ->capture_default_str();
  generate->add_option("--seed", seed, "seed of the random model and of sampling")->capture_default_str();
  generate->add_option("--prompt", prompt, "prompt text")->capture_default_str();
  generate->add_option("--max-new-tokens", max_new, "tokens to generate")->capture_default_str();
  generate->add_option("--n", samples, "completions to sample")->capture_default_str();
  generate->add_option("--temperature", temperature, "0: greedy")->capture_default_str();

  std::string inspect_path;
  bool inspect_json = false;
  auto* inspect = app.add_subcommand("inspect",
                                     "describe a checkpoint (.h5), a GGUF file, a Hugging Face model directory or "
                                     "a run directory's latest checkpoint");
  inspect->add_option("path", inspect_path, "checkpoint, GGUF file, model directory or run directory")->required();
  inspect->add_flag("--json", inspect_json, "print JSON instead of a table");
  std::string export_checkpoint, export_format, export_out, export_dtype = "f32";
  auto* exporter = app.add_subcommand("export", "write a checkpoint or model for serving: Hugging Face or GGUF");
  exporter->add_option("--checkpoint", export_checkpoint, "checkpoint (.h5), run directory, model directory or GGUF")
      ->required();
  exporter->add_option("--format", export_format, "hf (transformers, vLLM, SGLang) or gguf (llama.cpp, Ollama)")
      ->required()
      ->check(CLI::IsMember({"hf", "gguf"}));
  exporter->add_option("--out", export_out, "output directory")->required();
  exporter->add_option("--dtype", export_dtype, "f32 | bf16 (hf); f32 | f16 | bf16 | q8_0 (gguf)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  int64_t max_shard_bytes = 5'000'000'000;
  exporter->add_option("--max-shard-size", max_shard_bytes, "hf: larger weights go into shards of at most this (5GB)")
      ->transform(CLI::AsSizeValue(/*kb_is_1000=*/true))
      ->check(CLI::PositiveNumber);
  std::string tokenizer_path, tokenize_text, tokenize_file;
  bool tokenize_lines = false, tokenize_decode = false;
  auto* tokenize = app.add_subcommand("tokenize", "token ids of a text (or --decode: ids back to text)");
  tokenize->add_option("--tokenizer", tokenizer_path, "tokenizer.json, or a directory holding one; 'byte': cohort's")
      ->required();
  auto* text_option = tokenize->add_option("--text", tokenize_text, "the text");
  tokenize->add_option("--file", tokenize_file, "a file whose whole content is the text")->excludes(text_option);
  tokenize->add_flag("--lines", tokenize_lines, "each line on its own, one output line per input line");
  tokenize->add_flag("--decode", tokenize_decode, "the input is space-separated ids; print their text");
  std::string template_model, template_config, template_messages;
  bool generation_prompt = false;
  auto* render = app.add_subcommand("template", "print a conversation exactly as the model's chat template renders it");
  auto* model_option = render->add_option("--model", template_model, "a model directory (its tokenizer_config.json)");
  render->add_option("--tokenizer-config", template_config, "a tokenizer_config.json")->excludes(model_option);
  render->add_option("--messages", template_messages, "JSON file: a list of {role, content} messages")->required();
  render->add_flag("--generation-prompt", generation_prompt, "end with the assistant turn's opening");
  std::vector<std::string> report_runs;
  std::string report_out;
  auto* report = app.add_subcommand("report",
                                    "render a run's report/ (plots, samples, config), or several runs on "
                                    "the same axes with the config keys that differ");
  report->add_option("runs", report_runs, "run directories (runs/NAME)")->required();
  report->add_option("--out", report_out,
                     "where to write (default: RUN/report for one run, ./report-compare for several)");
  std::string server_config, server_token_file;
  std::vector<std::string> server_plugins;
  bool server_isolate = false;
  reward::ServerOptions server_options;
  int64_t server_workers = 0, server_worker_memory_mb = reward::ServiceOptions{}.worker_memory_mb;
  double server_timeout_s = reward::ServiceOptions{}.timeout_s;
  auto* serve =
      app.add_subcommand("reward-server", "serve reward functions over the reward protocol (docs/reward-protocol.md)");
  serve->add_option("--listen", server_options.listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  serve->add_option("--config", server_config,
                    "a training config whose rewards (and reward.plugins, reward.isolate) are served; without one, "
                    "every built-in and plugin kind that needs no options, under its kind's name");
  serve->add_option("--plugin", server_plugins, "a reward plugin (shared library); repeatable");
  serve->add_option("--token-file", server_token_file, "clients must present this file's secret in their Hello");
  serve->add_flag("--isolate", server_isolate, "score every function in worker processes (plugins always are)");
  serve->add_option("--workers", server_workers, "isolated worker processes (0: the cores)");
  serve->add_option("--worker-memory-mb", server_worker_memory_mb, "memory a worker may add to what it inherited")
      ->capture_default_str();
  serve->add_option("--timeout", server_timeout_s, "seconds an isolated function may spend on one sample")
      ->capture_default_str();
  serve->add_option("--score-threads", server_options.threads, "threads scoring requests (0: the cores)");
  serve->add_option("--max-frame-bytes", server_options.max_frame_bytes, "largest frame accepted")
      ->capture_default_str();
  serve->add_option("--read-timeout", server_options.read_timeout_s, "seconds a begun frame may take to arrive")
      ->capture_default_str();
  serve->add_option("--idle-timeout", server_options.idle_timeout_s, "seconds an idle connection stays open")
      ->capture_default_str();
  serve->add_option("--deadline", server_options.default_deadline_s, "a request's deadline when it names none")
      ->capture_default_str();
  serve->add_option("--max-connections", server_options.max_connections, "connections served at once")
      ->capture_default_str();
  auto* info = app.add_subcommand("model-info", "print a named model size's shape and parameter names");
  info->add_option("--model", size, "named model size")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    trainer::Settings settings;
    config::Schema schema;
    declare_options(schema, settings);
    if (*options) {
      std::cout << (options_markdown ? schema.markdown() : schema.help());
      return 0;
    }
    if (*show) {
      load_settings(schema, settings, config_path, overrides);
      trainer::validate_settings(settings, trainer::RunKind::any);
      ThreadChoice thread_choice = choose_threads(threads, settings.run.threads);
      const trainer::DistributedSettings& d = settings.distributed;
      int ranks = layout_ranks > 0 ? layout_ranks : world ? world->size() : 0;
      if (ranks == 0) ranks = d.colocated ? 1 : (int)(d.learners + std::max<int64_t>(1, d.rollout_workers));
      comm::RoleLayout layout = trainer::role_layout(d, ranks);
      if (!rank0) return 0;
      std::cout << schema.to_yaml();
      std::cout << "# threads: " << thread_choice.describe() << " per process\n";
      if (ranks == 1) {
        std::cout << "# layout: 1 process: rollout, reward and learner in this process, " << thread_choice.threads
                  << " threads\n";
        return 0;
      }
      std::istringstream lines(comm::describe(layout, ranks));
      std::cout << "# layout for " << ranks << " ranks, schedule "
                << (d.schedule == trainer::Schedule::async_1 ? "async-1" : "sync") << ":\n";
      for (std::string line; std::getline(lines, line);) std::cout << "#   " << line << "\n";
      return 0;
    }
    if (*train || *sft) {
      std::string yaml = load_settings(schema, settings, config_path, overrides);
      ThreadChoice thread_choice = apply_threads(threads, settings.run.threads);
      if (rank0 && !quiet) std::cout << "threads: " << thread_choice.describe() << "\n";
      COHORT_REQUIRE(!(*sft && many), "cohort sft runs in one process; start it without mpirun (or with -np 1)");
      console.verbosity = quiet ? 0 : verbose ? 2 : 1;
      trainer::RunSummary s = *sft
                                  ? trainer::run_sft(settings, yaml, quiet ? trainer::detail::null_stream() : std::cout)
                                  : trainer::run_grpo(settings, yaml, std::cout, console);
      if (rank0) print_summary(*train ? "train" : "sft", s);
      return 0;
    }
    COHORT_REQUIRE(!many, "only train and config run across ranks; start this command without mpirun");
    if (*eval) {
      if (!eval_checkpoint.empty()) overrides.push_back("model.init=" + eval_checkpoint);
      load_settings(schema, settings, config_path, overrides);
      std::cout << "threads: " << apply_threads(threads, settings.run.threads).describe() << "\n";
      trainer::EvalResult r = trainer::run_eval(settings, std::cout);
      std::printf("\n%-24s %10s\n", "metric", "value");
      std::printf("%-24s %10lld\n", "prompts", (long long)r.prompts);
      std::printf("%-24s %9.1f%%\n", "accuracy", 100 * r.accuracy);
      std::printf("%-24s %10.4f\n", "reward (mean)", r.reward_mean);
      std::printf("%-24s %10.2f\n", "completion tokens", r.completion_tokens_mean);
      for (auto& [name, value] : r.per_function.items())
        std::printf("%-24s %10.4f\n", ("reward/" + name).c_str(), value.get<double>());
      nlohmann::json j = {{"prompts", r.prompts},
                          {"accuracy", r.accuracy},
                          {"reward", r.reward_mean},
                          {"completion_tokens", r.completion_tokens_mean},
                          {"rewards", r.per_function}};
      std::printf("%s\n", j.dump().c_str());
      return 0;
    }
    if (*inspect) return inspect_checkpoint(inspect_path, inspect_json);
    if (*exporter) {
      std::filesystem::path from = export_checkpoint;
      if (std::filesystem::is_directory(from / "checkpoints")) from = trainer::latest_checkpoint(from / "checkpoints");
      COHORT_REQUIRE(!from.empty(), export_checkpoint << " is a run directory without checkpoints/latest");
      std::unique_ptr<Transformer> model = trainer::load_model_from(from);
      ByteTokenizer tok;
      std::filesystem::create_directories(export_out);
      if (export_format == "hf") {
        COHORT_REQUIRE(export_dtype == "f32" || export_dtype == "bf16",
                       "--format hf writes f32 or bf16 weights, not " << export_dtype);
        save_model_directory(*model, tok, export_out,
                             export_dtype == "bf16" ? SafetensorsDtype::bf16 : SafetensorsDtype::f32, max_shard_bytes);
        std::printf("exported %s to %s (Hugging Face, %s)\n", from.c_str(), export_out.c_str(), export_dtype.c_str());
      } else {
        GgufDtype d = export_dtype == "f16"    ? GgufDtype::f16
                      : export_dtype == "bf16" ? GgufDtype::bf16
                      : export_dtype == "q8_0" ? GgufDtype::q8_0
                                               : GgufDtype::f32;
        std::string path = (std::filesystem::path(export_out) / ("model-" + export_dtype + ".gguf")).string();
        write_gguf(*model, tok, path, d);
        std::printf("exported %s to %s (GGUF, %s)\n", from.c_str(), path.c_str(), export_dtype.c_str());
      }
      return 0;
    }
    if (*tokenize) {
      COHORT_REQUIRE(!tokenize_text.empty() || !tokenize_file.empty() || tokenize->count("--text"),
                     "tokenize: give --text or --file");
      std::unique_ptr<Tokenizer> tok;
      if (tokenizer_path == "byte")
        tok = std::make_unique<ByteTokenizer>();
      else
        tok = load_tokenizer(tokenizer_path);
      std::string input = tokenize_text;
      if (!tokenize_file.empty()) {
        std::ifstream in(tokenize_file, std::ios::binary);
        COHORT_REQUIRE(in, "tokenize: cannot read " << tokenize_file);
        input.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      }
      std::vector<std::string> texts;
      if (tokenize_lines) {
        std::istringstream lines(input);
        for (std::string line; std::getline(lines, line);) texts.push_back(line);
      } else {
        texts.push_back(input);
      }
      for (const std::string& text : texts) {
        if (tokenize_decode) {
          std::vector<int32_t> ids;
          std::istringstream in(text);
          for (std::string word; in >> word;) {
            char* end = nullptr;
            long v = std::strtol(word.c_str(), &end, 10);
            COHORT_REQUIRE(end && *end == '\0' && v >= 0 && v <= INT32_MAX,
                           "tokenize --decode: '" << word << "' is not a token id");
            ids.push_back((int32_t)v);
          }
          std::string out = tok->decode(ids, /*skip_special=*/false);
          std::fwrite(out.data(), 1, out.size(), stdout);
          if (tokenize_lines) std::fputc('\n', stdout);
        } else {
          std::vector<int32_t> ids = tok->encode(text, /*add_bos=*/false, /*parse_special=*/true);
          std::string line;
          for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
          std::printf("%s\n", line.c_str());
        }
      }
      return 0;
    }
    if (*render) {
      COHORT_REQUIRE(!template_model.empty() || !template_config.empty(),
                     "template: give --model DIR or --tokenizer-config FILE");
      std::string path = template_config.empty()
                             ? (std::filesystem::path(template_model) / "tokenizer_config.json").string()
                             : template_config;
      ChatTemplate chat = ChatTemplate::from_tokenizer_config(path);
      std::ifstream in(template_messages);
      COHORT_REQUIRE(in, "template: cannot read " << template_messages);
      nlohmann::ordered_json messages = nlohmann::ordered_json::parse(in, nullptr, false);
      COHORT_REQUIRE(messages.is_array(), "template: " << template_messages << " is not a JSON list of messages");
      std::string out = chat.render(messages, generation_prompt, nlohmann::ordered_json::object());
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    }
    if (*report) {
      const std::filesystem::path out = !report_out.empty()       ? std::filesystem::path(report_out)
                                        : report_runs.size() == 1 ? std::filesystem::path(report_runs[0]) / "report"
                                                                  : std::filesystem::path("report-compare");
      std::vector<std::filesystem::path> dirs(report_runs.begin(), report_runs.end());
      trainer::ReportSummary r = trainer::render_report(dirs, out);
      std::printf("report: %s/index.html, %zu plots from %lld metric rows of %zu run%s\n", out.string().c_str(),
                  r.plots.size(), (long long)r.steps, dirs.size(), dirs.size() == 1 ? "" : "s");
      return 0;
    }
    if (*serve) {
      apply_threads(threads, 0);
      nlohmann::json rewards = nlohmann::json::array();
      reward::ServiceOptions service;
      if (!server_config.empty()) {
        load_settings(schema, settings, server_config, {});
        service = settings.reward;
        // A server scores what it has; it does not forward to other servers.
        for (const auto& entry : settings.rewards)
          if (!(entry.is_object() && entry.value("kind", "") == "remote")) rewards.push_back(entry);
      }
      service.endpoints.clear();
      service.plugins.insert(service.plugins.end(), server_plugins.begin(), server_plugins.end());
      if (server_isolate) service.isolate = true;
      if (server_workers > 0) service.workers = server_workers;
      service.worker_memory_mb = server_worker_memory_mb;
      service.timeout_s = server_timeout_s;
      if (rewards.empty()) {
        for (const std::string& path : service.plugins) reward::load_reward_plugin(path);
        std::vector<std::string> kinds = reward::reward_kinds();
        for (const std::string& k : reward::plugin_kinds()) kinds.push_back(k);
        for (const std::string& kind : kinds) {
          try {
            reward::make_reward_function(kind, nlohmann::json::object());
            rewards.push_back({{"kind", kind}});
          } catch (const std::exception&) {
            // a kind that needs options is served only through --config
          }
        }
      }
      reward::RewardSet functions(rewards, service);
      std::string listing;
      for (size_t i = 0; i < functions.names().size(); ++i)
        listing += (i ? ", " : "") + functions.names()[i] + " (" + functions.placement(i) + ")";
      if (!server_token_file.empty()) server_options.token = reward::read_token_file(server_token_file);
      server_options.handle_signals = true;
      reward::RewardServer server(std::move(functions), server_options);
      const std::string host = reward::parse_endpoint(server_options.listen, "--listen").host;
      std::printf("cohort reward-server: serving %s\n", listing.c_str());
      std::printf("listening on %s:%u\n", host.c_str(), (unsigned)server.port());
      std::fflush(stdout);
      server.run();
      print_server_summary(server.stats());
      return 0;
    }
    if (*info) {
      apply_threads(threads, 0);
      ModelConfig c = model_config_named(size);
      Transformer model(c);
      std::printf(
          "model %s: hidden %ld, layers %ld, heads %ld, kv_heads %ld, intermediate %ld, vocab %ld, "
          "max_seq_len %ld, %ld parameters\n",
          c.name.c_str(), (long)c.hidden, (long)c.layers, (long)c.heads, (long)c.kv_heads, (long)c.intermediate,
          (long)c.vocab, (long)c.max_seq_len, (long)model.num_parameters());
      for (const auto& p : model.parameters()) {
        std::printf("  %-48s (", p.name.c_str());
        for (size_t i = 0; i < p.shape.size(); ++i) std::printf("%s%ld", i ? ", " : "", (long)p.shape[i]);
        std::printf(")\n");
      }
      return 0;
    }
    if (*generate) {
      ThreadChoice thread_choice = apply_threads(threads, 0);
      ByteTokenizer tok;
      std::unique_ptr<Transformer> model;
      if (!checkpoint.empty()) {
        model = trainer::load_model_from(checkpoint);
      } else {
        ModelConfig c = model_config_named(size);
        model = std::make_unique<Transformer>(c);
        model->init_random(seed);
      }
      COHORT_REQUIRE(
          model->config().vocab >= tok.vocab_size(),
          "model vocab " << model->config().vocab << " is smaller than the byte tokenizer's " << tok.vocab_size());
      rollout::EngineOptions o;
      o.stop_token_ids = {tok.eos_id()};
      rollout::GenerationEngine engine(*model, tok, o);
      std::vector<rollout::GenerationRequest> requests((size_t)samples);
      for (int64_t i = 0; i < samples; ++i) {
        requests[i].prompt = tok.encode(prompt, /*add_bos=*/true);
        requests[i].max_new_tokens = max_new;
        requests[i].sampling.temperature = (float)temperature;
        requests[i].seed = seed * 1000003 + (uint64_t)i;
      }
      auto t0 = std::chrono::steady_clock::now();
      std::vector<rollout::Completion> out = engine.generate(requests);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("prompt: %s\n", prompt.c_str());
      for (size_t i = 0; i < out.size(); ++i)
        std::printf("completion %zu (%zu tokens, %s): %s\n", i, out[i].tokens.size(),
                    out[i].finish == rollout::FinishReason::stop ? "stop" : "length", out[i].text.c_str());
      std::printf("decode: %.1f tokens/s on %s (%s)\n", engine.last_stats().generated_tokens / secs,
                  thread_choice.describe().c_str(),
                  checkpoint.empty() ? ("random " + size + " model").c_str() : checkpoint.c_str());
      return 0;
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    // One failing rank takes the whole job down at once, its reason first, rather than leaving peers hung.
    if (many) world->abort_all(std::string("error: ") + e.what());
    std::fprintf(stderr, "cohort: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
