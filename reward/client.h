// The reward client: scores samples on remote reward servers (reward.endpoints) over the reward
// protocol. Requests are cut into batches of reward.batch_size samples and sent over a pool of
// connections per server; each request has a deadline; a failed request is retried with backoff on
// the next server (fail-over), and a server that failed is avoided for a while. When no server answers,
// reward.on_unavailable decides: skip gives "no score: unavailable" (counted and warned), stop throws
// RewardUnavailable with the reason, which ends the run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "comm/proto/reward.pb.h"
#include "reward/outcome.h"
#include "reward/reward_function.h"

namespace cohort::reward {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};
// "HOST:PORT" or "[IPv6]:PORT"; throws RewardConfigError naming `what` and the text.
Endpoint parse_endpoint(const std::string& text, const std::string& what);
// The shared secret in a token file: its bytes with trailing whitespace removed; throws when unreadable
// or empty.
std::string read_token_file(const std::string& path);

class RewardClient {
 public:
  explicit RewardClient(const ServiceOptions& options);
  ~RewardClient();
  RewardClient(const RewardClient&) = delete;
  RewardClient& operator=(const RewardClient&) = delete;

  // Checks what can be checked before any connection: endpoints parse, the token file reads, the
  // numbers are in range. Throws RewardConfigError.
  static void check_options(const ServiceOptions& options);

  // outcomes[i][k]: sample i scored by the server function functions[k]. timeout_s bounds each request
  // on the server (its deadline_ms); `deadline` bounds the whole call, retries included.
  OutcomeMatrix score(const std::vector<RewardInput>& inputs, const std::vector<std::string>& functions,
                      double timeout_s, Clock::time_point deadline);

  // One connection's handshake, and a stats request, to endpoint i (throw on failure).
  v1::HelloReply hello(size_t endpoint);
  v1::StatsReply stats(size_t endpoint);

  // Requests sent again after a failure, and requests no server answered.
  int64_t retried() const { return retried_.load(); }
  int64_t unavailable() const { return unavailable_.load(); }

 private:
  struct Server;
  struct Connection;
  Connection connect(Server& server, Clock::time_point deadline, v1::HelloReply* hello = nullptr);
  void give_back(Server& server, Connection connection);
  v1::ServerMessage exchange(Server& server, const v1::ClientMessage& message, Clock::time_point deadline);

  ServiceOptions options_;
  std::string token_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<int64_t> retried_{0}, unavailable_{0};
  std::once_flag helpers_once_;
  std::unique_ptr<boost::asio::thread_pool> helpers_;  // run a call's chunks beside the caller
};

}  // namespace cohort::reward
