"""Big inputs and outputs travel through storage, so Celery messages and Redis records stay small.

An action's serialized inputs or outcome above `storage.inline_max_bytes` is written under the run's metadata
directory, sealed for the run and action like any other payload, and the message or result record carries its
URL instead:

    <run_base_dir>/<action>/inputs.pkl    the inputs of an action whose inputs were too big to travel inline
    <run_base_dir>/<action>/outputs.pkl   the sealed outcome of an action whose outcome was too big

Only successful outcomes are stored so (errors are small, and a run's phase can then be read from its record
alone). A result record that points to storage is `REFERENCE_MAGIC` followed by a sealed URL; a reader fetches the
outcome and checks its seal for the run and action it asked for, as for an inline one.
"""

from __future__ import annotations

from typing import Final

from flyte_celery._celery.outcome import Outcome, decode_outcome
from flyte_celery._signing import Authenticated, KeyRing
from flyte_celery._storage import get_bytes, join, put_bytes
from flyte_celery.errors import InlineIOMaxBytesBreached

INPUTS_PURPOSE: Final = "offloaded-inputs"
REFERENCE_PURPOSE: Final = "result-reference"
REFERENCE_MAGIC: Final = b"fcref1"
INPUTS_FILE: Final = "inputs.pkl"
OUTPUTS_FILE: Final = "outputs.pkl"


def breach(size: int, limit: int, what: str) -> InlineIOMaxBytesBreached | None:
    """Flyte's limit on what one action takes or gives (`max_inline_io_bytes`; File, Dir and DataFrame are
    references and count for little): the error for `size` over `limit`, else None."""
    if size <= limit:
        return None
    return InlineIOMaxBytesBreached(
        f"the {what} take {size:,} bytes, over the task's max_inline_io_bytes of {limit:,}: pass big data as a "
        "File, Dir or DataFrame, or raise max_inline_io_bytes"
    )


async def store_inputs(keys: KeyRing, base_dir: str, run: str, action: str, data: bytes) -> str:
    """Write an action's serialized inputs to storage; returns their URL."""
    url = join(base_dir, action, INPUTS_FILE)
    await put_bytes(url, keys.seal(data, INPUTS_PURPOSE, run, action))
    return url


async def load_inputs(keys: KeyRing, url: str, run: str, action: str) -> Authenticated:
    """An action's inputs from storage, if sealed for exactly this run and action."""
    blob = await get_bytes(url)
    return keys.open(blob, INPUTS_PURPOSE, run, action, what=f"inputs of action {run}/{action} at {url}")


async def store_outcome(keys: KeyRing, base_dir: str, run: str, action: str, sealed: bytes) -> bytes:
    """Write a sealed (successful) outcome to storage; returns the result record that points to it."""
    url = join(base_dir, action, OUTPUTS_FILE)
    await put_bytes(url, sealed)
    return REFERENCE_MAGIC + keys.seal(url.encode(), REFERENCE_PURPOSE, run, action)


def is_reference(record: bytes) -> bool:
    """Whether a result record points to an outcome in storage (always a success)."""
    return record.startswith(REFERENCE_MAGIC)


async def outcome_of(keys: KeyRing, record: bytes, run: str, action: str) -> Outcome:
    """The outcome a result record holds or points to, checked for exactly this run and action.

    Raises:
        UnsafePayloadError: If the record, its reference or the stored outcome was not sealed for them.
        StorageError: If the stored outcome cannot be read.
    """
    if not is_reference(record):
        return decode_outcome(keys, record, run, action)
    what = f"result reference of action {run}/{action}"
    url = keys.open(record[len(REFERENCE_MAGIC) :], REFERENCE_PURPOSE, run, action, what=what).decode()
    return decode_outcome(keys, await get_bytes(url), run, action)
