"""The worker's Celery consumer, with `message_guard` in front of Celery's task handler.

Chosen over a strict content type or a bootstep because Celery itself offers this seam for it: the app's
`worker_consumer` setting names the consumer class, which the plain `celery worker` command loads, and
`create_task_handler()` returns the one function every task message goes through. Wrapping it keeps the whole
check in one place, before Celery's strategy parses anything.

- A malformed, forged or tampered-with message is logged with the reason, kept in the dead letters, and
  acknowledged: it never comes back, so it cannot crash-loop a fleet.
- A message signed with a key this worker does not have, but which the fleet's clients used recently (the key
  census), is held for a back-off delay, then put back for a worker that has it: the held message takes one of this
  worker's prefetch slots, so a worker with the wrong key takes ever fewer. After `MAX_REQUEUES` here it is
  dead-lettered. A key id no client used recently is junk: dead-lettered at once. Neither records a failure for
  the action.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from typing import Any, Final

from celery.worker.consumer import Consumer
from kombu.exceptions import MessageStateError
from vine import promise

from flyte_celery._celery.channel_client import share_channel_client
from flyte_celery._celery.dead_letters import DeadLetters
from flyte_celery._celery.events import EVENT_FLUSH_DELAY_S
from flyte_celery._celery.key_census import recent_key_ids
from flyte_celery._celery.message_guard import Refusal, Verdict, inspect_message
from flyte_celery._config_model import Settings
from flyte_celery._keyrings import fleet_keyring
from flyte_celery._logging import system_logger
from flyte_celery._throttle import LogThrottle

GUARDED_CONSUMER: Final = "flyte_celery._celery.guarded_consumer:GuardedConsumer"
MAX_REQUEUES: Final = 8  # put back this often by one worker before it gives up on a message it cannot verify
REQUEUE_FIRST_DELAY_S: Final = 1.0
REQUEUE_MAX_DELAY_S: Final = 30.0
REMEMBERED_MESSAGES: Final = 10_000
REFUSALS_LOGGED: Final = 20  # per LOG_WINDOW_S; the rest are counted in the next line that gets through
LOG_WINDOW_S: Final = 10.0
CENSUS_REFRESH_S: Final = 10.0  # how long the fleet's recent key ids are taken as known before being read again

_settings_of_apps: weakref.WeakKeyDictionary[Any, Settings] = weakref.WeakKeyDictionary()


def guard_app(app: Any, settings: Settings) -> None:
    """Make `app`'s workers use the guarded consumer, checking messages with `settings`' keys."""
    _settings_of_apps[app] = settings
    app.conf.worker_consumer = GUARDED_CONSUMER


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, whose task handler first runs `message_guard.inspect_message`."""

    def create_task_handler(self, promise: Any = promise) -> Any:
        handle = super().create_task_handler(promise)
        share_channel_client(self.task_consumer.channel)  # made again with each connection, as this handler is
        return MessageGate(self, _settings_of_apps[self.app], handle)

    def on_send_event_buffered(self) -> None:
        # Celery flushes the buffered task events (task-received, ...) on the next loop turn, which with messages
        # arriving one by one is one synchronous broker publish per message: 40% of the consumer's time when async
        # actions arrive by the thousand. Flushed at most every EVENT_FLUSH_DELAY_S instead (Celery still flushes
        # at once when its buffer is full), so a burst of messages shares a few event messages.
        if self.hub is None:
            super().on_send_event_buffered()
        elif not getattr(self, "_event_flush_due", False):
            self._event_flush_due = True
            self.hub.call_later(EVENT_FLUSH_DELAY_S, self._flush_events_at_last)

    def _flush_events_at_last(self) -> None:
        self._event_flush_due = False
        self._flush_events()

    def stop(self) -> None:
        self._flush_events_before_closing()
        super().stop()

    def shutdown(self) -> None:
        self._flush_events_before_closing()
        super().shutdown()

    def _flush_events_before_closing(self) -> None:
        try:
            self._flush_events()  # the events still waiting for their delay
        except Exception as exc:
            system_logger.warning("could not send the last task events: %s", exc)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        # kombu 5.7's Redis transport, closing the lost connection while messages are unacknowledged, tries to
        # restore them through a transport it has already detached and raises AttributeError, which Celery treats
        # as fatal: the worker died on every Redis restart during a running action. The messages are restored by
        # the visibility timeout, and running actions by their leases; the consumer reconnects as usual.
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            system_logger.warning("ignored %r while closing the lost broker connection; reconnecting", error)


class MessageGate:
    """Lets authentic, well-formed messages through to Celery's handler; deals with the rest."""

    def __init__(self, consumer: Any, settings: Settings, handle: Any) -> None:
        self.consumer = consumer
        self.keyring = fleet_keyring(settings)
        self.handle = handle
        self.dead_letters = DeadLetters(settings)
        self.settings = settings
        self._census: frozenset[str] = frozenset()
        self._census_read_at = float("-inf")
        self._requeues: OrderedDict[str, int] = OrderedDict()
        self._log = LogThrottle(LOG_WINDOW_S, burst=REFUSALS_LOGGED)

    def __call__(self, message: Any) -> None:
        refusal = inspect_message(self.keyring, message)
        if refusal is None:
            message.ack_log_error = _settled_despite_a_lost_channel(message, message.ack_log_error)
            message.reject_log_error = _settled_despite_a_lost_channel(message, message.reject_log_error)
            try:
                self.handle(message)
            except Exception as exc:  # a last resort: whatever Celery chokes on must not end the worker
                self.refuse(message, f"Celery could not take it ({type(exc).__name__}: {exc})")
            return
        if refusal.verdict is Verdict.REQUEUE:
            self.requeue_later(message, refusal)
        else:
            self.refuse(message, refusal.reason)

    def refuse(self, message: Any, reason: str) -> None:
        self._error("refused message %s (moved to the dead letters): %s", _task_id(message), reason)
        self.dead_letters.add(message, reason)
        _settle(message, requeue=None)

    def requeue_later(self, message: Any, refusal: Refusal) -> None:
        if refusal.key_id not in self._fleet_key_ids():
            self.refuse(message, f"{refusal.reason} (and no client of this fleet signed a run with it recently)")
            return
        task_id = _task_id(message)
        count = self._requeues.pop(task_id, 0) + 1
        if count > MAX_REQUEUES:
            self.refuse(message, f"no worker verified it after {MAX_REQUEUES} tries here: {refusal.reason}")
            return
        self._requeues[task_id] = count
        if len(self._requeues) > REMEMBERED_MESSAGES:
            self._requeues.popitem(last=False)
        delay = min(REQUEUE_FIRST_DELAY_S * 2 ** (count - 1), REQUEUE_MAX_DELAY_S)
        self._error(
            "cannot verify message %s: signed with key id %s, this worker has %s; putting it back in %.0fs for a "
            "worker with that key (try %d of %d). Check security.signing_key / security.accepted_keys.",
            task_id, refusal.key_id, ", ".join(self.keyring.ids), delay, count, MAX_REQUEUES,
        )  # fmt: skip
        hub = getattr(self.consumer, "hub", None)
        if hub is not None:
            hub.call_later(delay, _settle, message, True)  # the event loop that consumes runs its own timer
        else:
            self.consumer.timer.call_after(delay, _settle, (message, True))

    def _fleet_key_ids(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._census_read_at >= CENSUS_REFRESH_S:
            self._census_read_at = now
            try:
                self._census = frozenset(recent_key_ids(self.dead_letters.client(), self.dead_letters.keys))
            except Exception as exc:
                system_logger.warning("could not read the fleet's signing key ids: %s", exc)
        return self._census

    def _error(self, text: str, *args: Any) -> None:
        held = self._log.ready()
        if held is not None:
            suffix = f" ({held} similar lines held back)" if held else ""
            system_logger.error(text + suffix, *args)


def _settled_despite_a_lost_channel(message: Any, settle: Any) -> Any:
    # After a Redis restart, kombu 5.7 acknowledges a message received on the lost connection through a transport it
    # has detached, and raises AttributeError, which ends the worker. Such a message comes back after the visibility
    # timeout, and its action is then found finished (or running elsewhere) and not run again.
    def settle_or_leave(*args: Any, **kwargs: Any) -> None:
        try:
            settle(*args, **kwargs)
        except AttributeError as error:
            system_logger.warning(
                "could not settle message %s on its lost broker connection (%r); it will be redelivered and "
                "recognised as handled",
                _task_id(message),
                error,
            )

    return settle_or_leave


def _settle(message: Any, requeue: bool | None) -> None:
    """Acknowledge `message` (requeue None) or put it back (True); a message settled already is left alone."""
    try:
        if requeue:
            message.reject(requeue=True)
        else:
            message.ack()
    except MessageStateError:
        pass
    except Exception as exc:
        system_logger.warning("could not settle a refused message: %s", exc)


def _task_id(message: Any) -> str:
    headers = getattr(message, "headers", None)
    task_id = headers.get("id") if isinstance(headers, dict) else None
    return task_id[:200] if isinstance(task_id, str) else "<no id>"
