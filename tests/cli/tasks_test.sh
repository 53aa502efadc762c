#!/usr/bin/env bash
# examples/gsm8k and examples/math as a user runs them: GRPO from a Hugging Face directory given on the
# command line (its tokenizer.json read by the BPE tokenizer, its chat template for examples/math), on
# GSM8K- and MATH-format rows, a few steps of a small model on the CPU. The directory is made by cohort
# itself (a one-step run's model/, with a chat template added to its tokenizer_config.json).
# Usage: tests/cli/tasks_test.sh PATH/TO/cohort. Prints "N passed, M failed".
set -uo pipefail
cohort=$(realpath "${1:?usage: tests/cli/tasks_test.sh PATH/TO/cohort}")
root=$(cd "$(dirname "$0")/../.." && pwd)
passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
export COHORT_THREADS=${COHORT_THREADS:-2}

# A Hugging Face directory: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
for i in $(seq 0 15); do echo "{\"prompt\": \"$i+1=\", \"answer\": \"$((i + 1))\"}"; done > plain.jsonl
"$cohort" train /dev/stdin run.name=base run.dir="$tmp/runs" >base.log 2>&1 <<YAML || fail "base run: $(tail -3 base.log)"
model: {size: small}
data: {train: $tmp/plain.jsonl}
rollout: {group_size: 2, prompts_per_step: 1, max_new_tokens: 2}
rewards: [{name: accuracy, kind: exact_match}]
train: {steps: 1}
YAML
python3 - "$tmp/runs/base/model/tokenizer_config.json" "$root/tests/model/chat_templates/qwen2.5-instruct.jinja" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["chat_template"] = open(sys.argv[2]).read()
json.dump(config, open(sys.argv[1], "w"), indent=2)
PY

python3 - <<'PY'
import json
with open("gsm8k.jsonl", "w") as f:
    for i in range(12):
        f.write(json.dumps({"question": f"Tom has {i} apples and buys {i + 1} more. How many now?",
                            "answer": f"{i} + {i + 1} = <<{i}+{i + 1}={2 * i + 1}>>{2 * i + 1}\n#### {2 * i + 1}"}) + "\n")
    f.write(json.dumps({"question": "A row without a final answer", "answer": "no hash line"}) + "\n")
with open("math.jsonl", "w") as f:
    for i in range(12):
        f.write(json.dumps({"problem": f"Compute {i}/2.", "solution": f"Hence $\\boxed{{\\frac{{{i}}}{{2}}}}$."}) + "\n")
PY
short=(run.dir="$tmp/runs" train.steps=2 rollout.max_new_tokens=8 rollout.prompts_per_step=2 rollout.group_size=4
  train.eval_prompts=2 train.checkpoint_every=0)

if "$cohort" train "$root/examples/gsm8k/grpo.yaml" model.init="$tmp/runs/base/model" data.train=gsm8k.jsonl \
    data.test=gsm8k.jsonl "${short[@]}" >gsm8k.log 2>&1; then ok; else fail "examples/gsm8k: $(tail -3 gsm8k.log)"; fi
grep -q "tokenizer: $tmp/runs/base/model/tokenizer.json" gsm8k.log && ok || fail "gsm8k: tokenizer.json not read: $(head -5 gsm8k.log)"
grep -q "1 without a final answer to score" gsm8k.log && ok || fail "gsm8k: the row without an answer was not counted"
grep -q '"prompt":"A conversation between User and Assistant.' runs/gsm8k-grpo/rollouts/step_1.jsonl && ok ||
  fail "gsm8k: no R1-Zero prompt in $(head -c 300 runs/gsm8k-grpo/rollouts/step_1.jsonl)"
grep -q '"reward/accuracy/scored"' runs/gsm8k-grpo/metrics.jsonl && ok || fail "gsm8k: no math_verify metrics"
cmp -s runs/base/model/tokenizer.json runs/gsm8k-grpo/model/tokenizer.json && ok ||
  fail "gsm8k: the run's model/ does not keep the tokenizer it trained with"

if "$cohort" train "$root/examples/math/grpo.yaml" model.init="$tmp/runs/base/model" data.train=math.jsonl \
    data.test=math.jsonl "${short[@]}" >math.log 2>&1; then ok; else fail "examples/math: $(tail -3 math.log)"; fi
grep -q '"prompt":"<|im_start|>system\\nYou are Qwen' runs/math-grpo/rollouts/step_1.jsonl && ok ||
  fail "math: the prompt did not go through the chat template: $(head -c 300 runs/math-grpo/rollouts/step_1.jsonl)"
grep -q 'put your final answer within \\\\boxed{}.<|im_end|>\\n<|im_start|>assistant\\n"' runs/math-grpo/rollouts/step_1.jsonl && ok ||
  fail "math: no generation prompt after the user turn"
grep -q "chat_template" runs/math-grpo/model/tokenizer_config.json && ok || fail "math: the chat template was not kept"

echo "tasks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
