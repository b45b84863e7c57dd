"""Custom classes for reading model files: ``--custom-objects module.py``.

A ``.keras`` file that holds a subclassed model or custom layers names their classes; Keras
can only rebuild them when it knows them. :func:`custom_objects` imports a Python file and
returns the classes it defines (its ``CUSTOM_OBJECTS`` dict when it has one, else every Keras
layer or model class defined in it); importing it also runs any
``@keras.saving.register_keras_serializable`` decorator it has.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import keras

from maco_tf.errors import MacoError

__all__ = ["CustomObjectsError", "custom_objects"]


class CustomObjectsError(MacoError):
    """The ``--custom-objects`` file cannot be read or imported."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _import(path: Path) -> object:
    name = f"maco_tf_custom_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CustomObjectsError(f"--custom-objects '{path}' is not a Python file (module.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's module failing to import is a user-facing error
        sys.modules.pop(name, None)
        raise CustomObjectsError(
            f"could not import --custom-objects '{path}': {_first_line(exc)}"
        ) from exc
    return module


def custom_objects(source: str | os.PathLike | Mapping[str, object] | None) -> dict[str, object]:
    """The custom classes of a Python file (or a dict given as is).

    Parameters
    ----------
    source
        A path to a ``.py`` file, a ``{name: class}`` mapping, or None (none).

    Returns
    -------
    objects
        ``{class name: class}`` for ``keras.models.load_model(custom_objects=...)``.

    Raises
    ------
    CustomObjectsError
        For a missing file, or one that fails to import.
    """
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(os.fspath(source)).expanduser()
    if not path.is_file():
        raise CustomObjectsError(f"--custom-objects file '{path}' not found (give a module.py)")
    module = _import(path)
    declared = getattr(module, "CUSTOM_OBJECTS", None)
    if isinstance(declared, Mapping):
        return dict(declared)
    found = {}
    for name, value in vars(module).items():
        defined_here = getattr(value, "__module__", None) == module.__name__
        if defined_here and inspect.isclass(value) and issubclass(value, keras.layers.Layer):
            found[name] = value
    return found
