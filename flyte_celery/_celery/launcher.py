"""Starting remote and hybrid runs from a client, and `Run` handles backed by the cluster's records."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flyte_celery._action_call import prepare_root_call
from flyte_celery._cache.redis_store import redis_cache
from flyte_celery._celery.action_index import outcome_phase
from flyte_celery._celery.app import make_app
from flyte_celery._celery.bundle import build_bundle, bundle_digest, code_version, dumps_inputs
from flyte_celery._celery.bundles import bundle_record
from flyte_celery._celery.controller import CeleryController, action_message
from flyte_celery._celery.envelope import Envelope, RunContextMessage, celery_task_id
from flyte_celery._celery.key_census import record_signing_key
from flyte_celery._celery.keys import Keys, lease_member
from flyte_celery._celery.offload import breach, is_reference, store_inputs
from flyte_celery._celery.outcome import Outcome, decode_outcome
from flyte_celery._celery.publisher import Publication, SentEvents, inputs_repr, send
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._celery.run_index import index_run
from flyte_celery._celery.runtime import Runtime
from flyte_celery._config_model import Settings
from flyte_celery._context import ROOT_ACTION_NAME
from flyte_celery._environ import environ_overlay
from flyte_celery._execution import execute_action
from flyte_celery._init import root_dir
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import sync_client
from flyte_celery._run import ActionOutputs, ActionPhase, CompletedRun, DryRun, Run, remember
from flyte_celery._run_options import RunOptions
from flyte_celery._run_spec import RunSpec
from flyte_celery._storage import is_local
from flyte_celery._storage.probe import probe_all
from flyte_celery._task import TaskTemplate
from flyte_celery._urls import redact
from flyte_celery.errors import (
    ActionAbortedError,
    BaseRuntimeError,
    RunAlreadyExistsError,
    RunOptionError,
    RuntimeSystemError,
)

_apps: dict[int, tuple[Settings, Celery]] = {}
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
# A client waiting on a run fails (rather than hangs) once Redis has been unreachable this long.
CLIENT_GIVE_UP_AFTER_S: Final = 60.0


def client_app(settings: Settings) -> Celery:
    # Keyed by identity (settings hold a dict, so they do not hash); the stored object guards against a reused id.
    cached = _apps.get(id(settings))
    if cached is None or cached[0] is not settings:
        cached = _apps[id(settings)] = (settings, make_app(settings))
    return cached[1]


async def launch(
    spec: RunSpec,
    settings: Settings,
    task: TaskTemplate[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: RunOptions,
) -> Run:
    """Start a remote run (returns at once) or a hybrid one (returns when its root, run here, is done).

    Raises:
        RunOptionError: If the run's paths are on this machine while its workers may run on others.
        StorageError: If its run_base_dir or raw_data_path cannot be written, read and deleted (a probe).
    """
    check_reachable(spec, settings.redis_url_resolved())
    await probe_all([spec.run_base_dir, spec.raw_data_path], settings)  # bad storage fails here, not mid-run
    try:
        if spec.mode == "hybrid" and not options.dry_run:  # a hybrid dry run stores the bundle, like a remote one
            return await _launch_hybrid(spec, settings, task, args, kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            None,
            _launch_remote, spec, settings, task, args, kwargs, bool(options.dry_run), options.copy_bundle_to or None,
        )  # fmt: skip
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise unreachable("Redis", settings.redis_url_resolved(), _redis_setting(settings), exc) from exc
    except OperationalError as exc:
        raise unreachable("the broker", settings.broker.url, "broker.url (FLYTE_CELERY_BROKER_URL)", exc) from exc


def _redis_setting(settings: Settings) -> str:
    if settings.redis.url:
        return "redis.url (FLYTE_CELERY_REDIS_URL)"
    return "broker.url (FLYTE_CELERY_BROKER_URL; also the Redis of run records unless redis.url is set)"


def unreachable(what: str, url: str, setting: str, exc: BaseException) -> RuntimeSystemError:
    """The error of a client that cannot reach the cluster: which server, at which URL, and the setting to fix."""
    return RuntimeSystemError(
        "ConnectionError",
        f"cannot reach {what} at {redact(url)} ({type(exc).__name__}: {exc}): check {setting} and that the server "
        "is up",
    )


def _launch_remote(
    spec: RunSpec,
    settings: Settings,
    task: TaskTemplate[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dry_run: bool,
    copy_bundle_to: str | Path | None = None,
) -> Run:
    keys = Keys(settings.redis.key_prefix, settings.retention)
    keyring = fleet_keyring(settings)
    client = sync_client(settings.redis_url_resolved())
    try:
        data, bundle = build_bundle(task, spec.copy_style, root_dir())
        digest = bundle_digest(data)
        spec = dataclasses.replace(spec, version=spec.version or code_version(bundle))
        call = prepare_root_call(spec, task, args, kwargs, ROOT_ACTION_NAME)
        inputs = dumps_inputs(call.inputs, task.name)
        too_big = breach(len(inputs), task.max_inline_io_bytes, f"inputs of task {task.name!r}")
        if too_big is not None:
            raise too_big
        client.set(keys.bundle(digest), bundle_record(keyring, data, spec.run_base_dir), ex=keys.run_ttl_s)
        if dry_run:
            return Run(DryRun(spec.name, spec.run_base_dir, _copy_bundle(data, digest, copy_bundle_to)))
        inputs_url = None
        if len(inputs) > settings.storage.inline_max_bytes:
            inputs_url = asyncio.run(store_inputs(keyring, spec.run_base_dir, spec.name, ROOT_ACTION_NAME, inputs))
            inputs = b""
        _create_run_record(client, keys, spec, task, digest, keyring.current_id, inputs_repr(call.inputs))
        envelope = Envelope(
            run=RunContextMessage.from_spec(spec),
            action=action_message(call, digest, spec, parent=None, group=None, inputs_url=inputs_url),
        )
        client.set(keys.enqueued(spec.name, ROOT_ACTION_NAME), "1", ex=keys.result_ttl_s)
        publication = Publication(envelope, inputs, inputs_repr(call.inputs))
        app = client_app(settings)
        send(app, keyring, publication)
        events = SentEvents(app)
        try:
            events.send([publication])
        except Exception as exc:  # Flower misses the queued state; the run is on its way
            system_logger.warning("could not send the task-sent event of run %s: %s", spec.name, exc)
        finally:
            events.close()
    finally:
        client.close()
    outputs = tuple(task.interface.outputs)
    return remember(RemoteRunBackend(spec.name, settings, outputs, run_base_dir=spec.run_base_dir))


def check_reachable(spec: RunSpec, redis_url: str) -> None:
    """Refuse paths on this machine's disk when the workers may run elsewhere: they could neither read the inputs
    put there nor write outputs a client could read. Workers that reach Redis on this machine's loopback run here."""
    if redis_is_local(redis_url):
        return
    for option, path in (("run_base_dir", spec.run_base_dir), ("raw_data_path", spec.raw_data_path)):
        if path and is_local(path):
            raise RunOptionError(
                option,
                f"{path!r} is a path on this machine, but the workers reach Redis at {redact(redis_url)}, so they may "
                "run on other machines that cannot read or write it: use a location every worker reaches, such as "
                f"s3://bucket/prefix (with_runcontext({option}=...), or run.{option} / FLYTE_CELERY_RUN_"
                f"{option.upper()})",
            )


def redis_is_local(url: str) -> bool:
    """Whether a Redis URL names this machine (loopback or a unix socket): then its workers run here too."""
    if url.startswith("unix://"):
        return True
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    names = [entry.rsplit(":", 1)[0].strip("[]") for entry in hosts.split(",") if entry]
    return bool(names) and all(name in LOOPBACK_HOSTS for name in names)


def _copy_bundle(data: bytes, digest: str, destination: str | Path | None) -> str | None:
    """Write the bundle to `destination` (a directory gets `<digest>.pkl`); returns the file written."""
    if destination is None:
        return None
    path = Path(destination)
    if path.is_dir() or not path.suffix:
        path = path / f"{digest}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _create_run_record(
    client: Any, keys: Keys, spec: RunSpec, task: TaskTemplate[Any, Any], digest: str, key_id: str, inputs: str
) -> None:
    record = keys.run(spec.name)
    created_at = time.time()
    if not client.hsetnx(record, "created_at", str(created_at)):
        raise RunAlreadyExistsError(spec.name, f"a run named {spec.name!r} already exists: pick another name")
    pipe = client.pipeline(transaction=False)
    pipe.hset(
        record,
        mapping={
            "key_id": key_id,
            "mode": spec.mode,
            "root_task": task.name,
            "outputs": json.dumps(list(task.interface.outputs)),
            "bundle": digest,
            "project": spec.project or "",
            "domain": spec.domain or "",
            "labels": json.dumps(dict(spec.labels)),
            "annotations": json.dumps(dict(spec.annotations)),
            "service_account": spec.service_account or "",
            "run_base_dir": spec.run_base_dir,
        },
    )
    pipe.expire(record, keys.run_ttl_s)
    record_signing_key(pipe, keys, key_id)
    index_run(pipe, keys, spec, task.name, inputs, created_at)
    pipe.execute()


async def _launch_hybrid(
    spec: RunSpec, settings: Settings, task: TaskTemplate[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Run:
    runtime = Runtime(settings, client_app(settings))
    await runtime.start()
    cache = redis_cache(settings, runtime.keyring)
    try:
        digest = await runtime.bundles.digest_for(task, spec.copy_style, root_dir(), spec.run_base_dir)
        spec = dataclasses.replace(spec, version=spec.version or code_version(await runtime.bundles.load(digest)))
        call = prepare_root_call(spec, task, args, kwargs, ROOT_ACTION_NAME)
        client = sync_client(settings.redis_url_resolved())
        try:
            _create_run_record(
                client, runtime.keys, spec, task, digest, runtime.keyring.current_id, inputs_repr(call.inputs)
            )
        finally:
            client.close()
        controller = CeleryController(runtime, asyncio.get_running_loop(), cache)
        try:
            with environ_overlay({**task.env_vars, **spec.env_vars}):
                value = await _abortable(runtime, spec.name, execute_action(call, spec, controller, cache))
        except BaseRuntimeError as err:
            await runtime.complete(spec.name, ROOT_ACTION_NAME, Outcome(error=err), f"task {task.name!r}")
            raise
        what = f"task {task.name!r}"
        await runtime.complete(spec.name, ROOT_ACTION_NAME, Outcome(value=value), what, store_in=spec.run_base_dir)
    finally:
        await cache.close()
        await runtime.close()
    names = tuple(task.interface.outputs) or ("o0",)
    outputs = ActionOutputs(task.interface.output_tuple(value), names)
    return remember(CompletedRun(spec.name, spec.run_base_dir, outputs, on_cluster=True))


async def _abortable(runtime: Runtime, run: str, work: Any) -> Any:
    """Await `work` (the hybrid root) unless `run` is aborted meanwhile: then raise `ActionAbortedError`."""
    root = asyncio.ensure_future(work)
    aborted: list[str] = []

    def on_abort(name: str) -> None:
        if name == run and not root.done():
            aborted.append(name)
            root.cancel()

    stop_listening = runtime.on_abort(on_abort)
    runtime.watch_runs(lambda: [run])
    try:
        return await root
    except asyncio.CancelledError:
        if not aborted:
            raise
        raise ActionAbortedError(f"run {run} was aborted") from None
    finally:
        stop_listening()
        if not root.done():
            root.cancel()


class RemoteRunBackend:
    """A run on the cluster, read from its Redis records."""

    on_cluster = True

    def __init__(
        self,
        name: str,
        settings: Settings,
        output_names: tuple[str, ...],
        *,
        run_base_dir: str = "",
    ) -> None:
        self.name = name
        self.settings = settings
        self.output_names = output_names or ("o0",)
        self.keys = Keys(settings.redis.key_prefix, settings.retention)
        flower = settings.flower.url
        root_page = f"{flower.rstrip('/')}/task/{celery_task_id(name, ROOT_ACTION_NAME)}" if flower else ""
        self.url = root_page or run_base_dir
        self.run_base_dir = run_base_dir

    def phase(self) -> ActionPhase:
        """Terminal once the root has a result; running while a worker has the root (its lease says so) or, in a
        hybrid run, its client does; else queued."""
        client = sync_client(self.settings.redis_url_resolved())
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.get(self.keys.result(self.name, ROOT_ACTION_NAME))
                pipe.zscore(self.keys.leases, lease_member(self.name, ROOT_ACTION_NAME))
                pipe.hget(self.keys.run(self.name), "mode")
                blob, lease, mode = pipe.execute()
        finally:
            client.close()
        if blob is not None:
            if is_reference(cast(bytes, blob)):
                return ActionPhase.SUCCEEDED  # only successful outcomes are stored outside their record
            keyring = fleet_keyring(self.settings)
            return outcome_phase(decode_outcome(keyring, cast(bytes, blob), self.name, ROOT_ACTION_NAME))
        # A hybrid root runs in its client from the moment the run exists.
        running = lease is not None or text_of(mode or b"") == "hybrid"
        return ActionPhase.RUNNING if running else ActionPhase.QUEUED

    async def wait(self, timeout: float | None) -> ActionPhase:
        try:
            await asyncio.wait_for(self._wait_outcome(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.phase()

    async def _wait_outcome(self) -> Outcome:
        runtime = Runtime(self.settings, client_app(self.settings), give_up_after_s=CLIENT_GIVE_UP_AFTER_S)
        await runtime.start()
        try:
            return await runtime.wait_for(self.name, ROOT_ACTION_NAME, None)
        finally:
            await runtime.close()

    async def outputs(self, timeout: float | None) -> ActionOutputs:
        try:
            outcome = await asyncio.wait_for(self._wait_outcome(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"run {self.name} is still {self.phase()} after {timeout:g}s") from None
        value = outcome.unwrap()
        values = (value,) if len(self.output_names) <= 1 else tuple(value)
        return ActionOutputs(values, self.output_names)

    async def abort(self, reason: str) -> None:
        runtime = Runtime(self.settings, client_app(self.settings))
        try:
            await runtime.redis.set(self.keys.aborted(self.name), reason, ex=self.keys.run_ttl_s)
            # The root's end, with the reason, before the workers hear of the abort: the first outcome wins, and
            # a root still queued has nobody else to record it.
            error = ActionAbortedError(f"run {self.name} was aborted: {reason}")
            await runtime.complete(self.name, ROOT_ACTION_NAME, Outcome(error=error), f"run {self.name}")
            await runtime.redis.publish(self.keys.abort_channel, self.name)
        finally:
            await runtime.close()
