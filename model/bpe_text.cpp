// UTF-8 repair and decoding, GPT-2's byte-level alphabet, and Unicode normalisation via libutf8proc.

#include "model/bpe_text.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "kernels/error.h"

namespace cohort::bpe {

namespace {

// Length of the well-formed prefix of the sequence starting at text[pos] (Unicode 15, table 3-7),
// and whether that prefix is a complete code point. A lone invalid byte gives length 1, incomplete.
size_t well_formed_prefix(std::string_view text, size_t pos, bool* complete) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  *complete = false;
  if (lead < 0x80) {
    *complete = true;
    return 1;
  }
  size_t need = 0;
  unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 1;  // C0, C1, F5..FF or a stray continuation byte
  }
  size_t length = 1;
  for (size_t k = 0; k < need; ++k) {
    if (pos + length >= text.size()) return length;
    const unsigned char next = byte(pos + length);
    const unsigned char lo = k == 0 ? low : 0x80, hi = k == 0 ? high : 0xBF;
    if (next < lo || next > hi) return length;
    ++length;
  }
  *complete = true;
  return length;
}

std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> table{};
  char32_t next_unprintable = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable =
        (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
    table[byte] = printable ? static_cast<char32_t>(byte) : next_unprintable++;
  }
  return table;
}

// True when no normal form changes `text`: NFC and NFD leave code points below U+0300 alone only
// if NFD need not decompose them (ASCII), NFC leaves all of them (nothing below U+0300 has NFC_QC
// other than Yes, and composition starts from a combining mark at U+0300 or above).
bool unchanged_by(NormalForm form, std::string_view text) {
  const unsigned char limit = form == NormalForm::nfc ? 0xCC : 0x80;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= limit) return false;
  }
  return true;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    // Runs of ASCII are the common case: skip them eight bytes at a time.
    while (pos + 8 <= text.size()) {
      uint64_t word;
      __builtin_memcpy(&word, text.data() + pos, 8);
      if (word & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= text.size()) break;
    bool complete;
    const size_t length = well_formed_prefix(text, pos, &complete);
    if (!complete) return false;
    pos += length;
  }
  return true;
}

std::string repair_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 16);
  size_t pos = 0;
  while (pos < text.size()) {
    bool complete;
    const size_t length = well_formed_prefix(text, pos, &complete);
    if (complete) {
      out.append(text.substr(pos, length));
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
    }
    pos += length;
  }
  return out;
}

char32_t decode_utf8_at(std::string_view text, size_t pos, size_t* length) {
  const auto byte = [&](size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[pos + i])); };
  const char32_t lead = byte(0);
  if (lead < 0x80) {
    *length = 1;
    return lead;
  }
  if (lead < 0xE0) {
    *length = 2;
    return ((lead & 0x1F) << 6) | (byte(1) & 0x3F);
  }
  if (lead < 0xF0) {
    *length = 3;
    return ((lead & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
  }
  *length = 4;
  return ((lead & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
}

size_t previous_code_point_start(std::string_view text, size_t end) {
  size_t pos = end - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_white_space(char32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = make_byte_to_char();
  return table;
}

int char_to_byte(char32_t cp) {
  // The 188 printable bytes stand for themselves; the other 68 are U+0100..U+0143.
  if (cp >= 0x100 && cp < 0x144) {
    static const std::array<int16_t, 68> unprintable = [] {
      std::array<int16_t, 68> bytes{};
      const auto& table = byte_to_char();
      for (int b = 0; b < 256; ++b) {
        if (table[b] >= 0x100) bytes[table[b] - 0x100] = static_cast<int16_t>(b);
      }
      return bytes;
    }();
    return unprintable[cp - 0x100];
  }
  if (cp < 0x100 && byte_to_char()[cp] == cp) return static_cast<int>(cp);
  return -1;
}

bool Normalizer::apply(std::string_view text, std::string& out) const {
  bool changed = false;
  std::string current;
  for (const NormalForm form : steps_) {
    const std::string_view input = changed ? std::string_view(current) : text;
    if (unchanged_by(form, input)) continue;
    int options = UTF8PROC_STABLE;
    switch (form) {
      case NormalForm::nfc:
        options |= UTF8PROC_COMPOSE;
        break;
      case NormalForm::nfd:
        options |= UTF8PROC_DECOMPOSE;
        break;
      case NormalForm::nfkc:
        options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        break;
      case NormalForm::nfkd:
        options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
        break;
    }
    utf8proc_uint8_t* result = nullptr;
    const utf8proc_ssize_t length =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(input.data()),
                     static_cast<utf8proc_ssize_t>(input.size()), &result, static_cast<utf8proc_option_t>(options));
    const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(result, &std::free);
    COHORT_REQUIRE(length >= 0, "tokenizer normalizer: utf8proc failed: " << utf8proc_errmsg(length));
    std::string next(reinterpret_cast<const char*>(result), static_cast<size_t>(length));
    if (next != input) {
      current = std::move(next);
      changed = true;
    }
  }
  if (changed) out = std::move(current);
  return changed;
}

}  // namespace cohort::bpe
