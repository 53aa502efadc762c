// The text plumbing under the BPE tokenizer: UTF-8 repair, GPT-2's byte-to-character table, Unicode
// normalisation through libutf8proc. Kept apart from the tokenizer so each piece can be tested alone
// and so the tokenizer's hot loop reads as the pipeline it is.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::bpe {

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// `text` with every maximal ill-formed subsequence replaced by U+FFFD, as Python's
// bytes.decode('utf-8', errors='replace') and Rust's String::from_utf8_lossy do (Unicode's
// "maximal subpart" practice), so that cohort sees the very text Hugging Face's Python API gets.
std::string repair_utf8(std::string_view text);

// The code point starting at text[pos] and its length in bytes. Precondition: valid UTF-8, pos < size.
char32_t decode_utf8_at(std::string_view text, size_t pos, size_t* length);
// The start of the code point that ends at text[end - 1]. Precondition: valid UTF-8, end > 0.
size_t previous_code_point_start(std::string_view text, size_t end);
void append_utf8(char32_t code_point, std::string& out);

// The Unicode White_Space property (25 code points): what Rust's regex `\s` and Oniguruma's
// Unicode `\s` match, and what Hugging Face strips for an added token's lstrip/rstrip.
bool is_white_space(char32_t code_point);

// GPT-2's bytes_to_unicode(): byte b is drawn as code point byte_to_char()[b] (printable Latin-1
// bytes as themselves, the other 68 from U+0100 up in byte order). Byte-level vocabularies spell
// every token in these characters.
const std::array<char32_t, 256>& byte_to_char();
// The byte a code point stands for, or -1 when it is not one of the 256 byte-level characters.
int char_to_byte(char32_t code_point);

// Unicode normalisation forms, as Hugging Face's NFC/NFD/NFKC/NFKD normalizers.
enum class NormalForm { nfc, nfd, nfkc, nfkd };

// The normalizer step list of a tokenizer.json ("Sequence" flattened); empty means none.
class Normalizer {
 public:
  Normalizer() = default;
  explicit Normalizer(std::vector<NormalForm> steps) : steps_(std::move(steps)) {}
  bool empty() const { return steps_.empty(); }
  // Returns false and leaves `out` untouched when normalising would not change `text` (the common
  // case, found without calling utf8proc); otherwise writes the normalised text to `out`.
  // Precondition: `text` is valid UTF-8.
  bool apply(std::string_view text, std::string& out) const;

 private:
  std::vector<NormalForm> steps_;
};

}  // namespace cohort::bpe
