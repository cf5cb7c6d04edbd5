"""Validate a workflow config against schemas/config.schema.yaml, filling in defaults.

Block seeds left unset (null) take the top-level ``seed``, so one key reseeds the workflow.

Snakemake's ``validate()`` neither fills defaults inside ``$ref``'d stage schemas nor names the
offending key briefly, so the workflow uses this (same JSON Schema, same draft) instead.
Schema only and stage-agnostic: the checks across keys are stage knowledge;
``workflow_scripts.config.validate_config`` runs this and them (the rules and the checker call that).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class ConfigError(ValueError):
    """An invalid configuration; the message names the key path and what was expected."""


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; a syntax error names the file, line and column.

    (Snakemake's own message for a broken ``--configfile`` names neither: check a file with
    ``python -m workflow_scripts.config FILE...``.)
    """
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        raise ConfigError(
            f"{path}: not valid YAML at {where}: {problem}" + (f" ({context})" if context else "")
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, got a {type(loaded).__name__}")
    return loaded


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, merging nested mappings (as snakemake merges --configfile)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


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


SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def _validator(schema_path: Path) -> Draft202012Validator:
    """A defaulting validator of the schema at ``schema_path`` that resolves the stage schemas beside it."""
    schema_dir = schema_path.parent

    def retrieve(uri: str) -> Resource:
        name = uri.rsplit("/", 1)[-1]
        contents = _load_schema(schema_dir / name)
        # Without its own $schema the stage schema is validated by the defaulting class too.
        contents.pop("$schema", None)
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    schema = _load_schema(schema_path)
    schema["$id"] = schema_path.as_uri()
    return _DefaultingValidator(schema, registry=Registry(retrieve=retrieve))


def _invalid(error: ValidationError) -> ConfigError:
    return ConfigError(f"invalid config at '{key_path(error)}': {error.message}")


def validate_schema(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` against the schema in place (defaults filled in, block seeds inherited) and return it.

    Raises :class:`ConfigError` naming the key path, the value and what the schema expects.
    """
    error = best_match(_validator(Path(schema_path).resolve()).iter_errors(config))
    if error is not None:
        raise _invalid(error)
    inherit_seed(config, config["seed"])
    return config


def block_defaults(key_path: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config block at ``key_path`` (e.g. ``"fusion.heads.xattn"``): ``values`` over the schema's defaults.

    For tests that need one block: validated as in a whole config (a wrong value fails naming its
    key); block seeds left null take the schema's top-level seed.
    """
    parts = key_path.split(".")
    block = copy.deepcopy(dict(values or {}))
    config: dict[str, Any] = block
    for part in reversed(parts):
        config = {part: config}
    validator = _validator(SCHEMA)
    # The rest of the config is absent on purpose: only its required keys may be missing.
    errors = (
        error
        for error in validator.iter_errors(config)
        if error.validator != "required" or list(map(str, error.absolute_path))[: len(parts)] == parts
    )
    error = best_match(errors)
    if error is not None:
        raise _invalid(error)
    inherit_seed(block, validator.schema["properties"]["seed"]["default"])
    return block


def inherit_seed(block: Any, seed: int) -> None:
    """Give every ``seed: null`` below ``block`` the top-level seed (a block's own seed wins)."""
    items = block.items() if isinstance(block, dict) else enumerate(block) if isinstance(block, list) else ()
    for key, value in items:
        if key == "seed" and value is None:
            block[key] = seed
        else:
            inherit_seed(value, seed)
