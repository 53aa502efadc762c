// A run's directory: config.yaml, metrics.jsonl and the rollout logs.
#include "trainer/run_directory.h"

#include <sstream>

#include "kernels/error.h"
#include "trainer/report.h"

namespace cohort::trainer::detail {

namespace fs = std::filesystem;

namespace {
// text with every byte that does not start or continue a valid UTF-8 sequence replaced by U+FFFD (model
// output need not be UTF-8; TensorBoard reads text summaries as UTF-8).
std::string valid_utf8(const std::string& text) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;
    if (ok && len == 3) ok = !(c == 0xE0 && p[i + 1] < 0xA0) && !(c == 0xED && p[i + 1] >= 0xA0);
    if (ok && len == 4) ok = c <= 0xF4 && !(c == 0xF0 && p[i + 1] < 0x90) && !(c == 0xF4 && p[i + 1] >= 0x90);
    if (ok) {
      out.append(text, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += 1;
    }
  }
  return out;
}
}  // namespace

fs::path RunDirectory::path_of(const Settings& s) {
  COHORT_REQUIRE(!s.run.name.empty(), "run.name is empty: name the run (run.name=NAME)");
  return fs::path(s.run.dir) / s.run.name;
}

RunDirectory::RunDirectory(const Settings& s, const std::string& yaml, int64_t resumed_step) {
  path = path_of(s);
  std::error_code ec;
  fs::create_directories(path / "rollouts", ec);
  COHORT_REQUIRE(!ec, "cannot create run directory " << path << ": " << ec.message());
  std::ofstream(path / "config.yaml") << yaml;
  std::string kept;
  if (resumed_step >= 0) {
    std::ifstream old(path / "metrics.jsonl");
    for (std::string line; std::getline(old, line);) {
      nlohmann::json m = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (m.is_object() && m.value("step", int64_t(-1)) >= 0 && m.value("step", int64_t(-1)) <= resumed_step)
        kept += line + "\n";
    }
  }
  metrics.open(path / "metrics.jsonl", std::ios::trunc);
  COHORT_REQUIRE(metrics.good(), "cannot write " << (path / "metrics.jsonl"));
  metrics << kept;
  metrics.flush();
  if (resumed_step >= 0) trim_event_files(path, resumed_step);
  tensorboard = std::make_unique<TensorBoardWriter>(path);
}

void RunDirectory::write_metrics(const nlohmann::json& m) {
  metrics << m.dump() << "\n";
  metrics.flush();
  tensorboard->scalars(m);
}

void refresh_report(const RunDirectory& dir, std::ostream& log) {
  try {
    render_report({dir.path}, dir.path / "report");
  } catch (const std::exception& e) {
    log << "warning: the report was not refreshed: " << e.what() << "\n";
  }
}

void write_rollout_log(const RunDirectory& dir, int64_t step, int64_t count,
                       const std::vector<RolloutLogEntry>& entries, const std::vector<std::string>& names) {
  std::ofstream out(dir.path / "rollouts" / ("step_" + std::to_string(step) + ".jsonl"));
  std::ostringstream markdown;
  auto value = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  for (int64_t i = 0; i < std::min<int64_t>(count, (int64_t)entries.size()); ++i) {
    const RolloutLogEntry& e = entries[i];
    nlohmann::json r = {{"step", step},
                        {"prompt", e.prompt},
                        {"completion", e.completion},
                        {"finish", e.stopped ? "stop" : "length"},
                        {"advantage", e.advantage}};
    r["reward"] = value(e.reward);
    for (size_t f = 0; f < names.size() && f < e.per_function.size(); ++f)
      r["rewards"][names[f]] = value(e.per_function[f]);
    // Model output need not be UTF-8: invalid bytes become U+FFFD rather than an error.
    out << r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    markdown << "**" << (i + 1) << ".** reward " << r["reward"].dump() << ", advantage " << e.advantage << ", "
             << r["finish"].get<std::string>() << "\n\n```\n"
             << e.prompt << e.completion << "\n```\n\n";
  }
  if (!entries.empty()) dir.tensorboard->text("rollouts", step, valid_utf8(markdown.str()));
}

}  // namespace cohort::trainer::detail
