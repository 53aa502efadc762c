// Helpers the weight-format tests share: a seeded model whose norms and biases are not their
// initial constants (so a format that drops or swaps them shows), whole-file bytes in and out, and
// the names in a directory.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "model/transformer.h"

namespace cohort::testing {

inline Transformer random_model(const ModelConfig& config, uint64_t seed) {
  Transformer model(config);
  model.init_random(seed);
  // Norm weights init to exactly 1 and biases to 0; give them values that can go wrong.
  for (size_t i = 0; i < model.weights().size(); i += 7) model.weights()[i] = 0.37f * std::sin((float)i) + 1e-3f;
  return model;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), (std::streamsize)bytes.size());
}

// The names of the entries directly in `dir`.
inline std::set<std::string> file_names(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

}  // namespace cohort::testing
