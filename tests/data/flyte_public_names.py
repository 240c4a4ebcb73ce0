"""Flyte 2's top-level public names and, for each, whether flyte-celery provides it.

`FLYTE_ALL` is `flyte.__all__` copied verbatim from `src/flyte/__init__.py` of `FLYTE_REPO` at `FLYTE_COMMIT`. To
follow a newer Flyte, replace it and the commit; `tests/test_exported_members.py` then names every entry that needs
a classification.
"""

from __future__ import annotations

from typing import Final

FLYTE_REPO: Final = "flyteorg/flyte-sdk"
FLYTE_COMMIT: Final = "7e2d4231b5598b856584a8cc819c990ff02dcf2a"
FLYTE_VERSION: Final = "2.6.5+1"  # `git describe`: v2.6.5-1-g7e2d4231

FLYTE_ALL: Final = (
    "AMD_GPU", "GPU", "HABANA_GAUDI", "TPU", "AppHandle", "AsyncFunctionTaskTemplate", "Backoff", "BaseCheckpoint",
    "Cache", "CachePolicy", "CacheRequest", "Checkpoint", "ConditionWebhook", "Cron", "Device", "DeviceClass",
    "Environment", "FixedRate", "Image", "ImageBuild", "Link", "Neuron", "OnArtifact", "PodTemplate", "Resources",
    "RetryStrategy", "ReusePolicy", "Secret", "SecretRequest", "TaskEnvironment", "TaskTemplate", "Timeout",
    "TimeoutType", "Trigger", "TriggerTime", "TriggeredArtifact", "__version__", "build", "build_images", "ctx",
    "current_domain", "current_project", "custom_context", "deploy", "get_custom_context", "group", "init",
    "init_from_api_key", "init_from_config", "init_in_cluster", "init_passthrough", "latest_checkpoint",
    "load_interactive_ctx", "load_plugin_config", "logger", "map", "new_condition", "rerun", "run",
    "run_python_script", "serve", "system_logger", "trace", "version", "with_runcontext", "with_servecontext",
)  # fmt: skip

PROVIDED: Final = "provided"
_TRIGGERS = "remote-only: triggers are deployed to a Flyte backend, which starts the runs"
_CHECKPOINTS = "not provided: an action's checkpoint is `ctx().checkpoint` (a `Checkpoint`: load, save)"
_CONDITIONS = "remote-only: a condition waits for a signal sent through a Flyte backend"
_IMAGE_BUILDS = "remote-only: builds container images for a Flyte backend"
_APPS = "remote-only: serves apps on a Flyte backend"

# Every name of FLYTE_ALL: PROVIDED, or in a few words why flyte-celery leaves it out.
FLYTE_NAMES: Final[dict[str, str]] = {
    "AMD_GPU": PROVIDED,
    "GPU": PROVIDED,
    "HABANA_GAUDI": PROVIDED,
    "TPU": PROVIDED,
    "AppHandle": _APPS,
    "AsyncFunctionTaskTemplate": PROVIDED,
    "Backoff": PROVIDED,
    "BaseCheckpoint": _CHECKPOINTS,
    "Cache": PROVIDED,
    "CachePolicy": PROVIDED,
    "CacheRequest": PROVIDED,
    "Checkpoint": PROVIDED,
    "ConditionWebhook": _CONDITIONS,
    "Cron": _TRIGGERS,
    "Device": PROVIDED,
    "DeviceClass": PROVIDED,
    "Environment": PROVIDED,
    "FixedRate": _TRIGGERS,
    "Image": PROVIDED,
    "ImageBuild": _IMAGE_BUILDS,
    "Link": "remote-only: log links rendered by the Flyte console",
    "Neuron": PROVIDED,
    "OnArtifact": _TRIGGERS,
    "PodTemplate": PROVIDED,
    "Resources": PROVIDED,
    "RetryStrategy": PROVIDED,
    "ReusePolicy": PROVIDED,
    "Secret": PROVIDED,
    "SecretRequest": PROVIDED,
    "TaskEnvironment": PROVIDED,
    "TaskTemplate": PROVIDED,
    "Timeout": PROVIDED,
    "TimeoutType": PROVIDED,
    "Trigger": _TRIGGERS,
    "TriggerTime": _TRIGGERS,
    "TriggeredArtifact": _TRIGGERS,
    "__version__": PROVIDED,
    "build": _IMAGE_BUILDS,
    "build_images": _IMAGE_BUILDS,
    "ctx": PROVIDED,
    "current_domain": PROVIDED,
    "current_project": PROVIDED,
    "custom_context": PROVIDED,
    "deploy": "remote-only: deploys task environments to a Flyte backend",
    "get_custom_context": PROVIDED,
    "group": PROVIDED,
    "init": PROVIDED,
    "init_from_api_key": "remote-only: authenticates to a Flyte backend",
    "init_from_config": PROVIDED,
    "init_in_cluster": "remote-only: initializes inside a Flyte backend's task pods",
    "init_passthrough": "remote-only: passes caller-supplied auth metadata to a Flyte backend",
    "latest_checkpoint": _CHECKPOINTS,
    "load_interactive_ctx": "remote-only: restores a task context saved by a Flyte backend's debug session",
    "load_plugin_config": "remote-only: plugin configuration for run_python_script",
    "logger": PROVIDED,
    "map": PROVIDED,
    "new_condition": _CONDITIONS,
    "rerun": "remote-only: replays a run stored by a Flyte backend",
    "run": PROVIDED,
    "run_python_script": "remote-only: packages a script as a task for a Flyte cluster",
    "serve": _APPS,
    "system_logger": PROVIDED,
    "trace": PROVIDED,
    "version": PROVIDED,
    "with_runcontext": PROVIDED,
    "with_servecontext": _APPS,
}

# flyte-celery's top-level names beyond FLYTE_ALL, and where Flyte keeps each.
FLYTE_SUBMODULE_NAMES: Final[dict[str, str]] = {
    "ActionID": "flyte.models.ActionID",
    "ActionOutputs": "flyte.remote.ActionOutputs",
    "ActionPhase": "flyte.models.ActionPhase",
    "GroupData": "flyte.models.GroupData",
    "RawDataPath": "flyte.models.RawDataPath",
    "Run": "flyte.remote.Run",
    "TaskContext": "flyte.models.TaskContext",
}
