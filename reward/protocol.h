// Conversions between the reward protocol's messages (comm/proto/reward.proto) and the reward types:
// a RewardInput as a Sample and back, an Outcome as a FunctionScore and back, and scoring one Sample
// with one function so that nothing the function does (throw, NaN) escapes as anything but an Outcome.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "comm/proto/reward.pb.h"
#include "reward/outcome.h"
#include "reward/reward_function.h"

namespace cohort::reward {

constexpr uint32_t kProtocolVersion = 1;
// Bound on the messages a peer or a function can make us carry.
constexpr size_t kMaxMessageChars = 300;

// metadata_json: the input's metadata already written as JSON text (a group's samples share one row), or
// null to write it here.
void set_sample(v1::Sample* sample, const RewardInput& input, uint64_t id, const std::string* metadata_json = nullptr);
// The metadata as the compact JSON text a Sample carries ("" for null).
std::string metadata_text(const Metadata& metadata);
void set_outcome(v1::FunctionScore* score, const Outcome& outcome);
Outcome outcome_of(const v1::FunctionScore& score);

// Runs `function` on a sample received over the wire. Metadata that is not a JSON object (or empty) is
// a `failed` outcome; a throw or a non-finite score is `failed` with the message; nullopt is
// `not_applicable`.
Outcome score_sample(const RewardFunction& function, const v1::Sample& sample);
// The same for an input already in memory.
Outcome score_input(const RewardFunction& function, const RewardInput& input);

// A message cut to kMaxMessageChars with control characters replaced, safe to log and to send.
std::string printable(std::string_view message);

}  // namespace cohort::reward
