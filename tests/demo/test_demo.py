"""
The demo end to end, on 127.0.0.1 only: its relay, clients, emitters and
Amplitude-compatible endpoint, the readout of what arrived, the rollout, the
report, and ``flagstaff demo`` itself.
"""

from __future__ import annotations

import base64
import json
from collections import Counter

import anyio
import httpx
import pytest

from flagstaff.cli import main
from flagstaff.demo import DemoOptions, format_report, plot_report, run_demo
from flagstaff.demo._ingestion import LocalAmplitude
from flagstaff.relay._server import serve_in_thread
from flagstaff.demo._world import FLAG_KEY, simulated_readout

SMALL = DemoOptions(users=4_000, seed=11, clients=3, duration=0.0, after_rollout=400)


@pytest.fixture(scope="module")
def report():
    return anyio.run(run_demo, SMALL)


def test_the_readout_of_what_arrived_is_the_readout_of_what_was_served(report):
    # Every exposure and conversion went through the clients, the emitters
    # and HTTP, and was counted once: the same readout as serving the same
    # visitors straight from the compiled core.
    _, expected = simulated_readout(SMALL.seed, SMALL.users)
    assert report.readout.variants == expected.variants
    assert report.readout.comparisons == expected.comparisons
    assert report.readout.status == expected.status


def test_every_visitor_is_one_exposure_and_nothing_is_lost(report):
    visitors = SMALL.users + SMALL.after_rollout
    assert report.ingested["$exposure"] == visitors
    assert report.ingested["$identify"] == SMALL.users
    assert report.evaluations > SMALL.users   # visitors open several pages
    assert report.emitted.dropped == 0
    assert report.emitted.queued == 0
    assert report.emitted.exposures_deduplicated + report.repeats == (
        report.evaluations + SMALL.after_rollout - visitors
    )
    conversions = sum(v.conversions for v in report.readout.variants)
    assert report.ingested["Subscribed to Premium"] == conversions


def test_the_rollout_reaches_every_client_and_every_later_visitor(report):
    rollout = report.rollout
    assert rollout.reached_all
    assert all(0 <= arrival < 10 for arrival in rollout.arrivals)
    assert rollout.variant == report.decision
    assert set(rollout.served_after) == {rollout.variant}
    assert len(rollout.annotations) == 1
    label, details = rollout.annotations[0]
    assert FLAG_KEY in label
    assert details.startswith(f"{FLAG_KEY}: ")


def test_the_audit_finds_no_wrong_variant(report):
    assert report.audit is not None
    assert report.audit.checked == SMALL.users
    assert report.audit.disagreeing == 0


def test_a_small_experiment_is_not_called(report):
    # 4,000 visitors leave about 700 free ones per variant, short of the
    # planned horizon: the readout must not name a winner.
    assert not report.readout.conclusive
    assert report.readout.winner is None
    assert report.decision == "default"
    text = format_report(report)
    assert "not conclusive" in text
    assert "keep default" in text


def test_a_full_experiment_names_and_rolls_out_the_true_best():
    options = DemoOptions(users=20_000, seed=2, clients=2, duration=0.0,
                          after_rollout=200)
    report = anyio.run(run_demo, options)
    assert report.readout.conclusive
    assert report.readout.winner == report.model.best
    assert report.correct
    assert set(report.rollout.served_after) == {report.model.best}
    assert report.elapsed < 60


def test_the_plot_is_drawn(report, tmp_path):
    path = tmp_path / "conversion.png"
    plot_report(report, path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_command_prints_json(capsys):
    status = main(["demo", "--users", "1500", "--seed", "3", "--clients", "2",
                   "--duration", "0", "--json"])
    assert status == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["seed"] == 3
    assert sum(v["exposed"] for v in figures["variants"].values()) > 0
    assert figures["rollout"]["variant"] == "default"
    assert figures["dropped"] == 0


def test_the_command_prints_the_report(capsys, tmp_path):
    path = tmp_path / "chart.png"
    status = main(["demo", "--users", "1500", "--seed", "4", "--clients", "2",
                   "--duration", "0", "--quiet", "--plot", str(path)])
    assert status == 0
    out = capsys.readouterr().out
    for heading in ("What was served and recorded", "The readout",
                    "The decision", "The hidden model, revealed"):
        assert heading in out
    assert path.exists()


def test_a_demo_sent_elsewhere_reads_what_was_accepted(endpoint):
    # As against the real Amplitude: the readout comes from the uploads the
    # project accepted, and the rollout is annotated on its charts.
    app, url = endpoint
    options = DemoOptions(users=1_500, seed=6, clients=2, duration=0.0,
                          after_rollout=100, amplitude_api_key="key-0123456789",
                          amplitude_secret_key="secret-0123456789",
                          amplitude_app_id=7, amplitude_server_url=url)
    report = anyio.run(run_demo, options)
    _, expected = simulated_readout(options.seed, options.users)
    assert report.readout.variants == expected.variants
    assert report.destination == f"Amplitude at {url}"
    assert report.ingested["$exposure"] == options.users + options.after_rollout
    assert len(app.annotations) == 1
    assert FLAG_KEY in app.annotations[0]["label"]


def test_the_command_refuses_amplitude_without_a_key(capsys, monkeypatch):
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    assert main(["demo", "--to-amplitude"]) == 2
    assert "AMPLITUDE_API_KEY" in capsys.readouterr().err


# -- the endpoint ------------------------------------------------------------


@pytest.fixture
def endpoint():
    app = LocalAmplitude("key-0123456789", "secret-0123456789", 7)
    with serve_in_thread(app, "test Amplitude endpoint") as url:
        yield app, url


def test_the_endpoint_ingests_each_insert_id_once(endpoint):
    app, url = endpoint
    events = [{"event_type": "a", "user_id": "u1", "insert_id": "i1"},
              {"event_type": "a", "user_id": "u1", "insert_id": "i1"},
              {"event_type": "b", "user_id": "u2"}]
    answer = httpx.post(f"{url}/2/httpapi",
                        json={"api_key": "key-0123456789", "events": events})
    assert answer.status_code == 200
    assert [e["event_type"] for e in app.snapshot()] == ["a", "b"]
    assert app.repeats == 1


@pytest.mark.parametrize(("body", "error"), [
    ({"events": []}, "Request missing required field"),
    ({"api_key": "key-0123456789"}, "Request missing required field"),
    ({"api_key": "wrong", "events": []}, "Invalid API key: wrong"),
])
def test_the_endpoint_refuses_what_amplitude_refuses(endpoint, body, error):
    _, url = endpoint
    answer = httpx.post(f"{url}/2/httpapi", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == error


def test_the_endpoint_annotates_only_with_the_secret_key(endpoint):
    app, url = endpoint
    form = {"app_id": "7", "date": "2026-12-04", "label": "flagstaff: x → y"}
    wrong = base64.b64encode(b"key-0123456789:nope").decode()
    refused = httpx.post(f"{url}/api/2/annotations", data=form,
                         headers={"Authorization": f"Basic {wrong}"})
    assert refused.status_code == 401
    answer = httpx.post(f"{url}/api/2/annotations", data=form,
                        auth=("key-0123456789", "secret-0123456789"))
    assert answer.status_code == 200
    assert answer.json()["annotation"]["label"] == "flagstaff: x → y"
    missing = httpx.post(f"{url}/api/2/annotations", data={"app_id": "7"},
                         auth=("key-0123456789", "secret-0123456789"))
    assert missing.status_code == 400
    assert Counter(a["label"] for a in app.annotations) == {"flagstaff: x → y": 1}
