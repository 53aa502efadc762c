// The run report: SVG line plots written by hand (no plotting library to install) and one HTML page.
#include "trainer/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "trainer/checkpoint.h"

namespace cohort::trainer {
namespace {

namespace fs = std::filesystem;

struct Run {
  std::string name;
  fs::path dir;
  std::vector<nlohmann::json> metrics;  // one object per line of metrics.jsonl
  std::string config;
};

// The figures: a title, a file name, and the metric keys drawn (a key ending in '*' takes every key with
// that prefix and the suffix after it, e.g. "reward/*/mean").
struct Figure {
  std::string file, title;
  std::vector<std::string> keys;
};
const std::vector<Figure>& figures() {
  static const std::vector<Figure> all = {
      {"reward", "reward (weighted total and per function)", {"reward", "reward/*/mean"}},
      {"accuracy", "accuracy (train samples and held-out, greedy)", {"accuracy", "eval/accuracy"}},
      {"completion_length", "completion length (tokens)", {"completion_length/mean", "completion_length/max"}},
      {"truncated_fraction", "truncated fraction", {"truncated_fraction"}},
      {"kl", "KL to the reference", {"kl"}},
      {"entropy", "entropy", {"entropy"}},
      {"clip_fraction", "clip fraction", {"clip_fraction"}},
      {"rollout_mismatch", "rollout/learner mismatch (k3)", {"rollout_mismatch_k3"}},
      {"grad_norm", "gradient norm", {"grad_norm"}},
      {"lr", "learning rate", {"lr"}},
      {"tokens_per_s", "tokens/s per phase", {"rollout_tokens_per_s", "train_tokens_per_s"}},
      {"time", "seconds per phase", {"time/generate", "time/reward", "time/train", "time/step"}},
      {"unscored", "reward scores lost", {"reward/unscored/*"}},
  };
  return all;
}

bool matches(const std::string& pattern, const std::string& key) {
  const size_t star = pattern.find('*');
  if (star == std::string::npos) return pattern == key;
  const std::string prefix = pattern.substr(0, star), suffix = pattern.substr(star + 1);
  return key.size() > prefix.size() + suffix.size() && key.rfind(prefix, 0) == 0 &&
         key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\n':
      case '\t':
        out += c;
        break;
      default:
        // Control characters (model output) would make the page a binary file: shown as U+FFFD.
        if ((unsigned char)c < 0x20 || c == 0x7f)
          out += "\xEF\xBF\xBD";
        else
          out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Round-trips a double: the value a test compares with metrics.jsonl.
std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

Run read_run(const fs::path& dir) {
  Run r;
  r.dir = dir;
  r.name = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  std::ifstream metrics(dir / "metrics.jsonl");
  COHORT_REQUIRE(metrics, "report: " << dir.string() << " is not a run directory (no metrics.jsonl)");
  int64_t line_number = 0;
  for (std::string line; std::getline(metrics, line);) {
    ++line_number;
    if (line.empty()) continue;
    nlohmann::json m = nlohmann::json::parse(line, nullptr, false);
    // A line being written as the report reads is skipped, not an error.
    if (m.is_object() && m.contains("step")) r.metrics.push_back(std::move(m));
  }
  std::ifstream config(dir / "config.yaml");
  std::ostringstream text;
  text << config.rdbuf();
  r.config = text.str();
  return r;
}

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string svg_plot(const Figure& figure, const std::vector<Series>& series) {
  const double W = 600, H = 340, left = 70, right = 20, top = 36, bottom = 48;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series) {
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return top + (y1 - y) / (y1 - y0) * (H - top - bottom); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << " " << H << "\" font-family=\"sans-serif\" font-size=\"11\" data-figure=\"" << figure.file << "\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" << escape(figure.title)
    << "</text>\n";
  // Axes with five ticks each.
  s << "<g stroke=\"#999\" fill=\"none\"><rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << W - left - right
    << "\" height=\"" << H - top - bottom << "\"/></g>\n<g fill=\"#333\">\n";
  for (int i = 0; i <= 4; ++i) {
    const double x = x0 + (x1 - x0) * i / 4, y = y0 + (y1 - y0) * i / 4;
    s << "<text x=\"" << px(x) << "\" y=\"" << H - bottom + 16 << "\" text-anchor=\"middle\">" << number(x)
      << "</text>\n";
    s << "<text x=\"" << left - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << number(y) << "</text>\n";
    s << "<line x1=\"" << left << "\" x2=\"" << W - right << "\" y1=\"" << py(y) << "\" y2=\"" << py(y)
      << "\" stroke=\"#eee\"/>\n";
  }
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n</g>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& ser = series[k];
    const char* color = kColors[k % std::size(kColors)];
    s << "<g class=\"series\" data-series=\"" << escape(ser.label) << "\" stroke=\"" << color << "\" fill=\"" << color
      << "\">\n<polyline fill=\"none\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : ser.points) s << px(x) << "," << py(y) << " ";
    s << "\"/>\n";
    for (const auto& [x, y] : ser.points)
      s << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"2\" data-step=\"" << number(x)
        << "\" data-value=\"" << exact(y) << "\"/>\n";
    s << "</g>\n";
    s << "<text x=\"" << left + 8 << "\" y=\"" << top + 14 + 13 * k << "\" fill=\"" << color << "\">"
      << escape(ser.label) << "</text>\n";
  }
  if (series.empty())
    s << "<text x=\"" << W / 2 << "\" y=\"" << H / 2 << "\" text-anchor=\"middle\" fill=\"#999\">no data yet</text>\n";
  s << "</svg>\n";
  return s.str();
}

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    COHORT_REQUIRE(out, "report: cannot write " << tmp.string());
    out << text;
    COHORT_REQUIRE(out.good(), "report: writing " << tmp.string() << " failed");
  }
  fs::rename(tmp, path);
}

// A sample of each step's logged completions (rollouts/step_N.jsonl): every step when there are few,
// else evenly spread ones and the last.
std::string samples_html(const Run& run, size_t max_steps = 30, size_t per_step = 4) {
  std::vector<std::pair<int64_t, fs::path>> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run.dir / "rollouts", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step_", 0) != 0 || entry.path().extension() != ".jsonl") continue;
    try {
      files.emplace_back(std::stoll(name.substr(5)), entry.path());
    } catch (const std::exception&) {
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::pair<int64_t, fs::path>> chosen;
  if (files.size() <= max_steps) {
    chosen = files;
  } else {
    for (size_t i = 0; i < max_steps; ++i) chosen.push_back(files[i * (files.size() - 1) / (max_steps - 1)]);
  }
  std::ostringstream h;
  for (const auto& [step, path] : chosen) {
    h << "<details><summary>step " << step << "</summary>\n<table class=\"samples\"><tr><th>reward</th>"
      << "<th>per function</th><th>advantage</th><th>finish</th><th>prompt and completion</th></tr>\n";
    std::ifstream in(path);
    size_t shown = 0;
    for (std::string line; shown < per_step && std::getline(in, line);) {
      nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
      if (!r.is_object()) continue;
      ++shown;
      std::string per;
      if (r.contains("rewards") && r["rewards"].is_object())
        for (const auto& [k, v] : r["rewards"].items())
          per += k + " " + (v.is_number() ? number(v.get<double>()) : "-") + "<br>";
      auto num = [&](const char* key) {
        return r.contains(key) && r[key].is_number() ? number(r[key].get<double>()) : std::string("-");
      };
      h << "<tr><td>" << num("reward") << "</td><td>" << per << "</td><td>" << num("advantage") << "</td><td>"
        << escape(r.value("finish", "")) << "</td><td><pre><span class=\"prompt\">" << escape(r.value("prompt", ""))
        << "</span>" << escape(r.value("completion", "")) << "</pre></td></tr>\n";
    }
    h << "</table></details>\n";
  }
  if (chosen.empty()) h << "<p>No completions logged yet.</p>\n";
  return h.str();
}

}  // namespace

ReportSummary render_report(const std::vector<fs::path>& dirs, const fs::path& out) {
  COHORT_REQUIRE(!dirs.empty(), "report: no run directory given");
  std::vector<Run> runs;
  for (const fs::path& d : dirs) runs.push_back(read_run(d));
  fs::create_directories(out);
  ReportSummary summary;
  summary.out = out;
  const bool many = runs.size() > 1;
  std::ostringstream plots;
  for (const Figure& figure : figures()) {
    std::vector<Series> series;
    for (const Run& run : runs) {
      // Every key that the figure's patterns match, in the order first seen.
      std::vector<std::string> keys;
      for (const auto& m : run.metrics)
        for (const auto& [key, value] : m.items())
          if (value.is_number() && std::find(keys.begin(), keys.end(), key) == keys.end())
            for (const std::string& pattern : figure.keys)
              if (matches(pattern, key)) keys.push_back(key);
      for (const std::string& key : keys) {
        Series s;
        s.label = many ? run.name + ": " + key : key;
        for (const auto& m : run.metrics) {
          auto it = m.find(key);
          if (it != m.end() && it->is_number() && std::isfinite(it->get<double>()))
            s.points.emplace_back(m["step"].get<double>(), it->get<double>());
        }
        if (!s.points.empty()) series.push_back(std::move(s));
      }
    }
    const std::string file = figure.file + ".svg";
    write_atomically(out / file, svg_plot(figure, series));
    summary.plots.push_back(file);
    plots << "<figure><img src=\"" << file << "\" alt=\"" << escape(figure.title) << "\"></figure>\n";
  }
  for (const Run& run : runs) summary.steps += (int64_t)run.metrics.size();

  std::ostringstream html;
  std::string title = runs[0].name;
  for (size_t i = 1; i < runs.size(); ++i) title += " vs " + runs[i].name;
  html << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>cohort report: " << escape(title)
       << "</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}figure{display:inline-block;margin:6px}"
          "pre{white-space:pre-wrap;max-width:900px;margin:0}.prompt{color:#888}table{border-collapse:collapse}"
          "td,th{border:1px solid #ddd;padding:4px;vertical-align:top;font-size:12px}</style></head><body>\n";
  html << "<h1>cohort report: " << escape(title) << "</h1>\n";
  for (const Run& run : runs) {
    const int64_t last = run.metrics.empty() ? 0 : run.metrics.back().value("step", (int64_t)0);
    html << "<p>" << escape(run.name) << ": " << escape(run.dir.string()) << ", " << run.metrics.size()
         << " metric rows, last step " << last << "</p>\n";
  }
  if (many) {
    std::vector<std::map<std::string, std::string>> flat(runs.size());
    std::set<std::string> keys;
    for (size_t i = 0; i < runs.size(); ++i) {
      try {
        flat[i] = flat_config(runs[i].config);
      } catch (const std::exception&) {
        // a config.yaml being rewritten: its keys are left out of the comparison this time
      }
      for (const auto& [k, v] : flat[i]) keys.insert(k);
    }
    html << "<h2>Config keys that differ</h2>\n<table class=\"config-diff\"><tr><th>key</th>";
    for (const Run& run : runs) html << "<th>" << escape(run.name) << "</th>";
    html << "</tr>\n";
    for (const std::string& k : keys) {
      bool differ = false;
      for (size_t i = 1; i < runs.size(); ++i)
        differ |= flat[i].count(k) != flat[0].count(k) || flat[i][k] != flat[0][k];
      if (!differ || k == "run.name") continue;
      html << "<tr><td>" << escape(k) << "</td>";
      for (auto& f : flat) html << "<td>" << escape(f.count(k) ? f[k] : "(absent)") << "</td>";
      html << "</tr>\n";
    }
    html << "</table>\n";
  }
  html << "<h2>Curves</h2>\n" << plots.str();
  for (const Run& run : runs) {
    html << "<h2>Completions: " << escape(run.name) << "</h2>\n" << samples_html(run);
    html << "<h2>Config: " << escape(run.name) << "</h2>\n<pre>" << escape(run.config) << "</pre>\n";
  }
  html << "</body></html>\n";
  write_atomically(out / "index.html", html.str());
  return summary;
}

}  // namespace cohort::trainer
