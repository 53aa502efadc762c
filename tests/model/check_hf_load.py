#!/usr/bin/env python3
# Checks that a Hugging Face directory cohort exported (config.json + model.safetensors)
# loads in the Python ecosystem. The C++ tests must not need Python; tests/hf/check_transformers.sh
# installs torch and transformers where it can and runs this on every export it makes.
#
#   COHORT_HF_CHECK_DIR=/tmp/hf ./build/tests/test_model --gtest_filter='Safetensors.Exports*'
#   python3 tests/model/check_hf_load.py /tmp/hf/tiny
#   python3 tests/model/check_hf_load.py EXPORT_DIR --cohort build/launch/cohort --prompt "1+2="
#
# 1. safetensors: the `safetensors` package opens the file; its tensor names and shapes are
#    exactly those config.json implies for Llama/Qwen2/Qwen3 (no tied lm_head), and its values
#    equal an independent numpy decode of the bytes.
# 2. hf-load: where torch and transformers import, AutoModelForCausalLM loads the directory
#    with no missing or unexpected weights, its parameters equal the file's, and, when the
#    export wrote expected_logits.json, its f32 logits equal cohort's (max |a - b| / max |b|
#    under 1e-4). A Qwen3 directory where transformers has no Qwen3 (before 4.51) is skipped.
# 2b. same-tensors (with --same-tensors ORIGINAL_DIR): every tensor of the export equals the
#    original directory's (single file or shards), names, shapes and values decoded to f32, as
#    tests/hf/check_transformers.sh checks cohort's export of a model it loaded.
# 3. generate (with --cohort): transformers' greedy generation, with the directory's own
#    generation_config.json, gives token for token what `cohort generate --checkpoint DIR` gives.
# Prints one line per check ("... ok ..." or "... skipped: <reason>"); exits 1 on a mismatch.
import argparse
import json
import os
import re
import struct
import subprocess
import sys


def expected_shapes(config):
    """HF parameter names and shapes of LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM for config.json."""
    hidden, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    qwen2 = config.get("model_type") == "qwen2"
    qwen3 = config.get("model_type") == "qwen3"
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,)}
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
        shapes[p + "self_attn.q_proj.weight"] = (heads * head_dim, hidden)
        shapes[p + "self_attn.k_proj.weight"] = (kv_heads * head_dim, hidden)
        shapes[p + "self_attn.v_proj.weight"] = (kv_heads * head_dim, hidden)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, heads * head_dim)
        if qwen2:
            shapes[p + "self_attn.q_proj.bias"] = (heads * head_dim,)
            shapes[p + "self_attn.k_proj.bias"] = (kv_heads * head_dim,)
            shapes[p + "self_attn.v_proj.bias"] = (kv_heads * head_dim,)
        if qwen3:
            shapes[p + "self_attn.q_norm.weight"] = (head_dim,)
            shapes[p + "self_attn.k_norm.weight"] = (head_dim,)
        shapes[p + "mlp.gate_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.up_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, inter)
    if not config.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, hidden)
    return shapes


def decode_raw(path):
    """name -> float32 numpy array, decoded from the bytes without the safetensors package."""
    import numpy as np

    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        if entry["dtype"] == "F32":
            values = np.frombuffer(raw, dtype="<f4")
        elif entry["dtype"] == "F16":
            values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif entry["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{name}: unexpected dtype {entry['dtype']}")
        tensors[name] = values.reshape(entry["shape"])
    return header.get("__metadata__"), tensors


def decode_directory(directory):
    """name -> float32 array over model.safetensors or the shards model.safetensors.index.json names."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(decode_raw(os.path.join(directory, name))[1])
    return tensors


def check_same_tensors(directory, original):
    import numpy as np

    mine, theirs = decode_directory(directory), decode_directory(original)
    problems = [f"missing {n}" for n in sorted(set(theirs) - set(mine))]
    problems += [f"unexpected {n}" for n in sorted(set(mine) - set(theirs))]
    for name in sorted(set(mine) & set(theirs)):
        if mine[name].shape != theirs[name].shape:
            problems.append(f"{name}: shape {mine[name].shape}, the original's {theirs[name].shape}")
        elif not np.array_equal(mine[name], theirs[name], equal_nan=True):
            problems.append(f"{name}: values differ from the original's")
    if problems:
        raise SystemExit("same-tensors: FAILED\n  " + "\n  ".join(problems))
    return (f"ok: the {len(mine)} tensors of {os.path.basename(os.path.normpath(directory))} equal those of "
            f"{os.path.basename(os.path.normpath(original))} (names, shapes, values)")


def check_safetensors(weights, config):
    try:
        import numpy as np
        from safetensors import safe_open
    except ImportError as e:
        return "skipped: " + str(e)
    metadata, raw = decode_raw(weights)
    want = expected_shapes(config)
    problems = []
    with safe_open(weights, framework="np") as f:
        names = set(f.keys())
        if f.metadata() != metadata or (metadata or {}).get("format") != "pt":
            problems.append(f"metadata {f.metadata()!r} (transformers needs format=pt)")
        for name in sorted(names | set(want)):
            if name not in names:
                problems.append(f"missing {name}")
                continue
            if name not in want:
                problems.append(f"unexpected {name}")
                continue
            tensor_slice = f.get_slice(name)
            shape = tuple(tensor_slice.get_shape())
            if shape != want[name]:
                problems.append(f"{name}: shape {shape}, config.json implies {want[name]}")
                continue
            if tensor_slice.get_dtype() != "BF16":  # numpy has no bfloat16; the raw decode covers it
                values = f.get_tensor(name).astype(np.float32)
                if not np.array_equal(values, raw[name], equal_nan=True):
                    problems.append(f"{name}: values differ from the raw decode")
            if not np.isfinite(raw[name]).all():
                problems.append(f"{name}: non-finite values")
    if problems:
        raise SystemExit("safetensors: FAILED\n  " + "\n  ".join(problems))
    count = sum(int(np.prod(s)) for s in want.values())
    import safetensors

    return (f"ok: safetensors {safetensors.__version__} opens {os.path.basename(weights)}, "
            f"{len(names)} tensors, {count} parameters, names and shapes as config.json implies "
            f"({config['architectures'][0]}), values equal the raw decode")


def check_transformers(directory, weights):
    try:
        import numpy as np
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        return "skipped: " + str(e), None
    with open(os.path.join(directory, "config.json")) as f:
        model_type = json.load(f).get("model_type")
    if model_type == "qwen3" and not hasattr(transformers, "Qwen3ForCausalLM"):
        return f"skipped: transformers {transformers.__version__} has no Qwen3 (it arrived in 4.51)", None
    try:
        model, info = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32,
                                                           output_loading_info=True,
                                                           attn_implementation="eager")
    except Exception as e:
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        hint = ""
        heads = config["num_attention_heads"]
        if (config.get("head_dim") or config["hidden_size"] // heads) * heads != config["hidden_size"]:
            hint = (" (head_dim != hidden_size / num_attention_heads: transformers 4.48 loads it, "
                    "4.40 ignores head_dim)")
        raise SystemExit(f"hf-load: FAILED: transformers {transformers.__version__} cannot load "
                         f"{directory}{hint}: {type(e).__name__}: {e}")
    bad = {key: value for key, value in info.items() if value}  # missing, unexpected, mismatched keys
    if bad:
        raise SystemExit(f"hf-load: FAILED: loading info {bad}")
    _, raw = decode_raw(weights)
    state = model.state_dict()
    for name, values in raw.items():
        if not np.array_equal(state[name].detach().numpy(), values.astype(np.float32)):
            raise SystemExit(f"hf-load: FAILED: {name} differs from the file")
    if model.config.tie_word_embeddings and "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise SystemExit("hf-load: FAILED: lm_head is not tied to embed_tokens")
    line = (f"ok: transformers {transformers.__version__} (torch {torch.__version__}) loads "
            f"{type(model).__name__}, {model.num_parameters()} parameters")
    expected_path = os.path.join(directory, "expected_logits.json")
    if os.path.exists(expected_path):
        with open(expected_path) as f:
            expected = json.load(f)
        tokens = torch.tensor([expected["tokens"]], dtype=torch.long)
        with torch.no_grad():
            logits = model(tokens).logits[0].numpy()
        want = np.array(expected["logits"], dtype=np.float32).reshape(logits.shape)
        # Relative to the largest |logit|, so the bound does not depend on the logits' scale. Both
        # sides compute in f32 with different summation orders: 2.5e-7 at most measured on
        # tiny, tiny-head16 and the untied Llama (f32 and bf16 weights) with transformers 4.49.
        error = float(np.abs(logits - want).max() / np.abs(want).max())
        if not error < 1e-4:
            raise SystemExit(f"hf-load: FAILED: logits differ from cohort's: max relative error {error:.3g}")
        line += (f", logits on {tokens.shape[1]} tokens match cohort's "
                 f"(max |a - b| / max |b| = {error:.2g})")
    return line, model


def cohort_greedy(cohort, directory, prompt, max_new_tokens):
    """(token count, finish reason, text bytes) of `cohort generate`'s greedy completion."""
    result = subprocess.run([cohort, "generate", "--checkpoint", directory, "--prompt", prompt,
                             "--max-new-tokens", str(max_new_tokens)], capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"generate: FAILED: cohort generate exited {result.returncode}: "
                         f"{result.stderr.decode(errors='replace').strip()}")
    # "completion 0 (N tokens, stop|length): TEXT\ndecode: ..."; TEXT is raw bytes and may hold newlines.
    match = re.search(rb"^completion 0 \((\d+) tokens, (stop|length)\): (.*)\ndecode: ", result.stdout,
                      re.MULTILINE | re.DOTALL)
    if not match:
        raise SystemExit(f"generate: FAILED: unexpected output of cohort generate: {result.stdout[:300]!r}")
    return int(match.group(1)), match.group(2).decode(), match.group(3)


def check_generation(model, directory, cohort, prompts, max_new_tokens):
    import torch

    # The byte tokenizer's ids: byte b is id b, below the special tokens; `cohort generate` adds bos.
    config = model.generation_config
    compared = stopped = 0
    smallest_gap = float("inf")
    for prompt in prompts:
        ids = torch.tensor([[config.bos_token_id] + list(prompt.encode("utf-8"))], dtype=torch.long)
        with torch.no_grad():
            # synced_gpus=False: otherwise generate imports torch.distributed.fsdp, which Debian's
            # torch 1.13 cannot import under Python 3.11.
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, synced_gpus=False,
                                 output_scores=True, return_dict_in_generate=True)
        tokens = out.sequences[0, ids.shape[1]:].tolist()
        # How far each greedy choice was from a tie, relative to the step's largest |logit|: the
        # logits check allows cohort and transformers to differ by 1e-4 of the largest |logit|, so
        # a gap near that could make the two pick different tokens legitimately.
        for step_logits in out.scores:
            top = torch.topk(step_logits[0], 2).values
            smallest_gap = min(smallest_gap, float((top[0] - top[1]) / step_logits[0].abs().max()))
        finish = "stop" if tokens and tokens[-1] == config.eos_token_id else "length"
        want = (len(tokens), finish, bytes(t for t in tokens if t < 256))
        got = cohort_greedy(cohort, directory, prompt, max_new_tokens)
        if got != want:
            raise SystemExit(f"generate: FAILED: prompt {prompt!r}: cohort gives {got[0]} tokens ({got[1]}) "
                             f"{got[2]!r}, transformers {want[0]} ({want[1]}) {want[2]!r}, ids {tokens}")
        compared += len(tokens)
        stopped += finish == "stop"
    return (f"ok: transformers' greedy generation equals `cohort generate`'s on {len(prompts)} prompt(s), "
            f"{compared} tokens ({stopped} ended on eos; smallest top-2 logit gap {smallest_gap:.2g} "
            f"of the largest |logit|)")


def main():
    parser = argparse.ArgumentParser(description="Check a cohort Hugging Face export loads in Python.")
    parser.add_argument("directory")
    parser.add_argument("--cohort", help="cohort binary: compare greedy generation with `cohort generate`")
    parser.add_argument("--prompt", action="append", help="prompt for the generation check (repeatable)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--same-tensors", metavar="ORIGINAL_DIR",
                        help="check that every tensor equals the one in ORIGINAL_DIR (model.safetensors or shards)")
    args = parser.parse_args()
    with open(os.path.join(args.directory, "config.json")) as f:
        config = json.load(f)
    weights = os.path.join(args.directory, "model.safetensors")
    print("safetensors:", check_safetensors(weights, config), flush=True)
    if args.same_tensors:
        print("same-tensors:", check_same_tensors(args.directory, args.same_tensors), flush=True)
    line, model = check_transformers(args.directory, weights)
    print("hf-load:", line, flush=True)
    if args.cohort:
        if model is None:
            print("generate: skipped: transformers is not importable")
        else:
            print("generate:", check_generation(model, args.directory, args.cohort,
                                                args.prompt or ["Hello"], args.max_new_tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
