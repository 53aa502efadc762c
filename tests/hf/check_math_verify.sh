#!/usr/bin/env bash
# Compares cohort's math_verify reward with Hugging Face's math-verify package (PyPI math-verify,
# import math_verify) on the committed table tests/reward/math_verify_cases.jsonl: runs the table's
# GoogleTest, which writes cohort's verdicts, then check_math_verify.py, which prints the agreement
# rate and every disagreement (docs/rewards.md explains each one).
# Installs math-verify first where it is missing; where that fails it prints
# "math-verify: skipped: math-verify not installable (REASON)" and exits 0.
# Usage: tests/hf/check_math_verify.sh BUILD_DIR (holding tests/test_reward).
# Set COHORT_MATH_VERIFY_PYTHON to choose the interpreter (default: python3 on PATH).
set -uo pipefail
build=$(realpath "${1:?usage: tests/hf/check_math_verify.sh BUILD_DIR}")
cd "$(dirname "$0")/../.." || exit 1
python=${COHORT_MATH_VERIFY_PYTHON:-python3}
# The version the disagreements in docs/rewards.md were measured with.
math_verify_version=0.9.0
[ -x "$build/tests/test_reward" ] || { echo "math-verify: FAILED: no test_reward at $build/tests/test_reward"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

skip() {  # skip LOG
  echo "math-verify: skipped: math-verify not installable ($(grep -v '^\s*$' "$1" | tail -1))"
  exit 0
}
wanted="import math_verify, importlib.metadata as m; assert m.version('math-verify') == '$math_verify_version'"
if ! "$python" -c "$wanted" >/dev/null 2>&1; then
  command -v "$python" >"$tmp/pip.log" 2>&1 || { echo "$python not found" >>"$tmp/pip.log"; skip "$tmp/pip.log"; }
  "$python" -m pip --version >>"$tmp/pip.log" 2>&1 || skip "$tmp/pip.log"
  # Debian marks its interpreter externally managed (PEP 668); older pips ignore the variable.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --quiet --disable-pip-version-check \
    "math-verify==$math_verify_version" >>"$tmp/pip.log" 2>&1 || skip "$tmp/pip.log"
  "$python" -c "$wanted" >>"$tmp/pip.log" 2>&1 || skip "$tmp/pip.log"
fi

cases=$PWD/tests/reward/math_verify_cases.jsonl
if ! COHORT_MATH_VERIFY_VERDICTS="$tmp/verdicts.jsonl" COHORT_MATH_VERIFY_CASES="$cases" \
  "$build/tests/test_reward" --gtest_filter='MathVerify.CaseTable' >"$tmp/gtest.log" 2>&1; then
  # The table test failing means cohort disagrees with the table; still compare, but fail.
  echo "math-verify: FAILED MathVerify.CaseTable: $(grep -m1 -E 'Failure|line [0-9]+' "$tmp/gtest.log")"
  gtest_failed=1
fi
[ -s "$tmp/verdicts.jsonl" ] || { echo "math-verify: FAILED: the GoogleTest wrote no verdicts"; exit 1; }
"$python" tests/hf/check_math_verify.py "$cases" "$tmp/verdicts.jsonl" || exit 1
[ "${gtest_failed:-0}" -eq 0 ]
