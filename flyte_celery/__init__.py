"""flyte-celery: Flyte 2's authoring API, run in-process or on Celery worker fleets.

Change one line, `import flyte` -> `import flyte_celery as flyte`, and a Flyte 2 program runs unchanged:
locally (in-process asyncio, the default), on a `celery worker` fleet (`mode="remote"`), or with its root here
and its children on the fleet (`mode="hybrid"`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _package_version

from flyte_celery._cache import Cache, CachePolicy, CacheRequest
from flyte_celery._checkpoint import Checkpoint
from flyte_celery._context import ActionID, GroupData, RawDataPath, TaskContext, ctx
from flyte_celery._custom_context import custom_context, get_custom_context
from flyte_celery._deployment_types import PodTemplate, ReusePolicy, Secret, SecretRequest
from flyte_celery._environment import Environment, TaskEnvironment
from flyte_celery._group import group
from flyte_celery._image import Image
from flyte_celery._init import current_domain, current_project, init, init_from_config
from flyte_celery._logging import system_logger
from flyte_celery._logging import user_logger as logger
from flyte_celery._map import map
from flyte_celery._resources import AMD_GPU, GPU, HABANA_GAUDI, TPU, Device, DeviceClass, Neuron, Resources
from flyte_celery._retry import Backoff, RetryStrategy
from flyte_celery._run import ActionOutputs, ActionPhase, Run
from flyte_celery._runner import run, with_runcontext
from flyte_celery._task import AsyncFunctionTaskTemplate, TaskTemplate
from flyte_celery._timeout import Timeout, TimeoutType
from flyte_celery._trace import trace

try:
    __version__ = _package_version("flyte-celery")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"
version = __version__

__all__ = [
    "AMD_GPU",
    "GPU",
    "HABANA_GAUDI",
    "TPU",
    "ActionID",
    "ActionOutputs",
    "ActionPhase",
    "AsyncFunctionTaskTemplate",
    "Backoff",
    "Cache",
    "CachePolicy",
    "CacheRequest",
    "Checkpoint",
    "Device",
    "DeviceClass",
    "Environment",
    "GroupData",
    "Image",
    "Neuron",
    "PodTemplate",
    "RawDataPath",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "Secret",
    "SecretRequest",
    "TaskContext",
    "TaskEnvironment",
    "TaskTemplate",
    "Timeout",
    "TimeoutType",
    "__version__",
    "ctx",
    "current_domain",
    "current_project",
    "custom_context",
    "get_custom_context",
    "group",
    "init",
    "init_from_config",
    "logger",
    "map",
    "run",
    "system_logger",
    "trace",
    "version",
    "with_runcontext",
]
