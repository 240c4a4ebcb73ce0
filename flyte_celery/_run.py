"""`Run`: the handle `.run()` returns, with its phase, outputs and control, and what the cluster recorded about it
(`details`, `actions`, `Run.listall`); `ActionOutputs` and `ActionPhase`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flyte_celery._syncify import syncify
from flyte_celery.errors import RunNotFoundError

if TYPE_CHECKING:
    from flyte_celery._run_details import Action, RunDetails, RunQuery

PHASE_POLL_INTERVAL_S = 0.1


class ActionPhase(str, Enum):
    """Where an action (or a run, through its root action) is in its life."""

    QUEUED = "queued"
    WAITING_FOR_RESOURCES = "waiting_for_resources"
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    TIMED_OUT = "timed_out"
    RECOVERED = "recovered"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset(
    {ActionPhase.SUCCEEDED, ActionPhase.FAILED, ActionPhase.ABORTED, ActionPhase.TIMED_OUT, ActionPhase.RECOVERED}
)


class ActionOutputs(tuple[Any, ...]):
    """A task's outputs: a tuple of values, each also an attribute (`o0`, `o1`, ... or the NamedTuple's names)."""

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: Sequence[str]) -> ActionOutputs:
        self = super().__new__(cls, values)
        self._names = tuple(names) if names else tuple(f"o{i}" for i in range(len(values)))
        return self

    def __getattr__(self, name: str) -> Any:
        if name in self._names:
            return self[self._names.index(name)]
        # `o0`, `o1`, ... always work too, as in Flyte, even when the outputs have NamedTuple field names.
        if name[:1] == "o" and name[1:].isdigit() and int(name[1:]) < len(self):
            return self[int(name[1:])]
        raise AttributeError(f"no output named {name!r}; outputs are {', '.join(self._names)}")

    @property
    def named_outputs(self) -> dict[str, Any]:
        return dict(zip(self._names, self, strict=False))

    def __repr__(self) -> str:
        return "ActionOutputs(" + ", ".join(f"{n}={v!r}" for n, v in self.named_outputs.items()) + ")"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActionOutputs, (tuple(self), self._names))


class RunBackend(Protocol):
    """Where a `Run` reads its state from: the in-process result of a local run, or the cluster's records."""

    name: str
    url: str
    run_base_dir: str  # where its actions' metadata (reports, offloaded values) is written; "" if nowhere
    on_cluster: bool  # whether the cluster holds the run's records (remote and hybrid runs)

    def phase(self) -> ActionPhase: ...

    async def wait(self, timeout: float | None) -> ActionPhase: ...

    async def outputs(self, timeout: float | None) -> ActionOutputs: ...

    async def abort(self, reason: str) -> None: ...


class Run:
    """A run: its name and URL, its phase, and its outputs once it has finished.

    `wait`, `outputs` and `abort` block when called plainly and have an `.aio` twin for async code.
    """

    def __init__(self, backend: RunBackend) -> None:
        self._backend = backend
        self._details: RunDetails | None = None  # the last details read
        self._listed = False  # `_details` were read by `listall` and not handed out yet

    @property
    def name(self) -> str:
        """The run's name (unique among runs)."""
        return self._backend.name

    @property
    def url(self) -> str:
        """Where to look at the run: Flower's page for its root action when configured, else its metadata dir."""
        return self._backend.url

    @property
    def phase(self) -> ActionPhase:
        return self._backend.phase()

    def done(self) -> bool:
        """True once the run has reached a terminal phase."""
        return self.phase.is_terminal

    @syncify
    async def wait(
        self, timeout: float | None = None, quiet: bool = True, wait_for: Literal["terminal", "running"] = "terminal"
    ) -> ActionPhase:
        """Wait until the run is terminal (or, with `wait_for="running"`, has started), or `timeout` seconds pass;
        returns its phase and never raises on failure."""
        if wait_for == "running":
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            while (phase := self.phase) == ActionPhase.QUEUED:
                if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                    break
                await asyncio.sleep(PHASE_POLL_INTERVAL_S)
            return phase
        return await self._backend.wait(timeout)

    @syncify
    async def outputs(self, timeout: float | None = None) -> ActionOutputs:
        """The root task's outputs, waiting up to `timeout` seconds (None: as long as it takes) for the run to end.

        Raises:
            TimeoutError: If the run has not ended within `timeout`.
            RunLostError: If the run's records disappear from Redis (e.g. it restarted empty) while waiting.
            BaseRuntimeError: The run's error, if it failed.
        """
        return await self._backend.outputs(timeout)

    @syncify
    async def abort(self, reason: str = "aborted by user") -> None:
        """Cancel the run and every action in it."""
        await self._backend.abort(reason)

    @classmethod
    def get(cls, name: str) -> Run:
        """The run named `name`: one started by this process, or (with a Celery config) any run on the cluster.

        Raises:
            RunNotFoundError: If no such run is known.
        """
        backend = _registry.get(name) or cluster_catalog().find(name)  # runs of other processes: on the cluster
        if backend is None:
            raise RunNotFoundError(name)
        return cls(backend)

    @classmethod
    def listall(
        cls,
        in_phase: Iterable[ActionPhase | str] | ActionPhase | str | None = None,
        *,
        project: str | None = None,
        domain: str | None = None,
        name_prefix: str | None = None,
        limit: int = 100,
    ) -> Iterator[Run]:
        """The runs on the cluster, newest first: those in one of the phases `in_phase` (values such as "running",
        or Flyte's "PHASE_RUNNING"), of `project` and `domain`, whose names start with `name_prefix`; at most
        `limit`. A filter left None admits every run. Local runs are known only to the process that ran them.

        Raises:
            ValueError: On an unknown phase or a limit below 1.
            RuntimeSystemError: If the cluster's Redis cannot be reached.
        """
        from flyte_celery._run_details import RunQuery  # it needs `ActionPhase`, defined here

        query = RunQuery.build(in_phase, project, domain, name_prefix, limit)
        runs = []
        for backend, details in cluster_catalog().list_runs(query):
            run = cls(backend)
            run._details, run._listed = details, True
            runs.append(run)
        return iter(runs)

    @syncify
    async def details(self) -> RunDetails:
        """What the cluster recorded about the run: root task, project, domain, mode, phase, times, error.

        Read again while the run has not ended, except the first time after `listall`, which read them already.

        Raises:
            RunNotFoundError: If the run ran in this process (local mode, or a dry run), or its records are gone.
        """
        listed, self._listed = self._listed, False
        if self._details is None or not (self._details.done() or listed):
            name = self._name_on_cluster()
            details = await asyncio.to_thread(cluster_catalog().details, name)
            if details is None:
                raise RunNotFoundError(name, f"the cluster has no record of run {name!r} (expired or never launched)")
            self._details = details
        return self._details

    @syncify
    async def actions(self) -> list[Action]:
        """Every action of the run the cluster recorded, the root first, then in the order they were enqueued:
        name, task, phase, parent, inputs and outputs (short reprs), error, times. A child answered from the cache
        by its parent has no action.

        Raises:
            RunNotFoundError: If the run ran in this process (local mode, or a dry run), or its records are gone.
        """
        name = self._name_on_cluster()
        actions = await asyncio.to_thread(cluster_catalog().actions, name)
        if actions is None:
            raise RunNotFoundError(name, f"the cluster has no record of run {name!r} (expired or never launched)")
        return actions

    @syncify
    async def reports(self) -> list[str]:
        """The report pages the run's actions wrote (`@env.task(report=True)`, `flyte_celery.report.flush()`): the
        URLs (local paths in local mode) of `<run_base_dir>/<action>/report.html`, sorted; [] for a dry run.

        Raises:
            StorageError: If the run's metadata directory cannot be listed.
        """
        from flyte_celery._report_pages import report_pages  # storage code: only for those who ask

        return await asyncio.to_thread(report_pages, self._backend.run_base_dir)

    def _name_on_cluster(self) -> str:
        if not self._backend.on_cluster:
            raise RunNotFoundError(
                self.name,
                f"run {self.name} ran in this process (local mode, or a dry run): only remote and hybrid runs are "
                "recorded on the cluster",
            )
        return self.name

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, phase={self.phase.value!r})"


class CompletedRun:
    """The backend of a run executed in this process: it is terminal by the time the handle exists."""

    def __init__(self, name: str, run_base_dir: str, outputs: ActionOutputs, *, on_cluster: bool = False) -> None:
        self.name = name
        self.url = run_base_dir
        self.run_base_dir = run_base_dir
        self.on_cluster = on_cluster  # a hybrid run's: its root ran here, and the cluster recorded it
        self._outputs = outputs

    def phase(self) -> ActionPhase:
        return ActionPhase.SUCCEEDED

    async def wait(self, timeout: float | None) -> ActionPhase:
        await asyncio.sleep(0)
        return ActionPhase.SUCCEEDED

    async def outputs(self, timeout: float | None) -> ActionOutputs:
        return self._outputs

    async def abort(self, reason: str) -> None:
        return None


class DryRun:
    """The backend of a dry run: everything was checked (and, for the Celery modes, the bundle stored), nothing ran."""

    on_cluster = False

    def __init__(self, name: str, url: str, bundle_path: str | None = None) -> None:
        self.name = name
        self.url = url
        self.run_base_dir = ""  # nothing ran, so nothing was written
        self.bundle_path = bundle_path

    def phase(self) -> ActionPhase:
        return ActionPhase.QUEUED

    async def wait(self, timeout: float | None) -> ActionPhase:
        await asyncio.sleep(0)
        return ActionPhase.QUEUED

    async def outputs(self, timeout: float | None) -> ActionOutputs:
        raise RuntimeError(f"run {self.name} is a dry run: nothing was executed, so it has no outputs")

    async def abort(self, reason: str) -> None:
        return None


_registry: dict[str, RunBackend] = {}
CELERY_LAUNCHER = "flyte_celery._celery.launcher"
MAX_REMEMBERED_RUNS = 1000


class RunCatalog(Protocol):
    """The cluster's records of runs (`flyte_celery._celery.catalog.ClusterCatalog`)."""

    def find(self, name: str) -> RunBackend | None: ...

    def list_runs(self, query: RunQuery) -> Sequence[tuple[RunBackend, RunDetails]]: ...

    def details(self, name: str) -> RunDetails | None: ...

    def actions(self, name: str) -> list[Action] | None: ...


def cluster_catalog() -> RunCatalog:
    """The configured cluster's records of runs. The Celery edge is imported here, when a run is first looked up
    on the cluster, so that `import flyte_celery` and local runs need neither celery nor redis."""
    from flyte_celery._celery.catalog import ClusterCatalog

    return ClusterCatalog()


def remember(backend: RunBackend) -> Run:
    """Keep a handle to `backend` so `Run.get(name)` finds it in this process; returns the `Run`."""
    if len(_registry) >= MAX_REMEMBERED_RUNS:
        _registry.pop(next(iter(_registry)))
    _registry[backend.name] = backend
    return Run(backend)
