#!/usr/bin/env bash
# The reward protocol (docs/reward-protocol.md) end to end against examples/reward_server_python: its
# client_check.py against its server.py (with and without a token), then the branches a conformance client
# cannot reach alone: timeouts, overload, a graceful SIGTERM, hostile frames, start-up errors.
# Usage: tests/cli/reward_python_test.sh [PATH/TO/cohort]   (cohort only for the training section at the end)
# Prints "N passed, M failed"; skips when Python's protobuf package is neither importable nor installable.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/examples/reward_server_python"
COHORT=${1:+$(realpath "$1")}
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# A Python that imports google.protobuf: the one on PATH, Debian's, or Debian's after installing it.
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && timeout 30 "$candidate" -c 'import google.protobuf' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  if timeout 300 apt-get install -y python3-protobuf >/dev/null 2>&1 &&
      timeout 30 /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
    python=/usr/bin/python3
  else
    echo "reward python: skipped: python3 protobuf not installable"
    exit 0
  fi
fi
if ! command -v protoc >/dev/null 2>&1 && ! timeout 300 apt-get install -y protobuf-compiler >/dev/null 2>&1; then
  echo "reward python: skipped: protoc not installable"
  exit 0
fi

tmp=$(mktemp -d)
server_pids=()
cleanup() {
  for pid in "${server_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# Generate the bindings once, as the README shows, so that each server and client starts quickly.
mkdir -p "$tmp/pb"
protoc --python_out="$tmp/pb" -I "$root" "$root/comm/proto/reward.proto"
export PYTHONPATH="$tmp/pb/comm/proto${PYTHONPATH:+:$PYTHONPATH}"

# start_server NAME ARGS...: starts server.py on a free port; sets $port and $server_pid. Waits at most 20 s
# for its "listening on" line; false if it did not come.
start_server() {
  local name=$1
  shift
  "$python" "$here/server.py" --listen 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  server_pid=$!
  server_pids+=("$server_pid")
  port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/$name.out")
    if [ -n "$port" ] || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "server $name did not start: $(tail -3 "$tmp/$name.err")"
    return 1
  fi
  if [ "$(wc -l <"$tmp/$name.out")" -ne 1 ]; then
    echo "server $name printed more than its one line on stdout: $(head -3 "$tmp/$name.out")"
    return 1
  fi
}

# stop_server NAME: SIGTERM, then waits at most 20 s for the exit; true if it exited with status 0.
stop_server() {
  local name=$1 status=0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "server $name ignored SIGTERM for 20 s"
    kill -KILL "$server_pid" 2>/dev/null || true
    return 1
  fi
  wait "$server_pid" || status=$?
  if [ "$status" -ne 0 ]; then echo "server $name exited with status $status: $(tail -3 "$tmp/$name.err")"; fi
  [ "$status" -eq 0 ]
}

# The probes that need raw control of the socket or the server's process; one subcommand each.
cat >"$tmp/probe.py" <<'PY'
import json, os, random, signal, socket, struct, sys, time
sys.path.insert(0, os.environ["REWARD_EXAMPLE_DIR"])
from server import ConnectionClosed, encode_frame, load_reward_pb2, read_frame
pb = load_reward_pb2()
port = int(sys.argv[2])
problems = []

def expect(condition, text):
    if not condition:
        problems.append(text)

def connect(handshake=True):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if handshake:
        m = pb.ClientMessage(); m.hello.protocol_version = 1; m.hello.client = "probe"
        reply = request(sock, m)
        assert reply.WhichOneof("body") == "hello", reply
    return sock

def send(sock, message):
    sock.sendall(encode_frame(message if isinstance(message, bytes) else message.SerializeToString()))

def receive(sock, timeout=10):
    return pb.ServerMessage.FromString(read_frame(sock, 1 << 30, timeout, timeout))

def request(sock, message, timeout=10):
    send(sock, message)
    return receive(sock, timeout)

def closed(sock, timeout=10):
    """True if the server closes within timeout having sent nothing more."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False

def score(request_id, functions, samples, deadline_ms=0):
    m = pb.ClientMessage()
    m.score.request_id, m.score.deadline_ms = request_id, deadline_ms
    m.score.functions.extend(functions)
    for i, (completion, metadata, tokens) in enumerate(samples):
        s = m.score.samples.add()
        s.id, s.completion, s.metadata_json, s.completion_tokens = i + 1, completion, metadata, tokens
    return m

def stats():
    m = pb.ClientMessage(); m.stats.SetInParent(); return m

def error_code(reply):
    return pb.Error.Code.Name(reply.error.code) if reply.WhichOneof("body") == "error" else reply.WhichOneof("body")

def reasons(reply):
    out = []
    for result in reply.score.results:
        for s in result.scores:
            out.append(s.value if s.WhichOneof("result") == "value" else pb.NoScoreReason.Name(s.no_score.reason))
    return out

def outcomes():
    """Each function's failure modes, and requests out of range, which keep the connection open."""
    sock = connect()
    reply = request(sock, score(1, ["test_raise", "test_nan", "exact_match"], [(b"42", '{"answer": "42"}', 1)]))
    expect(reasons(reply) == ["FAILED", "FAILED", 1.0], f"raise/nan/exact_match: {reasons(reply)}")
    reply = request(sock, score(2, ["exact_match", "length_under"],
                                [(b"1", "[1, 2]", 1), (b"1", '{"answer": [1]}', 1), (b"1", '{"max_tokens": "x"}', 1),
                                 (b"1", '{"answer": "1", "max_tokens": 1}', 2), (b"1", "1" * 5000 + "{", 1),
                                 (b"1", "[" * 100000 + "]" * 100000, 1), (b"", '{"max_tokens": 3}', 3),
                                 (b"", '{"max_tokens": 3}', 4)]))
    expect(reasons(reply) == ["FAILED", "FAILED", "FAILED", 1.0, "NOT_APPLICABLE", "FAILED", 1.0, 0.0,
                              "FAILED", "FAILED", "FAILED", "FAILED", "NOT_APPLICABLE", 1.0, "NOT_APPLICABLE", 0.0],
           f"hostile metadata, length limits: {reasons(reply)}")
    answers = [("The total is 1,000.", "1000", 1.0), ("5-3", "-3", 0.0), ("5-3=2", 2, 1.0), (" Paris\n", "Paris", 1.0),
               ("so .5", "0.5", 1.0), ("x = -4", "-4", 1.0), ("4 then 5", "4", 0.0), ("", "0", 0.0),
               ("1e3", "1000", 1.0), ("paris", "Paris", 0.0)]
    reply = request(sock, score(3, ["exact_match"], [(c.encode(), json.dumps({"answer": a}), 1) for c, a, _ in answers]))
    expect(reasons(reply) == [want for _, _, want in answers], f"exact_match answers: {reasons(reply)}")
    reply = request(sock, score(4, [], [(b"1", "", 1)]))
    expect(error_code(reply) == "MALFORMED" and reply.error.request_id == 4, f"no functions: {reply}")
    expect(request(sock, stats()).WhichOneof("body") == "stats", "the connection did not survive MALFORMED")

def fuzz():
    """Random payloads in valid frames, and random bytes: the server answers or closes, and survives."""
    rng = random.Random(1234)
    sock = connect()
    for i in range(300):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        try:
            reply = request(sock, payload, timeout=5)
            expect(reply.WhichOneof("body") is not None, f"frame {i}: a reply with no body")
        except (ConnectionClosed, OSError):  # a payload that parsed as a second Hello closes the connection
            sock.close()
            sock = connect()
    sock.close()
    for i in range(20):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(bytes([0x7f]) + bytes(rng.randrange(256) for _ in range(200)))  # a length over 16 MiB
        try:
            expect(error_code(receive(raw)) == "FRAME_TOO_LARGE", "random bytes: not FRAME_TOO_LARGE")
        except (ConnectionClosed, OSError) as e:
            problems.append(f"random bytes: no Error before the close ({e})")
        raw.close()
    sock = connect()
    expect(request(sock, stats()).WhichOneof("body") == "stats", "no stats after the fuzzing")

def frame_limit():
    """Server started with --max-frame-bytes 64: 64 is accepted, 65 refused and closed, the payload unread."""
    sock = connect()
    sized = {len(score(5, ["exact_match"], [(b"x" * k, "", 1)]).SerializeToString()): k for k in range(64)}
    reply = request(sock, score(5, ["exact_match"], [(b"x" * sized[64], "", 1)]))
    expect(reply.WhichOneof("body") == "score", f"a 64-byte frame: {reply}")
    reply = request(sock, score(6, ["exact_match"], [(b"x" * sized[65], "", 1)]))
    expect(error_code(reply) == "FRAME_TOO_LARGE", f"a 65-byte frame: {reply}")
    expect(closed(sock), "the connection stayed open after FRAME_TOO_LARGE")

def timeouts():
    """Server started with --read-timeout 1 --idle-timeout 2."""
    sock = connect(handshake=False)
    sock.sendall(b"\x00\x00")  # half a length, then nothing
    began = time.monotonic()
    expect(closed(sock, 8), "half a frame: not closed")
    elapsed = time.monotonic() - began
    expect(0.8 <= elapsed <= 4, f"half a frame: closed after {elapsed:.1f} s, read timeout 1 s")
    sock = connect()
    sock.sendall(encode_frame(stats().SerializeToString())[:3])
    expect(closed(sock, 8), "half a frame after the handshake: not closed")
    sock = connect()
    time.sleep(1.2)  # under the idle timeout: still served
    expect(request(sock, stats()).WhichOneof("body") == "stats", "a connection idle for 1.2 s of 2 was dropped")
    began = time.monotonic()
    expect(closed(sock, 8), "idle connection: not closed")
    elapsed = time.monotonic() - began
    expect(1.5 <= elapsed <= 5, f"idle connection: closed after {elapsed:.1f} s, idle timeout 2 s")

def overload():
    """Server started with --max-in-flight 1 --max-connections 2 --test-functions."""
    busy = connect()
    send(busy, score(7, ["test_sleep"], [(b"", '{"sleep_ms": 1500}', 1)]))
    time.sleep(0.4)
    other = connect()
    reply = request(other, score(8, ["exact_match"], [(b"1", "", 1)]))
    expect(error_code(reply) == "OVERLOADED" and reply.error.request_id == 8, f"second request: {reply}")
    third = connect(handshake=False)
    m = pb.ClientMessage(); m.hello.protocol_version = 1
    reply = request(third, m)
    expect(error_code(reply) == "OVERLOADED", f"a third connection's Hello: {reply}")
    expect(closed(third), "an OVERLOADED Hello left the connection open")
    expect(reasons(receive(busy)) == [1.0], "the busy request was not scored")
    expect(request(other, stats()).WhichOneof("body") == "stats", "OVERLOADED closed the connection")
    reply = request(other, score(9, ["exact_match"], [(b"1", "", 1)]))
    expect(reply.WhichOneof("body") == "score", f"after the busy request ended: {reply}")

def drain():
    """SIGTERM with a request in flight: it finishes; a new request gets SHUTTING_DOWN; new connections are refused."""
    server_pid = int(sys.argv[3])
    busy, idle = connect(), connect()
    send(busy, score(10, ["test_sleep", "exact_match"], [(b"7", '{"sleep_ms": 2500, "answer": 7}', 1)],
                     deadline_ms=10000))
    time.sleep(0.3)
    os.kill(server_pid, signal.SIGTERM)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.05)
        except OSError:
            break
    else:
        problems.append("the server still accepted connections 5 s after SIGTERM")
    reply = request(idle, stats())
    expect(error_code(reply) == "SHUTTING_DOWN", f"a request while draining: {reply}")
    expect(closed(idle), "SHUTTING_DOWN left the connection open")
    reply = receive(busy)
    expect(reasons(reply) == [1.0, 1.0], f"the request in flight: {reply}")
    expect(closed(busy), "the drained server left the connection open")

{"outcomes": outcomes, "fuzz": fuzz, "frame_limit": frame_limit, "timeouts": timeouts, "overload": overload,
 "drain": drain}[sys.argv[1]]()
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
PY
export REWARD_EXAMPLE_DIR="$here"
probe() { timeout 120 "$python" "$tmp/probe.py" "$@" >"$tmp/probe_$1.log" 2>&1; }

# 1. The conformance client against the server without a token: every branch of the conversation, the
#    answer checks of exact_match and a deadline.
if start_server plain --test-functions; then
  if timeout 120 "$python" "$here/client_check.py" --connect "127.0.0.1:$port" --expect-answer-function exact_match \
      --timeout-function test_sleep >"$tmp/check_plain.log" 2>&1; then ok; else
    fail "client_check against server.py: $(grep -E '^FAIL' "$tmp/check_plain.log" | head -5; tail -2 "$tmp/check_plain.log")"
  fi
  printf 'unexpected\n' >"$tmp/unexpected_token"
  status=0
  timeout 60 "$python" "$here/client_check.py" --connect "127.0.0.1:$port" --token-file "$tmp/unexpected_token" \
    >"$tmp/check_unexpected.log" 2>&1 || status=$?
  if [ "$status" -eq 2 ] && grep -q "UNAUTHENTICATED" "$tmp/check_unexpected.log"; then ok; else
    fail "a token sent to a server without one: status $status, $(tail -2 "$tmp/check_unexpected.log")"
  fi
  if probe outcomes "$port"; then ok; else fail "outcomes: $(cat "$tmp/probe_outcomes.log")"; fi
  if probe fuzz "$port"; then ok; else fail "fuzz: $(tail -5 "$tmp/probe_fuzz.log")"; fi
  if stop_server plain; then ok; else fail "SIGTERM of an idle server"; fi
  grep -q "Traceback" "$tmp/plain.err" && fail "the server printed a traceback: $(grep -A5 Traceback "$tmp/plain.err" | head -8)" || ok
else
  fail "server.py did not start"
fi

# 2. A token: the right one is accepted (client_check also sends a wrong and an empty one); a client with a
#    wrong token is refused with UNAUTHENTICATED.
printf 's3cret \n\n' >"$tmp/token"
printf 'wrong\n' >"$tmp/wrong_token"
if start_server token --token-file "$tmp/token"; then
  if timeout 120 "$python" "$here/client_check.py" --connect "127.0.0.1:$port" --token-file "$tmp/token" \
      --expect-answer-function exact_match >"$tmp/check_token.log" 2>&1; then ok; else
    fail "client_check with the token: $(grep -E '^FAIL' "$tmp/check_token.log" | head -5)"
  fi
  status=0
  timeout 60 "$python" "$here/client_check.py" --connect "127.0.0.1:$port" --token-file "$tmp/wrong_token" \
    >"$tmp/check_wrong.log" 2>&1 || status=$?
  if [ "$status" -eq 2 ] && grep -q "UNAUTHENTICATED" "$tmp/check_wrong.log"; then ok; else
    fail "a wrong token: status $status, $(tail -2 "$tmp/check_wrong.log")"
  fi
  status=0
  timeout 60 "$python" "$here/client_check.py" --connect "127.0.0.1:$port" >"$tmp/check_none.log" 2>&1 || status=$?
  if [ "$status" -eq 2 ] && grep -q "UNAUTHENTICATED" "$tmp/check_none.log"; then ok; else
    fail "no token: status $status, $(tail -2 "$tmp/check_none.log")"
  fi
  grep -q "s3cret" "$tmp/token.err" "$tmp/token.out" && fail "the server logged the token" || ok
  stop_server token && ok || fail "SIGTERM of the token server"
else
  fail "server.py --token-file did not start"
fi

# 3. The frame limit at its edge: a payload of exactly --max-frame-bytes is read, one byte more is refused.
if start_server small --max-frame-bytes 64; then
  if probe frame_limit "$port"; then ok; else fail "frame_limit: $(cat "$tmp/probe_frame_limit.log")"; fi
  stop_server small && ok || fail "SIGTERM of the small-frame server"
else
  fail "server.py --max-frame-bytes 64 did not start"
fi

# 4. The read and idle timeouts drop slow and silent peers without a reply.
if start_server slow --read-timeout 1 --idle-timeout 2s; then
  if probe timeouts "$port"; then ok; else fail "timeouts: $(cat "$tmp/probe_timeouts.log")"; fi
  stop_server slow && ok || fail "SIGTERM of the timeout server"
else
  fail "server.py with short timeouts did not start"
fi

# 5. Overload: one request scored at a time, two connections at most.
if start_server busy --max-in-flight 1 --max-connections 2 --test-functions; then
  if probe overload "$port"; then ok; else fail "overload: $(cat "$tmp/probe_overload.log")"; fi
  stop_server busy && ok || fail "SIGTERM of the overload server"
else
  fail "server.py --max-in-flight 1 did not start"
fi

# 6. SIGTERM while a request is in flight: it is answered, new requests get SHUTTING_DOWN, the exit is clean.
if start_server drain --test-functions; then
  if probe drain "$port" "$server_pid"; then ok; else fail "drain: $(cat "$tmp/probe_drain.log")"; fi
  status=0
  for _ in $(seq 200); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$server_pid" 2>/dev/null; then
    fail "the draining server had not exited 20 s after SIGTERM"
  else
    wait "$server_pid" || status=$?
    [ "$status" -eq 0 ] && ok || fail "the drained server exited with status $status: $(tail -3 "$tmp/drain.err")"
  fi
else
  fail "server.py for the drain did not start"
fi

# 7. Start-up errors are messages, not tracebacks.
: >"$tmp/empty_token"
status=0
timeout 60 "$python" "$here/server.py" --listen 127.0.0.1:0 --token-file "$tmp/empty_token" >/dev/null 2>"$tmp/empty.err" ||
  status=$?
if [ "$status" -ne 0 ] && grep -q "is empty" "$tmp/empty.err"; then ok; else fail "an empty token file: status $status"; fi
status=0
timeout 60 "$python" "$here/server.py" --listen 127.0.0.1:nonsense >/dev/null 2>"$tmp/listen.err" || status=$?
if [ "$status" -eq 2 ] && grep -q "not HOST:PORT" "$tmp/listen.err"; then ok; else fail "a bad --listen: status $status"; fi

# ---- cohort trains a few steps against server.py (remote rewards over the protocol) ----------------------
if [ -n "$COHORT" ] && start_server train; then
  for i in $(seq 0 15); do echo "{\"prompt\": \"$i+1=\", \"answer\": \"$((i + 1))\"}"; done >"$tmp/plain.jsonl"
  cat >"$tmp/remote.yaml" <<YAML
model: {size: tiny}
data: {train: $tmp/plain.jsonl}
rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 4}
reward: {on_unavailable: stop}
rewards: [{name: accuracy, kind: remote, function: exact_match}, {name: short, kind: remote, function: length_under}]
train: {steps: 3}
YAML
  if timeout 600 "$COHORT" train "$tmp/remote.yaml" "reward.endpoints=[127.0.0.1:$port]" run.name=remote \
    run.dir="$tmp/runs" >"$tmp/train.log" 2>&1; then ok; else fail "train against server.py: $(tail -3 "$tmp/train.log")"; fi
  # Every sample got its remote scores: length_under always scores, and nothing was lost.
  if python3 - "$tmp/runs/remote/metrics.jsonl" <<'PY'; then ok; else fail "remote reward metrics"; fi
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [r for r in rows if "reward/short/scored" in r]
assert len(steps) == 3, rows
assert all(r["reward/short/scored"] == 1.0 and r["reward/unscored/unavailable"] == 0 for r in steps), steps
PY
  stop_server train && ok || fail "SIGTERM of the training server"
fi

echo "reward python: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
