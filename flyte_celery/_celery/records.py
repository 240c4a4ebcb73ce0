"""Result records and waiting lists in Redis, written with one round trip each (Lua scripts on one run's keys).

A result is written once (`SET NX`): the first outcome of an action wins, so re-runs and double deliveries cannot
overwrite it. Whoever waits for an action adds its reply channel to the action's waiters *before* looking for the
result, and the writer notifies every waiter *after* writing it, so no notification is ever missed. Nothing is
written for a run whose record is gone (expired, or Redis restarted empty): such an action is "lost".

Given the run's action index (an optional last key, see `action_index`), the same round trips keep it: ATTACH adds
the action as queued when it is to be published, START marks it started, COMPLETE records its end (and the root's
end in the run's record). Without that key they write only what they always did.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

# KEYS: result, waiters, enqueued[, action index[, broker queue list]].  ARGV: reply channel (or ""), ttl, a token
# unique to this wait, "1" to publish whenever there is no result (a replayed parent)[, action, its queued entry,
# index ttl, index bound[, the action's broker message]].
# Returns {result or false, 1 if the action's message is to be published}: given the message (see
# `direct_publish`), this script has pushed it onto the queue's list, else the caller must publish it. The token
# makes a retry of the same call (the connection broke after Redis ran it) answer the same without pushing again,
# so a message is never left unpublished. The index entry (HSETNX) is also written when the result exists:
# published eagerly, the action may have run before this attach.
ATTACH: Final = """
local function index_queued()
  if KEYS[4] and redis.call('HLEN', KEYS[4]) < tonumber(ARGV[8]) then
    redis.call('HSETNX', KEYS[4], ARGV[5], ARGV[6])
    redis.call('EXPIRE', KEYS[4], ARGV[7])
  end
end
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
local result = redis.call('GET', KEYS[1])
if result then
  index_queued()  -- published eagerly, the action may have ended before this attach: it still gets its entry
  return {result, 0}
end
local function publish()
  if KEYS[5] then redis.call('LPUSH', KEYS[5], ARGV[9]) end
  index_queued()
  return {false, 1}
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2])
  return publish()
end
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[2]) then
  return publish()
end
if redis.call('GET', KEYS[3]) == ARGV[3] then return {false, 1} end
return {false, 0}
"""

# KEYS: run record, result, aborted, stored message[, action index].  ARGV: message to store (or ""), ttl[, action,
# start time, index bound].
# Whether an action may start; unless it is lost or finished, its message is stored for whoever takes it over.
# The index (when it exists) marks the action started if it holds the action or has room for it.
START: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'lost' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'finished' end
if ARGV[1] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2]) end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'aborted' end
if KEYS[5] then
  local fields = redis.call('HLEN', KEYS[5])
  if fields > 0 and (fields < tonumber(ARGV[5]) or redis.call('HEXISTS', KEYS[5], ARGV[3]) == 1) then
    redis.call('HSET', KEYS[5], ARGV[3] .. ':s', ARGV[4])
  end
end
return 'start'
"""

# KEYS: run record, result, waiters, stored message, enqueued[, action index].  ARGV: outcome bytes, ttl,
# notification payload, "1" to send the recorded outcome along with the notification (it spares each waiter a GET)[,
# action, its end entry, the run's phase if the action is its root (else ""), end time].
# Returns 1 if this call wrote the result, 0 if one existed already, -1 if the run is lost (nothing written).
# Once the result exists, every later attach finds it first: the waiters and the enqueued mark go with the message.
# The first outcome's end goes to the index, for an action it holds (a trace's outcome, say, is not indexed).
COMPLETE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local written = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2])
if written and KEYS[6] then
  if redis.call('HEXISTS', KEYS[6], ARGV[5]) == 1 or redis.call('HEXISTS', KEYS[6], ARGV[5] .. ':s') == 1 then
    redis.call('HSET', KEYS[6], ARGV[5] .. ':e', ARGV[6])
  end
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'phase', ARGV[7], 'ended_at', ARGV[8]) end
end
local payload = ARGV[3]
if ARGV[4] == '1' then payload = ARGV[3] .. string.char(10) .. redis.call('GET', KEYS[2]) end
local channels = redis.call('SMEMBERS', KEYS[3])
for _, channel in ipairs(channels) do
  redis.call('PUBLISH', channel, payload)
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
if written then return 1 end
return 0
"""


class Start(str, Enum):
    """What the start checks of an action found."""

    START = "start"  # run it
    FINISHED = "finished"  # it has a result: a message delivered twice, or replayed
    ABORTED = "aborted"  # its run was aborted: record that instead of running
    LOST = "lost"  # its run's record is gone: write nothing
    DUPLICATE = "duplicate"  # another worker holds its live lease: leave it to that one


MAX_OUTCOME_IN_NOTIFICATION_BYTES: Final = 64 * 1024


def outcome_travels(record: bytes) -> bool:
    """Whether a result record goes along with its notification (a larger one is read by each waiter)."""
    return len(record) <= MAX_OUTCOME_IN_NOTIFICATION_BYTES


def notification(run: str, action: str) -> str:
    """What waiters of `run`/`action` are sent when it ends, optionally followed by a newline and its outcome."""
    return f"{run}:{action}"
