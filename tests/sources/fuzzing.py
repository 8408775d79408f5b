"""What the readers' fuzz tests share: byte mutations of a sample, and the contract they check.

The contract: fed mutated bytes of a sample of its format (flips, truncation,
insertion), a reader either returns validated records or raises an
:class:`~datadrive.errors.InputError` subclass; nothing else, no hang. Each
test keeps its own ``@seed``, example count and deadline; the two settings
profiles below hold what the tests have in common.

Two mutation shapes are in use:

* :func:`mutate`: one edit per example (1-4 byte flips, a truncation, or 1-16
  random bytes inserted), drawn with ``st.data()``'s ``draw`` in a test that
  takes fixtures (a failure prints the small draws, not the whole file).
  ``head``/``tail`` send half the examples' edits into the first/last bytes,
  where a format keeps its header or footer.
* :func:`mutations`: a strategy of 1-4 chained edits (flips weighted up,
  truncation, insertion, deletion). Positions are drawn as big integers
  taken modulo the length, so they spread over the whole buffer instead of
  piling up at 0; half of them fall in the first ``head`` bytes, where the
  headers and tags are. :func:`text_mutations` is its setting for text formats
  (XML, CSV, plain text): the format's own tokens are inserted instead of
  random bytes.

Imported by the test modules beside it (pytest puts this folder on
``sys.path``, as ``tests/lake`` does for its helpers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from datadrive.core import Scenario
from datadrive.core.telemetry import Telemetry
from datadrive.errors import InputError
from datadrive.sources import Adapter

Draw = Callable[[st.SearchStrategy[Any]], Any]
"""``st.DataObject.draw``, or a composite strategy's ``draw``."""

FIXTURE_FUZZ = settings(
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""For ``@given(data=st.data())`` on a test that takes fixtures (each example restores what it changes)."""

INNER_FUZZ = settings(database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""For a ``@given`` check defined inside a test and fed whole files (large examples are expected)."""


def mutate(data: bytes, draw: Draw, *, head: int | None = None, tail: int | None = None) -> bytes:
    """One edit of ``data``: 1-4 byte flips, a truncation, or an insertion of 1-16 random bytes.

    Args:
        data: The bytes to edit; empty bytes become 1-8 random bytes.
        draw: Draws from a strategy (``data.draw`` of ``st.data()``).
        head: Half the examples edit only the first ``head`` bytes.
        tail: Half the examples edit only the last ``tail`` bytes.
    """
    kind = draw(st.sampled_from(["flip", "truncate", "insert"]))
    if not data:
        return bytes(draw(st.binary(min_size=1, max_size=8)))
    lo, hi = 0, len(data) - 1
    if (head is not None or tail is not None) and draw(st.booleans()):
        if head is not None:
            hi = min(hi, head - 1)
        if tail is not None:
            lo = max(0, len(data) - tail)
    pos = draw(st.integers(lo, hi))
    if kind == "truncate":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + bytes(draw(st.binary(min_size=1, max_size=16))) + data[pos:]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        out[draw(st.integers(lo, hi))] ^= draw(st.integers(1, 255))
    return bytes(out)


@contextlib.contextmanager
def mutated_file(
    target: Path, draw: Draw, *, head: int | None = None, tail: int | None = None
) -> Iterator[None]:
    """``target`` holds :func:`mutate` of its bytes inside the block, its own bytes again after it."""
    original = target.read_bytes()
    try:
        target.write_bytes(mutate(original, draw, head=head, tail=tail))
        yield
    finally:
        target.write_bytes(original)


@st.composite
def mutations(
    draw: st.DrawFn,
    data: bytes,
    *,
    head: int = 400,
    flip_weight: int = 3,
    inserts: st.SearchStrategy[bytes] | None = None,
    max_delete: int = 8,
) -> bytes:
    """1-4 chained edits of ``data``: byte flips, truncation, insertion or deletion.

    Args:
        data: The bytes to edit.
        head: Half the edits fall in the first ``head`` bytes.
        flip_weight: How many times likelier a flip is than each other edit.
        inserts: What an insertion inserts; by default 1-8 random bytes.
        max_delete: A deletion removes 1 to this many bytes.
    """
    insert = st.binary(min_size=1, max_size=8) if inserts is None else inserts
    kinds = ["flip"] * flip_weight + ["truncate", "insert", "delete"]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        kind = draw(st.sampled_from(kinds))
        span = min(len(out), head) if draw(st.booleans()) else len(out)
        pos = draw(st.integers(0, 2**32 - 1)) % span
        if kind == "flip":
            out[pos] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del out[pos:]
        elif kind == "insert":
            out[pos:pos] = draw(insert)
        else:
            del out[pos : pos + draw(st.integers(1, max_delete))]
    return bytes(out)


def text_mutations(data: bytes, tokens: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """:func:`mutations` for a text format: flips, truncation, deletion (up to 16 bytes), ``tokens`` inserted.

    Half the edits fall in the first 600 bytes (headers, the first rows or elements).
    """
    return mutations(data, head=600, flip_weight=2, inserts=st.sampled_from(list(tokens)), max_delete=16)


def assert_reads_or_refuses(
    adapter: Adapter, path: Path, record_type: type[Scenario] | type[Telemetry] = Scenario
) -> None:
    """The contract: every record read is a ``record_type`` that validates, or an InputError; nothing else."""
    with contextlib.suppress(InputError):
        for record in adapter.read(path):
            assert isinstance(record, record_type)
            record.validate()
