"""Every error datadrive raises on purpose.

Bad input never surfaces as a bare ``KeyError`` or ``struct.error``: readers
raise one of the :class:`InputError` subclasses below, each naming the file
and the reason, and the CLI turns any :class:`DatadriveError` into a one-line
message with exit status 2.

The tree::

    DatadriveError
    ├── InputError                 a file cannot be read; names .path and .reason
    │   ├── UnknownFormatError     no adapter claims the path
    │   │   └── UnsupportedFormatError   claimed by extension, but a variant we do not read
    │   ├── CorruptFileError       truncated, bad checksum, undecodable bytes
    │   ├── SchemaMismatchError    a table lacks columns or has the wrong types
    │   ├── InvalidValueError      NaN positions, absurd values, broken invariants
    │   ├── EmptyLogError          a well-formed file with nothing in it
    │   └── UnsafePickleError      a pickle that asks for more than plain data
    ├── ValidationError            a Scenario broke an invariant (no file attached)
    ├── ConfigError                a configuration file or flag is wrong
    │   └── DeviceError            an accelerator was asked for where there is none
    ├── MiningError                a mining query, description or translator failed
    │   ├── QueryError             an expression does not parse or names unknown things
    │   ├── DescriptionError       a description has words no rule can place
    │   └── TranslatorError        a language-model endpoint failed or answered garbage
    ├── AssistantError             the in-car assistant cannot do what was asked
    │   ├── UnknownVehicleError    no such vehicle (or drive) in the lake
    │   ├── UnknownPlaceError      no such place on the map, or no route between places
    │   └── EndpointError          a language-model endpoint failed, timed out or answered garbage
    ├── SimulationInputError       a scenario the simulator cannot run; names .scenario_id and .reason
    ├── LakeError                  storage-side failures
    │   ├── ResidencyError         raw data would leave its region
    │   ├── AccessDeniedError      a principal may not read or write this data
    │   ├── SchemaVersionError     a table written by a newer datadrive
    │   ├── ArtefactNameError      a derived artefact's name is not a safe relative name
    │   └── StorageError           the storage root refused a write (disk full, permissions)
    │       └── StorageUnreachableError   an object store's endpoint does not answer
    ├── DatasetError               a curated dataset cannot be built, found or used
    │   └── EmptyDatasetError      its query matched no scenario
    ├── FeatureCacheError          a feature cache is missing, incomplete or unreadable
    │   └── CacheVersionError      it was built by another version of the featuriser
    ├── TrainingError              a training run cannot start or go on
    │   ├── CheckpointError        a checkpoint of another model, or unreadable
    │   └── NonFiniteLossError     the loss became NaN or infinite
    └── MetricInputError           predictions or ground truth a metric cannot score
"""

from __future__ import annotations

import re
from os import PathLike

__all__ = [
    "AccessDeniedError",
    "ArtefactNameError",
    "AssistantError",
    "CacheVersionError",
    "CheckpointError",
    "ConfigError",
    "CorruptFileError",
    "DatadriveError",
    "DatasetError",
    "DescriptionError",
    "DeviceError",
    "EmptyDatasetError",
    "EmptyLogError",
    "EndpointError",
    "FeatureCacheError",
    "InputError",
    "InvalidValueError",
    "LakeError",
    "MetricInputError",
    "MiningError",
    "NonFiniteLossError",
    "QueryError",
    "ResidencyError",
    "SchemaMismatchError",
    "SchemaVersionError",
    "SimulationInputError",
    "StorageError",
    "StorageUnreachableError",
    "TrainingError",
    "TranslatorError",
    "UnknownFormatError",
    "UnknownPlaceError",
    "UnknownVehicleError",
    "UnsafePickleError",
    "UnsupportedFormatError",
    "ValidationError",
    "one_line",
]

EXCERPT_CHARS = 400
"""The most characters of outside text (a file's value, a library's message) an error quotes."""


def one_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    r"""``text`` on one line (line breaks and runs of spaces become one space), cut to ``limit`` characters.

    Errors quote what they were given (an attribute of a map file, a
    library's message); a 50 MB attribute must not become a 50 MB error
    line, nor a four-line parser message four lines of a one-line CLI.

    >>> one_line("a\n  b")
    'a b'
    >>> one_line("x" * 10, limit=6)
    'x... (+9 chars)'
    """
    flat = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
    if len(flat) <= limit:
        return flat
    keep = max(limit - 20, 1)
    return f"{flat[:keep]}... (+{len(flat) - keep} chars)"


class DatadriveError(Exception):
    """Base of every error datadrive raises on purpose."""


class InputError(DatadriveError):
    """A file cannot be turned into datadrive records.

    Attributes:
        path: The offending file (or folder), as the caller named it.
        reason: What is wrong with it, in one sentence.
    """

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str]]:
        # Rebuild from (path, reason), so the error survives a process pool or Ray worker.
        return (type(self), (self.path, self.reason))


class UnknownFormatError(InputError):
    """No registered adapter recognises the path."""


class UnsupportedFormatError(UnknownFormatError):
    """An adapter recognised the file type, but not this variant of it."""


class CorruptFileError(InputError):
    """The bytes are truncated, fail a checksum, or do not decode."""


class SchemaMismatchError(InputError):
    """A table is missing columns or has columns of the wrong type."""


class InvalidValueError(InputError):
    """The file decodes, but its values are impossible (NaN positions, ...)."""


class EmptyLogError(InputError):
    """The file is well formed but holds no usable data."""


class UnsafePickleError(InputError):
    """A pickle asked to import something outside the plain-data allow-list."""


class ValidationError(DatadriveError):
    """A record violates a schema invariant (shape, dtype, value range)."""


class ConfigError(DatadriveError):
    """A configuration file or command-line flag is wrong."""


class DeviceError(ConfigError):
    """An accelerator (a CUDA GPU) was requested on a machine that has none."""


class MiningError(DatadriveError):
    """Base of mining failures: queries, descriptions, translators."""


class QueryError(MiningError):
    """An expression does not parse, or names a category or predicate that does not exist.

    Attributes:
        expression: The expression text (empty for expressions built in Python).
        position: Character offset of the offending token, or -1.
        reason: What is wrong, in one sentence.
    """

    def __init__(self, reason: str, expression: str = "", position: int = -1) -> None:
        self.reason = reason
        self.expression = expression
        self.position = position
        if expression and position >= 0:
            pointer = " " * position + "^"
            message = f"{reason}\n  {expression}\n  {pointer}"
        else:
            message = reason
        super().__init__(message)

    def __reduce__(self) -> tuple[type[QueryError], tuple[str, str, int]]:
        return (type(self), (self.reason, self.expression, self.position))


class DescriptionError(MiningError):
    """A natural-language description has words the translator cannot place.

    Attributes:
        description: The description as given.
        unknown_words: The words no rule placed, in order.
    """

    def __init__(self, description: str, unknown_words: tuple[str, ...], reason: str = "") -> None:
        self.description = description
        self.unknown_words = tuple(unknown_words)
        self.reason = reason
        words = ", ".join(repr(w) for w in self.unknown_words)
        text = reason or f"cannot place {words} in {description!r}"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[DescriptionError], tuple[str, tuple[str, ...], str]]:
        return (type(self), (self.description, self.unknown_words, self.reason))


class TranslatorError(MiningError):
    """A language-model endpoint could not be reached, timed out, or answered something unusable."""


class AssistantError(DatadriveError):
    """The in-car assistant cannot do what was asked."""


class UnknownVehicleError(AssistantError):
    """The lake has no telemetry of the vehicle (or the drive) asked about."""


class UnknownPlaceError(AssistantError):
    """The map has no such place, or no drivable route between places."""


class EndpointError(AssistantError):
    """A language-model endpoint failed, timed out, or answered something unusable."""


class SimulationInputError(DatadriveError):
    """A scenario the simulator cannot run (no lanes, NaN states, no ego, zero length, off the map).

    Attributes:
        scenario_id: The scenario.
        reason: Why, in one sentence.
    """

    def __init__(self, scenario_id: str, reason: str) -> None:
        self.scenario_id = scenario_id
        self.reason = reason
        super().__init__(f"scenario {scenario_id}: {reason}")

    def __reduce__(self) -> tuple[type[SimulationInputError], tuple[str, str]]:
        return (type(self), (self.scenario_id, self.reason))


class LakeError(DatadriveError):
    """Base of storage-side failures."""


class ResidencyError(LakeError):
    """Raw data would leave the region where it was recorded."""


class AccessDeniedError(LakeError):
    """A principal is not allowed to read or write the requested data."""


class SchemaVersionError(LakeError):
    """A table was written with a schema newer than this datadrive understands."""


class ArtefactNameError(LakeError):
    """A derived artefact's name is not a plain relative name (``..``, absolute, odd characters)."""


class StorageError(LakeError):
    """The storage root refused an operation (disk full, permission denied, ...)."""


class StorageUnreachableError(StorageError):
    """An object store's endpoint does not answer (connection refused, timed out, unknown host)."""


class DatasetError(DatadriveError):
    """A curated dataset cannot be built, found or used."""


class EmptyDatasetError(DatasetError):
    """A dataset query matched no scenario."""


class FeatureCacheError(DatadriveError):
    """A feature cache is missing, incomplete or unreadable."""


class CacheVersionError(FeatureCacheError):
    """A feature cache was written by another version of the featuriser (rebuild it)."""


class TrainingError(DatadriveError):
    """A training run cannot start or go on."""


class CheckpointError(TrainingError):
    """A checkpoint belongs to another model or configuration, or cannot be read."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite; the run stopped without saving it."""


class MetricInputError(DatadriveError):
    """Predictions or ground truth that a metric cannot score (shapes, NaN, probabilities)."""
