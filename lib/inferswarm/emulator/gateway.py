"""A go-livepeer gateway in front of emulated orchestrators: discovery, the orchestrator webhook, routing.

Discovery (no bearer token: on a real node these live on the CLI port):
- `GET /getNetworkCapabilities`, the upstream shape, with the proto's omitempty honoured (a cold model
  has no `warm` key, a zero `capacityInUse` is absent) and capability ids as string keys;
- `GET /getOrchestratorAICapabilities`, the legacy shape of the tester gateway's fork;
- `GET /registeredOrchestrators`, the on-chain list with Go's field names.
`settings.discovery` and `settings.registered` choose which exist; the others 404 like a gateway
without the route.

Routing: every batch pipeline job (and `/llm`) is first admitted by `Gateway.job(pipeline, model)`. The
gateway asks the webhook for the orchestrators to use (before every job, or at most every
webhook_refresh_s; on an error it keeps its last list, as go-livepeer falls back to its cache), keeps those
that advertise (pipeline, model), and hands the job to the first that takes it. Outcomes:
- none listed that advertises the model, or only `down` ones: after discovery_timeout_ms,
  503 "no orchestrators available" (go-livepeer's error when the session pool is empty);
- `always_503`, or every slot of the model busy (capacity): 503 "Service Unavailable Error", the
  gateway's mask of the orchestrator's "insufficient capacity";
- `wrong_model`: 400 with the runner's model-mismatch message, which the gateway relays as a 400;
- otherwise the job waits `slow_ms` (and `cold_start_ms` on a cold model's first job) and then goes on to
  the pipeline's own processing unchanged, holding one unit of the model's capacity until it ends.
Down orchestrators still appear in discovery: the gateway's cache of orchestrator info outlives them,
and a tester must be able to find and report them.

Every routed job is recorded for `GET /gateway/served`; the webhook's polls are in `/stats` under
`gateway`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from inferswarm import livepeer_capabilities as caps
from inferswarm.emulator.gpu import CapacityExceeded
from inferswarm.emulator.http import ApiError
from inferswarm.emulator.settings import EmulatedOrchestrator, GatewaySettings, ModelOffer

log = logging.getLogger("inferswarm.emulator.gateway")

NO_ORCHESTRATORS = "no orchestrators available"
SERVICE_UNAVAILABLE = "Service Unavailable Error"
WEBHOOK_TIMEOUT_S = 3.0
"""go-livepeer's webhook client timeout."""
MAX_WEBHOOK_BYTES = 1024 * 1024
MAX_SERVED = 10_000
"""Routed jobs remembered for /gateway/served; the oldest are forgotten first."""
NODE_VERSION = "0.8.6"
RUNNER_VERSION = "0.14.1"
PRICE_PER_UNIT = 1200
WRONG_MODEL_LOADED = "inferswarm/another-model"

Key = tuple[str, str, str]
"""(orchestrator address, pipeline, model)."""


def normalized_uri(uri: str) -> str:
    return uri.strip().rstrip("/").lower()


def parse_webhook(body: bytes) -> list[str]:
    """The service URIs of a webhook answer `[{"address": uri, "score"?: float}]`, normalized. Entries
    with an empty or unparseable address are skipped, as go-livepeer skips them; ValueError when the
    answer is not such an array at all."""
    data = json.loads(body)
    if not isinstance(data, list):
        raise ValueError("webhook answer is not a JSON array")
    uris: list[str] = []
    for entry in data:
        address = entry.get("address") if isinstance(entry, dict) else None
        if not isinstance(address, str) or not address.strip():
            continue
        parts = urlsplit(address.strip())
        if parts.scheme and parts.netloc:
            uris.append(normalized_uri(address))
    return uris


def fetch_webhook(url: str) -> bytes:
    """GET the webhook (blocking: run in a thread). Non-2xx raises (urllib's HTTPError is an OSError)."""
    request = urllib.request.Request(url, method="GET", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
        body: bytes = response.read(MAX_WEBHOOK_BYTES + 1)
    if len(body) > MAX_WEBHOOK_BYTES:
        raise ValueError(f"webhook answer exceeds {MAX_WEBHOOK_BYTES} bytes")
    return body


class Gateway:
    """The emulated gateway's state: webhook cache, models' warmth and capacity in use, routed jobs."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.orchestrators = settings.orchestrators
        self.listed: list[str] | None = None
        """The webhook's last good answer (normalized service URIs); None until one arrives."""
        self.listed_at: float | None = None
        self.polls = 0
        self.poll_failures = 0
        self.last_error: str | None = None
        self.in_use: dict[Key, int] = {}
        self.warm_at: dict[Key, float] = {}
        """Monotonic time a cold model is (or will be) warm, from its first job on."""
        self.served: deque[dict[str, Any]] = deque(maxlen=MAX_SERVED)
        self.started = time.monotonic()

    # --- models

    def is_warm(self, orch: EmulatedOrchestrator, pipeline: str, model: str, offer: ModelOffer) -> bool:
        warm_at = self.warm_at.get((orch.address, pipeline, model))
        return offer.warm or (warm_at is not None and time.monotonic() >= warm_at)

    def offer(self, orch: EmulatedOrchestrator, pipeline: str, model: str) -> ModelOffer | None:
        return orch.pipelines.get(pipeline, {}).get(model)

    # --- webhook

    async def poll_webhook(self, url: str) -> None:
        self.polls += 1
        try:
            body = await asyncio.to_thread(fetch_webhook, url)
            uris = parse_webhook(body)
        except urllib.error.HTTPError as exc:
            self.failed(f"HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            self.failed(type(exc).__name__)
        else:
            self.listed, self.listed_at, self.last_error = uris, time.monotonic(), None

    def failed(self, why: str) -> None:
        # The webhook URL is not logged: it may carry a token in its query.
        self.poll_failures += 1
        self.last_error = why
        log.warning("orchestrator webhook failed (%s); keeping the last list", why)

    async def candidates(self, pipeline: str, model: str) -> list[EmulatedOrchestrator]:
        url = self.settings.webhook_url
        if url is not None:
            refresh = self.settings.webhook_refresh_s
            if self.listed_at is None or refresh == 0 or time.monotonic() - self.listed_at >= refresh:
                await self.poll_webhook(url)
        listed = None if self.listed is None else set(self.listed)
        return [
            orch
            for orch in self.orchestrators
            if (listed is None or orch.base_uri in listed) and self.offer(orch, pipeline, model) is not None
        ]

    # --- routing

    def record(
        self,
        pipeline: str,
        model: str,
        orch: EmulatedOrchestrator | None,
        status: int,
        reason: str,
    ) -> dict[str, Any]:
        job = {
            "epoch_s": round(time.time(), 3),
            "pipeline": pipeline,
            "model": model,
            "orchestrator": orch.address if orch else None,
            "service_uri": orch.service_uri if orch else None,
            "status": status,
            "reason": reason,
        }
        self.served.append(job)
        return job

    @asynccontextmanager
    async def job(self, pipeline: str, model: str) -> AsyncIterator[None]:
        """Admit one job: raises the gateway's ApiError when no orchestrator takes it, else holds one unit
        of the chosen orchestrator's capacity for the body of the block and records the outcome."""
        chosen: EmulatedOrchestrator | None = None
        refused: tuple[EmulatedOrchestrator, str] | None = None
        for orch in await self.candidates(pipeline, model):
            offer = self.offer(orch, pipeline, model)
            assert offer is not None
            if orch.failure == "down":
                continue  # unreachable: the gateway never gets a session with it
            if orch.failure == "always_503":
                refused = refused or (orch, "always_503")
            elif self.in_use.get((orch.address, pipeline, model), 0) >= offer.capacity:
                refused = refused or (orch, "insufficient capacity")
            else:
                chosen = orch
                break
        if chosen is None:
            if refused is not None:
                self.record(pipeline, model, refused[0], 503, refused[1])
                raise ApiError(503, SERVICE_UNAVAILABLE)
            await asyncio.sleep(self.settings.discovery_timeout_ms / 1000)
            self.record(pipeline, model, None, 503, NO_ORCHESTRATORS)
            raise ApiError(503, NO_ORCHESTRATORS)
        if chosen.failure == "wrong_model":
            # The runner behind it has another model loaded: its 400, which the gateway relays as is.
            message = f"pipeline configured with {WRONG_MODEL_LOADED} but called with {model}"
            self.record(pipeline, model, chosen, 400, "wrong_model")
            raise ApiError(400, message)
        async with self.holding(chosen, pipeline, model) as reason:
            status = 200
            try:
                yield
            except ApiError as exc:
                status, reason = exc.status, f"pipeline: {exc.message}"
                raise
            except CapacityExceeded:
                status, reason = 503, "pipeline: simulated GPU full"
                raise
            except BaseException:
                status, reason = 500, "pipeline: unexpected error"
                raise
            finally:
                self.record(pipeline, model, chosen, status, reason)

    @asynccontextmanager
    async def holding(self, orch: EmulatedOrchestrator, pipeline: str, model: str) -> AsyncIterator[str]:
        """One unit of the model's capacity, after the orchestrator's latency; yields the job's reason."""
        key = (orch.address, pipeline, model)
        self.in_use[key] = self.in_use.get(key, 0) + 1
        try:
            offer = self.offer(orch, pipeline, model)
            assert offer is not None
            wait_s = orch.slow_ms / 1000
            reason = "served"
            if not offer.warm:
                now = time.monotonic()
                warm_at = self.warm_at.setdefault(key, now + orch.cold_start_ms / 1000)
                if warm_at > now:
                    wait_s += warm_at - now
                    reason = "served (cold start)"
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            yield reason
        finally:
            self.in_use[key] -= 1

    # --- discovery answers

    def model_constraint(self, orch: EmulatedOrchestrator, pipeline: str, model: str) -> dict[str, Any]:
        """A ModelConstraint as protobuf's JSON writes it: false and 0 are omitted (omitempty)."""
        offer = self.offer(orch, pipeline, model)
        assert offer is not None
        constraint: dict[str, Any] = {}
        if self.is_warm(orch, pipeline, model, offer):
            constraint["warm"] = True
        constraint["capacity"] = offer.capacity
        constraint["runnerVersion"] = RUNNER_VERSION
        in_use = self.in_use.get((orch.address, pipeline, model), 0)
        if in_use:
            constraint["capacityInUse"] = in_use
        return constraint

    def network_entry(self, orch: EmulatedOrchestrator) -> dict[str, Any]:
        ids = {pipeline: caps.id_of_uri(pipeline) for pipeline in orch.pipelines}
        known = {p: cap_id for p, cap_id in ids.items() if cap_id is not None}
        words = [0] * (max(known.values(), default=0) // 64 + 1)
        for cap_id in known.values():
            words[cap_id // 64] |= 1 << (cap_id % 64)
        per_capability = {
            str(cap_id): {"models": {m: self.model_constraint(orch, p, m) for m in orch.pipelines[p]}}
            for p, cap_id in known.items()
        }
        hardware = []
        if orch.gpu is not None:
            gpu = {
                "id": "GPU-0",
                "name": orch.gpu.name,
                "major": 8,
                "minor": 9,
                "memory_free": orch.gpu.memory_total,
                "memory_total": orch.gpu.memory_total,
            }
            hardware = [
                {"pipeline": p, "model_id": m, "gpu_info": {"0": gpu}}
                for p, models in orch.pipelines.items()
                for m in models
            ]
        return {
            "address": orch.address,
            "local_address": orch.address,
            "orch_uri": orch.service_uri,
            "capabilities": {
                "bitstring": words,
                "capacities": {
                    str(cap_id): sum(offer.capacity for offer in orch.pipelines[p].values())
                    for p, cap_id in known.items()
                },
                "version": NODE_VERSION,
                "constraints": {"PerCapability": per_capability},
            },
            "price_info": {"pricePerUnit": PRICE_PER_UNIT, "pixelsPerUnit": 1},
            "capabilities_prices": [
                {"pricePerUnit": PRICE_PER_UNIT, "pixelsPerUnit": 1, "capability": cap_id, "constraint": m}
                for p, cap_id in known.items()
                for m in orch.pipelines[p]
            ],
            "hardware": hardware,
        }

    def network_capabilities(self) -> dict[str, Any]:
        return {
            "capabilities_names": caps.names(),
            "orchestrators": [self.network_entry(orch) for orch in self.orchestrators],
        }

    def legacy_capabilities(self) -> dict[str, Any]:
        orchestrators = []
        for orch in self.orchestrators:
            pipelines = []
            for pipeline, models in orch.pipelines.items():
                cap = caps.by_uri(pipeline)
                assert cap is not None  # every PipelineUri is in the table (tested)
                listed = []
                for model, offer in models.items():
                    warm = self.is_warm(orch, pipeline, model, offer)
                    status = {"Cold": 0 if warm else offer.capacity, "Warm": offer.capacity if warm else 0}
                    listed.append({"name": model, "status": status})
                pipelines.append({"type": cap.name, "models": listed})
            orchestrators.append({"address": orch.address, "pipelines": pipelines})
        return {"orchestrators": orchestrators}

    def registered(self) -> list[dict[str, Any]]:
        """eth/types.Transcoder as Go encodes it: field names as keys, big.Int numbers, big.Rat a string."""
        return [
            {
                "Address": orch.address,
                "ServiceURI": orch.service_uri,
                "LastRewardRound": 3500,
                "RewardCut": 50_000,
                "FeeShare": 500_000,
                "DelegatedStake": 10**21,
                "ActivationRound": 3000,
                "DeactivationRound": 0,
                "LastActiveStakeUpdateRound": 3500,
                "Active": orch.active,
                "Status": "Registered",
                "PricePerPixel": f"{PRICE_PER_UNIT}/1",
            }
            for orch in self.orchestrators
        ]

    def snapshot(self) -> dict[str, Any]:
        return {
            "webhook": {
                "configured": self.settings.webhook_url is not None,
                "polls": self.polls,
                "failures": self.poll_failures,
                "last_error": self.last_error,
                "last_answer": self.listed,
            },
            "jobs": len(self.served),
            "in_use": {"/".join(key): count for key, count in self.in_use.items() if count},
        }


def admit(gateway: Gateway | None, pipeline: str, model: str) -> AbstractAsyncContextManager[None]:
    """The gateway's admission of one job, or nothing when the target has no gateway section."""
    return nullcontext() if gateway is None else gateway.job(pipeline, model)


def register_gateway(app: FastAPI, gateway: Gateway) -> None:
    settings = gateway.settings
    if settings.discovery in ("both", "network"):

        @app.get("/getNetworkCapabilities")
        async def network_capabilities() -> dict[str, Any]:
            return gateway.network_capabilities()

    if settings.discovery in ("both", "legacy"):

        @app.get("/getOrchestratorAICapabilities")
        async def legacy_capabilities() -> dict[str, Any]:
            return gateway.legacy_capabilities()

    if settings.registered:

        @app.get("/registeredOrchestrators")
        async def registered() -> list[dict[str, Any]]:
            return gateway.registered()

    @app.get("/gateway/served")
    async def served() -> dict[str, Any]:
        return {"jobs": list(gateway.served)}
