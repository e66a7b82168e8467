"""The selection report: funnel text, plots and report.json, and its offline W&B select run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from conftest import wandb_inspect
from omegaconf import OmegaConf

from s1exp.data.report import STAGES, format_funnel, stage_label, write_selection_report
from s1exp.track import log_selection

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

PAPER_FUNNEL = {
    "pool": 59029,
    "decontaminated": 59000,
    "deduplicated": 58990,
    "quality1": 54116,
    "quality2": 51581,
    "difficulty": 24496,
    "preselected": 384,
    "candidates": 24112,
    "selected": 1000,
    "domains": 50,
}


def _rows(n: int = 60, n_domains: int = 12) -> list[dict]:
    """Every domain twice, the remaining rows in the first third of the domains (uneven counts),
    and trace lengths spread over a wide range."""
    return [
        {
            "id": str(i),
            "domain": f"domain {i % n_domains if i < 2 * n_domains else i % (n_domains // 3):02d}",
            "thinking_tokens": 500 + (97 * i * i) % 9000,
        }
        for i in range(n)
    ]


def _line(text: str, label: str) -> str:
    (line,) = [x for x in text.splitlines() if x.startswith(label + " ")]
    return line


def test_format_funnel_lists_each_stage_once_in_order_with_fractions():
    text = format_funnel(PAPER_FUNNEL)
    lines = text.splitlines()
    stages = [k for k in PAPER_FUNNEL if k != "domains"]
    positions = []
    for name in stages:
        label = stage_label(name)
        assert sum(x.startswith(label + " ") for x in lines) == 1, label
        positions.append(next(i for i, x in enumerate(lines) if x.startswith(label + " ")))
    assert positions == sorted(positions)
    assert lines[-1] == "domains in selection: 50"
    assert sum("domains in selection" in x for x in lines) == 1

    assert "59,029" in _line(text, "pool") and "%" not in _line(text, "pool")
    q1 = _line(text, stage_label("quality1"))
    assert "54,116" in q1 and "91.7% of deduplicated" in q1  # 54116 / 58990
    assert "99.95% of pool" in _line(text, stage_label("decontaminated"))  # not rounded to 100%
    assert "47.5% of quality2" in _line(text, stage_label("difficulty"))
    # Branches off the chain are fractions of the difficulty stage, not of the line above.
    assert "1.6% of difficulty" in _line(text, stage_label("preselected"))
    assert "98.4% of difficulty" in _line(text, stage_label("candidates"))
    assert "4.1% of difficulty" in _line(text, stage_label("selected"))
    assert stage_label("quality1") == STAGES["quality1"][0] == "quality 1: API errors dropped"


def test_format_funnel_treats_unknown_stages_generically():
    text = format_funnel({"pool": 100, "my_filter": 40, "selected": 0})
    assert "40.0% of pool" in _line(text, "my filter")
    assert "0.0% of my_filter" in _line(text, "selected")
    assert "domains in selection" not in text
    assert "n/a" in format_funnel({"pool": 0, "quality1": 0})


def test_report_writes_plots_and_json(tmp_path: Path):
    rows = _rows()
    funnel = {"pool": 500, "quality1": 400, "quality2": 390, "selected": 60, "domains": 12}
    report = write_selection_report(rows, funnel, tmp_path)

    for name in ("domains.png", "thinking_tokens.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    assert report["plots"] == {"domains": "domains.png", "thinking_tokens": "thinking_tokens.png"}

    expected: dict[str, int] = {}
    for r in rows:
        expected[r["domain"]] = expected.get(r["domain"], 0) + 1
    assert report["domains"] == expected and len(expected) == 12
    assert list(report["domains"].values()) == sorted(expected.values(), reverse=True)

    tokens = [r["thinking_tokens"] for r in rows]
    stats = report["thinking_tokens"]
    assert stats["mean"] == pytest.approx(statistics.mean(tokens))
    assert stats["median"] == pytest.approx(statistics.median(tokens))
    assert (stats["min"], stats["max"]) == (min(tokens), max(tokens))
    assert stats["p90"] == pytest.approx(float(np.percentile(tokens, 90)))

    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == report and on_disk["funnel"] == funnel
    assert list(on_disk["funnel"]) == list(funnel)  # pipeline order survives the round trip


def test_domain_plot_grows_with_the_number_of_domains(tmp_path: Path):
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    write_selection_report(_rows(60, 5), {"selected": 60}, few)
    write_selection_report(_rows(600, 60), {"selected": 600}, many)
    from matplotlib.image import imread

    h_few = imread(few / "domains.png").shape[0]
    h_many = imread(many / "domains.png").shape[0]
    assert h_many > 3 * h_few


def test_empty_selection_writes_json_without_plots(tmp_path: Path):
    report = write_selection_report([], {"pool": 10, "selected": 0, "domains": 0}, tmp_path)
    assert report["thinking_tokens"] is None and report["domains"] == {}
    assert report["plots"] == {} and "no rows" in report["note"]
    assert not (tmp_path / "domains.png").exists()
    assert not (tmp_path / "thinking_tokens.png").exists()
    assert json.loads((tmp_path / "report.json").read_text()) == report


def _cfg(enabled: bool) -> OmegaConf:
    return OmegaConf.create(
        {
            "logger": {
                "enabled": enabled,
                "project": "s1exp-test",
                "entity": None,
                "mode": "offline",
                "group": "report",
                "tags": [],
            },
            "selection": {"size": 60},
        }
    )


def test_log_selection_writes_an_offline_run_with_the_funnel(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    sel = tmp_path / "selection"
    sel.mkdir()
    funnel = {"pool": 500, "quality1": 400, "quality2": 390, "selected": 60, "domains": 12}
    report = write_selection_report(_rows(), funnel, sel)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    wandb_dir = log_selection(_cfg(True), run_dir, report, sel, ["selection=test"])
    assert wandb_dir is not None and Path(wandb_dir).parent == run_dir / "wandb"
    run = wandb_inspect(Path(wandb_dir))
    assert run["state"] == "finished"
    for stage, count in funnel.items():
        assert run["summary"][f"select/{stage}"] == count
    assert run["summary"]["select/thinking_tokens_max"] == report["thinking_tokens"]["max"]
    assert "selection=test" in run["tags"] and run["config"]["selection"]["size"] == 60
    media = list(Path(wandb_dir).rglob("*.png"))
    assert len(media) == 2  # both plots travel with the run


def test_log_selection_is_a_no_op_when_the_logger_is_disabled(tmp_path: Path):
    report = write_selection_report(_rows(), {"selected": 60}, tmp_path)
    assert log_selection(_cfg(False), tmp_path, report, tmp_path, []) is None
    assert not (tmp_path / "wandb").exists()
