"""The LLM prompts of featurization and how their replies are read (S1_DATA section 2).

Two features come from a chat model: `domain` (which MSC subject a question belongs to) and
`teacher_correct` (a judge grades the teacher's attempt against the reference solution). This
module builds the chat messages and parses the replies; calling a model is the featurizer's job.

The domain table (`msc.json`, shipped with the package) lists the MSC2020 top-level codes. MSC2020
has 63 of them; the table keeps 61, as s1's did: it drops 00 (General and overarching topics;
collections) and 01 (History and biography), which describe kinds of publications rather than the
mathematics a question is about. s1 never published which two it dropped, so this choice is ours.
Descriptions are short topic keywords written for this project. A user table
(`featurize.domain.table`) may carry extra keys per entry (s1's had a prebuilt `prompt`); they
are ignored and the rubric is rebuilt from code, title and descriptions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from s1exp.errors import ConfigError

TABLE_FIELD = "featurize.domain.table"
PACKAGED_TABLE = "msc.json"

DOMAIN_SYSTEM_PROMPT = (
    "You assign questions to subject areas. You receive a question and a list of classification "
    "rubrics; each rubric names a subject, its two-digit code and the topics it covers. Decide "
    "which single subject fits the question best; when several could apply, choose the one that "
    "the core of the solution depends on. Explain your choice in a few sentences. Then end your "
    "reply with the two-digit code of that subject alone on the last line, with nothing else on "
    "that line."
)

JUDGE_SYSTEM_PROMPT = (
    "You grade a student's attempt at a problem. You receive the problem, the attempt and the "
    "correct answer, and decide whether the attempt is correct when measured against the correct "
    "answer.\n"
    "- If the problem asks for a number, an expression or a choice among options, be strict: the "
    "attempt's final answer must equal the correct one; a different value, a different option or "
    "an approximation of an exact answer is incorrect.\n"
    "- If the problem asks for a proof or a derivation, judge the reasoning: the attempt is "
    "correct if its argument is sound and reaches the correct result, even by another route.\n"
    "Explain your judgement briefly. The last line of your reply must be exactly Yes if the "
    "attempt is correct or No if it is not, with nothing else on that line."
)

_CODE = re.compile(r"\d{2}")
_LAST_CODE = re.compile(r"(?<!\d)\d{2}(?!\d)")
# What may surround a verdict or code: whitespace, punctuation and markdown emphasis/quotes.
_DECORATION = " \t\r\n*_`#>~.,;:!?\"'()[]{}"


@dataclass(frozen=True)
class DomainCode:
    """One subject of the classification table: the classifier answers with `code`, the pool
    stores `title` (s1's `domain` feature holds the title, not the code)."""

    code: str
    title: str
    descriptions: tuple[str, ...]


def _table_error(source: str, problem: str) -> ConfigError:
    return ConfigError(
        f"{TABLE_FIELD}: {source}: {problem}. Point {TABLE_FIELD} at a JSON list of "
        '{"code": "05", "title": "...", "descriptions": ["..."]} objects with unique two-digit '
        "codes, or set it to null for the packaged MSC table."
    )


def _read_table_text(path: str | os.PathLike[str] | None) -> tuple[str, str]:
    """The table's JSON text and a name for it in error messages."""
    if path is None:
        packaged = resources.files("s1exp.data").joinpath(PACKAGED_TABLE)
        source = f"packaged {PACKAGED_TABLE}"
        try:
            return packaged.read_text(encoding="utf-8"), source
        except (OSError, UnicodeDecodeError) as error:
            raise _table_error(source, f"cannot read it ({error})") from error
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8"), source
    except FileNotFoundError as error:
        raise _table_error(source, "no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise _table_error(source, f"cannot read it ({error})") from error


def _domain_code(entry: Any, index: int, source: str) -> DomainCode:
    """Validate one table entry; extra keys are allowed and ignored."""
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise _table_error(source, f"{where} is {type(entry).__name__}, not an object")
    code = entry.get("code")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise _table_error(source, f"{where} has code {code!r}; codes are two-digit strings")
    title = entry.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _table_error(source, f"{where} (code {code}) has no non-empty title")
    descriptions = entry.get("descriptions", [])
    if not isinstance(descriptions, list) or not all(isinstance(d, str) for d in descriptions):
        raise _table_error(source, f"{where} (code {code}) descriptions must be a list of strings")
    return DomainCode(code=code, title=title.strip(), descriptions=tuple(descriptions))


def load_domain_table(path: str | os.PathLike[str] | None = None) -> list[DomainCode]:
    """Read and validate a classification table; None reads the packaged MSC2020 table.

    Raises ConfigError naming `featurize.domain.table` for a missing, unreadable or malformed
    file, so a bad table fails before any model call is paid for."""
    text, source = _read_table_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise _table_error(source, f"not valid JSON ({error})") from error
    if not isinstance(data, list) or not data:
        raise _table_error(source, "the table must be a non-empty JSON list")
    table = [_domain_code(entry, index, source) for index, entry in enumerate(data)]
    seen: set[str] = set()
    for entry in table:
        if entry.code in seen:
            raise _table_error(source, f"code {entry.code} appears more than once")
        seen.add(entry.code)
    return table


def domain_rubric(table: Sequence[DomainCode]) -> str:
    """All subjects as markdown rubrics, in the layout s1's classifier saw."""
    return "\n\n".join(
        f"### {entry.title}\n* Code: {entry.code}\n* Description: {'; '.join(entry.descriptions)}"
        for entry in table
    )


def domain_messages(question: str, table: Sequence[DomainCode]) -> list[dict[str, str]]:
    """Chat messages asking the classifier for the question's single best subject code."""
    user = f"## Question\n{question}\n\n## Classification rubrics\n{domain_rubric(table)}"
    return [
        {"role": "system", "content": DOMAIN_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def _last_line(reply: str) -> str:
    lines = [line for line in reply.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def parse_domain(reply: str, table: Sequence[DomainCode]) -> str | None:
    """The subject title the classifier chose, or None (the caller may retry or store None).

    s1 read the reply's last two characters; here the last non-empty line's final two-digit
    number counts, so "**11**" or "Code: 11." parse too. A code only earlier in the reply does
    not count: the prompt asks for it on the last line."""
    codes = _LAST_CODE.findall(_last_line(reply))
    if not codes:
        return None
    titles = {entry.code: entry.title for entry in table}
    return titles.get(codes[-1])


def judge_messages(question: str, attempt: str, solution: str) -> list[dict[str, str]]:
    """Chat messages asking the judge whether the teacher's attempt matches the solution."""
    user = f"## Problem\n{question}\n\n## Attempt\n{attempt}\n\n## Correct answer\n{solution}"
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def parse_judgement(reply: str) -> bool | None:
    """True/False for a last line of Yes/No (any case, markdown or punctuation around it), else
    None: s1 retried such replies rather than guess."""
    verdict = _last_line(reply).strip(_DECORATION).casefold()
    return {"yes": True, "no": False}.get(verdict)
