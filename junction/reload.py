"""Configuration at run time: which keys apply while Junction runs, and how a new configuration
reaches the running parts (router, MCP gateway, A2A hub, ACP runtime, access guard, logging).

Three ways in, one path: `Junction.replace_config(new)` (the library's config handle), and in
serve mode a change of the config file (polled, see `watch_files`) or SIGHUP, both of which
call `Junction.reload()`. An invalid file is rejected whole (`ConfigError`, naming key paths)
and the old configuration keeps running.

    junction.subscribe(lambda old, new: print("routing is now", new.routing.strategy))
    result = await junction.replace_config({**data, "routing": {"strategy": "round_robin"}})
    result.applied        # ('routing.strategy',)
    result.needs_restart  # keys that changed but keep their old value until a restart

`RESTART` and `APPLY` below are the one table of what a change takes (`Junction` holds the step
that applies each `APPLY` key): `docs/configuration.md`
renders its "hot reload" column from `reload_mode`, so the documentation says what this does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from junction.config import (
    ConfigError,
    JunctionConfig,
    load_config,
    validate_config,
)

__all__ = [
    "APPLY",
    "RESTART",
    "ConfigSource",
    "Listener",
    "Plan",
    "ReloadResult",
    "Reloadable",
    "changed_keys",
    "plan",
    "reload_and_log",
    "reload_mode",
    "validate",
    "watch_files",
]

log = logging.getLogger("junction.reload")

Listener = Callable[[JunctionConfig, JunctionConfig], "Awaitable[None] | None"]
"""Told (old, new) after each applied change; may be a coroutine function."""

POLL_SECONDS = 1.0
"""How often serve mode looks at the config file's stat (`server.watch_config`)."""


# --------------------------------------------------------------------------- the table

RESTART: dict[str, str] = {
    "server.host": "the listening socket is bound at start",
    "server.port": "the listening socket is bound at start",
    "server.max_message_bytes": "the WebSocket and SSE framings are set up at start",
    "store": "sessions and tasks stay in the database opened at start",
    "routing.max_body_bytes": "the /v1 surface takes its body limit at start",
    "a2a": "the hub (its card, push delivery, its own agent) is built at start",
    "telemetry": "the trace exporter is set up once, when the process starts",
    "cluster.redis_url": "the rate limiter connects to Redis at start",
    "cluster.relay_lease_seconds": "the hub's task fan-out is set up at start",
    "cluster.advertise_url": "the replica records its sessions under this URL from start",
    "server.workers": "the worker processes are started with the server",
}
"""Keys a running Junction keeps at their old value (with why); a change to one is logged as
needing a restart and the rest of the new configuration is applied."""


APPLY: tuple[str, ...] = (
    "server.api_keys",
    "server.oauth",
    "server.metrics_public",
    "server.shutdown_grace_seconds",
    "server.watch_config",
    "server.allowed_origins",
    "server.ready_requires",
    "backends",
    "routing",
    "mcp_servers",
    "mcp_servers_file",
    "mcp",
    "a2a_agents",
    "acp",
    "logging",
    "cluster.limits_on_redis_down",
    "limits",
)
"""Keys that apply while running; the composition root (`Junction`) has the step that applies
each (run once per reload: models first, then tools, then agents, then sessions)."""


def reload_mode(key: str) -> Literal["hot", "restart"]:
    """How a change to `key` (dotted; any map key, e.g. `backends.NAME.url`) takes effect.

    The longest listed prefix decides; a key in neither table raises KeyError, so a new
    configuration key cannot ship without saying what a change to it takes.
    """
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in RESTART:
            return "restart"
        if prefix in APPLY:
            return "hot"
    raise KeyError(f"{key}: not in junction.reload.RESTART or APPLY")


# --------------------------------------------------------------------------- what changed


def changed_keys(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of what differs: down to each field of a section, and to the entry of a map
    of named things (`backends.local`, `mcp_servers.time`), never a value (they hold secrets)."""
    keys: list[str] = []
    for name in type(new).model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        key = f"{prefix}{name}"
        if isinstance(before, BaseModel) and type(before) is type(after):
            keys.extend(changed_keys(before, after, f"{key}."))
        elif (
            isinstance(before, dict)
            and isinstance(after, dict)
            and any(isinstance(v, BaseModel) for v in (*before.values(), *after.values()))
        ):
            keys.extend(
                f"{key}.{entry}"
                for entry in sorted({*before, *after}, key=str)
                if before.get(entry) != after.get(entry)
            )
        else:
            keys.append(key)
    return keys


def validate(
    data: JunctionConfig | Mapping[str, Any], source: str = "new configuration"
) -> JunctionConfig:
    """A config object as is, or data validated like a file's (ConfigError naming key paths)."""
    if isinstance(data, JunctionConfig):
        return data
    return validate_config(data, source)


def _keep_old(old: JunctionConfig, new: JunctionConfig, keys: tuple[str, ...]) -> JunctionConfig:
    """`new` with `keys` at their old values: what actually runs. Validated again, since a
    kept value must agree with the new ones (an old non-loopback host needs API keys)."""
    data = new.model_dump(round_trip=True)
    before = old.model_dump(round_trip=True)
    for key in keys:
        *parents, leaf = key.split(".")
        source, target = before, data
        for part in parents:
            source, target = source[part], target[part]
        target[leaf] = source[leaf]
    try:
        return validate_config(data, "new configuration")
    except ConfigError as exc:
        kept = ", ".join(keys)
        raise ConfigError(
            [*exc.lines, f"(with {kept} kept at the running value until a restart)"]
        ) from None


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a new configuration changed, as dotted key paths.

    `applied` are in effect now; `needs_restart` differ in the new configuration but keep their
    running value until Junction restarts (`RESTART` says why); `failed` are keys whose step
    raised unexpectedly (`key: reason`; the rest was applied, the error is logged).
    """

    applied: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.needs_restart)


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated new configuration split by what each change takes."""

    running: JunctionConfig
    """The configuration that will run: the new one with the restart keys kept."""
    hot: tuple[str, ...]
    restart: tuple[str, ...]


def plan(old: JunctionConfig, new: JunctionConfig) -> Plan:
    """Split what changed by what it takes; ConfigError when a kept value clashes with the new."""
    keys = changed_keys(old, new)
    restart = tuple(key for key in keys if reload_mode(key) == "restart")
    hot = tuple(key for key in keys if key not in restart)
    running = _keep_old(old, new, restart) if restart else new
    return Plan(running, hot, restart)


# --------------------------------------------------------------------------- where it comes from


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where a configuration was read from, to read it again the same way: the YAML file plus
    what the command line added (`--mcp-config`, serve mode's `--host`/`--port`)."""

    path: Path | None
    """None: no file, the embedded defaults (backends from the environment)."""
    mcp_config: Path | None = None
    host: str | None = None
    port: int | None = None

    def load(self) -> JunctionConfig:
        """Read, substitute and validate (ConfigError naming key paths)."""
        config = load_config(self.path, os.environ)
        if self.mcp_config is not None:
            config = config.with_mcp_servers_file(self.mcp_config)
        if self.host is not None or self.port is not None:
            config = config.with_server(self.host, self.port)
        return config

    def files(self, config: JunctionConfig) -> list[Path]:
        """Every file the configuration is read from (the YAML and any `mcpServers` JSON)."""
        files: list[Path] = []
        if self.path is not None:
            files.append(self.path)
            if config.mcp_servers_file:
                files.append(self.path.parent / Path(config.mcp_servers_file).expanduser())
        if self.mcp_config is not None:
            files.append(self.mcp_config)
        return files


Signature = tuple[tuple[int, int, int, int] | None, ...]


def _signature(files: Iterable[Path]) -> Signature:
    """What changes when a file is written, replaced (an editor's rename, a ConfigMap's symlink
    swap) or removed."""
    stats: list[tuple[int, int, int, int] | None] = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            stats.append(None)
        else:
            stats.append((stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino))
    return tuple(stats)


class Reloadable(Protocol):
    """What the file watcher and SIGHUP need of a running Junction."""

    @property
    def config(self) -> JunctionConfig: ...

    async def reload(self) -> ReloadResult: ...


async def reload_and_log(junction: Reloadable, trigger: str) -> None:
    """`junction.reload()` for the file watcher and SIGHUP: an invalid file is an error in the
    log (with every reason) and the old configuration keeps running."""
    try:
        await junction.reload()
    except ConfigError as exc:
        log.error(
            "configuration not reloaded (%s); still running the previous one:\n%s", trigger, exc
        )
    except Exception:
        log.exception("configuration not reloaded (%s); still running the previous one", trigger)


async def watch_files(junction: Reloadable, source: ConfigSource) -> None:
    """Reload whenever a file the configuration comes from changes, while
    `server.watch_config` is on. Polls the files' stat once a second: no dependency, and it
    sees atomic replacements and symlink swaps that directory watches can miss."""
    seen = _signature(source.files(junction.config))
    while True:
        await asyncio.sleep(POLL_SECONDS)
        if not junction.config.server.watch_config:
            continue
        now = _signature(source.files(junction.config))
        if now != seen:
            seen = now
            await reload_and_log(junction, "config file changed")
