#!/usr/bin/env bash
# Compares cohort's BpeTokenizer with Hugging Face `tokenizers` (PyPI): check_tokenizers.py trains
# four byte-level BPE tokenizers (GPT-2, Llama 3 and Qwen2 pre-tokenizer regexes, and ByteLevel with
# add_prefix_space behind a MergedWithPrevious split; a few thousand merges, special and non-special
# added tokens) and writes 10,000+ generated lines with tokenizers' ids; the GoogleTest
# BpeTokenizerHf.EqualsTokenizersLineByLine then encodes each line with cohort (specials matched, and
# specials as text = encode_special_tokens) and decodes, and counts every difference.
# Installs `tokenizers` with pip when it is missing; where that fails it prints
# "tokenizers: skipped: tokenizers not installable (REASON)" and exits 0.
# Usage: tests/hf/check_tokenizers.sh BUILD_DIR (holding tests/test_model) [--lines N]
# Prints one line per tokenizer and "tokenizers: N passed, M failed"; exits 1 on any mismatch.
set -uo pipefail
build=$(realpath "${1:?usage: tests/hf/check_tokenizers.sh BUILD_DIR [--lines N]}")
shift
lines=10000
while [ $# -gt 0 ]; do
  case $1 in
    --lines) lines=$2; shift 2 ;;
    *) echo "tokenizers: FAILED: unknown option $1 (options: --lines N)"; exit 2 ;;
  esac
done
cd "$(dirname "$0")/../.." || exit 1
python=${COHORT_HF_PYTHON:-/usr/bin/python3}
[ -x "$python" ] || python=python3
test_model=${COHORT_TEST_MODEL:-$build/tests/test_model}
[ -x "$test_model" ] || { echo "tokenizers: FAILED: no test_model at $test_model"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

skip() {  # skip LOG
  echo "tokenizers: skipped: tokenizers not installable ($(grep -v '^\s*$' "$1" | tail -1))"
  exit 0
}
has() { "$python" -c "$1" >/dev/null 2>&1; }

if ! has 'import tokenizers'; then
  if ! has 'import pip'; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y python3-pip || { apt-get update && apt-get install -y python3-pip; }; } >"$tmp/apt.log" 2>&1 ||
      skip "$tmp/apt.log"
  fi
  # Debian marks its interpreter externally managed (PEP 668); older pips ignore the variable.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --quiet --disable-pip-version-check tokenizers \
    >"$tmp/pip.log" 2>&1 || skip "$tmp/pip.log"
  has 'import tokenizers' || { echo "import tokenizers fails after pip install" >>"$tmp/pip.log"; skip "$tmp/pip.log"; }
fi

if ! "$python" tests/hf/check_tokenizers.py make "$tmp/data" --lines "$lines" --bench-bytes 0 >"$tmp/make.log" 2>&1; then
  echo "tokenizers: FAILED: check_tokenizers.py make: $(tail -1 "$tmp/make.log")"
  echo "tokenizers: 0 passed, 1 failed"
  exit 1
fi
echo "tokenizers: trained with $(tail -1 "$tmp/make.log")"

passed=0
failed=0
for name in gpt2 llama3 qwen2 prefix; do
  log="$tmp/$name.log"
  rc=0
  COHORT_TOKENIZER_CHECK="$tmp/data/$name" "$test_model" --gtest_filter='BpeTokenizerHf.*' >"$log" 2>&1 || rc=$?
  line=$(grep -m1 "^tokenizers: $name: " "$log")
  if [ "$rc" -eq 0 ] && [ -n "$line" ] && ! grep -q SKIPPED "$log"; then
    passed=$((passed + 1))
    echo "$line"
  else
    failed=$((failed + 1))
    echo "tokenizers: FAILED $name: ${line:-no result line (exit $rc)}"
    grep -A5 -m3 "^line " "$log" | sed 's/^/  /'
  fi
done
echo "tokenizers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
