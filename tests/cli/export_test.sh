#!/usr/bin/env bash
# `cohort export` of a trained checkpoint to Hugging Face (f32, bf16) and GGUF (f32, f16, bf16, q8_0), read
# back by cohort's own readers: `cohort inspect` accepts each, and greedy generation from the f32 exports
# equals generation from the checkpoint, token for token. (llama.cpp's own reading of the GGUF export is
# checked by tests/model/check_gguf_llama_cpp.py; the tensor round trips by tests/model/test_gguf.cpp and
# test_safetensors.cpp.)
# Usage: tests/cli/export_test.sh PATH/TO/cohort. Prints "N passed, M failed".
set -uo pipefail
cohort=${1:?usage: tests/cli/export_test.sh PATH/TO/cohort}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

for i in $(seq 0 31); do echo "{\"prompt\": \"$((i % 8))+$((i / 8))=\", \"answer\": \"$((i % 8 + i / 8))\"}"; done > "$tmp/data.jsonl"
cat > "$tmp/run.yaml" <<YAML
model:
  size: small
data:
  train: $tmp/data.jsonl
rollout:
  group_size: 4
  prompts_per_step: 4
  max_new_tokens: 6
rewards:
  - kind: format
    pattern: '^[\x00-\x7F]'
optim:
  lr: 0.002
train:
  steps: 6
run:
  dir: $tmp/runs
  name: r
YAML
"$cohort" train "$tmp/run.yaml" >"$tmp/log" 2>&1 || { echo "FAIL training: $(tail -3 "$tmp/log")"; exit 1; }
ck="$tmp/runs/r/checkpoints/$(cat "$tmp/runs/r/checkpoints/latest")"

generate() {  # generate MODEL: greedy completions of three prompts
  for p in "1+2=" "7+0=" "hello"; do
    "$cohort" generate --checkpoint "$1" --prompt "$p" --max-new-tokens 24 | grep '^completion'
  done
}
want=$(generate "$ck")
[ -n "$want" ] && ok || fail "no completions from the checkpoint"

for spec in hf:f32 hf:bf16 gguf:f32 gguf:f16 gguf:bf16 gguf:q8_0; do
  format=${spec%%:*} dtype=${spec##*:}
  out="$tmp/export-$format-$dtype"
  if ! "$cohort" export --checkpoint "$tmp/runs/r" --format "$format" --dtype "$dtype" --out "$out" >"$tmp/elog" 2>&1; then
    fail "export $spec: $(tail -2 "$tmp/elog")"
    continue
  fi
  model=$out
  [ "$format" = gguf ] && model="$out/model-$dtype.gguf"
  "$cohort" inspect "$model" >/dev/null 2>&1 && ok || fail "inspect $model"
  if [ "$format" = hf ]; then
    for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
      [ -s "$out/$f" ] || fail "export $spec has no $f"
    done
    grep -q '"eos_token": "<|eos|>"' "$out/tokenizer_config.json" && ok || fail "tokenizer_config.json names no eos"
  fi
  got=$(generate "$model")
  if [ "$dtype" = f32 ]; then
    [ "$got" = "$want" ] && ok || fail "greedy generation from the $spec export differs:"$'\n'"$got"$'\n'"want:"$'\n'"$want"
  else
    [ -n "$got" ] && ok || fail "no generation from the $spec export"
  fi
done
out=$("$cohort" export --checkpoint "$tmp/runs/r" --format hf --dtype q8_0 --out "$tmp/x" 2>&1)
grep -q "writes f32 or bf16" <<<"$out" && ok || fail "hf q8_0 was not refused: $out"

# Past --max-shard-size the HF export is Hugging Face's sharded form; cohort inspect lists the shards' tensors
# and cohort generate reads it back to the same greedy tokens.
if "$cohort" export --checkpoint "$tmp/runs/r" --format hf --max-shard-size 20kB --out "$tmp/sharded" >"$tmp/elog" 2>&1 &&
  [ -f "$tmp/sharded/model.safetensors.index.json" ] && [ ! -e "$tmp/sharded/model.safetensors" ]; then ok; else
  fail "sharded export: $(tail -2 "$tmp/elog"; ls "$tmp/sharded")"; fi
shards=$(find "$tmp/sharded" -name 'model-*-of-*.safetensors' | wc -l)
[ "$shards" -ge 2 ] && ok || fail "sharded export wrote $shards shards"
listed=$("$cohort" inspect "$tmp/sharded" --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(len(j["tensors"]), len(j["files"]))')
[ "$listed" = "$("$cohort" inspect "$tmp/export-hf-f32" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tensors"]))') $shards" ] &&
  ok || fail "inspect of the sharded export lists '$listed' (tensors files)"
[ "$(generate "$tmp/sharded")" = "$want" ] && ok || fail "greedy generation from the sharded export differs"

echo "export: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
