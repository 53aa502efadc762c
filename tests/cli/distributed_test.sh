#!/usr/bin/env bash
# cohort under mpirun as a user meets it: the role layout `cohort config` prints, layout errors, and a job
# whose rank dies (SIGKILL) or hangs (SIGSTOP) ending within 30 s with the reason in the output, never a hang.
# Usage: tests/cli/distributed_test.sh PATH/TO/cohort. Prints "N passed, M failed".
set -uo pipefail
cohort=$(realpath "${1:?usage: tests/cli/distributed_test.sh PATH/TO/cohort}")
here=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 COHORT_THREADS=1 OMP_NUM_THREADS=1
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

tmp=$(mktemp -d)
trap 'pkill -KILL -f "$tmp/" 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
for i in $(seq 1 200); do echo "{\"prompt\": \"$i:\", \"answer\": \"7\"}"; done > train.jsonl
cat > run.yaml <<YAML
run: {dir: $tmp/runs}
model: {size: tiny}
data: {train: $tmp/train.jsonl}
rollout: {group_size: 4, prompts_per_step: 4, max_new_tokens: 4}
rewards:
  - {name: accuracy, kind: exact_match, extract: [whole]}
train: {steps: 1000000}
YAML

out=$("$cohort" config run.yaml --np 3 distributed.colocated=false distributed.learners=1 2>&1)
if grep -q "learners: 1 (rank 0)" <<<"$out" && grep -q "rollout workers: 2 (ranks 1-2)" <<<"$out"; then pass; else
  fail "config layout: $out"; fi
out=$("$cohort" config run.yaml --np 3 distributed.colocated=false distributed.learners=2 distributed.rollout_workers=2 2>&1)
if grep -q "distributed.learners (2) + distributed.rollout_workers (2) = 4, but mpirun started 3 ranks" <<<"$out"; then
  pass; else fail "bad layout: $out"; fi
out=$("$cohort" config run.yaml distributed.schedule=async-1 2>&1)
if grep -q "async-1' needs separate rollout workers" <<<"$out"; then pass; else fail "async colocated: $out"; fi

# Short runs that finish: async-1 (1 learner, 2 workers) records policy lag 0 then 1; 2 colocated ranks.
short=(train.steps=3 run.dir="$tmp/runs")
if mpirun --oversubscribe -np 3 "$cohort" train run.yaml run.name=async "${short[@]}" distributed.colocated=false \
     distributed.learners=1 distributed.schedule=async-1 > async.log 2>&1 &&
   [ "$(grep -o '"policy_lag":[0-9.]*' runs/async/metrics.jsonl | tr '\n' ' ')" = '"policy_lag":0.0 "policy_lag":1.0 "policy_lag":1.0 ' ] &&
   [ -f runs/async/model/model.safetensors ]; then pass; else fail "async-1 run:"; tail -5 async.log; cat runs/async/metrics.jsonl; fi
if mpirun --oversubscribe -np 2 "$cohort" train run.yaml run.name=colocated "${short[@]}" > colocated.log 2>&1 &&
   grep -q "learners: 2 (ranks 0-1, colocated)" colocated.log && [ "$(grep -c '"step":' runs/colocated/metrics.jsonl)" = 3 ]; then
  pass; else fail "colocated run:"; tail -5 colocated.log; fi

# Dynamic sampling under mpirun: one learner beside two rollout workers ends bit-identical to one process
# (the workers agree on which groups carry signal and draw again), and two colocated learners agree with it
# within summation order; some step needed a second round.
cat > dyn.yaml <<YAML
run: {dir: $tmp/runs}
model: {size: tiny}
data: {train: $tmp/train.jsonl}
rollout: {group_size: 4, prompts_per_step: 4, max_new_tokens: 6, temperature: 1.0}
rewards:
  - {name: ascii_start, kind: format, pattern: '^[\x00-\x7F]'}
algorithm: {dynamic_sampling: true}
train: {steps: 6}
YAML
"$cohort" train dyn.yaml run.name=dyn1 > dyn1.log 2>&1 || fail "dynamic sampling, one process: $(tail -3 dyn1.log)"
mpirun --oversubscribe -np 3 "$cohort" train dyn.yaml run.name=dyn3 distributed.colocated=false distributed.learners=1 \
  > dyn3.log 2>&1 || fail "dynamic sampling, 1 learner + 2 workers: $(tail -3 dyn3.log)"
mpirun --oversubscribe -np 2 "$cohort" train dyn.yaml run.name=dyn2 > dyn2.log 2>&1 ||
  fail "dynamic sampling, 2 colocated learners: $(tail -3 dyn2.log)"
if cmp -s runs/dyn1/model/model.safetensors runs/dyn3/model/model.safetensors; then pass; else
  fail "dynamic sampling: 1 learner + 2 workers ended with other weights than one process"; fi
if grep -q '"dynamic_sampling/rounds":[2-9]' runs/dyn3/metrics.jsonl; then pass; else
  fail "dynamic sampling never drew a second round: $(grep -o '"dynamic_sampling/rounds":[0-9]*' runs/dyn3/metrics.jsonl)"; fi
worst=$(python3 "$here/max_weight_difference.py" runs/dyn1/model/model.safetensors runs/dyn2/model/model.safetensors)
if python3 -c "import sys; sys.exit(0 if float('$worst') < 1e-5 else 1)" 2>/dev/null; then pass; else
  fail "dynamic sampling, 2 learners drifted by ${worst:-?} from one process"; fi

# The world rank of each cohort process of this test, from its environment.
pid_of_rank() {
  for pid in $(pgrep -f "$cohort train $tmp/run.yaml"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$pid"; return; fi
  done
}

# run_and_break NAME SIGNAL RANK EXPECTED_REGEX [overrides...]: start a 3-rank job, wait for its second step,
# send SIGNAL to RANK, and require the job to end within 30 s, non-zero, with EXPECTED_REGEX in its output.
run_and_break() {
  local name=$1 signal=$2 rank=$3 want=$4
  shift 4
  mpirun --oversubscribe -np 3 "$cohort" train "$tmp/run.yaml" run.name="$name" distributed.colocated=false \
    distributed.learners=1 "$@" > "$name.log" 2>&1 &
  local job=$! waited=0
  until [ -f "runs/$name/rollouts/step_2.jsonl" ]; do
    sleep 0.2; waited=$((waited + 1))
    if [ $waited -gt 600 ] || ! kill -0 $job 2>/dev/null; then fail "$name: the job never reached step 2"; cat "$name.log"; kill -KILL $job 2>/dev/null; return; fi
  done
  local victim
  victim=$(pid_of_rank "$rank")
  [ -n "$victim" ] || { fail "$name: no process for rank $rank"; kill -KILL $job; return; }
  local t0 rc
  t0=$(date +%s.%N)
  kill "-$signal" "$victim"
  for _ in $(seq 1 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  if kill -0 $job 2>/dev/null; then
    fail "$name: still running 30 s after SIG$signal to rank $rank"
    pkill -KILL -f "$tmp/run.yaml"; wait $job; return
  fi
  wait $job; rc=$?
  local took
  took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "$name: SIG$signal to rank $rank: the job ended in ${took} s with exit $rc"
  if [ "$rc" -ne 0 ] && grep -Eq "$want" "$name.log"; then pass; else
    fail "$name: exit $rc, output:"; tail -20 "$name.log"; fi
}

run_and_break killed KILL 1 "exited on signal 9|killed"
run_and_break stuck STOP 2 "rank 0 on .*timed out after 5 s" distributed.timeout_s=5

echo "distributed_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
