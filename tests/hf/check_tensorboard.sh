#!/usr/bin/env bash
# TensorBoard reads the event files a cohort run writes: every scalar of metrics.jsonl, at its step, once,
# also after a resume (the resumed launch trims the first launch's file to the steps it keeps), and the
# per-step text summaries of sampled completions. The reader is TensorBoard's own EventAccumulator (PyPI
# `tensorboard`), installed when missing; "tensorboard: skipped: tensorboard not installable (...)" otherwise.
# Usage: tests/hf/check_tensorboard.sh BUILD_DIR (holding launch/cohort). Exits 1 on any mismatch.
set -uo pipefail
cohort=$(realpath "${1:?usage: tests/hf/check_tensorboard.sh BUILD_DIR}")/launch/cohort
python=${COHORT_TB_PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! "$python" -c 'import tensorboard.backend.event_processing.event_accumulator' >/dev/null 2>&1; then
  PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --quiet --disable-pip-version-check tensorboard >"$tmp/pip.log" 2>&1 ||
    { echo "tensorboard: skipped: tensorboard not installable ($(grep -v '^\s*$' "$tmp/pip.log" | tail -1))"; exit 0; }
fi
for i in $(seq 0 31); do echo "{\"prompt\": \"$((i % 8))+$((i / 8))=\", \"answer\": \"$((i % 8 + i / 8))\"}"; done > "$tmp/data.jsonl"
cat > "$tmp/run.yaml" <<YAML
model: {size: tiny}
data: {train: $tmp/data.jsonl, test: $tmp/data.jsonl}
rollout: {group_size: 4, prompts_per_step: 2, max_new_tokens: 6, temperature: 1.0}
rewards:
  - {name: accuracy, kind: exact_match, extract: [whole]}
  - {name: ascii_start, kind: format, pattern: '^[\x00-\x7F]'}
train: {steps: 5, checkpoint_every: 2, keep_checkpoints: 5, eval_every: 2, eval_prompts: 4}
run: {dir: $tmp/runs, name: tb}
YAML
"$cohort" train "$tmp/run.yaml" >"$tmp/log" 2>&1 || { echo "tensorboard: FAILED: the run failed: $(tail -3 "$tmp/log")"; exit 1; }
# Resume at step 2: the first launch's events of steps 3-5 must give way to the second's.
"$cohort" train "$tmp/run.yaml" train.resume="$tmp/runs/tb/checkpoints/step_00000002.h5" >>"$tmp/log" 2>&1 ||
  { echo "tensorboard: FAILED: the resumed run failed: $(tail -3 "$tmp/log")"; exit 1; }
"$python" - "$tmp/runs/tb" <<'PY'
import glob, json, math, sys
from tensorboard.backend.event_processing import event_accumulator as ea
run = sys.argv[1]
files = sorted(glob.glob(run + "/events.out.tfevents.*"))
assert len(files) == 2, f"expected one event file per launch, found {files}"
acc = ea.EventAccumulator(run, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0}, purge_orphaned_data=False)
acc.Reload()
want = {}
for line in open(run + "/metrics.jsonl"):
    m = json.loads(line)
    for k, v in m.items():
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
            want.setdefault(k, {})[m["step"]] = float(v)
tags = set(acc.Tags()["scalars"])
problems = []
missing = sorted(set(want) - tags)
if missing: problems.append(f"tags missing from TensorBoard: {missing}")
checked = 0
for tag, steps in want.items():
    if tag not in tags: continue
    events = acc.Scalars(tag)
    got = {}
    for e in events:
        if e.step in got: problems.append(f"{tag}: step {e.step} appears twice")
        got[e.step] = e.value
    if sorted(got) != sorted(steps): problems.append(f"{tag}: steps {sorted(got)}, metrics.jsonl has {sorted(steps)}")
    for s, v in steps.items():
        if s in got:
            checked += 1
            if not math.isclose(got[s], v, rel_tol=1e-6, abs_tol=1e-30) and not (math.isnan(v) and math.isnan(got[s])):
                problems.append(f"{tag} step {s}: TensorBoard {got[s]}, metrics.jsonl {v}")
texts = acc.Tensors("rollouts") if "rollouts" in acc.Tags()["tensors"] else []
text_steps = sorted(t.step for t in texts)
if text_steps != [1, 2, 3, 4, 5]: problems.append(f"rollout text summaries at steps {text_steps}, want 1-5")
for t in texts:
    body = t.tensor_proto.string_val[0].decode("utf-8")
    if "reward" not in body or "advantage" not in body: problems.append(f"text summary of step {t.step}: {body[:80]!r}")
for p in problems: print("tensorboard: FAILED:", p)
print(f"tensorboard: {checked} scalars of {len(want)} tags equal metrics.jsonl, each step once after a resume; "
      f"{len(texts)} text summaries")
sys.exit(1 if problems else 0)
PY
