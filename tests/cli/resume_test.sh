#!/usr/bin/env bash
# A GRPO run killed with SIGKILL again and again, some kills landing inside checkpoint writes, and
# resumed (train.resume=auto) after each, ends with the same weights, bit for bit, as a run that never
# stopped; every checkpoint ever published passes its checksums; the per-step metrics of both runs agree.
# LAUNCH says how the run is started:
#   single  one process (the default)
#   mpi2    mpirun -np 2: two colocated data-parallel learners (ZeRO-1 shards written through MPI-IO); a
#           random rank is killed. Then a 2-learner checkpoint resumed in one process continues the run.
#   async3  mpirun -np 3: two learners and one rollout worker under async-1 (checkpoints hold the rollout
#           in flight); a random rank is killed.
#   sft     `cohort sft` in one process (sft.steps, the SFT data order).
# Usage: tests/cli/resume_test.sh PATH/TO/cohort [KILLS] [LAUNCH]. Prints "N passed, M failed".
set -uo pipefail
# Bit-identity needs the same thread count for the same work in both runs. The thread governor
# (kernels/thread_governor.h) picks each call's count by timing, and its probes fall on other steps in a
# resumed process; the GRPO learner's results still differ in the last bits between 1 and 2 threads
# (about 1e-8 relative; the model's forward and backward alone are equal, tests/model), so the governor is
# off here and the full count runs every call.
export COHORT_THREAD_GOVERNOR=off
cohort=$(realpath "${1:?usage: tests/cli/resume_test.sh PATH/TO/cohort [KILLS] [LAUNCH]}")
here=$(cd "$(dirname "$0")" && pwd)
kills_wanted=${2:-6}
launch=${3:-single}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
steps=24
launcher=("$cohort")
command=train
case $launch in
  single) ;;
  sft) command=sft; steps=60 ;;
  mpi2) launcher=(mpirun --oversubscribe -np 2 "$cohort"); steps=16; export COHORT_THREADS=1 ;;
  async3)
    launcher=(mpirun --oversubscribe -np 3 "$cohort"); steps=16; export COHORT_THREADS=1
    extra=(distributed.colocated=false distributed.learners=2 distributed.rollout_workers=1 distributed.schedule=async-1) ;;
  *) echo "resume_test: LAUNCH is single, mpi2, async3 or sft, not '$launch'"; exit 2 ;;
esac
passed=0
failed=0
tmp=$(mktemp -d)
# Every cohort process of this test: the ranks of a job, or the one process.
ours() { for pid in $(pgrep -x cohort); do tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "$tmp/" && echo "$pid"; done; }
trap 'for p in $(ours); do kill -9 "$p"; done; rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

for i in $(seq 0 63); do
  echo "{\"prompt\": \"$((i % 8))+$((i / 8))=\", \"answer\": \"$((i % 8 + i / 8))\", \"response\": \"$((i % 8 + i / 8))\"}"
done > "$tmp/data.jsonl"
cat > "$tmp/run.yaml" <<YAML
model:
  size: small
data:
  train: $tmp/data.jsonl
  test: $tmp/data.jsonl
rollout:
  group_size: 4
  prompts_per_step: 4
  max_new_tokens: 6
  temperature: 1.0
rewards:
  - name: accuracy
    kind: exact_match
    extract: [whole]
  # About half of a random model's completions start with an ASCII byte: a reward with signal from
  # step 1, so every step moves the weights and a resume that restored anything wrongly shows.
  - name: ascii_start
    kind: format
    pattern: '^[\x00-\x7F]'
algorithm:
  beta: 0.02
  num_iterations: 2
optim:
  lr: 0.001
  warmup_steps: 3
sft:
  steps: $steps
  batch_size: 8
train:
  steps: $steps
  checkpoint_every: 1
  keep_checkpoints: 3
  eval_every: 8
  eval_prompts: 8
run:
  dir: $tmp/runs
YAML
train() { "${launcher[@]}" "$command" "$tmp/run.yaml" "${extra[@]}" "$@" >>"$tmp/log" 2>&1; }

# The run that never stopped.
train run.name=whole train.keep_checkpoints=100 || fail "uninterrupted run failed: $(tail -3 "$tmp/log")"

# The run that is killed: alternately at a random moment and the moment a checkpoint write begins
# (a step_*.h5.tmp exists), then resumed, until it finishes.
ckdir="$tmp/runs/killed/checkpoints"
kills=0 during_write=0 attempts=0 finished=0
verify_published() {
  [ -f "$ckdir/latest" ] || return 0
  local name
  name=$(cat "$ckdir/latest")
  if "$cohort" inspect "$ckdir/$name" >"$tmp/inspect" 2>&1; then ok; else fail "published $name fails: $(tail -2 "$tmp/inspect")"; fi
}
while ((attempts < 40)); do
  attempts=$((attempts + 1))
  published_before=$(cat "$ckdir/latest" 2>/dev/null)
  "${launcher[@]}" "$command" "$tmp/run.yaml" "${extra[@]}" run.name=killed >>"$tmp/log" 2>&1 &
  pid=$!
  if ((kills < kills_wanted)); then
    if ((kills % 2 == 1)); then
      # Wait for a checkpoint write in progress, then kill inside it.
      for _ in $(seq 1 2000); do
        compgen -G "$ckdir/*.tmp" >/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.005
      done
      compgen -G "$ckdir/*.tmp" >/dev/null && during_write=$((during_write + 1))
    else
      # A random moment after this launch has published a checkpoint of its own (so every launch makes
      # progress however slowly the ranks start).
      for _ in $(seq 1 3000); do
        [ "$(cat "$ckdir/latest" 2>/dev/null)" != "$published_before" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
      done
      sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.05 + 0.6 * rand() }')"
    fi
    if [ "$launch" = single ]; then
      victim=$pid
    else  # a random rank, once mpirun has started them; mpirun then ends the job
      ranks=()
      for _ in $(seq 1 500); do
        mapfile -t ranks < <(ours)
        [ "${#ranks[@]}" -gt 0 ] || ! kill -0 "$pid" 2>/dev/null && break
        sleep 0.01
      done
      victim=${ranks[$((RANDOM % (${#ranks[@]} > 0 ? ${#ranks[@]} : 1)))]:-}
    fi
    if [ -n "$victim" ] && kill -0 "$pid" 2>/dev/null && kill -9 "$victim" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null
    for p in $(ours); do kill -9 "$p" 2>/dev/null; done  # a rank mpirun left behind would hold the run
    verify_published
  else
    if wait "$pid"; then finished=1; break; fi
    fail "resumed run exited non-zero: $(tail -3 "$tmp/log")"
    break
  fi
done
echo "resume: $kills kills ($during_write inside a checkpoint write), $attempts launches"
((finished == 1)) && ok || fail "the killed run never finished"
((kills >= 5)) && ok || fail "only $kills kills landed (the run finished too soon)"
((during_write >= 1)) && ok || fail "no kill landed inside a checkpoint write"
grep -q "resumed at step" "$tmp/log" && ok || fail "no launch resumed from a checkpoint"

if cmp -s "$tmp/runs/whole/model/model.safetensors" "$tmp/runs/killed/model/model.safetensors"; then
  ok
else
  fail "final weights differ between the uninterrupted and the killed-and-resumed run"
fi
# The same steps, the same numbers: every step's loss, reward and KL (timings aside).
if python3 - "$tmp/runs/whole/metrics.jsonl" "$tmp/runs/killed/metrics.jsonl" <<'PY'; then ok; else fail "metrics differ"; fi
import json, sys
def load(p):
    return {m["step"]: m for m in map(json.loads, open(p))}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert sorted(a) == sorted(b), f"steps {sorted(a)} vs {sorted(b)}"
for step in a:
    for k in ("loss", "reward", "kl", "grad_norm", "eval/accuracy"):
        if k in a[step] or k in b[step]:
            assert a[step].get(k) == b[step].get(k), f"step {step} {k}: {a[step].get(k)} vs {b[step].get(k)}"
PY
# Only keep_checkpoints remain, latest among them, no temporary file left behind.
n=$(find "$ckdir" -name 'step_*.h5' | wc -l)
[ "$n" -eq 3 ] && ok || fail "$n checkpoints kept, want 3"
[ "$(cat "$ckdir/latest")" = "$(printf 'step_%08d.h5' "$steps")" ] && ok || fail "latest is $(cat "$ckdir/latest")"
compgen -G "$ckdir/*.tmp" >/dev/null && fail "a temporary checkpoint was left behind: $(ls "$ckdir")" || ok
# A resume with a different model is refused, naming the key.
out=$("${launcher[@]}" "$command" "$tmp/run.yaml" "${extra[@]}" run.name=killed model.size=tiny 2>&1)
grep -q "model.size: small in the checkpoint, tiny now" <<<"$out" && ok || fail "incompatible resume: $out"

# Two learners' checkpoint, one learner now: the optimizer shards are re-cut and the run goes on, equal to
# the two-learner run within summation order (and far from where it started).
if [ "$launch" = mpi2 ]; then
  half=$((steps / 2))
  mkdir -p "$tmp/runs/one"
  "$cohort" train "$tmp/run.yaml" run.name=one train.resume="$tmp/runs/whole/checkpoints/$(printf 'step_%08d.h5' "$half")" \
    >"$tmp/one.log" 2>&1 || fail "one-learner resume failed: $(tail -3 "$tmp/one.log")"
  grep -q "resumed at step $half of $steps" "$tmp/one.log" && ok || fail "one-learner run did not resume: $(head -5 "$tmp/one.log")"
  "$cohort" export --checkpoint "$tmp/runs/whole/checkpoints/$(printf 'step_%08d.h5' "$half")" --format hf \
    --out "$tmp/half" >/dev/null 2>&1 || fail "export of the half-way checkpoint failed"
  worst=$(python3 "$here/max_weight_difference.py" "$tmp/runs/whole/model/model.safetensors" "$tmp/runs/one/model/model.safetensors")
  moved=$(python3 "$here/max_weight_difference.py" "$tmp/runs/whole/model/model.safetensors" "$tmp/half/model.safetensors")
  echo "resume: 2 learners -> 1: final weights differ by at most $worst; the last half moved them $moved"
  if python3 -c "import sys; sys.exit(0 if float('$worst') < 1e-5 and float('$moved') > 1e-4 else 1)" 2>/dev/null; then ok; else
    fail "one-learner resume drifted ($worst) or the run did not move ($moved)"; fi
fi

echo "resume ($launch): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
