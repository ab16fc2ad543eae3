"""Reading a training configuration: YAML files, dotted ``--set`` overrides, relative paths, saving."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from artefix.atomic import atomic_file, one_line
from artefix.training.config.checks import ConfigError
from artefix.training.config.train_config import TrainConfig

PATH_KEYS: tuple[str, ...] = ("data.base", "data.split")


def _resolve(path: str, folder: Path) -> str:
    """``path`` made absolute against ``folder`` and normalised (``a/../b`` -> ``b``)."""
    return os.path.abspath(os.path.join(folder, os.path.expanduser(path)))


def _looks_like_path(text: str) -> bool:
    """A ``model.init`` value that names a file rather than a shipped model."""
    return "/" in text or "\\" in text or text.endswith(".safetensors")


def _resolve_paths(raw: dict[str, Any], folder: Path, *, base_given: bool = False) -> dict[str, Any]:
    """Make ``data.base``/``data.split`` (and ``data.roots`` without a base) absolute against ``folder``.

    ``model.init`` too, when it is a path rather than a shipped model name. ``base_given``: an override
    sets ``data.base`` (``--data-root``), so roots stay relative to it even where the file has no base.
    """
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("init"), str) and _looks_like_path(model["init"]):
        raw = {**raw, "model": {**model, "init": _resolve(model["init"], folder)}}
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    for key in ("base", "split"):
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve(data[key], folder)
    roots = data.get("roots")
    if data.get("base") is None and not base_given and isinstance(roots, list):
        data["roots"] = [_resolve(r, folder) if isinstance(r, str) else r for r in roots]
    return {**raw, "data": data}


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str], cwd: Path | None = None) -> dict[str, Any]:
    """Merge ``KEY=VALUE`` overrides (dotted keys, YAML values) into a raw configuration mapping.

    Relative paths given for ``data.base``, ``data.split`` (and ``data.roots`` when no base is set) are
    resolved against ``cwd`` (default: the current folder).

    Args:
        raw: The mapping read from the file (not modified).
        overrides: Strings such as ``"trainer.max_epochs=3"`` or ``"data.roots=[/a, /b]"``.
        cwd: Folder for relative paths.

    Returns:
        A new mapping.

    Raises:
        ConfigError: Malformed override.
    """
    folder = Path.cwd() if cwd is None else Path(cwd)
    out: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"an override must look like KEY=VALUE (e.g. trainer.max_epochs=3), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({one_line(exc)})") from None
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            else:
                child = node[part] = dict(child)
            node = child
        if key in PATH_KEYS and isinstance(value, str):
            value = _resolve(value, folder)
        if key == "model.init" and isinstance(value, str) and _looks_like_path(value):
            value = _resolve(value, folder)
        if key == "data.roots" and isinstance(value, (list, str)) and not node.get("base"):
            items = [value] if isinstance(value, str) else value
            value = [_resolve(r, folder) if isinstance(r, str) else r for r in items]
        node[parts[-1]] = value
    return out


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (a config or pipeline file).

    Raises:
        ConfigError: Missing or unreadable file, invalid YAML (one line).
    """
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({one_line(exc)})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({one_line(exc)})") from None


EXTENDS_KEY = "extends"
"""A config file may start from another: ``extends: base.yaml`` (relative to the file), whose mappings it
overrides key by key (a list or a value replaces the base's whole)."""


def _read_mapping(path: Path) -> dict[str, Any]:
    raw = read_yaml(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must hold a YAML mapping, got {type(raw).__name__}")
    return raw


def _extends_chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``[(file, mapping without extends)]`` from ``path`` up through the files it extends.

    Raises:
        ConfigError: A file that cannot be read, an ``extends`` that is not a path, or a loop.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    seen: list[Path] = []
    current: Path | None = path
    while current is not None:
        key = current.absolute().resolve()
        if key in seen:
            loop = " -> ".join(p.name for p in [*seen, key])
            raise ConfigError(f"{path}: `extends` loops ({loop})")
        seen.append(key)
        raw = dict(_read_mapping(current))
        parent = raw.pop(EXTENDS_KEY, None)
        chain.append((current, raw))
        if parent is not None and (not isinstance(parent, str) or not parent):
            raise ConfigError(f"{current}: `extends` must name a config file, got {parent!r}")
        current = None if parent is None else Path(_resolve(parent, current.parent.absolute()))
    return chain


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` laid over it: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        out[key] = _merge(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out


def load_config(
    path: str | Path,
    overrides: Iterable[str] = (),
    *,
    data_root: str | Path | None = None,
    cwd: Path | None = None,
    first: Iterable[str] = (),
    first_cwd: Path | None = None,
) -> TrainConfig:
    """Read, resolve and validate a YAML configuration file.

    Args:
        path: The YAML file.
        overrides: ``KEY=VALUE`` strings (see :func:`apply_overrides`), applied after the file.
        data_root: Shorthand for the override ``data.base=DATA_ROOT``.
        cwd: Folder that relative override paths are resolved against (default: the current folder).
        first: Overrides applied before ``overrides``, with relative paths against ``first_cwd`` (a
            pipeline stage's ``set``, written next to the pipeline file).
        first_cwd: See ``first``.

    Returns:
        The validated :class:`TrainConfig`, with absolute ``data.base`` / ``data.split`` paths.

    A file that ``extends`` another (:data:`EXTENDS_KEY`) is laid over it, each file's relative paths
    resolved against its own folder.

    Raises:
        ConfigError: Missing or unreadable file, invalid YAML, an ``extends`` loop, unknown keys or bad values.
    """
    path = Path(path).expanduser()
    chain = _extends_chain(path)
    first = list(first)
    extra = list(overrides)
    if data_root is not None:
        extra.insert(0, f"data.base={data_root}")
    base_given = any(item.split("=", 1)[0].strip() == "data.base" for item in [*first, *extra])
    base_given = base_given or any(isinstance(r.get("data"), dict) and r["data"].get("base") for _, r in chain)
    raw: dict[str, Any] = {}
    for file, layer in reversed(chain):  # the furthest base first, each file's paths against its own folder
        raw = _merge(raw, _resolve_paths(layer, file.parent.absolute(), base_given=base_given))
    raw = apply_overrides(raw, first, first_cwd)
    raw = apply_overrides(raw, extra, cwd)
    return TrainConfig.from_dict(raw, source=str(path))


def save_config(config: TrainConfig, path: str | Path, header: str | None = None) -> Path:
    """Write ``config`` as YAML (atomically); ``header`` lines become ``#`` comments at the top."""
    path = Path(path)
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None, width=120)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
