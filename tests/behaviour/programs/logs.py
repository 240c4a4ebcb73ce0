"""A task that logs through Flyte's user logger."""

from __future__ import annotations

import flyte_celery as flyte

env = flyte.TaskEnvironment("logs")


@env.task
async def chatty(word: str) -> str:
    flyte.logger.debug("debug says %s", word)
    flyte.logger.info("info says %s", word)
    return flyte.ctx().action.name
