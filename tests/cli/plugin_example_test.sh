#!/usr/bin/env bash
# The reward plugin workflow a researcher follows, end to end: install cohort from a build tree,
# build examples/reward_plugin as a separate project against that install (find_package(cohort),
# cohort::reward_plugin), and load the library it produced into cohort's plugin loader and score
# with it (test_reward's RewardPlugin.ExamplePlugin, given the library in COHORT_EXAMPLE_PLUGIN).
# Usage: tests/cli/plugin_example_test.sh BUILD_DIR   (with the cohort and test_reward targets built)
# Prints "plugin example: PASS" and exits 0, or a FAIL line and exits 1.
set -uo pipefail
build=$(cd "${1:?usage: tests/cli/plugin_example_test.sh BUILD_DIR}" && pwd) || exit 1
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "plugin example: FAIL $1"
  [ -n "${2:-}" ] && tail -20 "$2"
  exit 1
}

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || fail "cmake --install $build" "$tmp/install.log"
for file in include/cohort/reward/plugin.h bin/cohort; do
  [ -e "$tmp/prefix/$file" ] || fail "the install lacks $file"
done
config=$(find "$tmp/prefix" -name cohortConfig.cmake | head -1)
[ -n "$config" ] || fail "the install lacks cohortConfig.cmake"

# The example exactly as its README builds it: a project of its own, only CMAKE_PREFIX_PATH to find cohort.
cmake -S "$source_dir/examples/reward_plugin" -B "$tmp/example" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Werror >"$tmp/configure.log" 2>&1 ||
  fail "configuring examples/reward_plugin against the install" "$tmp/configure.log"
cmake --build "$tmp/example" >"$tmp/build.log" 2>&1 || fail "building examples/reward_plugin" "$tmp/build.log"
plugin="$tmp/example/libkeyword_reward.so"
[ -f "$plugin" ] || fail "no $plugin after the build"
exported=$(nm -D --defined-only "$plugin" | awk '$2 == "T" {print $3}' | sort | tr '\n' ' ')
[ "$exported" = "cohort_reward_plugin_abi_version cohort_reward_plugin_register " ] ||
  fail "the plugin exports '$exported', expected only the two entry points"

test_reward="$build/tests/test_reward"
[ -x "$test_reward" ] || fail "no $test_reward (build the test_reward target)"
COHORT_EXAMPLE_PLUGIN="$plugin" "$test_reward" --gtest_filter=RewardPlugin.ExamplePlugin >"$tmp/test.log" 2>&1 ||
  fail "RewardPlugin.ExamplePlugin with the built plugin" "$tmp/test.log"
grep -q '^\[  PASSED  \] 1 test' "$tmp/test.log" || fail "RewardPlugin.ExamplePlugin did not run (skipped?)" "$tmp/test.log"
echo "plugin example: PASS (installed to a temporary prefix, built examples/reward_plugin against it, loaded and scored)"
