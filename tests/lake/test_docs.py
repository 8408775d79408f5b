"""The SQL examples in docs/lake.md run (against a small synthetic lake)."""

from __future__ import annotations

import shlex
from pathlib import Path

import lake_synth
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lake.md"


def sql_examples() -> list[list[str]]:
    lines = [
        ln.strip()[2:] for ln in DOCS.read_text().splitlines() if ln.strip().startswith("$ datadrive sql ")
    ]
    return [shlex.split(ln) for ln in lines if "--home" not in ln]  # refusal examples are tested elsewhere


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


EXAMPLES = sql_examples()


def test_the_docs_have_sql_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("argv", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_sql_example_runs(argv, make_lake, inputs) -> None:
    region = _opt(argv, "--region") or "cn-north"
    lake = make_lake(home=region)
    lake.ingest(inputs(range(2), telemetry=True), region, registry=lake_synth.REGISTRY)
    as_of = _opt(argv, "--as-of")
    query = argv[2]
    result = lake.sql(query, region=region, version=None if as_of is None else int(as_of))
    assert result.table.num_columns >= 1
