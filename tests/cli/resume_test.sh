#!/usr/bin/env bash
# A GRPO run killed with SIGKILL again and again, some kills landing inside checkpoint writes, and
# resumed (train.resume=auto) after each, ends with the same weights, bit for bit, as a run that never
# stopped; every checkpoint ever published passes its checksums; the per-step metrics of both runs agree.
# Usage: tests/cli/resume_test.sh PATH/TO/cohort [KILLS]. Prints "N passed, M failed".
set -uo pipefail
cohort=${1:?usage: tests/cli/resume_test.sh PATH/TO/cohort [KILLS]}
kills_wanted=${2:-6}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

for i in $(seq 0 63); do echo "{\"prompt\": \"$((i % 8))+$((i / 8))=\", \"answer\": \"$((i % 8 + i / 8))\"}"; done > "$tmp/data.jsonl"
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
train:
  steps: 24
  checkpoint_every: 1
  keep_checkpoints: 3
  eval_every: 8
  eval_prompts: 8
run:
  dir: $tmp/runs
YAML
train() { "$cohort" train "$tmp/run.yaml" "$@" >>"$tmp/log" 2>&1; }

# The run that never stopped.
train run.name=whole || fail "uninterrupted run failed: $(tail -3 "$tmp/log")"

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
  "$cohort" train "$tmp/run.yaml" run.name=killed >>"$tmp/log" 2>&1 &
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
      sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + 2.5 * rand() }')"
    fi
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null
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
[ "$(cat "$ckdir/latest")" = step_00000024.h5 ] && ok || fail "latest is $(cat "$ckdir/latest")"
compgen -G "$ckdir/*.tmp" >/dev/null && fail "a temporary checkpoint was left behind: $(ls "$ckdir")" || ok
# A resume with a different model is refused, naming the key.
out=$("$cohort" train "$tmp/run.yaml" run.name=killed model.size=tiny 2>&1)
grep -q "model.size: small in the checkpoint, tiny now" <<<"$out" && ok || fail "incompatible resume: $out"

echo "resume: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
