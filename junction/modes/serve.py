"""`junction --mode serve`: the composition root's app under uvicorn, owning the process (signals,
SIGHUP reload, a Unix socket to clean up), or `server.workers` such processes on one listening
socket, supervised by this one."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from junction.cluster import WORKER_ENV, advertise_url, with_port
from junction.config import JunctionConfig
from junction.http.serve import uvicorn_server
from junction.reload import ConfigSource
from junction.root import Junction

log = logging.getLogger("junction.server")

LISTEN_FAILED = 3
"""Exit code when the address cannot be listened on (taken, or not this machine's)."""
WORKERS_FAILED = 4
"""Exit code when `server.workers` cannot start (one clear line says why)."""
_RESTART_PAUSE = 1.0
"""A worker that dies while serving is started again after this pause (a crash loop is slow)."""


def run_serve(
    config: JunctionConfig,
    *,
    uds: str | None = None,
    source: ConfigSource | None = None,
    log_level: str | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn drains connections before returning); reload the
    configuration from `source` on SIGHUP and, while `server.watch_config`, when it changes.

    The CLI set up logging, so `logging:` changes apply (`log_level`, from `--log-level`,
    wins over the file's level)."""
    workers = config.server.workers
    if workers > 1 and (refusal := _workers_refusal(config, uds)) is not None:
        print(f"junction: server.workers: {workers} {refusal}", file=sys.stderr)
        return WORKERS_FAILED
    listener: socket.socket | None = None
    if uds is None:
        host, port = config.server.host, config.server.port
        try:
            # Bound here, before anything starts, so a taken port is one clear line.
            listener = tcp_listener(host, port)
        except OSError as exc:
            what = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc}"
            )
            print(f"junction: {host}:{port} {what} (server.port, --port)", file=sys.stderr)
            return LISTEN_FAILED
    advertise: str | None = None
    if config.cluster.redis_url:  # where the other replicas reach the sessions opened here
        try:
            if uds is not None and not config.cluster.advertise_url:
                raise ValueError("serving on a Unix socket: set cluster.advertise_url")
            bound = listener.getsockname()[1] if listener is not None else 0
            advertise = advertise_url(config.cluster.advertise_url, config.server.host, bound)
        except ValueError as exc:
            print(f"junction: cluster.advertise_url: {exc}", file=sys.stderr)
            if listener is not None:
                listener.close()
            return 2
    if workers > 1:
        assert listener is not None
        if not config.cluster.redis_url:
            log.warning(
                "server.workers: %d without cluster.redis_url: rate limits are counted per "
                "worker, and a SubscribeToTask answered by another worker than the one relaying "
                "the task subscribes at the agent again; an MCP session or remote ACP "
                "connection answers only on the worker that opened it",
                workers,
            )
        supervisor = Supervisor(
            workers,
            lambda started: _serve(
                config,
                listener,
                None,
                source=source,
                log_level=log_level,
                started=started,
                advertise=advertise,
                own_port=advertise is not None,
            ),
        )
        return supervisor.run(listener)
    return _serve(
        config, listener, uds, source=source, log_level=log_level, started=None, advertise=advertise
    )


def tcp_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket, as `socket.create_server` makes it but with its protocol named:
    asyncio's loop turns Nagle's algorithm off only on connections accepted from a socket whose
    `proto` says TCP, and with it on a response written in two parts (uvicorn sends the head,
    then the body) waits for the client's delayed ACK, ~40 ms (uvloop sets TCP_NODELAY itself;
    asyncio's loop is what runs where uvloop is not installed, such as Windows)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name not in ("nt", "cygwin"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock


def _workers_refusal(config: JunctionConfig, uds: str | None) -> str | None:
    """Why N workers cannot share this configuration (None: they can)."""
    if uds is not None:
        return "needs a TCP port, not a Unix socket (--uds)"
    url = config.store.url
    if url.startswith("sqlite") and ":memory:" in url:
        return "needs a store every worker can open: store.url is an in-memory SQLite database"
    return None


def _serve(
    config: JunctionConfig,
    listener: socket.socket | None,
    uds: str | None,
    *,
    source: ConfigSource | None,
    log_level: str | None,
    started: Callable[[], None] | None,
    advertise: str | None = None,
    own_port: bool = False,
) -> int:
    """One serving process (the only one, or a worker): 0 after a clean stop.

    `own_port`: a worker of several with `cluster.redis_url` also listens on a port of its own
    (the shared one hands a connection to any worker) and advertises it, so the requests other
    replicas and workers forward to the sessions it owns reach this very process."""
    junction = Junction(config, source=source)
    junction._own_logging(log_level)
    sockets = [listener] if listener is not None else None
    if own_port and advertise is not None and sockets is not None:
        host = config.server.host
        own = tcp_listener(host, 0)
        advertise = with_port(advertise, own.getsockname()[1])
        sockets.append(own)
        log.info("this worker's sessions are reached at %s", advertise)
    server = uvicorn_server(
        junction, config, uds=uds, sighup=True, started=started, advertise=advertise
    )
    # uvicorn drains on SIGTERM, then re-raises it under the handler that was in place before:
    # make that one a no-op so a graceful stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        # on uvloop when it is installed (uvicorn picks the loop)
        server.run(sockets=sockets)
    finally:
        if uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(uds)
    return 0 if server.started else 1


@dataclass
class _Worker:
    number: int
    pid: int
    ready: int
    """The read end of the pipe the worker writes one byte to once it serves."""
    serving: bool = False


class Supervisor:
    """N forked workers on one pre-bound socket (as uvicorn's and gunicorn's are: the kernel
    hands each connection to a worker that is waiting in accept, so a busy worker takes fewer).

    The first worker starts alone, so schema migrations and a configuration that cannot start
    (a store that is down, a bad key file) fail once, with one line, before the others start.
    SIGTERM/SIGINT are passed to every worker, each of which drains as a single process does;
    SIGHUP reloads every worker. A worker that dies while serving is started again."""

    def __init__(self, count: int, serve: Callable[[Callable[[], None]], int]) -> None:
        self.count = count
        self.serve = serve
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.listener: socket.socket | None = None

    def run(self, listener: socket.socket) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._forward)
        try:
            if not self._start([0]) or not self._start(list(range(1, self.count))):
                self._stop_all()
                return WORKERS_FAILED
            log.info("%d workers serving (pids %s)", self.count, self._pids())
            self.listener = listener
            if self.stopping:  # a signal came while they started
                self._forward(signal.SIGTERM, None)
            return self._supervise()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)

    def _pids(self) -> str:
        return " ".join(str(w.pid) for w in sorted(self.workers.values(), key=lambda w: w.number))

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
            if self.listener is not None:  # new connections are refused, not left waiting
                self.listener.close()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    def _fork(self, number: int) -> _Worker:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read)
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the server reloads on it
                os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the supervisor only (once)
                os.environ[WORKER_ENV] = str(number + 1)
                _die_with_parent()

                def started() -> None:
                    os.write(write, b"1")
                    os.close(write)

                code = self.serve(started)
            except SystemExit as exc:  # uvicorn's way out when the app cannot start
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", number + 1)
            finally:
                os._exit(code)
        os.close(write)
        worker = _Worker(number, pid, read)
        self.workers[pid] = worker
        return worker

    def _start(self, numbers: list[int]) -> bool:
        """Start workers `numbers` and wait until each serves; False (said why) if one exits."""
        waiting = {w.ready: w for w in (self._fork(n) for n in numbers)}
        while waiting:
            readable, _, _ = select.select(list(waiting), [], [], 0.2)
            for fd in readable:
                worker = waiting.pop(fd)
                worker.serving = os.read(fd, 1) == b"1"
                os.close(fd)
                if not worker.serving:  # it closed the pipe unready: it has ended
                    _, status = os.waitpid(worker.pid, 0)
                    del self.workers[worker.pid]
                    return self._failed(worker, status)
            for worker in list(waiting.values()):
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
                if pid:
                    del self.workers[pid]
                    os.close(worker.ready)
                    return self._failed(worker, status)
            if self.stopping:
                return False
        return True

    def _failed(self, worker: _Worker, status: int | None = None) -> bool:
        code = "" if status is None else f" (exit code {os.waitstatus_to_exitcode(status)})"
        print(
            f"junction: server.workers: worker {worker.number + 1} of {self.count} could not "
            f"start{code}; its log says why; stopping the others",
            file=sys.stderr,
        )
        return False

    def _supervise(self) -> int:
        worst = 0
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                worst = max(worst, code if code > 0 else 1 if code < 0 else 0)
                continue
            log.error(
                "worker %d (pid %d) exited (%d); starting it again", worker.number + 1, pid, code
            )
            time.sleep(_RESTART_PAUSE)
            if not self.stopping and self._start([worker.number]):
                log.info("worker %d serving again (pids %s)", worker.number + 1, self._pids())
        return worst

    def _stop_all(self) -> None:
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.workers.clear()


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the supervisor dies (so none is left serving)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


__all__ = ["LISTEN_FAILED", "WORKERS_FAILED", "Supervisor", "run_serve", "tcp_listener"]
