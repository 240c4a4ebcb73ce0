"""`flyte-celery dev`: a local cluster without Docker: Redis, N workers and Flower, stopped together by Ctrl-C.

Redis is the configured one when it answers; else a private `redis-server` on a free loopback port, with a random
password and its files in a temporary directory. A signing key is generated for the session when none is configured.
Once every worker is ready, the command prints the environment a client needs (`export FLYTE_CELERY_...` lines) and
waits. Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the workers first with SIGTERM (a warm shutdown: suspended parents are
handed back through Redis), then Flower, then the private Redis; a process still running after its bounded wait is
killed with its whole process group. A second Ctrl-C skips the waits.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import click
import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthorizationError
from redis.retry import Retry

from flyte_celery._config_loader import find_config_file, get_settings
from flyte_celery._config_model import Settings
from flyte_celery._dev_processes import POLL_S, Child, StopRequest, say, stop_children
from flyte_celery._redis_connect import REDIS_URL_SCHEMES, sync_client
from flyte_celery._urls import redact
from flyte_celery.errors import ConfigError

LOOPBACK: Final = "127.0.0.1"
DEFAULT_FLOWER_PORT: Final = 5555
START_TIMEOUT_S: Final = 60.0  # every worker ready, Redis answering, Flower listening
WORKER_STOP_TIMEOUT_S: Final = 30.0  # default --stop-timeout: a warm shutdown lets running leaves finish
SERVICE_STOP_TIMEOUT_S: Final = 10.0  # Flower and the private Redis
PROBE_TIMEOUT_S: Final = 1.0  # connecting to the configured Redis
SECRET_BYTES: Final = 32
# The worker is started through our own CLI (`flyte-celery worker`), whatever script name this process has.
_CLI_ENTRY: Final = "from flyte_celery._cli import main; main()"
_NO_REDIS_SERVER: Final = (
    "redis-server is not on PATH, so no private Redis can be started. Install it (apt-get install redis-server, "
    "brew install redis), or point flyte-celery at a running Redis: FLYTE_CELERY_REDIS_URL / FLYTE_CELERY_BROKER_URL "
    "(redis.url / broker.url in config.yaml)."
)


@dataclass
class Cluster:
    """What the command started and what a client must be told."""

    broker_url: str = ""
    redis_url: str = ""
    private_redis_url: str | None = None  # set when the command started its own redis-server
    exports: dict[str, str] = field(default_factory=dict)  # variables a client must set
    notes: list[str] = field(default_factory=list)  # settings a client takes from the configuration, not shown
    redis_server: Child | None = None
    workers: list[Child] = field(default_factory=list)
    flower: Child | None = None


@click.command("dev", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-w", "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Workers to start.")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    help="Pool processes per worker (default: worker.concurrency, else the CPU count).",
)
@click.option("-Q", "--queue", help="Queue the workers consume and clients send to (default: run.queue).")
@click.option("--flower/--no-flower", default=True, show_default=True, help="Start Flower too, when it is installed.")
@click.option(
    "--flower-port",
    type=click.IntRange(1, 65535),
    help=f"Flower's port on {LOOPBACK} (default: {DEFAULT_FLOWER_PORT}, else a free one).",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=WORKER_STOP_TIMEOUT_S,
    show_default=True,
    help="Seconds the workers get for their warm shutdown before they are killed.",
)
@click.pass_context
def dev_command(
    ctx: click.Context,
    workers: int,
    concurrency: int | None,
    queue: str | None,
    flower: bool,
    flower_port: int | None,
    stop_timeout: float,
) -> None:
    """Start a local cluster (Redis, workers, Flower) and print the environment that points a client at it."""
    settings = get_settings()
    queue = queue or settings.run.queue
    config = find_config_file(ctx.parent.params.get("config") if ctx.parent else None)
    request = StopRequest()
    request.install()
    try:
        with _temporary_dir() as workdir, _stopped_at_exit(request, stop_timeout) as cluster:
            _start_redis(cluster, settings, workdir, request)
            env = _child_env(cluster, settings, queue, config)
            for index in range(workers):
                _start_worker(cluster, env, index, queue, concurrency)
            if flower:
                _start_flower(cluster, env, flower_port)
            _wait_ready(cluster, request)
            _print_summary(cluster)
            failed = _watch(cluster, request)
            if failed is not None:
                raise click.ClickException(f"{failed.name} exited with code {failed.process.returncode}")
    finally:
        request.restore()


def _start_redis(cluster: Cluster, settings: Settings, workdir: Path, request: StopRequest) -> None:
    broker_is_redis = settings.broker.url.startswith(REDIS_URL_SCHEMES)
    configured = [url for url in (settings.broker.url, settings.redis.url) if url and url.startswith(REDIS_URL_SCHEMES)]
    problems = {url: problem for url in dict.fromkeys(configured) if (problem := _unanswered(url))}
    if configured and not problems and (settings.redis.url or broker_is_redis):
        cluster.broker_url, cluster.redis_url = settings.broker.url, settings.redis_url_resolved()
        say(f"redis: {redact(cluster.redis_url)} (configured)")
        return
    why = "; ".join(f"Redis at {redact(url)} does not answer ({problem})" for url, problem in problems.items())
    why = why or "no Redis is configured for results (the broker is not Redis and redis.url is not set)"
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException(f"{why}. {_NO_REDIS_SERVER}")
    say(f"{why}: starting a private redis-server")
    password, port = secrets.token_hex(SECRET_BYTES // 2), _free_port()
    config = workdir / "redis.conf"
    config.touch(mode=0o600)
    lines = [f"port {port}", f"bind {LOOPBACK}", f'dir "{workdir}"', 'save ""', "appendonly no", "daemonize no"]
    config.write_text("\n".join([*lines, "loglevel warning", f"requirepass {password}", ""]))
    cluster.redis_server = Child("redis-server", [binary, str(config)], os.environ)
    url = f"redis://:{password}@{LOOPBACK}:{port}/0"
    _wait_for(lambda: _unanswered(url) is None, "the private redis-server to answer", [cluster.redis_server], request)
    cluster.redis_url = cluster.private_redis_url = url
    cluster.broker_url = url if broker_is_redis else settings.broker.url
    say(f"redis: {redact(url)} (private redis-server, pid {cluster.redis_server.pid}, files in {workdir})")


def _unanswered(url: str) -> str | None:
    """None when the Redis at `url` answers a PING; else why not. Refused credentials are an error, not a reason to
    start another Redis."""
    try:
        if "+sentinel://" in url:
            client = sync_client(url)
        else:
            timeouts = {"socket_connect_timeout": PROBE_TIMEOUT_S, "socket_timeout": PROBE_TIMEOUT_S}
            client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **timeouts)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(f"cannot use Redis URL {redact(url)}: {exc}") from None
    try:
        client.ping()
    except (redis.AuthenticationError, AuthorizationError, redis.ResponseError) as exc:
        raise click.ClickException(f"Redis at {redact(url)} answers but refuses us: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def _child_env(cluster: Cluster, settings: Settings, queue: str, config: Path | None) -> dict[str, str]:
    exports = cluster.exports
    exports["FLYTE_CELERY_RUN_MODE"] = "remote"
    for name, url in (("FLYTE_CELERY_BROKER_URL", cluster.broker_url), ("FLYTE_CELERY_REDIS_URL", cluster.redis_url)):
        if url == cluster.private_redis_url or redact(url) == url:  # ours, or a configured URL without a password
            exports[name] = url
        else:
            cluster.notes.append(f"{name}: {redact(url)}")
    if settings.security.signing_key is None:
        exports["FLYTE_CELERY_SECURITY_SIGNING_KEY"] = secrets.token_hex(SECRET_BYTES)
        say("signing key: none configured, one was generated for this session (see the exports below)")
    else:
        cluster.notes.append("FLYTE_CELERY_SECURITY_SIGNING_KEY: the configured key")
    exports["FLYTE_CELERY_RUN_QUEUE"] = queue
    if config is not None:
        exports["FLYTE_CELERY_CONFIG"] = str(config)
    return {**os.environ, **exports}


def _start_worker(cluster: Cluster, env: dict[str, str], index: int, queue: str, concurrency: int | None) -> None:
    node = f"dev{index}-{secrets.token_hex(3)}"
    argv = [sys.executable, "-c", _CLI_ENTRY, "worker", "-Q", queue, "-n", f"{node}@%h"]
    if concurrency is not None:
        argv += ["-c", str(concurrency)]
    ready = re.compile(rf"{re.escape(node)}@\S+ ready\.")
    cluster.workers.append(Child(node, argv, env, ready_when=ready))


def _start_flower(cluster: Cluster, env: dict[str, str], port: int | None) -> None:
    if importlib.util.find_spec("flower") is None:
        say("flower: not installed (pip install flower); carrying on without it")
        return
    if port is None:
        port = DEFAULT_FLOWER_PORT if _port_free(DEFAULT_FLOWER_PORT) else _free_port()
    elif not _port_free(port):
        raise click.BadParameter(f"port {port} is in use on {LOOPBACK}", param_hint="--flower-port")
    argv = [sys.executable, "-m", "celery", "-A", "flyte_celery.worker", "flower"]
    argv += [f"--address={LOOPBACK}", f"--port={port}"]
    cluster.flower = Child("flower", argv, env, ready_when=re.compile(r"Visit me at http"))
    cluster.exports["FLYTE_CELERY_FLOWER_URL"] = f"http://{LOOPBACK}:{port}"


def _wait_ready(cluster: Cluster, request: StopRequest) -> None:
    _wait_for(
        lambda: all(worker.ready.is_set() for worker in cluster.workers),
        "every worker to be ready",
        [*cluster.workers, *([cluster.redis_server] if cluster.redis_server else [])],
        request,
    )
    flower = cluster.flower
    if flower is not None:
        try:
            _wait_for(lambda: flower.ready.is_set() and _listening(_flower_port(cluster)), "Flower", [flower], request)
        except click.ClickException as exc:
            say(f"flower: {exc.message}; carrying on without it", err=True)
            stop_children([flower], signal.SIGTERM, SERVICE_STOP_TIMEOUT_S, request.hurry)
            cluster.flower = None
            cluster.exports.pop("FLYTE_CELERY_FLOWER_URL", None)


def _wait_for(
    predicate: Callable[[], bool],
    what: str,
    watched: Sequence[Child],
    request: StopRequest,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Poll `predicate` until it holds; a child of `watched` that exits, a stop request or the timeout end it."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        exited = next((child for child in watched if not child.alive()), None)
        if exited is not None:
            code = exited.process.returncode
            raise click.ClickException(f"{exited.name} exited with code {code} while waiting for {what}")
        if request.stop.is_set():
            say(f"{request.signal_name} while waiting for {what}: stopping")
            raise click.exceptions.Exit(0)
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(POLL_S)


def _print_summary(cluster: Cluster) -> None:
    for worker in cluster.workers:
        say(f"worker: {worker.name} ready (pid {worker.pid})")
    if cluster.flower is not None:
        say(f"flower: {cluster.exports['FLYTE_CELERY_FLOWER_URL']} (pid {cluster.flower.pid})")
    children = [cluster.redis_server, *cluster.workers, cluster.flower]
    say("pids: " + " ".join(str(child.pid) for child in children if child is not None))
    say("\n# Point a client at this cluster (e.g. from another terminal):")
    for name, value in cluster.exports.items():
        say(f"export {name}={shlex.quote(value)}")
    for note in cluster.notes:
        say(f"# {note} (from your configuration; set it the same way for the client)")
    say("\nThe cluster is up; Ctrl-C stops it.")


def _watch(cluster: Cluster, request: StopRequest) -> Child | None:
    """Wait for a stop request; a worker or the private Redis that exits ends the wait (and is returned)."""
    essential = [*cluster.workers, *([cluster.redis_server] if cluster.redis_server else [])]
    while not request.stop.wait(POLL_S * 4):
        exited = next((child for child in essential if not child.alive()), None)
        if exited is not None:
            return exited
        if cluster.flower is not None and not cluster.flower.alive():
            say(f"flower: exited with code {cluster.flower.process.returncode}; carrying on without it", err=True)
            cluster.flower = None
    say(f"{request.signal_name}: stopping the cluster")
    return None


@contextmanager
def _stopped_at_exit(request: StopRequest, stop_timeout_s: float) -> Iterator[Cluster]:
    """The cluster being started; whatever it holds is stopped when the block ends, however it ends."""
    cluster = Cluster()
    try:
        yield cluster
    finally:
        started = [*cluster.workers, cluster.flower, cluster.redis_server]
        killed = stop_children(cluster.workers, signal.SIGTERM, stop_timeout_s, request.hurry)
        for service in (cluster.flower, cluster.redis_server):
            if service is not None:
                killed += stop_children([service], signal.SIGTERM, SERVICE_STOP_TIMEOUT_S, request.hurry)
        for child in started:
            if child is not None:
                child.finish_output(SERVICE_STOP_TIMEOUT_S)
        if killed:
            say(f"killed after their stop timeout: {', '.join(child.name for child in killed)}", err=True)
        if any(child is not None for child in started):
            say("stopped")


@contextmanager
def _temporary_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flyte-celery-dev-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _flower_port(cluster: Cluster) -> int:
    return int(cluster.exports["FLYTE_CELERY_FLOWER_URL"].rpartition(":")[2])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True
