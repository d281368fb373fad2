"""
What becomes of an event: the outcomes, the reasons for a drop, and the
emitter's counters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

__all__ = ("DropReason", "EmitterStats", "Outcome")


class Outcome(enum.Enum):
    """
    The one final outcome of an event, as ``on_outcome`` reports it.
    """

    #: Amplitude answered 2xx for a request that carried the event.
    DELIVERED = "delivered"
    #: The event is gone, for the :class:`DropReason` given with it.
    DROPPED = "dropped"
    #: The event is in the spool file; the next emitter that opens the file
    #: sends it (and reports it again there).
    SPOOLED = "spooled"


class DropReason(str, enum.Enum):
    """
    Why an event was dropped. The values are stable strings, fit for metric
    labels.
    """

    #: Refused when enqueued: a field of the wrong type, a property value
    #: that cannot be encoded as JSON, an unknown top-level field.
    INVALID_EVENT = "invalid_event"
    #: Refused when enqueued: neither a usable ``user_id`` nor ``device_id``
    #: (missing, shorter than ``min_id_length``, or one of Amplitude's
    #: invalid ids such as ``"null"``).
    INVALID_ID = "invalid_id"
    #: Larger than a request may be, by itself (refused when enqueued, or
    #: answered 413 alone).
    TOO_LARGE = "too_large"
    #: The queue was full (see ``max_queue`` and ``overflow``).
    OVERFLOW = "overflow"
    #: Enqueued after :meth:`AmplitudeEmitter.aclose`.
    CLOSED = "closed"
    #: Amplitude rejected the API key; the emitter stopped sending.
    INVALID_API_KEY = "invalid_api_key"
    #: A 400 answer named this event as invalid.
    REJECTED = "rejected"
    #: A 400 answer that named no event (a malformed request).
    BAD_REQUEST = "bad_request"
    #: 403: Amplitude's firewall refused the request.
    FORBIDDEN = "forbidden"
    #: Another status that retrying cannot fix (401, 404, 405, 415, 3xx...).
    HTTP_ERROR = "http_error"
    #: The user or device is over Amplitude's daily quota (429).
    DAILY_QUOTA = "daily_quota"
    #: Retried ``max_retries`` times or for ``max_age`` seconds in vain.
    EXHAUSTED = "exhausted"
    #: Still undelivered at the :meth:`AmplitudeEmitter.aclose` deadline,
    #: with no spool file.
    SHUTDOWN = "shutdown"
    #: Bound for the spool file, which was full.
    SPOOL_FULL = "spool_full"
    #: Bound for the spool file, which could not be written.
    SPOOL_ERROR = "spool_error"
    #: A 400 named other events of its request again and again, more
    #: rounds than the request had events.
    LOOP_GUARD = "loop_guard"
    #: Read from the spool file older than ``spool_max_age``.
    EXPIRED = "expired"


@dataclass(frozen=True)
class EmitterStats:
    """
    The emitter's counters at one moment.

    Every event counted in :attr:`submitted` is in exactly one of
    :attr:`delivered`, :attr:`dropped`, :attr:`spooled` or still pending
    (:attr:`queued`, :attr:`in_flight`, :attr:`spool_pending`).
    """

    #: events created (accepted or refused), including those read back
    #: from the spool file
    submitted: int = 0
    delivered: int = 0
    dropped: int = 0
    spooled: int = 0
    #: waiting to be sent, including retries and held-back events
    queued: int = 0
    #: in requests under way
    in_flight: int = 0
    #: handed to the spool file, not yet written
    spool_pending: int = 0
    #: the serialized size of the queued and in-flight events
    queued_bytes: int = 0
    #: drops per :class:`DropReason` value
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    #: events that the ``overflow`` policy dropped or spooled
    overflowed: int = 0
    #: events read from the spool file when the emitter opened it
    loaded_from_spool: int = 0
    requests: int = 0
    #: events sent again after a 5xx, a timeout or a network error
    retried: int = 0
    #: events held back because their user or device was throttled (429)
    throttled: int = 0
    #: requests that Amplitude found too large (413) and that were split
    split: int = 0
    #: evaluations that did not become an exposure: already sent in the
    #: dedup window
    exposures_deduplicated: int = 0
    #: evaluations that did not become an exposure: a default value, an
    #: error, or no user
    exposures_skipped: int = 0
    assignments_deduplicated: int = 0
    identifies_deduplicated: int = 0
    #: why the emitter stopped sending (a rejected API key), or None
    error: Optional[str] = None

    @property
    def pending(self) -> int:
        """
        The events without a final outcome yet.
        """
        return self.queued + self.in_flight + self.spool_pending
