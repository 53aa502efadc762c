// The reward service: framing, the isolation pool (hanging, crashing and memory-hungry plugin functions),
// the Boost.Asio server under 200 concurrent clients with hostile frames, tokens, and the client's
// fail-over and on_unavailable policies.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "reward/client.h"
#include "reward/frame.h"
#include "reward/protocol.h"
#include "reward/server.h"

namespace cohort::reward {
namespace {

using namespace std::chrono_literals;
namespace pb = v1;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

TEST(Frame, RoundTripsWholeAndByteByByte) {
  const std::string payload("hello\0world", 11);
  const std::string frame = encode_frame(payload) + encode_frame("") + encode_frame("x");
  EXPECT_EQ(frame.substr(0, 4), std::string("\0\0\0\x0b", 4));
  FrameDecoder d(100);
  std::vector<std::string> got;
  for (char c : frame) {
    EXPECT_EQ(d.feed(&c, 1), 1u);
    if (auto f = d.next()) got.push_back(*f);
  }
  EXPECT_EQ(got, (std::vector<std::string>{payload, "", "x"}));
  // Several frames in one buffer: feed stops at each frame's end.
  FrameDecoder whole(100);
  size_t used = whole.feed(frame.data(), frame.size());
  EXPECT_EQ(used, 4 + payload.size());
  EXPECT_EQ(*whole.next(), payload);
}

TEST(Frame, OverTheLimitIsRefusedWithoutReadingThePayload) {
  FrameDecoder d(10);
  const std::string frame = encode_frame(std::string(11, 'a'));
  EXPECT_EQ(d.feed(frame.data(), frame.size()), 4u);
  EXPECT_TRUE(d.too_large());
  EXPECT_EQ(d.announced_length(), 11u);
  EXPECT_FALSE(d.next());
}

TEST(Protocol, SampleAndOutcomeRoundTrip) {
  // A null row travels as no text at all (and reads back as an empty object).
  const Metadata none;
  pb::Sample empty;
  set_sample(&empty, RewardInput{"p", "c", none, 1, false}, 1);
  EXPECT_EQ(empty.metadata_json(), "");
  Metadata row = {{"answer", "42"}};
  RewardInput in{"What is 6*7?", "it is 42\xff", row, 7, true};
  pb::Sample s;
  set_sample(&s, in, 9);
  pb::Sample parsed;
  ASSERT_TRUE(parsed.ParseFromString(s.SerializeAsString()));
  EXPECT_EQ(parsed.id(), 9u);
  EXPECT_EQ(parsed.completion(), "it is 42\xff");
  EXPECT_EQ(Metadata::parse(parsed.metadata_json()), row);
  EXPECT_TRUE(parsed.truncated());
  EXPECT_EQ(parsed.completion_tokens(), 7);
  for (const Outcome& o :
       {Outcome::score(0.25), Outcome::none(Unscored::timeout, "slow"), Outcome::none(Unscored::not_applicable)}) {
    pb::FunctionScore f;
    set_outcome(&f, o);
    Outcome back = outcome_of(f);
    EXPECT_EQ(back.reason, o.reason);
    EXPECT_EQ(back.value, o.value);
    EXPECT_EQ(back.message, o.message);
  }
}

const char* kGoodAnswer = "<answer>42</answer>";
Metadata kRow = {{"answer", "42"}};

nlohmann::json isolation_config() {
  return nlohmann::json::parse(R"([
    {"name": "accuracy", "kind": "exact_match", "isolate": true},
    {"kind": "hang", "timeout_s": 0.5},
    {"kind": "crash"},
    {"kind": "hungry"},
    {"name": "plain", "kind": "exact_match"}
  ])");
}

ServiceOptions isolation_options() {
  ServiceOptions o;
  o.plugins = {COHORT_TEST_PLUGIN_HANG, COHORT_TEST_PLUGIN_CRASH, COHORT_TEST_PLUGIN_HUNGRY};
  o.workers = 4;
  o.worker_memory_mb = 256;
  o.timeout_s = 20;
  return o;
}

TEST(IsolationPool, HangCrashAndHungerCostOnlyTheirOwnScores) {
  RewardSet set(isolation_config(), isolation_options());
  EXPECT_EQ(set.placement(0), "isolated");
  EXPECT_EQ(set.placement(1), "isolated");  // a plugin's kind always is
  EXPECT_EQ(set.placement(4), "in process");
  std::vector<RewardInput> inputs;
  for (int i = 0; i < 6; ++i) inputs.push_back({"q", i % 2 ? kGoodAnswer : "<answer>7</answer>", kRow, 3, false});
  testing::internal::CaptureStderr();
  for (int round = 0; round < 2; ++round) {  // the pool recovers: a second batch behaves the same
    const auto t0 = Clock::now();
    std::vector<size_t> all = {0, 1, 2, 3, 4};
    auto out = set.score_outcomes(inputs, all, Clock::now() + 60s);
    const double took = seconds_since(t0);
    ASSERT_EQ(out.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_TRUE(out[i][0].scored()) << out[i][0].message;
      EXPECT_EQ(out[i][0].value, i % 2 ? 1.0 : 0.0);
      EXPECT_EQ(out[i][1].reason, Unscored::timeout) << out[i][1].message;
      EXPECT_EQ(out[i][2].reason, Unscored::crashed) << out[i][2].message;
      EXPECT_NE(out[i][2].message.find("signal 11"), std::string::npos) << out[i][2].message;
      // Over its memory limit the hungry function's malloc fails: an error, or a crash if it touches NULL.
      EXPECT_TRUE(out[i][3].reason == Unscored::failed || out[i][3].reason == Unscored::crashed)
          << unscored_name(out[i][3].reason) << ": " << out[i][3].message;
      ASSERT_TRUE(out[i][4].scored());
      EXPECT_EQ(out[i][4].value, out[i][0].value);
    }
    // Six 0.5 s hangs on at most 4 workers: two waves, not six in a row.
    EXPECT_LT(took, 6.0) << "round " << round;
  }
  testing::internal::GetCapturedStderr();
  EXPECT_GE(set.workers_replaced(), 24);  // 6 hangs and 6 crashes per round
  UnscoredCounts counts = set.unscored_counts();
  EXPECT_EQ(counts.timeout, 12);
  EXPECT_EQ(counts.crashed + counts.failed, 24);
}

TEST(IsolationPool, RequestDeadlineBoundsQueuedTasks) {
  ServiceOptions o = isolation_options();
  o.workers = 1;
  RewardSet set(nlohmann::json::parse(R"([{"kind": "hang", "timeout_s": 10}])"), o);
  std::vector<RewardInput> inputs(3, RewardInput{"q", "a", kRow, 1, false});
  const auto t0 = Clock::now();
  testing::internal::CaptureStderr();
  auto out = set.score_outcomes(inputs, {0}, Clock::now() + 700ms);
  testing::internal::GetCapturedStderr();
  EXPECT_LT(seconds_since(t0), 3.0);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i][0].reason, Unscored::timeout);
}

// ---- Server and client ----------------------------------------------------------------------

struct RunningServer {
  std::unique_ptr<RewardServer> server;
  std::thread thread;
  uint16_t port = 0;
  RunningServer(nlohmann::json config, ServiceOptions service, ServerOptions options) {
    options.listen = "127.0.0.1:0";
    server = std::make_unique<RewardServer>(RewardSet(config, service), options);
    port = server->port();
    thread = std::thread([this] { server->run(); });
  }
  void stop() {
    if (thread.joinable()) {
      server->stop();
      thread.join();
    }
  }
  ~RunningServer() { stop(); }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port); }
};

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, (sockaddr*)&a, sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_raw(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), (ssize_t)bytes.size());
}

pb::ServerMessage exchange(int fd, const pb::ClientMessage& m) {
  write_frame(fd, m.SerializeAsString(), Clock::now() + 10s);
  pb::ServerMessage reply;
  EXPECT_TRUE(reply.ParseFromString(read_frame(fd, 1 << 26, Clock::now() + 20s)));
  return reply;
}

pb::ClientMessage hello(const std::string& token = "") {
  pb::ClientMessage m;
  m.mutable_hello()->set_protocol_version(1);
  m.mutable_hello()->set_token(token);
  return m;
}

pb::ClientMessage score_request(uint64_t id, int samples, const std::string& function = "accuracy") {
  pb::ClientMessage m;
  pb::ScoreRequest* r = m.mutable_score();
  r->set_request_id(id);
  r->add_functions(function);
  for (int i = 0; i < samples; ++i) {
    pb::Sample* s = r->add_samples();
    s->set_id((uint64_t)i);
    s->set_completion((id + i) % 2 ? kGoodAnswer : "<answer>41</answer>");
    s->set_metadata_json(R"({"answer": "42"})");
  }
  return m;
}

// Whether a reply to score_request(id, n) is right.
bool correct_scores(const pb::ServerMessage& reply, uint64_t id, int samples) {
  if (!reply.has_score() || reply.score().request_id() != id || reply.score().results_size() != samples) return false;
  for (int i = 0; i < samples; ++i) {
    const auto& r = reply.score().results(i);
    if (r.id() != (uint64_t)i || r.scores_size() != 1 || !r.scores(0).has_value() ||
        r.scores(0).value() != ((id + i) % 2 ? 1.0 : 0.0))
      return false;
  }
  return true;
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

nlohmann::json accuracy_config() {
  return nlohmann::json::parse(R"([{"name": "accuracy", "kind": "exact_match"}])");
}

TEST(RewardServer, TwoHundredClientsWithHostileFramesAndEveryValidRequestAnswered) {
  ServerOptions options;
  options.max_frame_bytes = 1 << 20;
  options.read_timeout_s = 0.5;
  options.threads = 2;
  RunningServer s(accuracy_config(), {}, options);
  const long rss_before = rss_kb();
  std::atomic<int> valid_answered{0}, valid_wrong{0}, hostile_done{0};
  constexpr int kClients = 200;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      const int fd = connect_to(s.port);
      if (fd < 0) {
        ++valid_wrong;
        return;
      }
      try {
        switch (c % 6) {
          case 0:
          case 1: {  // valid: handshake then requests, some interleaved with malformed frames
            if (!exchange(fd, hello()).has_hello()) throw FrameError("no HelloReply");
            for (int r = 0; r < 5; ++r) {
              const uint64_t id = (uint64_t)(c * 100 + r);
              if (correct_scores(exchange(fd, score_request(id, 1 + r * 7)), id, 1 + r * 7))
                ++valid_answered;
              else
                ++valid_wrong;
              if (c % 6 == 1) {  // a malformed frame keeps the connection in sync
                write_frame(fd, "\xff\xff\xff", Clock::now() + 5s);
                pb::ServerMessage e;
                e.ParseFromString(read_frame(fd, 1 << 20, Clock::now() + 10s));
                if (!e.has_error() || e.error().code() != pb::Error::MALFORMED) ++valid_wrong;
              }
            }
            break;
          }
          case 2:  // truncated: half a frame, then silence (dropped after the read timeout)
            exchange(fd, hello());
            send_raw(fd, std::string("\0\0\0\x40partial", 11));
            break;
          case 3:  // slowloris: a byte at a time
            for (int i = 0; i < 12; ++i) {
              send_raw(fd, std::string(1, '\0'));
              std::this_thread::sleep_for(100ms);
            }
            break;
          case 4: {  // oversized: the length alone is refused
            exchange(fd, hello());
            send_raw(fd, std::string("\x7f\xff\xff\xff", 4));
            pb::ServerMessage e;
            e.ParseFromString(read_frame(fd, 1 << 20, Clock::now() + 10s));
            if (!e.has_error() || e.error().code() != pb::Error::FRAME_TOO_LARGE) ++valid_wrong;
            break;
          }
          case 5: {  // random garbage
            std::string junk(1 + rng() % 3000, '\0');
            for (char& ch : junk) ch = (char)rng();
            send_raw(fd, junk);
            break;
          }
        }
        ++hostile_done;
      } catch (const std::exception& e) {
        if (c % 6 <= 1) ++valid_wrong;
      }
      // Every hostile connection ends: the server closes it (or its reply comes) within the timeouts.
      char buf[256];
      const auto until = Clock::now() + 5s;
      while (Clock::now() < until) {
        timeval tv{0, 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (::recv(fd, buf, sizeof buf, 0) == 0) break;
      }
      ::close(fd);
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(valid_wrong.load(), 0);
  int valid_clients = 0;
  for (int c = 0; c < kClients; ++c) valid_clients += c % 6 <= 1;
  EXPECT_EQ(valid_answered.load(), valid_clients * 5);
  // The server still answers, and its memory did not grow with the hostile frames (the 2 GiB lengths
  // announced were never allocated).
  const int fd = connect_to(s.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(exchange(fd, hello()).has_hello());
  EXPECT_TRUE(correct_scores(exchange(fd, score_request(7, 3)), 7, 3));
  pb::ClientMessage stats;
  stats.mutable_stats();
  pb::ServerMessage st = exchange(fd, stats);
  ::close(fd);
  ASSERT_TRUE(st.has_stats());
  EXPECT_GE(st.stats().requests(), (uint64_t)valid_answered.load());
  EXPECT_GT(st.stats().errors(), 0u);
  EXPECT_LT(rss_kb() - rss_before, 200 * 1024) << "KiB before " << rss_before;
}

TEST(RewardServer, WrongTokenAndWrongVersionAreRefused) {
  ServerOptions options;
  options.token = "s3cret";
  RunningServer s(accuracy_config(), {}, options);
  for (const auto& [m, code] : std::vector<std::pair<pb::ClientMessage, pb::Error::Code>>{
           {hello("wrong"), pb::Error::UNAUTHENTICATED},
           {hello(""), pb::Error::UNAUTHENTICATED},
           {score_request(1, 1), pb::Error::HANDSHAKE_REQUIRED}}) {
    const int fd = connect_to(s.port);
    pb::ServerMessage reply = exchange(fd, m);
    EXPECT_TRUE(reply.has_error());
    EXPECT_EQ(reply.error().code(), code);
    char c;
    EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // then closed
    ::close(fd);
  }
  pb::ClientMessage v2 = hello("s3cret");
  v2.mutable_hello()->set_protocol_version(2);
  int fd = connect_to(s.port);
  EXPECT_EQ(exchange(fd, v2).error().code(), pb::Error::VERSION_MISMATCH);
  ::close(fd);
  fd = connect_to(s.port);
  EXPECT_TRUE(exchange(fd, hello("s3cret")).has_hello());
  EXPECT_EQ(exchange(fd, score_request(3, 1, "nope")).error().code(), pb::Error::UNKNOWN_FUNCTION);
  EXPECT_TRUE(correct_scores(exchange(fd, score_request(4, 2)), 4, 2));  // still open after that
  ::close(fd);

  // Through the client: a wrong token file gives no server, so no score (skip) or the run's end (stop).
  const std::string token_file = testing::TempDir() + "/wrong_token";
  std::ofstream(token_file) << "guess\n";
  ServiceOptions o;
  o.endpoints = {s.endpoint()};
  o.token_file = token_file;
  o.retries = 1;
  RewardSet set(nlohmann::json::parse(R"([{"name": "accuracy", "kind": "remote"}])"), o);
  testing::internal::CaptureStderr();
  RewardSet::Result r = set.score({"q", kGoodAnswer, kRow, 1, false});
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(r.per_function[0]);
  EXPECT_EQ(r.reasons[0], Unscored::unavailable);
  EXPECT_NE(log.find("wrong or missing token"), std::string::npos) << log;
  o.on_unavailable = OnUnavailable::stop;
  RewardSet stopping(nlohmann::json::parse(R"([{"name": "accuracy", "kind": "remote"}])"), o);
  testing::internal::CaptureStderr();
  EXPECT_THROW(stopping.score({"q", kGoodAnswer, kRow, 1, false}), RewardUnavailable);
  testing::internal::GetCapturedStderr();
}

TEST(RewardClient, FailsOverWhenOneOfTwoServersIsKilled) {
  RunningServer a(accuracy_config(), {}, {}), b(accuracy_config(), {}, {});
  ServiceOptions o;
  o.endpoints = {a.endpoint(), b.endpoint()};
  o.batch_size = 8;
  o.connections = 2;
  RewardSet set(nlohmann::json::parse(R"([{"name": "acc", "kind": "remote", "function": "accuracy"},
                                           {"name": "local", "kind": "exact_match"}])"),
                o);
  EXPECT_EQ(set.placement(0), "remote 'accuracy'");
  std::vector<RewardInput> inputs;
  for (int i = 0; i < 64; ++i) inputs.push_back({"q", i % 3 ? kGoodAnswer : "41", kRow, 2, false});
  testing::internal::CaptureStderr();
  for (int round = 0; round < 4; ++round) {
    if (round == 2) a.stop();  // killed mid-run: its pooled connections die with it
    std::vector<RewardSet::Result> results = set.score_batch(inputs);
    for (size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_TRUE(results[i].per_function[0]) << "round " << round << " sample " << i;
      EXPECT_EQ(*results[i].per_function[0], *results[i].per_function[1]);
    }
  }
  EXPECT_EQ(set.unscored_counts().unavailable, 0);
  // Both gone: every remote score is lost, and counted.
  b.stop();
  std::vector<RewardSet::Result> lost = set.score_batch(inputs);
  testing::internal::GetCapturedStderr();
  for (const auto& r : lost) {
    EXPECT_FALSE(r.per_function[0]);
    EXPECT_EQ(r.reasons[0], Unscored::unavailable);
    EXPECT_TRUE(r.per_function[1]);
  }
  EXPECT_EQ(set.unscored_counts().unavailable, 64);
}

TEST(RewardServer, StopFinishesTheRequestInFlight) {
  ServiceOptions service;
  service.plugins = {COHORT_TEST_PLUGIN_HANG};
  RunningServer s(nlohmann::json::parse(R"([{"name": "accuracy", "kind": "exact_match"},
                                             {"kind": "hang", "timeout_s": 1}])"),
                  service, {});
  const int fd = connect_to(s.port);
  ASSERT_TRUE(exchange(fd, hello()).has_hello());
  pb::ClientMessage slow = score_request(5, 2, "hang");
  write_frame(fd, slow.SerializeAsString(), Clock::now() + 5s);
  std::this_thread::sleep_for(200ms);
  std::thread stopper([&] { s.stop(); });
  pb::ServerMessage reply;
  ASSERT_TRUE(reply.ParseFromString(read_frame(fd, 1 << 20, Clock::now() + 20s)));
  stopper.join();
  ASSERT_TRUE(reply.has_score());
  EXPECT_EQ(reply.score().results(0).scores(0).no_score().reason(), pb::TIMEOUT);
  ::close(fd);
  EXPECT_LT(connect_to(s.port), 0);  // no longer listening
}

TEST(RewardServer, ACrashingOrHungryPluginLeavesTheServerServing) {
  ServiceOptions service;
  service.plugins = {COHORT_TEST_PLUGIN_CRASH, COHORT_TEST_PLUGIN_HUNGRY};
  service.worker_memory_mb = 256;
  RunningServer s(nlohmann::json::parse(R"([{"name": "accuracy", "kind": "exact_match"}, {"kind": "crash"},
                                             {"kind": "hungry"}])"),
                  service, {});
  const int fd = connect_to(s.port);
  ASSERT_TRUE(exchange(fd, hello()).has_hello());
  testing::internal::CaptureStderr();
  pb::ClientMessage m = score_request(11, 4);
  m.mutable_score()->add_functions("crash");
  m.mutable_score()->add_functions("hungry");
  pb::ServerMessage reply = exchange(fd, m);
  testing::internal::GetCapturedStderr();
  ASSERT_TRUE(reply.has_score());
  for (int i = 0; i < 4; ++i) {
    const auto& r = reply.score().results(i);
    ASSERT_EQ(r.scores_size(), 3);
    EXPECT_EQ(r.scores(0).value(), (11 + i) % 2 ? 1.0 : 0.0);  // the other function's scores are whole
    EXPECT_EQ(r.scores(1).no_score().reason(), pb::CRASHED);
    EXPECT_TRUE(r.scores(2).no_score().reason() == pb::FAILED || r.scores(2).no_score().reason() == pb::CRASHED);
  }
  EXPECT_TRUE(correct_scores(exchange(fd, score_request(12, 5)), 12, 5));  // and it keeps serving
  ::close(fd);
}

}  // namespace
}  // namespace cohort::reward
