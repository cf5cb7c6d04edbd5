"""The spec type of the workflow's registries: name -> what an implementation is, beside its code.

Each stage registers its pluggable parts (SEFE backends, text backends, fusion heads, classifiers)
in a table of specs; ``names`` keeps the name lists, the registries implement them, and a test
checks that both agree. Only the standard library here: the rules (rules/<stage>_inputs.smk)
import the registries when Snakemake builds the DAG, so an implementation is named as ``"module:attribute"`` and
imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar


def resolve(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names (the module imported now)."""
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not a 'module:attribute' reference")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Spec:
    """One registered implementation: its name, whether its jobs ask for a GPU, and where it lives
    (``"module:attribute"``, imported by :meth:`load`)."""

    name: str
    needs_gpu: bool
    implementation: str

    def load(self) -> Any:
        """The implementation (a class or a function), imported now."""
        return resolve(self.implementation)


S = TypeVar("S", bound=Spec)


def registry(*specs: S) -> dict[str, S]:
    """Specs by name, in the order given; a name given twice is an error."""
    table: dict[str, S] = {}
    for spec in specs:
        if spec.name in table:
            raise ValueError(f"{spec.name!r} is registered twice")
        table[spec.name] = spec
    return table


def lookup(table: Mapping[str, S], name: str, what: str) -> S:
    """``table[name]``, or a ValueError naming ``what`` it is and the registered names."""
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; expected one of {list(table)}")
    return table[name]
