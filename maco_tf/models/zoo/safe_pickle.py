"""A pickle reader that builds plain data and never runs code, within explicit limits.

:func:`load_restricted` interprets a pickle itself instead of handing it to
:mod:`pickle`. It knows only the opcodes that describe data (integers, floats, strings,
tuples, lists, dicts, the memo), plus three tightly held ones:

* ``GLOBAL`` / ``STACK_GLOBAL`` push a fresh, immutable :class:`GlobalRef` token for an
  allow-listed ``(module, name)``; nothing is imported and no shared object is exposed,
  so a file cannot alter what a later file sees;
* ``REDUCE`` calls the caller's stand-in for an allow-listed global;
* ``BUILD`` is accepted only on a :class:`RecordDict` made in the same load, with a dict
  state, and the state is discarded.

Every other opcode is refused: the object-building and extension-registry opcodes
(``INST``, ``OBJ``, ``NEWOBJ``, ``NEWOBJ_EX``, ``EXT1/2/4``, text ``PERSID``) with
:class:`PickleRefusedError`, the rest (protocol 0 text opcodes, bytes, sets, buffers...)
with :class:`PickleDataError`.

Limits (:class:`PickleLimits`) bound the record's size, the nesting depth of its
containers and the number of values it pushes. Lists and dicts cannot be changed once
they sit inside another container, which rules out cycles, so the recorded depth of every
object is exact. Error messages describe values by type and position only, never by
their contents.
"""

from __future__ import annotations

import pickle
import pickletools
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from maco_tf.errors import InvalidSettingError, MacoError

__all__ = [
    "AllowedGlobals",
    "GlobalRef",
    "PickleDataError",
    "PickleLimitError",
    "PickleLimits",
    "PickleRefusedError",
    "RecordDict",
    "load_restricted",
    "new_record_dict",
    "require_positive_ints",
]

_MAX_GLOBAL_NAME = 256
_MAX_PROTOCOL = 5
_OPCODE_NAMES = {ord(op.code): op.name for op in pickletools.opcodes}
_REFUSED_OPCODES = frozenset(
    ord(op.code)
    for op in pickletools.opcodes
    if op.name in {"INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID"}
)


class PickleDataError(MacoError):
    """A pickle is malformed, truncated, over a limit, or uses an opcode data never needs."""


class PickleRefusedError(PickleDataError):
    """A pickle asks for a global, a call or an opcode outside what is allowed.

    Parameters
    ----------
    reason
        What was refused, e.g. ``"the opcode NEWOBJ"``.
    global_name
        Dotted name of the refused global, when a global was refused.
    """

    def __init__(self, reason: str, global_name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.global_name = global_name


class PickleLimitError(PickleDataError):
    """A pickle (or what it describes) goes beyond a configured limit.

    Parameters
    ----------
    message
        What exceeded which bound.
    limit
        Name of the limit that was hit (a :class:`PickleLimits` field, or the caller's own).
    """

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class PickleLimits:
    """Bounds applied while reading one pickle record.

    Parameters
    ----------
    max_bytes
        Largest record, in bytes (32 MiB by default).
    max_depth
        Deepest nesting of tuples, lists and dicts; a flat tuple has depth 1 (32 by
        default).
    max_items
        Most values the record may push, marks and memo entries included (1 000 000 by
        default).

    Raises
    ------
    InvalidSettingError
        A limit is not a positive integer.
    """

    max_bytes: int = 32 << 20
    max_depth: int = 32
    max_items: int = 1_000_000

    def __post_init__(self) -> None:
        require_positive_ints(self, ("max_bytes", "max_depth", "max_items"))


def require_positive_ints(settings: object, names: tuple[str, ...]) -> None:
    """Check that the named attributes of ``settings`` are positive integers.

    Raises
    ------
    InvalidSettingError
        Naming the first attribute that is not.
    """
    for name in names:
        value = getattr(settings, name)
        if type(value) is not int or value < 1:
            raise InvalidSettingError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class GlobalRef:
    """Token pushed by ``GLOBAL``: names an allow-listed global, holds nothing else."""

    module: str
    name: str

    @property
    def dotted(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


class RecordDict(dict):
    """A dict built by an allow-listed constructor (``collections.OrderedDict``).

    It has no instance attributes (``__slots__ = ()``), so ``BUILD`` cannot store anything
    on it; :func:`load_restricted` accepts ``BUILD`` on it and discards the state.
    """

    __slots__ = ()


def new_record_dict() -> RecordDict:
    """Stand-in for ``collections.OrderedDict()``: an empty :class:`RecordDict`."""
    return RecordDict()


#: ``(module, name) -> stand-in`` allowed for ``REDUCE``, or ``None`` for a global that may
#: only be named (passed around as a :class:`GlobalRef`), never called.
AllowedGlobals = Mapping[tuple[str, str], Callable[..., Any] | None]


def describe(value: Any) -> str:
    """Name a value's kind for an error message without formatting its contents."""
    if isinstance(value, GlobalRef):
        return f"the global {short(value.dotted)}"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 1 << 64 else "a huge integer"
    return f"a {type(value).__name__}"


def short(text: str, limit: int = 80) -> str:
    """``text`` quoted, cut to ``limit`` characters."""
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


class _Machine:
    """The interpreter state of one :func:`load_restricted` call."""

    def __init__(
        self,
        data: Any,
        start: int,
        limits: PickleLimits,
        allowed: AllowedGlobals,
        persistent_load: Callable[[Any], Any] | None,
    ) -> None:
        self._data = data
        self._pos = start
        self._capped = start + limits.max_bytes < len(data)
        self._end = min(len(data), start + limits.max_bytes)
        self._limits = limits
        self._allowed = allowed
        self._persistent_load = persistent_load
        self._stack: list[Any] = []
        self._marks: list[int] = []
        self._memo: dict[int, Any] = {}
        self._depths: dict[int, tuple[Any, int]] = {}  # id -> (container kept alive, depth)
        self._nested: set[int] = set()  # ids of lists/dicts inside another container
        self._items = 0
        self._op_start = start
        self._handlers: dict[int, Callable[[], None]] = {
            ord(code): handler for code, handler in self._handler_table().items()
        }

    # ----------------------------------------------------------------- reading bytes

    def _take(self, count: int) -> bytes:
        if count < 0 or self._pos + count > self._end:
            if self._capped:
                raise PickleLimitError(
                    f"pickle record exceeds the limit of {self._limits.max_bytes} bytes",
                    "max_bytes",
                )
            raise PickleDataError("truncated pickle record")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def _byte(self) -> int:
        if self._pos >= self._end:
            self._take(1)  # raises the right error
        value = self._data[self._pos]
        self._pos += 1
        return value

    def _uint(self, size: int) -> int:
        return int.from_bytes(self._take(size), "little")

    def _line(self) -> str:
        stop = self._data.find(b"\n", self._pos, self._pos + _MAX_GLOBAL_NAME)
        if stop < 0:
            raise PickleDataError("global name unterminated or too long")
        return self._text(self._take(stop - self._pos + 1)[:-1])

    @staticmethod
    def _text(raw: bytes) -> str:
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise PickleDataError("string is not valid UTF-8") from None

    # ------------------------------------------------------------------ the stack

    def _count(self) -> None:
        """Count one value pushed, mark set or memo entry stored against ``max_items``."""
        self._items += 1
        if self._items > self._limits.max_items:
            raise PickleLimitError(
                f"pickle record holds more than {self._limits.max_items} values", "max_items"
            )

    def _push(self, value: Any) -> None:
        self._count()
        self._stack.append(value)

    def _mark(self) -> None:
        self._count()
        self._marks.append(len(self._stack))

    def _floor(self) -> int:
        return self._marks[-1] if self._marks else 0

    def _pop(self) -> Any:
        if len(self._stack) <= self._floor():
            raise PickleDataError("pickle stack underflow")
        return self._stack.pop()

    def _top(self) -> Any:
        if len(self._stack) <= self._floor():
            raise PickleDataError("pickle stack underflow")
        return self._stack[-1]

    def _pop_mark(self) -> list[Any]:
        if not self._marks:
            raise PickleDataError("pickle uses a MARK that was never set")
        floor = self._marks.pop()
        items = self._stack[floor:]
        del self._stack[floor:]
        return items

    # ------------------------------------------------------------ depth bookkeeping

    def _depth(self, value: Any) -> int:
        entry = self._depths.get(id(value))
        return entry[1] if entry is not None else 0

    def _register(self, container: Any, depth: int) -> Any:
        if depth > self._limits.max_depth:
            raise PickleLimitError(
                f"containers nested deeper than {self._limits.max_depth}", "max_depth"
            )
        self._depths[id(container)] = (container, depth)
        return container

    def _adopt(self, parent_depth: int, child: Any) -> int:
        """Depth of a container after ``child`` goes in; ``child`` is frozen from now on."""
        if isinstance(child, list | dict):
            self._nested.add(id(child))
        return max(parent_depth, self._depth(child) + 1)

    def _mutable(self, kind: type) -> Any:
        target = self._top()
        if not isinstance(target, kind):
            raise PickleDataError(f"cannot add items to {describe(target)}")
        if id(target) in self._nested:
            raise PickleDataError("a list or dict is changed after being put in another one")
        return target

    def _extend(self, target: Any, children: list[Any]) -> None:
        depth = self._depth(target) or 1
        for child in children:
            if child is target:
                raise PickleDataError("a list or dict is put inside itself")
            depth = self._adopt(depth, child)
        self._register(target, depth)

    # -------------------------------------------------------------------- opcodes

    def _handler_table(self) -> dict[bytes, Callable[[], None]]:
        p = pickle
        return {
            p.PROTO: self._proto,
            p.FRAME: lambda: self._frame(self._uint(8)),
            p.MARK: self._mark,
            p.NONE: lambda: self._push(None),
            p.NEWTRUE: lambda: self._push(True),
            p.NEWFALSE: lambda: self._push(False),
            p.BININT: lambda: self._push(int.from_bytes(self._take(4), "little", signed=True)),
            p.BININT1: lambda: self._push(self._byte()),
            p.BININT2: lambda: self._push(self._uint(2)),
            p.LONG1: lambda: self._push(
                int.from_bytes(self._take(self._byte()), "little", signed=True)
            ),
            p.BINFLOAT: lambda: self._push(struct.unpack(">d", self._take(8))[0]),
            p.BINUNICODE: lambda: self._push(self._text(self._take(self._uint(4)))),
            p.SHORT_BINUNICODE: lambda: self._push(self._text(self._take(self._byte()))),
            p.EMPTY_TUPLE: lambda: self._tuple([]),
            p.TUPLE: lambda: self._tuple(self._pop_mark()),
            p.TUPLE1: lambda: self._tuple_of(1),
            p.TUPLE2: lambda: self._tuple_of(2),
            p.TUPLE3: lambda: self._tuple_of(3),
            p.EMPTY_LIST: lambda: self._push(self._register([], 1)),
            p.APPEND: lambda: self._appends([self._pop()]),
            p.APPENDS: lambda: self._appends(self._pop_mark()),
            p.EMPTY_DICT: lambda: self._push(self._register({}, 1)),
            p.SETITEM: lambda: self._setitems([self._pop_pair()]),
            p.SETITEMS: lambda: self._setitems(self._pairs(self._pop_mark())),
            p.BINPUT: lambda: self._put(self._byte()),
            p.LONG_BINPUT: lambda: self._put(self._uint(4)),
            p.MEMOIZE: lambda: self._put(len(self._memo)),
            p.BINGET: lambda: self._get(self._byte()),
            p.LONG_BINGET: lambda: self._get(self._uint(4)),
            p.GLOBAL: lambda: self._global(self._line(), self._line()),
            p.STACK_GLOBAL: self._stack_global,
            p.REDUCE: self._reduce,
            p.BINPERSID: self._binpersid,
            p.BUILD: self._build,
        }

    def _proto(self) -> None:
        version = self._byte()
        if version > _MAX_PROTOCOL:
            raise PickleDataError(f"unsupported pickle protocol {version}")

    def _frame(self, size: int) -> None:
        if self._pos + size > self._end:
            raise PickleDataError("pickle frame runs past the end of the record")

    def _tuple(self, items: list[Any]) -> None:
        depth = 1
        for item in items:
            depth = self._adopt(depth, item)
        self._push(self._register(tuple(items), depth))

    def _tuple_of(self, count: int) -> None:
        items = [self._pop() for _ in range(count)]
        self._tuple(items[::-1])

    def _appends(self, items: list[Any]) -> None:
        target = self._mutable(list)
        self._extend(target, items)
        target.extend(items)

    def _pop_pair(self) -> tuple[Any, Any]:
        value = self._pop()
        return self._pop(), value

    def _pairs(self, items: list[Any]) -> list[tuple[Any, Any]]:
        if len(items) % 2:
            raise PickleDataError("SETITEMS with an odd number of values")
        return list(zip(items[::2], items[1::2], strict=True))

    def _setitems(self, pairs: list[tuple[Any, Any]]) -> None:
        target = self._mutable(dict)
        for key, _ in pairs:
            if type(key) not in (str, int):
                raise PickleDataError(f"dict key is {describe(key)}, not a string or integer")
        self._extend(target, [value for _, value in pairs])
        target.update(pairs)

    def _put(self, index: int) -> None:
        self._count()
        self._memo[index] = self._top()

    def _get(self, index: int) -> None:
        if index not in self._memo:
            raise PickleDataError(f"pickle refers to memo entry {index}, which was never stored")
        self._push(self._memo[index])

    def _global(self, module: str, name: str) -> None:
        if (module, name) not in self._allowed:
            dotted = f"{module[:_MAX_GLOBAL_NAME]}.{name[:_MAX_GLOBAL_NAME]}"
            raise PickleRefusedError(f"the global {short(dotted)}", dotted)
        self._push(GlobalRef(module, name))

    def _stack_global(self) -> None:
        name, module = self._pop(), self._pop()
        if type(module) is not str or type(name) is not str:
            raise PickleDataError("STACK_GLOBAL needs two strings")
        self._global(module, name)

    def _reduce(self) -> None:
        args, func = self._pop(), self._pop()
        if not isinstance(func, GlobalRef):
            raise PickleRefusedError(f"a call of {describe(func)}")
        stand_in = self._allowed[(func.module, func.name)]
        if stand_in is None:
            raise PickleRefusedError(f"a call of {describe(func)}", func.dotted)
        if type(args) is not tuple:
            raise PickleDataError(f"arguments of {func.dotted} are {describe(args)}")
        try:
            result = stand_in(*args)
        except TypeError:
            raise PickleDataError(f"wrong number of arguments for {func.dotted}") from None
        if isinstance(result, tuple | list | dict):
            self._register(result, 1)
        self._push(result)

    def _binpersid(self) -> None:
        pid = self._pop()
        if self._persistent_load is None:
            raise PickleDataError("persistent id where none is expected")
        self._push(self._persistent_load(pid))

    def _build(self) -> None:
        state = self._pop()
        target = self._top()
        if type(target) is not RecordDict or type(state) is not dict:
            raise PickleRefusedError(f"BUILD (setting state) on {describe(target)}")

    # ------------------------------------------------------------------------ run

    def run(self) -> tuple[Any, int]:
        stop = ord(b".")
        while True:
            self._op_start = self._pos
            code = self._byte()
            if code == stop:
                return self._stop(), self._pos
            handler = self._handlers.get(code)
            if handler is None:
                self._unsupported(code)
            handler()

    def _stop(self) -> Any:
        if len(self._stack) != 1 or self._marks:
            raise PickleDataError("pickle record does not end with exactly one value")
        return self._stack[0]

    def _unsupported(self, code: int) -> None:
        name = _OPCODE_NAMES.get(code)
        where = f"at byte {self._op_start}"
        if name is None:
            raise PickleDataError(f"unknown pickle opcode 0x{code:02x} {where}")
        if code in _REFUSED_OPCODES:
            raise PickleRefusedError(f"the pickle opcode {name} {where}")
        raise PickleDataError(f"pickle opcode {name} {where} is not used by plain data")


def load_restricted(
    data: bytes | Any,
    start: int = 0,
    *,
    limits: PickleLimits,
    allowed: AllowedGlobals,
    persistent_load: Callable[[Any], Any] | None = None,
) -> tuple[Any, int]:
    """Read one pickle record from ``data[start:]`` without running any of its code.

    Parameters
    ----------
    data
        ``bytes`` or an ``mmap`` holding the record (anything with slicing and ``find``).
    start
        Offset of the record's first byte.
    limits
        Size, depth and item bounds.
    allowed
        Globals the record may name: ``(module, name)`` to the stand-in that ``REDUCE``
        calls with the record's (already built, plain) arguments, or ``None`` for globals
        that may only be passed around. Stand-ins must validate their arguments, raising
        :class:`PickleDataError`, and return a new value that the record cannot change
        (an immutable object or an empty container).
    persistent_load
        Called with each ``BINPERSID`` id; ``None`` refuses persistent ids.

    Returns
    -------
    tuple
        The value and the offset just past the record's ``STOP``.

    Raises
    ------
    PickleRefusedError
        A global outside ``allowed``, a call of a non-callable global, ``BUILD`` outside a
        :class:`RecordDict`, or an object-building opcode (``INST``, ``OBJ``, ``NEWOBJ``,
        ``EXT*``...). Nothing has been executed.
    PickleDataError
        The record is truncated or malformed, exceeds a limit, or uses an opcode that
        plain data never needs.
    """
    machine = _Machine(data, start, limits, allowed, persistent_load)
    try:
        return machine.run()
    except (OverflowError, struct.error, ValueError) as exc:
        if isinstance(exc, PickleDataError):
            raise
        raise PickleDataError(f"malformed pickle value ({type(exc).__name__})") from None
