"""Does the toy world show the paper's effects?

    python bench/toy_effects.py [--size 256] [-- overrides]

Runs three small sweeps through the CLI (one artifact store, the machine's cached base model) on
`--size` toy questions and prints each of the paper's qualitative findings, what the toy world
measured for it, and whether it holds:

- budget forcing's accuracy rises with the thinking cap (Scaling > 0, monotone over the caps);
- extending thinking 2x with "Wait" beats not extending (non-overlapping 95% CIs);
- s1K selection beats random selection of the same size (paired bootstrap difference > 0);
- the fine-tuned model answers at least half of its questions (no forcing).

Every number comes from the runs it just did; nothing is compared with a stored result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s1exp.evaluate.metrics import paired_bootstrap_diff  # noqa: E402
from s1exp.evaluate.scaling import scaling  # noqa: E402

CAPS = ("toy16", "toy32", "toy64", "toy128")


@dataclass
class Run:
    """One job of a sweep: its overrides, toy metrics and per-question correctness."""

    overrides: list[str]
    metrics: dict[str, float]
    correct: dict[str, float]

    def label(self) -> str:
        return " ".join(o for o in self.overrides if not o.startswith("benchmark."))


def sweep(name: str, args: list[str], root: Path, env: dict[str, str]) -> list[Run]:
    """Run `python -m s1exp <args> -m` into root/name and load every job's results."""
    out = root / name
    cmd = [sys.executable, "-m", "s1exp", *args, f"hydra.sweep.dir={out}", "-m"]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    runs = []
    for job in sorted((d for d in out.iterdir() if d.name.isdigit()), key=lambda d: int(d.name)):
        results = json.loads((job / "results.json").read_text())
        samples = [json.loads(line) for line in (job / "samples.jsonl").read_text().splitlines()]
        overrides = (job / ".hydra" / "overrides.yaml").read_text().split("\n")
        runs.append(
            Run(
                [o.removeprefix("- ") for o in overrides if o.startswith("- ")],
                results["metrics"]["toy"],
                {s["id"]: float(s["correct"]) for s in samples},
            )
        )
    return runs


def interval(m: dict[str, float]) -> str:
    return f"{m['accuracy']:.1f} [{m['accuracy_ci_low']:.1f}, {m['accuracy_ci_high']:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="toy benchmark questions")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every job")
    opts = parser.parse_args()
    base = [f"benchmark.toy.size={opts.size}", "logger=none", *opts.overrides]
    with tempfile.TemporaryDirectory(prefix="toy-effects-") as tmp:
        root = Path(tmp)
        env = os.environ | {"S1EXP_STORE": str(root / "store"), "HYDRA_FULL_ERROR": "1"}
        caps = sweep("caps", [*base, f"budget={','.join(CAPS)}"], root, env)
        wait = sweep("wait", [*base, "extrapolation=none,wait"], root, env)
        data = sweep("data", [*base, "selection=s1k,random"], root, env)

    print("\nruns (accuracy [95% CI] · thinking tokens):")
    for run in caps + wait + data:
        print(f"  {run.label():40s} {interval(run.metrics)} · {run.metrics['thinking_tokens']:.0f}")

    accuracy = [r.metrics["accuracy"] for r in caps]
    slope = scaling([r.metrics["thinking_tokens"] for r in caps], accuracy)
    monotone = all(b >= a for a, b in zip(accuracy, accuracy[1:], strict=False))
    none, waited = (r.metrics for r in wait)
    s1k, random = data
    questions = sorted(s1k.correct)
    diff, low, high = paired_bootstrap_diff(
        [s1k.correct[q] for q in questions], [random.correct[q] for q in questions]
    )
    claims = [
        (
            "accuracy rises with the thinking cap",
            f"Scaling {slope:.1f}, caps {' -> '.join(f'{a:.1f}' for a in accuracy)}",
            slope > 0 and monotone,
        ),
        (
            '"Wait" 2x beats no extension',
            f"{interval(waited)} vs {interval(none)}",
            waited["accuracy_ci_low"] > none["accuracy_ci_high"],
        ),
        (
            "s1K selection beats random",
            f"s1K - random {diff:+.1f} [{low:+.1f}, {high:+.1f}]",
            low > 0,
        ),
        ("fine-tuned model answers >= 50%", interval(none), none["accuracy"] >= 50),
    ]
    print(f"\nthe paper's findings on the toy world ({opts.size} questions):")
    for claim, measured, holds in claims:
        print(f"  {'holds' if holds else 'FAILS':5s}  {claim:38s} {measured}")


if __name__ == "__main__":
    main()
