"""`router_core.exchange` over real sockets: a real uvicorn for well-behaved HTTP/1.1 (keep-alive,
chunked, `Connection: close`), raw asyncio servers for what uvicorn never does (closing a reused
connection, never answering, malformed or endless heads, close-delimited bodies, TLS with a
self-signed CA)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router_core.exchange import (
    Answer,
    ExchangeConnectTimeout,
    ExchangeError,
    ExchangeMalformed,
    Exchanges,
    ExchangeTimeout,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the server side's view of the connection (the client's port), so a test
    sees which requests shared one; `/chunked` streams three pieces, `/close` says close."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    port = str(scope["client"][1]).encode()
    path = scope["path"]
    headers = [(b"content-type", b"text/plain")]
    if path == "/close":
        headers.append((b"connection", b"close"))
    if path != "/chunked":
        headers.append((b"content-length", str(len(port)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/chunked":
        for piece in (b"one,", b"two,", port):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": port})


@asynccontextmanager
async def uvicorn_server() -> AsyncIterator[str]:
    """uvicorn (its httptools protocol) on a socket already listening: ready at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    config = uvicorn.Config(asgi, log_level="warning", http="httptools")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body, or b"" at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


@asynccontextmanager
async def raw_server(
    handle: Handler, context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A server running `handle(reader, writer, n)` for its n-th connection; yields its URL and
    the list of connection numbers it accepted."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        try:
            await handle(reader, writer, accepted[-1])
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}", accepted
    finally:
        server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def send(exchanges: Exchanges, url: str, **options: Any) -> Answer:
    return await exchanges.send(
        "POST",
        url,
        {"Content-Type": "application/json"},
        b"{}",
        **{"timeout": 5.0, "max_body": 1 << 20, **options},
    )


@pytest.fixture
async def exchanges() -> AsyncIterator[Exchanges]:
    made = Exchanges()
    yield made
    await made.close()


async def uvicorn_cases(exchanges: Exchanges) -> None:
    async with uvicorn_server() as url:
        first, second = await send(exchanges, url + "/"), await send(exchanges, url + "/")
        assert first.status == second.status == 200
        assert first.body == second.body  # the same server-side connection: reused
        chunked = await send(exchanges, url + "/chunked")
        assert chunked.headers["transfer-encoding"] == "chunked"
        assert chunked.body == b"one,two," + first.body  # and still the same connection
        closing = await send(exchanges, url + "/close")
        assert closing.body == first.body and closing.headers["connection"] == "close"
        after = await send(exchanges, url + "/")
        assert after.status == 200 and after.body != first.body  # a new connection


async def test_keep_alive_chunked_and_connection_close_against_uvicorn(
    exchanges: Exchanges,
) -> None:
    await uvicorn_cases(exchanges)


def test_the_same_on_uvloop() -> None:
    """uvloop's transports are not asyncio.Transport subclasses; the protocol works on them."""

    async def run() -> None:
        made = Exchanges()
        try:
            await uvicorn_cases(made)
        finally:
            await made.close()

    uvloop.run(run())


async def test_a_reused_connection_the_server_dropped_is_retried_on_a_new_one(
    exchanges: Exchanges,
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(OK)  # keep-alive as far as the client knows...
        await read_request(reader)  # ...but the next request on it is dropped unanswered

    async with raw_server(handle) as (url, accepted):
        assert (await send(exchanges, url)).body == b"ok"
        assert (await send(exchanges, url)).body == b"ok"
        assert accepted == [0, 1]


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    exchanges: Exchanges,
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()  # then close, as a server's idle timeout does

    async with raw_server(handle) as (url, accepted):
        for _ in range(3):
            assert (await send(exchanges, url)).body == b"ok"
            await asyncio.sleep(0.05)  # lets the client see the close, as time would
        assert accepted == [0, 1, 2]


async def test_close_delimited_http_1_0_answer_and_redirects_as_is(exchanges: Exchanges) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 0:
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: a\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\n")
            writer.write(b"to the end" * 100)
        else:
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
            await read_request(reader)

    async with raw_server(handle) as (url, accepted):
        answer = await send(exchanges, url)
        assert answer.body == b"to the end" * 100
        assert answer.headers["x-twice"] == "1, 2"
        redirect = await send(exchanges, url)
        assert (redirect.status, redirect.headers["location"]) == (302, "/elsewhere")
        assert accepted == [0, 1]  # the HTTP/1.0 answer's connection was not reused


async def test_timeout_oversized_and_malformed_answers_fail_cleanly(exchanges: Exchanges) -> None:
    eof_seen = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 0:  # never answers; the client must close the connection
            await read_request(reader)
            eof_seen.set()
        elif n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
            await read_request(reader)
        elif n == 2:
            writer.write(b"HTTP/1.1 two hundred\r\nnonsense\r\n\r\n")
        elif n == 3:
            writer.write(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000)
            await read_request(reader)
        elif n == 4:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        else:
            writer.write(OK)
            await read_request(reader)

    async with raw_server(handle) as (url, accepted):
        with pytest.raises(ExchangeTimeout, match=r"within 0\.2 s"):
            await send(exchanges, url, timeout=0.2)
        await asyncio.wait_for(eof_seen.wait(), 5)
        with pytest.raises(ExchangeMalformed, match="body over 100 bytes"):
            await send(exchanges, url, max_body=100)
        with pytest.raises(ExchangeMalformed, match="malformed answer"):
            await send(exchanges, url)
        with pytest.raises(ExchangeMalformed, match="head over"):
            await send(exchanges, url)
        with pytest.raises(ExchangeError, match="before the whole answer"):
            await send(exchanges, url)
        assert (await send(exchanges, url)).body == b"ok"  # and the client is fine
        assert accepted == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ExchangeError, match="cannot connect"):
        await send(exchanges, url)


def certificates(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed CA and a certificate it signs for 127.0.0.1: (server context, client
    context trusting that CA)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: Any) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if subject == issuer:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        else:
            ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([ip]), False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = build("test CA", ca_key, "test CA", ca_key)
    leaf = build("127.0.0.1", leaf_key, "test CA", ca_key)
    pem = serialization.Encoding.PEM
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp / "key.pem").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


async def test_https_with_a_trusted_ca_and_refused_without(tmp_path: Path) -> None:
    server_context, client_context = certificates(tmp_path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while await read_request(reader):
            writer.write(OK)

    trusting, default = Exchanges(ssl_context=client_context), Exchanges()
    try:
        async with raw_server(handle, server_context) as (url, accepted):
            assert url.startswith("https://")
            assert (await send(trusting, url)).body == b"ok"
            assert (await send(trusting, url)).body == b"ok"
            assert accepted == [0]
            with pytest.raises(ExchangeError, match="certificate verify failed"):
                await send(default, url)
    finally:
        await trusting.close()
        await default.close()


def test_usable_only_without_an_applicable_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables are read when an `Exchanges` is made, as the aiohttp session does."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    exchanges = Exchanges()
    assert exchanges.usable("http://agent.example:8080/a2a")
    assert exchanges.usable("https://agent.example/a2a")
    assert not exchanges.usable("ftp://agent.example/")
    assert not exchanges.usable("http://user:secret@agent.example/")  # aiohttp's basic auth
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    exchanges = Exchanges()
    assert exchanges.usable("http://agent.example/")
    assert not exchanges.usable("https://agent.example/")
    monkeypatch.setenv("all_proxy", "http://proxy:3128")
    assert not Exchanges().usable("http://agent.example/")
    monkeypatch.setenv("NO_PROXY", "example,localhost")
    exchanges = Exchanges()
    assert exchanges.usable("http://agent.example/")
    assert not exchanges.usable("http://agent.elsewhere/")


def test_a_connect_that_hangs_fails_at_the_connect_timeout_not_the_whole_deadline() -> None:
    """A listener whose accept queue is full never completes a handshake: the router fails
    over after `timeouts.connect`, not after the whole answer's deadline."""

    async def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = []
        for _ in range(4):  # fill the accept queue; later handshakes get no answer
            waiting = socket.socket()
            waiting.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                waiting.connect(("127.0.0.1", port))
            queued.append(waiting)
        await asyncio.sleep(0.1)
        exchanges = Exchanges()
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(ExchangeConnectTimeout, match="timed out connecting"):
            await exchanges.send("GET", url, {}, timeout=30, connect_timeout=0.3, max_body=10)
        # The whole deadline, shorter than the connect timeout, is a timeout of the exchange.
        with pytest.raises(ExchangeTimeout):
            await exchanges.send("GET", url, {}, timeout=0.2, connect_timeout=5, max_body=10)
        for waiting in queued:
            waiting.close()
        listener.close()

    asyncio.run(main())
