"""Pool sources: where the featurized question pool comes from (`conf/data/*.yaml`)."""

from __future__ import annotations

from typing import Any

from s1exp.data import toy
from s1exp.data.schema import POOL_FIELDS, PoolRow


def toy_pool(size: int, seed: int, flawed_fraction: float, **_: Any) -> list[PoolRow]:
    """The embedded toy world: a seeded stand-in with the real pool's schema."""
    return toy.make_pool(size=size, seed=seed, flawed_fraction=flawed_fraction)


def hub_pool(path: str, split: str, columns: dict[str, str], **_: Any) -> list[PoolRow]:
    """A featurized pool on the Hugging Face hub, renamed to the schema by `data.columns`.

    `columns` maps every schema field to the dataset's column; a missing column fails loudly
    with the field name rather than producing rows the selection would silently misread.
    """
    from datasets import load_dataset

    missing = [f for f in POOL_FIELDS if f not in columns]
    if missing:
        raise ValueError(f"data.columns lacks a mapping for {missing}; add '<field>: <column>'")
    dataset = load_dataset(path, split=split)
    absent = [c for c in columns.values() if c not in dataset.column_names]
    if absent:
        raise ValueError(f"data.columns names columns {absent} that {path} does not have")
    return [PoolRow(**{f: row[columns[f]] for f in POOL_FIELDS}) for row in dataset]
