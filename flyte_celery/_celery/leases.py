"""Leases for running actions: a parent that gave its slot back is already acknowledged, so its liveness is ours;
a leaf's message would come back only after the broker's visibility timeout (hours) if its worker died.

When an action starts, its message is stored and a lease (a score in one sorted set) is taken, in the round trip
that checks whether it already ran; the write of its result drops both. A thread in every pool process renews the
leases of the actions it hosts, and sweeps: an expired lease is claimed by exactly one
sweeper (`ZREM` returns 1 for one caller), which re-publishes the stored message under the same task id, unless the
action has finished meanwhile. On a warm shutdown the process expires its own leases, so another worker takes its
parents over at once instead of after the TTL. A re-run parent replays from the top: its finished children return
at once from their result records, running ones are re-attached, not re-published.
"""

from __future__ import annotations

import json
import threading
import time

from celery import Celery

from flyte_celery._celery.envelope import decode_envelope
from flyte_celery._celery.keys import LEASE_REFRESH_S, LEASE_TTL_S, SWEEP_INTERVAL_S, Keys, lease_member
from flyte_celery._celery.message import authenticate_message, seal_message
from flyte_celery._celery.publisher import send_sealed
from flyte_celery._celery.reply_channel import text_of
from flyte_celery._config_model import Settings
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._logging import system_logger
from flyte_celery._redis_connect import sync_client
from flyte_celery._throttle import LogThrottle
from flyte_celery.errors import MessageDecodeError, UnsafePayloadError

MAX_SWEPT_PER_ROUND = 100


class LeaseKeeper:
    """Renews this process's leases and takes over expired ones, on a thread of its own."""

    def __init__(self, settings: Settings, keys: Keys, app: Celery) -> None:
        self.client = sync_client(settings.redis_url_resolved())
        self.keys = keys
        self.keyring = fleet_keyring(settings)
        self.app = app
        self._failures = LogThrottle()
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flyte-celery-leases", daemon=True)
        self._thread.start()

    def hold(self, run: str, action: str) -> None:
        """Renew this action's lease from now on (its lease and message are written by the caller)."""
        with self._lock:
            self._held.add((run, action))

    def release(self, run: str, action: str) -> None:
        """Stop renewing this action's lease (the write of its result removed it)."""
        with self._lock:
            self._held.discard((run, action))

    def hand_off(self) -> None:
        """Expire every lease this process holds, so other workers take the parents over now."""
        self._stop.set()
        with self._lock:
            held = list(self._held)
            self._held.clear()
        if held:
            self.client.zadd(self.keys.leases, {lease_member(run, action): 0 for run, action in held}, xx=True)
            system_logger.warning("handed off %d unfinished action(s) to the other workers", len(held))

    def _loop(self) -> None:
        next_sweep = 0.0
        while not self._stop.wait(LEASE_REFRESH_S if next_sweep else 0.5):
            try:
                self._renew()
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + SWEEP_INTERVAL_S
            except Exception as exc:
                held = self._failures.ready()
                if held is not None:
                    system_logger.warning(
                        "lease upkeep failed: %s%s", exc, f" ({held} more not logged)" if held else ""
                    )

    def _renew(self) -> None:
        with self._lock:
            held = list(self._held)
        if held:
            expiry = time.time() + LEASE_TTL_S
            self.client.zadd(self.keys.leases, {lease_member(r, a): expiry for r, a in held}, xx=True)

    def sweep(self) -> int:
        """Re-publish the parents whose lease expired; returns how many this call took over."""
        expired = self.client.zrangebyscore(self.keys.leases, "-inf", time.time(), start=0, num=MAX_SWEPT_PER_ROUND)
        taken = 0
        for raw_member in expired:
            member = text_of(raw_member)
            if not self.client.zrem(self.keys.leases, member):
                continue  # another sweeper claimed it
            run, _, action = member.rpartition(":")
            if self.client.exists(self.keys.result(run, action)):
                self.client.delete(self.keys.message(run, action))
                continue
            stored = self.client.get(self.keys.message(run, action))
            if stored is None:
                system_logger.error("action %s's lease expired but its message is gone; it cannot be resumed", member)
                continue
            try:
                self._republish(run, action, stored)
            except (ValueError, TypeError, KeyError, MessageDecodeError, UnsafePayloadError) as exc:
                system_logger.error("not taking over action %s: its stored message is refused: %s", member, exc)
                continue
            taken += 1
        return taken

    def _republish(self, run: str, action: str, stored: bytes | str) -> None:
        """Re-publish a stored message (under the same task id, marked as a replay) if it is authentic and is the
        message of exactly this action."""
        message = json.loads(stored)
        authentic = authenticate_message(self.keyring, message["headers"], message["args"])
        envelope = decode_envelope(authentic.envelope_text)
        if (envelope.run.name, envelope.action.name) != (run, action):
            raise UnsafePayloadError(f"it is the message of {envelope.task_id}, not of {run}/{action}")
        replay = envelope.model_copy(update={"action": envelope.action.model_copy(update={"replay": True})})
        system_logger.warning("taking over action %s (its worker stopped renewing its lease)", envelope.task_id)
        sealed = seal_message(self.keyring, replay, authentic.inputs)
        send_sealed(self.app, replay, sealed, _text(message.get("argsrepr")), _text(message.get("kwargsrepr")), None)

    def close(self) -> None:
        self._stop.set()
        self.client.close()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
