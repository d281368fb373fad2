"""
The shapes of the events the emitter sends (amplitude.md §3.6), the checks
Amplitude would make on them, and their deterministic insert ids.

Exposures, assignments, identifies and conversions are plain Amplitude HTTP
V2 event objects, built here as dicts and serialized once, when enqueued.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Optional

__all__ = (
    "ASSIGNMENT_EVENT",
    "EVENT_FIELDS",
    "EXPERIMENT_EXPOSURE",
    "EXPOSURE_EVENT",
    "IDENTIFY_EVENT",
    "INVALID_IDS",
    "INVALID_ID_SPELLINGS",
    "MAX_STRING",
    "assignment_event",
    "deterministic_insert_id",
    "exposure_event",
    "identify_operations",
    "truncate_strings",
    "variant_of",
)

#: Amplitude truncates longer string values on ingest.
MAX_STRING = 1024

#: A text value longer than this is sent as its variation id instead (as
#: ConfigCat advises for JSON-like text flags).
LONG_VARIANT = 128

EXPOSURE_EVENT = "$exposure"
EXPERIMENT_EXPOSURE = "[Experiment] Exposure"
ASSIGNMENT_EVENT = "[Experiment] Assignment"
IDENTIFY_EVENT = "$identify"

#: ids that Amplitude refuses with a 400 (compared in lower case)
INVALID_IDS = frozenset(
    {
        "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown",
        '""', "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1",
        "",
    }
)

#: the invalid ids as callers tend to write them, for an exact (fast) test;
#: an odder spelling is caught by Amplitude and reported as REJECTED
INVALID_ID_SPELLINGS = frozenset(
    spelling
    for value in INVALID_IDS
    for spelling in (value, value.upper(), value.capitalize(), value.title())
)

#: top-level event fields `track()` accepts as keyword arguments, beyond the
#: ones it names
EVENT_FIELDS = frozenset(
    {
        "app_version", "platform", "os_name", "os_version", "device_brand",
        "device_manufacturer", "device_model", "carrier", "country", "region",
        "city", "dma", "language", "price", "quantity", "revenue", "productId",
        "revenueType", "currency", "location_lat", "location_lng", "ip", "idfa",
        "idfv", "adid", "android_id", "android_app_set_id", "event_id",
        "session_id", "plan", "user_agent", "partner_id", "version_name",
        "ingestion_metadata", "group_properties", "$skip_user_properties_sync",
    }
)

#: identify operation keyword -> Amplitude's operator
_OPERATIONS = {
    "set": "$set",
    "set_once": "$setOnce",
    "add": "$add",
    "append": "$append",
    "prepend": "$prepend",
    "remove": "$remove",
}


def variant_of(value: Any, variation_id: Optional[str]) -> Optional[str]:
    """
    The variant an evaluation served, as Amplitude's experiment analysis
    groups it: the value as text (``true``/``false`` for booleans), or the
    variation id for a long text value. None when there is neither.
    """
    if value is None:
        return variation_id
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = value if type(value) is str else str(value)
    if len(text) > LONG_VARIANT and variation_id:
        return variation_id
    return text


def deterministic_insert_id(kind: str, canonical: str, bucket: int) -> str:
    """
    An insert id that every process computes alike for the same event in
    the same time bucket, so that Amplitude keeps one of them (it drops an
    insert id it saw in the past 7 days).

    The scheme is part of the data contract: changing it would double-count
    every exposure made across a deploy. ``<kind>-<bucket>-<32 hex digits of
    BLAKE2b-128 over the canonical text>``; the hash keeps user ids out of
    the id and makes collisions impossible in practice.
    """
    digest = hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{kind}-{bucket}-{digest.hexdigest()}"


def exposure_event(
    flag_key: str,
    variant: Optional[str],
    variation_id: Optional[str],
    experiment_key: Optional[str],
    event_type: str,
) -> dict[str, Any]:
    """
    The exposure of one flag, without ids, time or insert id.

    ``$exposure`` carries ``flag_key``, ``variant``, ``variation_id`` (and
    ``experiment_key``); Amplitude renames them on ingest and sets the user
    property ``[Experiment] <flag_key>`` itself. ``[Experiment] Exposure``
    carries the renamed properties and the ``$set`` the way Amplitude's
    Experiment SDKs do.
    """
    if event_type == EXPOSURE_EVENT:
        properties: dict[str, Any] = {"flag_key": flag_key}
        if variant is not None:
            properties["variant"] = variant
        if variation_id is not None:
            properties["variation_id"] = variation_id
        if experiment_key is not None:
            properties["experiment_key"] = experiment_key
        return {"event_type": event_type, "event_properties": properties}
    properties = {"[Experiment] Flag Key": flag_key}
    if variant is not None:
        properties["[Experiment] Variant"] = variant
    if experiment_key is not None:
        properties["[Experiment] Experiment Key"] = experiment_key
    if variation_id is not None:
        properties["variation_id"] = variation_id
    event = {"event_type": event_type, "event_properties": properties}
    if variant is not None:
        event["user_properties"] = {"$set": {f"[Experiment] {flag_key}": variant}}
    return event


def assignment_event(variants: Mapping[str, str]) -> dict[str, Any]:
    """
    One ``[Experiment] Assignment`` for the flags of one evaluation, in the
    shape of Amplitude's local-evaluation SDKs: ``<flag>.variant`` event
    properties and a ``$set`` of ``[Experiment] <flag>``.
    """
    return {
        "event_type": ASSIGNMENT_EVENT,
        "event_properties": {f"{key}.variant": v for key, v in variants.items()},
        "user_properties": {
            "$set": {f"[Experiment] {key}": v for key, v in variants.items()}
        },
    }


def identify_operations(
    properties: Optional[Mapping[str, Any]],
    operations: Mapping[str, Optional[Mapping[str, Any]]],
    unset: Optional[Iterable[str]],
) -> dict[str, dict[str, Any]]:
    """
    The ``user_properties`` of an ``$identify``: ``properties`` under
    ``$set`` and the other operations under theirs.

    :raises ValueError: when a property appears in two operations, or there
        is nothing to do.
    :raises TypeError: when an operation is not a mapping.
    """
    result: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()

    def add(operator: str, values: Mapping[str, Any]) -> None:
        if not isinstance(values, Mapping):
            raise TypeError(f"{operator} wants a mapping, not {type(values).__name__}")
        if not values:
            return
        for key in values:
            if key in seen:
                raise ValueError(f"the user property {key!r} is in two operations")
            seen.add(key)
        result[operator] = dict(values)

    if properties is not None:
        add("$set", properties)
    for name, values in operations.items():
        if values is not None:
            add(_OPERATIONS[name], values)
    if unset is not None:
        if isinstance(unset, str):
            unset = [unset]
        add("$unset", {key: "-" for key in unset})
    if not result:
        raise ValueError("an identify without any user property operation")
    return result


def truncate_strings(value: Any) -> Any:
    """
    A copy of ``value`` with every string cut to :data:`MAX_STRING`
    characters, as Amplitude would store it.
    """
    if type(value) is str:
        return value[:MAX_STRING] if len(value) > MAX_STRING else value
    if isinstance(value, Mapping):
        return {key: truncate_strings(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [truncate_strings(item) for item in value]
    return value
