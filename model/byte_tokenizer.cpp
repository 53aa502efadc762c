// The built-in byte tokenizer and its export as a Hugging Face tokenizer.json.
// The export reuses GPT-2's byte-level trick (every byte drawn as a printable unicode
// character) so that stock byte-level BPE loaders reproduce our ids exactly.

#include "model/byte_tokenizer.h"

#include "kernels/error.h"
#include "model/bpe_text.h"

namespace cohort {

namespace {

std::string utf8_encode(char32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    // The byte-level table never goes past U+0143; nothing larger is needed here.
    COHORT_REQUIRE(
        false, "utf8_encode: code point " << static_cast<uint32_t>(code_point) << " is outside the byte-level range");
  }
  return out;
}

}  // namespace

std::vector<int32_t> ByteTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + (add_bos ? 1 : 0));
  if (add_bos) ids.push_back(kBosId);
  size_t pos = 0;
  while (pos < text.size()) {
    if (parse_special && text[pos] == '<') {
      bool matched = false;
      for (size_t s = 0; s < kSpecialNames.size(); ++s) {
        if (text.substr(pos).starts_with(kSpecialNames[s])) {
          ids.push_back(kNumByteTokens + static_cast<int32_t>(s));
          pos += kSpecialNames[s].size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    ids.push_back(static_cast<unsigned char>(text[pos]));
    ++pos;
  }
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string text;
  text.reserve(ids.size());
  for (size_t pos = 0; pos < ids.size(); ++pos) {
    const int32_t id = ids[pos];
    COHORT_REQUIRE(id >= 0 && id < kVocabSize, "ByteTokenizer::decode: token id " << id << " at position " << pos
                                                                                  << " is outside the vocabulary [0, "
                                                                                  << kVocabSize << ")");
    if (id < kNumByteTokens) {
      text += static_cast<char>(static_cast<unsigned char>(id));
    } else if (!skip_special) {
      text += kSpecialNames[id - kNumByteTokens];
    }
  }
  return text;
}

std::optional<int32_t> ByteTokenizer::special_id(std::string_view name) const {
  for (size_t s = 0; s < kSpecialNames.size(); ++s) {
    if (kSpecialNames[s] == name) return kNumByteTokens + static_cast<int32_t>(s);
  }
  return std::nullopt;
}

std::string ByteTokenizer::special_name(int32_t id) const {
  COHORT_REQUIRE(id >= kNumByteTokens && id < kVocabSize, "ByteTokenizer::special_name: id "
                                                              << id << " is not a special token (specials are "
                                                              << kNumByteTokens << ".." << kVocabSize - 1 << ")");
  return std::string(kSpecialNames[id - kNumByteTokens]);
}

nlohmann::json ByteTokenizer::to_hf_tokenizer_json() const {
  using nlohmann::json;
  const std::array<char32_t, 256>& byte_to_unicode = bpe::byte_to_char();  // GPT-2's table, shared
  json vocab = json::object();
  for (int byte = 0; byte < kNumByteTokens; ++byte) {
    vocab[utf8_encode(byte_to_unicode[byte])] = byte;
  }

  // Specials live only in added_tokens (as in Qwen2 and Llama 3), so the BPE model
  // can never produce them from plain text; normalized=false keeps them matched verbatim.
  json added_tokens = json::array();
  for (size_t s = 0; s < kSpecialNames.size(); ++s) {
    added_tokens.push_back({{"id", kNumByteTokens + static_cast<int32_t>(s)},
                            {"content", std::string(kSpecialNames[s])},
                            {"single_word", false},
                            {"lstrip", false},
                            {"rstrip", false},
                            {"normalized", false},
                            {"special", true}});
  }

  // use_regex=false: the regex split only decides where merges may cross, and with no
  // merges every byte is its own token anyway; skipping it keeps NUL and invalid UTF-8
  // paths trivially identical to encode(). add_prefix_space=false: encode() adds none.
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};

  return json{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added_tokens},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level},
              {"post_processor", nullptr},
              {"decoder", byte_level},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", json::array()}}}};
}

}  // namespace cohort
