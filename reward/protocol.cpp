// The reward protocol's message conversions and the one place a function's result becomes an Outcome.
#include "reward/protocol.h"

#include <cmath>

namespace cohort::reward {

const char* unscored_name(Unscored reason) {
  switch (reason) {
    case Unscored::none:
      return "scored";
    case Unscored::not_applicable:
      return "not_applicable";
    case Unscored::failed:
      return "failed";
    case Unscored::timeout:
      return "timeout";
    case Unscored::crashed:
      return "crashed";
    case Unscored::unavailable:
      return "unavailable";
  }
  return "unknown";
}

int64_t& UnscoredCounts::operator[](Unscored reason) {
  switch (reason) {
    case Unscored::failed:
      return failed;
    case Unscored::timeout:
      return timeout;
    case Unscored::crashed:
      return crashed;
    case Unscored::unavailable:
      return unavailable;
    default:
      return not_applicable;
  }
}

UnscoredCounts UnscoredCounts::operator-(const UnscoredCounts& e) const {
  return {not_applicable - e.not_applicable, failed - e.failed, timeout - e.timeout, crashed - e.crashed,
          unavailable - e.unavailable};
}

std::string printable(std::string_view message) {
  std::string out(message.substr(0, kMaxMessageChars));
  for (char& c : out) {
    if ((unsigned char)c < 0x20 || c == 0x7f) c = ' ';
  }
  if (message.size() > kMaxMessageChars) out += "...";
  return out;
}

std::string metadata_text(const Metadata& metadata) {
  return metadata.is_null() ? std::string() : metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void set_sample(v1::Sample* sample, const RewardInput& input, uint64_t id, const std::string* metadata_json) {
  sample->set_id(id);
  sample->set_prompt(input.prompt.data(), input.prompt.size());
  sample->set_completion(input.completion.data(), input.completion.size());
  if (metadata_json)
    sample->set_metadata_json(*metadata_json);
  else
    sample->set_metadata_json(metadata_text(input.metadata));
  sample->set_completion_tokens(input.completion_tokens);
  sample->set_truncated(input.truncated);
}

void set_outcome(v1::FunctionScore* score, const Outcome& outcome) {
  if (outcome.scored()) {
    score->set_value(outcome.value);
    return;
  }
  v1::NoScore* none = score->mutable_no_score();
  none->set_reason((v1::NoScoreReason)outcome.reason);
  none->set_message(printable(outcome.message));
}

Outcome outcome_of(const v1::FunctionScore& score) {
  if (score.result_case() == v1::FunctionScore::kValue) {
    if (!std::isfinite(score.value())) return Outcome::none(Unscored::failed, "a non-finite score");
    return Outcome::score(score.value());
  }
  if (score.result_case() != v1::FunctionScore::kNoScore) return Outcome::none(Unscored::failed, "an empty score");
  const int reason = score.no_score().reason();
  const Unscored r = reason >= 1 && reason <= 5 ? (Unscored)reason : Unscored::failed;
  return Outcome::none(r, printable(score.no_score().message()));
}

Outcome score_input(const RewardFunction& function, const RewardInput& input) {
  try {
    std::optional<double> value = function.score(input);
    if (!value) return Outcome::none(Unscored::not_applicable);
    if (!std::isfinite(*value)) return Outcome::none(Unscored::failed, "returned a non-finite score");
    return Outcome::score(*value);
  } catch (const std::exception& e) {
    return Outcome::none(Unscored::failed, printable(e.what()));
  } catch (...) {
    return Outcome::none(Unscored::failed, "threw a non-standard exception");
  }
}

Outcome score_sample(const RewardFunction& function, const v1::Sample& sample) {
  Metadata metadata = Metadata::object();
  if (!sample.metadata_json().empty()) {
    try {
      metadata = Metadata::parse(sample.metadata_json());
    } catch (const std::exception& e) {
      return Outcome::none(Unscored::failed, "metadata_json is not valid JSON: " + printable(e.what()));
    }
    if (!metadata.is_object()) return Outcome::none(Unscored::failed, "metadata_json is not a JSON object");
  }
  RewardInput input{sample.prompt(), sample.completion(), metadata, sample.completion_tokens(), sample.truncated()};
  return score_input(function, input);
}

}  // namespace cohort::reward
