"""XML parsing that refuses DTDs and entity declarations (XML bombs), for the XML-based readers.

Entity expansion is how XML bombs ("billion laughs", quadratic blow-up) and
external-entity reads work; no map or scenario format datadrive reads needs a
DTD, so any ``<!DOCTYPE``, ``<!ENTITY`` or external entity reference is
refused before anything is expanded (what ``defusedxml`` does). Both entry
points run the standard library's expat parser:

* :func:`parse_xml` builds an ElementTree (CommonRoad);
* :func:`parse_xml_events` calls the caller's start/end callbacks only, for
  readers that collect what they need in one pass without a tree (Lanelet2
  maps).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.parsers import expat

from datadrive.errors import CorruptFileError

__all__ = ["parse_xml", "parse_xml_events"]


class _RefusedDeclarationError(Exception):
    """Raised from expat callbacks when a document declares a DTD or entities."""


def _refuse(*_args: object) -> None:
    raise _RefusedDeclarationError


def parse_xml_events(
    data: bytes,
    path: Path,
    *,
    start: Callable[[str, dict[str, str]], Any],
    end: Callable[[str], Any],
    text: Callable[[str], Any] | None = None,
) -> None:
    """Run expat over XML bytes with the given callbacks, refusing DTDs and entity declarations.

    Args:
        data: The file's bytes.
        path: The file, named in errors.
        start: Called with each element's name and attributes as it opens.
        end: Called with each element's name as it closes.
        text: Called with character data (buffered: one call per run of
            text); character data is ignored when None.

    Raises:
        CorruptFileError: the bytes are not well-formed XML, or declare a DTD.
    """
    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    if text is not None:
        parser.buffer_text = True
        parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except _RefusedDeclarationError:
        raise CorruptFileError(
            path, "the XML declares a DTD or entities, which datadrive refuses (XML-bomb protection)"
        ) from None
    except expat.ExpatError as exc:
        raise CorruptFileError(
            path, f"not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno})"
        ) from None


def parse_xml(data: bytes, path: Path) -> ET.Element:
    """Parse XML bytes into an ElementTree, refusing DTDs and entity declarations.

    Args:
        data: The file's bytes.
        path: The file, named in errors.

    Raises:
        CorruptFileError: the bytes are not well-formed XML, or declare a DTD.
    """
    builder = ET.TreeBuilder()
    parse_xml_events(data, path, start=builder.start, end=builder.end, text=builder.data)
    return builder.close()
