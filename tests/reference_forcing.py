"""S1_SPEC section 3 written literally for one prompt, as the tests' independent reference.

Deliberately naive and separate from s1exp.infer: one sequence, a plain greedy loop over the
model's forward (its own KV cache per round, re-encoding the whole prefix every round, as the
public s1 code does with vLLM), string-level delimiters tokenized here.
"""

from __future__ import annotations

import torch

# Greedy settings every engine and driver is checked on against `budget_force` (toy model):
# caps reached with and without ignores, the "auto" cap, min_tokens, an empty extrapolation.
SETTINGS = {
    "cap16": {"cap": 16},
    "auto": {"cap": "auto"},
    "wait1": {"cap": 200, "ignore": 1, "extrapolation": "Wait"},
    "wait2": {"cap": 200, "ignore": 2, "extrapolation": "Wait"},
    "wait4": {"cap": 120, "ignore": 4, "extrapolation": "Wait"},
    "min60": {"cap": 200, "min_tokens": 60},
    "empty2_cap40": {"cap": 40, "ignore": 2, "extrapolation": ""},
}


@torch.inference_mode()
def greedy(model, ids: list[int], max_new: int, min_new: int, stops: set[int]):
    """Plain greedy decoding; stop tokens are banned for the first `min_new` tokens."""
    out: list[int] = []
    past = None
    feed = torch.tensor([ids])
    while len(out) < max_new:
        result = model(input_ids=feed, past_key_values=past, use_cache=True)
        past = result.past_key_values
        logits = result.logits[0, -1].float()
        if len(out) < min_new:
            logits[list(stops)] = float("-inf")
        token = int(torch.argmax(logits))
        out.append(token)
        if token in stops:
            return out, "stop"
        feed = torch.tensor([[token]])
    return out, "length"


def budget_force(
    model,
    tok,
    prompt: list[int],
    *,
    cap: int | str,
    ignore: int = 0,
    extrapolation: str = "",
    min_tokens: int = 0,
    max_length: int = 512,
    answer_max_tokens: int = 32,
) -> list[int]:
    """Tokens after the prompt: thinking, exit delimiters, answer (stop tokens dropped)."""
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    im_start, im_end = enc("<|im_start|>")[0], enc("<|im_end|>")[0]
    eos = {tok.eos_token_id, tok.pad_token_id} - {None}
    think_stops = {im_start, im_end, *eos}
    if cap == "auto":
        question = len(prompt) - len(enc("<|im_start|>think"))
        cap = (
            max_length
            - question
            - len(enc("<|im_start|>think"))
            - len(enc("<|im_start|>answer\nFinal Answer:"))
            - 100
        )
        cap = min(cap, max_length - len(prompt) - len(enc("<|im_start|>answer\nFinal Answer:")) - 2)
    thinking: list[int] = []
    rounds = 0
    while True:
        first = max(1 if rounds else 0, min_tokens - len(thinking))
        out, why = greedy(model, prompt + thinking, cap - len(thinking), first, think_stops)
        rounds += 1
        if why == "length":
            thinking += out
            tail = "" if not thinking else tok.decode(thinking[-1:])
            exit_ids = ([] if tail.endswith("\n") else enc("\n")) + enc(
                "<|im_start|>answer\nFinal Answer:"
            )
            break
        thinking += out[:-1]
        wait = enc(extrapolation)
        if rounds <= ignore and cap - len(thinking) - len(wait) >= 1:
            thinking += wait
            continue
        exit_ids = enc("<|im_start|>answer")
        break
    context = prompt + thinking + exit_ids
    room = min(max_length - len(context), answer_max_tokens)
    answer, why = greedy(model, context, room, 0, {im_end, *eos})
    if why == "stop":
        answer = answer[:-1]
    return thinking + exit_ids + answer


def divergences(got: list[list[int]], want: list[list[int]]) -> list[tuple[int, int]]:
    """(sample index, first differing position) for every sample whose tokens differ."""
    out = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            n = min(len(g), len(w))
            out.append((i, next((k for k in range(n) if g[k] != w[k]), n)))
    return out


@torch.inference_mode()
def step_force(
    model,
    tok,
    prompt: list[int],
    *,
    force: bool,
    max_length: int = 512,
    answer_max_tokens: int = 32,
) -> list[int]:
    """SCC read literally (S1_SPEC section 4), auto cap: thinking is decoded token by token and
    ends when its text ends with `<|im_start|>answer` (natural) or, with `force`, where a token
    starting with "0" follows `<|im_start|>` (dropped, then `<|im_start|>answer`)."""
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    im_end = enc("<|im_end|>")[0]
    stops = {im_end, *({tok.eos_token_id, tok.pad_token_id} - {None})}
    forced_exit = enc("<|im_start|>answer\nFinal Answer:")
    cap = max_length - len(prompt) - len(forced_exit) - 100
    thinking: list[int] = []
    exit_ids: list[int] | None = None
    while len(thinking) < cap:
        token, _ = greedy(model, prompt + thinking, 1, 0, set())
        thinking += token
        text = tok.decode(thinking)
        if text.endswith("<|im_start|>answer"):
            thinking = thinking[: -len(enc("<|im_start|>answer"))]
            assert tok.decode(thinking) + "<|im_start|>answer" == text
            exit_ids = enc("<|im_start|>answer")
            break
        if token[0] in stops:
            thinking.pop()
            exit_ids = enc("<|im_start|>answer")
            break
        opened = len(thinking) >= 2 and thinking[-2] == enc("<|im_start|>")[0]
        if force and opened and tok.decode(token).startswith("0"):
            thinking = thinking[:-2]  # s1's stop string `<|im_start|>0` ends thinking before it
            exit_ids = enc("<|im_start|>answer")
            break
    if exit_ids is None:
        tail = tok.decode(thinking[-1:])
        exit_ids = ([] if tail.endswith("\n") else enc("\n")) + forced_exit
    context = prompt + thinking + exit_ids
    room = min(max_length - len(context), answer_max_tokens)
    answer, why = greedy(model, context, room, 0, stops)
    if why == "stop":
        answer = answer[:-1]
    return thinking + exit_ids + answer


def budget_force_s1_code(
    model,
    tok,
    prompt: list[int],
    *,
    cap: int | str,
    ignore: int = 0,
    extrapolation: str = "",
    min_tokens: int = 0,
    max_length: int = 512,
    answer_max_tokens: int = 32,
    longest_prompt: int | None = None,
) -> tuple[list[int], list[int]]:
    """S1_SPEC section 3's account of the public evaluation code, for one prompt of a batch whose
    longest prompt has `longest_prompt` tokens. Returns (tokens after the prompt as the answer was
    conditioned on: cut thinking, exit, answer; the thinking as the code logs it, uncut)."""
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    im_start, im_end = enc("<|im_start|>")[0], enc("<|im_end|>")[0]
    eos = {tok.eos_token_id, tok.pad_token_id} - {None}
    think_stops = {im_start, im_end, *eos}
    forced_exit = enc("<|im_start|>answer\nFinal Answer:")
    if cap == "auto":  # from the batch's longest prompt (the question plus `<|im_start|>think`)
        cap = max_length - (longest_prompt or len(prompt)) - len(forced_exit) - 100
        cap = min(cap, max_length - len(prompt) - len(forced_exit) - 2)
    if not ignore:  # one call: the paper's loop gives the same tokens
        ids = budget_force(model, tok, prompt, cap=cap, min_tokens=min_tokens,
                           max_length=max_length, answer_max_tokens=answer_max_tokens)  # fmt: skip
        return ids, []
    thinking: list[int] = []
    for round_ in range(ignore + 1):
        # The full budget every round; s1exp's rule where the model's length would end it.
        room = max_length - len(prompt) - len(thinking) - len(forced_exit) - 2
        out, why = greedy(model, prompt + thinking, min(cap, room), 1, think_stops)
        if why == "length" or round_ == ignore:
            thinking += out  # the last round keeps its stop token until the cut
            break
        thinking += out[:-1] + enc(extrapolation)
    logged = thinking[:-1] if thinking and thinking[-1] in think_stops else thinking
    cut = thinking[:cap]
    if cut and cut[-1] in think_stops:
        cut = cut[:-1]
    if why == "length":
        newline = [] if tok.decode(logged[-1:]).endswith("\n") else enc("\n")
        exit_ids = newline + forced_exit
    else:
        exit_ids = enc("<|im_start|>answer")
    context = prompt + cut + exit_ids
    room = min(max_length - len(context), answer_max_tokens)
    answer, why = greedy(model, context, room, 0, {im_end, *eos})
    if why == "stop":
        answer = answer[:-1]
    return cut + exit_ids + answer, logged
