"""Quality filters and selection strategies on small synthetic pools (S1_SPEC section 1)."""

from __future__ import annotations

import random
import re
import time
from collections import Counter

import pytest

from s1exp.data.quality import (
    FORMATTING_PATTERN,
    apply_stages,
    difficulty_stages,
    drop_api_errors,
    drop_formatting,
    drop_solved,
    filter_counts,
    has_formatting_problem,
)
from s1exp.data.report import format_funnel
from s1exp.data.schema import REQUIRED_FOR_SELECTION, PoolRow
from s1exp.data.selection import (
    SELECTIONS,
    DiverseSelection,
    FullSelection,
    LongestSelection,
    RandomSelection,
    S1KSelection,
    Selected,
    geometric_rank,
)


def row(i: int, **kw: object) -> PoolRow:
    """A clean, hard, teacher-correct row; override any field."""
    base: dict[str, object] = {
        "id": f"q{i}",
        "question": f"What is {i} plus one?",
        "solution": "add one",
        "answer": str(i + 1),
        "thinking": "t " * 10,
        "attempt": f"Answer: {i + 1}",
        "teacher_correct": True,
        "source": "toy/other",
        "domain": "arith",
        "thinking_tokens": 100 + i,
        "base_small_correct": False,
        "base_large_correct": False,
    }
    base.update(kw)
    return base  # type: ignore[return-value]


def pool(n_domains: int, per_domain: int, rng_seed: int = 0, **kw: object) -> list[PoolRow]:
    rng = random.Random(rng_seed)
    out = []
    for d in range(n_domains):
        for _j in range(per_domain):
            i = len(out)
            out.append(row(i, domain=f"d{d:02d}", thinking_tokens=rng.randrange(10, 10_000), **kw))
    return out


# ---------------------------------------------------------------- quality filters


def test_drop_api_errors_any_missing_feature() -> None:
    rows = [row(0)] + [row(i + 1, **{k: None}) for i, k in enumerate(REQUIRED_FOR_SELECTION)]
    partial = row(99)
    del partial["thinking"]  # type: ignore[misc]
    assert [r["id"] for r in drop_api_errors(rows + [partial])] == ["q0"]


@pytest.mark.parametrize(
    ("question", "source", "dropped"),
    [
        ("Find x. [asy] draw((0,0)--(1,1)); [/asy]", "toy/aime", False),
        ("Find x. [asy] draw((0,0)--(1,1)); [/asy]", "qq8933/AIME_1983_2024", False),
        ("Find x. [asy] draw((0,0)--(1,1)); [/asy]", "toy/math_train", True),
        ("See ![Image](fig.png) and answer.", "toy/aime", True),
        ("Problem p12. Compute 3+4.", "toy/other", True),
        ("p1. first", "toy/other", True),
        ("see p999. now", "toy/other", True),
        ("Compute **x2** now.", "toy/other", True),
        ("Compute **bold** now.", "toy/other", False),
        ("Compute **bold words** 7 times.", "toy/other", False),  # space inside: no match
        ("p0. and p. and P12.", "toy/other", False),
        ("plain question 12.", "toy/other", False),
    ],
)
def test_formatting_patterns(question: str, source: str, dropped: bool) -> None:
    r = row(0, question=question, source=source)
    assert has_formatting_problem(question, source) is dropped
    assert (drop_formatting([r]) == []) is dropped


def test_keep_asy_sources_configurable() -> None:
    r = row(0, question="[asy] x [/asy]", source="toy/aime")
    assert drop_formatting([r], keep_asy_sources=()) == []


def _loop_matches(q: str) -> bool:
    """The reference notebook's substring loop."""
    return any(f"p{i}." in q for i in range(1, 1000))


def test_combined_p_pattern_equals_substring_loop() -> None:
    pat = re.compile(r"p(?:[1-9]\d{0,2})\.")
    rng = random.Random(0)
    alphabet = "p0123456789. x"
    cases = [f"p{i}." for i in range(1200)] + [f"ap{i}.b" for i in (1, 10, 100, 999, 1000)]
    for _ in range(4_000):
        cases.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9))))
    for q in cases:
        assert (pat.search(q) is not None) == _loop_matches(q), q
        if not re.search(r"!\[Image\]|\*\*", q):
            assert (FORMATTING_PATTERN.search(q) is not None) == _loop_matches(q), q


def test_drop_formatting_fast_on_59k() -> None:
    rows = [
        row(i, question=f"Question {i}: compute **a** + {i} with p{i % 2000}x.")
        for i in range(59_000)
    ]
    t = time.perf_counter()
    drop_formatting(rows)
    assert time.perf_counter() - t < 2.0


def test_drop_solved() -> None:
    rows = [
        row(0),
        row(1, base_small_correct=True),
        row(2, base_large_correct=True),
        row(3, base_small_correct=True, base_large_correct=True),
    ]
    assert [r["id"] for r in drop_solved(rows)] == ["q0"]


def test_funnel_counts() -> None:
    rows = [
        row(0),
        row(1, thinking=None),
        row(2, question="![Image] x"),
        row(3, base_small_correct=True),
        row(4),
    ]
    assert filter_counts(rows) == {"pool": 5, "quality1": 4, "quality2": 3, "difficulty": 2}
    assert filter_counts(rows, difficulty=False) == {"pool": 5, "quality1": 4, "quality2": 3}
    kept, funnel = apply_stages(rows, difficulty_stages())
    assert [r["id"] for r in kept] == ["q0", "q4"] and funnel["difficulty"] == 2
    assert "quality2" in format_funnel(funnel)


# ---------------------------------------------------------------- Algorithm 1


def s1k_pool() -> list[PoolRow]:
    rows = pool(8, 40)
    n = len(rows)
    rows += [row(n + i, source="toy/aime", domain="d00") for i in range(5)]
    rows += [row(n + 5 + i, source="toy/gpqa", domain="d01") for i in range(4)]
    rows += [row(n + 9, source="toy/aime", teacher_correct=False)]  # not preselected
    rows += [row(n + 10, source="toy/aime", base_large_correct=True)]  # solved: filtered out
    rows += [
        row(n + 11 + i, source="toy/math_train", thinking_tokens=t)
        for i, t in enumerate((6000, 5600, 7000))
    ]  # > 5600 preselected: 2 of 3
    rows += [row(n + 14, source="toy/aime", question="![Image] x")]  # formatting: filtered out
    return rows


PRE_IDS = {f"q{320 + i}" for i in range(9)} | {"q331", "q333"}


def test_s1k_preselected_size_unique_funnel() -> None:
    rows = s1k_pool()
    sel = S1KSelection()(rows, 100, random.Random(1))
    assert isinstance(sel, Selected)
    ids = [r["id"] for r in sel.rows]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert set(ids[: len(PRE_IDS)]) == PRE_IDS
    assert "q330" not in ids and "q334" not in ids
    f = sel.funnel
    assert f["pool"] == len(rows) and f["quality1"] == len(rows)
    assert f["quality2"] == len(rows) - 1 and f["difficulty"] == len(rows) - 2
    assert f["preselected"] == 11 and f["selected"] == 100
    assert f["domains"] == len({r["domain"] for r in sel.rows})


def test_s1k_deterministic_by_seed() -> None:
    rows = s1k_pool()
    a = S1KSelection()(rows, 150, random.Random(7)).rows
    b = S1KSelection()(rows, 150, random.Random(7)).rows
    c = S1KSelection()(rows, 150, random.Random(8)).rows
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["id"] for r in a] != [r["id"] for r in c]


def test_s1k_preselection_exceeding_size_keeps_first() -> None:
    rows = s1k_pool()
    sel = S1KSelection()(rows, 3, random.Random(0))
    assert [r["id"] for r in sel.rows] == ["q320", "q321", "q322"]


def test_s1k_long_threshold_and_sources_configurable() -> None:
    rows = s1k_pool()
    sel = S1KSelection(preselect_sources=["toy/gpqa"], long_threshold=6500)
    out = sel(rows, 5, random.Random(0))
    assert out.funnel["preselected"] == 5
    assert {r["id"] for r in out.rows} == {"q325", "q326", "q327", "q328", "q333"}


def test_s1k_domains_uniform() -> None:
    # 4 domains with very different sizes; each draw picks a domain uniformly, so the counts are
    # ~equal (a size-proportional draw would give 10x more of d03 than d00).
    sizes = {"d0": 30, "d1": 60, "d2": 100, "d3": 300}
    rows = [row(i, domain=d) for d, n in sizes.items() for i in range(n)]
    rows = [dict(r, id=f"x{i}") for i, r in enumerate(rows)]  # type: ignore[misc]
    counts: Counter[str] = Counter()
    for seed in range(20):
        counts.update(r["domain"] for r in S1KSelection()(rows, 40, random.Random(seed)).rows)
    total = sum(counts.values())
    for d in ("d0", "d1", "d2", "d3"):
        assert abs(counts[d] / total - 0.25) < 0.05, counts


def test_s1k_exhausted_domains_dropped() -> None:
    rows = [row(i, domain="small") for i in range(3)]
    rows += [row(10 + i, domain="big") for i in range(50)]
    sel = S1KSelection()(rows, 53, random.Random(0))
    assert len({r["id"] for r in sel.rows}) == 53


def test_s1k_prefers_long_within_domain() -> None:
    rows = [row(i, domain="only", thinking_tokens=1000 - 10 * i) for i in range(20)]
    first = Counter(S1KSelection()(rows, 1, random.Random(s)).rows[0]["id"] for s in range(2000))
    # P(rank 0) ~ 1/2, P(rank 5) ~ 1/64.
    assert 0.45 < first["q0"] / 2000 < 0.55
    assert first["q0"] > 10 * first["q5"]
    assert 0.2 < first["q1"] / 2000 < 0.3


def test_s1k_within_domain_pick_frequencies_match_two_to_minus_rank() -> None:
    """Algorithm 1's first pick in a domain of 8 (rank 0 = longest) has P(r) = 2^-r / sum 2^-j,
    checked for every rank within 4 standard errors over 8,000 seeded selections."""
    m, n = 8, 8000
    rows = [row(i, domain="only", thinking_tokens=1000 - 10 * i) for i in range(m)]
    first = Counter(S1KSelection()(rows, 1, random.Random(s)).rows[0]["id"] for s in range(n))
    total = sum(2.0**-j for j in range(m))
    for rank in range(m):
        p = 2.0**-rank / total
        assert abs(first[f"q{rank}"] / n - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9, rank


def test_ranks_recomputed_after_removal() -> None:
    """Algorithm 1 ranks the *remaining* rows of a domain at every draw: in a domain of 4 (q0
    longest), after q1 is drawn q2 moves up to rank 1 and q3 to rank 2, so P(second = q3 | first
    = q1) = (1/4) / (7/4) = 1/7, not the 1/11 that ranks fixed at the start would give (weights
    1, 1/4, 1/8). Every (first, second) pair's frequency over 6,000 seeded selections is checked
    against the recomputed-rank probability within 4 standard errors."""
    m, n = 4, 6000
    rows = [row(i, domain="only", thinking_tokens=1000 - 10 * i) for i in range(m)]
    pairs = Counter(
        tuple(r["id"] for r in S1KSelection()(rows, 2, random.Random(s)).rows) for s in range(n)
    )

    def p_rank(rank: int, size: int) -> float:
        return 2.0**-rank / sum(2.0**-j for j in range(size))

    for a in range(m):
        left = [b for b in range(m) if b != a]
        for rank_b, b in enumerate(left):  # `left` is longest first: its index is b's new rank
            p = p_rank(a, m) * p_rank(rank_b, m - 1)
            got = pairs[(f"q{a}", f"q{b}")] / n
            assert abs(got - p) < 4 * (p * (1 - p) / n) ** 0.5, (a, b, got, p)
    assert sum(pairs.values()) == n and all(x != y for x, y in pairs)


def test_geometric_rank_distribution() -> None:
    rng = random.Random(0)
    n = 40_000
    counts = Counter(geometric_rank(3, rng) for _ in range(n))
    for r, p in ((0, 4 / 7), (1, 2 / 7), (2, 1 / 7)):
        assert abs(counts[r] / n - p) < 0.01
    assert set(counts) == {0, 1, 2}
    assert all(geometric_rank(1, rng) == 0 for _ in range(100))


def test_s1k_too_small_pool_names_config_key() -> None:
    rows = pool(2, 5) + [row(100, base_small_correct=True)]
    with pytest.raises(ValueError, match=r"selection\.size=20.*10 rows"):
        S1KSelection()(rows, 20, random.Random(0))


def test_s1k_require_teacher_correct() -> None:
    rows = pool(2, 10) + pool(2, 10, teacher_correct=False)
    rows = [dict(r, id=f"x{i}") for i, r in enumerate(rows)]  # type: ignore[misc]
    sel = S1KSelection(require_teacher_correct=True)(rows, 20, random.Random(0))
    assert all(r["teacher_correct"] for r in sel.rows)
    with pytest.raises(ValueError, match="selection.size"):
        S1KSelection(require_teacher_correct=True)(rows, 21, random.Random(0))
    assert len(S1KSelection()(rows, 40, random.Random(0)).rows) == 40


def test_s1k_benchmark_matched_variant() -> None:
    rows = pool(10, 30)
    n = len(rows)
    rows += [row(n + i, source="toy/aime", domain="d03") for i in range(4)]
    rows += [row(n + 4 + i, source="toy/gpqa", domain="d07") for i in range(8)]
    sel = S1KSelection(variant="notebook", matched_after=12)
    pre = [r for r in rows if sel.is_preselected(r)]
    assert sel.matched_weights(pre) == {"d03": 4.0, "d07": 2.0}
    counts: Counter[str] = Counter()
    for seed in range(10):
        out = sel(rows, 42, random.Random(seed)).rows
        counts.update(r["domain"] for r in out[12:])
    assert set(counts) == {"d03", "d07"}
    assert 0.55 < counts["d03"] / 300 < 0.78
    # Before the switch point the draw is uniform as usual.
    early = S1KSelection(variant="notebook", matched_after=30)(rows, 30, random.Random(0)).rows[12:]
    assert len({r["domain"] for r in early}) > 2


def test_s1k_fast_on_25k() -> None:
    rows = pool(50, 500)  # 25K rows
    t = time.perf_counter()
    sel = S1KSelection()(rows, 1000, random.Random(0))
    assert time.perf_counter() - t < 2.0
    assert len(sel.rows) == 1000


# ---------------------------------------------------------------- ablation strategies


def ablation_pool() -> list[PoolRow]:
    rows = pool(3, 20) + [row(500, thinking=None), row(501, question="p5. x")]
    rows += [
        row(600 + i, domain="tiny", base_small_correct=True, thinking_tokens=50_000 + i)
        for i in range(2)
    ]
    return rows


def test_random_selection() -> None:
    rows = ablation_pool()
    a = RandomSelection()(rows, 30, random.Random(3))
    b = RandomSelection()(rows, 30, random.Random(3))
    assert [r["id"] for r in a.rows] == [r["id"] for r in b.rows]
    assert len({r["id"] for r in a.rows}) == 30
    assert not {"q500", "q501"} & {r["id"] for r in a.rows}
    assert a.funnel["quality2"] == 62 and "difficulty" not in a.funnel
    with pytest.raises(ValueError, match="selection.size"):
        RandomSelection()(rows, 63, random.Random(0))


def test_diverse_selection_uniform_domains_no_difficulty() -> None:
    rows = ablation_pool()
    sel = DiverseSelection()(rows, 8, random.Random(0))
    assert len({r["id"] for r in sel.rows}) == 8
    everything = DiverseSelection()(rows, 62, random.Random(0))
    assert {"q600", "q601"} <= {r["id"] for r in everything.rows}  # no difficulty filter
    counts: Counter[str] = Counter()
    for seed in range(200):
        counts.update(r["domain"] for r in DiverseSelection()(rows, 4, random.Random(seed)).rows)
    for d in ("d00", "d01", "d02"):
        assert abs(counts[d] / 800 - 0.25) < 0.06, counts


def test_longest_selection() -> None:
    rows = ablation_pool()
    sel = LongestSelection()(rows, 5, random.Random(0))
    kept = [r for r in rows if r["id"] not in ("q500", "q501")]
    expect = sorted(kept, key=lambda r: -r["thinking_tokens"])[:5]
    assert [r["id"] for r in sel.rows] == [r["id"] for r in expect]
    assert sel.rows[0]["id"] == "q601"


def test_full_selection_ignores_size() -> None:
    rows = ablation_pool()
    sel = FullSelection()(rows, 3, random.Random(0))
    # The whole pool as the paper trained it: no quality filter; only the row without a trace goes.
    assert len(sel.rows) == 63 and sel.funnel == {
        "pool": 64,
        "with_trace": 63,
        "selected": 63,
        "domains": 5,
    }
    ids = {r["id"] for r in sel.rows}
    assert "q501" in ids and "q500" not in ids


def test_registry_and_hydra_style_construction() -> None:
    assert SELECTIONS["s1k"] is S1KSelection
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "_target_": "s1exp.data.selection.S1KSelection",
            "preselect_sources": ["toy/aime"],
            "long_threshold": 30,
        }
    )
    from hydra.utils import instantiate

    sel = instantiate(cfg)
    assert isinstance(sel, S1KSelection) and sel.preselect_sources == ("toy/aime",)
    assert len(sel(s1k_pool(), 50, random.Random(0)).rows) == 50
