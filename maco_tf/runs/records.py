"""Results files read as untrusted data: a bounded parse and the one schema of their content.

A results file may have been edited, truncated, written by another version or crafted. It is
parsed only when its size and nesting depth are within bounds (checked on the raw text, before
the JSON parser recurses), JSON's non-standard ``NaN``/``Infinity`` and numbers that overflow a
float are read as ``null``, and its content is checked against one schema, used by resume and
by the atlas website alike:

* the settings must be an object whose known keys have their types; otherwise the whole file
  is unreadable (:class:`ResultsFormatError`);
* each target record must have the types of its fields (strings, integers, finite numbers,
  lists and objects of those); a record that does not is skipped, with a one-line warning,
  and its target is computed again;
* the run history must be a list of objects whose times are finite and non-negative; one that
  is not is reset, with a one-line warning.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from maco_tf.errors import MacoError

__all__ = [
    "MAX_DEPTH",
    "MAX_RESULTS_BYTES",
    "MAX_RUN_TIME_S",
    "ResultsContent",
    "ResultsFormatError",
    "check_content",
    "json_safe",
    "parse_bounded",
]

#: Largest results file read, in bytes (100,000 targets with trust profiles fit well below).
MAX_RESULTS_BYTES = 256 * 2**20
#: Deepest nesting of arrays and objects read (results files nest 5 deep).
MAX_DEPTH = 32
#: Largest time of one run record, in seconds (about 3,000 years): their sum stays finite.
MAX_RUN_TIME_S = 1e11
#: Longest list of one record field (top-5 entries, trust layers, patch files...).
_MAX_ITEMS = 10_000

_BRACKETS = re.compile(r"[^\[\]{}]+")


class ResultsFormatError(MacoError, ValueError):
    """A results file that is too large, too deep, not JSON, or whose settings are malformed."""


def _depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text``, scanned without recursion.

    Escaped backslashes and quotes are dropped first, so the remaining quotes delimit strings
    and brackets inside strings are not counted.
    """
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join(unescaped.split('"')[::2])
    brackets = _BRACKETS.sub("", outside)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.encode("ascii"), np.uint8)
    opening = (steps == ord("[")) | (steps == ord("{"))
    return int(np.cumsum(np.where(opening, 1, -1)).max())


def _read_float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def parse_bounded(data: bytes, name: str) -> object:
    """Parse a results file's bytes as JSON, within :data:`MAX_RESULTS_BYTES` and :data:`MAX_DEPTH`.

    ``NaN``, ``Infinity`` and numbers beyond a float's range are read as ``None``.

    Parameters
    ----------
    data
        The file's content.
    name
        The file, as messages name it.

    Raises
    ------
    ResultsFormatError
        If it is too large, nested too deep, not UTF-8 or not JSON.
    """
    if len(data) > MAX_RESULTS_BYTES:
        raise ResultsFormatError(
            f"{name} is {len(data)} bytes, over the {MAX_RESULTS_BYTES} bytes a results file "
            f"may have"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{name} is not UTF-8 text") from None
    depth = _depth(text)
    if depth > MAX_DEPTH:
        raise ResultsFormatError(
            f"{name} nests {depth} levels deep, over the {MAX_DEPTH} a results file may have"
        )
    try:
        return json.loads(text, parse_constant=lambda _: None, parse_float=_read_float)
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ResultsFormatError(f"{name} is not valid JSON ({reason})") from None


def json_safe(value: object) -> object:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity).

    Lists, tuples and dicts are copied; other values are returned as they are.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


# ------------------------------------------------------------------------------ the schema

#: A check of one value: None when it is fine, else what is wrong with it.
Check = Callable[[object], str | None]


def _int(value: object) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "not an integer"


def _str(value: object) -> str | None:
    return None if isinstance(value, str) else "not a string"


def _bool(value: object) -> str | None:
    return None if isinstance(value, bool) else "not true or false"


def _number(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not a number"
    try:
        return None if math.isfinite(value) else "not a finite number"
    except OverflowError:
        return "not a finite number"


def _optional(check: Check) -> Check:
    def optional(value: object) -> str | None:
        return None if value is None else check(value)

    return optional


def _list_of(check: Check, length: int | None = None) -> Check:
    def list_of(value: object) -> str | None:
        if not isinstance(value, list):
            return "not a list"
        if len(value) > _MAX_ITEMS or (length is not None and len(value) != length):
            return f"a list of {len(value)} items"
        for position, item in enumerate(value):
            problem = check(item)
            if problem is not None:
                return f"item {position}: {problem}"
        return None

    return list_of


def _object(required: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    def object_check(value: object) -> str | None:
        if not isinstance(value, dict):
            return "not an object"
        return _problem(value, required, optional or {})

    return object_check


def _problem(value: dict, required: dict[str, Check], optional: dict[str, Check]) -> str | None:
    """The first field of ``value`` missing or with the wrong type, as ``field 'x': why``."""
    for key, check in required.items():
        if key not in value:
            return f"field {key!r} missing"
        problem = check(value[key])
        if problem is not None:
            return f"field {key!r}: {problem}"
    for key, check in optional.items():
        problem = None if key not in value else check(value[key])
        if problem is not None:
            return f"field {key!r}: {problem}"
    return None


_NUMBER_OR_NONE = _optional(_number)
_TOP5 = _optional(_list_of(_object({"index": _int, "name": _str, "probability": _number})))
_FILES = _object({"image": _str, "rgba": _str, "heatmap": _str})


def _same_lengths(*keys: str) -> Check:
    """Objects whose lists under ``keys`` have one length (they are read side by side)."""

    def same(value: object) -> str | None:
        lengths = {len(value[key]) for key in keys if isinstance(value.get(key), list)}
        return None if len(lengths) <= 1 else f"fields {', '.join(keys)} differ in length"

    return same


def _all(*checks: Check) -> Check:
    def all_checks(value: object) -> str | None:
        for check in checks:
            problem = check(value)
            if problem is not None:
                return problem
        return None

    return all_checks


_TRUST = _optional(
    _all(
        _object(
            {
                "score": _NUMBER_OR_NONE,
                "layers": _list_of(_str),
                "visualization": _list_of(_number),
                "natural": _list_of(_number),
                "baseline": _list_of(_number),
            },
            {"flagged": _bool, "references": _int, "baseline_photos": _int},
        ),
        _same_lengths("layers", "visualization", "natural", "baseline"),
    )
)
_DIVERSE = _object(
    {"files": _list_of(_str)},
    {"setting": _str, "objective_values": _list_of(_NUMBER_OR_NONE), "seed": _optional(_int)},
)
_PATCHES = _all(
    _object(
        {"files": _list_of(_str), "photos": _list_of(_str), "values": _list_of(_number)},
        {
            "key": _str,
            "field": _optional(_int),
            "boxes": _list_of(_list_of(_int)),
            "order": _list_of(_int),
        },
    ),
    _same_lengths("files", "photos", "values"),
)

#: Fields every target record has.
RECORD_FIELDS: dict[str, Check] = {
    "slug": _str,
    "name": _str,
    "kind": _str,
    "layer": _str,
    "index": _int,
    "files": _FILES,
}
#: Fields some records have (by command or kind), checked when present.
OPTIONAL_RECORD_FIELDS: dict[str, Check] = {
    "key": _str,
    "objective_value": _NUMBER_OR_NONE,
    "dead": _bool,
    "top5": _TOP5,
    "seed": _optional(_int),
    "image_id": _int,
    "batch_position": _int,
    "wall_time_s": _number,
    "batch_wall_time_s": _number,
    "trust": _TRUST,
    "class_index": _int,
    "importance": _NUMBER_OR_NONE,
    "rank": _optional(_int),
    "examples": _int,
    "patch_size": _optional(_int),
    "diverse": _optional(_DIVERSE),
    "patches": _optional(_PATCHES),
    "objective_before": _NUMBER_OR_NONE,
    "objective_after": _NUMBER_OR_NONE,
    "seed_distance": _NUMBER_OR_NONE,
    "top5_before": _TOP5,
    "top5_after": _TOP5,
}
_PAIR = _list_of(_number, length=2)


def _number_or_pair(value: object) -> str | None:
    """One number (one box size) or a ``[smallest, largest]`` pair."""
    if _number(value) is None or _PAIR(value) is None:
        return None
    return "not a number or a pair of numbers"


def _size(value: object) -> str | None:
    """An image side (older records) or ``[height, width]``."""
    if _int(value) is None or _list_of(_int, length=2)(value) is None:
        return None
    return "not an integer or a [height, width] pair"


#: Settings keys that the website formats, with their types.
SETTINGS_FIELDS: dict[str, Check] = {
    "model": _optional(_str),
    "method": _optional(_str),
    "box_size": _optional(_number_or_pair),
    "values_range": _optional(_PAIR),
    "size": _optional(_size),
}


def record_problem(record: object) -> str | None:
    """What is wrong with one target record (``field 'index': not an integer``), or None."""
    if not isinstance(record, dict):
        return "not an object"
    problem = _problem(record, RECORD_FIELDS, OPTIONAL_RECORD_FIELDS)
    if problem is None and record["kind"] == "concept":
        problem = _problem(record, {"class_slug": _str}, {})
    return problem


def _run_problem(run: object) -> str | None:
    if not isinstance(run, dict):
        return "not an object"
    time_s = run.get("time_s", 0.0)
    problem = _number(time_s)
    if problem is None and not 0 <= time_s <= MAX_RUN_TIME_S:
        problem = f"outside [0, {MAX_RUN_TIME_S:g}]"
    return None if problem is None else f"time_s {time_s!r}: {problem}"


@dataclass(frozen=True)
class ResultsContent:
    """The checked content of a results file.

    Attributes
    ----------
    settings
        The run settings.
    records
        The valid target records, by slug.
    runs
        The run history (empty when it was reset).
    warnings
        One line per skipped record and for a reset run history.
    """

    settings: dict
    records: dict[str, dict]
    runs: list[dict]
    warnings: tuple[str, ...]


def check_content(data: object, name: str) -> ResultsContent:
    """Check parsed results against the schema: keep the valid records and run history.

    Parameters
    ----------
    data
        The parsed file (:func:`parse_bounded`).
    name
        The file, as warnings and errors name it.

    Raises
    ------
    ResultsFormatError
        If ``data`` is not an object with a ``"settings"`` object of the schema's types and a
        ``"targets"`` list.
    """
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{name} does not hold a JSON object")
    problem = _object({"settings": _object({}, SETTINGS_FIELDS)})(data)
    if problem is None and not isinstance(data.get("targets"), list):
        problem = "field 'targets' missing or not a list"
    if problem is not None:
        raise ResultsFormatError(f"{name} is malformed ({problem})")
    notes, records = [], {}
    for position, record in enumerate(data["targets"]):
        problem = record_problem(record)
        if problem is None:
            records[record["slug"]] = record
            continue
        slug = record.get("slug") if isinstance(record, dict) else None
        label = repr(slug)[:60] if isinstance(slug, str) else f"#{position}"
        notes.append(f"{name}: record {label} skipped ({problem}); it is computed again")
    runs = data.get("runs", [])
    problem = "not a list" if not isinstance(runs, list) else None
    for position, run in enumerate(runs if problem is None else ()):
        problem = _run_problem(run)
        if problem is not None:
            problem = f"run {position}: {problem}"
            break
    if problem is not None:
        notes.append(f"{name}: run history reset ({problem[:120]})")
        runs = []
    return ResultsContent(dict(data["settings"]), records, list(runs), tuple(notes))
