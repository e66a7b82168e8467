"""The featurization prompts: the packaged MSC table, the message layouts and reply parsing."""

from __future__ import annotations

import json
import re

import pytest

from s1exp.data.prompts import (
    DomainCode,
    domain_messages,
    domain_rubric,
    judge_messages,
    load_domain_table,
    parse_domain,
    parse_judgement,
)
from s1exp.errors import ConfigError


@pytest.fixture(scope="module")
def table() -> list[DomainCode]:
    return load_domain_table()


def test_packaged_table_has_unique_two_digit_codes(table):
    codes = [entry.code for entry in table]
    assert len(codes) == 61  # MSC2020's 63 top-level codes minus 00 and 01, like s1's table
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"\d{2}", code) for code in codes)
    assert all(entry.title and entry.descriptions for entry in table)
    assert "00" not in codes and "01" not in codes


def test_packaged_table_titles(table):
    titles = {entry.code: entry.title for entry in table}
    assert titles["03"] == "Mathematical logic and foundations"
    assert titles["05"] == "Combinatorics"
    assert titles["11"] == "Number theory"
    assert titles["60"] == "Probability theory and stochastic processes"
    assert titles["81"] == "Quantum theory"


def test_rubric_layout():
    table = [
        DomainCode("05", "Combinatorics", ("counting", "graphs")),
        DomainCode("11", "Number theory", ("primes",)),
    ]
    assert domain_rubric(table) == (
        "### Combinatorics\n* Code: 05\n* Description: counting; graphs\n\n"
        "### Number theory\n* Code: 11\n* Description: primes"
    )


def test_domain_messages(table):
    messages = domain_messages("How many primes are below 30?", table)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "two-digit code" in messages[0]["content"]
    user = messages[1]["content"]
    rubric = domain_rubric(table)
    assert (
        user == f"## Question\nHow many primes are below 30?\n\n## Classification rubrics\n{rubric}"
    )
    assert "### Number theory\n* Code: 11\n* Description: " in user


@pytest.mark.parametrize(
    ("reply", "title"),
    [
        ("The question counts primes, a number theory topic.\n\n11", "Number theory"),
        ("Counting arrangements is combinatorics.\n**05**\n", "Combinatorics"),
        ("An expected value.\nCode: 60.", "Probability theory and stochastic processes"),
        ("Spin operators belong here.\n  `81`  \n\n", "Quantum theory"),
        ("Both 05 and 60 fit, but the core is counting.\n05", "Combinatorics"),
        ("Logic question.\n**Code: 03**", "Mathematical logic and foundations"),
        ("This is number theory.\n99", None),  # not in the table
        ("I cannot classify this question.", None),
        ("Probably 11 (number theory), I think.\nLet me know if you need more.", None),
        ("The year 2023 matters here.\n2023", None),  # four digits are not a code
        ("", None),
    ],
)
def test_parse_domain(reply, title, table):
    assert parse_domain(reply, table) == title


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("The attempt gets 42, matching the answer.\nYes", True),
        ("Matches.\n**Yes**\n\n", True),
        ("Matches.\nyes.", True),
        ("The attempt says 41, the answer is 42.\nNo", False),
        ("Wrong option.\n**NO**", False),
        ("The reasoning skips a case.\nNo.", False),
        ("Yes, the value is right, but the final line is missing.\nIt is correct overall", None),
        ("The answer is: Yes or No depending on the case.", None),
        ("Maybe", None),
        ("", None),
    ],
)
def test_parse_judgement(reply, verdict):
    assert parse_judgement(reply) is verdict


def test_judge_messages():
    messages = judge_messages("What is 6*7?", "It is 42.", "42")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Yes" in messages[0]["content"] and "No" in messages[0]["content"]
    assert messages[1]["content"] == (
        "## Problem\nWhat is 6*7?\n\n## Attempt\nIt is 42.\n\n## Correct answer\n42"
    )


def test_user_table_with_extra_keys(tmp_path):
    path = tmp_path / "table.json"
    rows = [{"code": "11", "title": "Number theory", "descriptions": ["primes"], "prompt": "x"}]
    path.write_text(json.dumps(rows))
    assert load_domain_table(str(path)) == [DomainCode("11", "Number theory", ("primes",))]


BAD_TABLES = {
    "duplicate codes": [
        {"code": "11", "title": "Number theory", "descriptions": []},
        {"code": "11", "title": "Other", "descriptions": []},
    ],
    "missing title": [{"code": "11", "descriptions": ["primes"]}],
    "empty title": [{"code": "11", "title": "  ", "descriptions": []}],
    "one-digit code": [{"code": "5", "title": "Combinatorics", "descriptions": []}],
    "integer code": [{"code": 11, "title": "Number theory", "descriptions": []}],
    "descriptions not a list": [{"code": "11", "title": "Number theory", "descriptions": "x"}],
    "not a list": {"code": "11", "title": "Number theory"},
    "empty list": [],
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_malformed_table_raises_config_error(case, tmp_path):
    path = tmp_path / "table.json"
    path.write_text(json.dumps(BAD_TABLES[case]))
    with pytest.raises(ConfigError, match="featurize.domain.table"):
        load_domain_table(str(path))


def test_non_json_and_missing_table_raise_config_error(tmp_path):
    path = tmp_path / "table.json"
    path.write_text("code,title\n11,Number theory\n")
    with pytest.raises(ConfigError, match="featurize.domain.table.*not valid JSON"):
        load_domain_table(str(path))
    with pytest.raises(ConfigError, match="featurize.domain.table.*no such file"):
        load_domain_table(str(tmp_path / "missing.json"))
