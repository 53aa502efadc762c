#!/usr/bin/env python3
# The Hugging Face `tokenizers` side of cohort's BPE check (tests/hf/check_tokenizers.sh) and
# benchmark (bench/bench_tokenizer.cpp):
#   make DIR [--lines N]   trains four byte-level BPE tokenizers with `tokenizers` on generated text
#                          (GPT-2, Llama 3 and Qwen2 pre-tokenizer regexes, and a ByteLevel with
#                          add_prefix_space behind a MergedWithPrevious split), writes DIR/NAME/
#                          tokenizer.json and DIR/NAME/expected.tsv: for each of N generated lines
#                          (fixed seed; unicode scripts, whitespace runs, digits, code, emoji,
#                          special tokens in text, invalid UTF-8) the raw bytes, tokenizers' ids
#                          with special tokens matched and with encode_special_tokens=True, its
#                          decode, and the text decode(encode(line)) must give back. Also
#                          DIR/bench.txt, plain valid text for the benchmark.
#   bench TOKENIZER TEXT --threads N
#                          times tokenizers' encode_batch / decode_batch over TEXT's lines with N
#                          Rayon threads, and a Python loop of single encode() calls, as one JSON line.
# Lines in expected.tsv are hex so that any byte string (newlines, NUL, invalid UTF-8) fits.
import argparse
import json
import os
import random
import sys
import time

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>"]
# Not special: matched in text whatever parse_special says (Qwen2.5 ships <tool_call> this way).
NON_SPECIAL = ["<tool_call>", "</tool_call>"]

WORDS = {
    "en": "the quick brown fox jumps over lazy dog reward policy gradient model token training value "
          "I'm don't you'll we've they're she'd it's HELLO World OpenAI GRPO".split(),
    "fr": "été déjà très façon où naïve cœur œuvre garçon élève Noël".split(),
    "de": "Straße Größe über Mädchen Bücher heißen Fußgänger".split(),
    "ru": "привет мир обучение модели токен Москва ёлка".split(),
    "el": "καλημέρα κόσμε λόγος ψυχή Ωμέγα".split(),
    "ar": "مرحبا بالعالم التعلم النموذج".split(),
    "he": "שלום עולם לימוד".split(),
    "hi": "नमस्ते दुनिया प्रशिक्षण मॉडल क्षत्रिय".split(),
    "th": "สวัสดีชาวโลก การเรียนรู้".split(),
    "zh": "你好世界 机器学习 强化学习 模型 训练数据 中文分词".split(),
    "ja": "こんにちは世界 カタカナ ひらがな 東京タワー ｶﾀｶﾅ".split(),
    "ko": "안녕하세요 세계 학습 모델 한국어".split(),
    "vi": "Tiếng Việt người được học".split(),
}
EMOJI = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖", "✨", "🧪", "☃"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\u00a0", "\u2003", "\u3000", "\u0085", "\u2028",
          "\u200b", "\u180e", "\u000b", "\u000c", " \t \n"]
CODE = [
    "def f(x):\n    return x**2 + 1  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "if __name__ == '__main__':\n\tmain()",
    "std::vector<int32_t> ids = tok.encode(\"hi\", /*add_bos=*/true);",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "x = {'a': 1, \"b\": [2, 3.14, -0.5e-3]}  // comment",
    "<div class=\"row\"><span>&nbsp;&amp;</span></div>",
    "    fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "$ ls -la /usr/local/bin | grep -E '^d' >> out.txt 2>&1",
]
DIGITS = ["0", "7", "42", "1234", "3.14159", "1,000,000", "2024-06-01", "٣٤٥", "１２３", "²³", "Ⅻ", "0x1F",
          "12345678901234567890", "-17", "1e10"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'ſ", "’s"]
# NFC-sensitive: decomposed accents, Hangul jamo, a singleton (U+212B ANGSTROM SIGN), Vietnamese stacks.
NFC_CASES = ["e\u0301", "A\u030a", "\u212b", "\u1100\u1161\u11a8", "o\u0302\u0301", "n\u0303", "\u0041\u0308\u0304"]
# Code points from blocks of letters, numbers, marks, symbols and punctuation.
RANGES = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x5ff),
          (0x600, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f),
          (0x20a0, 0x20bf), (0x2100, 0x214f), (0x2190, 0x23ff), (0x2500, 0x27bf), (0x3000, 0x30ff),
          (0x4e00, 0x9fa5), (0xac00, 0xd7a3), (0xff00, 0xffef), (0x1f300, 0x1f64f), (0x1d400, 0x1d7ff)]
# Letters and numbers of Unicode 15 and 16 (PCRE2 10.42 reads Unicode 14; cohort adds these to \p{L}, \p{N}).
NEW_UNICODE = [(0x1c89, 0x1c8a), (0xa7cb, 0xa7cd), (0x31350, 0x313ff), (0x2ebf0, 0x2ec20), (0x10d40, 0x10d65),
               (0x16d40, 0x16d79), (0x11380, 0x113b5), (0x1e5d0, 0x1e5fa)]
INVALID = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf5",
           b"\xff", b"\xfe\xff", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80", b"\xc2\xc2", b"\xf0\x80\x80\x80"]


def random_code_points(rng, n):
    out = []
    while len(out) < n:
        lo, hi = rng.choice(RANGES)
        c = rng.randint(lo, hi)
        if 0xd800 <= c <= 0xdfff:
            continue
        out.append(chr(c))
    return "".join(out)


def piece(rng, specials):
    kind = rng.random()
    if kind < 0.30:
        lang = rng.choice(list(WORDS))
        return " ".join(rng.choice(WORDS[lang]) for _ in range(rng.randint(1, 6)))
    if kind < 0.40:
        return rng.choice(SPACES) * rng.randint(1, 3)
    if kind < 0.48:
        return rng.choice(DIGITS)
    if kind < 0.55:
        return rng.choice(CODE)
    if kind < 0.60:
        return rng.choice(EMOJI) * rng.randint(1, 2)
    if kind < 0.66:
        return rng.choice(specials + NON_SPECIAL + ["<|im_", "<|", "|>", "<tool_", "<|endoftext"])
    if kind < 0.71:
        return rng.choice(WORDS["en"]) + rng.choice(CONTRACTIONS)
    if kind < 0.76:
        return rng.choice(NFC_CASES)
    if kind < 0.85:
        return random_code_points(rng, rng.randint(1, 12))
    if kind < 0.86:
        lo, hi = rng.choice(NEW_UNICODE)
        return "".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 4)))
    if kind < 0.90:
        # Long runs: the merge heap (words over 48 bytes) and long whitespace / punctuation runs.
        return rng.choice(["a", "ab", "=", "-", " ", "\n", "é", "🙂", "xyz1"]) * rng.randint(20, 120)
    return rng.choice(["!", "?", "...", ",", ";", ":", "—", "«»", "(", ")", "\"", "'", "''", "`", "@#%"])


def line(rng, specials, allow_invalid):
    text = "".join(piece(rng, specials) for _ in range(rng.randint(0, 8)))
    data = text.encode("utf-8")
    if allow_invalid and rng.random() < 0.08:
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(data))
            data = data[:at] + rng.choice(INVALID) + data[at:]
    return data


def train(name, texts, vocab_size):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, decoders, trainers, Regex, AddedToken
    tokenizer = Tokenizer(models.BPE())
    if name == "gpt2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif name == "llama3":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif name == "qwen2":
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif name == "prefix":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("\n", behavior="merged_with_previous"),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=(name == "qwen2")) for t in NON_SPECIAL])
    if name == "prefix":
        # lstrip / rstrip / single_word: Hugging Face strips the spaces around such a token.
        tokenizer.add_tokens([AddedToken("[MASK]", special=False, lstrip=True, rstrip=True, normalized=False),
                              AddedToken("word", special=False, single_word=True, normalized=False)])
    spec = json.loads(tokenizer.to_str())
    if name == "llama3":
        # Llama 3 ships ignore_merges and the legacy "a b" merges; the others keep ["a", "b"] pairs.
        spec["model"]["ignore_merges"] = True
        spec["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    else:
        spec["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in spec["model"]["merges"]]
    return Tokenizer.from_str(json.dumps(spec)), spec


def make(args):
    from tokenizers import Tokenizer
    import tokenizers
    rng = random.Random(20240601)
    corpus = [line(rng, SPECIALS, False).decode("utf-8") for _ in range(6000)]
    corpus += [" ".join(rng.choice(WORDS[lang]) for _ in range(12)) for lang in WORDS for _ in range(200)]
    corpus += CODE * 50
    test_rng = random.Random(7)
    lines = [line(test_rng, SPECIALS, True) for _ in range(args.lines)]
    lines += [b"", b" ", b"\n", b"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", b"\xff\xfe",
              b"[MASK] word words [MASK]x  [MASK]  sword word", "\u180e\u0085\u2028x".encode()]
    summary = {}
    for name in ["gpt2", "llama3", "qwen2", "prefix"]:
        tokenizer, spec = train(name, corpus, 3000)
        out_dir = os.path.join(args.dir, name)
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, indent=1)
        # Reload from the file, as cohort will.
        tokenizer = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
        plain = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
        plain.encode_special_tokens = True
        invertible = name != "prefix"
        with open(os.path.join(out_dir, "expected.tsv"), "w", encoding="ascii") as f:
            for data in lines:
                text = data.decode("utf-8", errors="replace")
                ids = tokenizer.encode(text, add_special_tokens=False).ids
                plain_ids = plain.encode(text, add_special_tokens=False).ids
                decoded = tokenizer.decode(ids, skip_special_tokens=False)
                if invertible:
                    back = tokenizer.normalizer.normalize_str(text) if tokenizer.normalizer else text
                    if decoded != back:
                        print(f"tokenizers itself does not invert {name} on {text!r}: {decoded!r}", file=sys.stderr)
                        return 1
                f.write("\t".join([data.hex(), " ".join(map(str, ids)), " ".join(map(str, plain_ids)),
                                   decoded.encode("utf-8").hex(), "1" if invertible else "0"]) + "\n")
        summary[name] = {"vocab": tokenizer.get_vocab_size(), "merges": len(spec["model"]["merges"])}
    bench_rng = random.Random(99)
    with open(os.path.join(args.dir, "bench.txt"), "w", encoding="utf-8") as f:
        size = 0
        while size < args.bench_bytes:
            text = line(bench_rng, SPECIALS, False).decode("utf-8").replace("\n", " ").replace("\r", " ")
            english = " ".join(bench_rng.choice(WORDS["en"]) for _ in range(bench_rng.randint(5, 30)))
            for t in (text, english, english + ".", bench_rng.choice(CODE).replace("\n", " ")):
                f.write(t + "\n")
                size += len(t.encode("utf-8")) + 1
    print(json.dumps({"tokenizers": tokenizers.__version__, "lines": len(lines), "trained": summary}))
    return 0


def bench(args):
    # Rayon reads its thread count when the pool first starts, so these must be set before any encode.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    from tokenizers import Tokenizer
    import tokenizers
    tokenizer = Tokenizer.from_file(args.tokenizer)
    with open(args.text, encoding="utf-8") as f:
        lines = f.read().split("\n")
    megabytes = sum(len(t.encode("utf-8")) for t in lines) / 1e6

    def best(fn, reps):
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        return min(times), result

    encode_s, encodings = best(lambda: tokenizer.encode_batch(lines, add_special_tokens=False), args.reps)
    ids = [e.ids for e in encodings]
    decode_s, _ = best(lambda: tokenizer.decode_batch(ids, skip_special_tokens=False), args.reps)
    single_s, _ = best(lambda: [tokenizer.encode(t, add_special_tokens=False) for t in lines], 1)
    print(json.dumps({"impl": "tokenizers " + tokenizers.__version__, "threads": args.threads,
                      "megabytes": round(megabytes, 3), "tokens": sum(len(i) for i in ids),
                      "encode_mb_s": round(megabytes / encode_s, 2), "decode_mb_s": round(megabytes / decode_s, 2),
                      "encode_single_calls_mb_s": round(megabytes / single_s, 2)}))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make")
    p.add_argument("dir")
    p.add_argument("--lines", type=int, default=10000)
    p.add_argument("--bench-bytes", type=int, default=4_000_000)
    p = sub.add_parser("bench")
    p.add_argument("tokenizer")
    p.add_argument("text")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    return make(args) if args.command == "make" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
