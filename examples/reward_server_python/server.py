#!/usr/bin/env python3
"""A reward server in plain Python that speaks cohort's reward protocol (docs/reward-protocol.md).

It exists to show that the protocol can be served from outside cohort in a page of code, and it is the
reference the tests point clients at. Standard library plus the `protobuf` package (3.21 or later).

    python3 server.py [--listen 127.0.0.1:50051] [--token-file FILE] [--max-frame-bytes N] ...

It prints exactly one line, `listening on HOST:PORT`, to stdout once it accepts connections; everything
else goes to stderr. SIGTERM or SIGINT drains it: requests in flight finish, new ones get SHUTTING_DOWN.
"""

import argparse
import hmac
import importlib
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

PROTOCOL_VERSION = 1
SERVER_NAME = "cohort example reward server (Python) 0.1"
DEFAULT_MAX_FRAME_BYTES = 16 << 20
NO_SCORE_MESSAGE_BYTES = 256  # a NoScore.message and an Error.message are cut to this many bytes
LATENCY_WINDOW = 65536  # the stats' percentiles are over each function's most recent calls, this many


# ---- The generated protobuf module ----------------------------------------------------------------

def load_reward_pb2(proto_dir=None):
    """Returns the module protoc generates from comm/proto/reward.proto.

    In this order: a reward_pb2.py in proto_dir (or in proto_dir/comm/proto, where
    `protoc --python_out=DIR -I REPO comm/proto/reward.proto` writes it); an importable `reward_pb2`
    (PYTHONPATH); else protoc is run on the repository's comm/proto/reward.proto into a temporary
    directory (removed at exit)."""
    if proto_dir:
        for candidate in (proto_dir, os.path.join(proto_dir, "comm", "proto")):
            if os.path.isfile(os.path.join(candidate, "reward_pb2.py")):
                sys.path.insert(0, candidate)
                return importlib.import_module("reward_pb2")
        sys.exit(f"--proto-dir {proto_dir}: no reward_pb2.py there or in its comm/proto/")
    try:
        return importlib.import_module("reward_pb2")
    except ImportError:
        pass
    try:
        import google.protobuf  # noqa: F401  (a clearer message than protoc's output failing to import)
    except ImportError:
        sys.exit("the Python protobuf package is missing: apt-get install python3-protobuf, or pip install protobuf")
    repo_root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    proto = os.path.join(repo_root, "comm", "proto", "reward.proto")
    if not os.path.isfile(proto):
        sys.exit(f"no reward_pb2 module and no {proto}: give --proto-dir, or keep this script in the cohort tree")
    if shutil.which("protoc"):
        protoc = [shutil.which("protoc")]
    elif importlib.util.find_spec("grpc_tools") is not None:
        protoc = [sys.executable, "-m", "grpc_tools.protoc"]
    else:
        sys.exit("no reward_pb2 module and no protoc: give --proto-dir, or install protoc "
                 "(apt-get install protobuf-compiler, or pip install grpcio-tools)")
    out = tempfile.mkdtemp(prefix="reward_pb2_")
    import atexit
    atexit.register(shutil.rmtree, out, True)
    result = subprocess.run(protoc + [f"--python_out={out}", "-I", repo_root, proto], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"protoc failed on {proto}: {result.stderr.strip()}")
    sys.path.insert(0, os.path.join(out, "comm", "proto"))
    return importlib.import_module("reward_pb2")


# ---- Framing --------------------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed the connection, between frames (clean) or inside one."""


class FrameTimeout(Exception):
    """No byte for the idle timeout between frames, or a begun frame not finished within the read timeout."""


class FrameTooLarge(Exception):
    def __init__(self, length):
        super().__init__(length)
        self.length = length


def encode_frame(payload):
    return struct.pack(">I", len(payload)) + payload


def _recv_exactly(sock, size, deadline):
    chunks, got = [], 0
    while got < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FrameTimeout("a frame did not complete within the read timeout")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(size - got, 1 << 20))
        except socket.timeout:
            raise FrameTimeout("a frame did not complete within the read timeout") from None
        if not chunk:
            raise ConnectionClosed("closed inside a frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(sock, max_frame_bytes, idle_timeout, read_timeout):
    """One frame's payload. Waits up to idle_timeout (None: forever) for its first byte; from that byte the
    whole frame must arrive within read_timeout. A length over max_frame_bytes raises FrameTooLarge before
    any of the payload is read."""
    sock.settimeout(idle_timeout)
    try:
        first = sock.recv(1)
    except socket.timeout:
        raise FrameTimeout("idle") from None
    if not first:
        raise ConnectionClosed("closed")
    deadline = time.monotonic() + read_timeout
    (length,) = struct.unpack(">I", first + _recv_exactly(sock, 3, deadline))
    if length > max_frame_bytes:
        raise FrameTooLarge(length)
    return _recv_exactly(sock, length, deadline) if length else b""


def write_frame(sock, payload, timeout):
    sock.settimeout(timeout)
    sock.sendall(encode_frame(payload))


def cut_utf8(text, limit=NO_SCORE_MESSAGE_BYTES):
    data = text.encode("utf-8", errors="replace")
    return text if len(data) <= limit else data[:limit].decode("utf-8", errors="ignore")


# ---- The reward functions -------------------------------------------------------------------------
# A function takes a ScoringInput and returns a float (the score) or raises NotApplicable; any other
# exception, or a non-finite float, makes the sample FAILED.

class NotApplicable(Exception):
    pass


class ScoringInput:
    __slots__ = ("prompt", "completion", "metadata", "completion_tokens", "truncated")

    def __init__(self, sample):
        # Untrusted bytes: never let a decoding error reach the connection.
        self.prompt = sample.prompt.decode("utf-8", errors="replace")
        self.completion = sample.completion.decode("utf-8", errors="replace")
        self.completion_tokens = sample.completion_tokens
        self.truncated = sample.truncated
        self.metadata = parse_metadata(sample.metadata_json)


class MetadataError(Exception):
    pass


def parse_metadata(text):
    """The dataset row; "" means {}. A MetadataError (every function FAILED) if it is not a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise MetadataError(f"metadata_json is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise MetadataError(f"metadata_json is a JSON {type(value).__name__}, not an object")
    return value


# A number: optional sign (not when it directly follows a letter or digit: "5-3" is an operator), digits
# with optional thousands commas, a decimal part, an exponent.
NUMBER = re.compile(r"(?:(?<![0-9A-Za-z])[-+])?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def as_number(text):
    """The finite float that text spells (the whole of it), or None."""
    if not NUMBER.fullmatch(text):
        return None
    value = float(text.replace(",", ""))
    return value if math.isfinite(value) else None


def same_answer(candidate, reference):
    candidate, reference = candidate.strip(), reference.strip()
    a, b = as_number(candidate), as_number(reference)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return candidate == reference


def exact_match(x):
    """1.0 if the completion's last number, or the whole stripped completion, equals metadata["answer"]."""
    reference = x.metadata.get("answer")
    if reference is None:
        raise NotApplicable('the metadata has no "answer"')
    if isinstance(reference, bool) or not isinstance(reference, (str, int, float)):
        raise TypeError(f'metadata "answer" is a JSON {type(reference).__name__}, not a string or number')
    reference = str(reference)
    last_number = None
    for last_number in NUMBER.finditer(x.completion):
        pass
    candidates = [x.completion] + ([last_number.group(0)] if last_number else [])
    return 1.0 if any(same_answer(c, reference) for c in candidates) else 0.0


def length_under(x):
    """1.0 if completion_tokens <= metadata["max_tokens"] (default 64)."""
    limit = x.metadata.get("max_tokens", 64)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        raise TypeError(f'metadata "max_tokens" is a JSON {type(limit).__name__}, not a number')
    return 1.0 if x.completion_tokens <= limit else 0.0


# --test-functions adds these, to exercise a client's handling of each outcome.
def test_sleep(x):
    """Sleeps metadata["sleep_ms"] (default 1000) milliseconds, then scores 1.0: for deadlines and drains."""
    time.sleep(float(x.metadata.get("sleep_ms", 1000)) / 1000.0)
    return 1.0


def test_raise(x):
    raise RuntimeError("test_raise always raises")


def test_nan(x):
    return float("nan")


FUNCTIONS = {"exact_match": exact_match, "length_under": length_under}
TEST_FUNCTIONS = {"test_sleep": test_sleep, "test_raise": test_raise, "test_nan": test_nan}


# ---- Server state ---------------------------------------------------------------------------------

class FunctionCounters:
    def __init__(self):
        self.scored = self.not_applicable = self.failed = self.timeouts = self.crashes = 0
        self.latencies_ms = deque(maxlen=LATENCY_WINDOW)


def percentile(sorted_values, fraction):
    """Nearest-rank percentile; 0 for no values."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class RewardService:
    """Everything the connections share: the options, the functions, the counters and the drain state."""

    def __init__(self, pb, options, functions):
        self.pb = pb
        self.options = options
        self.functions = functions
        self.token = options.token
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.counters = {name: FunctionCounters() for name in functions}
        self.connections = {}  # socket -> True while a request is being handled on it
        self.connections_total = 0
        self.requests = 0
        self.errors = 0
        self.in_flight = 0  # frames read and not yet answered
        self.scoring = 0    # ScoreRequests being scored (for OVERLOADED)
        self.draining = False
        self.idle = threading.Condition(self.lock)  # notified when in_flight drops

    # -- connection registry, used by the drain to wake idle connections
    def connection_opened(self, sock):
        with self.lock:
            self.connections[sock] = False
            self.connections_total += 1
            return len(self.connections)

    def connection_closed(self, sock):
        with self.lock:
            self.connections.pop(sock, None)

    def begin_frame(self, sock):
        """Marks a frame as in flight; False when draining (the frame gets SHUTTING_DOWN)."""
        with self.lock:
            if self.draining:
                return False
            self.in_flight += 1
            self.connections[sock] = True
            return True

    def end_frame(self, sock):
        with self.lock:
            self.in_flight -= 1
            if sock in self.connections:
                self.connections[sock] = False
            self.idle.notify_all()

    def count_error(self):
        with self.lock:
            self.errors += 1

    def start_drain(self):
        """From now on every frame read gets SHUTTING_DOWN."""
        with self.lock:
            self.draining = True

    def drain(self, timeout):
        """Waits up to timeout for the requests in flight, then closes every connection."""
        with self.lock:
            self.draining = True
            end = time.monotonic() + timeout
            while self.in_flight > 0 and time.monotonic() < end:
                self.idle.wait(end - time.monotonic())
            left = self.in_flight
            sockets = list(self.connections)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes its thread's recv with EOF
            except OSError:
                pass
        return left

    # -- messages
    def error(self, code, message, request_id=0):
        reply = self.pb.ServerMessage()
        reply.error.code = code
        reply.error.message = cut_utf8(message)
        reply.error.request_id = request_id
        self.count_error()
        return reply

    def hello_reply(self):
        reply = self.pb.ServerMessage()
        reply.hello.protocol_version = PROTOCOL_VERSION
        reply.hello.server = SERVER_NAME
        reply.hello.functions.extend(self.functions)
        reply.hello.max_frame_bytes = self.options.max_frame_bytes
        return reply

    def check_hello(self, hello, connections_open):
        """None if the Hello is accepted, else the Error reply (the connection is then closed)."""
        Error = self.pb.Error
        if hello.protocol_version != PROTOCOL_VERSION:
            return self.error(Error.VERSION_MISMATCH, f"protocol_version {hello.protocol_version} is not spoken; "
                              f"this server speaks {PROTOCOL_VERSION}")
        # Without a token file the token must be empty: a client that sends one expects a server that checks it.
        if not hmac.compare_digest(hello.token, self.token or b""):
            return self.error(Error.UNAUTHENTICATED, "missing or wrong token" if self.token is not None
                              else "this server takes no token")
        if connections_open > self.options.max_connections:
            return self.error(Error.OVERLOADED, f"more than {self.options.max_connections} connections open")
        return None

    def stats_reply(self):
        reply = self.pb.ServerMessage()
        stats = reply.stats
        with self.lock:
            stats.uptime_s = time.monotonic() - self.started
            stats.connections_open = len(self.connections)
            stats.connections_total = self.connections_total
            stats.requests = self.requests
            stats.errors = self.errors
            stats.workers_replaced = 0  # functions run in threads of this process, not isolated workers
            for name, c in self.counters.items():
                f = stats.functions.add()
                f.name, f.scored, f.no_score, f.failed = name, c.scored, c.not_applicable, c.failed
                f.timeouts, f.crashes = c.timeouts, c.crashes
                latencies = sorted(c.latencies_ms)
                f.p50_ms, f.p90_ms, f.p99_ms = (percentile(latencies, q) for q in (0.50, 0.90, 0.99))
        return reply

    def validate_score_request(self, request):
        """The Error reply for a request that cannot be scored at all, else None."""
        Error = self.pb.Error
        if not request.functions:
            return self.error(Error.MALFORMED, "the request names no functions", request.request_id)
        unknown = [name for name in request.functions if name not in self.functions]
        if unknown:
            return self.error(Error.UNKNOWN_FUNCTION, f"unknown function {unknown[0]!r}; this server scores "
                              f"{', '.join(self.functions)}", request.request_id)
        return None

    def score(self, request, received_at):
        """The ScoreReply: every sample scored with every function, in order, within the deadline.

        Scoring runs on a helper thread; at the deadline the reply is sent with what is done and TIMEOUT
        for the rest. Python cannot kill a thread, so an abandoned call runs on in the background and its
        result is dropped (cohort's C++ server kills the worker process instead)."""
        pb = self.pb
        deadline_ms = request.deadline_ms or self.options.default_deadline_ms
        deadline = received_at + deadline_ms / 1000.0
        names = list(request.functions)
        samples = list(request.samples)
        results = [[None] * len(names) for _ in samples]  # (value, None, "") or (None, reason, message)
        state = {"cancelled": False, "started": None}
        state_lock = threading.Lock()
        finished = threading.Event()

        def record(i, j, name, outcome, elapsed_ms):
            with state_lock:
                if state["cancelled"]:
                    return False
                results[i][j] = outcome
            with self.lock:
                c = self.counters[name]
                c.latencies_ms.append(elapsed_ms)
                if outcome[1] is None:
                    c.scored += 1
                elif outcome[1] == pb.NOT_APPLICABLE:
                    c.not_applicable += 1
                else:
                    c.failed += 1
            return True

        def work():
            state["started"] = time.monotonic()
            for i, sample in enumerate(samples):
                try:
                    x, metadata_error = ScoringInput(sample), None
                except MetadataError as e:
                    x, metadata_error = None, str(e)
                for j, name in enumerate(names):
                    begin = time.monotonic()
                    if metadata_error is not None:
                        outcome = (None, pb.FAILED, metadata_error)
                    else:
                        outcome = call_function(pb, self.functions[name], x)
                    if not record(i, j, name, outcome, (time.monotonic() - begin) * 1000.0):
                        return
            finished.set()

        threading.Thread(target=work, name=f"score-{request.request_id}", daemon=True).start()
        finished.wait(max(0.0, deadline - time.monotonic()))
        with state_lock:
            state["cancelled"] = True
            snapshot = [list(row) for row in results]
        done = time.monotonic()
        started = state["started"] or done

        reply = pb.ServerMessage()
        score = reply.score
        score.request_id = request.request_id
        timeouts = {name: 0 for name in names}
        for sample, row in zip(samples, snapshot):
            result = score.results.add()
            result.id = sample.id
            for name, outcome in zip(names, row):
                function_score = result.scores.add()
                if outcome is None:
                    timeouts[name] += 1
                    function_score.no_score.reason = pb.TIMEOUT
                    function_score.no_score.message = f"not scored within the deadline of {deadline_ms} ms"
                elif outcome[1] is None:
                    function_score.value = outcome[0]
                else:
                    function_score.no_score.reason = outcome[1]
                    function_score.no_score.message = cut_utf8(outcome[2])
        score.timing.queue_ms = (started - received_at) * 1000.0
        score.timing.score_ms = (done - started) * 1000.0
        with self.lock:
            for name, n in timeouts.items():
                self.counters[name].timeouts += n
            self.requests += 1
        return reply


def call_function(pb, function, x):
    """One function on one sample, as (value, None, "") or (None, reason, message). Never raises."""
    try:
        value = function(x)
    except NotApplicable as e:
        return (None, pb.NOT_APPLICABLE, str(e))
    except Exception as e:  # a reward function's failure is the sample's, never the server's
        return (None, pb.FAILED, f"{type(e).__name__}: {e}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return (None, pb.FAILED, f"returned {type(value).__name__}, not a number")
    if not math.isfinite(value):
        return (None, pb.FAILED, f"returned {value}")
    return (value, None, "")


# ---- Connections ----------------------------------------------------------------------------------

class ConnectionHandler(socketserver.BaseRequestHandler):
    """One thread per connection: the handshake, then one request at a time until either side closes."""

    def handle(self):
        service = self.server.service
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = "%s:%s" % self.client_address[:2]
        open_now = service.connection_opened(sock)
        try:
            reason = self.converse(service, sock, open_now)
        except (ConnectionClosed, OSError) as e:
            reason = f"closed ({e})" if str(e) != "closed" else "closed by the client"
        except FrameTimeout as e:
            reason = f"dropped: {e}"
        finally:
            service.connection_closed(sock)
        if service.options.verbose:
            log(f"{peer}: {reason}")

    def converse(self, service, sock, open_now):
        pb, options = service.pb, service.options
        Error = pb.Error
        handshaken = False
        while True:
            try:
                payload = read_frame(sock, options.max_frame_bytes, options.idle_timeout, options.read_timeout)
            except FrameTooLarge as e:
                self.send_and_close(sock, service.error(
                    Error.FRAME_TOO_LARGE, f"a frame of {e.length} bytes is over the limit of {options.max_frame_bytes}"))
                return f"frame of {e.length} bytes refused"
            received_at = time.monotonic()
            message = pb.ClientMessage()
            try:
                message.ParseFromString(payload)
                body = message.WhichOneof("body")
            except Exception:  # DecodeError, or anything a hostile payload provokes in the parser
                body = None
            request_id = message.score.request_id if body == "score" else 0

            if not service.begin_frame(sock):
                self.send_and_close(sock, service.error(Error.SHUTTING_DOWN, "the server is shutting down", request_id))
                return "refused a request: shutting down"
            try:
                if not handshaken:
                    if body == "hello":
                        refusal = service.check_hello(message.hello, open_now)
                        if refusal is not None:
                            self.send_and_close(sock, refusal)
                            return f"handshake refused: {refusal.error.message}"
                        write_frame(sock, service.hello_reply().SerializeToString(), options.read_timeout)
                        handshaken = True
                        if options.verbose:
                            log(f"{'%s:%s' % self.client_address[:2]}: hello from {message.hello.client!r}")
                        continue
                    what = f"a {body} message" if body else "a frame that is not a ClientMessage with a body"
                    self.send_and_close(sock, service.error(Error.HANDSHAKE_REQUIRED,
                                                            f"{what} before the Hello; the first message must be a Hello"))
                    return f"{body or 'malformed frame'} before the handshake"
                if body == "hello":
                    self.send_and_close(sock, service.error(Error.HANDSHAKE_REQUIRED, "a second Hello"))
                    return "second hello"
                if body is None:
                    reply = service.error(Error.MALFORMED, "the frame is not a ClientMessage with a body")
                elif body == "stats":
                    reply = service.stats_reply()
                else:
                    reply = self.answer_score(service, message.score, received_at)
                write_frame(sock, reply.SerializeToString(), options.read_timeout)
            finally:
                service.end_frame(sock)

    def answer_score(self, service, request, received_at):
        refusal = service.validate_score_request(request)
        if refusal is not None:
            return refusal
        with service.lock:
            overloaded = service.scoring >= service.options.max_in_flight
            if not overloaded:
                service.scoring += 1
        if overloaded:
            return service.error(service.pb.Error.OVERLOADED,
                                 f"{service.options.max_in_flight} requests already being scored", request.request_id)
        try:
            return service.score(request, received_at)
        finally:
            with service.lock:
                service.scoring -= 1

    @staticmethod
    def send_and_close(sock, reply):
        """Writes a final reply, half-closes, and discards what the peer still sends (briefly) before the
        close: closing with unread input would reset the connection and could destroy the reply in flight."""
        try:
            write_frame(sock, reply.SerializeToString(), 5.0)
            sock.shutdown(socket.SHUT_WR)
            end, discarded = time.monotonic() + 1.0, 0
            while discarded < (1 << 20) and time.monotonic() < end:
                sock.settimeout(max(0.01, end - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                discarded += len(chunk)
        except OSError:
            pass


class ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


# ---- Start-up -------------------------------------------------------------------------------------

def log(text):
    print(f"reward server: {text}", file=sys.stderr, flush=True)


def parse_duration(text):
    """Seconds from "10", "10s", "1.5s" or "500ms"."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 10, 10s, 500ms)")
    value = float(match.group(1))
    return value / 1000.0 if match.group(2) == "ms" else value


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def read_token(path):
    with open(path, "rb") as f:
        token = f.read().rstrip()  # trailing spaces, tabs and newlines are not part of the secret
    if not token:
        sys.exit(f"--token-file {path} is empty")
    return token


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--listen", type=parse_listen, default="127.0.0.1:50051",
                   help="HOST:PORT to listen on; port 0 picks a free port (printed)")
    p.add_argument("--token-file", help="require this shared secret (the file's bytes, trailing whitespace "
                   "stripped) in every Hello")
    p.add_argument("--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME_BYTES,
                   help="largest frame payload accepted")
    p.add_argument("--read-timeout", type=parse_duration, default="10s",
                   help="a frame that has begun must arrive within this; also bounds writing a reply")
    p.add_argument("--idle-timeout", type=parse_duration, default="300s",
                   help="close a connection that sends nothing between messages for this long")
    p.add_argument("--default-deadline-ms", type=int, default=30000,
                   help="the deadline of a ScoreRequest whose deadline_ms is 0")
    p.add_argument("--max-connections", type=int, default=256, help="Hellos beyond this get OVERLOADED")
    p.add_argument("--max-in-flight", type=int, default=64,
                   help="ScoreRequests scored at once across connections; more get OVERLOADED")
    p.add_argument("--drain-timeout", type=parse_duration, default="60s",
                   help="after SIGTERM, how long requests in flight may take before the server exits anyway")
    p.add_argument("--test-functions", action="store_true",
                   help="also serve test_sleep, test_raise and test_nan (for testing clients)")
    p.add_argument("--proto-dir", help="a directory with a generated reward_pb2.py (see the README)")
    p.add_argument("--verbose", action="store_true", help="log every connection to stderr")
    options = p.parse_args(argv)  # argparse passes the string defaults through their `type` too
    if not 0 < options.max_frame_bytes <= 0xFFFFFFFF:
        p.error("--max-frame-bytes must be between 1 and 4294967295")
    if options.read_timeout <= 0 or options.idle_timeout <= 0 or options.default_deadline_ms <= 0:
        p.error("timeouts and the default deadline must be positive")
    if options.max_connections < 1 or options.max_in_flight < 1:
        p.error("--max-connections and --max-in-flight must be at least 1")
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    options.token = read_token(options.token_file) if options.token_file else None
    pb = load_reward_pb2(options.proto_dir)
    functions = dict(FUNCTIONS, **(TEST_FUNCTIONS if options.test_functions else {}))
    service = RewardService(pb, options, functions)

    host, port = options.listen
    ThreadingServer.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = ThreadingServer((host, port), ConnectionHandler)
    except OSError as e:
        sys.exit(f"cannot listen on {host}:{port}: {e.strerror or e}")
    server.service = service
    bound_host, bound_port = server.server_address[:2]
    if options.token is None and bound_host not in ("127.0.0.1", "::1", "localhost"):
        log(f"warning: listening on {bound_host} without --token-file: anyone who can reach it can use it")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"listening on {shown}:{bound_port}", flush=True)
    log(f"serving {', '.join(functions)}; max frame {options.max_frame_bytes} bytes"
        + ("; token required" if options.token is not None else ""))

    while not stop.wait(1.0):
        pass
    log("stopping: no new connections; requests in flight finish, new ones get SHUTTING_DOWN")
    service.start_drain()
    server.shutdown()      # the accept loop ends
    server.server_close()  # the listening socket closes: new connections are refused
    left = service.drain(options.drain_timeout)
    if left:
        log(f"{left} requests still in flight after {options.drain_timeout:g} s; exiting anyway")
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
