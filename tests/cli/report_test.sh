#!/usr/bin/env bash
# The run report: a short run refreshes report/ while it goes and at its end; every plot exists and holds
# exactly the run's data points (read back from the SVG against metrics.jsonl); index.html has the config and
# the logged completions; `cohort report A B` draws both runs and lists the config keys that differ; where
# chromium installs, a headless screenshot of the page is not blank.
#   tests/cli/report_test.sh path/to/cohort
set -uo pipefail
cohort=$(realpath "${1:-build/launch/cohort}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

for i in $(seq 0 15); do echo "{\"prompt\": \"$i+1=\", \"answer\": \"$((i + 1))\"}"; done >"$tmp/data.jsonl"
cat >"$tmp/run.yaml" <<YAML
model: {size: tiny}
data: {train: $tmp/data.jsonl, test: $tmp/data.jsonl}
rollout: {group_size: 4, prompts_per_step: 4, max_new_tokens: 4}
rewards: [{name: accuracy, kind: exact_match}, {name: short, kind: length_penalty, target_tokens: 2}]
train: {steps: 12, report_every: 5, eval_every: 4, log_rollouts: 3}
run: {dir: $tmp/runs}
YAML
"$cohort" train "$tmp/run.yaml" run.name=a --quiet >"$tmp/a.log" 2>&1 || fail "train a: $(tail -3 "$tmp/a.log")"
"$cohort" train "$tmp/run.yaml" run.name=b optim.lr=0.001 --quiet >"$tmp/b.log" 2>&1 || fail "train b: $(tail -3 "$tmp/b.log")"

check_report() {  # check_report REPORT_DIR RUN_DIR...: every figure's points equal the runs' metrics
  python3 - "$@" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
figures = ["reward", "accuracy", "completion_length", "truncated_fraction", "kl", "entropy", "clip_fraction",
           "rollout_mismatch", "grad_norm", "lr", "tokens_per_s", "time", "unscored"]
ns = {"s": "http://www.w3.org/2000/svg"}
metrics = {r.name: [json.loads(l) for l in open(r / "metrics.jsonl") if l.strip()] for r in runs}
seen = set()
for f in figures:
    root = ET.parse(out / f"{f}.svg").getroot()
    groups = root.findall("s:g[@class='series']", ns)
    assert groups, f"{f}.svg has no series"
    for g in groups:
        label = g.get("data-series")
        run, key = label.split(": ", 1) if len(runs) > 1 else (runs[0].name, label)
        want = [(float(m["step"]), float(m[key])) for m in metrics[run] if key in m]
        got = [(float(c.get("data-step")), float(c.get("data-value"))) for c in g.findall("s:circle", ns)]
        assert got == want, f"{f}.svg {label}: {got[:3]}... != {want[:3]}..."
        seen.add(key)
for key in ["reward", "reward/accuracy/mean", "reward/short/mean", "accuracy", "eval/accuracy", "kl", "entropy",
            "clip_fraction", "rollout_mismatch_k3", "grad_norm", "lr", "train_tokens_per_s", "time/train",
            "completion_length/mean", "completion_length/max", "truncated_fraction", "reward/unscored/timeout"]:
    assert key in seen, f"no plot holds {key}"
html = (out / "index.html").read_text(encoding="utf-8")
for f in figures:
    assert f'src="{f}.svg"' in html, f
assert "Completions" in html and "advantage" in html and "step 12" in html, "no samples"
for r in runs:
    assert "rollout:" in html, "no config"
print(f"report {out}: {len(figures)} plots, points equal metrics.jsonl for {len(runs)} run(s)")
PY
}
[ -f "$tmp/runs/a/report/index.html" ] && ok || fail "the run wrote no report/"
check_report "$tmp/runs/a/report" "$tmp/runs/a" && ok || fail "report of run a"
# Refreshed while the run went: a report rendered at step 5 of a run stopped there.
"$cohort" train "$tmp/run.yaml" run.name=partial train.steps=6 train.report_every=5 --quiet >/dev/null 2>&1
grep -q "last step 6" "$tmp/runs/partial/report/index.html" && ok || fail "no report at the end of a 6-step run"
# cohort report renders again, and compares.
rm -rf "$tmp/runs/a/report"
"$cohort" report "$tmp/runs/a" >"$tmp/report.log" 2>&1 && ok || fail "cohort report: $(cat "$tmp/report.log")"
check_report "$tmp/runs/a/report" "$tmp/runs/a" && ok || fail "cohort report RUN"
"$cohort" report "$tmp/runs/a" "$tmp/runs/b" --out "$tmp/cmp" >"$tmp/cmp.log" 2>&1 && ok || fail "cohort report A B: $(cat "$tmp/cmp.log")"
check_report "$tmp/cmp" "$tmp/runs/a" "$tmp/runs/b" && ok || fail "cohort report A B plots"
if python3 - "$tmp/cmp/index.html" <<'PY'; then ok; else fail "the differing config keys"; fi
import re, sys
html = open(sys.argv[1], encoding="utf-8").read()
table = html.split('class="config-diff"', 1)[1].split("</table>", 1)[0]
keys = re.findall(r"<tr><td>([^<]+)</td>", table)
assert keys == ["optim.lr"], keys
PY
"$cohort" report "$tmp/nothing" >/dev/null 2>"$tmp/bad.err" && fail "a missing run directory was accepted" ||
  { grep -q "not a run directory" "$tmp/bad.err" && ok || fail "missing run directory message: $(cat "$tmp/bad.err")"; }

# A headless screenshot of the page is not blank, where chromium installs.
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ] && [ "$(id -u)" -eq 0 ]; then
  timeout 600 apt-get install -y -qq --no-install-recommends chromium >"$tmp/chromium-install.log" 2>&1
  browser=$(command -v chromium || true)
fi
if [ -n "$browser" ]; then
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,1600 \
    --screenshot="$tmp/report.png" "file://$tmp/runs/a/report/index.html" >"$tmp/chromium.log" 2>&1
  if python3 - "$tmp/report.png" <<'PY'; then ok; else fail "the screenshot is blank or missing"; fi
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IHDR":
        width, height, depth, color = struct.unpack(">IIBB", data[pos + 8:pos + 18])
    if kind == b"IDAT":
        idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
# Count distinct byte values over the image: a blank page is one colour (a handful of values).
distinct = len(set(raw[::7]))
assert distinct > 20, f"only {distinct} distinct byte values: blank"
print(f"screenshot {width}x{height}: {distinct} distinct byte values")
PY
else
  echo "report: screenshot skipped: chromium not installable ($(tail -n 1 "$tmp/chromium-install.log" 2>/dev/null))"
fi

echo "report: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
