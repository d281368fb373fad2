"""
The readout from Amplitude events, checked against a simulated experiment
whose users, variants, plans and conversions the generator knows: every input
form reads the same counts, ``where`` keeps the free users, the window and
the order of exposure and conversion decide what counts, and bad input is
named by its line.
"""

from __future__ import annotations

import gzip
import json
import random
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from flagstaff.experiment import readout_from_events
from flagstaff.testing import MemorySink

FLAG = "onboardingFeature"
CONVERSION = "Subscribed to Premium"
RUN = "onboarding-2026-12"
RATES = {"default": 0.10, "feature1": 0.14, "feature2": 0.20, "feature3": 0.07}
START = datetime(2026, 12, 1, tzinfo=timezone.utc)
END = START + timedelta(days=7)
HOUR = 3_600_000
DAY = 24 * HOUR


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


START_MS, END_MS = _ms(START), _ms(END)


@dataclass
class Person:
    """
    One simulated user: what happened to them and when (ms).
    """

    user_id: str
    exposures: list = field(default_factory=list)  # (time, variant)
    conversions: list = field(default_factory=list)  # time
    plans: list = field(default_factory=list)  # (time, plan)


def _simulate(seed: int = 2026, users: int = 2000) -> list[Person]:
    rng = random.Random(seed)
    variants = sorted(RATES)
    people = []
    for n in range(users):
        person = Person(f"user-{n:05d}")
        plan = "premium" if rng.random() < 0.15 else "free"
        person.plans.append((START_MS - rng.randrange(1, 30) * DAY, plan))
        if rng.random() < 0.05:
            # changed plan before the window: the latest one counts
            other = "free" if plan == "premium" else "premium"
            person.plans.insert(0, (START_MS - 40 * DAY, other))
        if plan == "free" and rng.random() < 0.03:
            # upgraded after the window: still free as the window ends
            person.plans.append((END_MS + DAY, "premium"))
        upgrades = plan == "free" and rng.random() < 0.2
        variant = rng.choice(variants)
        place = rng.random()
        if place < 0.05:
            first = START_MS - rng.randrange(1, 5 * DAY)
        elif place < 0.10:
            first = END_MS + rng.randrange(0, 2 * DAY)
        else:
            first = START_MS + rng.randrange(0, 7 * DAY)
        person.exposures.append((first, variant))
        for _ in range(rng.choice((0, 0, 1, 3))):
            person.exposures.append((first + rng.randrange(0, 3 * DAY), variant))
        if rng.random() < 0.02:
            switched = rng.choice([v for v in variants if v != variant])
            person.exposures.append((first + rng.randrange(1, DAY), switched))
        if rng.random() < 0.05:
            person.conversions.append(first - rng.randrange(1, DAY))
        if rng.random() < RATES[variant]:
            at = first if rng.random() < 0.05 else first + rng.randrange(0, 2 * DAY)
            person.conversions.append(at)
            if upgrades:
                # subscribing makes them premium: they stay in the free
                # segment they were exposed in
                person.plans.append((at + 1, "premium"))
            if rng.random() < 0.1:
                person.conversions.append(at + HOUR)
        people.append(person)
    return people


def _expected(people, start=START_MS, end=END_MS, plan="free"):
    """
    Users exposed and converted per variant, by the rules of the readout:
    exposures and conversions in the window, the first variant, a conversion
    at or after the first exposure, the plan at the first exposure (set at or
    before it, else the first one set after it, in the window).
    """
    start = float("-inf") if start is None else start
    end = float("inf") if end is None else end
    counts: dict[str, list[int]] = {}
    for person in people:
        seen = sorted(e for e in person.exposures if start <= e[0] < end)
        if not seen:
            continue
        first, variant = seen[0]
        known = [p for p in sorted(person.plans) if p[0] < end]
        before = [p for p in known if p[0] <= first]
        after = [p for p in known if p[0] > first]
        at_exposure = before[-1] if before else (after[0] if after else None)
        if plan is not None and (at_exposure is None or at_exposure[1] != plan):
            continue
        entry = counts.setdefault(variant, [0, 0])
        entry[0] += 1
        entry[1] += any(first <= t < end for t in person.conversions)
    return {variant: tuple(entry) for variant, entry in counts.items()}


def _http_v2(people, rng_seed=1):
    """
    The events as flagstaff's emitter posts them, shuffled.
    """
    events = []
    for person in people:
        uid = person.user_id
        for when, plan in person.plans:
            events.append({"event_type": "$identify", "user_id": uid, "time": when,
                           "user_properties": {"$set": {"plan": plan}}})
        for when, variant in person.exposures:
            events.append({
                "event_type": "$exposure", "user_id": uid, "time": when,
                "insert_id": f"x-{uid}-{when}", "library": "flagstaff/1.0",
                "event_properties": {"flag_key": FLAG, "variant": variant,
                                     "variation_id": f"id-{variant}",
                                     "experiment_key": RUN},
            })
        for when in person.conversions:
            events.append({"event_type": CONVERSION, "user_id": uid, "time": when,
                           "event_properties": {"price": 9.5}})
        events.append({"event_type": "Page Viewed", "user_id": uid,
                       "time": START_MS + DAY})
    random.Random(rng_seed).shuffle(events)
    return events


def _text_time(when: int) -> str:
    moment = datetime.fromtimestamp(when / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _export(people, rng_seed=2):
    """
    The events as Amplitude's Export API returns them: renamed exposures,
    ``event_time`` text and a snapshot of the user's properties on each.
    """
    events = []
    for number, person in enumerate(people):
        happenings = (
            [(when, 0, "identify", plan) for when, plan in person.plans]
            + [(when, 1, "exposure", variant) for when, variant in person.exposures]
            + [(when, 1, "conversion", None) for when in person.conversions]
        )
        properties: dict[str, str] = {}
        for when, _, kind, value in sorted(happenings):
            event = {"amplitude_id": 900_000 + number, "user_id": person.user_id,
                     "device_id": f"device-{number}", "event_time": _text_time(when),
                     "server_upload_time": _text_time(when + 5000),
                     "uuid": f"{number}-{when}-{kind}", "data": {}, "groups": {}}
            if kind == "identify":
                properties["plan"] = value
                event.update(event_type="$identify", event_properties={})
            elif kind == "exposure":
                properties[f"[Experiment] {FLAG}"] = value
                event.update(event_type="[Experiment] Exposure", event_properties={
                    "[Experiment] Flag Key": FLAG, "[Experiment] Variant": value,
                    "[Experiment] Experiment Key": RUN, "variation_id": "v"})
            else:
                event.update(event_type=CONVERSION, event_properties={"price": 9.5})
            event["user_properties"] = dict(properties)
            events.append(event)
    random.Random(rng_seed).shuffle(events)
    return events


def _sink(people):
    sink = MemorySink()
    for person in people:
        for when, plan in person.plans:
            sink.identify(person.user_id, {"plan": plan}, time=when)
        for when, variant in person.exposures:
            details = SimpleNamespace(key=FLAG, value=variant, variation_id="v",
                                      is_default_value=False, error=None, user=None)
            sink.exposure(details, user_id=person.user_id, experiment_key=RUN,
                          time=when)
        for when in person.conversions:
            sink.track(CONVERSION, user_id=person.user_id, time=when)
    return sink


def _write_lines(path, events, opener=open):
    with opener(path, "wt", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")
    return path


def _write_zip(path, events, parts=3):
    with zipfile.ZipFile(path, "w") as archive:
        for part in range(parts):
            lines = "".join(json.dumps(e) + "\n" for e in events[part::parts])
            name = f"123456/123456_2026-12-0{part + 1}_10#0.json.gz"
            archive.writestr(name, gzip.compress(lines.encode("utf-8")))
    return path


@pytest.fixture(scope="module")
def people():
    return _simulate()


FORMS = {
    "http-v2": lambda people, tmp: _http_v2(people),
    "export": lambda people, tmp: _export(people),
    "memory-sink": lambda people, tmp: _sink(people),
    "http-v2.jsonl": lambda people, tmp: _write_lines(tmp / "a.jsonl",
                                                      _http_v2(people)),
    "export.json": lambda people, tmp: _write_lines(tmp / "e.json", _export(people)),
    "export.json.gz": lambda people, tmp: _write_lines(tmp / "e.json.gz",
                                                       _export(people), gzip.open),
    "export.zip": lambda people, tmp: _write_zip(tmp / "export.zip", _export(people)),
}


def _counts(result):
    return {v.variant: (v.exposed, v.conversions) for v in result.variants}


def _read(events, **options):
    return readout_from_events(events, FLAG, where={"plan": "free"}, start=START,
                               end=END, **options)


@pytest.mark.parametrize("form", list(FORMS), ids=list(FORMS))
def test_each_form_reads_the_simulated_counts(form, people, tmp_path):
    result = _read(FORMS[form](people, tmp_path))

    assert _counts(result) == _expected(people)
    assert result == _read(_http_v2(people))


def test_the_simulation_exercises_every_rule(people):
    # Each rule below must change the counts, or its test would prove nothing.
    everyone = _expected(people, start=None, end=None, plan=None)
    assert _expected(people, plan=None) != everyone
    assert _expected(people) != _expected(people, plan=None)
    switched = sum(len({v for _, v in p.exposures}) > 1 for p in people)
    early = sum(min(p.conversions, default=0) < min(p.exposures)[0] for p in people)
    assert switched > 10 and early > 50


def test_several_variants_are_reported_in_the_notes(people):
    result = _read(_export(people))

    assert any("more than one variant" in note for note in result.notes)
    assert any("only before their first exposure" in note for note in result.notes)


def test_where_leaves_out_the_premium_users(people):
    events = _http_v2(people)
    free = _read(events)
    anyone = readout_from_events(events, FLAG, start=START, end=END)

    assert _counts(anyone) == _expected(people, plan=None)
    assert sum(v.exposed for v in anyone.variants) > sum(
        v.exposed for v in free.variants)
    assert any("left out by where" in note for note in free.notes)


def test_where_takes_a_predicate_over_the_latest_properties(people):
    events = _export(people)
    result = _read(events)
    predicate = readout_from_events(events, FLAG, start=START, end=END,
                                    where=lambda user: user.get("plan") == "free")
    premium = readout_from_events(events, FLAG, start=START, end=END,
                                  where={"plan": "premium"})

    assert result == predicate
    assert _counts(premium) == _expected(people, plan="premium")


@pytest.mark.parametrize("bounds", [(START, END), (START_MS, END_MS)],
                         ids=["datetime", "ms"])
def test_the_window_leaves_out_events_outside_it(people, bounds):
    events = _http_v2(people)
    start, end = bounds
    windowed = readout_from_events(events, FLAG, start=start, end=end)
    unbounded = readout_from_events(events, FLAG)

    assert _counts(windowed) == _expected(people, plan=None)
    assert _counts(unbounded) == _expected(people, start=None, end=None, plan=None)
    assert _counts(windowed) != _counts(unbounded)


def _exposure(user, variant, when, flag=FLAG, **properties):
    return {"event_type": "$exposure", "user_id": user, "time": when,
            "event_properties": {"flag_key": flag, "variant": variant, **properties}}


def _conversion(user, when):
    return {"event_type": CONVERSION, "user_id": user, "time": when}


def test_the_window_is_inclusive_at_start_and_exclusive_at_end():
    events = [
        _exposure("user-early", "feature1", START_MS - 1),
        _exposure("user-start", "feature1", START_MS),
        _conversion("user-start", END_MS),
        _exposure("user-later", "default", START_MS + HOUR),
        _conversion("user-later", END_MS - 1),
        _exposure("user-at-end", "default", END_MS),
    ]
    result = readout_from_events(events, FLAG, start=START, end=END)

    assert _counts(result) == {"default": (1, 1), "feature1": (1, 0)}


def test_a_conversion_before_the_first_exposure_does_not_count():
    events = [
        _conversion("user-before", 1_000),
        _exposure("user-before", "default", 2_000),
        _exposure("user-at", "default", 2_000),
        _conversion("user-at", 2_000),
        _exposure("user-after", "feature1", 2_000),
        _conversion("user-after", 1_000),
        _conversion("user-after", 3_000),
    ]
    result = readout_from_events(events, FLAG)

    assert _counts(result) == {"default": (2, 1), "feature1": (1, 1)}
    assert "note: 1 users converted only before" in "\n".join(result.notes)


def test_repeated_exposures_and_conversions_count_once():
    events = [_exposure("user-1", "feature1", t) for t in (5, 1, 9, 1)]
    events += [_conversion("user-1", t) for t in (6, 7)]
    events += [_exposure("user-2", "default", 3)]
    result = readout_from_events(events, FLAG)

    assert _counts(result) == {"default": (1, 0), "feature1": (1, 1)}


def test_a_user_counts_in_the_variant_of_the_earliest_exposure():
    events = [_exposure("user-1", "feature2", 50), _exposure("user-1", "feature1", 10),
              _exposure("user-1", "feature2", 5_000), _exposure("user-2", "default", 1)]
    result = readout_from_events(events, FLAG)

    assert _counts(result) == {"default": (1, 0), "feature1": (1, 0)}
    assert "1 users were exposed to more than one variant" in "\n".join(result.notes)


def test_only_the_experiment_key_asked_for_counts():
    events = [_exposure("user-1", "default", 1, experiment_key="run-1"),
              _exposure("user-2", "default", 1, experiment_key="run-2"),
              _exposure("user-3", "default", 1, experiment_key="run-2")]

    run_2 = readout_from_events(events, FLAG, experiment_key="run-2")
    assert run_2.variant("default").exposed == 2
    with pytest.raises(ValueError, match="experiment key 'run-3'"):
        readout_from_events(events, FLAG, experiment_key="run-3")


def test_options_reach_the_readout(people):
    result = _read(_http_v2(people), control="feature1", horizon=10_000)

    assert result.control == "feature1"
    assert result.horizon == 10_000 and not result.conclusive


def test_no_exposures_of_the_flag_is_an_error(people):
    with pytest.raises(ValueError, match="no exposures of the flag 'checkout'"):
        readout_from_events(_http_v2(people), "checkout")


BROKEN = [(2, b"{not json"), (3, b"[1, 2]"),
          (2, b'{"event_type": "$exposure", "user_id": "u1", "time": "today"}'),
          (3, b'{"event_type": "x", "user_id": "u1", "event_time": "soon"}')]


def _broken_lines(line: int, text: bytes) -> bytes:
    good = [json.dumps(_exposure(f"user-{n}", "default", n)).encode() for n in range(4)]
    good[line - 1] = text
    return b"\n".join(good) + b"\n"


@pytest.mark.parametrize("line,text", BROKEN,
                         ids=["not-json", "not-an-object", "time-text", "bad-time"])
@pytest.mark.parametrize("suffix", [".jsonl", ".json.gz", ".zip"])
def test_a_broken_line_is_named(tmp_path, line, text, suffix):
    data = _broken_lines(line, text)
    path = tmp_path / f"events{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("1/1_2026-12-01_1#0.json.gz", gzip.compress(data))
    else:
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)

    with pytest.raises(ValueError, match=rf"events{suffix}.*, line {line}: "):
        readout_from_events(path, FLAG)


def test_a_bad_event_in_an_iterable_is_named_by_its_index():
    events = [_exposure("user-1", "default", 1), _exposure("user-2", "default", 1)]
    events[1]["time"] = "2026-12-01T10:00:00Z"

    with pytest.raises(ValueError, match="event 1: time '2026-12-01T10:00:00Z'"):
        readout_from_events(events, FLAG)
    with pytest.raises(ValueError, match="event 0: not an event mapping"):
        readout_from_events([["$exposure"]], FLAG)


@pytest.mark.parametrize("name", ["events.csv", "events.txt", "events.gz"])
def test_an_unknown_file_type_is_an_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")

    with pytest.raises(ValueError, match=rf"{name}: reads \.json or \.jsonl"):
        readout_from_events(path, FLAG)


def test_the_event_time_text_is_utc():
    events = [{"event_type": "[Experiment] Exposure", "user_id": "user-1",
               "event_time": "2026-12-01 00:00:00.000000",
               "event_properties": {"[Experiment] Flag Key": FLAG,
                                    "[Experiment] Variant": "default"}}]

    assert readout_from_events(events, FLAG, start=START).variant("default").exposed
    with pytest.raises(ValueError, match="no exposures"):
        readout_from_events(events, FLAG, start=START_MS + 1)


def test_where_reads_the_properties_a_user_had_when_first_exposed():
    def exposure(user, when, variant):
        return {"event_type": "$exposure", "user_id": user, "time": when,
                "event_properties": {"flag_key": FLAG, "variant": variant}}

    def identify(user, when, plan):
        return {"event_type": "$identify", "user_id": user, "time": when,
                "user_properties": {"$set": {"plan": plan}}}

    events = [
        # identified a moment after the exposure, as the demo does it
        exposure("late-identify", 1_000, "a"), identify("late-identify", 1_001, "free"),
        # free when exposed; subscribing made them premium
        identify("upgrader", 500, "free"), exposure("upgrader", 1_000, "b"),
        {"event_type": CONVERSION, "user_id": "upgrader", "time": 2_000},
        identify("upgrader", 2_001, "premium"),
        # premium all along
        identify("premium", 500, "premium"), exposure("premium", 1_000, "a"),
        # premium when exposed, free later on
        identify("downgrader", 500, "premium"), exposure("downgrader", 1_000, "b"),
        identify("downgrader", 3_000, "free"),
    ]
    free = readout_from_events(events, FLAG, where={"plan": "free"}, control="a")
    counts = {v.variant: (v.exposed, v.conversions) for v in free.variants}
    assert counts == {"a": (1, 0), "b": (1, 1)}
    premium = readout_from_events(events, FLAG, where={"plan": "premium"}, control="a")
    assert {v.variant: v.exposed for v in premium.variants} == {"a": 1, "b": 1}
