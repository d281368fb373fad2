"""
The Amplitude emitter: exposure, assignment, identify and conversion events,
batched and sent from a background task, with dedup, retries and a spool;
and the chart annotator, which marks flag changes on Amplitude's charts.
"""

from ._annotations import Annotation, AnnotatorStats, ChartAnnotator
from ._dedup import ExpiringLRU
from ._emitter import AmplitudeEmitter
from ._outcomes import DropReason, EmitterStats, Outcome

__all__ = (
    "AmplitudeEmitter",
    "Annotation",
    "AnnotatorStats",
    "ChartAnnotator",
    "DropReason",
    "EmitterStats",
    "ExpiringLRU",
    "Outcome",
)
