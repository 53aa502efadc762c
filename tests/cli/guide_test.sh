#!/usr/bin/env bash
# docs/guide.md cannot rot: its `bash` blocks run in order, from a work directory whose build/launch/cohort
# is the real binary with the training shrunk to a few steps (the guide's commands stay verbatim), and every
# error message of its troubleshooting table must still be written somewhere in the sources.
#   tests/cli/guide_test.sh BUILD_DIR
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(realpath "${1:-build}")
guide=$repo/docs/guide.md
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
passed=0
failed=0

# The work directory: the repository's examples and launch scripts, a build/ whose cohort shrinks runs.
ln -s "$repo/examples" "$work/examples"
mkdir -p "$work/launch" "$work/build/launch" "$work/build/examples"
cp -r "$repo/launch/." "$work/launch/"
ln -s "$build/examples/arithmetic_data" "$work/build/examples/arithmetic_data"
cat >"$work/build/launch/cohort" <<SH
#!/usr/bin/env bash
# The real cohort, with train and sft runs cut to a few small steps.
sub=\$1
case \$sub in
  train|sft) exec "$build/launch/cohort" "\$@" train.steps=3 sft.steps=20 rollout.prompts_per_step=4 \
      rollout.group_size=4 train.eval_prompts=8 model.size=tiny --quiet ;;
  *) exec "$build/launch/cohort" "\$@" ;;
esac
SH
chmod +x "$work/build/launch/cohort"
export COHORT_BIN=$work/build/launch/cohort

# The blocks, each run in one bash (set -e), in order; cmake is a no-op here (tests/run built the tree) and
# launch/install-deps runs for real (it is idempotent).
python3 - "$guide" "$work/blocks" <<'PY'
import os, sys
text = open(sys.argv[1], encoding="utf-8").read().split("\n")
os.makedirs(sys.argv[2])
n, block = 0, None
for line in text:
    if block is None and line.strip() == "```bash":
        block = []
    elif block is not None and line.strip() == "```":
        n += 1
        open(os.path.join(sys.argv[2], f"{n:02d}.sh"), "w").write("\n".join(block) + "\n")
        block = None
    elif block is not None:
        block.append(line)
print(f"guide: {n} bash blocks")
PY
cd "$work" || exit 1
cmake() { :; }
export -f cmake
for block in "$work"/blocks/*.sh; do
  name=$(basename "$block" .sh)
  # Its own bash, not inside an `if`: there `set -e` would be ignored and a failing line pass unseen.
  bash -euo pipefail "$block" >"$work/$name.log" 2>&1
  status=$?
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL guide block $name (exit $status):"
    sed 's/^/    /' "$block"
    tail -n 8 "$work/$name.log" | sed 's/^/  > /'
  fi
done

# Every message of the troubleshooting table is still written by the code: its longest fixed part (the
# text between the placeholders X, N, M, S, i, NAME and '...') occurs in a source file.
while IFS= read -r message; do
  fragment=$(python3 -c '
import re, sys
parts = re.split(r"\.\.\.|\bX\b|\bN\b|\bM\b|\bS\b|\bi\b|\bNAME\b", sys.argv[1])
print(max((p.strip(" :()'"'"'") for p in parts), key=len))' "$message")
  if grep -rqF --include='*.cpp' --include='*.h' -- "$fragment" "$repo"/{reward,trainer,rollout,model,comm,launch,kernels}; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL the guide's message '$message' (fragment '$fragment') is in no source file"
  fi
done < <(sed -n '/^## 11. Troubleshooting/,$p' "$guide" | grep '^| `' | sed 's/^| `\([^`]*\)`.*/\1/')

echo "guide: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
