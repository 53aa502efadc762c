// The reward server: the protocol's state machine (RequestHandler) and its Boost.Asio transport.
#include "reward/server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio.hpp>

#include "reward/client.h"
#include "reward/protocol.h"

namespace cohort::reward {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

bool same_secret(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? (unsigned char)a[i] : 0, y = i < b.size() ? (unsigned char)b[i] : 0;
    diff |= (unsigned char)(x ^ y);
  }
  return diff == 0;
}

// ---- Stats -----------------------------------------------------------------------------------

namespace {
// Latency histogram: bucket b holds latencies up to 2^(b/4) microseconds.
constexpr int kBuckets = 128;
int bucket_of(double ms) {
  const double us = std::max(1.0, ms * 1000.0);
  return std::min(kBuckets - 1, (int)std::ceil(4.0 * std::log2(us)));
}
double bucket_ms(int b) {
  return std::pow(2.0, b / 4.0) / 1000.0;
}
}  // namespace

struct ServerStats::Impl {
  struct Function {
    std::string name;
    uint64_t scored = 0, no_score = 0, failed = 0, timeouts = 0, crashes = 0;
    std::array<uint64_t, kBuckets> latency{};
    uint64_t samples = 0;
  };
  mutable std::mutex mutex;
  Clock::time_point started = Clock::now();
  uint64_t open = 0, total = 0, requests = 0, errors = 0;
  std::vector<Function> functions;
};

ServerStats::ServerStats(std::vector<std::string> functions) : impl_(std::make_unique<Impl>()) {
  for (std::string& name : functions) impl_->functions.push_back({std::move(name)});
}
ServerStats::~ServerStats() = default;

void ServerStats::connection_opened() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->open, ++impl_->total;
}
void ServerStats::connection_closed() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  --impl_->open;
}
void ServerStats::error_sent() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->errors;
}

void ServerStats::request_answered(const std::vector<size_t>& which, const OutcomeMatrix& outcomes, double latency_ms) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->requests;
  for (size_t k = 0; k < which.size(); ++k) {
    Impl::Function& f = impl_->functions[which[k]];
    ++f.latency[bucket_of(latency_ms)];
    for (size_t i = 0; i < outcomes.size(); ++i) {
      switch (outcomes[i][k].reason) {
        case Unscored::none:
          ++f.scored;
          break;
        case Unscored::not_applicable:
          ++f.no_score;
          break;
        case Unscored::timeout:
          ++f.timeouts;
          break;
        case Unscored::crashed:
          ++f.crashes;
          break;
        default:
          ++f.failed;
          break;
      }
    }
  }
}

v1::StatsReply ServerStats::snapshot(int64_t workers_replaced) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  v1::StatsReply s;
  s.set_uptime_s(std::chrono::duration<double>(Clock::now() - impl_->started).count());
  s.set_connections_open(impl_->open);
  s.set_connections_total(impl_->total);
  s.set_requests(impl_->requests);
  s.set_errors(impl_->errors);
  s.set_workers_replaced((uint64_t)workers_replaced);
  for (const Impl::Function& f : impl_->functions) {
    v1::FunctionStats* out = s.add_functions();
    out->set_name(f.name);
    out->set_scored(f.scored), out->set_no_score(f.no_score), out->set_failed(f.failed);
    out->set_timeouts(f.timeouts), out->set_crashes(f.crashes);
    uint64_t count = 0;
    for (uint64_t c : f.latency) count += c;
    auto percentile = [&](double q) {
      if (count == 0) return 0.0;
      const uint64_t rank = (uint64_t)std::ceil(q * (double)count);
      uint64_t seen = 0;
      for (int b = 0; b < kBuckets; ++b)
        if ((seen += f.latency[b]) >= rank) return bucket_ms(b);
      return bucket_ms(kBuckets - 1);
    };
    out->set_p50_ms(percentile(0.5)), out->set_p90_ms(percentile(0.9)), out->set_p99_ms(percentile(0.99));
  }
  return s;
}

// ---- The protocol ----------------------------------------------------------------------------

RequestHandler::RequestHandler(const RewardSet& functions, const ServerOptions& options, ServerStats& stats)
    : functions_(functions), options_(options), stats_(stats) {}

namespace {
RequestHandler::Reply error_reply(v1::Error::Code code, std::string message, bool close, uint64_t request_id = 0) {
  v1::ServerMessage m;
  v1::Error* e = m.mutable_error();
  e->set_code(code);
  e->set_message(std::move(message));
  e->set_request_id(request_id);
  return {m.SerializeAsString(), close};
}
}  // namespace

RequestHandler::Reply RequestHandler::frame_too_large(uint32_t length) const {
  stats_.error_sent();
  return error_reply(v1::Error::FRAME_TOO_LARGE,
                     "a frame of " + std::to_string(length) + " bytes is over this server's limit of " +
                         std::to_string(options_.max_frame_bytes) + "; the connection is closed",
                     true);
}

RequestHandler::Reply RequestHandler::handle(const std::string& frame, bool& handshaken, Clock::time_point received,
                                             bool draining) const {
  // The request and its reply live on one arena: a 64-sample request is a few hundred small messages
  // and strings, and the heap's malloc and free were a third of the server's time.
  google::protobuf::Arena arena;
  v1::ClientMessage& m = *google::protobuf::Arena::CreateMessage<v1::ClientMessage>(&arena);
  const bool parsed = m.ParseFromString(frame);
  if (!handshaken) {
    if (!parsed || !m.has_hello() || m.hello().protocol_version() != kProtocolVersion ||
        !same_secret(m.hello().token(), options_.token))
      stats_.error_sent();
    if (!parsed || !m.has_hello())
      return error_reply(v1::Error::HANDSHAKE_REQUIRED, "the first message must be a Hello; the connection is closed",
                         true);
    if (m.hello().protocol_version() != kProtocolVersion)
      return error_reply(v1::Error::VERSION_MISMATCH,
                         "this server speaks protocol version " + std::to_string(kProtocolVersion) + ", the client " +
                             std::to_string(m.hello().protocol_version()) + "; the connection is closed",
                         true);
    if (!same_secret(m.hello().token(), options_.token))
      return error_reply(v1::Error::UNAUTHENTICATED,
                         options_.token.empty() ? "this server takes no token" : "wrong or missing token", true);
    handshaken = true;
    v1::ServerMessage reply;
    v1::HelloReply* hello = reply.mutable_hello();
    hello->set_protocol_version(kProtocolVersion);
    hello->set_server("cohort reward-server");
    for (const std::string& name : functions_.names()) hello->add_functions(name);
    hello->set_max_frame_bytes(options_.max_frame_bytes);
    return {reply.SerializeAsString(), false};
  }
  if (!parsed || m.body_case() == v1::ClientMessage::BODY_NOT_SET) {
    stats_.error_sent();
    return error_reply(v1::Error::MALFORMED, parsed ? "a message with no body" : "not a ClientMessage", false);
  }
  if (m.has_hello()) {
    stats_.error_sent();
    return error_reply(v1::Error::HANDSHAKE_REQUIRED, "a second Hello; the connection is closed", true);
  }
  if (m.has_stats()) {
    v1::ServerMessage reply;
    *reply.mutable_stats() = stats_.snapshot(functions_.workers_replaced());
    return {reply.SerializeAsString(), false};
  }
  const v1::ScoreRequest& request = m.score();
  if (draining) {
    stats_.error_sent();
    return error_reply(v1::Error::SHUTTING_DOWN, "the server is shutting down", false, request.request_id());
  }
  if (request.functions_size() == 0) {
    stats_.error_sent();
    return error_reply(v1::Error::MALFORMED, "a ScoreRequest names no function", false, request.request_id());
  }
  std::vector<size_t> which;
  for (const std::string& name : request.functions()) {
    const auto& names = functions_.names();
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      std::string served;
      for (const std::string& n : names) served += (served.empty() ? "" : ", ") + n;
      stats_.error_sent();
      return error_reply(v1::Error::UNKNOWN_FUNCTION,
                         "no function '" + printable(name) + "' on this server; it serves: " + served, false,
                         request.request_id());
    }
    which.push_back((size_t)(it - names.begin()));
  }
  const auto started = Clock::now();
  const double budget_s = request.deadline_ms() > 0 ? request.deadline_ms() / 1000.0 : options_.default_deadline_s;
  const auto deadline = received + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(budget_s));
  // Samples whose metadata is not a JSON object are answered without running any function.
  const int n = request.samples_size();
  std::vector<Metadata> metadata((size_t)n);
  std::vector<std::string> bad((size_t)n);
  std::vector<RewardInput> inputs;
  inputs.reserve((size_t)n);
  std::vector<int> input_of((size_t)n, -1);
  for (int i = 0; i < n; ++i) {
    const v1::Sample& s = request.samples(i);
    if (i > 0 && input_of[(size_t)i - 1] >= 0 && s.metadata_json() == request.samples(i - 1).metadata_json()) {
      // The same row as the previous sample (a group's completions): parsed once.
      const RewardInput& previous = inputs.back();
      input_of[(size_t)i] = (int)inputs.size();
      inputs.push_back({s.prompt(), s.completion(), previous.metadata, s.completion_tokens(), s.truncated()});
      continue;
    }
    metadata[(size_t)i] = Metadata::object();
    if (!s.metadata_json().empty()) {
      try {
        metadata[(size_t)i] = Metadata::parse(s.metadata_json());
        if (!metadata[(size_t)i].is_object()) bad[(size_t)i] = "metadata_json is not a JSON object";
      } catch (const std::exception& e) {
        bad[(size_t)i] = "metadata_json is not valid JSON: " + printable(e.what());
      }
    }
    if (!bad[(size_t)i].empty()) continue;
    input_of[(size_t)i] = (int)inputs.size();
    inputs.push_back({s.prompt(), s.completion(), metadata[(size_t)i], s.completion_tokens(), s.truncated()});
  }
  OutcomeMatrix scored = functions_.score_outcomes(inputs, which, deadline);
  OutcomeMatrix outcomes((size_t)n, which.size());
  for (int i = 0; i < n; ++i) {
    for (size_t k = 0; k < which.size(); ++k) {
      outcomes[(size_t)i][k] = input_of[(size_t)i] >= 0 ? std::move(scored[(size_t)input_of[(size_t)i]][k])
                                                        : Outcome::none(Unscored::failed, bad[(size_t)i]);
    }
  }
  v1::ServerMessage& reply = *google::protobuf::Arena::CreateMessage<v1::ServerMessage>(&arena);
  v1::ScoreReply* r = reply.mutable_score();
  r->set_request_id(request.request_id());
  for (int i = 0; i < n; ++i) {
    v1::SampleScores* sample = r->add_results();
    sample->set_id(request.samples(i).id());
    for (const Outcome& o : outcomes[(size_t)i]) set_outcome(sample->add_scores(), o);
  }
  const auto done = Clock::now();
  r->mutable_timing()->set_queue_ms(std::chrono::duration<double, std::milli>(started - received).count());
  r->mutable_timing()->set_score_ms(std::chrono::duration<double, std::milli>(done - started).count());
  stats_.request_answered(which, outcomes, std::chrono::duration<double, std::milli>(done - received).count());
  return {reply.SerializeAsString(), false};
}

// ---- Transport -------------------------------------------------------------------------------

struct RewardServer::Impl {
  RewardSet functions;
  ServerOptions options;
  ServerStats stats;
  RequestHandler handler;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::thread_pool scoring;
  asio::signal_set signals{io};
  bool draining = false;  // touched on the I/O thread only

  struct Session;
  std::set<std::shared_ptr<Session>> sessions;  // I/O thread only

  Impl(RewardSet f, ServerOptions o)
      : functions(std::move(f)),
        options(std::move(o)),
        stats(functions.names()),
        handler(functions, options, stats),
        scoring((size_t)(options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency()))) {}

  void accept();
  void drain();
};

struct RewardServer::Impl::Session : std::enable_shared_from_this<Session> {
  Impl& server;
  tcp::socket socket;
  asio::steady_timer timer;
  FrameDecoder decoder;
  std::array<char, 65536> buffer{};
  std::string pending;  // bytes read past the frame being answered
  bool handshaken = false, busy = false, writing = false, closing = false, closed = false;
  Clock::time_point frame_started{};

  Session(Impl& s, tcp::socket sock)
      : server(s), socket(std::move(sock)), timer(s.io), decoder(s.options.max_frame_bytes) {}

  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void start() {
    server.stats.connection_opened();
    arm_timer();
    read();
  }

  void close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ignored;
    timer.cancel();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    server.stats.connection_closed();
    server.sessions.erase(shared_from_this());
  }

  // After an error that ends the connection: stop sending, and read and drop what the peer still sends for
  // a moment, so that closing does not reset the connection before the peer has read the error.
  void linger() {
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    closing = true;
    timer.expires_at(Clock::now() + std::chrono::seconds(1));
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->close();
    });
    discard();
  }
  void discard() {
    socket.async_read_some(asio::buffer(buffer),
                           [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                             if (ec) {
                               self->close();
                               return;
                             }
                             self->discard();
                           });
  }

  // Idle between frames, or a frame that has begun: whichever deadline applies now.
  void arm_timer() {
    const bool in_frame = decoder.in_frame();
    if (!in_frame)
      frame_started = {};
    else if (frame_started == Clock::time_point{})
      frame_started = Clock::now();
    timer.expires_at(in_frame ? frame_started + seconds(server.options.read_timeout_s)
                              : Clock::now() + seconds(server.options.idle_timeout_s));
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->closed || (self->busy && !self->writing)) return;
      // Slowloris, idle, or a peer that does not read its reply: dropped.
      if (self->timer.expiry() <= Clock::now()) self->close();
    });
  }

  void read() {
    if (closed) return;
    socket.async_read_some(asio::buffer(buffer),
                           [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                             if (ec) {
                               self->close();
                               return;
                             }
                             self->take(self->buffer.data(), n);
                           });
  }

  // Feeds bytes to the decoder; answers the first complete frame (the rest waits in `pending`).
  void take(const char* data, size_t n) {
    size_t used = decoder.feed(data, n);
    if (decoder.too_large()) {
      answer(server.handler.frame_too_large(decoder.announced_length()));
      return;
    }
    if (std::optional<std::string> frame = decoder.next()) {
      pending.assign(data + used, n - used);
      dispatch(std::move(*frame));
      return;
    }
    arm_timer();
    read();
  }

  void dispatch(std::string frame) {
    busy = true;
    timer.cancel();
    const auto received = Clock::now();
    const bool draining = server.draining;
    // The guard keeps run() going while the request is scored off the I/O thread.
    asio::post(server.scoring, [self = shared_from_this(), frame = std::move(frame), received, draining,
                                guard = asio::make_work_guard(server.io)]() mutable {
      RequestHandler::Reply reply;
      try {
        reply = self->server.handler.handle(frame, self->handshaken, received, draining);
      } catch (const std::exception& e) {
        // RewardUnavailable and the like cannot come from a server's own RewardSet, but nothing a
        // request does may take the server down.
        v1::ServerMessage m;
        m.mutable_error()->set_code(v1::Error::MALFORMED);
        m.mutable_error()->set_message(printable(e.what()));
        reply = {m.SerializeAsString(), false};
      }
      asio::post(self->server.io, [self, reply = std::move(reply)]() mutable { self->answer(std::move(reply)); });
    });
  }

  void answer(RequestHandler::Reply reply) {
    if (closed) return;
    busy = true, writing = true;
    // A reply must be taken within the read timeout too, or the connection goes.
    timer.expires_at(Clock::now() + seconds(server.options.read_timeout_s));
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->writing && !self->closed && self->timer.expiry() <= Clock::now()) self->close();
    });
    auto frame = std::make_shared<std::string>(encode_frame(reply.payload));
    const bool close_after = reply.close;
    asio::async_write(socket, asio::buffer(*frame),
                      [self = shared_from_this(), frame, close_after](const boost::system::error_code& ec, size_t) {
                        self->busy = false, self->writing = false;
                        if (ec || self->closing) {
                          self->close();
                          return;
                        }
                        if (close_after) {
                          self->linger();
                          return;
                        }
                        std::string rest = std::move(self->pending);
                        self->pending.clear();
                        if (!rest.empty()) {
                          self->take(rest.data(), rest.size());
                        } else {
                          self->arm_timer();
                          self->read();
                        }
                      });
  }
};

void RewardServer::Impl::accept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted && acceptor.is_open()) accept();
      return;
    }
    if ((int64_t)sessions.size() >= options.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto session = std::make_shared<Session>(*this, std::move(socket));
      sessions.insert(session);
      session->start();
    }
    accept();
  });
}

void RewardServer::Impl::drain() {
  if (draining) return;
  draining = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  std::vector<std::shared_ptr<Session>> all(sessions.begin(), sessions.end());
  for (const auto& s : all) {
    s->closing = true;
    if (!s->busy) s->close();  // a session answering a request closes once the answer is written
  }
}

RewardServer::RewardServer(RewardSet functions, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(functions), std::move(options))) {
  // libprotobuf logs an ERROR line for every frame with invalid UTF-8 in a string field: a hostile client
  // could flood the log. Such a frame is answered MALFORMED and counted instead.
  google::protobuf::SetLogHandler(nullptr);
  const Endpoint where = parse_endpoint(impl_->options.listen, "--listen");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(where.host == "localhost" ? "127.0.0.1" : where.host, ec);
  if (ec) throw RewardConfigError("--listen: '" + where.host + "' is not an IP address");
  tcp::endpoint endpoint(address, where.port);
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw RewardConfigError("cannot listen on " + impl_->options.listen + ": " + ec.message());
}

RewardServer::~RewardServer() {
  impl_->scoring.join();
}

uint16_t RewardServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void RewardServer::run() {
  if (impl_->options.handle_signals) {
    impl_->signals.add(SIGTERM);
    impl_->signals.add(SIGINT);
    impl_->signals.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) impl_->drain();
    });
  }
  impl_->accept();
  impl_->io.run();
}

void RewardServer::stop() {
  asio::post(impl_->io, [this] { impl_->drain(); });
}

v1::StatsReply RewardServer::stats() const {
  return impl_->stats.snapshot(impl_->functions.workers_replaced());
}

}  // namespace cohort::reward
