"""Answer extraction and grading (S1_SPEC section 5): exact match for the toy, math-verify else."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def normalize_answer(text: str) -> str:
    """Canonical form for exact match: case, spaces, trailing '.', thousands commas, 9.90 == 9.9."""
    s = re.sub(r"\s+", "", text.strip().rstrip(".").strip().lower())
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", s):
        s = s.replace(",", "")
    if _NUMBER.fullmatch(s):
        try:
            d = Decimal(s)
        except InvalidOperation:
            return s
        s = str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")
    return s


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j].strip()
    return None


def extract_answer(text: str) -> str | None:
    """After the answer delimiter: the last \\boxed{...}, else the first line after the last
    "Answer:" (so "Final Answer:" too); None if neither."""
    text = text.split("<|im_start|>answer")[-1].replace("<|im_end|>", "")
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    hits = list(re.finditer(r"answer:", text, re.IGNORECASE))
    if not hits:
        return None
    rest = text[hits[-1].end() :].strip()
    return rest.splitlines()[0].strip() if rest else None


def exact_match(predicted: str | None, gold: str) -> bool:
    """Exact match after normalization; no answer is wrong."""
    return predicted is not None and normalize_answer(predicted) == normalize_answer(gold)


def math_equal(predicted: str, gold: str) -> bool:
    """Mathematical equivalence via math-verify (the public s1 code used an LLM judge instead)."""
    from math_verify import parse, verify

    return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))
