// Byte-level BPE read from a Hugging Face tokenizer.json, as GPT-2, Llama 3, Qwen2/Qwen3 and
// DeepSeek-R1-Distill ship it, giving the ids Hugging Face `tokenizers` gives (tests/hf/
// check_tokenizers.sh compares them line by line). docs/tokenizers.md lists what is supported,
// what is refused, and how invalid UTF-8 is read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"

namespace cohort {

class BpeTokenizer final : public Tokenizer {
 public:
  // Reads tokenizer.json and, where they sit beside it, tokenizer_config.json (bos_token,
  // eos_token, pad_token) and generation_config.json (eos_token_id: one id or a list, added to
  // eos_ids()). Throws cohort::Error naming the file and what is wrong for anything malformed or
  // unsupported.
  static BpeTokenizer from_file(const std::filesystem::path& tokenizer_json);
  // The same from parsed JSON; `source` names it in errors. The configs may be null.
  static BpeTokenizer from_json(const nlohmann::json& tokenizer, std::string_view source,
                                const nlohmann::json& tokenizer_config = nullptr,
                                const nlohmann::json& generation_config = nullptr);

  // One past the largest id of the vocabulary and the added tokens.
  int32_t vocab_size() const override;
  // -1 where the tokenizer has none (Qwen2 has no bos; add_bos then adds nothing).
  int32_t bos_id() const override;
  int32_t eos_id() const override;
  // The pad token, else the eos token, else -1.
  int32_t pad_id() const override;
  std::vector<int32_t> eos_ids() const override;

  // Hugging Face's encode(text, add_special_tokens=False), plus bos first when add_bos and the
  // tokenizer has one. Added tokens that are not special are always matched, as in Hugging Face;
  // special ones only when parse_special (Hugging Face's default; parse_special=false is its
  // encode_special_tokens=True / transformers' split_special_tokens=True). Invalid UTF-8 is read as
  // Python's bytes.decode('utf-8', errors='replace') reads it. Safe to call from several threads.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false, bool parse_special = false) const override;

  // The pieces encode() hands the BPE model, in raw bytes (before the byte-level mapping), with
  // each matched added token as its content: Hugging Face's pre_tokenize_str, for tests and tools.
  std::vector<std::string> pre_tokens(std::string_view text, bool parse_special = false) const;

  // The ByteLevel decoder: each token's characters back to bytes (a token holding a character
  // outside the byte alphabet, such as an added "<|im_end|>", gives its UTF-8 as is). The bytes are
  // returned unrepaired, so decoding a prefix may end inside a character and pieces concatenate.
  // Special tokens are dropped when skip_special. Throws cohort::Error naming the position and id
  // of an id outside [0, vocab_size()) or with no token.
  std::string decode(std::span<const int32_t> ids, bool skip_special = true) const override;

  // The id of an added token (special or not) given its content, or nullopt.
  std::optional<int32_t> special_id(std::string_view name) const override;
  // The token's text as tokenizer.json spells it (byte-level characters for vocabulary tokens).
  std::string token_text(int32_t id) const;
  bool is_special(int32_t id) const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// A tokenizer.json file, or a directory holding one (a Hugging Face model directory).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace cohort
