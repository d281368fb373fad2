"""
Reading an experiment without fooling yourself: per variant conversion rates
with Wilson intervals, each treatment against control with a Newcombe interval
and a Holm-corrected two-proportion z-test, a sample-ratio-mismatch check, a
horizon planned in advance (:func:`users_per_variant`), and an audit of the
recorded assignments against the batch core.

:func:`readout` takes exposure pairs and conversions, or a table of events
(Arrow, Parquet, CSV); :func:`readout_from_events` takes Amplitude's events
themselves: as flagstaff's emitter sends them, as Amplitude's Export API
returns them (also its export files), or a :class:`~flagstaff.testing.MemorySink`,
with a window, a filter on user properties and conversions counted only after
the first exposure.

The statistics need scipy (``pip install 'flagstaff[experiment]'``); it is
imported on first use, so importing this package never needs it.
"""

from ._audit import AssignmentAudit, Disagreement, audit_assignments
from ._events import readout_from_events
from ._planning import users_per_variant
from ._readout import (
    SRM_THRESHOLD,
    Comparison,
    Readout,
    SampleRatioCheck,
    VariantResult,
    holm,
    readout,
    readout_from_counts,
    wilson_interval,
)

__all__ = (
    "SRM_THRESHOLD",
    "AssignmentAudit",
    "Comparison",
    "Disagreement",
    "Readout",
    "SampleRatioCheck",
    "VariantResult",
    "audit_assignments",
    "holm",
    "readout",
    "readout_from_counts",
    "readout_from_events",
    "users_per_variant",
    "wilson_interval",
)
