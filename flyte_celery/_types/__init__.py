"""The type engine: every task input and output is checked against its declared type and converted to it, in
every mode, as Flyte's type engine converts it (`flyte/types/_type_engine.py`).

A converter is built once per type hint (`converter_for`) and cached; `TaskValues` holds those of one task's
inputs and outputs. Types the engine does not know are checked with `isinstance` and passed through (they are
pickled, like every value, by the transport), with one warning per type. Other packages add types with
`register` (`flyte_celery.io` registers `File`, `Dir` and `DataFrame`).

Each module's docstring lists where we chose a behaviour because Flyte's is unclear or differs between versions.
"""

from flyte_celery._types.converter import Converter, identity, instance_of
from flyte_celery._types.engine import converter_for, generation, register
from flyte_celery._types.mismatch import Mismatch
from flyte_celery._types.task_values import TaskValues

__all__ = ["Converter", "Mismatch", "TaskValues", "converter_for", "generation", "identity", "instance_of", "register"]
