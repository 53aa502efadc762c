#!/usr/bin/env bash
# Re-renders every shipped chat template (tests/model/chat_templates/) over its conversations,
# and every single-construct template, with jinja2 in transformers' environment, and compares
# byte for byte with cohort's interpreter: the GoogleTest ChatTemplate.WritesRendersForJinja2Check
# writes cohort's renders, tests/hf/check_chat_templates.py renders with jinja2 and compares
# (also against the committed expected/ files, so a stale one shows up).
# Installs jinja2 (>= 3.1, what transformers requires) with pip when missing; where that fails it
# prints "chat templates: skipped: jinja2 not installable (...)" and exits 0.
# Usage: tests/hf/check_chat_templates.sh BUILD_DIR (holding tests/test_model).
# Prints each difference and "chat templates: N renders compared ..., M differences"; exits 1 on any.
set -uo pipefail
build=$(realpath "${1:?usage: tests/hf/check_chat_templates.sh BUILD_DIR}")
cd "$(dirname "$0")/../.." || exit 1
python=${COHORT_CHAT_TEMPLATE_PYTHON:-python3}
[ -x "$build/tests/test_model" ] || { echo "chat templates: FAILED: no test_model at $build/tests/test_model"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

skip() {  # skip LOG
  echo "chat templates: skipped: jinja2 not installable ($(grep -v '^\s*$' "$1" | tail -1))"
  exit 0
}
wanted='import sys, jinja2
sys.exit(0 if tuple(int(x) for x in jinja2.__version__.split(".")[:2]) >= (3, 1) else 1)'
if ! "$python" -c "$wanted" >/dev/null 2>&1; then
  # Debian marks its interpreter externally managed (PEP 668); older pips ignore the variable.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --quiet --disable-pip-version-check 'jinja2>=3.1,<4' \
    >"$tmp/pip.log" 2>&1 || skip "$tmp/pip.log"
  "$python" -c "$wanted" >>"$tmp/pip.log" 2>&1 || { echo "jinja2 >= 3.1 does not import after installing" >>"$tmp/pip.log"; skip "$tmp/pip.log"; }
fi

if ! COHORT_CHAT_TEMPLATE_RENDER_DIR="$tmp/renders" "$build/tests/test_model" \
  --gtest_filter='ChatTemplate.WritesRendersForJinja2Check' >"$tmp/gtest.log" 2>&1; then
  echo "chat templates: FAILED ChatTemplate.WritesRendersForJinja2Check: $(grep -m1 -E 'Failure|error' "$tmp/gtest.log")"
  exit 1
fi
"$python" tests/hf/check_chat_templates.py compare "$tmp/renders"
