"""
The Amplitude emitter: exposure, assignment, identify and conversion events,
batched and sent from a background task, with dedup, retries and a spool.
"""

from ._dedup import ExpiringLRU
from ._emitter import AmplitudeEmitter
from ._outcomes import DropReason, EmitterStats, Outcome

__all__ = ("AmplitudeEmitter", "DropReason", "EmitterStats", "ExpiringLRU", "Outcome")
