"""Compares cohort's math_verify verdicts with Hugging Face's math-verify package on the committed
table (tests/reward/math_verify_cases.jsonl): prints the agreement rate and every case on which
they differ. cohort's verdicts come from `test_reward --gtest_filter=MathVerify.CaseTable` run
with COHORT_MATH_VERIFY_VERDICTS=FILE (tests/hf/check_math_verify.sh does that).

math-verify is run as its README shows: gold = parse("$" + reference + "$"), answer =
parse(completion), verdict = verify(gold, answer), with its default extraction (LaTeX, then plain
expressions) and timeouts. A reference of which parse() yields no SymPy object (nothing, or only
the raw string) is math-verify's "no score", to line up with cohort's null.

Usage: check_math_verify.py CASES.jsonl VERDICTS.jsonl
Exit status 0 when it ran (disagreements are expected and documented in docs/rewards.md), 1 when
the inputs are missing or do not line up.
"""

import importlib.metadata
import json
import logging
import sys

import sympy
from math_verify import parse, verify

# math-verify logs every parse that times out with the whole input (the adversarial cases).
logging.getLogger("math_verify").setLevel(logging.ERROR)


def math_verify_verdict(completion, reference):
    try:
        gold = parse("$" + reference + "$")
    except Exception:  # math-verify raises on some inputs despite raise_on_error=False
        return None
    if not any(isinstance(g, (sympy.Basic, sympy.MatrixBase)) for g in gold):
        return None
    try:
        return bool(verify(gold, parse(completion)))
    except Exception:
        return False


def show(value):
    return {True: "true", False: "false", None: "null"}[value]


def clip(text, limit=90):
    text = json.dumps(text, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 12] + "...(%d chars)" % len(text)


def main():
    if len(sys.argv) != 3:
        print("usage: check_math_verify.py CASES.jsonl VERDICTS.jsonl", file=sys.stderr)
        return 1
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = [(number, json.loads(line)) for number, line in enumerate(f, 1) if line.strip()]
    with open(sys.argv[2], encoding="utf-8") as f:
        cohort = {v["line"]: v["cohort"] for v in map(json.loads, f) if v}
    missing = [number for number, _ in cases if number not in cohort]
    if missing:
        print("math-verify: FAILED: no cohort verdict for lines %s" % missing[:10])
        return 1

    agree = 0
    agree_expected = 0
    disagreements = []
    for number, case in cases:
        theirs = math_verify_verdict(case["completion"], case["reference"])
        ours = cohort[number]
        agree_expected += theirs == case["expected"]
        if theirs == ours:
            agree += 1
        else:
            disagreements.append((number, case, ours, theirs))
    total = len(cases)
    versions = ", ".join("%s %s" % (name, importlib.metadata.version(name))
                         for name in ("math-verify", "latex2sympy2_extended", "sympy"))
    print("math-verify: %s on %s" % (versions, sys.version.split()[0]))
    cohort_expected = sum(cohort[number] == case["expected"] for number, case in cases)
    print("math-verify: cohort agrees with the table on %d/%d cases" % (cohort_expected, total))
    print("math-verify: math-verify agrees with the table on %d/%d cases (%.1f%%)"
          % (agree_expected, total, 100.0 * agree_expected / total))
    print("math-verify: agreement with cohort: %d/%d (%.1f%%); %d disagreements:"
          % (agree, total, 100.0 * agree / total, len(disagreements)))
    for number, case, ours, theirs in disagreements:
        print("  line %d: cohort %s, math-verify %s: %s" % (number, show(ours), show(theirs), case["note"]))
        print("      reference %s, completion %s" % (clip(case["reference"], 50), clip(case["completion"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
