// Prompt datasets for rollout: JSONL files read into records that keep the whole row
// (a reward function reads its reference answer from it), and the cursor that decides
// which prompts a step draws, so that a resumed run draws exactly what it would have.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cohort::rollout {

// How a row is read (data.format):
//   jsonl   any object with a string prompt_field
//   gsm8k   GSM8K's rows: `question` (the prompt) and `answer` (worked solution ending "#### N")
//   math    MATH's rows: `problem` (the prompt) and `solution` (containing \boxed{ANSWER})
// gsm8k and math rows get a `prompt` field (the question or problem, unless the row has one) and a
// `reference` field, the final answer taken from the solution
// (reward::gsm8k_reference, reward::math_reference), for math_verify's answer_field; a row
// whose answer cannot be taken keeps `reference: null` (math_verify gives it no score,
// counted) and is counted in DatasetLoadReport::no_reference.
enum class TaskFormat { jsonl, gsm8k, math };

struct DatasetOptions {
  std::string path;                     // JSONL, one object per line; blank lines ignored
  std::string prompt_field = "prompt";  // required string field (jsonl; gsm8k and math name their own)
  bool skip_malformed = true;           // false: the first malformed line is fatal
  TaskFormat format = TaskFormat::jsonl;
};

struct PromptRecord {
  std::string prompt;
  nlohmann::json row;  // the whole object, metadata for rewards (reference answer, ...)
  int64_t line = 0;    // 1-based line number in the file
};

// What a load saw. lines counts every line of the file, blank ones included;
// records + skipped is the number of non-blank lines read.
struct DatasetLoadReport {
  static constexpr size_t kMaxErrors = 5;
  int64_t lines = 0, records = 0, skipped = 0;
  int64_t no_reference = 0;               // gsm8k / math rows whose final answer could not be taken
  std::vector<std::string> first_errors;  // up to kMaxErrors messages "FILE:LINE: reason"
};

class PromptDataset {
 public:
  // A line is malformed when it is not valid JSON, not an object, or lacks a string
  // prompt field. Throws cohort::Error "FILE:LINE: reason" for the first malformed line
  // when !skip_malformed, and an error naming the file when it cannot be opened or when
  // no record remains.
  static PromptDataset load_jsonl(const DatasetOptions& options, DatasetLoadReport* report = nullptr);

  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  // Throws cohort::Error when i is outside [0, size()).
  const PromptRecord& operator[](int64_t i) const;
  const std::vector<PromptRecord>& records() const { return records_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<PromptRecord> records_;
};

// Order in which prompts are drawn: a permutation per epoch from (seed, epoch), so that
// the position (epoch, offset) is all a resumed run needs to continue exactly. Between
// calls offset < dataset_size always holds: finishing an epoch moves to the next one.
class DataCursor {
 public:
  // dataset_size must be positive. shuffle=false draws 0, 1, ..., size-1 every epoch.
  DataCursor(int64_t dataset_size, uint64_t seed, bool shuffle = true);

  // The next n indices (n >= 0), wrapping into the next epoch (reshuffled) as needed;
  // n may exceed the dataset size.
  std::vector<int64_t> next(int64_t n);
  int64_t epoch() const { return epoch_; }
  int64_t offset() const { return offset_; }
  int64_t size() const { return size_; }
  uint64_t seed() const { return seed_; }

  // {"epoch":..,"offset":..,"seed":..,"size":..,"shuffle":..}
  nlohmann::json state() const;
  // Throws cohort::Error when seed, size or shuffle disagree with this cursor's (a resumed
  // run would silently draw a different order), or when epoch/offset are missing or out
  // of range; the cursor is unchanged then.
  void restore(const nlohmann::json& state);

  // The permutation of epoch `epoch` for (size, seed, shuffle): a Fisher-Yates shuffle
  // driven by cohort::Rng seeded from a mix of seed and epoch.
  static std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle = true);

 private:
  void enter_epoch(int64_t epoch);

  int64_t size_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = 0;
  int64_t offset_ = 0;
  std::vector<int64_t> order_;  // the permutation of epoch_
};

// A reader for SFT data: prompt/response pairs, with the same rules for malformed lines
// and the same errors as PromptDataset::load_jsonl (both fields must be strings).
struct SftRecord {
  std::string prompt, response;
  int64_t line = 0;
};
std::vector<SftRecord> load_sft_jsonl(const std::string& path, const std::string& prompt_field = "prompt",
                                      const std::string& response_field = "response", bool skip_malformed = true,
                                      DatasetLoadReport* report = nullptr);

}  // namespace cohort::rollout
