"""A concept's public names, imported from their modules only when first used.

Each subpackage's ``__init__`` lists its public names and the module each lives in. Reading
a name imports that module then (PEP 562 ``__getattr__``), so a page that only needs the
checklist does not pay for torch, ZeroMQ or the gateway client, and ``import workbook``
stays as light as it was before the subpackages existed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def public_face(
    package: str, homes: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        homes: module name (inside the package) -> the public names it defines.
    """
    where = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later reads skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return sorted(where), __getattr__, __dir__
