// Reward scoring throughput and latency of the built-in exact_match function three ways, in one run:
// in this process, through the isolation pool's worker processes, and over loopback to a reward server
// (the protocol, framing and Boost.Asio), at batch 1 and 64 and 1, 8 and 64 connections.
// Goal (issue 12): over loopback at batch 64, at least half the in-process throughput.
//   build/bench/bench_reward [--seconds S] [--server-threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "reward/reward_function.h"
#include "reward/server.h"

using namespace cohort::reward;
using Clock = std::chrono::steady_clock;

namespace {

struct Figures {
  double samples_per_s = 0, p50_ms = 0, p99_ms = 0;
};

// Scores `per_call` samples per call for `seconds`; latency is one call's.
Figures measure(const RewardSet& set, size_t per_call, double seconds) {
  static const Metadata row = {{"answer", "1234"}};
  std::vector<RewardInput> inputs;
  for (size_t i = 0; i < per_call; ++i)
    inputs.push_back({"What is 1000 + 234?", i % 2 ? "<answer>1234</answer>" : "<answer>1243</answer>", row, 6, false});
  std::vector<double> latencies;
  set.score_batch(inputs);  // warm: connections, workers
  const auto start = Clock::now();
  size_t samples = 0;
  while (std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    std::vector<RewardSet::Result> r = set.score_batch(inputs);
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (!r.front().per_function[0]) std::fprintf(stderr, "bench_reward: a sample got no score\n");
    samples += per_call;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto at = [&](double q) { return latencies[std::min(latencies.size() - 1, (size_t)(q * latencies.size()))]; };
  return {samples / elapsed, at(0.5), at(0.99)};
}

void row(const char* how, size_t batch, size_t connections, const Figures& f, double in_process) {
  std::printf("| %-12s | %5zu | %11zu | %12.0f | %8.3f | %8.3f | %6.2fx |\n", how, batch, connections, f.samples_per_s,
              f.p50_ms, f.p99_ms, f.samples_per_s / in_process);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.5;
  int64_t server_threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds"))
      seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--server-threads"))
      server_threads = std::atoll(argv[i + 1]);
  }
  const nlohmann::json local = nlohmann::json::parse(R"([{"name": "accuracy", "kind": "exact_match"}])");
  std::printf("# bench_reward: exact_match, %.1f s per row, server with %lld scoring threads, %u cores\n", seconds,
              (long long)server_threads, std::thread::hardware_concurrency());
  std::printf("| %-12s | %5s | %11s | %12s | %8s | %8s | %7s |\n", "where", "batch", "connections", "samples/s",
              "p50 ms", "p99 ms", "vs in-process");
  std::printf("|---|---|---|---|---|---|---|\n");

  RewardSet in_process(local);
  double base[65] = {};
  for (size_t batch : {1, 64}) {
    Figures f = measure(in_process, batch, seconds);
    base[batch] = f.samples_per_s;
    row("in process", batch, 0, f, f.samples_per_s);
  }

  ServiceOptions isolated;
  isolated.isolate = true;
  isolated.workers = 2;
  RewardSet pool(local, isolated);
  for (size_t batch : {1, 64}) row("isolated", batch, 0, measure(pool, batch, seconds), base[batch]);

  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.threads = server_threads;
  RewardServer server{RewardSet(local), options};
  std::thread serving([&] { server.run(); });
  const std::string endpoint = "127.0.0.1:" + std::to_string(server.port());
  for (size_t batch : {1, 64}) {
    for (size_t connections : {1, 8, 64}) {
      ServiceOptions remote;
      remote.endpoints = {endpoint};
      remote.batch_size = (int64_t)batch;
      remote.connections = (int64_t)connections;
      RewardSet set(nlohmann::json::parse(R"([{"name": "accuracy", "kind": "remote"}])"), remote);
      // One call scores a batch on every connection at once.
      Figures f = measure(set, batch * connections, seconds);
      row("loopback", batch, connections, f, base[batch]);
    }
  }
  server.stop();
  serving.join();
  return 0;
}
