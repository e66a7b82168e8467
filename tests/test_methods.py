"""The test-time methods of S1_SPEC section 4 beyond budget forcing: TCC, SCC, CCC, RS, voting.

Formats and prompts are checked against the spec's words; the methods run on the trained toy
model with the transformers engine (vLLM: tests/test_vllm_engine.py); SCC runs end to end on a
toy model trained with step-conditional traces and matches a literal greedy reading of the spec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import FAST, run_s1exp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf
from reference_forcing import divergences, step_force
from transformers import AutoModelForCausalLM, AutoTokenizer

from s1exp.data import toy
from s1exp.data.control import (
    CLASS_PROMPTS,
    PlainTraces,
    StepConditionalTraces,
    TokenConditionalTraces,
    power_of_two_at_least,
)
from s1exp.data.format import prompt_ids
from s1exp.evaluate.metrics import summarize, vote
from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.conditional import ClassConditional, StepConditional, TokenConditional
from s1exp.infer.hf_engine import TransformersEngine
from s1exp.infer.rejection import RejectionSampling
from s1exp.infer.voting import MajorityVoting

CONF = Path(__file__).resolve().parent.parent / "conf"
METHODS = sorted(f.stem for f in (CONF / "method").glob("*.yaml"))
LEN = {"max_length": 512, "answer_max_tokens": 32}

# S1_SPEC section 4, word for word.
SHORT = (
    "Answer after a short amount of thinking. Do not spend excessive time double-checking your "
    "work."
)
LONG = (
    "Answer after a long amount of thinking. If you feel like you are finished early, spend the "
    "extra time trying to double-check your work until you are absolutely sure that you have the "
    "correct answer."
)


def words(text: str) -> int:
    return len(text.split())


# -- training formats ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "bucket"), [(1, 1), (2, 2), (3, 4), (64, 64), (65, 128), (900, 1024)]
)
def test_tcc_bucket_is_the_next_power_of_two(n: int, bucket: int):
    assert power_of_two_at_least(n) == bucket


def test_token_conditional_traces_state_the_bucket():
    question, thinking = TokenConditionalTraces()("What is 2+2?", "a b c d e", words)
    assert question == "What is 2+2?\n\nThink for up to 8 tokens."
    assert thinking == "a b c d e"
    assert PlainTraces()("q", "t", words) == ("q", "t")


def test_step_conditional_traces_count_down_to_zero():
    thinking = "one two\nthree\nfour five six\nseven"
    question, steps = StepConditionalTraces(step_tokens=2)("Q?", thinking, words)
    assert question == "Q?\n\nThink for up to 3 steps."
    assert steps == (
        "<|im_start|>3 steps left\none two\n"
        "<|im_start|>2 steps left\nthree\nfour five six\n"
        "<|im_start|>1 steps left\nseven\n"
        "<|im_start|>0 steps left"
    )


def test_class_conditional_prompts_are_the_papers():
    assert CLASS_PROMPTS == {"short": SHORT, "long": LONG}


# -- every method option builds; bad settings name the field ---------------------------------
# What each method option must build with budget=toy64 and extrapolation=wait (scc: none): the
# class, the settings that tell the options apart, and the prompt instruction (None: no prompt).
BUILT: dict[str, tuple[type, dict[str, object], str | None]] = {
    "budget_forcing": (
        BudgetForcing,
        {"cap": 64, "ignore": 2, "extrapolation": "Wait", "temperature": 0.0},
        None,
    ),
    "ccc_long": (ClassConditional, {"length": "long", "cap": 64, "ignore": 2}, LONG),
    "ccc_short": (ClassConditional, {"length": "short", "cap": 64, "ignore": 2}, SHORT),
    "majority_voting": (
        MajorityVoting,
        {"temperature": 1.0, "n": 64, "ks": [1, 2, 4, 8, 16, 32, 64], "cap": 64},
        None,
    ),
    "rejection_sampling": (
        RejectionSampling,
        {"temperature": 1.0, "max_tries": 16, "cap": 64, "ignore": 2},
        None,
    ),
    "scc": (
        StepConditional,
        {"steps": 10, "force": False, "ignore": 0, "tokens_per_step": 100},
        "Think for up to 10 steps.",
    ),
    "scc_bf": (
        StepConditional,
        {"steps": 10, "force": True, "ignore": 0},
        "Think for up to 10 steps.",
    ),
    "tcc": (
        TokenConditional,
        {"tokens": 1024, "force": False, "cap": 64, "ignore": 2},
        "Think for up to 1024 tokens.",
    ),
    # TCC + BF: the thinking cap becomes the instructed length.
    "tcc_bf": (
        TokenConditional,
        {"tokens": 1024, "force": True, "cap": 1024, "ignore": 2},
        "Think for up to 1024 tokens.",
    ),
}


def test_every_method_option_is_listed() -> None:
    assert sorted(BUILT) == METHODS


@pytest.mark.parametrize("method", METHODS)
def test_every_method_option_instantiates(method: str) -> None:
    """Each conf/method option builds its class with the composed settings: every config key
    reaches the object unchanged (derived ones as the method defines them), and the options
    differ where they should (force, length, cap, ...), not just in the class built."""
    extrapolation = "none" if method.startswith("scc") else "wait"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"method={method}", "budget=toy64", f"extrapolation={extrapolation}"],
        )
    built = instantiate(cfg.method)
    cls, settings, instruction = BUILT[method]
    assert type(built) is cls
    for key, value in OmegaConf.to_container(cfg.method, resolve=True).items():
        if key != "_target_" and key not in settings:
            assert getattr(built, key) == value, key
    assert {k: getattr(built, k) for k in settings} == settings
    assert built.max_length == cfg.model.max_length and built.seed == cfg.seed
    if instruction is None:
        assert not hasattr(built, "instruction")
    else:
        assert built.instruction() == instruction


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: TokenConditional(tokens=0), "method.tokens"),
        (lambda: StepConditional(steps=-1), "method.steps"),
        (lambda: StepConditional(steps=2, ignore=2), "extrapolation.ignore"),
        (lambda: ClassConditional(length="medium"), "method.length"),
        (lambda: RejectionSampling(cap="auto"), "budget.cap"),
        (lambda: RejectionSampling(cap=64, temperature=0.0), "method.temperature"),
        (lambda: RejectionSampling(cap=64, max_tries=0), "method.max_tries"),
        (lambda: MajorityVoting(n=0), "method.n"),
        (lambda: MajorityVoting(n=4, ks=[8]), "method.ks"),
        (lambda: MajorityVoting(n=4, temperature=0.0), "method.temperature"),
        (lambda: StepConditionalTraces(step_tokens=0), "train.trace_format.step_tokens"),
    ],
)
def test_bad_method_settings_name_the_field(build, field: str):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


def test_bad_method_setting_fails_before_any_stage(s1_env: dict, tmp_path: Path):
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}
    proc = run_s1exp(["method=rejection_sampling", "hydra.run.dir=bad"], tmp_path, env)
    assert proc.returncode != 0
    assert "budget.cap='auto'" in proc.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "bad" / "results.json").exists()


# -- voting arithmetic -------------------------------------------------------------------------
def test_vote_majority_ties_and_coverage():
    graded = [("3", False), ("5", True), ("3", False), (None, False), ("5", True), ("5", True)]
    out = vote(graded, [1, 2, 4, 6])
    assert out["scores"] == {
        "maj@1": 0.0, "cov@1": 0.0,
        "maj@2": 0.0, "cov@2": 100.0,  # 1-1 tie: the earlier answer ("3") wins
        "maj@4": 0.0, "cov@4": 100.0,  # "3" twice, "5" once, None does not vote
        "maj@6": 100.0, "cov@6": 100.0,
    }  # fmt: skip
    assert out["predicted"] == "5" and out["correct"]
    assert vote([(None, False)], [1]) == {
        "predicted": None, "correct": False, "scores": {"maj@1": 0.0, "cov@1": 0.0},
    }  # fmt: skip


# -- the methods on the trained toy model ------------------------------------------------------
@pytest.fixture(scope="module")
def world(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    engine = TransformersEngine(trained_model, max_model_len=512, batch_size=32, device="cpu")
    questions = [item["question"] for item in toy.make_benchmark(size=20, seed=5)]
    return tok, engine, questions


def run_method(method, world) -> tuple[list[list[int]], list[dict]]:
    tok, engine, questions = world
    prompts = [method.prompt(tok, q) for q in questions]
    return prompts, method.run(engine, tok, prompts)


def test_tcc_instructs_and_tcc_bf_caps(world):
    tok = world[0]
    prompts, free = run_method(TokenConditional(tokens=16, **LEN), world)
    assert tok.decode(prompts[0]).endswith(
        "\n\nThink for up to 16 tokens.<|im_end|>\n<|im_start|>assistant\n<|im_start|>think"
    )
    _, forced = run_method(TokenConditional(tokens=16, force=True, **LEN), world)
    assert all(r["thinking_tokens"] <= 16 for r in forced)
    assert max(r["thinking_tokens"] for r in free) > 16  # without forcing the instruction is free
    assert any(r["exit"] == "forced" for r in forced)


@pytest.mark.parametrize("length", ["short", "long"])
def test_ccc_appends_the_class_prompt(world, length: str):
    tok, _, questions = world
    method = ClassConditional(length=length, **LEN)
    method.prepare(tok)
    text = tok.decode(method.prompt(tok, questions[0]))
    assert f"{questions[0]}\n\n{CLASS_PROMPTS[length]}<|im_end|>" in text


def test_rejection_sampling_resamples_until_thinking_fits(world):
    cap = 40
    _, records = run_method(RejectionSampling(cap=cap, max_tries=4, seed=3, **LEN), world)
    for r in records:
        tries, fits = r["scores"]["tries"], r["scores"]["fits"]
        assert 1 <= tries <= 4
        if fits:
            assert r["exit"] == "natural" and r["thinking_tokens"] <= cap
        else:
            assert tries == 4 and r["thinking_tokens"] == cap + 1  # the proof it did not fit
    assert sum(r["scores"]["tries"] for r in records) > len(records)  # some question resampled
    for r in records:  # the cost counts every try
        assert r["generated_tokens"] >= r["thinking_tokens"] + r["answer_tokens"]
    metrics = summarize([r | {"correct": False} for r in records])
    assert 1 <= metrics["tries"] <= 4 and 0 <= metrics["fits"] <= 1


def test_majority_voting_records_votes_and_seeded_samples(world):
    _, records = run_method(MajorityVoting(n=4, ks=[1, 2, 4], seed=1, **LEN), world)
    assert all(len(r["votes"]) == 4 and r["vote_ks"] == [1, 2, 4] for r in records)
    assert any(len(set(r["votes"])) > 1 for r in records)  # temperature 1: samples differ
    assert all(r["generated_tokens"] > r["thinking_tokens"] + r["answer_tokens"] for r in records)
    _, again = run_method(MajorityVoting(n=4, ks=[1, 2, 4], seed=1, **LEN), world)
    assert [r["votes"] for r in again] == [r["votes"] for r in records]  # seeded


@pytest.mark.parametrize(
    ("method", "metric"),
    [("rejection_sampling", "tries"), ("majority_voting", "maj@2"), ("tcc_bf", "accuracy")],
)
def test_method_runs_through_the_cli(toy_run, s1_env, tmp_path, method: str, metric: str):
    """Each method is a `method=` option of the real app (the session's trained model is reused)."""
    args = [*FAST, f"method={method}", "budget=toy64", "method.seed=3", "hydra.run.dir=run"]
    extra = {"rejection_sampling": ["method.max_tries=2"], "majority_voting": ["method.n=2"]}
    extra["tcc_bf"] = ["method.tokens=32"]
    proc = run_s1exp([*args, *extra[method]], tmp_path, s1_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["stages"]["train"]["reused"] and metric in results["metrics"]["toy"]
    if method == "tcc_bf":
        samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").open()]
        assert all(s["thinking_tokens"] <= 32 for s in samples)


# -- SCC end to end: train on step traces, read the steps, stop at "0 steps left" --------------
@pytest.fixture(scope="module")
def scc_run(s1_env: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("scc")
    args = [
        *FAST,
        "trace_format=step_conditional",
        "trace_format.step_tokens=12",
        "method=scc_bf",
        "method.steps=2",
        "hydra.run.dir=run",
    ]
    proc = run_s1exp(args, cwd, s1_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return cwd / "run"


def test_scc_model_writes_steps_and_forcing_stops_at_zero(scc_run: Path):
    results = json.loads((scc_run / "results.json").read_text())
    samples = [json.loads(line) for line in (scc_run / "samples.jsonl").open()]
    metrics = results["metrics"]["toy"]
    assert metrics["steps_used"] > 0  # the trained model writes step delimiters
    assert "Think for up to 2 steps." in samples[0]["prompt"]
    stopped = [s for s in samples if s["scores"]["stopped_at_zero"]]
    assert stopped and all(s["exit"] == "forced" for s in stopped)
    assert all(s["answer_text"].startswith("<|im_start|>answer") for s in stopped)
    assert metrics["stopped_at_zero"] == len(stopped) / len(samples)
    assert all("<|im_start|>0" not in s["thinking"] for s in samples)  # stopped before it
    # the delimiter lines are not thinking tokens, and Control's limit is 12 tokens x 2 steps
    with_steps = [s for s in samples if s["scores"]["steps_used"]]
    assert with_steps
    for s in with_steps:
        raw = s["generated_tokens"] - s["answer_tokens"]  # thinking ids, delimiters included
        lines = re.findall(r"<\|im_start\|>\d", s["thinking"])  # a count opens each delimiter
        assert raw - s["thinking_tokens"] >= 2 * len(lines) > 0, s["thinking"]
    assert {s["thinking_limit"] for s in samples} == {24}


@pytest.mark.parametrize("force", [False, True])
def test_scc_matches_a_literal_greedy_reading(scc_run: Path, force: bool):
    path = json.loads((scc_run / "results.json").read_text())["stages"]["train"]["path"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    engine = TransformersEngine(path, max_model_len=512, batch_size=8, device="cpu")
    method = StepConditional(steps=2, force=force, **LEN)
    questions = [item["question"] for item in toy.make_benchmark(size=8, seed=21)]
    prompts = [method.prompt(tok, q) for q in questions]
    assert prompts[0] == prompt_ids(tok, questions[0] + "\n\nThink for up to 2 steps.")
    for mode in ("inflight", "resubmit"):
        method.mode = mode
        got = [r["token_ids"] for r in method.run(engine, tok, prompts)]
        want = [step_force(model, tok, p, force=force, **LEN) for p in prompts]
        diverged = divergences(got, want)
        assert not diverged, f"{mode}: {len(diverged)}/{len(prompts)} differ: {diverged}"
