#!/usr/bin/env bash
# Loads cohort's Hugging Face exports in transformers and compares them with cohort: (a) the
# directories Safetensors.Exports* writes (Qwen2 tied with biases, Qwen2 with head_dim != hidden /
# heads, untied Llama; f32 and bf16 weights), whose f32 logits must equal cohort's to a relative
# error under 1e-4, and (b) the user's path: `cohort train` (GRPO, 2 steps), `cohort export --format
# hf --dtype f32`, then transformers' greedy generation must equal `cohort generate`'s token for token;
# (c) tiny random Hugging Face models that tests/hf/make_tiny_models.py makes (Llama with llama3 rope
# scaling in f32 shards, Qwen2 with linear rope scaling in bf16, Qwen3 with the q/k norm in f16; the
# Qwen3 one by the script itself, with logits from its reference implementation, where transformers has
# no Qwen3): HfTinyModels.* loads them in cohort, whose logits must equal theirs to a relative error
# under 1e-4, and exports them again, which must give the same tensors (checked again here in Python).
# Installs what is missing first: Debian's python3-torch (PyPI's torch pulls gigabytes of CUDA wheels)
# and the newest transformers that still runs on its torch 1.13; where an install fails it prints
# "hf: skipped: NAME not installable (...)" and exits 0.
# Usage: tests/hf/check_transformers.sh BUILD_DIR (holding tests/test_model and launch/cohort).
# Prints one line per check and "hf: N passed, M failed"; exits 1 on any mismatch.
set -uo pipefail
build=$(realpath "${1:?usage: tests/hf/check_transformers.sh BUILD_DIR}")
cd "$(dirname "$0")/../.." || exit 1
# Debian's interpreter: python3-torch installs into its dist-packages, which another python3 on
# PATH (pyenv, a venv) does not see.
python=${COHORT_HF_PYTHON:-/usr/bin/python3}
# The newest transformers that runs on Debian 12's torch 1.13.1 (measured: 4.50.0 and 4.50.3 import
# torch.distributed.tensor, which 1.13 lacks; 4.52.4, 4.57.6 and 5.0.0 disable torch older than 2).
# 4.48 is the first whose Qwen2 reads head_dim from config.json.
transformers_version=4.49.0
safetensors_version=0.8.0
for tool in test_model:tests/test_model cohort:launch/cohort; do
  [ -x "$build/${tool#*:}" ] || { echo "hf: FAILED: no ${tool%%:*} at $build/${tool#*:}"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

skip() {  # skip NAME LOG
  echo "hf: skipped: $1 not installable ($(grep -v '^\s*$' "$2" | tail -1))"
  exit 0
}
has() { "$python" -c "$1" >/dev/null 2>&1; }
apt_install() {  # apt_install PACKAGE: a fresh machine's package lists may be empty or old, so update once and retry
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$1" >>"$tmp/apt.log" 2>&1 ||
    { apt-get update >>"$tmp/apt.log" 2>&1 && apt-get install -y "$1" >>"$tmp/apt.log" 2>&1; }
}

wanted="import torch, transformers, safetensors
assert transformers.__version__ == '$transformers_version' and safetensors.__version__ == '$safetensors_version'"
if ! has "$wanted"; then
  if ! has 'import torch'; then
    apt_install python3-torch || skip python3-torch "$tmp/apt.log"
    has 'import torch' || { echo "import torch fails after installing python3-torch" >>"$tmp/apt.log"; skip python3-torch "$tmp/apt.log"; }
  fi
  has 'import pip' || apt_install python3-pip || skip python3-pip "$tmp/apt.log"
  # Debian marks its interpreter externally managed (PEP 668); older pips ignore the variable.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --quiet --disable-pip-version-check \
    "transformers==$transformers_version" "safetensors==$safetensors_version" >"$tmp/pip.log" 2>&1 ||
    skip "transformers==$transformers_version" "$tmp/pip.log"
  has "$wanted" || { echo "the pinned versions do not import" >>"$tmp/pip.log"; skip "transformers==$transformers_version" "$tmp/pip.log"; }
fi

install_seconds=$SECONDS
passed=0
failed=0
# check NAME CHECKS...: runs check_hf_load.py with the rest of the arguments after "--" and prints
# one line for each of CHECKS (its output lines by name); a missing line, a skip (everything it
# needs was just installed) or else a non-zero exit counts as a failure.
check() {
  local name=$1 log="$tmp/$1.log" line rc=0 failed_before=$failed
  shift
  local checks=()
  while [ "$1" != -- ]; do checks+=("$1"); shift; done
  shift
  "$python" tests/model/check_hf_load.py "$@" >"$log" 2>&1 || rc=$?
  for c in "${checks[@]}"; do
    line=$(grep -m1 "^$c: " "$log")
    case $line in
      "$c: ok"*) passed=$((passed + 1)); echo "hf: $name: $line" ;;
      "") failed=$((failed + 1)); echo "hf: FAILED $name: no $c line (exit $rc): $(tail -1 "$log")" ;;
      *) failed=$((failed + 1)); echo "hf: FAILED $name: $line" ;;
    esac
  done
  if [ "$rc" -ne 0 ] && [ "$failed" -eq "$failed_before" ]; then
    failed=$((failed + 1))
    echo "hf: FAILED $name: check_hf_load.py exited $rc: $(tail -1 "$log")"
  fi
}

# (a) Directories written by the GoogleTest, with cohort's logits for a fixed prompt.
if COHORT_HF_CHECK_DIR="$tmp/gtest" "$build/tests/test_model" --gtest_filter='Safetensors.Exports*' >"$tmp/gtest.log" 2>&1; then
  for dir in "$tmp"/gtest/*/; do
    check "$(basename "$dir")" safetensors hf-load -- "$dir"
  done
else
  failed=$((failed + 1))
  echo "hf: FAILED Safetensors.Exports*: $(grep -m1 -E 'Failure|error' "$tmp/gtest.log")"
fi

# (b) The user's path: train a little, export, load in transformers, generate greedily.
cohort=$build/launch/cohort
for i in $(seq 0 15); do echo "{\"prompt\": \"$((i % 4))+$((i / 4))=\", \"answer\": \"$((i % 4 + i / 4))\"}"; done >"$tmp/data.jsonl"
cat >"$tmp/run.yaml" <<YAML
model:
  size: small
data:
  train: $tmp/data.jsonl
rollout:
  group_size: 4
  prompts_per_step: 2
  max_new_tokens: 6
rewards:
  - kind: format
    pattern: '^[\x00-\x7F]'
optim:
  lr: 0.002
train:
  steps: 2
run:
  dir: $tmp/runs
  name: hf
YAML
if ! "$cohort" train "$tmp/run.yaml" >"$tmp/train.log" 2>&1; then
  failed=$((failed + 1))
  echo "hf: FAILED cohort train: $(tail -1 "$tmp/train.log")"
elif ! checkpoint="$tmp/runs/hf/checkpoints/$(cat "$tmp/runs/hf/checkpoints/latest")" ||
  ! "$cohort" export --checkpoint "$checkpoint" --format hf --dtype f32 --out "$tmp/export" >"$tmp/export.log" 2>&1; then
  failed=$((failed + 1))
  echo "hf: FAILED cohort export: $(tail -1 "$tmp/export.log" 2>/dev/null)"
else
  check trained-export safetensors hf-load generate -- "$tmp/export" --cohort "$cohort" --max-new-tokens 24 \
    --prompt "1+2=" --prompt "3+0=" --prompt "hello" --prompt "The answer is"
fi

# (c) Tiny random Llama, Qwen2 and Qwen3 models: cohort's logits against theirs, export after load.
tiny=$tmp/tiny
if ! "$python" tests/hf/make_tiny_models.py "$tiny" >"$tmp/make_tiny.log" 2>&1; then
  failed=$((failed + 1))
  echo "hf: FAILED make_tiny_models.py: $(tail -1 "$tmp/make_tiny.log")"
else
  grep '^make: ' "$tmp/make_tiny.log" | sed 's/^/hf: /'
  if COHORT_HF_TINY_DIR="$tiny" "$build/tests/test_model" --gtest_filter='HfTinyModels.*' >"$tmp/tiny_gtest.log" 2>&1 &&
    [ "$(grep -c '^hf-tiny: ' "$tmp/tiny_gtest.log")" -eq 3 ]; then
    passed=$((passed + 1))
    grep '^hf-tiny: ' "$tmp/tiny_gtest.log" | sed 's/^/hf: /'
    for name in llama qwen2 qwen3; do
      # transformers loads cohort's export and compares its logits with cohort's, where it has the family.
      loads=hf-load
      [ "$name" = qwen3 ] && ! has 'import transformers; transformers.Qwen3ForCausalLM' && loads=""
      check "$name-export" safetensors same-tensors $loads -- "$tiny/$name-export" --same-tensors "$tiny/$name"
    done
  else
    failed=$((failed + 1))
    echo "hf: FAILED HfTinyModels: $(grep -m1 -E 'Failure|error|Skipped' -A2 "$tmp/tiny_gtest.log" | tr '\n' ' ')"
  fi
fi

echo "hf: install and import checks took ${install_seconds}s, comparisons $((SECONDS - install_seconds))s"
echo "hf: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
