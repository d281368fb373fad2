"""
The demo, end to end: a relay serving the onboarding config, long-polling
clients evaluating it for a simulated population, emitters sending what each
user saw and who subscribed to an Amplitude-compatible endpoint, the readout
of what arrived there, and the rollout of its decision to every client.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from typing import Any, Optional

import anyio
import httpx

from ..amplitude import AmplitudeEmitter, ChartAnnotator, EmitterStats
from ..client import Client, LongPoll
from ..core import Config
from ..experiment import (
    AssignmentAudit,
    Readout,
    audit_assignments,
    readout_from_events,
)
from ..relay import Relay
from ._display import Progress
from ._ingestion import LocalAmplitude
from ._world import (
    CONTROL,
    CONVERSION_EVENT,
    FLAG_KEY,
    PLAN,
    SEGMENT,
    HiddenModel,
    Visitor,
    example_config,
    rolled_out,
    split_of,
    visitors,
)

__all__ = ("DemoOptions", "DemoReport", "Rollout", "run_demo")

#: the keys of the demo's own Amplitude project, which exists only in the process
LOCAL_API_KEY = "flagstaff-demo-api-key-0000000000"
LOCAL_APP_ID = 4242
#: how many visitors are simulated between two looks at the clock
_WAVE = 250


@dataclass(frozen=True)
class DemoOptions:
    """
    What the demo simulates, and where it sends its events.

    :param users: visitors during the experiment.
    :param seed: draws the hidden model and the visitors.
    :param null: every variant converts at the same rate, so any winner the
        readout names is a false positive.
    :param clients: long-polling clients, as many processes of an app would
        run; each visitor's pages are served by any of them.
    :param duration: seconds the experiment's traffic is spread over (0: as
        fast as the machine goes).
    :param premium_share: the share of visitors on the premium plan.
    :param after_rollout: visitors after the rollout, to show what they get.
    :param amplitude_api_key: send to this real Amplitude project instead of
        the endpoint in the process.
    :param amplitude_secret_key: with `amplitude_app_id`, also annotate the
        rollout on the real project's charts.
    :param amplitude_app_id: the real project's numeric id.
    :param server_zone: the real project's region, ``"US"`` or ``"EU"``.
    :param amplitude_server_url: with `amplitude_api_key`, an
        Amplitude-compatible base URL (a proxy) instead of Amplitude's own.
    """

    users: int = 20_000
    seed: int = 1
    null: bool = False
    clients: int = 4
    duration: float = 5.0
    premium_share: float = 0.3
    after_rollout: int = 2_000
    amplitude_api_key: Optional[str] = None
    amplitude_secret_key: Optional[str] = field(default=None, repr=False)
    amplitude_app_id: Optional[int] = None
    server_zone: str = "US"
    amplitude_server_url: Optional[str] = None

    def __post_init__(self) -> None:
        if self.users < 1 or self.clients < 1 or self.after_rollout < 0:
            raise ValueError("the demo needs at least one user and one client, "
                             "and no negative count of users after the rollout")
        if self.duration < 0:
            raise ValueError(f"duration is not negative: {self.duration}")
        if not 0 <= self.premium_share < 1:
            raise ValueError(f"premium_share is in [0, 1), not {self.premium_share}")


@dataclass(frozen=True)
class Rollout:
    """
    The rollout of the decision: what was published, how long each client
    took to have it, and what the visitors after it were served.
    """

    variant: str
    #: seconds from the publish to each client's new config, per client;
    #: None for a client that had not got it within the wait
    arrivals: tuple[Optional[float], ...]
    #: free visitors after the rollout, per variant served
    served_after: dict[str, int]
    #: the chart annotations the publish made: (label, details)
    annotations: tuple[tuple[str, Optional[str]], ...]

    @property
    def reached_all(self) -> bool:
        """
        Whether every client had the new config.
        """
        return all(arrival is not None for arrival in self.arrivals)


@dataclass(frozen=True)
class DemoReport:
    """
    What the demo did and found.
    """

    options: DemoOptions
    model: HiddenModel
    readout: Readout
    rollout: Rollout
    audit: Optional[AssignmentAudit]
    #: evaluations of the flag during the experiment
    evaluations: int
    #: events ingested by type, over the whole demo
    ingested: dict[str, int]
    #: events Amplitude left out as repeats of an insert id
    repeats: int
    #: the emitters' counters, summed
    emitted: EmitterStats
    #: where the events went
    destination: str
    #: visitors per plan during the experiment
    plans: dict[str, int]
    elapsed: float

    @property
    def decision(self) -> str:
        """
        The variant rolled out: the winner, or control when there is none.
        """
        return self.readout.winner or CONTROL

    @property
    def correct(self) -> bool:
        """
        Whether the readout's winner is the model's true best (no winner
        when no treatment beats control).
        """
        return self.readout.winner == self.model.best


class _Recorder(httpx.AsyncBaseTransport):
    """
    Sends the emitter's uploads on and keeps the events of those accepted,
    less the repeats of an insert id that Amplitude leaves out, so that a
    demo against the real Amplitude reads what it delivered.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.events: list[dict[str, Any]] = []
        self.repeats = 0
        self._insert_ids: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self._inner.handle_async_request(request)
        if response.status_code == 200 and request.url.path in ("/2/httpapi", "/batch"):
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            for event in json.loads(body)["events"]:
                insert_id = event.get("insert_id")
                if insert_id in self._insert_ids:
                    self.repeats += 1
                    continue
                if insert_id is not None:
                    self._insert_ids.add(insert_id)
                self.events.append(event)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _sdk_key(seed: int) -> str:
    digest = hashlib.sha256(f"flagstaff-demo-{seed}".encode()).hexdigest()
    return f"configcat-sdk-1/{digest[:22]}/{digest[22:44]}"


def _sum_stats(stats: Sequence[EmitterStats]) -> EmitterStats:
    fields = ("submitted", "delivered", "dropped", "spooled", "queued", "requests",
              "retried", "exposures_deduplicated", "exposures_skipped",
              "identifies_deduplicated")
    totals = {name: sum(getattr(s, name) for s in stats) for name in fields}
    return EmitterStats(**totals)


async def run_demo(
    options: DemoOptions = DemoOptions(), progress: Optional[Progress] = None
) -> DemoReport:
    """
    Runs the onboarding experiment end to end and returns its report.

    Nothing leaves 127.0.0.1 unless `options` name a real Amplitude project.
    """
    return await _Demo(options, progress or Progress(None)).run()


class _Demo:
    """
    One run of the demo: its servers, clients and emitters, and the steps
    from the first config to the rollout.
    """

    def __init__(self, options: DemoOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.raw = example_config()
        self.model = HiddenModel.draw(options.seed, null=options.null)
        self.sdk_key = _sdk_key(options.seed)
        self.admin_token = secrets.token_urlsafe(24)
        local = options.amplitude_api_key is None
        if local:
            self.api_key, self.app_id = LOCAL_API_KEY, LOCAL_APP_ID
            self.secret_key: Optional[str] = secrets.token_urlsafe(24)
            self.sink: Optional[LocalAmplitude] = LocalAmplitude(
                self.api_key, self.secret_key, self.app_id)
            self.recorder: Optional[_Recorder] = None
        else:
            self.api_key = options.amplitude_api_key
            self.app_id = options.amplitude_app_id
            self.secret_key = options.amplitude_secret_key
            self.sink, self.recorder = None, _Recorder()
        self.annotator: Optional[ChartAnnotator] = None
        #: (label, details) of every annotation posted
        self.annotations: list[tuple[str, Optional[str]]] = []
        self.clients: list[Client] = []
        self.emitters: list[AmplitudeEmitter] = []
        #: when each client last had a new config (time.monotonic())
        self.changed_at: list[Optional[float]] = [None] * options.clients
        self._loop_token = anyio.lowlevel.current_token()

    def events(self) -> list[dict[str, Any]]:
        """
        The events Amplitude kept so far.
        """
        if self.sink is not None:
            return self.sink.snapshot()
        return list(self.recorder.events)

    async def run(self) -> DemoReport:
        started = time.monotonic()
        options = self.options
        # uvicorn comes with the relay extra, so it is imported only when needed.
        from ..relay._server import (
            LOOPBACK,
            RelayServer,
            serve_in_thread,
            server_config,
        )

        relay = Relay(admin_token=self.admin_token,
                      on_flags_changed=self._flags_changed)
        with ExitStack() as servers:
            relay_url = servers.enter_context(serve_in_thread(
                relay, "demo relay", server_class=RelayServer,
                config_for=lambda port: server_config(
                    relay, LOOPBACK, port, log_level="warning", log_config=None,
                    loop="asyncio", shutdown_timeout=2)))
            if self.sink is not None:
                amplitude_url = servers.enter_context(
                    serve_in_thread(self.sink, "demo Amplitude endpoint"))
                destination = f"the Amplitude-compatible endpoint at {amplitude_url}"
            else:
                amplitude_url = options.amplitude_server_url
                destination = (f"Amplitude at {amplitude_url}" if amplitude_url
                               else f"Amplitude ({options.server_zone})")
            self.progress.note(f"relay serving {FLAG_KEY} at {relay_url}; events go "
                               f"to {destination}")

            async with AsyncExitStack() as stack:
                http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
                admin = _Admin(http, f"{relay_url}/admin/configs/{self.sdk_key}",
                               self.admin_token)
                await admin.publish(self.raw)
                await self._open(stack, relay_url, amplitude_url)

                world = _World(options, self.model, self.clients, self.emitters,
                               self.progress)
                plans = await world.experiment()
                result, audit = await self._read(world)
                rollout = await self._roll_out(admin, world, result.winner or CONTROL)
                emitted = _sum_stats([emitter.stats for emitter in self.emitters])
                events = self.events()

        ingested = Counter(event["event_type"] for event in events)
        repeats = (self.sink or self.recorder).repeats
        return DemoReport(
            options=options, model=self.model, readout=result, rollout=rollout,
            audit=audit, evaluations=world.evaluations, ingested=dict(ingested),
            repeats=repeats, emitted=emitted, destination=destination, plans=plans,
            elapsed=time.monotonic() - started)

    async def _open(
        self, stack: AsyncExitStack, relay_url: str, amplitude_url: Optional[str]
    ) -> None:
        """
        Opens the annotator, and the clients with an emitter each.
        """
        options = self.options
        sender = None
        if self.recorder is not None:
            sender = await stack.enter_async_context(
                httpx.AsyncClient(transport=self.recorder, timeout=10))
        if self.secret_key is not None and self.app_id is not None:
            self.annotator = await stack.enter_async_context(ChartAnnotator(
                self.api_key, self.secret_key, int(self.app_id),
                server_url=amplitude_url, server_zone=options.server_zone,
                on_outcome=self._annotated))
        upload_url = amplitude_url and f"{amplitude_url}/2/httpapi"
        for number in range(options.clients):
            emitter = await stack.enter_async_context(AmplitudeEmitter(
                self.api_key, server_url=upload_url, server_zone=options.server_zone,
                flush_at=500, flush_interval=0.25, http_client=sender))
            self.emitters.append(emitter)

            def note_change(config: Any, number: int = number) -> None:
                self.changed_at[number] = time.monotonic()

            self.clients.append(await stack.enter_async_context(Client(
                self.sdk_key, base_url=relay_url, polling=LongPoll(wait=30),
                emitter=emitter, on_config_changed=note_change)))
        self.progress.note(f"{options.clients} clients long-polling the relay, "
                           "each with its own emitter")

    async def _read(self, world: _World) -> tuple[Readout, Optional[AssignmentAudit]]:
        """
        Reads the experiment from what Amplitude kept, once every emitter
        delivered what it has, and audits the variants recorded.
        """
        for emitter in self.emitters:
            await emitter.flush()
        end = int(time.time() * 1000) + 1
        events = self.events()
        result = readout_from_events(
            events, FLAG_KEY, conversion_event=CONVERSION_EVENT,
            where=dict([SEGMENT]), end=end, control=CONTROL,
            weights=split_of(self.raw), **PLAN)
        self.progress.note(f"readout at the horizon: {result.status}")
        return result, world.audit(self.raw, events)

    async def _roll_out(self, admin: _Admin, world: _World, variant: str) -> Rollout:
        """
        Publishes the decision, waits (at most 10 s) until every client has
        it, and serves the visitors after it.
        """
        self.changed_at[:] = [None] * self.options.clients
        published = time.monotonic()
        await admin.publish(rolled_out(self.raw, variant))
        with anyio.move_on_after(10):
            while None in self.changed_at:
                await anyio.sleep(0.001)
        arrivals = tuple(None if moment is None else moment - published
                         for moment in self.changed_at)
        reached = [arrival for arrival in arrivals if arrival is not None]
        self.progress.note(
            f"published the rollout of {variant}: {len(reached)} of "
            f"{len(arrivals)} clients had it within "
            f"{max(reached, default=0.0) * 1000:.1f} ms")

        served_after = await world.after_rollout()
        if self.annotator is not None:
            await self.annotator.flush()
        for emitter in self.emitters:
            await emitter.flush()
        return Rollout(variant, arrivals, served_after, tuple(self.annotations))

    def _flags_changed(self, change: Any) -> None:
        # The relay calls this in its own thread: the annotator lives here.
        if self.annotator is not None:
            anyio.from_thread.run_sync(self.annotator.post_change, change,
                                       token=self._loop_token)

    def _annotated(self, annotation: Any, error: Optional[str]) -> None:
        if error is None:
            self.annotations.append((annotation.label, annotation.details))
        else:
            self.progress.note(f"the chart annotation failed: {error}")


class _Admin:
    """
    The relay's admin endpoint for the demo's config, as a dashboard uses it.
    """

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self._http = http
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"}

    async def publish(self, raw: bytes) -> None:
        response = await self._http.put(self._url, content=raw, headers=self._headers)
        response.raise_for_status()


class _World:
    """
    The simulated visitors, served by the clients.
    """

    def __init__(self, options: DemoOptions, model: HiddenModel,
                 clients: list[Client], emitters: list[AmplitudeEmitter],
                 progress: Progress) -> None:
        self.options = options
        self.model = model
        self.clients = clients
        self.emitters = emitters
        self.progress = progress
        self.evaluations = 0
        self._visitors: list[Visitor] = []
        self._pick = random.Random(f"flagstaff-demo-pages-{options.seed}")

    async def experiment(self) -> dict[str, int]:
        """
        Serves the experiment's visitors over the demo's duration; returns
        how many visitors each plan had.
        """
        options = self.options
        plans: Counter[str] = Counter()
        converted = 0
        start = time.monotonic()
        population = visitors(options.seed, options.users,
                              premium_share=options.premium_share)
        for done, visitor in enumerate(population, 1):
            self._visitors.append(visitor)
            plans[visitor.plan] += 1
            converted += await self._visit(visitor)
            if done % _WAVE == 0 or done == options.users:
                delivered = sum(e.stats.delivered for e in self.emitters)
                self.progress.update(
                    "experiment", done, options.users,
                    f"users · {converted:,} subscribed · {delivered:,} events "
                    "delivered")
                # Keep to the demo's pace, and let the emitters send.
                lag = start + options.duration * done / options.users - time.monotonic()
                await anyio.sleep(max(lag, 0))
        return dict(plans)

    async def after_rollout(self) -> dict[str, int]:
        """
        Serves visitors after the rollout; returns the variants the free
        ones were served.
        """
        options = self.options
        served: Counter[str] = Counter()
        population = visitors(options.seed, options.after_rollout,
                              premium_share=options.premium_share,
                              start=options.users)
        for done, visitor in enumerate(population, 1):
            client = self.clients[self._pick.randrange(len(self.clients))]
            variant = await client.get_value(FLAG_KEY, CONTROL, visitor.user)
            if visitor.plan == SEGMENT[1]:
                served[variant] += 1
            if done % _WAVE == 0 or done == options.after_rollout:
                self.progress.update("after rollout", done, options.after_rollout,
                                     "users")
                await anyio.sleep(0)
        return dict(served)

    async def _visit(self, visitor: Visitor) -> bool:
        """
        Serves one visitor's pages; the first identifies them with their
        plan and variant, the last one may see them subscribe.
        """
        user = visitor.user
        variant = CONTROL
        for page in range(visitor.pages):
            number = self._pick.randrange(len(self.clients))
            variant = await self.clients[number].get_value(FLAG_KEY, CONTROL, user)
            self.evaluations += 1
            emitter = self.emitters[number]
            if page == 0:
                emitter.identify(user=user, properties={
                    "plan": visitor.plan, f"configcat_{FLAG_KEY}": variant})
        if not visitor.converts(self.model, variant):
            return False
        emitter.track(CONVERSION_EVENT, user=user,
                      event_properties={"plan": "premium", "from_plan": visitor.plan})
        return True

    def audit(
        self, raw: bytes, events: list[dict[str, Any]]
    ) -> Optional[AssignmentAudit]:
        """
        Recomputes every exposed visitor's variant with the batch core and
        counts the exposures that disagree; None without pyarrow.
        """
        try:
            import pyarrow as pa
        except ImportError:
            return None
        users = pa.table({
            "Identifier": [v.user.identifier for v in self._visitors],
            "plan": [v.plan for v in self._visitors],
        })
        exposures = [(e.get("user_id"), e["event_properties"].get("variant"))
                     for e in events if e["event_type"] == "$exposure"
                     and e["event_properties"].get("flag_key") == FLAG_KEY]
        return audit_assignments(Config.from_json(raw), exposures, users, FLAG_KEY)
