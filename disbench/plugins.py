"""Objectives, datasets and architectures from outside the package.

A name (`model.name`, `data.name`, `arch.name`) is looked up
1. among the built-ins,
2. among the entry points of installed packages, in the group `disbench.models`,
   `disbench.datasets` or `disbench.archs` (the entry point's name is the name),
3. as an import path `package.module:Name`.
What is found must pass the kind's `accepts` test; every failure is one DisbenchError
that says what was tried. See docs/plugins.md.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from disbench.errors import DisbenchError

GROUPS = {"model": "disbench.models", "dataset": "disbench.datasets",
          "architecture": "disbench.archs"}


@functools.cache
def installed(kind: str) -> dict:
    """The entry points installed packages register for `kind`, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def is_import_path(name: object) -> bool:
    return isinstance(name, str) and ":" in name


def import_object(kind: str, path: str):
    """The object at `package.module:Name`."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise DisbenchError(f"{kind} '{path}': cannot import module '{module_name}' ({err}); "
                            f"is its package installed or on PYTHONPATH?") from None
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise DisbenchError(f"{kind} '{path}': module '{module_name}' has no '{attribute}'")
        target = getattr(target, part)
    return target


def resolve(kind: str, name: object, builtins: Mapping, accepts: Callable[[object], bool],
            expected: str):
    """The object `name` stands for: a built-in, an installed entry point or an import path.
    `expected` says what `accepts` wants, for the error message."""
    if isinstance(name, str) and name in builtins:
        return builtins[name]
    if isinstance(name, str) and name in installed(kind):
        entry = installed(kind)[name]
        try:
            found, where = entry.load(), f"entry point '{name}' ({entry.value})"
        except Exception as err:  # noqa: BLE001 - a broken plug-in package
            raise DisbenchError(f"{kind} '{name}': the entry point {entry.value} of group "
                                f"{GROUPS[kind]} cannot be loaded ({err})") from None
    elif is_import_path(name):
        found, where = import_object(kind, name), f"'{name}'"
    else:
        valid = ", ".join(sorted([*builtins, *installed(kind)]))
        raise DisbenchError(f"unknown {kind} '{name}'; valid names: {valid}; or an import path "
                            f"package.module:Name, or an entry point of group {GROUPS[kind]}")
    if not accepts(found):
        raise DisbenchError(f"{kind} {where} is {found!r}, not {expected}")
    return found
