"""A sweep dir read into members: each finished job's label, choices, config and per-benchmark
metrics, and its per-question correctness for paired comparisons."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hydra_plugins.s1exp_sweeper.grids import PART_KEY, part_of
from s1exp.evaluate.metrics import paired_bootstrap_diff
from s1exp.evaluate.scaling import method_kind
from s1exp.report.errors import ReportError

Delta = tuple[float, float, float]


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The run dirs of a sweep's finished jobs (those with a results.json), in job order."""
    paths = sorted(
        sweep_dir.glob("*/results.json"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 1 << 30,
    )
    return [path.parent for path in paths]


def is_bookkeeping(override: str) -> bool:
    """`+ablation=` (every job of a sweep has it) and `sweep_part=` (the grid a job came from,
    read from its config): neither is a setting the job varies."""
    return override.startswith("+ablation") or override_key(override) == PART_KEY


def job_overrides(results: dict[str, Any]) -> list[str]:
    """A job's command-line overrides without the bookkeeping ones (is_bookkeeping)."""
    return [o for o in results.get("overrides", []) if not is_bookkeeping(o)]


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def as_text(value: Any) -> str:
    """A config or sheet value as an override would spell it (true, null, 1000), so a sheet's
    YAML number matches the override string and the config's int alike."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(as_text, value)) + "]"
    return str(value)


def per_benchmark(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """results.json's metrics as benchmark -> metrics. Runs written before metrics were keyed by
    benchmark hold one flat dict: it is filed under the run's benchmark choice."""
    metrics = results.get("metrics", {})
    if metrics and all(isinstance(v, dict) for v in metrics.values()):
        return metrics
    name = results.get("choices", {}).get("benchmark") or next(
        iter(results.get("config", {}).get("benchmark", {}) or {}), "benchmark"
    )
    return {as_text(name): metrics}


@dataclass
class Member:
    """One finished job of a sweep."""

    path: Path
    label: str
    overrides: list[str]
    results: dict[str, Any]
    swept: list[str] = field(default_factory=list)  # its overrides not every job shares
    metrics: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = per_benchmark(self.results)

    def scored(self, bench: str) -> dict[str, Any] | None:
        """Its metrics on `bench` if it has an accuracy and thinking tokens there, else None."""
        metrics = self.metrics.get(bench) or {}
        has = all(metrics.get(k) is not None for k in ("accuracy", "thinking_tokens"))
        return metrics if has else None

    @property
    def grid(self) -> str | None:
        """The grid of a `hydra/sweeper=grids` sweep this job came from ("figure4a/caps"):
        its config's sweep_part, else its override (results written without a config)."""
        grid = self.results.get("config", {}).get(PART_KEY)
        if grid is None:
            overrides = self.results.get("overrides", [])
            given = [
                o.split("=", 1)[1] for o in overrides if override_key(o) == PART_KEY and "=" in o
            ]
            grid = given[-1] if given else None
        return None if grid is None else str(grid)

    @property
    def part(self) -> str | None:
        """The report part (table) the job belongs to: its grid's name before the "/"."""
        return None if self.grid is None else part_of(self.grid)

    @property
    def choices(self) -> dict[str, Any]:
        return self.results.get("choices", {})

    @property
    def method(self) -> dict[str, Any]:
        return self.results.get("config", {}).get("method", {})

    @cached_property
    def kind(self) -> str | None:
        """Table 3's row (method_kind); None for parallel scaling or a run without a method."""
        return method_kind(self.method) if self.method.get("_target_") else None

    @property
    def trained(self) -> str:
        train = self.results.get("stages", {}).get("train")
        if not train:
            return "n/a"
        return "reused" if train.get("reused") else "yes"

    def value(self, key: str) -> str | None:
        """A setting's value as text: the job's own override (the last wins), else its config
        group choice, else the resolved config at that dotted path; None if it has none."""
        for override in reversed(self.overrides):
            if override_key(override) == key and "=" in override:
                return override.split("=", 1)[1]
        if key in self.choices:
            return as_text(self.choices[key])
        node: Any = self.results.get("config", {})
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return None if isinstance(node, dict) else as_text(node)

    def context(self, ignore: str) -> frozenset[str]:
        """The job's overrides and choices except those of the `ignore` group (and its fields):
        two jobs with equal contexts differ only in that group."""
        own = {o for o in self.overrides if override_key(o).split(".")[0] != ignore}
        chosen = {f"{k}={as_text(v)}" for k, v in self.choices.items() if k != ignore}
        return frozenset(own | chosen)

    @cached_property
    def correct(self) -> dict[str, dict[str, float]] | None:
        """benchmark -> question id -> 1.0 (right) or 0.0, from samples.jsonl; None when it is
        missing or unreadable (a report must still come out when one job's samples are gone).
        Rows without a benchmark (older runs) belong to the job's only benchmark."""
        try:
            lines = (self.path / "samples.jsonl").read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            only = next(iter(self.metrics)) if len(self.metrics) == 1 else None
            by_bench: dict[str, dict[str, float]] = {}
            for row in rows:
                bench = row.get("benchmark", only)
                by_bench.setdefault(str(bench), {})[str(row["id"])] = float(row["correct"])
            return by_bench
        except (OSError, ValueError, KeyError, TypeError):
            return None


def load_sweep(sweep_dir: Path) -> list[Member]:
    """The sweep's finished jobs, labelled by their overrides minus those every job shares."""
    if not sweep_dir.is_dir():
        raise ReportError(
            f"sweep dir {sweep_dir} does not exist; pass the multirun dir that holds the job "
            "dirs 0/, 1/, ... (hydra.sweep.dir, e.g. outputs/multirun/<date>/<time>)"
        )
    members = []
    for path in job_dirs(sweep_dir):
        try:
            results = json.loads((path / "results.json").read_text(encoding="utf-8"))
        except ValueError as error:
            raise ReportError(
                f"{path / 'results.json'} is not valid JSON ({error}); rerun that job or "
                "delete its dir to leave it out"
            ) from error
        members.append(Member(path, path.name, job_overrides(results), results))
    return label_members(members)


def label_members(members: list[Member]) -> list[Member]:
    """Label each member by its overrides minus those every member shares (set `swept`); two
    members of different grids with the same label get their grid appended. Called again on a
    part's members, so a part's table shows only what varies within that part."""
    shared = set.intersection(*(set(m.overrides) for m in members)) if len(members) > 1 else set()
    for member in members:
        member.swept = [o for o in member.overrides if o not in shared]
        member.label = " ".join(member.swept) or member.path.name
    counts = Counter(m.label for m in members)
    for member in members:
        if counts[member.label] > 1 and member.grid:
            member.label = f"{member.label} [{member.grid}]"
    return members


def split_parts(members: Sequence[Member]) -> dict[str | None, list[Member]]:
    """Members by report part (Member.part), parts in order of their first job; None holds the
    jobs of no grid."""
    parts: dict[str | None, list[Member]] = {}
    for member in members:
        parts.setdefault(member.part, []).append(member)
    return parts


def reference_jobs(overrides: Sequence[Sequence[str]], reference: str) -> list[int | None] | None:
    """Per job, the index of the job it is compared with; None when no job has `reference`.

    The reference is the job whose overrides contain `reference` (e.g. "selection=s1k"). When
    several do (the sweep crosses another axis), each job is compared with the one that differs
    from it only in the reference's key; a job with no such one gets None.
    """
    key = override_key(reference)

    def others(job: int) -> frozenset[str]:
        return frozenset(o for o in overrides[job] if override_key(o) != key)

    candidates = [job for job, own in enumerate(overrides) if reference in own]
    if not candidates:
        return None
    refs: list[int | None] = []
    for job in range(len(overrides)):
        same = [c for c in candidates if others(c) == others(job)]
        refs.append(same[0] if same else candidates[0] if len(candidates) == 1 else None)
    return refs


def paired_delta(
    mine: dict[str, float] | None, theirs: dict[str, float] | None, resamples: int
) -> Delta | None:
    """Accuracy difference (pp) with its paired bootstrap 95% CI over the ids both answered."""
    ids = sorted(mine.keys() & theirs.keys()) if mine and theirs else []
    if not ids:
        return None
    return paired_bootstrap_diff(
        [mine[i] for i in ids], [theirs[i] for i in ids], resamples=resamples
    )


def member_deltas(
    members: Sequence[Member], reference: str, benchmark: str, resamples: int = 10_000
) -> list[Delta | None] | None:
    """Per member, its `benchmark` accuracy minus its reference job's (reference_jobs), paired
    by question id; None for a member without usable samples, and None overall when no job has
    the reference override."""
    refs = reference_jobs([m.overrides for m in members], reference)
    if refs is None:
        return None

    def scores(member: Member) -> dict[str, float] | None:
        return (member.correct or {}).get(benchmark)

    return [
        paired_delta(scores(m), scores(members[r]), resamples) if r is not None else None
        for m, r in zip(members, refs, strict=True)
    ]
