// The byte-level BPE model: a pre-token's bytes start as one symbol each and the adjacent pair
// with the lowest merge rank is merged until none is left (ties go to the leftmost pair), exactly
// Hugging Face's BPE::merge_word. Results are cached per word; the tables are open-addressing hash
// maps because the hot loop does one lookup per pair.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::bpe {

uint64_t hash_bytes(std::string_view bytes);

// Byte strings to int32 values (the vocabulary spelled in raw bytes), keys kept in one arena.
class StringTable {
 public:
  // Overwrites the value of a key already present.
  void insert(std::string_view key, int32_t value);
  // The value of `key`, or -1.
  int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }
  int32_t find(std::string_view key, uint64_t hash) const;
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t value = -1;  // -1: empty
  };
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t count_ = 0;
};

// (left id, right id) -> (rank, merged id).
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t merged;
  };
  // A pair already present takes the later rank, as Hugging Face's HashMap collect does.
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged);
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = pair_key(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return &slot.merge;
      if (slot.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t count_ = 0;
};

// Merged ids of recently seen words, for one thread. Bounded: it empties itself when full.
class WordCache {
 public:
  // The cached ids of `word` (hash = hash_bytes(word)) appended to out; false when not cached.
  bool append(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const;
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count);
  // Words longer than this are merged every time: they are rare and would crowd the arena.
  static constexpr size_t kMaxWordBytes = 256;

 private:
  static constexpr size_t kSlots = size_t{1} << 17;
  static constexpr size_t kMaxEntries = kSlots / 2;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0;
    uint32_t key_length = 0;
    uint32_t ids_offset = 0;
    uint32_t ids_length = 0;  // 0: empty (a cached word always has at least one id)
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t count_ = 0;
};

class BpeModel {
 public:
  struct Options {
    bool ignore_merges = false;  // a word that is itself in the vocabulary is one token, merges or not
    int32_t unk_id = -1;         // for a byte whose character is not in the vocabulary; -1 drops it
    bool fuse_unk = false;       // consecutive unknown bytes give one unk id
  };
  BpeModel() = default;
  // byte_ids[b]: the id of byte b's byte-level character, or -1; words: the whole vocabulary in raw
  // bytes (for ignore_merges).
  BpeModel(const std::array<int32_t, 256>& byte_ids, MergeTable merges, StringTable words, Options options);

  // Appends the ids of one pre-token (raw bytes, before the byte-level mapping) to out.
  void encode_word(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const;

  const MergeTable& merges() const { return merges_; }

 private:
  // Merges `symbols` in place.
  void merge(std::vector<int32_t>& symbols) const;
  void merge_long(std::vector<int32_t>& symbols) const;

  std::array<int32_t, 256> byte_ids_{};
  MergeTable merges_;
  StringTable words_;
  Options options_;
};

}  // namespace cohort::bpe
