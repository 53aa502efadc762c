// What every tokenizer offers the rest of cohort (rollout, rewards, the CLI): the byte
// tokenizer today, Hugging Face byte-level BPE later, behind one interface.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cohort {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;
  // Every id that ends a generation (a chat model may have several, e.g. Llama 3's <|eot_id|> and
  // <|end_of_text|>); eos_id() first.
  virtual std::vector<int32_t> eos_ids() const { return {eos_id()}; }
  // parse_special: turn special-token names in text into their ids (trusted templates
  // only; user and model text must never forge a turn boundary).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos = false,
                                      bool parse_special = false) const = 0;
  // Throws cohort::Error naming the position and id of an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;
  virtual std::optional<int32_t> special_id(std::string_view name) const = 0;
};

}  // namespace cohort
