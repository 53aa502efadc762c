#!/usr/bin/env bash
# The thread setting's order, as every command obeys it: --threads, then run.threads, then
# COHORT_THREADS, then the cores the process was given (kernels/threads.h). Each command prints
# the count it uses and where it came from; the counts below are chosen to differ from each other
# and from this machine's cores, so a setting that was ignored shows as a wrong number.
# Usage: tests/cli/threads_test.sh PATH/TO/cohort. Prints "N passed, M failed".
set -uo pipefail
cohort=${1:?usage: tests/cli/threads_test.sh PATH/TO/cohort}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect() {  # expect NAME REGEX -- command...
  local name=$1 want=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ] && grep -Eq -- "$want" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: exit $rc, wanted /$want/, output:"
    echo "$out" | tail -8
  fi
}

printf '{"prompt": "1+1=", "answer": "2", "response": "2"}\n' > "$tmp/data.jsonl"
cat > "$tmp/run.yaml" <<YAML
model:
  size: tiny
data:
  train: $tmp/data.jsonl
  test: $tmp/data.jsonl
rollout:
  group_size: 2
  prompts_per_step: 1
  max_new_tokens: 2
rewards:
  - name: accuracy
    kind: exact_match
train:
  steps: 1
sft:
  steps: 1
  batch_size: 1
run:
  dir: $tmp/runs
YAML
cores=$(env -u COHORT_THREADS -u OMP_NUM_THREADS "$cohort" config "$tmp/run.yaml" | sed -n 's/^# threads: \([0-9]*\) .*/\1/p')
[ -n "$cores" ] || { echo "FAIL: cohort config printed no '# threads:' line"; exit 1; }
# Counts that are none of each other and not the default.
a=$((cores + 1)) b=$((cores + 2)) c=$((cores + 3))

for cmd in train sft eval config; do
  run=("$cohort" "$cmd" "$tmp/run.yaml")
  [ "$cmd" = eval ] || run+=(run.name="t-$cmd")
  line="threads: "
  [ "$cmd" = config ] && line="# threads: "
  expect "$cmd --threads first" "^${line}$a threads \(from --threads\)" -- \
    env COHORT_THREADS=$c "${run[@]}" run.threads=$b --threads $a
  expect "$cmd run.threads second" "^${line}$b threads \(from run.threads\)" -- \
    env COHORT_THREADS=$c "${run[@]}" run.threads=$b
  expect "$cmd COHORT_THREADS third" "^${line}$c threads \(from COHORT_THREADS\)" -- \
    env COHORT_THREADS=$c "${run[@]}"
  expect "$cmd cores last" "^${line}$cores threads? \(from the cores this process was given\)" -- \
    env -u COHORT_THREADS "${run[@]}"
done
gen=("$cohort" generate --model tiny --max-new-tokens 2)
expect "generate --threads first" "on $a threads \(from --threads\)" -- env COHORT_THREADS=$c "${gen[@]}" --threads $a
expect "generate COHORT_THREADS next" "on $c threads \(from COHORT_THREADS\)" -- env COHORT_THREADS=$c "${gen[@]}"
expect "generate cores last" "on $cores threads? \(from the cores" -- env -u COHORT_THREADS "${gen[@]}"
# The choice reaches OpenMP and OpenBLAS: each step's metrics carry the counts the kernels saw.
kernels() {  # kernels NAME WANT CHOICE...: train with the settings CHOICE, then read step 1's counts
  local name=$1 want=$2
  shift 2
  expect "$name reaches the kernels" "\"threads\":$want,\"threads/openblas\":$want" -- \
    bash -c "$* '$cohort' train '$tmp/run.yaml' run.name=$name \${EXTRA:-} >/dev/null && sed -n 2p '$tmp/runs/$name/metrics.jsonl'"
}
EXTRA="--threads $a" kernels k-cli "$a" env COHORT_THREADS=$c
EXTRA="run.threads=$b" kernels k-config "$b" env COHORT_THREADS=$c
kernels k-env "$c" env COHORT_THREADS=$c

echo "threads: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
