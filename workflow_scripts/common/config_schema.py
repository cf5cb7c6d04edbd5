"""Validate a workflow config against schemas/config.schema.yaml, filling in defaults.

Block seeds left unset (null) take the top-level ``seed``, so one key reseeds the workflow.

Snakemake's ``validate()`` neither fills defaults inside ``$ref``'d stage schemas nor names the
offending key briefly, so the workflow uses this (same JSON Schema, same draft) instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class ConfigError(ValueError):
    """An invalid configuration; the message names the key path and what was expected."""


def _load_schema(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema:
                    instance.setdefault(name, _copy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))  # defaults must not be shared between configs


_DefaultingValidator = _with_defaults(Draft202012Validator)


def key_path(error: ValidationError) -> str:
    """The dotted path of the offending key, e.g. ``corpora.demo.split.policy``."""
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`ConfigError` naming the key path, the value and what the schema expects.
    """
    schema_path = Path(schema_path).resolve()
    schema_dir = schema_path.parent

    def retrieve(uri: str) -> Resource:
        name = uri.rsplit("/", 1)[-1]
        contents = _load_schema(schema_dir / name)
        # Without its own $schema the stage schema is validated by the defaulting class too.
        contents.pop("$schema", None)
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    schema = _load_schema(schema_path)
    schema["$id"] = schema_path.as_uri()
    registry = Registry(retrieve=retrieve)
    validator = _DefaultingValidator(schema, registry=registry)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"invalid config at '{key_path(error)}': {error.message}")
    inherit_seed(config, config["seed"])
    return config


def inherit_seed(block: Any, seed: int) -> None:
    """Give every ``seed: null`` below ``block`` the top-level seed (a block's own seed wins)."""
    items = block.items() if isinstance(block, dict) else enumerate(block) if isinstance(block, list) else ()
    for key, value in items:
        if key == "seed" and value is None:
            block[key] = seed
        else:
            inherit_seed(value, seed)
