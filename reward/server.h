// The reward server (`cohort reward-server`): serves a RewardSet's functions over the reward protocol
// (docs/reward-protocol.md) on Boost.Asio. One I/O thread reads and writes every connection; requests are
// scored on a pool of threads (isolated functions in the RewardSet's worker processes). A connection
// whose frame stalls past the read timeout, or that stays idle past the idle timeout, is dropped; a
// frame over the size limit is refused and its connection closed; stop() (SIGTERM) stops accepting,
// lets requests in flight finish and answer, then returns from run().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/proto/reward.pb.h"
#include "reward/frame.h"
#include "reward/reward_function.h"

namespace cohort::reward {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // HOST:PORT; port 0 picks a free one
  std::string token;                       // required in the Hello when not empty
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;
  double read_timeout_s = 10;      // a frame that has begun must arrive within this
  double idle_timeout_s = 300;     // a connection with no request for this long is closed
  double default_deadline_s = 30;  // a request's deadline when it names none
  int64_t threads = 0;             // scoring threads (0: the cores)
  int64_t max_connections = 1024;  // further connections are closed at once
  bool handle_signals = false;     // SIGTERM and SIGINT call stop()
};

// Counters and latency histograms behind the StatsReply; thread safe.
class ServerStats {
 public:
  explicit ServerStats(std::vector<std::string> functions);
  ~ServerStats();
  void connection_opened();
  void connection_closed();
  void error_sent();
  // One answered request: the outcome of every (sample, function) and the request's latency.
  void request_answered(const std::vector<size_t>& which, const OutcomeMatrix& outcomes, double latency_ms);
  v1::StatsReply snapshot(int64_t workers_replaced) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The protocol of one connection without its socket: a frame in, a reply out. The server and the
// fuzz target drive it.
class RequestHandler {
 public:
  RequestHandler(const RewardSet& functions, const ServerOptions& options, ServerStats& stats);
  struct Reply {
    std::string payload;  // a serialized ServerMessage
    bool close = false;   // close the connection once it is written
  };
  // `handshaken` is the connection's state, updated by a good Hello.
  Reply handle(const std::string& frame, bool& handshaken, std::chrono::steady_clock::time_point received,
               bool draining) const;
  Reply frame_too_large(uint32_t length) const;

 private:
  const RewardSet& functions_;
  const ServerOptions& options_;
  ServerStats& stats_;
};

class RewardServer {
 public:
  // Binds the listening socket (throws RewardConfigError when it cannot).
  RewardServer(RewardSet functions, ServerOptions options);
  ~RewardServer();
  uint16_t port() const;
  // Serves until stop(); returns once the requests in flight have been answered.
  void run();
  // Safe from any thread.
  void stop();
  v1::StatsReply stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Constant-time equality of two byte strings (the time depends on the lengths only).
bool same_secret(std::string_view a, std::string_view b);

}  // namespace cohort::reward
