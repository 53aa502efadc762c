// libFuzzer target for the reward server's request handler: any frame, before and after the handshake,
// must give exactly one well-formed ServerMessage (never a crash, a hang or an exception), and a frame
// that is not a Hello must never complete the handshake.
#include <cstddef>
#include <cstdint>
#include <string>

#include "reward/server.h"

namespace {
void check(bool condition) {
  if (!condition) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cohort::reward;
  static const RewardSet functions(nlohmann::json::parse(
      R"([{"name": "accuracy", "kind": "exact_match"}, {"kind": "math_verify"}, {"kind": "format"}])"));
  static ServerOptions options = [] {
    ServerOptions o;
    o.token = "secret";
    return o;
  }();
  static ServerStats stats(functions.names());
  static const RequestHandler handler(functions, options, stats);
  if (size == 0) return 0;
  const std::string frame(reinterpret_cast<const char*>(data) + 1, size - 1);
  bool handshaken = data[0] & 1;
  const bool was = handshaken;
  RequestHandler::Reply reply = handler.handle(frame, handshaken, std::chrono::steady_clock::now(), data[0] & 2);
  v1::ServerMessage message;
  check(message.ParseFromString(reply.payload));
  check(message.body_case() != v1::ServerMessage::BODY_NOT_SET);
  if (!was && handshaken) {
    v1::ClientMessage m;
    check(m.ParseFromString(frame) && m.has_hello() && m.hello().token() == "secret");
  }
  return 0;
}
