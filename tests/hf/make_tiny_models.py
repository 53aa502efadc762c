#!/usr/bin/env python3
# Writes tiny random Llama, Qwen2 and Qwen3 models in Hugging Face format, each with the logits of
# fixed token ids, for cohort's tests (tests/model/test_hf_tiny_models.cpp loads them and compares;
# tests/hf/check_transformers.sh runs both):
#
#   OUT/llama  LlamaForCausalLM, untied, rope_scaling llama3 (all three frequency bands in use),
#              f32 in shards with model.safetensors.index.json, generation_config eos a list
#   OUT/qwen2  Qwen2ForCausalLM, tied, q/k/v biases, rope_scaling linear (factor 2), bf16
#   OUT/qwen3  Qwen3ForCausalLM, tied, q/k norm, head_dim 24 beside hidden / heads = 16, f16
#
# Llama and Qwen2 are made and run by transformers (save_pretrained, then the model reloaded from
# disk in float32 gives the logits, so they are those of the weights as stored). Where transformers
# has no Qwen3 (it arrived in 4.51; Debian 12's torch 1.13 runs at most 4.49), the script writes the
# Qwen3 directory itself and its logits come from reference_logits below: an independent float64
# implementation of the decoder written from transformers' modeling_qwen3 (q_norm / k_norm over each
# head's head_dim channels after the projections, before RoPE). The reference is first checked
# against transformers on the Llama and Qwen2 models (both with rope scaling), and against
# transformers' Qwen3 too where it exists. Every logits file says which produced it.
#
# Usage: make_tiny_models.py OUT_DIR. Prints one "make: NAME ok: ..." line per model; exits 1 when the
# reference disagrees with transformers (max |a - b| / max |b| over 1e-5).
import json
import math
import os
import sys

import numpy as np
import torch

VOCAB = 320  # at least the byte tokenizer's 261, so cohort can export the models again
TOKENS = [(37 * i + 11) % VOCAB for i in range(24)]
REFERENCE_TOLERANCE = 1e-5


def perturb(model, generator):
    """Norm weights start at exactly 1 and biases at 0; make them values that can go wrong."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn(p.shape, generator=generator))


def rope_frequencies(config):
    """Inverse frequencies (head_dim / 2) in float64: default, linear or llama3 (transformers' formulas)."""
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    theta = float(config.get("rope_theta", 10000.0))
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        inv = inv / scaling["factor"]
    elif kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        out = []
        for f in inv:
            wavelength = 2 * math.pi / f
            if wavelength < original / high:
                out.append(f)
            elif wavelength > original / low:
                out.append(f / factor)
            else:
                s = (original / wavelength - low) / (high - low)
                out.append((1 - s) * f / factor + s * f)
        inv = np.array(out)
    elif kind != "default":
        raise ValueError(f"reference: rope_type {kind}")
    return inv


def reference_logits(config, tensors, tokens):
    """Logits (T, V) of a Llama / Qwen2 / Qwen3 decoder in float64, from name -> numpy float32 arrays."""
    w = {k: v.astype(np.float64) for k, v in tensors.items()}
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    eps = config["rms_norm_eps"]
    qwen3 = config["model_type"] == "qwen3"
    T = len(tokens)

    def rmsnorm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    def linear(x, name, bias=False):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if bias else y

    angles = np.arange(T, dtype=np.float64)[:, None] * rope_frequencies(config)[None, :]  # (T, hd/2)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]

    def rope(x):  # (T, heads, hd), rotate_half
        x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    x = w["model.embed_tokens.weight"][tokens]
    causal = np.triu(np.full((T, T), -np.inf), 1)
    bias = config["model_type"] == "qwen2"
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        n = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = linear(n, p + "self_attn.q_proj", bias).reshape(T, heads, head_dim)
        k = linear(n, p + "self_attn.k_proj", bias).reshape(T, kv_heads, head_dim)
        v = linear(n, p + "self_attn.v_proj", bias).reshape(T, kv_heads, head_dim)
        if qwen3:
            q = rmsnorm(q, w[p + "self_attn.q_norm.weight"])
            k = rmsnorm(k, w[p + "self_attn.k_norm.weight"])
        q, k = rope(q), rope(k)
        group = heads // kv_heads
        out = np.empty((T, heads, head_dim))
        for h in range(heads):
            scores = q[:, h] @ k[:, h // group].T / math.sqrt(head_dim) + causal
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            out[:, h] = (scores / scores.sum(-1, keepdims=True)) @ v[:, h // group]
        x = x + linear(out.reshape(T, heads * head_dim), p + "self_attn.o_proj")
        n = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        gate = linear(n, p + "mlp.gate_proj")
        x = x + linear(gate / (1 + np.exp(-gate)) * linear(n, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rmsnorm(x, w["model.norm.weight"])
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ head.T


def relative_error(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() / np.abs(b).max())


def read_tensors(directory):
    """name -> float32 numpy array, over model.safetensors or the shards of an index."""
    from safetensors.torch import load_file

    index = os.path.join(directory, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index)
             else ["model.safetensors"])
    tensors = {}
    for f in files:
        for name, t in load_file(os.path.join(directory, f)).items():
            tensors[name] = t.float().numpy()
    return tensors


def write_expected(directory, config, logits, source, reference_error, eos):
    scaling = config.get("rope_scaling") or {}
    expected = {
        "tokens": TOKENS,
        "logits": np.asarray(logits, np.float32).reshape(-1).tolist(),
        "vocab": VOCAB,
        "source": source,
        "reference_vs_transformers": reference_error,
        "model_type": config["model_type"],
        "qk_norm": config["model_type"] == "qwen3",
        "rope_type": scaling.get("rope_type", scaling.get("type", "default")),
        "eos_token_ids": eos if isinstance(eos, list) else [eos],
    }
    with open(os.path.join(directory, "expected_logits.json"), "w") as f:
        json.dump(expected, f)


def transformers_logits(directory):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].numpy()


def make_with_transformers(out, name, config_class, model_class, fields, dtype, shard, eos, generator):
    import transformers

    directory = os.path.join(out, name)
    config = config_class(**fields, bos_token_id=1, eos_token_id=eos)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    model = model_class(config).eval()
    perturb(model, generator)
    model = model.to(dtype)
    model.save_pretrained(directory, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
    logits = transformers_logits(directory)  # from the weights as stored, computed in float32
    with open(os.path.join(directory, "config.json")) as f:
        written = json.load(f)
    reference = reference_logits(written, read_tensors(directory), TOKENS)
    error = relative_error(logits, reference)
    write_expected(directory, written, logits, f"transformers {transformers.__version__}", error, eos)
    files = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
    print(f"make: {name} ok: {model_class.__name__} by transformers {transformers.__version__}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, {str(dtype).replace('torch.', '')} in "
          f"{len(files)} file(s), rope_scaling {json.dumps(written.get('rope_scaling'))}; the script's reference "
          f"implementation equals transformers' logits to {error:.2g}", flush=True)
    return error


def make_qwen3(out, generator):
    """Qwen3 by this script: config.json as Qwen3-0.6B publishes it (scaled down), f16 weights."""
    from safetensors.torch import save_file

    directory = os.path.join(out, "qwen3")
    os.makedirs(directory, exist_ok=True)
    hidden, heads, kv_heads, head_dim, inter, layers = 64, 4, 2, 24, 96, 2
    config = {
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": [2, 4], "head_dim": head_dim, "hidden_act": "silu",
        "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inter,
        "max_position_embeddings": 128, "max_window_layers": layers, "model_type": "qwen3",
        "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None,
        "tie_word_embeddings": True, "torch_dtype": "float16", "use_cache": True, "use_sliding_window": False,
        "vocab_size": VOCAB,
    }
    shapes = {"model.embed_tokens.weight": (VOCAB, hidden), "model.norm.weight": (hidden,)}
    for layer in range(layers):
        p = f"model.layers.{layer}."
        shapes.update({
            p + "input_layernorm.weight": (hidden,), p + "post_attention_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (heads * head_dim, hidden),
            p + "self_attn.k_proj.weight": (kv_heads * head_dim, hidden),
            p + "self_attn.v_proj.weight": (kv_heads * head_dim, hidden),
            p + "self_attn.o_proj.weight": (hidden, heads * head_dim),
            p + "self_attn.q_norm.weight": (head_dim,), p + "self_attn.k_norm.weight": (head_dim,),
            p + "mlp.gate_proj.weight": (inter, hidden), p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
        })
    tensors = {}
    for name, shape in shapes.items():
        if len(shape) == 1:  # norms around 1
            t = 1 + 0.3 * torch.randn(shape, generator=generator)
        else:
            t = 0.08 * torch.randn(shape, generator=generator)
        tensors[name] = t.to(torch.float16).contiguous()
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(directory, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": [2, 4], "do_sample": True, "temperature": 0.6}, f, indent=2)

    reference = reference_logits(config, read_tensors(directory), TOKENS)
    source, error = "reference implementation (tests/hf/make_tiny_models.py)", None
    try:
        from transformers import Qwen3ForCausalLM  # noqa: F401 (transformers >= 4.51)
        import transformers

        logits = transformers_logits(directory)
        error = relative_error(logits, reference)
        source = f"transformers {transformers.__version__}"
        how = f"transformers {transformers.__version__} runs it; the reference equals it to {error:.2g}"
    except ImportError:
        import transformers

        logits = reference
        how = (f"transformers {transformers.__version__} has no Qwen3 (it arrived in 4.51), so the logits "
               f"are the script's float64 reference implementation's")
    write_expected(directory, config, logits, source, error, [2, 4])
    print(f"make: qwen3 ok: Qwen3ForCausalLM written by this script, "
          f"{sum(t.numel() for t in tensors.values())} parameters, float16, head_dim {head_dim}; {how}",
          flush=True)
    return error


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_tiny_models.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    transformers.utils.logging.set_verbosity_error()  # e.g. Qwen2's "sliding window ... eager" with the window off
    transformers.utils.logging.disable_progress_bar()

    generator = torch.Generator().manual_seed(20250611)
    common = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=128, initializer_range=0.08, hidden_act="silu")
    errors = []
    # head_dim 16: wavelengths 6.3, 35, 199, ...: with original 64 the first keeps its frequency (< 16),
    # the second is interpolated (16..64) and the rest are divided by 4.
    errors.append(make_with_transformers(
        out, "llama", LlamaConfig, LlamaForCausalLM,
        dict(common, intermediate_size=96, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False,
             rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 64}),
        torch.float32, "60KB", [2, 3], generator))
    errors.append(make_with_transformers(
        out, "qwen2", Qwen2Config, Qwen2ForCausalLM,
        dict(common, intermediate_size=128, num_key_value_heads=1, rms_norm_eps=1e-6, rope_theta=1e6,
             tie_word_embeddings=True, rope_scaling={"type": "linear", "factor": 2.0}),
        torch.bfloat16, None, 2, generator))
    errors.append(make_qwen3(out, generator))
    bad = [e for e in errors if e is not None and not e < REFERENCE_TOLERANCE]
    if bad:
        raise SystemExit(f"make: FAILED: the reference implementation differs from transformers by {bad} "
                         f"(tolerance {REFERENCE_TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
