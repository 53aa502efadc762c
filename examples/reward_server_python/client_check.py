#!/usr/bin/env python3
"""Checks that a reward server speaks cohort's reward protocol (docs/reward-protocol.md) as specified.

Points at any server (this directory's server.py, `cohort reward-server`, another language's), runs the
conversation's every branch that a well-behaved server must handle, prints what it saw, and exits 1 if a
reply is not as the specification says (2 if the server cannot be reached or refuses the handshake).

    python3 client_check.py --connect 127.0.0.1:50051 [--token-file FILE] [--function NAME ...]
        [--expect-answer-function exact_match] [--timeout-function test_sleep]
"""

import argparse
import json
import math
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import ConnectionClosed, FrameTimeout, encode_frame, load_reward_pb2, parse_listen, read_frame  # noqa: E402

pb = None  # the generated module, set in main
failures = []


def ok(text):
    print(f"ok    {text}", flush=True)


def fail(text):
    failures.append(text)
    print(f"FAIL  {text}", flush=True)


def check(condition, text):
    (ok if condition else fail)(text)
    return condition


def describe(reply):
    """A ServerMessage in one line."""
    body = reply.WhichOneof("body")
    if body == "error":
        e = reply.error
        return f"Error {pb.Error.Code.Name(e.code)} (request_id {e.request_id}): {e.message}"
    return f"{body}: " + str(getattr(reply, body)).replace("\n", " ")[:300] if body else "a ServerMessage with no body"


def score_text(function_score):
    if function_score.WhichOneof("result") == "value":
        return f"{function_score.value:g}"
    if function_score.WhichOneof("result") == "no_score":
        ns = function_score.no_score
        return f"no score {pb.NoScoreReason.Name(ns.reason)} ({ns.message})"
    return "empty FunctionScore"


class Peer:
    """One connection to the server, with every read bounded by a timeout."""

    def __init__(self, address, timeout):
        self.timeout = timeout
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_bytes(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send(self, message):
        self.send_bytes(encode_frame(message.SerializeToString()))

    def receive(self):
        payload = read_frame(self.sock, 1 << 30, self.timeout, self.timeout)
        reply = pb.ServerMessage()
        reply.ParseFromString(payload)
        return reply

    def request(self, message):
        self.send(message)
        return self.receive()

    def closed_by_server(self):
        """True if the server closes the connection (EOF or reset) within the timeout and sends nothing more."""
        self.sock.settimeout(self.timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def hello_message(token, version=1):
    message = pb.ClientMessage()
    message.hello.protocol_version = version
    message.hello.token = token
    message.hello.client = "client_check.py"
    return message


def score_message(request_id, functions, samples, deadline_ms=0):
    """samples: (id, completion bytes, metadata_json, completion_tokens)."""
    message = pb.ClientMessage()
    request = message.score
    request.request_id = request_id
    request.functions.extend(functions)
    request.deadline_ms = deadline_ms
    for sample_id, completion, metadata, tokens in samples:
        s = request.samples.add()
        s.id, s.prompt, s.completion, s.metadata_json, s.completion_tokens = (
            sample_id, b"What is 6 times 7?", completion, metadata, tokens)
    return message


def stats_message():
    message = pb.ClientMessage()
    message.stats.SetInParent()
    return message


def expect_error(reply, code, what, request_id=None):
    code_name = pb.Error.Code.Name(code)
    good = reply.WhichOneof("body") == "error" and reply.error.code == code
    if good and request_id is not None and reply.error.request_id != request_id:
        return check(False, f"{what}: Error {code_name} carries request_id {reply.error.request_id}, not {request_id}")
    return check(good, f"{what}: {describe(reply) if not good else 'Error ' + code_name + ': ' + reply.error.message}")


def check_score_reply(reply, request, what):
    """The shape every ScoreReply must have; returns the results or None."""
    if reply.WhichOneof("body") != "score":
        fail(f"{what}: expected a ScoreReply, got {describe(reply)}")
        return None
    score = reply.score
    good = check(score.request_id == request.request_id, f"{what}: request_id {score.request_id} echoed")
    good &= check(len(score.results) == len(request.samples),
                  f"{what}: {len(score.results)} results for {len(request.samples)} samples")
    for sample, result in zip(request.samples, score.results):
        if result.id != sample.id:
            good &= check(False, f"{what}: result id {result.id} where sample id {sample.id} was, in order")
        if len(result.scores) != len(request.functions):
            good &= check(False, f"{what}: sample {sample.id}: {len(result.scores)} scores for "
                          f"{len(request.functions)} functions")
        for name, function_score in zip(request.functions, result.scores):
            kind = function_score.WhichOneof("result")
            if kind == "value" and not math.isfinite(function_score.value):
                good &= check(False, f"{what}: sample {sample.id} {name}: non-finite value {function_score.value}")
            elif kind == "no_score" and function_score.no_score.reason not in (
                    pb.NOT_APPLICABLE, pb.FAILED, pb.TIMEOUT, pb.CRASHED):
                good &= check(False, f"{what}: sample {sample.id} {name}: a server may not send "
                              f"{pb.NoScoreReason.Name(function_score.no_score.reason)}")
            elif kind is None:
                good &= check(False, f"{what}: sample {sample.id} {name}: FunctionScore with neither value nor no_score")
    t = score.timing
    good &= check(t.queue_ms >= 0 and t.score_ms >= 0, f"{what}: timing queue {t.queue_ms:.3f} ms, "
                  f"score {t.score_ms:.3f} ms")
    for sample, result in zip(request.samples, score.results):
        print(f"        sample {sample.id}: " + ", ".join(
            f"{name} {score_text(s)}" for name, s in zip(request.functions, result.scores)))
    return score.results if good else None


def run_checks(options, address, token):
    timeout = options.timeout
    peer = Peer(address, timeout)
    reply = peer.request(hello_message(token))
    if reply.WhichOneof("body") != "hello":
        fail(f"handshake: {describe(reply)}")
        return 2
    hello = reply.hello
    check(hello.protocol_version == 1, f"HelloReply: protocol_version {hello.protocol_version}, server "
          f"{hello.server!r}, functions {list(hello.functions)}, max_frame_bytes {hello.max_frame_bytes}")
    check(hello.max_frame_bytes > 0 and len(hello.functions) > 0, "HelloReply: a frame limit and functions")
    functions = options.function or [f for f in hello.functions if not f.startswith("test_")]
    missing = [f for f in functions + [options.expect_answer_function, options.timeout_function]
               if f and f not in hello.functions]
    if missing:
        fail(f"the server does not list {missing}")
        return 1
    scores_sent = errors_sent = 0

    # Scoring: every function on a few samples; then none.
    request = score_message(101, functions, [
        (1, b"6 times 7 is 42", json.dumps({"answer": "42"}), 5),
        (2, b"41", json.dumps({"answer": "42", "max_tokens": 4}), 9),
        (3, b"no idea", "", 2),
        (4, "\u00e9t\u00e9 \U0001F600".encode() + b"\xff\xfe", json.dumps({"answer": "x"}), 3),
    ])
    check_score_reply(peer.request(request), request.score, "score request")
    scores_sent += 1
    request = score_message(102, functions, [])
    results = check_score_reply(peer.request(request), request.score, "score request without samples")
    scores_sent += 1
    check(results is not None and len(results) == 0, "no samples: no results")

    if options.expect_answer_function:
        name = options.expect_answer_function
        cases = [  # (completion, metadata, expected: a value or a set of NoScoreReason names)
            (b"42", {"answer": "42"}, 1.0),
            (b" 42\n", {"answer": "42"}, 1.0),
            (b"42", {"answer": 42}, 1.0),
            (b"41", {"answer": "42"}, 0.0),
            (b"\xff\xfe41\xc3", {"answer": "42"}, 0.0),
            (b"42", {"question": "no reference"}, {"NOT_APPLICABLE", "FAILED"}),
            (b"42", "this is not JSON {", {"FAILED"}),
        ]
        samples = [(10 + i, c, m if isinstance(m, str) else json.dumps(m), 2) for i, (c, m, _) in enumerate(cases)]
        request = score_message(103, [name], samples)
        results = check_score_reply(peer.request(request), request.score, f"{name}: answers")
        scores_sent += 1
        for (completion, metadata, expected), result in zip(cases, results or []):
            s = result.scores[0]
            what = f"{name}: completion {completion!r}, metadata {metadata!r}: {score_text(s)}"
            if isinstance(expected, float):
                check(s.WhichOneof("result") == "value" and s.value == expected, f"{what} (want {expected:g})")
            else:
                check(s.WhichOneof("result") == "no_score" and pb.NoScoreReason.Name(s.no_score.reason) in expected,
                      f"{what} (want no score: {' or '.join(sorted(expected))})")
        if results:
            nr = results[5].scores[0]
            if nr.WhichOneof("result") == "no_score" and nr.no_score.reason == pb.FAILED:
                print("        note: a missing answer gives FAILED; the specification recommends NOT_APPLICABLE")

    if options.timeout_function:
        name = options.timeout_function
        request = score_message(104, [name], [(20, b"", json.dumps({"sleep_ms": 3000}), 1),
                                              (21, b"", json.dumps({"sleep_ms": 3000}), 1)], deadline_ms=300)
        began = time.monotonic()
        results = check_score_reply(peer.request(request), request.score, f"{name}: a 300 ms deadline")
        elapsed = time.monotonic() - began
        scores_sent += 1
        check(elapsed < 2.5, f"{name}: the reply came {elapsed:.2f} s after the request (deadline 0.3 s)")
        for result in results or []:
            s = result.scores[0]
            check(s.WhichOneof("result") == "no_score" and s.no_score.reason == pb.TIMEOUT,
                  f"{name}: sample {result.id}: {score_text(s)} (want TIMEOUT)")

    # Errors that keep the connection open.
    unknown = f"no_such_function_{random.randrange(1 << 30)}"
    reply = peer.request(score_message(105, functions[:1] + [unknown], [(30, b"42", "", 1)]))
    expect_error(reply, pb.Error.UNKNOWN_FUNCTION, f"unknown function {unknown!r}", request_id=105)
    errors_sent += 1
    for what, payload in [("garbage payload ff ff ff ff", b"\xff\xff\xff\xff"),
                          ("empty frame", b""),
                          ("a ClientMessage with only an unknown field (15)", b"\x78\x01")]:
        peer.send_bytes(encode_frame(payload))
        expect_error(peer.receive(), pb.Error.MALFORMED, what)
        errors_sent += 1

    # Stats, which also proves the connection survived the errors.
    reply = peer.request(stats_message())
    if check(reply.WhichOneof("body") == "stats", f"stats after the errors: {describe(reply)[:80]}"):
        stats = reply.stats
        check(stats.requests >= scores_sent, f"stats: requests {stats.requests} >= {scores_sent} answered here")
        check(stats.errors >= errors_sent, f"stats: errors {stats.errors} >= {errors_sent} sent here")
        check(stats.connections_open >= 1 and stats.connections_total >= stats.connections_open,
              f"stats: connections open {stats.connections_open}, total {stats.connections_total}")
        check(stats.uptime_s > 0, f"stats: uptime {stats.uptime_s:.1f} s")
        listed = {f.name: f for f in stats.functions}
        check(all(f in listed for f in functions), f"stats: functions {sorted(listed)}")
        for f in stats.functions:
            print(f"        {f.name}: scored {f.scored}, no_score {f.no_score}, failed {f.failed}, timeouts "
                  f"{f.timeouts}, crashes {f.crashes}, p50 {f.p50_ms:.3f} ms, p90 {f.p90_ms:.3f}, p99 {f.p99_ms:.3f}")

    # Errors that close the connection.
    reply = peer.request(hello_message(token))
    expect_error(reply, pb.Error.HANDSHAKE_REQUIRED, "a second Hello")
    check(peer.closed_by_server(), "a second Hello: the server closed the connection")
    peer.close()

    def fresh(what, send):
        p = Peer(address, timeout)
        try:
            send(p)
            return p.receive(), p
        except (ConnectionClosed, OSError) as e:
            fail(f"{what}: the connection ended without an Error ({e})")
            p.close()
            return None, None

    for what, code, send in [
        ("stats before the Hello", pb.Error.HANDSHAKE_REQUIRED, lambda p: p.send(stats_message())),
        ("score before the Hello", pb.Error.HANDSHAKE_REQUIRED,
         lambda p: p.send(score_message(106, functions, [(40, b"1", "", 1)]))),
        ("garbage before the Hello", pb.Error.HANDSHAKE_REQUIRED, lambda p: p.send_bytes(encode_frame(b"\xff\xff"))),
        ("an empty frame before the Hello", pb.Error.HANDSHAKE_REQUIRED, lambda p: p.send_bytes(encode_frame(b""))),
        ("Hello with protocol_version 2", pb.Error.VERSION_MISMATCH, lambda p: p.send(hello_message(token, 2))),
        ("Hello with protocol_version 0", pb.Error.VERSION_MISMATCH, lambda p: p.send(hello_message(token, 0))),
        (f"a frame announcing {hello.max_frame_bytes + 1} bytes", pb.Error.FRAME_TOO_LARGE,
         lambda p: p.send_bytes(struct.pack(">I", hello.max_frame_bytes + 1) + b"\x0a\x00")),
        ("bytes that are not a frame (an HTTP request)", pb.Error.FRAME_TOO_LARGE,
         lambda p: p.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
    ] + ([("Hello with a wrong token", pb.Error.UNAUTHENTICATED, lambda p: p.send(hello_message(token + b"x"))),
          ("Hello without a token", pb.Error.UNAUTHENTICATED, lambda p: p.send(hello_message(b"")))]
         if token else
         [("Hello with a token, to a server that takes none", pb.Error.UNAUTHENTICATED,
           lambda p: p.send(hello_message(b"unexpected")))]):
        reply, p = fresh(what, send)
        if p is None:
            continue
        expect_error(reply, code, what)
        check(p.closed_by_server(), f"{what}: the server closed the connection")
        p.close()

    # A frame already announced must not wait for the idle timeout: a complete Hello split across writes.
    p = Peer(address, timeout)
    frame = encode_frame(hello_message(token).SerializeToString())
    p.send_bytes(frame[:2])
    time.sleep(0.2)
    p.send_bytes(frame[2:])
    reply = p.receive()
    check(reply.WhichOneof("body") == "hello", f"a Hello split across two writes: {describe(reply)[:60]}")
    p.close()
    return 1 if failures else 0


def main():
    global pb
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", type=parse_listen, default="127.0.0.1:50051", help="the server's HOST:PORT")
    parser.add_argument("--token-file", help="the shared secret (trailing whitespace stripped)")
    parser.add_argument("--function", action="append",
                        help="a function to score with (repeatable); default: the server's, less test_*")
    parser.add_argument("--expect-answer-function",
                        help="an exact_match-like function: 1.0 for the right answer, 0.0 for a wrong one")
    parser.add_argument("--timeout-function",
                        help='a function that sleeps metadata["sleep_ms"] (server.py --test-functions: test_sleep), '
                        "to check that a deadline gives TIMEOUT")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for any one reply")
    parser.add_argument("--proto-dir", help="a directory with a generated reward_pb2.py")
    options = parser.parse_args()
    pb = load_reward_pb2(options.proto_dir)
    token = b""
    if options.token_file:
        with open(options.token_file, "rb") as f:
            token = f.read().rstrip()
    address = options.connect
    try:
        code = run_checks(options, address, token)
    except (ConnectionClosed, FrameTimeout, OSError) as e:
        print(f"FAIL  the conversation with {address[0]}:{address[1]} broke off: {type(e).__name__}: {e}")
        return 2
    print(f"{'FAILED' if code else 'passed'}: {len(failures)} failed checks" if code else "passed: every check")
    return code


if __name__ == "__main__":
    sys.exit(main())
