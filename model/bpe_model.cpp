// BPE merging, its hash tables and its per-thread word cache.

#include "model/bpe_model.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace cohort::bpe {

namespace {

constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();

uint64_t mix(uint64_t h) {
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

// Words of up to this many bytes are merged by rescanning a rank array (no allocation, and faster
// than a heap at that size); longer ones go through the heap.
constexpr size_t kShortWord = 48;

}  // namespace

uint64_t hash_bytes(std::string_view bytes) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (bytes.size() * 0xC2B2AE3D27D4EB4Full);
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ word) * 0x9FB21C651E98DF25ull;
    h ^= h >> 29;
  }
  if (i < bytes.size()) {
    uint64_t word = 0;
    std::memcpy(&word, bytes.data() + i, bytes.size() - i);
    h = (h ^ word) * 0x9FB21C651E98DF25ull;
  }
  return mix(h);
}

void StringTable::insert(std::string_view key, int32_t value) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t hash = hash_bytes(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    Slot& slot = slots_[i];
    if (slot.value < 0) {
      slot = Slot{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value};
      arena_.append(key);
      ++count_;
      return;
    }
    if (slot.hash == hash && std::string_view(arena_).substr(slot.offset, slot.length) == key) {
      slot.value = value;
      return;
    }
  }
}

int32_t StringTable::find(std::string_view key, uint64_t hash) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.value < 0) return -1;
    if (slot.hash == hash && slot.length == key.size() &&
        std::memcmp(arena_.data() + slot.offset, key.data(), key.size()) == 0) {
      return slot.value;
    }
  }
}

void StringTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(64, old.size() * 2), Slot{});
  const size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.value < 0) continue;
    size_t i = slot.hash & mask;
    while (slots_[i].value >= 0) i = (i + 1) & mask;
    slots_[i] = slot;
  }
}

void MergeTable::insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = pair_key(left, right);
  for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    if (slot.key == key) {
      slot.merge = Merge{rank, merged};
      return;
    }
    if (slot.key == kEmpty) {
      slot = Slot{key, Merge{rank, merged}};
      ++count_;
      return;
    }
  }
}

void MergeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  const size_t size = std::max<size_t>(64, old.size() * 2);
  slots_.assign(size, Slot{});
  mask_ = size - 1;
  shift_ = 64 - __builtin_ctzll(size);
  for (const Slot& slot : old) {
    if (slot.key == kEmpty) continue;
    size_t i = slot_of(slot.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = slot;
  }
}

bool WordCache::append(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
  if (slots_.empty()) return false;
  for (size_t i = hash & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
    const Slot& slot = slots_[i];
    if (slot.ids_length == 0) return false;
    if (slot.hash == hash && slot.key_length == word.size() &&
        std::memcmp(keys_.data() + slot.key_offset, word.data(), word.size()) == 0) {
      out.insert(out.end(), ids_.begin() + slot.ids_offset, ids_.begin() + slot.ids_offset + slot.ids_length);
      return true;
    }
  }
}

void WordCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
  if (count == 0 || word.size() > kMaxWordBytes) return;
  if (slots_.empty() || count_ >= kMaxEntries) {
    slots_.assign(kSlots, Slot{});
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }
  size_t i = hash & (kSlots - 1);
  while (slots_[i].ids_length != 0) i = (i + 1) & (kSlots - 1);
  slots_[i] = Slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                   static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + count);
  ++count_;
}

BpeModel::BpeModel(const std::array<int32_t, 256>& byte_ids, MergeTable merges, StringTable words, Options options)
    : byte_ids_(byte_ids), merges_(std::move(merges)), words_(std::move(words)), options_(options) {}

void BpeModel::encode_word(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() == 1 && byte_ids_[static_cast<unsigned char>(word[0])] >= 0) {
    out.push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  const uint64_t hash = hash_bytes(word);
  if (options_.ignore_merges) {
    const int32_t id = words_.find(word, hash);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (cache.append(word, hash, out)) return;

  thread_local std::vector<int32_t> symbols;
  symbols.clear();
  bool previous_unknown = false;
  for (const char c : word) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      symbols.push_back(id);
      previous_unknown = false;
    } else if (options_.unk_id >= 0) {
      if (!(options_.fuse_unk && previous_unknown)) symbols.push_back(options_.unk_id);
      previous_unknown = true;
    }
  }
  merge(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  cache.insert(word, hash, symbols.data(), symbols.size());
}

void BpeModel::merge(std::vector<int32_t>& symbols) const {
  const size_t n = symbols.size();
  if (n < 2) return;
  if (n > kShortWord) {
    merge_long(symbols);
    return;
  }
  // ranks[i] and merged[i] describe the pair (symbols[i], symbols[i + 1]).
  uint32_t ranks[kShortWord];
  int32_t merged[kShortWord];
  const auto look_up = [&](size_t i) {
    const MergeTable::Merge* m = merges_.find(symbols[i], symbols[i + 1]);
    ranks[i] = m ? m->rank : kNoRank;
    merged[i] = m ? m->merged : -1;
  };
  size_t count = n;
  for (size_t i = 0; i + 1 < count; ++i) look_up(i);
  while (count > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < count; ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == kNoRank) break;
    symbols[best] = merged[best];
    for (size_t i = best + 1; i + 1 < count; ++i) {
      symbols[i] = symbols[i + 1];
      ranks[i] = ranks[i + 1];
      merged[i] = merged[i + 1];
    }
    --count;
    if (best > 0) look_up(best - 1);
    if (best + 1 < count) look_up(best);
  }
  symbols.resize(count);
}

void BpeModel::merge_long(std::vector<int32_t>& symbols) const {
  // A doubly linked list over the symbols and a min-heap of candidate merges ordered by (rank,
  // position). An entry is stale once either of its symbols changed; it is then skipped.
  struct Candidate {
    uint32_t rank;
    uint32_t position;
    int32_t left;
    int32_t right;
    int32_t merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : position > o.position; }
  };
  const size_t n = symbols.size();
  thread_local std::vector<int32_t> next, previous;
  thread_local std::vector<Candidate> heap;
  next.resize(n);
  previous.resize(n);
  heap.clear();
  for (size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
    previous[i] = static_cast<int32_t>(i) - 1;
  }
  const auto push = [&](int32_t position) {
    if (position < 0) return;
    const int32_t right = next[position];
    if (right < 0) return;
    const MergeTable::Merge* m = merges_.find(symbols[position], symbols[right]);
    if (!m) return;
    heap.push_back(Candidate{m->rank, static_cast<uint32_t>(position), symbols[position], symbols[right], m->merged});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Candidate top = heap.back();
    heap.pop_back();
    const auto position = static_cast<int32_t>(top.position);
    const int32_t right = next[position];
    if (symbols[position] != top.left || right < 0 || symbols[right] != top.right) continue;
    symbols[position] = top.merged;
    symbols[right] = -1;  // absorbed
    next[position] = next[right];
    if (next[right] >= 0) previous[next[right]] = position;
    push(previous[position]);
    push(position);
  }
  size_t count = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) symbols[count++] = symbols[i];
  symbols.resize(count);
}

}  // namespace cohort::bpe
