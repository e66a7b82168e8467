"""Where budget forcing's two semantics differ, sample by sample, in a finished sweep.

`python scripts/semantics_diff.py <sweep dir>` (a `+ablation=semantics` sweep): pairs each
`method.semantics=paper` job with the `s1_code` job of the same other settings and prints, per
pair, how many samples got different tokens, how many s1_code cut (thinking beyond the budget
that the answer never saw), both accuracies and both mean thinking tokens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean

KEY = "method.semantics="


def jobs(sweep: Path) -> dict[tuple[str, ...], dict[str, list[dict]]]:
    """{other settings: {semantics: samples}} over the sweep's finished jobs."""
    pairs: dict[tuple[str, ...], dict[str, list[dict]]] = {}
    done = sweep.glob("*/results.json")
    for results in sorted(done, key=lambda r: (len(r.parent.name), r.parent.name)):  # job order
        overrides = json.loads(results.read_text())["overrides"]
        semantics = next((o[len(KEY) :] for o in overrides if o.startswith(KEY)), "paper")
        rest = tuple(o for o in overrides if not o.startswith((KEY, "+ablation", "sweep_part")))
        samples = [json.loads(line) for line in (results.parent / "samples.jsonl").open()]
        pairs.setdefault(rest, {})[semantics] = samples
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep", type=Path)
    sweep = parser.parse_args().sweep
    print("| settings | samples differing | s1_code cut | accuracy paper / s1_code | "
          "thinking tokens paper / s1_code (logged) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for rest, runs in jobs(sweep).items():
        if {"paper", "s1_code"} - runs.keys():
            continue
        paper, code = runs["paper"], runs["s1_code"]
        differ = sum(p["token_ids"] != c["token_ids"] for p, c in zip(paper, code, strict=True))
        cut = sum(c["logged_thinking_tokens"] > c["thinking_tokens"] for c in code)
        accuracy = [100 * mean(s["correct"] for s in run) for run in (paper, code)]
        thinking = [mean(s["thinking_tokens"] for s in run) for run in (paper, code)]
        logged = mean(c["logged_thinking_tokens"] for c in code)
        print(
            f"| {' '.join(rest)} | {differ}/{len(paper)} | {cut} | {accuracy[0]:.1f} / "
            f"{accuracy[1]:.1f} | {thinking[0]:.1f} / {thinking[1]:.1f} ({logged:.1f}) |"
        )


if __name__ == "__main__":
    main()
