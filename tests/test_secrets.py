"""API keys and tokens never reach a saved file: configs, results, logs, the store, W&B.

The end-to-end test plants distinct secrets in the environment (WANDB_API_KEY, HF_TOKEN,
MY_SERVICE_SECRET), on the command line (`+logger.api_key=...`) and through `${oc.env:HF_TOKEN}`
interpolations, runs `python -m s1exp` once and as a 2-job multirun (logger W&B offline), and
searches every byte written under the run and sweep dirs, the store and W&B's own folders.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import FAST, run_s1exp
from omegaconf import OmegaConf

from s1exp import secrets
from s1exp.hydra_redact import rewrite_redacted
from s1exp.secrets import REDACTED, is_secret_name, redact, redact_override, redact_text

ENV_SECRETS = {
    "WANDB_API_KEY": "planted0wandb0key0000000000000000000abcd",  # 40 characters, as W&B's
    "HF_TOKEN": "hf_PlantedHubToken0S1expSecretsTest9",
    "MY_SERVICE_SECRET": "svc-planted-service-secret-7f3a9c",
}
CLI_SECRET = "sk-planted-cli-api-key-52d1e0aa"
# FAST, smaller still: every stage runs and logs to W&B, on a few rows and questions.
SMALL = {"selection.size": "40", "train.epochs": "1", "benchmark.toy.size": "8"}
TINY_WORLD = [o for o in FAST if o.split("=")[0] not in SMALL] + [
    f"{k}={v}" for k, v in SMALL.items()
]
SECRET_OVERRIDES = [
    f"+logger.api_key={CLI_SECRET}",  # a literal on the command line
    "+logger.hub_auth=${oc.env:HF_TOKEN}",  # an innocent name, a secret value
    "+data.hub_token=${oc.env:HF_TOKEN}",  # a secret name in the store's describe block
]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("WANDB_API_KEY", True),
        ("HF_TOKEN", True),
        ("MY_SERVICE_SECRET", True),
        ("api_key", True),
        ("apiKey", True),
        ("token", True),
        ("password", True),
        ("logger.api_key", True),
        ("key", False),  # the store's artifact keys
        ("max_tokens", False),
        ("tokenizer", False),
        ("eos_token", False),
        ("num_key_value_heads", False),
        ("TOKENIZERS_PARALLELISM", False),
    ],
)
def test_secret_names(name: str, secret: bool):
    assert is_secret_name(name) is secret


def test_redact_by_name_by_value_and_in_overrides(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_TOKEN", ENV_SECRETS["HF_TOKEN"])
    token = ENV_SECRETS["HF_TOKEN"]
    config = {
        "logger": {"api_key": "literal-secret-123", "url": f"https://hub/?t={token}"},
        "unresolved": {"token": "${oc.env:HF_TOKEN}"},  # says where from, not what: kept
        "stage": {"key": "0123456789abcdef", "max_tokens": 512, "use_token": False},
        "overrides": ["+logger.api_key=cli-secret-456", "data.pool.size=25", f"+x={token}"],
    }
    out = redact(config)
    assert out["logger"] == {"api_key": REDACTED, "url": f"https://hub/?t={REDACTED}"}
    assert out["unresolved"] == config["unresolved"] and out["stage"] == config["stage"]
    assert out["overrides"] == [
        "+logger.api_key='<redacted>'",  # still parses as a Hydra override
        "data.pool.size=25",
        "+x='<redacted>'",
    ]
    # values seen under a secret name are caught in later text, whatever surrounds them
    assert redact_text("auth literal-secret-123 and cli-secret-456") == (
        f"auth {REDACTED} and {REDACTED}"
    )
    assert redact_text("#0 : +logger.api_key=abc data.pool.size=25") == (
        "#0 : +logger.api_key='<redacted>' data.pool.size=25"
    )
    assert redact_override("model@featurize.judge=tiny") == "model@featurize.judge=tiny"
    assert redact_override("+hub_token=${oc.env:HF_TOKEN}") == "+hub_token=${oc.env:HF_TOKEN}"


def test_saved_yaml_rewritten_unresolved(tmp_path: Path):
    saved = tmp_path / "config.yaml"
    OmegaConf.save(
        OmegaConf.create(
            {"logger": {"api_key": "literal-secret-789", "env": "${oc.env:HF_TOKEN}"}, "n": 1}
        ),
        saved,
    )
    assert rewrite_redacted(saved)
    assert OmegaConf.to_container(OmegaConf.load(saved)) == {
        "logger": {"api_key": REDACTED, "env": "${oc.env:HF_TOKEN}"},
        "n": 1,
    }
    assert not rewrite_redacted(saved)  # nothing left: the file stays as it is


def test_log_records_redacted(caplog: pytest.LogCaptureFixture):
    before = logging.getLogRecordFactory()
    try:
        secrets.remember("remembered-secret-0042")
        secrets.redact_log_records()
        with caplog.at_level(logging.INFO):
            logging.getLogger("s1exp.test").info("using %s", "remembered-secret-0042")
        assert caplog.records[-1].getMessage() == f"using {REDACTED}"
    finally:
        logging.setLogRecordFactory(before)


def _hits(folders: list[Path], texts: dict[str, str]) -> list[str]:
    """Every (file or stream, secret name) where a planted secret's bytes occur."""
    planted = {**ENV_SECRETS, "+logger.api_key": CLI_SECRET}
    hits = [
        f"{where}: {name}"
        for where, text in texts.items()
        for name, value in planted.items()
        if value in text
    ]
    for folder in folders:
        for file in sorted(folder.rglob("*")):
            if not file.is_file():
                continue
            data = file.read_bytes()
            hits += [f"{file}: {n}" for n, v in planted.items() if v.encode() in data]
    return hits


@pytest.mark.slow
def test_no_secret_in_any_file_of_a_run_and_a_sweep(s1_env: dict[str, str], tmp_path: Path):
    wandb_home = tmp_path / "wandb_home"
    env = s1_env | ENV_SECRETS | {"S1EXP_STORE": str(tmp_path / "store")}
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(wandb_home / var.lower())
    common = [*TINY_WORLD, "logger=wandb", *SECRET_OVERRIDES]

    single = run_s1exp([*common, "hydra.run.dir=run"], tmp_path, env)
    assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-5000:]
    sweep = run_s1exp(
        ["-m", *common, "extrapolation=none,wait", "hydra.sweep.dir=sweep"], tmp_path, env
    )
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-5000:]

    results = [tmp_path / "run/results.json", *(tmp_path / f"sweep/{j}/results.json" for j in "01")]
    for path in results:
        saved = json.loads(path.read_text())
        assert saved["config"]["logger"]["api_key"] == REDACTED
        assert saved["config"]["logger"]["hub_auth"] == REDACTED  # by its value
    assert list((tmp_path / "sweep/wandb").glob("offline-run-*")), "the sweep logged no W&B run"
    consoles = {
        "single run stdout": single.stdout,
        "single run stderr": single.stderr,
        "sweep stdout": sweep.stdout,
        "sweep stderr": sweep.stderr,
    }
    folders = [tmp_path / "run", tmp_path / "sweep", tmp_path / "store", wandb_home]
    assert _hits(folders, consoles) == []
