// Hugging Face's byte-level BPE pipeline, step for step: added tokens are cut out of the raw text,
// the rest is normalised and cut again on normalised added tokens, pre-tokenized (Split regexes,
// then ByteLevel), and each pre-token is merged by the BPE model. Every value read from
// tokenizer.json is checked; a malformed file is a cohort::Error naming the file and the field.

#include "model/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "kernels/error.h"
#include "model/bpe_model.h"
#include "model/bpe_regex.h"
#include "model/bpe_text.h"

namespace cohort {

namespace {

using nlohmann::json;

// Ids are indices of dense tables; this bounds what a hostile file can make cohort allocate.
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// The regex ByteLevel splits with when use_regex is true (Hugging Face hard-codes GPT-2's).
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Special tokens cohort takes for bos/eos/pad when no tokenizer_config.json names them, in order.
constexpr std::array<std::string_view, 5> kBosNames = {"<|begin_of_text|>", "<s>",
                                                       "<\xEF\xBD\x9C"
                                                       "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                                       "<|startoftext|>", "<|bos|>"};
constexpr std::array<std::string_view, 7> kEosNames = {"<|endoftext|>",
                                                       "<|end_of_text|>",
                                                       "</s>",
                                                       "<\xEF\xBD\x9C"
                                                       "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                                       "<|eot_id|>",
                                                       "<|im_end|>",
                                                       "<|eos|>"};
constexpr std::array<std::string_view, 3> kPadNames = {"<|pad|>", "<pad>", "<|finetune_right_pad_id|>"};

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct SplitStep {
  bpe::Regex regex;
  Behavior behavior;
  bool invert;
};

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// Leftmost-longest matching of the added tokens' texts, as Hugging Face's Aho-Corasick automaton
// (MatchKind::LeftmostLongest) finds them: the earliest start, and there the longest token.
class TokenTrie {
 public:
  bool empty() const { return nodes_.size() <= 1; }

  void add(std::string_view text, int32_t token) {
    if (nodes_.empty()) nodes_.emplace_back();
    if (text.empty()) return;
    first_byte_[static_cast<unsigned char>(text[0])] = true;
    int32_t node = 0;
    for (const char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      const int32_t child = child_of(node, byte);
      if (child >= 0) {
        node = child;
        continue;
      }
      const auto created = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& edges = nodes_[node].edges;
      edges.insert(std::upper_bound(edges.begin(), edges.end(), std::make_pair(byte, int32_t{-1})),
                   std::make_pair(byte, created));
      node = created;
    }
    nodes_[node].token = token;
  }

  // The leftmost-longest match starting at or after `from`.
  bool find(std::string_view text, size_t from, size_t* start, size_t* length, int32_t* token) const {
    if (empty()) return false;
    for (size_t pos = from; pos < text.size(); ++pos) {
      if (!first_byte_[static_cast<unsigned char>(text[pos])]) continue;
      int32_t node = 0;
      int32_t best = -1;
      size_t best_length = 0;
      for (size_t i = pos; i < text.size(); ++i) {
        node = child_of(node, static_cast<unsigned char>(text[i]));
        if (node < 0) break;
        if (nodes_[node].token >= 0) {
          best = nodes_[node].token;
          best_length = i + 1 - pos;
        }
      }
      if (best >= 0) {
        *start = pos;
        *length = best_length;
        *token = best;
        return true;
      }
    }
    return false;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> edges;  // sorted by byte
    int32_t token = -1;
  };
  int32_t child_of(int32_t node, unsigned char byte) const {
    const auto& edges = nodes_[node].edges;
    const auto it =
        std::lower_bound(edges.begin(), edges.end(), std::make_pair(byte, std::numeric_limits<int32_t>::min()));
    return it != edges.end() && it->first == byte ? it->second : -1;
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_{};
};

// Rust regex's Unicode \w, which Hugging Face uses for an added token's single_word check.
bool is_word_char_at(std::string_view text, size_t pos) {
  static const bpe::Regex word("\\A[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", false, "single_word check");
  size_t length = 0;
  bpe::decode_utf8_at(text, pos, &length);
  size_t start = 0, end = 0;
  return word.find(text.substr(pos, length), 0, &start, &end);
}

}  // namespace

struct BpeTokenizer::Impl {
  std::string source;
  bpe::Normalizer normalizer;
  std::vector<SplitStep> splits;  // before the ByteLevel step, in order
  bool add_prefix_space = false;
  std::optional<bpe::Regex> byte_level_regex;  // GPT-2's, when ByteLevel's use_regex
  bpe::BpeModel model;

  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_by_content;  // content -> index into added
  TokenTrie raw_trie;         // added tokens with normalized=false, matched in the raw text
  TokenTrie normalized_trie;  // normalized=true, matched (normalised) in the normalised text

  int32_t vocab_size = 0;
  std::vector<std::string> token_texts;   // by id; empty for an id with no token
  std::vector<uint8_t> token_flags;       // by id: kExists | kSpecial
  std::vector<uint32_t> decoded_offsets;  // by id, into decoded_bytes; vocab_size + 1 entries
  std::string decoded_bytes;
  static constexpr uint8_t kExists = 1, kSpecial = 2;

  int32_t bos = -1, eos = -1, pad = -1;
  std::vector<int32_t> eos_all;

  struct Encoder;
};

// One encode() call: the output and this thread's word cache, threaded through the steps.
struct BpeTokenizer::Impl::Encoder {
  const Impl& t;
  std::vector<int32_t>& out;
  bpe::WordCache& cache;
  bool parse_special;
  std::vector<std::string>* pieces = nullptr;  // pre_tokens(): collect the pieces instead of ids

  void emit_word(std::string_view word) {
    if (pieces) {
      pieces->emplace_back(word);
    } else {
      t.model.encode_word(word, cache, out);
    }
  }
  void emit_added(const AddedToken& token) {
    if (pieces) {
      pieces->push_back(token.content);
    } else {
      out.push_back(token.id);
    }
  }

  // Hugging Face's AddedVocabulary::find_matches: text between matches goes to on_text, each
  // match's id to out. A skipped match (a special token when !parse_special, a single_word token
  // inside a word) still consumes its text from the search, as the automaton's iterator does.
  template <class OnText>
  void split_added(const TokenTrie& trie, std::string_view text, OnText&& on_text) {
    size_t start_offset = 0, from = 0, match_start = 0, match_length = 0;
    int32_t index = -1;
    while (trie.find(text, from, &match_start, &match_length, &index)) {
      from = match_start + match_length;
      const AddedToken& token = t.added[index];
      size_t start = match_start, stop = match_start + match_length;
      if (token.special && !parse_special) continue;
      if (token.single_word) {
        const bool space_before = start == 0 || !is_word_char_at(text, bpe::previous_code_point_start(text, start));
        const bool space_after = stop == text.size() || !is_word_char_at(text, stop);
        if (!space_before || !space_after) continue;
      }
      if (token.lstrip) {
        size_t new_start = start;
        while (new_start > 0) {
          const size_t previous = bpe::previous_code_point_start(text, new_start);
          size_t length = 0;
          if (!bpe::is_white_space(bpe::decode_utf8_at(text, previous, &length))) break;
          new_start = previous;
        }
        start = std::max(new_start, start_offset);
      }
      if (token.rstrip) {
        while (stop < text.size()) {
          size_t length = 0;
          if (!bpe::is_white_space(bpe::decode_utf8_at(text, stop, &length))) break;
          stop += length;
        }
      }
      if (start_offset < start) on_text(text.substr(start_offset, start - start_offset));
      emit_added(token);
      start_offset = stop;
    }
    if (start_offset < text.size()) on_text(text.substr(start_offset));
  }

  void encode(std::string_view text) {
    if (t.raw_trie.empty()) {
      normalize_then_split(text);
    } else {
      split_added(t.raw_trie, text, [&](std::string_view piece) { normalize_then_split(piece); });
    }
  }

  void normalize_then_split(std::string_view piece) {
    std::string normalized;
    if (t.normalizer.apply(piece, normalized)) piece = normalized;
    if (t.normalized_trie.empty()) {
      pre_tokenize(0, piece);
    } else {
      split_added(t.normalized_trie, piece, [&](std::string_view rest) { pre_tokenize(0, rest); });
    }
  }

  // Split step `step` on `piece`, then the later steps on each part.
  void pre_tokenize(size_t step, std::string_view piece) {
    if (piece.empty()) return;
    if (step == t.splits.size()) {
      byte_level(piece);
      return;
    }
    const SplitStep& split = t.splits[step];
    if (split.behavior == Behavior::isolated) {
      // Every match and every gap is its own part (invert changes nothing here).
      size_t previous = 0;
      split.regex.for_each_match(piece, [&](size_t start, size_t end) {
        if (start > previous) pre_tokenize(step + 1, piece.substr(previous, start - previous));
        if (end > start) pre_tokenize(step + 1, piece.substr(start, end - start));
        previous = end;
      });
      if (previous < piece.size()) pre_tokenize(step + 1, piece.substr(previous));
      return;
    }
    // Hugging Face's NormalizedString::split: the pieces with their match flags, then the behavior.
    struct Part {
      size_t start, end;
      bool match;
    };
    std::vector<Part> parts;
    size_t previous = 0;
    split.regex.for_each_match(piece, [&](size_t start, size_t end) {
      if (previous != start) parts.push_back({previous, start, split.invert});
      parts.push_back({start, end, !split.invert});
      previous = end;
    });
    if (previous != piece.size()) parts.push_back({previous, piece.size(), split.invert});

    std::vector<Part> kept;  // match now means "remove"
    bool previous_match = false;
    switch (split.behavior) {
      case Behavior::isolated:
        break;
      case Behavior::removed:
        kept = parts;
        break;
      case Behavior::merged_with_previous:
        for (const Part& p : parts) {
          if (p.match && !previous_match && !kept.empty()) {
            kept.back().end = p.end;
          } else {
            kept.push_back({p.start, p.end, false});
          }
          previous_match = p.match;
        }
        break;
      case Behavior::merged_with_next:
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
          if (it->match && !previous_match && !kept.empty()) {
            kept.back().start = it->start;
          } else {
            kept.push_back({it->start, it->end, false});
          }
          previous_match = it->match;
        }
        std::reverse(kept.begin(), kept.end());
        break;
      case Behavior::contiguous:
        for (const Part& p : parts) {
          if (p.match == previous_match && !kept.empty()) {
            kept.back().end = p.end;
          } else {
            kept.push_back({p.start, p.end, false});
          }
          previous_match = p.match;
        }
        break;
    }
    for (const Part& p : kept) {
      if (!p.match) pre_tokenize(step + 1, piece.substr(p.start, p.end - p.start));
    }
  }

  void byte_level(std::string_view piece) {
    if (t.add_prefix_space && piece.front() != ' ') {
      std::string prefixed;
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ';
      prefixed.append(piece);
      byte_level_split(prefixed);
    } else {
      byte_level_split(piece);
    }
  }

  void byte_level_split(std::string_view piece) {
    if (!t.byte_level_regex) {
      emit_word(piece);
      return;
    }
    size_t previous = 0;
    t.byte_level_regex->for_each_match(piece, [&](size_t start, size_t end) {
      if (start > previous) emit_word(piece.substr(previous, start - previous));
      if (end > start) emit_word(piece.substr(start, end - start));
      previous = end;
    });
    if (previous < piece.size()) emit_word(piece.substr(previous));
  }
};

namespace {

// The word cache of this thread for one tokenizer. Caches of destroyed tokenizers are dropped the
// next time a thread meets a new one.
bpe::WordCache& thread_word_cache(const std::shared_ptr<const BpeTokenizer::Impl>& impl) {
  struct Slot {
    const void* owner;
    std::weak_ptr<const void> alive;
    std::unique_ptr<bpe::WordCache> cache;
  };
  thread_local std::vector<Slot> slots;
  for (Slot& slot : slots) {
    if (slot.owner == impl.get() && !slot.alive.expired()) return *slot.cache;
  }
  std::erase_if(slots, [](const Slot& slot) { return slot.alive.expired(); });
  slots.push_back(Slot{impl.get(), impl, std::make_unique<bpe::WordCache>()});
  return *slots.back().cache;
}

// Reads tokenizer.json's fields with every type checked; errors name the source and the field.
class JsonReader {
 public:
  explicit JsonReader(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(const std::string& what) const { fail_at(__FILE__, __LINE__, source_ + ": " + what); }

  const json* find(const json& object, std::string_view key) const {
    if (!object.is_object()) return nullptr;
    const auto it = object.find(std::string(key));
    return it == object.end() ? nullptr : &*it;
  }
  const json& require_object(const json& object, std::string_view key, std::string_view where) const {
    const json* value = find(object, key);
    if (!value || !value->is_object()) fail(std::string(where) + "." + std::string(key) + " must be an object");
    return *value;
  }
  bool boolean(const json& object, std::string_view key, bool fallback, std::string_view where) const {
    const json* value = find(object, key);
    if (!value || value->is_null()) return fallback;
    if (!value->is_boolean()) fail(std::string(where) + "." + std::string(key) + " must be true or false");
    return value->get<bool>();
  }
  std::optional<std::string> optional_string(const json& object, std::string_view key, std::string_view where) const {
    const json* value = find(object, key);
    if (!value || value->is_null()) return std::nullopt;
    if (!value->is_string()) fail(std::string(where) + "." + std::string(key) + " must be a string or null");
    return value->get<std::string>();
  }
  std::string string(const json& object, std::string_view key, std::string_view where) const {
    std::optional<std::string> value = optional_string(object, key, where);
    if (!value) fail(std::string(where) + "." + std::string(key) + " is missing");
    return *value;
  }
  static bool is_token_id(const json& value) {
    return value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() <= kMaxTokenId;
  }
  int32_t token_id(const json& value, std::string_view where) const {
    if (!is_token_id(value)) {
      fail(std::string(where) + " must be a token id, an integer in [0, " + std::to_string(kMaxTokenId) + "], not " +
           value.dump());
    }
    return static_cast<int32_t>(value.get<int64_t>());
  }
  std::string type_of(const json& object, std::string_view where) const {
    if (!object.is_object()) fail(std::string(where) + " must be an object with a \"type\"");
    return string(object, "type", where);
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

// Sequences nest no deeper than this (real files nest once); deeper is refused, not recursed into.
constexpr int kMaxSequenceDepth = 8;

void read_normalizer(const JsonReader& reader, const json& node, std::string_view where,
                     std::vector<bpe::NormalForm>& steps, int depth = 0) {
  if (depth > kMaxSequenceDepth) reader.fail(std::string(where) + ": Sequence nested too deeply");
  const std::string type = reader.type_of(node, where);
  if (type == "NFC") {
    steps.push_back(bpe::NormalForm::nfc);
  } else if (type == "NFD") {
    steps.push_back(bpe::NormalForm::nfd);
  } else if (type == "NFKC") {
    steps.push_back(bpe::NormalForm::nfkc);
  } else if (type == "NFKD") {
    steps.push_back(bpe::NormalForm::nfkd);
  } else if (type == "Sequence") {
    const json* list = reader.find(node, "normalizers");
    if (!list || !list->is_array()) reader.fail(std::string(where) + ".normalizers must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      read_normalizer(reader, (*list)[i], std::string(where) + ".normalizers[" + std::to_string(i) + "]", steps,
                      depth + 1);
    }
  } else {
    reader.fail(std::string(where) + ": normalizer type \"" + type +
                "\" is not supported (cohort reads NFC, NFD, NFKC, NFKD and Sequence of them)");
  }
}

struct PreTokenizerSteps {
  std::vector<SplitStep> splits;
  bool byte_level = false;
  bool add_prefix_space = true;
  bool use_regex = true;
};

void read_pre_tokenizer(const JsonReader& reader, const json& node, const std::string& where, PreTokenizerSteps& steps,
                        int depth = 0) {
  if (depth > kMaxSequenceDepth) reader.fail(where + ": Sequence nested too deeply");
  const std::string type = reader.type_of(node, where);
  if (type == "Sequence") {
    const json* list = reader.find(node, "pretokenizers");
    if (!list || !list->is_array()) reader.fail(where + ".pretokenizers must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      read_pre_tokenizer(reader, (*list)[i], where + ".pretokenizers[" + std::to_string(i) + "]", steps, depth + 1);
    }
    return;
  }
  if (steps.byte_level) {
    reader.fail(where + ": a " + type +
                " step after ByteLevel is not supported (cohort needs ByteLevel last: later steps would see "
                "byte-level characters)");
  }
  if (type == "ByteLevel") {
    steps.byte_level = true;
    steps.add_prefix_space = reader.boolean(node, "add_prefix_space", true, where);
    steps.use_regex = reader.boolean(node, "use_regex", true, where);
    return;
  }
  if (type == "Split") {
    const json& pattern = reader.require_object(node, "pattern", where);
    const std::optional<std::string> regex = reader.optional_string(pattern, "Regex", where + ".pattern");
    const std::optional<std::string> literal = reader.optional_string(pattern, "String", where + ".pattern");
    if (regex.has_value() == literal.has_value()) {
      reader.fail(where + ".pattern must hold exactly one of \"Regex\" and \"String\"");
    }
    const std::string behavior_name = reader.string(node, "behavior", where);
    static const std::array<std::pair<std::string_view, Behavior>, 5> kBehaviors = {{
        {"Removed", Behavior::removed},
        {"Isolated", Behavior::isolated},
        {"MergedWithPrevious", Behavior::merged_with_previous},
        {"MergedWithNext", Behavior::merged_with_next},
        {"Contiguous", Behavior::contiguous},
    }};
    const auto it = std::find_if(kBehaviors.begin(), kBehaviors.end(),
                                 [&](const auto& entry) { return entry.first == behavior_name; });
    if (it == kBehaviors.end()) {
      reader.fail(where + ".behavior \"" + behavior_name +
                  "\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
    }
    steps.splits.push_back(SplitStep{bpe::Regex(regex ? *regex : *literal, !regex, reader.source() + ": " + where),
                                     it->second, reader.boolean(node, "invert", false, where)});
    return;
  }
  reader.fail(where + ": pre_tokenizer type \"" + type +
              "\" is not supported (cohort reads byte-level BPE: ByteLevel, Split and Sequence of them)");
}

// The bytes a token decodes to: its characters mapped back through the byte-level alphabet, or,
// when any character is outside it, the token's UTF-8 as is (Hugging Face's ByteLevel decoder).
std::string byte_level_decode(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const int byte = bpe::char_to_byte(bpe::decode_utf8_at(text, pos, &length));
    if (byte < 0) return std::string(text);
    bytes += static_cast<char>(byte);
    pos += length;
  }
  return bytes;
}

// The raw bytes a byte-level token spells, or nullopt when it holds a character outside the alphabet.
std::optional<std::string> byte_level_bytes(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const int byte = bpe::char_to_byte(bpe::decode_utf8_at(text, pos, &length));
    if (byte < 0) return std::nullopt;
    bytes += static_cast<char>(byte);
    pos += length;
  }
  return bytes;
}

// A token named by tokenizer_config.json: a string, {"content": string}, or null.
std::optional<std::string> config_token(const JsonReader& reader, const json& value, std::string_view key) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) return reader.string(value, "content", key);
  reader.fail(std::string(key) + " must be a string, an object with \"content\", or null");
}

json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  COHORT_REQUIRE(in, "cannot open tokenizer file " << path.string());
  std::ostringstream text;
  text << in.rdbuf();
  COHORT_REQUIRE(!in.bad(), "cannot read tokenizer file " << path.string());
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    fail_at(__FILE__, __LINE__, path.string() + ": not valid JSON: " + e.what());
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  const json tokenizer = read_json_file(tokenizer_json);
  const std::filesystem::path dir = tokenizer_json.parent_path();
  json tokenizer_config = nullptr, generation_config = nullptr;
  if (std::filesystem::is_regular_file(dir / "tokenizer_config.json")) {
    tokenizer_config = read_json_file(dir / "tokenizer_config.json");
  }
  if (std::filesystem::is_regular_file(dir / "generation_config.json")) {
    generation_config = read_json_file(dir / "generation_config.json");
  }
  return from_json(tokenizer, tokenizer_json.string(), tokenizer_config, generation_config);
}

namespace {

using Impl = BpeTokenizer::Impl;

// The model's options, checked: anything that would make encoding differ from plain byte-level BPE
// is refused rather than ignored.
bpe::BpeModel::Options read_model_options(const JsonReader& reader, const json& model,
                                          const bpe::StringTable& vocab_by_text) {
  if (const std::optional<std::string> type = reader.optional_string(model, "type", "model"); type && *type != "BPE") {
    reader.fail("model.type \"" + *type + "\" is not supported (cohort reads BPE models)");
  }
  if (const json* dropout = reader.find(model, "dropout"); dropout && !dropout->is_null()) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      reader.fail("model.dropout " + dropout->dump() + " is not supported (cohort's encoding is deterministic)");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const std::optional<std::string> value = reader.optional_string(model, key, "model");
    if (value && !value->empty()) {
      reader.fail(std::string("model.") + key + " \"" + *value + "\" is not supported (byte-level BPE has none)");
    }
  }
  if (reader.boolean(model, "byte_fallback", false, "model")) {
    reader.fail("model.byte_fallback is not supported (it belongs to SentencePiece-style BPE, not byte-level)");
  }
  bpe::BpeModel::Options options;
  options.ignore_merges = reader.boolean(model, "ignore_merges", false, "model");
  options.fuse_unk = reader.boolean(model, "fuse_unk", false, "model");
  if (const std::optional<std::string> unk = reader.optional_string(model, "unk_token", "model")) {
    options.unk_id = vocab_by_text.find(*unk);
    if (options.unk_id < 0) reader.fail("model.unk_token \"" + *unk + "\" is not in model.vocab");
  }
  return options;
}

// added_tokens into t.added; `max_id` grows to the largest id seen.
void read_added_tokens(const JsonReader& reader, const json& root, const bpe::StringTable& vocab_by_text, Impl& t,
                       int64_t& max_id) {
  const json* added = reader.find(root, "added_tokens");
  if (!added || added->is_null()) return;
  if (!added->is_array()) reader.fail("added_tokens must be an array");
  for (size_t i = 0; i < added->size(); ++i) {
    const json& entry = (*added)[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!entry.is_object()) reader.fail(where + " must be an object");
    AddedToken token;
    token.content = reader.string(entry, "content", where);
    const json* id = reader.find(entry, "id");
    if (!id) reader.fail(where + ".id is missing");
    token.id = reader.token_id(*id, where + ".id");
    token.special = reader.boolean(entry, "special", false, where);
    token.single_word = reader.boolean(entry, "single_word", false, where);
    token.lstrip = reader.boolean(entry, "lstrip", false, where);
    token.rstrip = reader.boolean(entry, "rstrip", false, where);
    token.normalized = reader.boolean(entry, "normalized", !token.special, where);
    if (token.content.empty()) continue;  // Hugging Face ignores an empty added token
    const int32_t in_vocab = vocab_by_text.find(token.content);
    if (in_vocab >= 0 && in_vocab != token.id) {
      reader.fail(where + " \"" + token.content + "\" has id " + std::to_string(token.id) +
                  " but model.vocab gives it " + std::to_string(in_vocab));
    }
    const auto [it, inserted] = t.added_by_content.emplace(token.content, static_cast<int32_t>(t.added.size()));
    if (!inserted) reader.fail(where + " \"" + token.content + "\" is listed twice");
    max_id = std::max<int64_t>(max_id, token.id);
    t.added.push_back(std::move(token));
  }
}

// Every token's text, flags and decoded bytes, by id.
void build_token_tables(const JsonReader& reader, const json& vocab, Impl& t) {
  t.token_texts.assign(t.vocab_size, std::string());
  t.token_flags.assign(t.vocab_size, 0);
  for (const auto& [text, id_value] : vocab.items()) {
    const auto id = static_cast<int32_t>(id_value.get<int64_t>());
    t.token_texts[id] = text;
    t.token_flags[id] = Impl::kExists;
  }
  for (const AddedToken& token : t.added) {
    if ((t.token_flags[token.id] & Impl::kExists) && t.token_texts[token.id] != token.content) {
      reader.fail("added token \"" + token.content + "\" reuses id " + std::to_string(token.id) + " of \"" +
                  t.token_texts[token.id] + "\"");
    }
    t.token_texts[token.id] = token.content;
    t.token_flags[token.id] = Impl::kExists | (token.special ? Impl::kSpecial : 0);
  }
  t.decoded_offsets.assign(t.vocab_size + 1, 0);
  for (int32_t id = 0; id < t.vocab_size; ++id) {
    t.decoded_offsets[id] = static_cast<uint32_t>(t.decoded_bytes.size());
    if (t.token_flags[id] & Impl::kExists) t.decoded_bytes += byte_level_decode(t.token_texts[id]);
  }
  t.decoded_offsets[t.vocab_size] = static_cast<uint32_t>(t.decoded_bytes.size());
}

// Merges: "a b" strings or ["a", "b"] pairs, ranked by position; a, b and ab must be in the vocabulary.
bpe::MergeTable read_merges(const JsonReader& reader, const json& merges, const bpe::StringTable& vocab_by_text) {
  bpe::MergeTable table;
  uint32_t rank = 0;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& entry = merges[i];
    std::string left, right;
    if (entry.is_string()) {
      const std::string line = entry.get<std::string>();
      if (line.starts_with("#version")) continue;
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        reader.fail("model.merges[" + std::to_string(i) + "] \"" + line +
                    "\" is not two tokens separated by one space");
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      left = entry[0].get<std::string>();
      right = entry[1].get<std::string>();
    } else {
      reader.fail("model.merges[" + std::to_string(i) + "] must be a string \"a b\" or a pair [\"a\", \"b\"], not " +
                  entry.dump());
    }
    const std::string merged = left + right;
    const std::array<std::pair<const std::string*, int32_t>, 3> parts = {{{&left, vocab_by_text.find(left)},
                                                                          {&right, vocab_by_text.find(right)},
                                                                          {&merged, vocab_by_text.find(merged)}}};
    for (const auto& [name, id] : parts) {
      if (id < 0) {
        reader.fail("model.merges[" + std::to_string(i) + "] needs \"" + *name + "\", which is not in model.vocab");
      }
    }
    table.insert(parts[0].second, parts[1].second, rank++, parts[2].second);
  }
  return table;
}

// Normalizer, pre-tokenizer and decoder, and the added-token matchers (which need the normalizer).
void read_pipeline(const JsonReader& reader, const json& root, Impl& t) {
  std::vector<bpe::NormalForm> forms;
  if (const json* normalizer = reader.find(root, "normalizer"); normalizer && !normalizer->is_null()) {
    read_normalizer(reader, *normalizer, "normalizer", forms);
  }
  t.normalizer = bpe::Normalizer(std::move(forms));

  const json* pre_tokenizer = reader.find(root, "pre_tokenizer");
  if (!pre_tokenizer || pre_tokenizer->is_null()) {
    reader.fail("pre_tokenizer is missing: cohort reads byte-level BPE, which needs a ByteLevel pre_tokenizer");
  }
  PreTokenizerSteps steps;
  read_pre_tokenizer(reader, *pre_tokenizer, "pre_tokenizer", steps);
  if (!steps.byte_level) reader.fail("pre_tokenizer has no ByteLevel step: cohort reads byte-level BPE only");
  t.splits = std::move(steps.splits);
  t.add_prefix_space = steps.add_prefix_space;
  if (steps.use_regex) t.byte_level_regex.emplace(kGpt2Pattern, false, "ByteLevel's GPT-2 regex");

  const json* decoder = reader.find(root, "decoder");
  if (!decoder || decoder->is_null()) reader.fail("decoder is missing: cohort needs the ByteLevel decoder");
  if (const std::string type = reader.type_of(*decoder, "decoder"); type != "ByteLevel") {
    reader.fail("decoder type \"" + type + "\" is not supported (cohort reads the ByteLevel decoder)");
  }

  // normalized=true tokens match their normalised content in the normalised text.
  t.raw_trie.add("", -1);
  t.normalized_trie.add("", -1);
  for (size_t i = 0; i < t.added.size(); ++i) {
    const AddedToken& token = t.added[i];
    if (!token.normalized) {
      t.raw_trie.add(token.content, static_cast<int32_t>(i));
    } else {
      std::string normalized;
      t.normalized_trie.add(t.normalizer.apply(token.content, normalized) ? normalized : token.content,
                            static_cast<int32_t>(i));
    }
  }
}

// bos, eos, pad: as tokenizer_config.json names them (a null there means none), else the first
// well-known special token present; eos also from generation_config.json, whose ids all join
// eos_ids(). pad falls back to eos.
void resolve_special_ids(Impl& t, std::string_view source, const json& tokenizer_config, const json& generation_config,
                         const bpe::StringTable& vocab_by_text) {
  const JsonReader config_reader("tokenizer_config.json beside " + std::string(source));
  if (!tokenizer_config.is_null() && !tokenizer_config.is_object()) config_reader.fail("must be a JSON object");
  const auto id_of = [&](const std::string& name) -> int32_t {
    const auto it = t.added_by_content.find(name);
    return it != t.added_by_content.end() ? t.added[it->second].id : vocab_by_text.find(name);
  };
  const auto resolve = [&](std::string_view key, const auto& names) -> int32_t {
    if (const json* value = config_reader.find(tokenizer_config, key)) {
      const std::optional<std::string> name = config_token(config_reader, *value, key);
      if (!name) return -1;
      const int32_t id = id_of(*name);
      if (id < 0) config_reader.fail(std::string(key) + " \"" + *name + "\" is not a token of " + std::string(source));
      return id;
    }
    for (const std::string_view name : names) {
      const auto it = t.added_by_content.find(std::string(name));
      if (it != t.added_by_content.end() && t.added[it->second].special) return t.added[it->second].id;
    }
    return -1;
  };
  t.bos = resolve("bos_token", kBosNames);
  t.eos = resolve("eos_token", kEosNames);
  t.pad = resolve("pad_token", kPadNames);

  std::vector<int32_t> generation_eos;
  const JsonReader generation_reader("generation_config.json beside " + std::string(source));
  if (const json* ids = generation_reader.find(generation_config, "eos_token_id"); ids && !ids->is_null()) {
    const json list = ids->is_array() ? *ids : json::array({*ids});
    for (size_t i = 0; i < list.size(); ++i) {
      const int32_t id = generation_reader.token_id(list[i], "eos_token_id[" + std::to_string(i) + "]");
      if (id >= t.vocab_size || !(t.token_flags[id] & Impl::kExists)) {
        generation_reader.fail("eos_token_id " + std::to_string(id) + " is not a token of " + std::string(source));
      }
      generation_eos.push_back(id);
    }
  }
  if (!generation_eos.empty() && !config_reader.find(tokenizer_config, "eos_token")) t.eos = generation_eos.front();
  if (t.pad < 0) t.pad = t.eos;
  if (t.eos >= 0) t.eos_all.push_back(t.eos);
  for (const int32_t id : generation_eos) {
    if (std::find(t.eos_all.begin(), t.eos_all.end(), id) == t.eos_all.end()) t.eos_all.push_back(id);
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_json(const json& root, std::string_view source, const json& tokenizer_config,
                                     const json& generation_config) {
  try {
    auto impl = std::make_shared<Impl>();
    impl->source = std::string(source);
    const JsonReader reader(source);
    if (!root.is_object()) reader.fail("the top level must be a JSON object");
    const json& model = reader.require_object(root, "model", "tokenizer");
    const json& vocab = reader.require_object(model, "vocab", "model");
    const json* merges = reader.find(model, "merges");
    if (!merges || !merges->is_array()) reader.fail("model.merges must be an array");

    bpe::StringTable vocab_by_text;  // byte-level spelling -> id
    int64_t max_id = -1;
    for (const auto& [text, id_value] : vocab.items()) {
      const int32_t id = JsonReader::is_token_id(id_value) ? static_cast<int32_t>(id_value.get<int64_t>())
                                                           : reader.token_id(id_value, "model.vocab[\"" + text + "\"]");
      vocab_by_text.insert(text, id);
      max_id = std::max<int64_t>(max_id, id);
    }
    const bpe::BpeModel::Options options = read_model_options(reader, model, vocab_by_text);
    read_added_tokens(reader, root, vocab_by_text, *impl, max_id);
    if (max_id < 0) reader.fail("model.vocab is empty");
    impl->vocab_size = static_cast<int32_t>(max_id + 1);
    build_token_tables(reader, vocab, *impl);

    // The model works on raw bytes: each byte's first symbol, and (for ignore_merges) every
    // vocabulary entry spelled in raw bytes.
    std::array<int32_t, 256> byte_ids{};
    for (int b = 0; b < 256; ++b) {
      std::string text;
      bpe::append_utf8(bpe::byte_to_char()[b], text);
      byte_ids[b] = vocab_by_text.find(text);
    }
    bpe::StringTable words;
    if (options.ignore_merges) {
      for (const auto& [text, id_value] : vocab.items()) {
        if (std::optional<std::string> bytes = byte_level_bytes(text)) {
          words.insert(*bytes, static_cast<int32_t>(id_value.get<int64_t>()));
        }
      }
    }
    impl->model = bpe::BpeModel(byte_ids, read_merges(reader, *merges, vocab_by_text), std::move(words), options);

    read_pipeline(reader, root, *impl);
    resolve_special_ids(*impl, source, tokenizer_config, generation_config, vocab_by_text);
    return BpeTokenizer(std::move(impl));
  } catch (const json::exception& e) {
    // Every access above is type-checked; this is the backstop that keeps a surprise a cohort::Error.
    fail_at(__FILE__, __LINE__, std::string(source) + ": unexpected JSON content: " + e.what());
  }
}

int32_t BpeTokenizer::vocab_size() const {
  return impl_->vocab_size;
}
int32_t BpeTokenizer::bos_id() const {
  return impl_->bos;
}
int32_t BpeTokenizer::eos_id() const {
  return impl_->eos;
}
int32_t BpeTokenizer::pad_id() const {
  return impl_->pad;
}
std::vector<int32_t> BpeTokenizer::eos_ids() const {
  return impl_->eos_all;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos && impl_->bos >= 0) ids.push_back(impl_->bos);
  std::string repaired;
  if (!bpe::is_valid_utf8(text)) {
    repaired = bpe::repair_utf8(text);
    text = repaired;
  }
  Impl::Encoder encoder{*impl_, ids, thread_word_cache(impl_), parse_special, nullptr};
  encoder.encode(text);
  return ids;
}

std::vector<std::string> BpeTokenizer::pre_tokens(std::string_view text, bool parse_special) const {
  std::vector<int32_t> unused;
  std::vector<std::string> pieces;
  std::string repaired;
  if (!bpe::is_valid_utf8(text)) {
    repaired = bpe::repair_utf8(text);
    text = repaired;
  }
  Impl::Encoder encoder{*impl_, unused, thread_word_cache(impl_), parse_special, &pieces};
  encoder.encode(text);
  return pieces;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string text;
  text.reserve(ids.size() * 4);
  for (size_t pos = 0; pos < ids.size(); ++pos) {
    const int32_t id = ids[pos];
    COHORT_REQUIRE(id >= 0 && id < t.vocab_size && (t.token_flags[id] & Impl::kExists),
                   "BpeTokenizer::decode: token id "
                       << id << " at position " << pos
                       << (id >= 0 && id < t.vocab_size ? " has no token in " : " is outside the vocabulary of ")
                       << t.source << " [0, " << t.vocab_size << ")");
    if (skip_special && (t.token_flags[id] & Impl::kSpecial)) continue;
    text.append(t.decoded_bytes, t.decoded_offsets[id], t.decoded_offsets[id + 1] - t.decoded_offsets[id]);
  }
  return text;
}

std::optional<int32_t> BpeTokenizer::special_id(std::string_view name) const {
  const auto it = impl_->added_by_content.find(std::string(name));
  if (it == impl_->added_by_content.end()) return std::nullopt;
  return impl_->added[it->second].id;
}

std::string BpeTokenizer::token_text(int32_t id) const {
  COHORT_REQUIRE(id >= 0 && id < impl_->vocab_size && (impl_->token_flags[id] & Impl::kExists),
                 "BpeTokenizer::token_text: id " << id << " is not a token of " << impl_->source);
  return impl_->token_texts[id];
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && (impl_->token_flags[id] & Impl::kSpecial);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path)) {
    file = path / "tokenizer.json";
    COHORT_REQUIRE(std::filesystem::is_regular_file(file), "no tokenizer.json in the directory " << path.string());
  }
  COHORT_REQUIRE(std::filesystem::is_regular_file(file), "no tokenizer file at " << path.string());
  return std::make_unique<BpeTokenizer>(BpeTokenizer::from_file(file));
}

}  // namespace cohort
