"""Validate a workflow config against schemas/config.schema.yaml, filling in defaults.

Block seeds left unset (null) take the top-level ``seed``, so one key reseeds the workflow.

Snakemake's ``validate()`` neither fills defaults inside ``$ref``'d stage schemas nor names the
offending key briefly, so the workflow uses this (same JSON Schema, same draft) instead.
"""

from __future__ import annotations

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
    ``python -m workflow_scripts.common.config_schema FILE...``.)
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


def main(argv: list[str] | None = None) -> None:
    """Check config files before a run: ``python -m workflow_scripts.common.config_schema [FILE ...]``.

    Loads config.yaml and then each FILE over it (as ``snakemake --configfile FILE`` does),
    naming the file and line of a YAML error, and validates the result against the schema.
    """
    import sys

    from workflow_scripts.common.names import TEXT_SPLITS
    from workflow_scripts.data.corpus_config import check_split_block

    root = Path(__file__).resolve().parents[2]
    files = [root / "config.yaml", *(argv if argv is not None else sys.argv[1:])]
    config: dict[str, Any] = {}
    try:
        for path in files:
            config = merge_config(config, load_config_file(path))
        validate_config(config, root / "schemas" / "config.schema.yaml")
        for name, block in config["corpora"].items():
            check_split_block(block, config["task"]["splits"], f"corpora.{name}")
        check_split_block(config["text_corpus"], TEXT_SPLITS, "text_corpus")
    except (ConfigError, ValueError) as error:
        raise SystemExit(str(error)) from None
    print(f"config OK: {', '.join(map(str, files))}")


if __name__ == "__main__":
    main()
