// Tests for the JSONL prompt and SFT readers (malformed lines skipped or fatal, reports,
// file:line messages) and the data cursor (seeded per-epoch permutations that a resumed
// run continues exactly).
#include "rollout/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <unistd.h>

#include "kernels/error.h"

namespace cohort::rollout {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Expects fn to throw cohort::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected cohort::Error containing \"" << *parts.begin() << "\"";
  } catch (const Error& e) {
    for (const std::string& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// A fresh directory per test, removed afterwards.
class DatasetFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("cohort_dataset_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `content` byte for byte and returns the path.
  std::string write(const std::string& name, const std::string& content) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  fs::path dir_;
};

using Dataset = DatasetFiles;

TEST_F(Dataset, LoadsEveryGoodLineKeepingTheRowAndLineNumber) {
  const std::string path = write("good.jsonl",
                                 "{\"prompt\": \"1+1=\", \"answer\": \"2\"}\n"
                                 "{\"prompt\": \"caf\\u00e9 \\\"quoted\\\"\", \"answer\": 7, \"tags\": [1, 2]}\n"
                                 "{\"answer\": \"3\", \"prompt\": \"2+1=\"}");  // no final newline
  DatasetLoadReport report;
  PromptDataset dataset = PromptDataset::load_jsonl({.path = path}, &report);
  ASSERT_EQ(dataset.size(), 3);
  EXPECT_EQ(dataset[0].prompt, "1+1=");
  EXPECT_EQ(dataset[0].row["answer"], "2");
  EXPECT_EQ(dataset[0].line, 1);
  EXPECT_EQ(dataset[1].prompt, "caf\xC3\xA9 \"quoted\"");
  EXPECT_EQ(dataset[1].row["tags"], json::array({1, 2}));
  EXPECT_EQ(dataset[2].prompt, "2+1=");
  EXPECT_EQ(dataset[2].line, 3);
  EXPECT_EQ(dataset.path(), path);
  EXPECT_EQ(report.lines, 3);
  EXPECT_EQ(report.records, 3);
  EXPECT_EQ(report.skipped, 0);
  EXPECT_TRUE(report.first_errors.empty());
}

TEST_F(Dataset, SkipsMalformedLinesAndReportsThemWithFileAndLine) {
  const std::string path = write("mixed.jsonl",
                                 "{\"prompt\": \"a\"}\r\n"            // 1 good, CRLF
                                 "\r\n"                               // 2 blank (CRLF)
                                 "{\"prompt\": \"b\"\n"               // 3 invalid JSON
                                 "   \t \n"                           // 4 blank
                                 "{\"question\": \"c\"}\n"            // 5 missing field
                                 "[\"prompt\", \"d\"]\n"              // 6 not an object
                                 "{\"prompt\": 5}\r\n"                // 7 not a string
                                 "{\"prompt\": \"e\", \"x\": 1}\r\n"  // 8 good, CRLF
                                 "\n");                               // 9 blank
  DatasetLoadReport report;
  PromptDataset dataset = PromptDataset::load_jsonl({.path = path}, &report);
  ASSERT_EQ(dataset.size(), 2);
  EXPECT_EQ(dataset[0].prompt, "a");  // no '\r' left from the CRLF ending
  EXPECT_EQ(dataset[0].line, 1);
  EXPECT_EQ(dataset[1].prompt, "e");
  EXPECT_EQ(dataset[1].line, 8);
  EXPECT_EQ(dataset[1].row["x"], 1);

  EXPECT_EQ(report.lines, 9);
  EXPECT_EQ(report.records, 2);
  EXPECT_EQ(report.skipped, 4);
  ASSERT_EQ(report.first_errors.size(), 4u);
  EXPECT_EQ(report.first_errors[0].rfind(path + ":3: invalid JSON", 0), 0u) << report.first_errors[0];
  EXPECT_EQ(report.first_errors[1], path + ":5: missing field \"prompt\"");
  EXPECT_EQ(report.first_errors[2], path + ":6: expected a JSON object, got array");
  EXPECT_EQ(report.first_errors[3], path + ":7: field \"prompt\" must be a string, got number");
}

TEST_F(Dataset, ReportKeepsOnlyTheFirstFiveErrors) {
  std::string content;
  for (int i = 0; i < 8; ++i) content += "not json\n";
  content += "{\"prompt\": \"ok\"}\n";
  DatasetLoadReport report;
  PromptDataset dataset = PromptDataset::load_jsonl({.path = write("bad.jsonl", content)}, &report);
  EXPECT_EQ(dataset.size(), 1);
  EXPECT_EQ(report.skipped, 8);
  ASSERT_EQ(report.first_errors.size(), DatasetLoadReport::kMaxErrors);
  EXPECT_NE(report.first_errors[4].find(":5: invalid JSON"), std::string::npos) << report.first_errors[4];
}

TEST_F(Dataset, FirstMalformedLineIsFatalWhenNotSkipping) {
  const std::string path = write("fatal.jsonl",
                                 "{\"prompt\": \"a\"}\n"
                                 "\n"
                                 "{\"prompt\": null}\n"
                                 "garbage\n");
  expect_error([&] { PromptDataset::load_jsonl({.path = path, .skip_malformed = false}); },
               {path + ":3: field \"prompt\" must be a string, got null"});
  const std::string broken = write("broken.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\",}\n");
  expect_error([&] { PromptDataset::load_jsonl({.path = broken, .skip_malformed = false}); },
               {broken + ":2: invalid JSON", "column"});
  // The same files load when skipping.
  EXPECT_EQ(PromptDataset::load_jsonl({.path = path}).size(), 1);
}

TEST_F(Dataset, ReadsACustomPromptField) {
  const std::string path = write("q.jsonl", "{\"question\": \"why?\", \"prompt\": 3}\n{\"prompt\": \"no question\"}\n");
  DatasetLoadReport report;
  PromptDataset dataset = PromptDataset::load_jsonl({.path = path, .prompt_field = "question"}, &report);
  ASSERT_EQ(dataset.size(), 1);
  EXPECT_EQ(dataset[0].prompt, "why?");
  EXPECT_EQ(report.skipped, 1);
  EXPECT_EQ(report.first_errors[0], path + ":2: missing field \"question\"");
}

TEST_F(Dataset, IgnoresAByteOrderMarkOnTheFirstLine) {
  PromptDataset dataset = PromptDataset::load_jsonl({.path = write("bom.jsonl", "\xEF\xBB\xBF{\"prompt\": \"x\"}\n")});
  ASSERT_EQ(dataset.size(), 1);
  EXPECT_EQ(dataset[0].prompt, "x");
}

TEST_F(Dataset, FileThatCannotBeReadIsAnErrorNamingIt) {
  const std::string missing = (dir_ / "missing.jsonl").string();
  expect_error([&] { PromptDataset::load_jsonl({.path = missing}); }, {missing, "cannot open"});
  expect_error([&] { PromptDataset::load_jsonl({.path = dir_.string()}); }, {dir_.string(), "directory"});
}

TEST_F(Dataset, NoRemainingRecordIsAnError) {
  const std::string empty = write("empty.jsonl", "");
  expect_error([&] { PromptDataset::load_jsonl({.path = empty}); }, {empty + ": no records", "empty"});
  const std::string blank = write("blank.jsonl", "\n  \n\r\n");
  expect_error([&] { PromptDataset::load_jsonl({.path = blank}); }, {blank + ": no records", "blank"});
  const std::string all_bad = write("all_bad.jsonl", "{}\n42\n");
  expect_error([&] { PromptDataset::load_jsonl({.path = all_bad}); },
               {all_bad + ": no records", "2 malformed", all_bad + ":1: missing field \"prompt\""});
}

TEST_F(Dataset, IndexOutsideTheDatasetThrows) {
  PromptDataset dataset = PromptDataset::load_jsonl({.path = write("one.jsonl", "{\"prompt\": \"x\"}\n")});
  EXPECT_EQ(dataset[0].prompt, "x");
  expect_error([&] { (void)dataset[1]; }, {"index 1 outside [0, 1)"});
  expect_error([&] { (void)dataset[-1]; }, {"index -1"});
}

TEST_F(Dataset, SftPairsNeedBothFieldsAsStrings) {
  const std::string path = write("sft.jsonl",
                                 "{\"prompt\": \"1+1=\", \"response\": \"2\"}\r\n"
                                 "{\"prompt\": \"2+2=\"}\n"
                                 "{\"prompt\": \"3+3=\", \"response\": 6}\n"
                                 "\n"
                                 "{\"response\": \"8\", \"prompt\": \"4+4=\"}\n");
  DatasetLoadReport report;
  std::vector<SftRecord> records = load_sft_jsonl(path, "prompt", "response", true, &report);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].prompt, "1+1=");
  EXPECT_EQ(records[0].response, "2");
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[1].prompt, "4+4=");
  EXPECT_EQ(records[1].response, "8");
  EXPECT_EQ(records[1].line, 5);
  EXPECT_EQ(report.lines, 5);
  EXPECT_EQ(report.records, 2);
  EXPECT_EQ(report.skipped, 2);
  EXPECT_EQ(report.first_errors[0], path + ":2: missing field \"response\"");
  EXPECT_EQ(report.first_errors[1], path + ":3: field \"response\" must be a string, got number");

  expect_error([&] { load_sft_jsonl(path, "prompt", "response", false); }, {path + ":2: missing field \"response\""});
  std::vector<SftRecord> renamed = load_sft_jsonl(write("qa.jsonl", "{\"q\": \"a?\", \"a\": \"b\"}\n"), "q", "a");
  ASSERT_EQ(renamed.size(), 1u);
  EXPECT_EQ(renamed[0].response, "b");
  expect_error([&] { load_sft_jsonl(write("none.jsonl", "{\"prompt\": \"x\"}\n")); }, {"no records"});
}

// Every index in [0, size) exactly once.
void expect_permutation(const std::vector<int64_t>& order, int64_t size) {
  ASSERT_EQ(static_cast<int64_t>(order.size()), size);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < size; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
}

TEST(Cursor, SameSeedGivesTheSameOrder) {
  DataCursor a(100, 42), b(100, 42), c(100, 43);
  std::vector<int64_t> first = a.next(250);
  EXPECT_EQ(first, b.next(250));
  EXPECT_NE(first, c.next(250));
}

TEST(Cursor, OrderIsPinnedAcrossBuilds) {
  // Checkpoints store only (seed, epoch, offset): changing the shuffle or the seed mix
  // would make every resumed run draw different prompts. Update these only on purpose.
  EXPECT_EQ(DataCursor::epoch_order(8, 42, 0), (std::vector<int64_t>{4, 3, 2, 1, 0, 5, 7, 6}));
  EXPECT_EQ(DataCursor::epoch_order(8, 42, 1), (std::vector<int64_t>{5, 1, 3, 6, 0, 7, 2, 4}));
}

TEST(Cursor, EveryIndexExactlyOncePerEpochAndEpochsDiffer) {
  const int64_t size = 37;
  DataCursor cursor(size, 7);
  std::set<std::vector<int64_t>> seen;
  for (int64_t epoch = 0; epoch < 6; ++epoch) {
    EXPECT_EQ(cursor.epoch(), epoch);
    EXPECT_EQ(cursor.offset(), 0);
    std::vector<int64_t> order = cursor.next(size);
    expect_permutation(order, size);
    EXPECT_EQ(order, DataCursor::epoch_order(size, 7, epoch));
    seen.insert(order);
  }
  EXPECT_EQ(seen.size(), 6u) << "some epochs repeated a permutation";
  // The shuffle actually moves things.
  std::vector<int64_t> identity = DataCursor::epoch_order(size, 7, 0, /*shuffle=*/false);
  EXPECT_EQ(seen.count(identity), 0u);
}

TEST(Cursor, FirstDrawOfAnEpochIsRoughlyUniform) {
  // 4000 epochs of a 4-record dataset: each record should lead about 1000 times
  // (binomial sd ~27; 150 is over 5 sd, so a failure means a biased shuffle or seed mix).
  std::vector<int> leads(4, 0);
  for (int64_t epoch = 0; epoch < 4000; ++epoch) ++leads[static_cast<size_t>(DataCursor::epoch_order(4, 3, epoch)[0])];
  for (int count : leads) EXPECT_NEAR(count, 1000, 150);
}

TEST(Cursor, NextCrossesEpochBoundaries) {
  const int64_t size = 5;
  const std::vector<int64_t> e0 = DataCursor::epoch_order(size, 11, 0);
  const std::vector<int64_t> e1 = DataCursor::epoch_order(size, 11, 1);
  const std::vector<int64_t> e2 = DataCursor::epoch_order(size, 11, 2);
  const std::vector<int64_t> e3 = DataCursor::epoch_order(size, 11, 3);
  DataCursor cursor(size, 11);
  EXPECT_EQ(cursor.next(3), (std::vector<int64_t>{e0[0], e0[1], e0[2]}));
  EXPECT_EQ(cursor.epoch(), 0);
  EXPECT_EQ(cursor.offset(), 3);
  EXPECT_EQ(cursor.next(4), (std::vector<int64_t>{e0[3], e0[4], e1[0], e1[1]}));
  EXPECT_EQ(cursor.epoch(), 1);
  EXPECT_EQ(cursor.offset(), 2);
  // Finishing an epoch exactly moves to the next one.
  EXPECT_EQ(cursor.next(3), (std::vector<int64_t>{e1[2], e1[3], e1[4]}));
  EXPECT_EQ(cursor.epoch(), 2);
  EXPECT_EQ(cursor.offset(), 0);
  // More than a whole epoch at once.
  std::vector<int64_t> want = e2;
  want.insert(want.end(), e3.begin(), e3.begin() + 2);
  EXPECT_EQ(cursor.next(7), want);
  EXPECT_EQ(cursor.epoch(), 3);
  EXPECT_EQ(cursor.offset(), 2);
  EXPECT_TRUE(cursor.next(0).empty());
  EXPECT_EQ(cursor.offset(), 2);
}

TEST(Cursor, WithoutShuffleDrawsInFileOrder) {
  DataCursor cursor(4, 99, /*shuffle=*/false);
  EXPECT_EQ(cursor.next(6), (std::vector<int64_t>{0, 1, 2, 3, 0, 1}));
}

TEST(Cursor, SingleRecordDatasetWorks) {
  DataCursor cursor(1, 3);
  EXPECT_EQ(cursor.next(3), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(cursor.epoch(), 3);
}

TEST(Cursor, RestoredCursorContinuesIdentically) {
  const uint64_t seed = 0xFFFFFFFFFFFFFFF1ull;  // above INT64_MAX: must survive JSON as unsigned
  DataCursor original(23, seed);
  original.next(17);
  original.next(40);
  const json state = original.state();
  EXPECT_EQ(state["epoch"], original.epoch());
  EXPECT_EQ(state["offset"], original.offset());
  EXPECT_EQ(state["seed"].get<uint64_t>(), seed);
  EXPECT_EQ(state["size"], 23);

  DataCursor resumed(23, seed);
  resumed.next(5);                             // a resumed run's cursor position before restore must not matter
  resumed.restore(json::parse(state.dump()));  // as if read back from a checkpoint
  EXPECT_EQ(resumed.epoch(), original.epoch());
  EXPECT_EQ(resumed.offset(), original.offset());
  for (int64_t n : {1, 7, 23, 50}) EXPECT_EQ(resumed.next(n), original.next(n));
  // The four fields the brief names are enough (a state written without "shuffle").
  json minimal = original.state();
  minimal.erase("shuffle");
  DataCursor from_minimal(23, seed);
  from_minimal.restore(minimal);
  EXPECT_EQ(from_minimal.next(30), original.next(30));
}

TEST(Cursor, RestoreRejectsAStateFromAnotherRun) {
  DataCursor source(10, 5);
  source.next(13);
  const json good = source.state();
  DataCursor cursor(10, 5);
  cursor.next(4);

  json wrong_seed = good;
  wrong_seed["seed"] = 6;
  expect_error([&] { cursor.restore(wrong_seed); }, {"seed 6", "seed 5"});
  json wrong_size = good;
  wrong_size["size"] = 11;
  expect_error([&] { cursor.restore(wrong_size); }, {"size 11", "10"});
  json wrong_shuffle = good;
  wrong_shuffle["shuffle"] = false;
  expect_error([&] { cursor.restore(wrong_shuffle); }, {"shuffle"});
  json offset_too_big = good;
  offset_too_big["offset"] = 10;
  expect_error([&] { cursor.restore(offset_too_big); }, {"offset 10 outside [0, 10)"});
  json negative_offset = good;
  negative_offset["offset"] = -1;
  expect_error([&] { cursor.restore(negative_offset); }, {"offset -1"});
  json negative_epoch = good;
  negative_epoch["epoch"] = -2;
  expect_error([&] { cursor.restore(negative_epoch); }, {"epoch -2"});
  json missing_epoch = good;
  missing_epoch.erase("epoch");
  expect_error([&] { cursor.restore(missing_epoch); }, {"missing \"epoch\""});
  json fractional = good;
  fractional["offset"] = 1.5;
  expect_error([&] { cursor.restore(fractional); }, {"\"offset\" must be an integer"});
  json negative_seed = good;
  negative_seed["seed"] = -5;
  expect_error([&] { cursor.restore(negative_seed); }, {"\"seed\" must be a non-negative integer"});
  expect_error([&] { cursor.restore(json::array()); }, {"must be a JSON object"});

  // A failed restore leaves the cursor where it was.
  EXPECT_EQ(cursor.epoch(), 0);
  EXPECT_EQ(cursor.offset(), 4);
  cursor.restore(good);
  EXPECT_EQ(cursor.epoch(), 1);
  EXPECT_EQ(cursor.offset(), 3);
}

TEST(Cursor, BadArgumentsAreErrors) {
  expect_error([] { DataCursor(0, 1); }, {"must not be empty"});
  expect_error([] { DataCursor(-3, 1); }, {"must not be empty"});
  DataCursor cursor(3, 1);
  expect_error([&] { cursor.next(-1); }, {"cannot draw -1"});
}

TEST_F(Dataset, ANumberTooLargeForAnyTypeIsAMalformedLine) {
  // nlohmann::json throws out_of_range, not parse_error, for it: found by fuzz_safetensors in the same parser.
  const std::string path = write("big.jsonl", "{\"prompt\": \"a\", \"n\": 2222222222201e423}\n{\"prompt\": \"b\"}\n");
  DatasetLoadReport report;
  PromptDataset d = PromptDataset::load_jsonl({.path = path}, &report);
  ASSERT_EQ(d.size(), 1);
  EXPECT_EQ(d[0].prompt, "b");
  EXPECT_EQ(report.skipped, 1);
  EXPECT_NE(report.first_errors[0].find(path + ":1: not valid JSON"), std::string::npos) << report.first_errors[0];
}

TEST_F(Dataset, Gsm8kRowsGiveTheQuestionAndTheFinalAnswer) {
  const std::string path =
      write("gsm8k.jsonl",
            "{\"question\": \"Ann has 3 apples...\", \"answer\": \"3 + 4 = <<3+4=7>>7\\n#### 7\"}\n"
            "{\"question\": \"Big?\", \"answer\": \"... so 1,234 in all.\\n#### 1,234\"}\n"
            "{\"question\": \"No answer line\", \"answer\": \"just prose\"}\n"
            "{\"question\": \"no answer field\"}\n");
  DatasetLoadReport report;
  PromptDataset d = PromptDataset::load_jsonl({.path = path, .format = TaskFormat::gsm8k}, &report);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(d[0].prompt, "Ann has 3 apples...");
  EXPECT_EQ(d[0].row["prompt"], "Ann has 3 apples...") << "so {prompt} templates fit every format";
  EXPECT_EQ(d[0].row["reference"], "7");
  EXPECT_TRUE(d[1].row["reference"].is_string());
  EXPECT_TRUE(d[2].row["reference"].is_null()) << "an answer that cannot be taken is kept as null, to be unscored";
  EXPECT_EQ(report.no_reference, 1);
  EXPECT_EQ(report.skipped, 1);
  EXPECT_EQ(report.first_errors[0], path + ":4: missing field \"answer\"");
}

TEST_F(Dataset, MathRowsGiveTheProblemAndTheLastBoxedAnswer) {
  const std::string path = write(
      "math.jsonl",
      "{\"problem\": \"Half of one?\", \"solution\": \"First $\\\\boxed{2}$, no: $\\\\boxed{\\\\frac{1}{2}}$.\"}\n"
      "{\"problem\": \"Unboxed\", \"solution\": \"The answer is 5.\"}\n");
  DatasetLoadReport report;
  PromptDataset d = PromptDataset::load_jsonl({.path = path, .format = TaskFormat::math}, &report);
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d[0].prompt, "Half of one?");
  EXPECT_EQ(d[0].row["reference"], "\\frac{1}{2}");
  EXPECT_TRUE(d[1].row["reference"].is_null());
  EXPECT_EQ(report.no_reference, 1);
}

}  // namespace
}  // namespace cohort::rollout
