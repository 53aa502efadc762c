#!/usr/bin/env python3
"""Renders cohort's shipped chat templates with jinja2 in transformers' environment.

The environment is transformers' own (src/transformers/utils/chat_template_utils.py,
_compile_jinja_template): ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
with the loopcontrols extension and the {% generation %} tag, transformers' tojson
(json.dumps with ensure_ascii=False, no HTML escaping), raise_exception and strftime_now.
apply_chat_template renders with messages, tools, documents, add_generation_prompt and the
tokenizer's special tokens; so does this script.

  check_chat_templates.py write-expected
      rewrites tests/model/chat_templates/expected/ (commit the result)
  check_chat_templates.py compare RENDER_DIR
      compares jinja2's renders byte for byte with cohort's, written to RENDER_DIR by
      COHORT_CHAT_TEMPLATE_RENDER_DIR=RENDER_DIR test_model --gtest_filter=ChatTemplate.WritesRenders*,
      and with the committed expected files; exits 1 on any difference.

Layout (the GoogleTest writes the same): TEMPLATE/CONVERSATION.{gen,nogen}.txt and
constructs/NAME.txt, or .error in place of .txt where jinja2 raises (its message inside).
"""
import datetime
import json
import pathlib
import sys

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

DATA = pathlib.Path(__file__).resolve().parent.parent / "model" / "chat_templates"


class AssistantTracker(Extension):
    """transformers' {% generation %} tag, without the index tracking: it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_environment():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, messages, add_generation_prompt, *contexts):
    """Returns ("txt", text) or ("error", message), as apply_chat_template would render."""
    kwargs = {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": add_generation_prompt}
    for c in contexts:
        kwargs.update(c)
    try:
        return "txt", env.from_string(source).render(**kwargs)
    except Exception as e:  # jinja2 raised: cohort must refuse the same render
        return "error", f"{type(e).__name__}: {e}"


def load(name):
    with open(DATA / name, encoding="utf-8") as f:
        return json.load(f)


def render_all():
    env = make_environment()
    out = {}
    conversations = load("conversations.json")["conversations"]
    for t in load("templates.json")["templates"]:
        source = (DATA / t["file"]).read_bytes().decode("utf-8")
        for conv in conversations:
            for gen in (False, True):
                kind, text = render(env, source, conv["messages"], gen, t.get("context", {}), conv.get("context", {}))
                out[f"{t['name']}/{conv['name']}.{'gen' if gen else 'nogen'}.{kind}"] = text
    for c in load("constructs.json")["constructs"]:
        context = dict(c.get("context", {}))
        messages = context.pop("messages", [])
        kind, text = render(env, c["template"], messages, False, context)
        out[f"constructs/{c['name']}.{kind}"] = text
    return out


def read_tree(root):
    root = pathlib.Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes().decode("utf-8")
            for p in root.rglob("*") if p.is_file() and p.suffix in (".txt", ".error")}


def compare(expected, actual, label, other):
    """Lists how `actual` (written by `other`) differs from jinja2's renders; .error files match on existence."""
    failures = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            swapped = path[: -len(".error")] + ".txt" if path.endswith(".error") else path[: -len(".txt")] + ".error"
            if swapped in actual:
                failures.append(f"{label}: {path}: jinja2 {'raised' if path.endswith('.error') else 'rendered'}, "
                                f"{other} {'rendered' if swapped.endswith('.txt') else 'raised'}: "
                                f"{actual[swapped][:200]!r}")
            else:
                failures.append(f"{label}: {path}: missing")
        elif path not in expected:
            if not any(path.rsplit(".", 1)[0] == p.rsplit(".", 1)[0] for p in expected):
                failures.append(f"{label}: {path}: not rendered by jinja2")
        elif path.endswith(".txt") and expected[path] != actual[path]:
            a, b = expected[path], actual[path]
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            failures.append(f"{label}: {path}: differs at character {i}: jinja2 {a[max(0, i - 20):i + 40]!r} "
                            f"vs {other} {b[max(0, i - 20):i + 40]!r}")
    return failures


def main(argv):
    if len(argv) >= 1 and argv[0] == "write-expected":
        target = DATA / "expected"
        for p in target.rglob("*"):
            if p.is_file():
                p.unlink()
        renders = render_all()
        for path, text in renders.items():
            p = target / path
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(text.encode("utf-8"))
        print(f"chat templates: wrote {len(renders)} renders with jinja2 {jinja2.__version__} to {target}")
        return 0
    if len(argv) == 2 and argv[0] == "compare":
        renders = render_all()
        failures = compare(renders, read_tree(argv[1]), "cohort vs jinja2", "cohort")
        failures += compare(renders, read_tree(DATA / "expected"), "committed expected vs jinja2", "committed")
        for f in failures:
            print("chat templates: FAILED " + f)
        print(f"chat templates: {len(renders)} renders compared with jinja2 {jinja2.__version__}, "
              f"{len(failures)} differences")
        return 1 if failures else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
