"""Junction as a library: built from config objects or a file, mounted under another app's prefix,
served on its own (TCP or a Unix socket), its live state readable, everything closed by aclose."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from junction import ConfigError, Junction
from tests.router_core.llm_servers import Reply, openai_server
from tests.transports.servers import serve_app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
JUNCTION = str(Path(sys.executable).with_name("junction"))


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(tmp_path: Path, model_url: str) -> dict[str, object]:
    return {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "backends": {"fake": {"type": "openai", "url": f"{model_url}/v1", "models": ["m1"]}},
    }


async def test_mounted_under_a_prefix_in_a_host_app(tmp_path: Path) -> None:
    embed = load_example("embed_in_starlette")
    async with openai_server(models=["m1"]) as model:
        model.default = Reply(text="from the embedded router")
        junction = Junction.from_config(config(tmp_path, model.url))
        host = embed.build(junction)
        async with host.router.lifespan_context(host), serve_app(host) as base:
            assert junction.running
            async with httpx.AsyncClient() as http:
                status = (await http.get(f"{base}/status")).json()
                models = (await http.get(f"{base}/junction/v1/models")).json()
                answer = await http.post(
                    f"{base}/junction/v1/chat/completions",
                    json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
                )
        assert not junction.running
    assert status == {"junction": "healthy", "down": []}
    assert [m["id"] for m in models["data"]] == ["m1"]
    assert answer.json()["choices"][0]["message"]["content"] == "from the embedded router"
    assert junction.health()["components"]["backends"] == {"fake": "ready"}


def test_from_a_file_and_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text("routing: {strategy: round_robin}\n")
    assert Junction.from_config_file(path).config.routing.strategy == "round_robin"
    path.write_text("routing: {stratgy: round_robin}\n")
    with pytest.raises(ConfigError, match=r"routing.stratgy: unknown key"):
        Junction.from_config_file(path)
    with pytest.raises(Exception, match="strategy"):
        Junction.from_config({"routing": {"strategy": "fastest"}})


async def test_serve_on_its_own_and_close(tmp_path: Path) -> None:
    gc_before = (gc.get_threshold(), gc.get_freeze_count())
    async with openai_server(models=["m1"]) as model:
        junction = Junction.from_config(config(tmp_path, model.url) | {"server": {"port": 0}})
        socket_path = str(tmp_path / "j.sock")
        serving = asyncio.create_task(junction.serve(uds=socket_path))
        transport = httpx.AsyncHTTPTransport(uds=socket_path)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(400):  # until it listens
                try:
                    health = await http.get("http://junction/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    assert health.json()["status"] == "healthy"
    assert not junction.running
    # The embedding application's collector is its own (`settle_heap` is for serve mode).
    assert (gc.get_threshold(), gc.get_freeze_count()) == gc_before


def test_serve_mode_settles_its_heap_once_started() -> None:
    """What `junction --mode serve` does once it has started: startup's objects frozen out of
    the collector's sight, the young generation collected less often."""
    from junction.http.serve import GEN0_THRESHOLD, settle_heap

    threshold = gc.get_threshold()
    startup = [[index] for index in range(1000)]  # tracked objects, alive at startup
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(startup)
        assert gc.get_threshold()[0] >= GEN0_THRESHOLD > threshold[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_cli_serves_on_a_unix_socket_and_removes_it(tmp_path: Path) -> None:
    socket_path = tmp_path / "serve.sock"
    (tmp_path / "junction.yaml").write_text(f"store: {{url: 'sqlite:///{tmp_path}/j.db'}}\n")
    process = subprocess.Popen(
        [JUNCTION, "--mode", "serve", "--uds", str(socket_path)],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        while "listening on" not in line:
            assert line, "junction exited before listening"
            line = process.stderr.readline().decode()
        assert f"unix:{socket_path}" in line
        transport = httpx.HTTPTransport(uds=str(socket_path))
        with httpx.Client(transport=transport) as http:
            assert http.get("http://junction/health").json()["status"] == "healthy"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not socket_path.exists()


async def test_the_config_handle_example_adds_and_removes_a_backend(tmp_path: Path) -> None:
    example = load_example("config_handle")
    async with openai_server(models=["m1"]) as first, openai_server(models=["m2"]) as second:
        second.default = Reply(text="from the added backend")
        junction = Junction.from_config(config(tmp_path, first.url))
        host = example.build(junction)
        async with host.router.lifespan_context(host), serve_app(host) as base:
            async with httpx.AsyncClient(base_url=base) as http:
                added = await http.put(
                    "/backends/added",
                    json={"type": "openai", "url": f"{second.url}/v1", "models": ["m2"]},
                )
                assert added.json() == {"applied": ["backends.added"], "needs_restart": []}
                answer = await http.post(
                    "/junction/v1/chat/completions",
                    json={"model": "m2", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert answer.json()["choices"][0]["message"]["content"] == "from the added backend"

                bad = await http.put("/backends/bad", json={"type": "openai", "url": "ftp://x"})
                assert bad.status_code == 400
                assert "backends.bad.url: not a valid URL" in bad.json()["errors"][0]

                assert (await http.delete("/backends/fake")).json()["applied"] == ["backends.fake"]
                models = (await http.get("/junction/v1/models")).json()
                assert [m["id"] for m in models["data"]] == ["m2"]
                assert (await http.get("/changes")).json() == {
                    "changes": [["backends.added"], ["backends.fake"]]
                }
                assert (await http.get("/config")).json()["backends"].keys() == {"added"}
