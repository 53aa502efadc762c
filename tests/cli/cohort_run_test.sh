#!/usr/bin/env bash
# What launch/cohort-run builds from its options, checked on the mpirun line that --dry-run
# prints; nothing is started, so it needs neither mpirun ranks nor a built cohort.
# Usage: tests/cli/cohort_run_test.sh. Prints "N passed, M failed"; exits 1 on any failure.
set -uo pipefail
cohort_run=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/launch/cohort-run
export COHORT_BIN=/bin/true
passed=0
failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# check NAME EXPECTED_EXIT -- cohort-run arguments... ; then expect/reject on $output.
# Each check runs once; expect and reject add assertions on its output.
output=""
name=""
check() {
  name=$1
  local want_rc=$2
  shift 3
  local rc
  output=$("$cohort_run" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want_rc" ]; then
    fail "exit $rc, want $want_rc"
  else
    pass
  fi
}
pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL $name: $1; output:"
  echo "$output" | sed 's/^/  /' | head -10
}
# The printed mpirun line alone, so a pattern cannot match the note or an error message.
mpirun_line() { grep '^cohort-run: mpirun ' <<<"$output"; }
expect() {  # expect REGEX: the mpirun line matches
  if mpirun_line | grep -Eq -- "$1"; then pass; else fail "mpirun line lacks /$1/"; fi
}
reject() {  # reject REGEX: the mpirun line does not match
  if mpirun_line | grep -Eq -- "$1"; then fail "mpirun line has /$1/"; else pass; fi
}
says() {  # says REGEX: the output (errors included) matches
  if grep -Eq -- "$1" <<<"$output"; then pass; else fail "output lacks /$1/"; fi
}

check "disaggregated 1 learner" 0 -- --np 3 --learners 1 --threads 1 --dry-run cfg.yaml seed=7
expect " -np 3 "
expect "/bin/true train cfg\.yaml distributed\.colocated=false distributed\.learners=1 distributed\.rollout_workers=2 seed=7$"

check "explicit rollout workers, schedule" 0 -- --np 4 --learners 2 --rollout-workers 2 --schedule async-1 \
  --threads 1 --dry-run cfg.yaml
expect "distributed\.learners=2 distributed\.rollout_workers=2 distributed\.schedule=async-1"

check "colocated" 0 -- --np 2 --dry-run cfg.yaml run.name=x
expect " -np 2 "
reject "distributed\."
expect "/bin/true train cfg\.yaml run\.name=x$"

check "threads" 0 -- --np 1 --threads 2 --dry-run cfg.yaml
expect "-x COHORT_THREADS=2 -x OMP_NUM_THREADS=2 -x OPENBLAS_NUM_THREADS=2 "

check "subcommand" 0 -- --np 1 --subcommand sft --dry-run cfg.yaml
expect "/bin/true sft cfg\.yaml$"

cores=$(nproc)
check "fits: pinned" 0 -- --np 1 --threads "$cores" --dry-run cfg.yaml
expect "--map-by slot:PE=$cores --bind-to core "
reject "--oversubscribe"

check "oversubscribed" 0 -- --np $((cores * 32)) --dry-run cfg.yaml
expect "--oversubscribe --bind-to none "
expect "COHORT_THREADS=1 "
says "ranks share cores"

printf '# two alike nodes\nnode-a slots=%s max_slots=64\nnode-b slots=%s\n' "$cores" "$cores" >"$scratch/hosts"
check "hostfile" 0 -- --np $((cores * 2)) --hostfile "$scratch/hosts" --dry-run cfg.yaml
expect "--hostfile $scratch/hosts "
expect "--map-by slot:PE=1 --bind-to core "
reject "--oversubscribe"

# One rank per node gets all of this node's cores; the last line has no newline and still counts.
printf 'node-a slots=1' >"$scratch/one-slot"
check "hostfile, one slot per node" 0 -- --np 2 --hostfile "$scratch/one-slot" --dry-run cfg.yaml
expect "--map-by slot:PE=$cores --bind-to core -x COHORT_THREADS=$cores "

check "learners leave no rollout worker" 2 -- --np 3 --learners 3 --dry-run cfg.yaml
says "--np 3 with --learners 3 leaves no rank for rollout workers"

check "learners + workers != np" 2 -- --np 3 --learners 1 --rollout-workers 1 --dry-run cfg.yaml
says "--learners 1 \+ --rollout-workers 1 = 2, but --np is 3"

check "missing CONFIG" 2 -- --np 2 --dry-run
says "missing CONFIG"

check "missing --np" 2 -- --dry-run cfg.yaml
says "--np N is required"

check "unknown option" 2 -- --np 2 --gpus 8 cfg.yaml
says "unknown option '--gpus'"

check "bad schedule" 2 -- --np 2 --schedule async-2 --dry-run cfg.yaml
says "--schedule must be sync or async-1, got 'async-2'"

check "help" 0 -- --help
says "^Usage: launch/cohort-run --np N"

name="missing binary"
output=$(COHORT_BIN=/nonexistent/cohort "$cohort_run" --np 1 --dry-run cfg.yaml 2>&1)
if [ $? -eq 1 ]; then pass; else fail "exit is not 1"; fi
says "COHORT_BIN='/nonexistent/cohort' is not an executable file"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
