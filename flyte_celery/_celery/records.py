"""Result records and waiting lists in Redis, written with one round trip each (Lua scripts).

A result is written once (`SET NX`): the first outcome of an action wins, so re-runs and double deliveries cannot
overwrite it. Whoever waits for an action adds its reply channel to the action's waiters *before* looking for the
result, and the writer notifies every waiter *after* writing it, so no notification is ever missed.
"""

from __future__ import annotations

from typing import Final

from flyte_celery._celery.keys import ENQUEUED_TTL_S, RESULT_TTL_S, WAITERS_TTL_S

# KEYS: result, waiters, enqueued.  ARGV: reply channel (or ""), waiters ttl, enqueued ttl.
# Returns {result or false, 1 if the caller must publish the action's message}.
ATTACH: Final = """
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
local result = redis.call('GET', KEYS[1])
if result then return {result, 0} end
local fresh = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3])
if fresh then return {false, 1} end
return {false, 0}
"""

# KEYS: result, waiters, leases, stored message.  ARGV: outcome bytes, result ttl, notification payload, lease member.
# Drops the action's lease and stored message. Returns 1 if this call wrote the result, 0 if one existed already.
COMPLETE: Final = """
local written = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[4])
local channels = redis.call('SMEMBERS', KEYS[2])
for _, channel in ipairs(channels) do
  redis.call('PUBLISH', channel, ARGV[3])
end
if written then return 1 end
return 0
"""

ATTACH_TTLS: Final = (WAITERS_TTL_S, ENQUEUED_TTL_S)
COMPLETE_TTL: Final = RESULT_TTL_S


def notification(run: str, action: str) -> str:
    return f"{run}:{action}"
