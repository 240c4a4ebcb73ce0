"""Runs on the cluster, with the names of Flyte's `flyte.remote`.

`Run` is the handle `flyte_celery.run(...)` returns (the same class): `Run.get(name)` finds a run again,
`Run.listall(...)` lists the cluster's runs newest first, `run.details()` and `run.actions()` say what the cluster
recorded about it and each of its actions, `run.abort()` stops it. Local runs are known only to the process that ran
them; remote and hybrid runs are recorded in the cluster's Redis for `retention.runs_s`.
"""

from __future__ import annotations

from flyte_celery._run import ActionOutputs, ActionPhase, Run
from flyte_celery._run_details import Action, ErrorInfo, RunDetails

__all__ = ["Action", "ActionOutputs", "ActionPhase", "ErrorInfo", "Run", "RunDetails"]
