// The reward client: batches, a connection pool per server, deadlines, retries with backoff, fail-over.
#include "reward/client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "reward/frame.h"
#include "reward/protocol.h"

namespace cohort::reward {

namespace {

using namespace std::chrono_literals;

// A request that failed: the text says why (for the warning), retry says whether another try may help.
struct RequestFailed {
  std::string why;
};

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, s)));
}

// The largest reply accepted (a reply carries a few numbers per sample).
constexpr uint32_t kMaxReplyBytes = 1u << 30;

// Allowance on top of a request's server-side deadline for the transfer and the queue.
constexpr auto kReplyGrace = 5s;

}  // namespace

Endpoint parse_endpoint(const std::string& text, const std::string& what) {
  Endpoint e;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw RewardConfigError(what + ": '" + text + "' is not [IPV6]:PORT");
    e.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) throw RewardConfigError(what + ": '" + text + "' is not HOST:PORT");
    e.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  const long value = port.empty() ? -1 : std::strtol(port.c_str(), &end, 10);
  if (value < 0 || value > 65535 || *end != '\0')
    throw RewardConfigError(what + ": '" + text + "': the port must be a number from 0 to 65535");
  e.port = (uint16_t)value;
  return e;
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RewardConfigError("token file '" + path + "' cannot be read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && std::isspace((unsigned char)token.back())) token.pop_back();
  if (token.empty()) throw RewardConfigError("token file '" + path + "' is empty");
  return token;
}

struct RewardClient::Connection {
  int fd = -1;
};

struct RewardClient::Server {
  Endpoint endpoint;
  std::mutex mutex;
  std::vector<int> idle;  // handshaken connections
  Clock::time_point down_until{};
  int failures = 0;  // in a row

  ~Server() {
    for (int fd : idle) ::close(fd);
  }
  void failed() {
    std::lock_guard<std::mutex> lock(mutex);
    ++failures;
    down_until = Clock::now() + seconds(std::min(5.0, 0.1 * std::pow(2.0, failures)));
    for (int fd : idle) ::close(fd);  // a server that failed may have lost them all
    idle.clear();
  }
  void succeeded() {
    std::lock_guard<std::mutex> lock(mutex);
    failures = 0;
    down_until = {};
  }
};

void RewardClient::check_options(const ServiceOptions& o) {
  for (size_t i = 0; i < o.endpoints.size(); ++i)
    parse_endpoint(o.endpoints[i], "reward.endpoints[" + std::to_string(i) + "]");
  if (!o.token_file.empty()) read_token_file(o.token_file);
  if (o.batch_size < 1) throw RewardConfigError("reward.batch_size must be at least 1");
  if (o.connections < 1) throw RewardConfigError("reward.connections must be at least 1");
  if (o.retries < 0) throw RewardConfigError("reward.retries must be at least 0");
  if (!(o.timeout_s > 0)) throw RewardConfigError("reward.timeout_s must be positive");
}

RewardClient::RewardClient(const ServiceOptions& options) : options_(options) {
  check_options(options_);
  if (!options_.token_file.empty()) token_ = read_token_file(options_.token_file);
  for (size_t i = 0; i < options_.endpoints.size(); ++i) {
    auto server = std::make_unique<Server>();
    server->endpoint = parse_endpoint(options_.endpoints[i], "reward.endpoints[" + std::to_string(i) + "]");
    servers_.push_back(std::move(server));
  }
}

RewardClient::~RewardClient() = default;

RewardClient::Connection RewardClient::connect(Server& server, Clock::time_point deadline, v1::HelloReply* hello) {
  const Clock::time_point connect_by = std::min(deadline, Clock::now() + seconds(options_.connect_timeout_s));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(server.endpoint.port);
  if (int rc = getaddrinfo(server.endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw RequestFailed{"cannot resolve " + server.endpoint.text() + ": " + gai_strerror(rc)};
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(connect_by - Clock::now()).count();
      rc = ::poll(&p, 1, (int)std::max<int64_t>(0, left)) == 1 ? 0 : -1;
      int error = rc == 0 ? 0 : ETIMEDOUT;
      socklen_t len = sizeof error;
      if (rc == 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
      errno = error;
      rc = error == 0 ? 0 : -1;
    }
    if (rc != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) throw RequestFailed{"cannot connect to " + server.endpoint.text() + ": " + why};
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  try {
    v1::ClientMessage message;
    message.mutable_hello()->set_protocol_version(kProtocolVersion);
    message.mutable_hello()->set_token(token_);
    message.mutable_hello()->set_client("cohort");
    write_frame(fd, message.SerializeAsString(), connect_by);
    v1::ServerMessage reply;
    if (!reply.ParseFromString(read_frame(fd, kDefaultMaxFrameBytes, connect_by)))
      throw RequestFailed{server.endpoint.text() + " answered the handshake with a malformed message"};
    if (reply.has_error())
      throw RequestFailed{server.endpoint.text() + " refused the connection: " + printable(reply.error().message())};
    if (!reply.has_hello())
      throw RequestFailed{server.endpoint.text() + " did not answer the handshake with a HelloReply"};
    if (hello) *hello = reply.hello();
  } catch (const FrameError& e) {
    ::close(fd);
    throw RequestFailed{"handshake with " + server.endpoint.text() + ": " + e.what()};
  } catch (...) {
    ::close(fd);
    throw;
  }
  return {fd};
}

void RewardClient::give_back(Server& server, Connection connection) {
  std::lock_guard<std::mutex> lock(server.mutex);
  server.idle.push_back(connection.fd);
}

v1::ServerMessage RewardClient::exchange(Server& server, const v1::ClientMessage& message, Clock::time_point deadline) {
  Connection c{-1};
  {
    std::lock_guard<std::mutex> lock(server.mutex);
    if (!server.idle.empty()) {
      c.fd = server.idle.back();
      server.idle.pop_back();
    }
  }
  const bool pooled = c.fd >= 0;
  if (!pooled) c = connect(server, deadline);
  v1::ServerMessage reply;
  try {
    write_frame(c.fd, message.SerializeAsString(), deadline);
    if (!reply.ParseFromString(read_frame(c.fd, kMaxReplyBytes, deadline)))
      throw RequestFailed{server.endpoint.text() + " sent a malformed reply"};
  } catch (const FrameError& e) {
    ::close(c.fd);
    // A pooled connection the server closed meanwhile (idle timeout, restart): once more on a fresh one.
    if (pooled && !e.timed_out) return exchange(server, message, deadline);
    throw RequestFailed{server.endpoint.text() + ": " + e.what()};
  } catch (...) {
    ::close(c.fd);
    throw;
  }
  if (reply.has_error()) {
    ::close(c.fd);  // after an error the server may close; start the next request on a fresh connection
  } else {
    give_back(server, c);
  }
  return reply;
}

v1::HelloReply RewardClient::hello(size_t endpoint) {
  v1::HelloReply hello;
  try {
    Connection c = connect(*servers_.at(endpoint), Clock::now() + seconds(options_.connect_timeout_s), &hello);
    give_back(*servers_[endpoint], c);
  } catch (const RequestFailed& e) {
    throw RewardUnavailable(e.why);
  }
  return hello;
}

v1::StatsReply RewardClient::stats(size_t endpoint) {
  v1::ClientMessage message;
  message.mutable_stats();
  try {
    v1::ServerMessage reply = exchange(*servers_.at(endpoint), message, Clock::now() + 30s);
    if (!reply.has_stats()) throw RewardUnavailable(servers_[endpoint]->endpoint.text() + " did not answer with stats");
    return reply.stats();
  } catch (const RequestFailed& e) {
    throw RewardUnavailable(e.why);
  }
}

OutcomeMatrix RewardClient::score(const std::vector<RewardInput>& inputs, const std::vector<std::string>& functions,
                                  double timeout_s, Clock::time_point deadline) {
  const size_t n = inputs.size(), batch = (size_t)options_.batch_size;
  OutcomeMatrix out(n, functions.size());
  const size_t chunks = (n + batch - 1) / batch;
  std::atomic<size_t> next_chunk{0};
  std::mutex failure_mutex;
  std::exception_ptr config_failure;  // UNKNOWN_FUNCTION and the like: no retry helps
  std::string unavailable_why;        // under stop: the first chunk no server answered

  auto run_chunk = [&](size_t chunk) {
    const size_t begin = chunk * batch, end = std::min(n, begin + batch);
    google::protobuf::Arena arena;  // the request's many small messages: no malloc and free each
    v1::ClientMessage& message = *google::protobuf::Arena::CreateMessage<v1::ClientMessage>(&arena);
    v1::ScoreRequest* request = message.mutable_score();
    request->set_request_id(next_request_id_++);
    const Metadata* row = nullptr;  // a group's completions share their row: write its JSON once
    std::string row_json;
    for (size_t i = begin; i < end; ++i) {
      if (&inputs[i].metadata != row) row = &inputs[i].metadata, row_json = metadata_text(*row);
      set_sample(request->add_samples(), inputs[i], i - begin, &row_json);
    }
    for (const std::string& f : functions) request->add_functions(f);
    request->set_deadline_ms((uint32_t)std::clamp(timeout_s * 1000.0, 1.0, 4e9));
    std::string last_error = "no reward server configured";
    const size_t E = servers_.size();
    for (int64_t attempt = 0; attempt <= options_.retries; ++attempt) {
      if (Clock::now() >= deadline) {
        last_error = "the scoring deadline passed (" + last_error + ")";
        break;
      }
      // The first server not resting after a failure, starting from this chunk's own (spreads the load);
      // when all rest, wait for the first to be back.
      Server* server = nullptr;
      Clock::time_point soonest = Clock::time_point::max();
      for (size_t j = 0; j < E && !server; ++j) {
        Server& s = *servers_[(chunk + attempt + j) % E];
        std::lock_guard<std::mutex> lock(s.mutex);
        if (s.down_until <= Clock::now())
          server = &s;
        else if (s.down_until < soonest)
          soonest = s.down_until, server = nullptr;
      }
      if (!server) {
        std::this_thread::sleep_until(std::min(soonest, deadline));
        for (size_t j = 0; j < E && !server; ++j) {
          Server& s = *servers_[(chunk + attempt + j) % E];
          std::lock_guard<std::mutex> lock(s.mutex);
          if (s.down_until <= Clock::now()) server = &s;
        }
        if (!server) continue;
      }
      if (attempt > 0) ++retried_;
      try {
        const auto request_deadline = std::min(deadline, Clock::now() + seconds(timeout_s) + kReplyGrace);
        v1::ServerMessage reply = exchange(*server, message, request_deadline);
        if (reply.has_error()) {
          const v1::Error& e = reply.error();
          if (e.code() == v1::Error::UNKNOWN_FUNCTION || e.code() == v1::Error::MALFORMED) {
            throw RewardConfigError("reward server " + server->endpoint.text() + ": " + printable(e.message()));
          }
          throw RequestFailed{server->endpoint.text() + ": " + v1::Error::Code_Name(e.code()) + ": " +
                              printable(e.message())};
        }
        const v1::ScoreReply& r = reply.score();
        if (!reply.has_score() || r.request_id() != request->request_id() || r.results_size() != (int)(end - begin))
          throw RequestFailed{server->endpoint.text() + " answered with a reply that does not match the request"};
        for (size_t i = begin; i < end; ++i) {
          const v1::SampleScores& scores = r.results((int)(i - begin));
          if (scores.scores_size() != (int)functions.size())
            throw RequestFailed{server->endpoint.text() + " answered with the wrong number of scores"};
          for (size_t k = 0; k < functions.size(); ++k) out[i][k] = outcome_of(scores.scores((int)k));
        }
        server->succeeded();
        return;
      } catch (const RequestFailed& e) {
        last_error = e.why;
        server->failed();
      }
    }
    ++unavailable_;
    std::fprintf(stderr, "cohort reward: WARNING: no reward server scored %zu samples after %lld attempts: %s\n",
                 end - begin, (long long)options_.retries + 1, last_error.c_str());
    for (size_t i = begin; i < end; ++i)
      for (size_t k = 0; k < functions.size(); ++k)
        out[i][k] = Outcome::none(Unscored::unavailable, "no reward server answered: " + last_error);
    if (options_.on_unavailable == OnUnavailable::stop) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (unavailable_why.empty()) unavailable_why = last_error;
    }
  };
  auto worker = [&] {
    for (size_t chunk; (chunk = next_chunk++) < chunks;) {
      try {
        run_chunk(chunk);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!config_failure) config_failure = std::current_exception();
      }
    }
  };
  // The caller takes chunks too; helpers come from a pool kept for the client's life (a thread started per
  // call costs more than scoring a batch of a cheap function).
  const size_t threads = std::min(chunks, (size_t)options_.connections * servers_.size());
  std::latch helpers_done((std::ptrdiff_t)(threads > 0 ? threads - 1 : 0));
  if (threads > 1) {
    std::call_once(helpers_once_, [&] {
      helpers_ = std::make_unique<boost::asio::thread_pool>((size_t)options_.connections * servers_.size() - 1);
    });
    for (size_t t = 1; t < threads; ++t) {
      boost::asio::post(*helpers_, [&] {
        worker();
        helpers_done.count_down();
      });
    }
  }
  worker();
  helpers_done.wait();
  if (config_failure) std::rethrow_exception(config_failure);
  if (!unavailable_why.empty())
    throw RewardUnavailable("no reward server could score (reward.on_unavailable: stop): " + unavailable_why);
  return out;
}

}  // namespace cohort::reward
