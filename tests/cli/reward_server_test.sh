#!/usr/bin/env bash
# cohort reward-server and remote rewards end to end: a training run scores on two servers and finishes
# with nothing lost when one is SIGKILLed mid-run; with both gone, skip counts the lost scores and stop ends
# the run with the reason; a wrong token is refused; SIGTERM stops a server cleanly; a run whose plugin
# functions hang and crash (isolated) finishes with those scores counted as lost; the Python conformance
# client (examples/reward_server_python/client_check.py) passes against the C++ server.
#   tests/cli/reward_server_test.sh BUILD_DIR
set -uo pipefail
build=$(realpath "${1:-build}")
cohort=$build/launch/cohort
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# serve NAME ARGS...: starts a reward server on a free port; sets port_NAME and pid_NAME (waits at most 20 s).
serve() {
  local name=$1
  shift
  "$cohort" reward-server --listen 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 200); do
    local line
    line=$(grep -m1 '^listening on ' "$tmp/$name.out" 2>/dev/null)
    if [ -n "$line" ]; then
      printf -v "port_$name" '%s' "${line##*:}"
      printf -v "pid_$name" '%s' "$pid"
      return 0
    fi
    sleep 0.1
  done
  echo "server $name did not start: $(cat "$tmp/$name.err")"
  return 1
}

for i in $(seq 0 31); do echo "{\"prompt\": \"$i+1=\", \"answer\": \"$((i + 1))\"}"; done >"$tmp/data.jsonl"
cat >"$tmp/remote.yaml" <<YAML
model: {size: tiny}
data: {train: $tmp/data.jsonl}
rollout: {group_size: 4, prompts_per_step: 4, max_new_tokens: 4}
reward: {batch_size: 4, connections: 2, retries: 2, timeout_s: 10}
rewards:
  - {name: accuracy, kind: remote, function: accuracy}
  - {name: local, kind: exact_match}
train: {steps: 40}
run: {dir: $tmp/runs}
YAML
# What the servers serve: the same file's rewards, the remote entry left out (a server does not forward).
cat >"$tmp/served.yaml" <<YAML
rewards:
  - {name: accuracy, kind: exact_match}
YAML

serve a --config "$tmp/served.yaml" || exit 1
serve b --config "$tmp/served.yaml" || exit 1
# Kill server a once the run has taken two steps.
(
  for _ in $(seq 1 600); do
    lines=$(cat "$tmp/runs/failover/metrics.jsonl" 2>/dev/null | wc -l)
    [ "$lines" -ge 2 ] && break
    sleep 0.05
  done
  kill -9 "$pid_a"
  echo "$lines" >"$tmp/killed_at"
) &
killer=$!
if "$cohort" train "$tmp/remote.yaml" "reward.endpoints=[127.0.0.1:$port_a,127.0.0.1:$port_b]" run.name=failover \
  >"$tmp/failover.log" 2>&1; then ok; else fail "training with fail-over: $(tail -3 "$tmp/failover.log")"; fi
wait "$killer"
wait "$pid_a" 2>/dev/null  # reaped here, quietly (bash would report the SIGKILL)
check_metrics() {  # check_metrics RUN PYTHON_CONDITION: every step's metrics satisfy the condition on r
  python3 - "$tmp/runs/$1/metrics.jsonl" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [r for r in rows if "reward/accuracy/scored" in r]
assert steps, "no step metrics"
bad = [r["step"] for r in steps if not eval(sys.argv[2], {}, {"r": r})]
assert not bad, f"steps {bad} fail {sys.argv[2]}"
PY
}
# The remote scores equal the in-process ones, and none was lost to the killed server.
if check_metrics failover 'r["reward/accuracy/scored"] == 1.0 and r["reward/unscored/unavailable"] == 0 and abs(r["reward/accuracy/mean"] - r["reward/local/mean"]) < 1e-12'; then ok; else fail "fail-over metrics"; fi
kill -0 "$pid_a" 2>/dev/null && fail "server a still alive" || ok
# The kill came while the run still had steps to take.
total=$(wc -l <"$tmp/runs/failover/metrics.jsonl")
if [ "$(cat "$tmp/killed_at")" -lt "$total" ]; then ok; else fail "server a was killed after the run ($(cat "$tmp/killed_at") of $total lines)"; fi

# Both gone: skip finishes the run with every remote score counted as lost; stop ends it with the reason.
kill -TERM "$pid_b"
wait "$pid_b" 2>/dev/null
status=$?
if [ "$status" -eq 0 ] && grep -q "stopped after" "$tmp/b.out"; then ok; else fail "SIGTERM of server b: status $status"; fi
if "$cohort" train "$tmp/remote.yaml" "reward.endpoints=[127.0.0.1:$port_a,127.0.0.1:$port_b]" run.name=skip \
  train.steps=2 reward.retries=1 >"$tmp/skip.log" 2>&1; then ok; else fail "skip run: $(tail -3 "$tmp/skip.log")"; fi
if check_metrics skip 'r["reward/accuracy/scored"] == 0 and r["reward/unscored/unavailable"] == 16 and r["reward/local/scored"] == 1.0'; then ok; else fail "lost scores not counted"; fi
grep -q "WARNING: no reward server scored" "$tmp/skip.log" && ok || fail "no loud warning under skip"
if "$cohort" train "$tmp/remote.yaml" "reward.endpoints=[127.0.0.1:$port_a]" run.name=stop reward.on_unavailable=stop \
  train.steps=2 reward.retries=0 >"$tmp/stop.log" 2>&1; then
  fail "on_unavailable: stop did not stop"
else
  grep -q "no reward server could score (reward.on_unavailable: stop)" "$tmp/stop.log" && ok || fail "stop's reason: $(tail -2 "$tmp/stop.log")"
fi

# A wrong token is refused, and the run says so.
printf 'right-secret\n' >"$tmp/token"
printf 'wrong-secret\n' >"$tmp/wrong"
serve secure --config "$tmp/served.yaml" --token-file "$tmp/token" || exit 1
if "$cohort" train "$tmp/remote.yaml" "reward.endpoints=[127.0.0.1:$port_secure]" run.name=wrong reward.token_file="$tmp/wrong" \
  reward.on_unavailable=stop train.steps=1 reward.retries=0 >"$tmp/wrong.log" 2>&1; then
  fail "a wrong token was accepted"
else
  grep -q "wrong or missing token" "$tmp/wrong.log" && ok || fail "wrong token's reason: $(tail -2 "$tmp/wrong.log")"
fi
if "$cohort" train "$tmp/remote.yaml" "reward.endpoints=[127.0.0.1:$port_secure]" run.name=right reward.token_file="$tmp/token" \
  train.steps=1 >"$tmp/right.log" 2>&1; then ok; else fail "the right token: $(tail -3 "$tmp/right.log")"; fi

# Plugin functions that hang and crash run isolated: the run finishes and counts what they lost.
plugins=$build/tests/reward/plugins
if [ -f "$plugins/libreward_plugin_hang.so" ]; then
  cat >"$tmp/plugins.yaml" <<YAML
model: {size: tiny}
data: {train: $tmp/data.jsonl}
rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 4}
reward: {plugins: [$plugins/libreward_plugin_hang.so, $plugins/libreward_plugin_crash.so], workers: 2}
rewards:
  - {name: accuracy, kind: exact_match}
  - {kind: hang, timeout_s: 0.3}
  - {kind: crash}
train: {steps: 2}
run: {dir: $tmp/runs}
YAML
  if timeout 300 "$cohort" train "$tmp/plugins.yaml" run.name=plugins >"$tmp/plugins.log" 2>&1; then ok; else fail "plugin run: $(tail -3 "$tmp/plugins.log")"; fi
  if check_metrics plugins 'r["reward/unscored/timeout"] == 4 and r["reward/unscored/crashed"] == 4 and r["reward/accuracy/scored"] == 1.0'; then ok; else fail "plugin losses not counted"; fi
fi

# The Python conformance client against the C++ server (default functions: every built-in by kind).
py=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import google.protobuf' >/dev/null 2>&1; then py=$candidate; break; fi
done
if [ -n "$py" ] && serve plain --read-timeout 2; then
  if timeout 120 "$py" "$here/examples/reward_server_python/client_check.py" --connect "127.0.0.1:$port_plain" \
    --function exact_match >"$tmp/check.log" 2>&1; then ok; else fail "client_check.py against cohort reward-server: $(tail -5 "$tmp/check.log")"; fi
else
  echo "reward server: client_check.py skipped: python3 protobuf not importable"
fi

echo "reward server: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
