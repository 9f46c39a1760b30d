"""Load and validate the environment files; turn any problem into one readable line."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.models import EnvironmentConfig, ToolchainConfig

CONFIG_DIR = Path(__file__).resolve().parent
TOOLCHAIN_FILE = "toolchain.yaml"
NON_ENV_FILES = {
    TOOLCHAIN_FILE,
    "scan-allowlist.yaml",
    "allowed-replacements.yaml",
    "kubernetes-versions.yaml",
    "instance-types.yaml",  # the capacity check's tables (config/capacity.py)
    "system-pods.yaml",
}

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration problem, already phrased as `file: field: rule`."""


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(CONFIG_DIR.parent))
    except ValueError:
        return str(path)


def _read(path: Path, model: type[M], **extra) -> M:
    if not path.is_file():
        raise ConfigError(f"{_display(path)}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{_display(path)}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{_display(path)}: top level must be a mapping")
    try:
        return model.model_validate({**data, **extra} if extra else data)
    except ValidationError as exc:
        raise ConfigError(f"{_display(path)}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (typo?)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        # Model-level rules already name their field at the start of the message.
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def environment_names(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in config_dir.glob("*.yaml") if p.name not in NON_ENV_FILES)


def load_environment(name: str, config_dir: Path = CONFIG_DIR) -> EnvironmentConfig:
    path = config_dir / f"{name}.yaml"
    if f"{name}.yaml" in NON_ENV_FILES or not path.is_file():
        known = ", ".join(environment_names(config_dir)) or "none"
        raise ConfigError(f"{_display(path)}: unknown environment {name!r} (known: {known})")
    env = _read(path, EnvironmentConfig)
    if env.name != name:
        raise ConfigError(f"{_display(path)}: name: must equal the file name ({name!r})")
    return env


def load_toolchain(config_dir: Path = CONFIG_DIR) -> ToolchainConfig:
    toolchain = _read(config_dir / TOOLCHAIN_FILE, ToolchainConfig)
    for stage in toolchain.stages:
        if stage not in environment_names(config_dir):
            raise ConfigError(
                f"{_display(config_dir / TOOLCHAIN_FILE)}: stages: no config/{stage}.yaml for stage {stage!r}"
            )
    return toolchain
