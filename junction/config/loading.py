"""Finding, reading and validating a configuration: `--config`/`$JUNCTION_CONFIG`/`./junction.yaml`,
strict YAML, `${VAR}` substitution, and the embedded defaults when there is no file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import ValidationError

from junction.config.errors import ConfigError, format_validation_error
from junction.config.models import JunctionConfig
from junction.config.substitution import substitute_env

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "ENV_SOURCE",
    "find_config_path",
    "load_config",
    "validate_config",
]

DEFAULT_CONFIG_NAME = "junction.yaml"
ENV_SOURCE = "environment"  # the "file" named in errors about the embedded, env-derived defaults


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would otherwise silently drop."""


def _construct_mapping_no_duplicates(
    loader: _StrictLoader, node: yaml.MappingNode
) -> dict[Any, Any]:
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen[ident] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise ConfigError(f"{source}: invalid YAML: {problem}") from None
        raise ConfigError(
            f"{source}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


def validate_config(data: Mapping[str, Any], source: str) -> JunctionConfig:
    """Validate config data (substituted already); errors name `source` and each key path."""
    try:
        return JunctionConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, JunctionConfig)) from None


def find_config_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """`--config`, else `$JUNCTION_CONFIG`, else `./junction.yaml` if present, else None.

    A path the user named explicitly must exist: silently falling back to defaults would run
    Junction with a configuration nobody asked for.
    """
    for source, value in (("--config", explicit), ("JUNCTION_CONFIG", env.get("JUNCTION_CONFIG"))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                what = "does not exist" if not path.exists() else "is not a file"
                raise ConfigError(f"{value}: config file {what} (given by {source})")
            return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def _normalize_ollama_host(value: str) -> str:
    """Accept OLLAMA_HOST the way Ollama does: `host`, `host:port` or a URL; port 11434."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    parts = urlsplit(value)
    try:
        has_port = parts.port is not None
    except ValueError:
        return value  # let URL validation report it
    if not has_port and parts.scheme == "http" and parts.hostname:
        value = urlunsplit(parts._replace(netloc=f"{parts.netloc}:11434"))
    return value


def _defaults_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    backends: dict[str, Any] = {}
    if env.get("OPENAI_API_KEY"):
        backends["openai"] = {
            "type": "openai",
            "url": env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            "api_key": env["OPENAI_API_KEY"],
        }
    if env.get("ANTHROPIC_API_KEY"):
        backends["anthropic"] = {
            "type": "anthropic",
            "url": "https://api.anthropic.com",
            "api_key": env["ANTHROPIC_API_KEY"],
        }
    if env.get("OLLAMA_HOST"):
        backends["ollama"] = {"type": "ollama", "url": _normalize_ollama_host(env["OLLAMA_HOST"])}
    return {"backends": backends}


def _read_file(path: Path) -> dict[str, Any]:
    """The file's sections as parsed; an empty file (or only comments) means all defaults."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    data = _parse_yaml(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(
            f"{source}: (top level): expected a mapping of sections "
            f"(server, store, backends, ...), got {kind}"
        )
    return data


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> JunctionConfig:
    """Read, substitute and validate `path`; with None, the embedded defaults (backends from env).

    Raises ConfigError, never anything else, for anything wrong with the file or its contents.
    """
    env = os.environ if env is None else env
    if path is None:
        config = validate_config(_defaults_from_env(env), ENV_SOURCE)
    else:
        data, problems = substitute_env(_read_file(path), env)
        if problems:
            raise ConfigError([f"{path}: {line}" for line in problems])
        config = validate_config(data, str(path))
    if config.mcp_servers_file:
        base = path.parent if path is not None else Path.cwd()
        config = config.with_mcp_servers_file(base / Path(config.mcp_servers_file).expanduser())
    return config
