// JSONL prompt and SFT readers (one object per line, malformed lines skipped or fatal,
// every message naming file and line) and the seeded per-epoch data cursor.
#include "rollout/dataset.h"

#include "reward/math_verify.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <string_view>
#include <utility>

#include "kernels/error.h"
#include "kernels/random.h"

namespace cohort::rollout {
namespace {

using nlohmann::json;

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; });
}

// nlohmann's parse messages start with "[json.exception.parse_error.101] parse error at
// line 1, column 7: ..."; the line is always 1 here (one line is parsed at a time), so
// keep only the column and the reason.
std::string describe_parse_error(const json::parse_error& e) {
  std::string what = e.what();
  if (size_t bracket = what.find("] "); what.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
    what.erase(0, bracket + 2);
  }
  if (size_t at = what.find("at line 1, "); at != std::string::npos) what.erase(at + 3, 8);
  return "invalid JSON (" + what + ")";
}

// Returns an empty string when row[field] is a string, else why not.
std::string check_string_field(const json& row, const std::string& field) {
  auto it = row.find(field);
  if (it == row.end()) return "missing field \"" + field + "\"";
  if (!it->is_string()) return "field \"" + field + "\" must be a string, got " + std::string(it->type_name());
  return "";
}

// Reads `path` line by line and hands every non-blank line that parses as a JSON object
// to accept(), which returns an empty string when it keeps the row or the reason the row
// is malformed. Fills `report`; throws cohort::Error for a file that cannot be read, for
// the first malformed line when !skip_malformed, and when no line was accepted.
void read_jsonl_objects(const std::string& path, bool skip_malformed, DatasetLoadReport& report,
                        const std::function<std::string(json&, int64_t)>& accept) {
  report = DatasetLoadReport{};
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, expected a JSONL file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");

  std::string line;
  while (std::getline(in, line)) {
    const int64_t number = ++report.lines;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    std::string_view text = line;
    if (number == 1 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte order mark
    if (is_blank(text)) continue;

    std::string reason;
    json row;
    try {
      row = json::parse(text);
    } catch (const json::parse_error& e) {
      reason = describe_parse_error(e);
    } catch (const json::exception& e) {  // out_of_range: a number too large for any type
      reason = std::string("not valid JSON: ") + e.what();
    }
    if (reason.empty() && !row.is_object()) reason = "expected a JSON object, got " + std::string(row.type_name());
    if (reason.empty()) reason = accept(row, number);
    if (reason.empty()) {
      ++report.records;
      continue;
    }
    std::string message = path + ":" + std::to_string(number) + ": " + reason;
    if (!skip_malformed) throw Error(message);
    ++report.skipped;
    if (report.first_errors.size() < DatasetLoadReport::kMaxErrors) report.first_errors.push_back(std::move(message));
  }
  if (in.bad())
    throw Error(path + ":" + std::to_string(report.lines + 1) + ": read error (" + std::strerror(errno) + ")");

  if (report.records == 0) {
    std::string message = path + ": no records";
    if (report.skipped == 0) {
      message += report.lines == 0 ? " (the file is empty)" : " (only blank lines)";
    } else {
      message += " (" + std::to_string(report.skipped) +
                 " malformed line(s) skipped; first: " + report.first_errors.front() + ")";
    }
    throw Error(message);
  }
}

// A per-epoch generator seed: each of seed and epoch passes through splitmix64, so that
// neighbouring seeds or epochs give unrelated permutations.
uint64_t epoch_seed(uint64_t seed, int64_t epoch) {
  const uint64_t seed_hash = Rng(seed).next_u64();
  return Rng(seed_hash ^ (static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ull)).next_u64();
}

int64_t require_integer(const json& state, const char* key) {
  auto it = state.find(key);
  COHORT_REQUIRE(it != state.end(), "data cursor state: missing \"" << key << "\" in " << state.dump());
  COHORT_REQUIRE(it->is_number_integer(),
                 "data cursor state: \"" << key << "\" must be an integer, got " << it->dump());
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    COHORT_REQUIRE(value <= static_cast<uint64_t>(INT64_MAX),
                   "data cursor state: \"" << key << "\" out of range: " << value);
    return static_cast<int64_t>(value);
  }
  return it->get<int64_t>();
}

}  // namespace

PromptDataset PromptDataset::load_jsonl(const DatasetOptions& options, DatasetLoadReport* report) {
  const bool task = options.format != TaskFormat::jsonl;
  const std::string prompt_field = options.format == TaskFormat::gsm8k  ? "question"
                                   : options.format == TaskFormat::math ? "problem"
                                                                        : options.prompt_field;
  const std::string solution_field = options.format == TaskFormat::gsm8k ? "answer" : "solution";
  COHORT_REQUIRE(!prompt_field.empty(), "dataset " << options.path << ": prompt_field is empty");
  PromptDataset dataset;
  dataset.path_ = options.path;
  DatasetLoadReport local;
  DatasetLoadReport& seen = report ? *report : local;
  read_jsonl_objects(options.path, options.skip_malformed, seen, [&](json& row, int64_t line) {
    std::string reason = check_string_field(row, prompt_field);
    if (reason.empty() && task) reason = check_string_field(row, solution_field);
    if (!reason.empty()) return reason;
    if (task) {
      const std::string& solution = row[solution_field].get_ref<const std::string&>();
      std::optional<std::string> reference =
          options.format == TaskFormat::gsm8k ? reward::gsm8k_reference(solution) : reward::math_reference(solution);
      row["reference"] = reference ? json(*reference) : json(nullptr);
      if (!row.contains("prompt")) row["prompt"] = row[prompt_field];  // so "{prompt}" templates fit every format
      if (!reference) ++seen.no_reference;
    }
    PromptRecord record;
    record.prompt = row[prompt_field].get<std::string>();
    record.row = std::move(row);
    record.line = line;
    dataset.records_.push_back(std::move(record));
    return std::string();
  });
  return dataset;
}

const PromptRecord& PromptDataset::operator[](int64_t i) const {
  COHORT_REQUIRE(i >= 0 && i < size(), "dataset " << path_ << ": index " << i << " outside [0, " << size() << ")");
  return records_[static_cast<size_t>(i)];
}

std::vector<SftRecord> load_sft_jsonl(const std::string& path, const std::string& prompt_field,
                                      const std::string& response_field, bool skip_malformed,
                                      DatasetLoadReport* report) {
  COHORT_REQUIRE(!prompt_field.empty() && !response_field.empty(),
                 "SFT dataset " << path << ": prompt and response field names must not be empty");
  std::vector<SftRecord> records;
  DatasetLoadReport local;
  read_jsonl_objects(path, skip_malformed, report ? *report : local, [&](json& row, int64_t line) {
    for (const std::string* field : {&prompt_field, &response_field}) {
      std::string reason = check_string_field(row, *field);
      if (!reason.empty()) return reason;
    }
    records.push_back(SftRecord{row[prompt_field].get<std::string>(), row[response_field].get<std::string>(), line});
    return std::string();
  });
  return records;
}

DataCursor::DataCursor(int64_t dataset_size, uint64_t seed, bool shuffle)
    : size_(dataset_size), seed_(seed), shuffle_(shuffle) {
  COHORT_REQUIRE(dataset_size > 0, "data cursor: the dataset must not be empty (size " << dataset_size << ")");
  enter_epoch(0);
}

std::vector<int64_t> DataCursor::epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle) {
  COHORT_REQUIRE(size >= 0 && epoch >= 0, "data cursor: bad size " << size << " or epoch " << epoch);
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle) return order;
  Rng rng(epoch_seed(seed, epoch));
  for (int64_t i = size - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

void DataCursor::enter_epoch(int64_t epoch) {
  epoch_ = epoch;
  offset_ = 0;
  order_ = epoch_order(size_, seed_, epoch, shuffle_);
}

std::vector<int64_t> DataCursor::next(int64_t n) {
  COHORT_REQUIRE(n >= 0, "data cursor: cannot draw " << n << " indices");
  std::vector<int64_t> drawn;
  drawn.reserve(static_cast<size_t>(n));
  while (static_cast<int64_t>(drawn.size()) < n) {
    const int64_t take = std::min(n - static_cast<int64_t>(drawn.size()), size_ - offset_);
    drawn.insert(drawn.end(), order_.begin() + offset_, order_.begin() + offset_ + take);
    offset_ += take;
    if (offset_ == size_) enter_epoch(epoch_ + 1);
  }
  return drawn;
}

nlohmann::json DataCursor::state() const {
  return json{{"epoch", epoch_}, {"offset", offset_}, {"seed", seed_}, {"size", size_}, {"shuffle", shuffle_}};
}

void DataCursor::restore(const nlohmann::json& state) {
  COHORT_REQUIRE(state.is_object(), "data cursor state must be a JSON object, got " << state.dump());
  auto seed_field = state.find("seed");
  COHORT_REQUIRE(seed_field != state.end() && seed_field->is_number_integer() &&
                     (seed_field->is_number_unsigned() || seed_field->get<int64_t>() >= 0),
                 "data cursor state: \"seed\" must be a non-negative integer, got "
                     << (seed_field == state.end() ? std::string("nothing") : seed_field->dump()));
  const uint64_t seed = seed_field->is_number_unsigned() ? seed_field->get<uint64_t>()
                                                         : static_cast<uint64_t>(seed_field->get<int64_t>());
  COHORT_REQUIRE(seed == seed_, "data cursor state: seed " << seed << " differs from this run's seed " << seed_
                                                           << " (the prompt order would change)");
  const int64_t size = require_integer(state, "size");
  COHORT_REQUIRE(size == size_, "data cursor state: dataset size " << size << " differs from this run's " << size_
                                                                   << " (was the dataset changed?)");
  if (auto shuffle = state.find("shuffle"); shuffle != state.end()) {
    COHORT_REQUIRE(shuffle->is_boolean() && shuffle->get<bool>() == shuffle_,
                   "data cursor state: shuffle " << shuffle->dump() << " differs from this run's "
                                                 << (shuffle_ ? "true" : "false"));
  }
  const int64_t epoch = require_integer(state, "epoch");
  const int64_t offset = require_integer(state, "offset");
  COHORT_REQUIRE(epoch >= 0, "data cursor state: epoch " << epoch << " is negative");
  COHORT_REQUIRE(offset >= 0 && offset < size_,
                 "data cursor state: offset " << offset << " outside [0, " << size_ << ")");
  enter_epoch(epoch);
  offset_ = offset;
}

}  // namespace cohort::rollout
