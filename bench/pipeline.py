"""Time the toy main job stage by stage: `python bench/pipeline.py [--reuse-base] [-- overrides]`.

Runs `python -m s1exp +ablation=wait_vs_hmm -m` in a fresh artifact store (and, unless
--reuse-base, a fresh base-model cache, i.e. a first run on a new machine), then prints the wall
time and where it went, from each job's results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--reuse-base",
        action="store_true",
        help="keep the machine's cached toy base model (~/.cache/s1exp)",
    )
    parser.add_argument("--ablation", default="wait_vs_hmm")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s1exp-bench-"))
    env = dict(os.environ, S1EXP_STORE=str(work / "store"), WANDB_MODE="offline")
    if not args.reuse_base:
        env["S1EXP_CACHE"] = str(work / "cache")
    cmd = [
        sys.executable,
        "-m",
        "s1exp",
        f"+ablation={args.ablation}",
        f"hydra.sweep.dir={work / 'sweep'}",
        *args.overrides,
        "-m",  # after the overrides: argparse refuses overrides on both sides of it
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"main job failed:\n{proc.stderr[-4000:]}")
    jobs = [json.loads(p.read_text()) for p in sorted((work / "sweep").glob("*/results.json"))]
    totals: dict[str, float] = {}
    for job in jobs:
        for stage, seconds in job["timings"].items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    accounted = sum(totals.values())
    print(f"command: {' '.join(cmd[1:])}")
    print(f"jobs: {len(jobs)}   wall: {wall:.1f} s   ({wall / 60:.2f} min)")
    print(f"{'stage':<22}{'seconds':>10}{'share':>8}")
    for stage, seconds in totals.items():
        print(f"{stage:<22}{seconds:>10.1f}{seconds / wall:>8.1%}")
    other = wall - accounted
    print(f"{'startup/W&B/other':<22}{other:>10.1f}{other / wall:>8.1%}")
    gen = [m for j in jobs for m in j["metrics"].values()]
    tps = sum(m["generated_tokens_per_s"] for m in gen) / len(gen)
    print(f"eval generation: {tps:.0f} tok/s mean over jobs (transformers engine)")
    for job in jobs:
        if not job["stages"]["train"]["reused"]:
            train = json.loads(
                (Path(job["stages"]["train"]["path"]) / "train_metrics.json").read_text()
            )
            print(
                f"SFT: {train['train/tokens_per_s']:.0f} tok/s, "
                f"{train['train/optimizer_steps']:.0f} optimizer steps"
            )
    print((work / "sweep" / "summary.txt").read_text())


if __name__ == "__main__":
    main()
