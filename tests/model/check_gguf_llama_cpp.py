#!/usr/bin/env python3
# Checks that llama.cpp (through llama-cpp-python) loads the GGUF files cohort exported and
# greedily generates the same tokens cohort did. Run by hand or from tests/run; the C++
# tests must not need Python.
#
#   COHORT_GGUF_CHECK_DIR=/tmp/gguf ./build/tests/test_model --gtest_filter='Gguf.ExportsForLlamaCpp*'
#   python3 tests/model/check_gguf_llama_cpp.py /tmp/gguf
#
# DIR holds the .gguf files and expected.json: a list with, per file, the prompt token ids,
# the greedy continuation cohort computed ("expected"), the logits cohort saw at each step
# and the context size to use. The prompt is evaluated as token ids (no tokenization, no
# BOS added), then each step takes the argmax of llama.cpp's logits and feeds it back.
# Prints one line per file ("ok ..." or "FAIL ..."), with the largest difference between
# llama.cpp's logits and cohort's along the way, which must also be small for f32 weights
# (a wrong rotary permutation or tensor layout shows there even when the argmax survives);
# exits 1 on a mismatch, 0 with a "skipped" line when llama-cpp-python cannot be imported.
import argparse
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser(description="Compare llama.cpp's greedy decoding of cohort's GGUF files.")
    parser.add_argument("directory")
    args = parser.parse_args()
    try:
        import numpy as np
        from llama_cpp import Llama
        import llama_cpp
    except (ImportError, OSError, RuntimeError) as e:  # not installed, or its shared library does not load
        print(f"skipped: llama-cpp-python not installable ({type(e).__name__}: {e})")
        return 0

    with open(os.path.join(args.directory, "expected.json")) as f:
        cases = json.load(f)
    if not cases:
        print("FAIL: expected.json lists no files")
        return 1
    failed = 0
    for case in cases:
        path = os.path.join(args.directory, case["file"])
        prompt, expected = case["prompt"], case["expected"]
        label = f"{case['file']} ({case.get('architecture', '?')}, {case.get('dtype', '?')})"
        try:
            llm = Llama(model_path=path, n_ctx=case["n_ctx"], logits_all=False, verbose=False)
        except Exception as e:  # llama.cpp refused the file: the export is wrong
            print(f"FAIL {label}: llama.cpp cannot load it: {type(e).__name__}: {e}")
            failed += 1
            continue
        if llm.n_vocab() != len(case["logits"][0]):
            print(f"FAIL {label}: llama.cpp sees a vocab of {llm.n_vocab()}, cohort {len(case['logits'][0])}")
            failed += 1
            continue
        def last_logits():
            # llama-cpp-python 0.3 keeps no scores unless logits_all; read the context's own
            # buffer, which holds the logits of the last token of the last batch.
            pointer = llama_cpp.llama_get_logits(llm.ctx)
            return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float64)

        llm.reset()
        llm.eval(prompt)
        generated, max_diff = [], 0.0
        for step in range(len(expected)):
            logits = last_logits()
            max_diff = max(max_diff, float(np.abs(logits - np.asarray(case["logits"][step])).max()))
            token = int(np.argmax(logits))
            generated.append(token)
            if token != expected[step]:
                break
            if step + 1 < len(expected):
                llm.eval([token])
        detail = (f"{len(expected)} greedy tokens after a {len(prompt)}-token prompt; max |logit diff| "
                  f"{max_diff:.3g}, smallest cohort margin {case.get('min_margin', float('nan')):.3g} "
                  f"(llama-cpp-python {llama_cpp.__version__})")
        # For f32 weights llama.cpp and cohort compute the same function in different orders,
        # with llama.cpp's K/V cache in f16: measured max |diff| ~1.2e-4 of the largest logit
        # (llama-cpp-python 0.3.36). Q8_0 weights are exempt: llama.cpp quantizes the
        # activations too (measured ~1e-2 of the largest logit), so only the tokens must agree.
        scale = float(np.abs(np.asarray(case["logits"])).max())
        tolerance = None if case.get("dtype") == "q8_0" else 1e-3 * scale
        if generated == expected and (tolerance is None or max_diff <= tolerance):
            print(f"ok {label}: {detail}")
        elif generated == expected:
            print(f"FAIL {label}: the tokens agree but llama.cpp's logits differ from cohort's by up to "
                  f"{max_diff:.3g}, more than {tolerance:.3g} (1e-3 of the largest logit); {detail}")
            failed += 1
        else:
            step = len(generated) - 1
            print(f"FAIL {label}: step {step}: llama.cpp chose {generated[step]}, cohort {expected[step]}; "
                  f"llama.cpp's tokens {generated}, cohort's {expected[:len(generated)]}; {detail}")
            failed += 1
        if hasattr(llm, "close"):  # llama-cpp-python >= 0.2.80 frees the model explicitly
            llm.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
