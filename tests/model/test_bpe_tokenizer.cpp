// BpeTokenizer on small tokenizer.json files written here: merges in both formats, the merge order
// against a plain reference, added and special tokens, ByteLevel with and without a prefix space,
// Split behaviours, Sequence, NFC, configs, and malformed files. The last test compares with
// Hugging Face `tokenizers` on files tests/hf/check_tokenizers.sh prepares (skipped otherwise).

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "kernels/error.h"
#include "model/bpe_text.h"
#include "model/bpe_tokenizer.h"
#include "model/byte_tokenizer.h"

namespace cohort {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The byte-level spelling of raw bytes (each byte as its GPT-2 character).
std::string spell(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) bpe::append_utf8(bpe::byte_to_char()[static_cast<unsigned char>(c)], out);
  return out;
}

// A byte-level tokenizer.json: ids 0..255 are the bytes, then one token per merge, in order.
// `merges` are raw byte strings; pair_format writes ["a", "b"], otherwise "a b".
json make_spec(const std::vector<std::pair<std::string, std::string>>& merges, bool pair_format = true) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[spell(std::string(1, static_cast<char>(b)))] = b;
  json merge_list = json::array();
  for (const auto& [left, right] : merges) {
    if (!vocab.contains(spell(left + right))) vocab[spell(left + right)] = static_cast<int>(vocab.size());
    if (pair_format) {
      merge_list.push_back({spell(left), spell(right)});
    } else {
      merge_list.push_back(spell(left) + " " + spell(right));
    }
  }
  const json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level},
              {"post_processor", nullptr},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merge_list}}}};
}

json added_token(int id, const std::string& content, bool special, bool normalized = false) {
  return {{"id", id},        {"content", content},       {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", normalized}, {"special", special}};
}

BpeTokenizer load(const json& spec) {
  return BpeTokenizer::from_json(spec, "test tokenizer.json");
}

// Each id decoded alone: the raw bytes of every token.
std::vector<std::string> token_bytes(const BpeTokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (const int32_t id : ids) out.push_back(tok.decode(std::vector<int32_t>{id}, false));
  return out;
}

// The error message of what `f` throws, or "" when it does not throw cohort::Error.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A plain BPE: merge the leftmost pair of lowest rank until none is left.
std::vector<std::string> reference_bpe(const std::string& word,
                                       const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> symbols;
  for (const char c : word) symbols.emplace_back(1, c);
  while (symbols.size() > 1) {
    int best_rank = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = ranks.find({symbols[i], symbols[i + 1]});
      if (it != ranks.end() && (best_rank < 0 || it->second < best_rank)) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank < 0) break;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return symbols;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("cohort_bpe_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
    return path_ / name;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(BpeText, ByteAlphabetIsGpt2s) {
  EXPECT_EQ(bpe::byte_to_char()[' '], U'\u0120');   // Ġ
  EXPECT_EQ(bpe::byte_to_char()['\n'], U'\u010A');  // Ċ
  EXPECT_EQ(bpe::byte_to_char()[0], U'\u0100');
  EXPECT_EQ(bpe::byte_to_char()['a'], U'a');
  EXPECT_EQ(bpe::byte_to_char()[0xAD], U'\u0143');
  for (int b = 0; b < 256; ++b) EXPECT_EQ(bpe::char_to_byte(bpe::byte_to_char()[b]), b);
  EXPECT_EQ(bpe::char_to_byte(U' '), -1);
  EXPECT_EQ(bpe::char_to_byte(U'\u4e2d'), -1);
}

TEST(BpeText, RepairsInvalidUtf8AsPythonDoes) {
  // Expected strings from Python's bytes.decode('utf-8', errors='replace').
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(bpe::repair_utf8("a\x80z"), "a" + r + "z");
  EXPECT_EQ(bpe::repair_utf8("\xC0\x80"), r + r);                  // overlong: two bytes, two replacements
  EXPECT_EQ(bpe::repair_utf8("\xE2\x82z"), r + "z");               // truncated three-byte sequence: one
  EXPECT_EQ(bpe::repair_utf8("\xED\xA0\x80"), r + r + r);          // surrogate
  EXPECT_EQ(bpe::repair_utf8("\xF0\x9F\x98"), r);                  // truncated emoji
  EXPECT_EQ(bpe::repair_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // past U+10FFFF
  EXPECT_EQ(bpe::repair_utf8("\xFF\xC3\xA9"), r + "\xC3\xA9");
  EXPECT_TRUE(bpe::is_valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80 plain ascii of some length"));
  EXPECT_FALSE(bpe::is_valid_utf8("plain ascii of some length\xC3"));
}

TEST(BpeTokenizer, BytesOnlyRoundTripAndInvalidUtf8BecomesReplacementCharacter) {
  const BpeTokenizer tok = load(make_spec({}));
  EXPECT_EQ(tok.vocab_size(), 256);
  EXPECT_EQ(tok.encode("hi!"), (std::vector<int32_t>{'h', 'i', '!'}));
  const std::string text("caf\xC3\xA9\t\n\x00 \xF0\x9F\x98\x80", 13);  // with a NUL
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_EQ(tok.encode("a\xFFz"), (std::vector<int32_t>{'a', 0xEF, 0xBF, 0xBD, 'z'}));
}

TEST(BpeTokenizer, MergesInBothFormatsGiveTheSameIds) {
  const std::vector<std::pair<std::string, std::string>> merges = {{"h", "e"},    {"l", "l"}, {"he", "ll"},
                                                                   {"hell", "o"}, {" ", "w"}, {" w", "o"}};
  const BpeTokenizer pairs = load(make_spec(merges, true));
  const BpeTokenizer strings = load(make_spec(merges, false));
  const std::vector<int32_t> ids = pairs.encode("hello world");
  EXPECT_EQ(ids, strings.encode("hello world"));
  EXPECT_EQ(token_bytes(pairs, ids), (std::vector<std::string>{"hello", " wo", "r", "l", "d"}));
  EXPECT_EQ(pairs.decode(ids), "hello world");
}

TEST(BpeTokenizer, LowestRankFirstAndLeftmostOnTies) {
  // "b c" outranks "a b": abc -> a + bc, not ab + c.
  const BpeTokenizer tok = load(make_spec({{"b", "c"}, {"a", "b"}}));
  EXPECT_EQ(token_bytes(tok, tok.encode("abc")), (std::vector<std::string>{"a", "bc"}));
  const BpeTokenizer twins = load(make_spec({{"a", "a"}}));
  EXPECT_EQ(token_bytes(twins, twins.encode("aaa")), (std::vector<std::string>{"aa", "a"}));
}

TEST(BpeTokenizer, MergingEqualsAPlainReferenceOnShortAndLongWords) {
  // Random merges over {a, b, c}, then random words of 1..150 bytes (past 48 bytes cohort switches
  // from rescanning to a heap): both must equal the plain algorithm.
  std::mt19937 rng(5);
  std::vector<std::string> tokens = {"a", "b", "c"};
  std::vector<std::pair<std::string, std::string>> merges;
  std::map<std::pair<std::string, std::string>, int> ranks;
  while (merges.size() < 80) {
    const std::string& left = tokens[rng() % tokens.size()];
    const std::string& right = tokens[rng() % tokens.size()];
    if (left.size() + right.size() > 8 || ranks.count({left, right})) continue;
    if (std::find(tokens.begin(), tokens.end(), left + right) != tokens.end()) continue;
    ranks[{left, right}] = static_cast<int>(merges.size());
    merges.emplace_back(left, right);
    tokens.push_back(left + right);
  }
  json spec = make_spec(merges);
  spec["pre_tokenizer"]["use_regex"] = false;
  const BpeTokenizer tok = load(spec);
  for (int trial = 0; trial < 400; ++trial) {
    std::string word;
    const size_t length = 1 + rng() % 150;
    for (size_t i = 0; i < length; ++i) word += "abc"[rng() % 3];
    ASSERT_EQ(token_bytes(tok, tok.encode(word)), reference_bpe(word, ranks)) << word;
    ASSERT_EQ(tok.encode(word), tok.encode(word)) << "cached result differs: " << word;
  }
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  json spec = make_spec({{"a", "b"}});
  spec["model"]["vocab"][spell("abc")] = 300;  // in the vocabulary, but no merge builds it
  EXPECT_EQ(token_bytes(load(spec), load(spec).encode("abc")), (std::vector<std::string>{"ab", "c"}));
  spec["model"]["ignore_merges"] = true;
  const BpeTokenizer tok = load(spec);
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{300}));
  EXPECT_EQ(token_bytes(tok, tok.encode("abcc")), (std::vector<std::string>{"ab", "c", "c"}));
}

TEST(BpeTokenizer, GptTwoRegexSplitsAsHuggingFace) {
  // Expected pieces from tokenizers' ByteLevel(use_regex=True).pre_tokenize_str.
  const BpeTokenizer tok = load(make_spec({}));
  EXPECT_EQ(tok.pre_tokens("Hello world  \n"), (std::vector<std::string>{"Hello", " world", "  \n"}));
  EXPECT_EQ(tok.pre_tokens("I'm 12345 x!!  y"), (std::vector<std::string>{"I", "'m", " 12345", " x", "!!", " ", " y"}));
  EXPECT_EQ(tok.pre_tokens("a  b\t\tc \xC2\xA0"
                           "d"),
            (std::vector<std::string>{"a", " ", " b", "\t", "\t", "c", " ", "\xC2\xA0", "d"}));
}

TEST(BpeTokenizer, LettersNewerThanPcre2sTablesAreLetters) {
  // U+31350 (CJK Extension H, Unicode 15) and U+1C89 (Unicode 16): letters to tokenizers, and so to
  // cohort although PCRE2 10.42 reads Unicode 14. U+10D40 is a Garay digit (Unicode 16).
  const BpeTokenizer tok = load(make_spec({}));
  EXPECT_EQ(tok.pre_tokens("x\xF0\xB1\x8D\x90y \xE1\xB2\x89"),
            (std::vector<std::string>{"x\xF0\xB1\x8D\x90y", " \xE1\xB2\x89"}));
  EXPECT_EQ(tok.pre_tokens("a \xF0\x90\xB5\x80\xF0\x90\xB5\x81"),
            (std::vector<std::string>{"a", " \xF0\x90\xB5\x80\xF0\x90\xB5\x81"}));
}

TEST(BpeTokenizer, AddPrefixSpaceOnlyWhereThereIsNone) {
  json spec = make_spec({{" ", "h"}, {" h", "i"}});
  spec["pre_tokenizer"]["add_prefix_space"] = true;
  const BpeTokenizer tok = load(spec);
  EXPECT_EQ(tok.encode("hi"), tok.encode(" hi"));
  EXPECT_EQ(token_bytes(tok, tok.encode("hi")), (std::vector<std::string>{" hi"}));
  EXPECT_EQ(tok.decode(tok.encode("hi hi")), " hi hi");
}

TEST(BpeTokenizer, SplitBehavioursAsHuggingFace) {
  // Expected pieces from tokenizers' Split(Regex(r"\w+|[^\w\s]+"), behavior, invert=True).
  const std::map<std::string, std::vector<std::string>> expected = {
      {"Removed", {"How", "are", "you", "doing", "?"}},
      {"Isolated", {"How", " ", "are", " ", "you", " ", "doing", "?"}},
      {"MergedWithPrevious", {"How ", "are ", "you ", "doing", "?"}},
      {"MergedWithNext", {"How", " are", " you", " doing", "?"}},
      {"Contiguous", {"How", " ", "are", " ", "you", " ", "doing?"}},
  };
  for (const auto& [behavior, pieces] : expected) {
    json spec = make_spec({});
    spec["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+|[^\\w\\s]+"}}}, {"behavior", behavior}, {"invert", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    EXPECT_EQ(load(spec).pre_tokens("How are you doing?"), pieces) << behavior;
  }
  // An empty match still splits, and a String pattern is literal: tokenizers gives a, b, xx, c.
  json spec = make_spec({});
  spec["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "x*"}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "Split"}, {"pattern", {{"String", "."}}}, {"behavior", "Removed"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_EQ(load(spec).pre_tokens("abxxc"), (std::vector<std::string>{"a", "b", "xx", "c"}));
  EXPECT_EQ(load(spec).pre_tokens("a.b"), (std::vector<std::string>{"a", "b"}));
}

TEST(BpeTokenizer, SequenceSplitThenByteLevelWithRegexAndUnicodeSpaces) {
  // \s is Unicode's White_Space as in Oniguruma: U+0085 is space, U+180E is not.
  json spec = make_spec({});
  spec["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "Removed"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  EXPECT_EQ(load(spec).pre_tokens("ab\xC2\x85"
                                  "cd\xE1\xA0\x8E"
                                  "ef"),
            (std::vector<std::string>{"ab", "cd", "\xE1\xA0\x8E", "ef"}));
}

TEST(BpeTokenizer, SpecialTokensOnlyWhenAskedNonSpecialAlways) {
  json spec = make_spec({{"<", "|"}});
  spec["added_tokens"] = {added_token(300, "<|im_end|>", true), added_token(301, "<tool>", false),
                          added_token(302, "<|im_end|>x", true)};
  const BpeTokenizer tok = load(spec);
  EXPECT_EQ(tok.vocab_size(), 303);
  const std::string text = "a<|im_end|>b<tool>";
  const std::vector<int32_t> special = tok.encode(text, false, true);
  EXPECT_EQ(special, (std::vector<int32_t>{'a', 300, 'b', 301}));
  const std::vector<int32_t> plain = tok.encode(text, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 300), 0);
  EXPECT_EQ(plain.back(), 301);  // a non-special added token is matched either way
  EXPECT_EQ(tok.decode(plain), text);
  EXPECT_EQ(tok.decode(special, /*skip_special=*/false), text);
  EXPECT_EQ(tok.decode(special, /*skip_special=*/true), "ab<tool>");
  // Leftmost-longest: the longer token wins at the same start.
  EXPECT_EQ(tok.encode("<|im_end|>xy", false, true), (std::vector<int32_t>{302, 'y'}));
  EXPECT_EQ(tok.special_id("<|im_end|>"), 300);
  EXPECT_EQ(tok.special_id("<tool>"), 301);
  EXPECT_FALSE(tok.special_id("<nope>").has_value());
  EXPECT_TRUE(tok.is_special(300));
  EXPECT_FALSE(tok.is_special(301));
  EXPECT_EQ(tok.pre_tokens("x<|im_end|>", true), (std::vector<std::string>{"x", "<|im_end|>"}));
}

TEST(BpeTokenizer, AddedTokenStripAndSingleWordAsHuggingFace) {
  // Hugging Face's own cases (added_vocabulary.rs tests): single_word keeps "<mask>" out of words,
  // lstrip/rstrip take the Unicode spaces around it.
  json spec = make_spec({});
  json mask = added_token(300, "<mask>", false);
  mask["single_word"] = true;
  spec["added_tokens"] = {mask};
  EXPECT_EQ(load(spec).pre_tokens("<mask> My name <mask> A<mask> <mask>ony <mask>"),
            (std::vector<std::string>{"<mask>", " My", " name", " ", "<mask>", " A", "<", "mask", ">", " <", "mask",
                                      ">", "ony", " ", "<mask>"}));
  mask["lstrip"] = true;
  mask["rstrip"] = true;
  spec["added_tokens"] = {mask};
  const BpeTokenizer tok = load(spec);
  EXPECT_EQ(tok.encode("Hi <mask> there\t<mask>\t<mask>\xE2\x80\x80"),
            (std::vector<int32_t>{'H', 'i', 300, 't', 'h', 'e', 'r', 'e', 300, 300}));
}

TEST(BpeTokenizer, NfcNormalizerAndNormalizedAddedTokens) {
  json spec = make_spec({{"\xC3", "\xA9"}});
  spec["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  spec["added_tokens"] = {added_token(300, "caf\xC3\xA9!", false, /*normalized=*/true)};
  const BpeTokenizer tok = load(spec);
  const std::vector<int32_t> composed = tok.encode("\xC3\xA9");     // U+00E9
  const std::vector<int32_t> decomposed = tok.encode("e\xCC\x81");  // e + U+0301
  EXPECT_EQ(composed.size(), 1u);
  EXPECT_EQ(decomposed, composed);
  EXPECT_EQ(tok.decode(decomposed), "\xC3\xA9");
  // The added token matches in the normalised text, whichever form the input used.
  EXPECT_EQ(tok.encode("xcafe\xCC\x81!"), (std::vector<int32_t>{'x', 300}));
}

TEST(BpeTokenizer, UnknownBytesGoToUnkOrAreDropped) {
  json spec = make_spec({});
  spec["model"]["vocab"].erase(spell("z"));
  EXPECT_EQ(load(spec).encode("aza"), (std::vector<int32_t>{'a', 'a'}));
  spec["model"]["vocab"]["<unk>"] = 400;
  spec["model"]["unk_token"] = "<unk>";
  spec["model"]["vocab"].erase(spell("y"));
  EXPECT_EQ(load(spec).encode("azya"), (std::vector<int32_t>{'a', 400, 400, 'a'}));
  spec["model"]["fuse_unk"] = true;
  EXPECT_EQ(load(spec).encode("azya"), (std::vector<int32_t>{'a', 400, 'a'}));
}

TEST(BpeTokenizer, SpecialIdsFromConfigsAndFallbacks) {
  json spec = make_spec({});
  spec["added_tokens"] = {added_token(300, "<|begin_of_text|>", true), added_token(301, "<|end_of_text|>", true),
                          added_token(302, "<|eot_id|>", true), added_token(303, "<|endoftext|>", true)};
  // No configs: well-known names; pad falls back to eos.
  const BpeTokenizer plain = load(spec);
  EXPECT_EQ(plain.bos_id(), 300);
  EXPECT_EQ(plain.eos_id(), 303);
  EXPECT_EQ(plain.pad_id(), 303);
  EXPECT_EQ(plain.eos_ids(), (std::vector<int32_t>{303}));
  EXPECT_EQ(plain.encode("x", /*add_bos=*/true), (std::vector<int32_t>{300, 'x'}));

  const json config = {{"bos_token", nullptr},
                       {"eos_token", {{"content", "<|eot_id|>"}, {"lstrip", false}}},
                       {"pad_token", "<|end_of_text|>"}};
  const json generation = {{"eos_token_id", {301, 302}}};
  const BpeTokenizer configured = BpeTokenizer::from_json(spec, "t", config, generation);
  EXPECT_EQ(configured.bos_id(), -1);
  EXPECT_EQ(configured.encode("x", /*add_bos=*/true), (std::vector<int32_t>{'x'}));
  EXPECT_EQ(configured.eos_id(), 302);
  EXPECT_EQ(configured.pad_id(), 301);
  EXPECT_EQ(configured.eos_ids(), (std::vector<int32_t>{302, 301}));
  const Tokenizer& base = configured;
  EXPECT_EQ(base.eos_ids(), (std::vector<int32_t>{302, 301}));

  EXPECT_NE(error_of([&] {
              BpeTokenizer::from_json(spec, "t", json{{"eos_token", "<|nope|>"}});
            }).find("eos_token \"<|nope|>\" is not a token of t"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              BpeTokenizer::from_json(spec, "t", nullptr, json{{"eos_token_id", 999}});
            }).find("eos_token_id 999 is not a token"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              BpeTokenizer::from_json(spec, "t", json{{"eos_token", 5}});
            }).find("eos_token must be a string"),
            std::string::npos);
}

TEST(BpeTokenizer, LoadsFilesAndDirectoriesWithConfigsBeside) {
  TempDir dir;
  json spec = make_spec({{"a", "b"}});
  spec["added_tokens"] = {added_token(300, "<|im_end|>", true), added_token(301, "<|endoftext|>", true)};
  dir.write("tokenizer.json", spec.dump());
  dir.write("tokenizer_config.json", json{{"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}}.dump());
  dir.write("generation_config.json", json{{"eos_token_id", {300, 301}}}.dump());
  for (const fs::path& path : {dir.path(), dir.path() / "tokenizer.json"}) {
    const std::unique_ptr<Tokenizer> tok = load_tokenizer(path);
    EXPECT_EQ(tok->eos_id(), 300);
    EXPECT_EQ(tok->pad_id(), 301);
    EXPECT_EQ(tok->eos_ids(), (std::vector<int32_t>{300, 301}));
    EXPECT_EQ(tok->decode(tok->encode("abab")), "abab");
  }
  TempDir empty;
  EXPECT_NE(error_of([&] { load_tokenizer(empty.path()); }).find("no tokenizer.json in the directory"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_tokenizer(empty.path() / "missing.json"); }).find("no tokenizer file at"),
            std::string::npos);
}

TEST(BpeTokenizer, LoadsCohortsOwnByteTokenizerExport) {
  const ByteTokenizer bytes;
  const BpeTokenizer tok = load(bytes.to_hf_tokenizer_json());
  for (const std::string text : {"Hello, world!", "<|im_start|>user\nhi<|im_end|>", "caf\xC3\xA9 \xF0\x9F\x98\x80"}) {
    EXPECT_EQ(tok.encode(text, false, true), bytes.encode(text, false, true)) << text;
    EXPECT_EQ(tok.encode(text), bytes.encode(text)) << text;
  }
  EXPECT_EQ(tok.vocab_size(), bytes.vocab_size());
}

TEST(BpeTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  json spec = make_spec({});
  spec["added_tokens"] = {added_token(300, "<x>", true)};
  const BpeTokenizer tok = load(spec);
  EXPECT_NE(error_of([&] {
              tok.decode(std::vector<int32_t>{1, 2, 301});
            }).find("token id 301 at position 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { tok.decode(std::vector<int32_t>{-1}); }).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.decode(std::vector<int32_t>{280}); }).find("has no token"), std::string::npos);
}

TEST(BpeTokenizer, EncodesTheSameFromManyThreads) {
  const BpeTokenizer tok = load(make_spec({{"t", "h"}, {"th", "e"}, {" ", "the"}, {"o", "n"}}));
  const std::string text = "the one then the other on the line, the end";
  const std::vector<int32_t> expected = tok.encode(text);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) mismatches[t] += tok.encode(text) != expected;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0, 0, 0}));
}

TEST(BpeTokenizer, MalformedFilesAreErrorsThatSayWhat) {
  const auto message = [](const std::function<void(json&)>& edit) {
    json spec = make_spec({{"a", "b"}});
    edit(spec);
    return error_of([&] { BpeTokenizer::from_json(spec, "bad/tokenizer.json"); });
  };
  const auto expect_error = [&](const std::function<void(json&)>& edit, const std::string& part) {
    const std::string what = message(edit);
    EXPECT_NE(what.find("bad/tokenizer.json"), std::string::npos) << what;
    EXPECT_NE(what.find(part), std::string::npos) << "wanted \"" << part << "\" in: " << what;
  };
  expect_error([](json& s) { s = json::array(); }, "top level must be a JSON object");
  expect_error([](json& s) { s.erase("model"); }, "tokenizer.model must be an object");
  expect_error([](json& s) { s["model"]["type"] = "WordPiece"; }, "model.type \"WordPiece\" is not supported");
  expect_error([](json& s) { s["model"].erase("merges"); }, "model.merges must be an array");
  expect_error([](json& s) { s["model"]["vocab"]["x"] = -3; }, "model.vocab[\"x\"] must be a token id");
  expect_error([](json& s) { s["model"]["vocab"]["x"] = "seven"; }, "must be a token id");
  expect_error([](json& s) { s["model"]["vocab"]["x"] = int64_t{1} << 40; }, "must be a token id");
  expect_error([](json& s) { s["model"]["merges"].push_back("a q"); }, "needs \"aq\", which is not in model.vocab");
  expect_error([](json& s) { s["model"]["merges"].push_back("a b c"); }, "is not two tokens separated by one space");
  expect_error([](json& s) { s["model"]["merges"].push_back(7); }, "model.merges[1] must be a string");
  expect_error([](json& s) { s["model"]["dropout"] = 0.1; }, "model.dropout 0.1 is not supported");
  expect_error([](json& s) { s["model"]["byte_fallback"] = true; }, "byte_fallback is not supported");
  expect_error([](json& s) { s["model"]["continuing_subword_prefix"] = "##"; }, "continuing_subword_prefix");
  expect_error([](json& s) { s["model"]["unk_token"] = "<unk>"; }, "unk_token \"<unk>\" is not in model.vocab");
  expect_error([](json& s) { s["model"]["ignore_merges"] = "yes"; }, "model.ignore_merges must be true or false");
  expect_error([](json& s) { s["added_tokens"] = {{{"content", "<x>"}}}; }, "added_tokens[0].id is missing");
  expect_error([](json& s) { s["added_tokens"] = {added_token(5, "<x>", true)}; }, "added token \"<x>\" reuses id 5");
  expect_error([](json& s) { s["added_tokens"] = {added_token(300, "a", true)}; }, "model.vocab gives it 97");
  expect_error(
      [](json& s) {
        s["added_tokens"] = {added_token(300, "<x>", true), added_token(301, "<x>", true)};
      },
      "is listed twice");
  expect_error([](json& s) { s["normalizer"] = {{"type", "Lowercase"}}; }, "normalizer type \"Lowercase\"");
  expect_error([](json& s) { s["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "pre_tokenizer type \"Metaspace\"");
  expect_error([](json& s) { s["pre_tokenizer"] = nullptr; }, "pre_tokenizer is missing");
  expect_error(
      [](json& s) {
        s["pre_tokenizer"] = {
            {"type", "Sequence"},
            {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Isolated"}}}}};
      },
      "no ByteLevel step");
  expect_error(
      [](json& s) {
        s["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"}, {"pattern", {{"Regex", "(ab"}}}, {"behavior", "Isolated"}},
                                {{"type", "ByteLevel"}}}}};
      },
      "PCRE2 rejects the regex (missing closing parenthesis at offset 3): (ab");
  expect_error(
      [](json& s) {
        s["pre_tokenizer"] = {
            {"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", "[a-z&&[^aeiou]]"}}}, {"behavior", "Isolated"}},
              {{"type", "ByteLevel"}}}}};
      },
      "Oniguruma-only syntax");
  expect_error(
      [](json& s) {
        s["pre_tokenizer"] = {
            {"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}, {{"type", "ByteLevel"}}}}};
      },
      "behavior \"Sideways\" is not one of");
  expect_error(
      [](json& s) {
        s["pre_tokenizer"] = {{"type", "Split"}, {"pattern", "a"}, {"behavior", "Isolated"}};
      },
      "pre_tokenizer.pattern must be an object");
  expect_error([](json& s) { s["decoder"] = {{"type", "WordPiece"}}; }, "decoder type \"WordPiece\" is not supported");
  expect_error(
      [](json& s) {
        s["normalizer"] = {{"type", "NFC"}};
        for (int i = 0; i < 20; ++i) s["normalizer"] = {{"type", "Sequence"}, {"normalizers", {s["normalizer"]}}};
      },
      "Sequence nested too deeply");
  expect_error([](json& s) { s.erase("decoder"); }, "decoder is missing");

  TempDir dir;
  EXPECT_NE(error_of([&] {
              BpeTokenizer::from_file(dir.write("tokenizer.json", "{\"model\": "));
            }).find("tokenizer.json: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { BpeTokenizer::from_file(dir.path() / "absent.json"); }).find("cannot open tokenizer file"),
            std::string::npos);
  dir.write("good.json", make_spec({}).dump());
  dir.write("tokenizer_config.json", "[1, 2");
  EXPECT_NE(error_of([&] {
              BpeTokenizer::from_file(dir.path() / "good.json");
            }).find("tokenizer_config.json: not valid JSON"),
            std::string::npos);
}

// The comparison with Hugging Face `tokenizers`: COHORT_TOKENIZER_CHECK names a directory holding a
// tokenizer.json and the expected.tsv that tests/hf/check_tokenizers.py wrote for it.
std::vector<int32_t> parse_ids(const std::string& field) {
  std::vector<int32_t> ids;
  std::istringstream in(field);
  int32_t id;
  while (in >> id) ids.push_back(id);
  return ids;
}

std::string unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string show_ids(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  for (const int32_t id : ids) s << id << ' ';
  return s.str();
}

TEST(BpeTokenizerHf, EqualsTokenizersLineByLine) {
  const char* dir = std::getenv("COHORT_TOKENIZER_CHECK");
  if (!dir) GTEST_SKIP() << "set COHORT_TOKENIZER_CHECK=DIR to compare with tokenizers (tests/hf/check_tokenizers.sh)";
  const fs::path path(dir);
  const BpeTokenizer tok = BpeTokenizer::from_file(path / "tokenizer.json");
  std::ifstream in(path / "expected.tsv");
  ASSERT_TRUE(in) << "no expected.tsv in " << dir;
  std::string row;
  size_t lines = 0, special = 0, plain = 0, decoded = 0, round_trip = 0, shown = 0;
  while (std::getline(in, row)) {
    std::vector<std::string> fields;
    std::istringstream cells(row);
    for (std::string cell; std::getline(cells, cell, '\t');) fields.push_back(cell);
    while (fields.size() < 5) fields.emplace_back();
    const std::string text = unhex(fields[0]);
    const std::vector<int32_t> want = parse_ids(fields[1]), want_plain = parse_ids(fields[2]);
    const std::string want_decoded = unhex(fields[3]);
    const std::vector<int32_t> got = tok.encode(text, false, /*parse_special=*/true);
    const std::vector<int32_t> got_plain = tok.encode(text, false, /*parse_special=*/false);
    ++lines;
    const bool bad_special = got != want, bad_plain = got_plain != want_plain;
    const bool bad_decode = tok.decode(want, /*skip_special=*/false) != want_decoded;
    const bool bad_round_trip = fields[4] == "1" && tok.decode(got, false) != want_decoded;
    special += bad_special;
    plain += bad_plain;
    decoded += bad_decode;
    round_trip += bad_round_trip;
    if ((bad_special || bad_plain || bad_decode || bad_round_trip) && shown++ < 5) {
      ADD_FAILURE() << "line " << lines << " (hex " << fields[0] << ")\n  tokenizers: " << show_ids(want)
                    << "\n  cohort:     " << show_ids(got)
                    << "\n  tokenizers, specials as text: " << show_ids(want_plain)
                    << "\n  cohort, specials as text:     " << show_ids(got_plain);
    }
  }
  const size_t mismatches = special + plain + decoded + round_trip;
  std::printf(
      "tokenizers: %s: %zu lines compared, %zu mismatches (ids %zu, ids with specials as text %zu, decode %zu, "
      "decode(encode(line)) %zu)\n",
      path.filename().c_str(), lines, mismatches, special, plain, decoded, round_trip);
  EXPECT_GT(lines, 0u);
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace cohort
