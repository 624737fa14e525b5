"""Which orchestrators the gateway knows, and which pipelines and models each one serves.

Two shapes exist (contracts: PROTOCOLS.md section 2). Current go-livepeer answers
`GET /getNetworkCapabilities` with capability ids and `PerCapability[id].models[model].warm`, its proto
fields `omitempty` (a cold model has no `warm`, a zero capacity no `capacity`). The job-tester fork answers
`GET /getOrchestratorAICapabilities` with display names and Warm/Cold counts, and has no service URIs:
those come from `GET /registeredOrchestrators` (Go field names; only `Active` entries with a
`ServiceURI`). Whatever cannot be tested is skipped with a notice, never silently.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from inferswarm import livepeer_capabilities
from inferswarm.orchestrators.config import Filters, OrchestratorsConfig, redact

NETWORK = "getNetworkCapabilities"
LEGACY = "getOrchestratorAICapabilities"
REGISTERED = "registeredOrchestrators"
MAX_DISCOVERY_BYTES = 64 * 1024 * 1024


class DiscoveryError(Exception):
    """The gateway could not say which orchestrators exist (one line)."""


@dataclass(frozen=True)
class ModelInfo:
    warm: bool
    capacity: int | None = None


@dataclass
class Orchestrator:
    address: str
    service_uri: str
    pipelines: dict[str, dict[str, ModelInfo]] = field(default_factory=dict)
    """Pipeline URI -> model -> what the orchestrator says of it."""
    hardware: list[Any] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """One (orchestrator, pipeline, model) to test."""

    orchestrator: str
    service_uri: str
    pipeline: str
    model: str
    warm: bool


@dataclass
class Discovery:
    source: str
    orchestrators: list[Orchestrator]
    notices: list[str] = field(default_factory=list)


def _pipeline_uri(capability_id: str) -> tuple[str | None, str]:
    """(pipeline URI or None, how to name the capability in a notice)."""
    try:
        known = livepeer_capabilities.by_id(int(capability_id))
    except ValueError:
        known = None
    if known is None:
        return None, f"capability {capability_id!r} (unknown to inferswarm)"
    return known.uri, f"capability {known.id} ({known.name})"


def parse_network(document: Any) -> Discovery:
    """`/getNetworkCapabilities` (current go-livepeer) as orchestrators with their pipelines and models."""
    if not isinstance(document, dict) or not isinstance(document.get("orchestrators"), list):
        raise DiscoveryError(f"{NETWORK}: the answer has no `orchestrators` list")
    found: list[Orchestrator] = []
    notices: list[str] = []
    for index, entry in enumerate(document["orchestrators"]):
        if not isinstance(entry, dict):
            notices.append(f"{NETWORK}: orchestrators[{index}] is not an object; skipped")
            continue
        address = str(entry.get("address") or entry.get("local_address") or "").lower()
        orchestrator = Orchestrator(address, str(entry.get("orch_uri") or ""))
        name = address or orchestrator.service_uri or f"orchestrators[{index}]"
        capabilities = entry.get("capabilities") or {}
        constraints = capabilities.get("constraints") if isinstance(capabilities, dict) else None
        per_capability = (constraints or {}).get("PerCapability") if isinstance(constraints, dict) else None
        for capability_id, constraint in (per_capability or {}).items():
            uri, label = _pipeline_uri(str(capability_id))
            if uri is None:
                notices.append(f"{name}: {label} is not a batch pipeline; skipped")
                continue
            models = constraint.get("models") if isinstance(constraint, dict) else None
            for model, info in (models or {}).items():
                info = info if isinstance(info, dict) else {}
                capacity = info.get("capacity", 0)  # omitempty: absent means 0
                orchestrator.pipelines.setdefault(uri, {})[str(model)] = ModelInfo(
                    warm=info.get("warm") is True,
                    capacity=capacity
                    if isinstance(capacity, int) and not isinstance(capacity, bool)
                    else None,
                )
        hardware = entry.get("hardware")
        orchestrator.hardware = hardware if isinstance(hardware, list) else []
        if not address:
            notices.append(f"{name}: no address; skipped")
            continue
        found.append(orchestrator)
    return Discovery(NETWORK, found, notices)


def parse_legacy(document: Any, registered: Any, names: dict[str, str]) -> Discovery:
    """The fork's `/getOrchestratorAICapabilities`, service URIs from `/registeredOrchestrators`.

    `names`: configured display name (lower case) -> pipeline URI, tried before the built-in table.
    `registered` None: the registry could not be read (orchestrators keep an empty service URI).
    """
    if not isinstance(document, dict) or not isinstance(document.get("orchestrators"), list):
        raise DiscoveryError(f"{LEGACY}: the answer has no `orchestrators` list")
    uris: dict[str, str] = {}
    notices: list[str] = []
    if isinstance(registered, list):
        for entry in registered:
            if isinstance(entry, dict) and entry.get("Active") is True and entry.get("ServiceURI"):
                uris[str(entry.get("Address", "")).lower()] = str(entry["ServiceURI"])
    found: list[Orchestrator] = []
    for index, entry in enumerate(document["orchestrators"]):
        if not isinstance(entry, dict) or not entry.get("address"):
            notices.append(f"{LEGACY}: orchestrators[{index}] has no address; skipped")
            continue
        address = str(entry["address"]).lower()
        if registered is not None and address not in uris:
            notices.append(f"{address}: not an active registered orchestrator with a service URI; skipped")
            continue
        orchestrator = Orchestrator(address, uris.get(address, ""))
        for pipeline in entry.get("pipelines") or []:
            if not isinstance(pipeline, dict):
                continue
            kind = str(pipeline.get("type", ""))
            uri = names.get(kind.lower())
            if uri is None:
                known = livepeer_capabilities.by_name(kind)
                uri = known.uri if known else None
            if uri is None:
                notices.append(
                    f"{address}: pipeline {kind!r} is not a batch pipeline inferswarm knows; skipped"
                )
                continue
            for model in pipeline.get("models") or []:
                if not isinstance(model, dict) or not model.get("name"):
                    continue
                status = model.get("status")
                warm = status.get("Warm", 0) if isinstance(status, dict) else 0
                orchestrator.pipelines.setdefault(uri, {})[str(model["name"])] = ModelInfo(
                    warm=isinstance(warm, int | float) and warm > 0
                )
        found.append(orchestrator)
    return Discovery(LEGACY, found, notices)


def get_json(url: str, timeout_s: float) -> tuple[int, Any]:
    """(HTTP status, parsed JSON or None). Raises DiscoveryError when nothing answered."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read(MAX_DISCOVERY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DiscoveryError(f"{redact(url)}: no answer ({reason})") from None
    if len(raw) > MAX_DISCOVERY_BYTES:
        raise DiscoveryError(f"{redact(url)}: answer larger than {MAX_DISCOVERY_BYTES // 2**20} MiB")
    try:
        return status, json.loads(raw)
    except ValueError:
        raise DiscoveryError(f"{redact(url)}: the answer is not JSON") from None


def discover(config: OrchestratorsConfig) -> Discovery:
    base = config.gateway.discovery_url
    timeout = config.gateway.discovery_timeout_s
    mode = config.gateway.discovery
    notices: list[str] = []
    if mode in ("auto", "network"):
        status, document = get_json(f"{base}/{NETWORK}", timeout)
        if status == 200:
            return parse_network(document)
        if mode == "network":
            raise DiscoveryError(f"{redact(base)}/{NETWORK}: HTTP {status}")
        notices.append(f"{NETWORK}: HTTP {status}; falling back to {LEGACY}")
    status, document = get_json(f"{base}/{LEGACY}", timeout)
    if status != 200:
        raise DiscoveryError(f"{redact(base)}/{LEGACY}: HTTP {status}")
    registered: Any = None
    try:
        reg_status, reg_document = get_json(f"{base}/{REGISTERED}", timeout)
    except DiscoveryError as exc:
        notices.append(f"{REGISTERED}: {exc}")
    else:
        if reg_status == 200 and isinstance(reg_document, list):
            registered = reg_document
        else:
            notices.append(f"{REGISTERED}: HTTP {reg_status} (an off-chain gateway has no registry)")
    found = parse_legacy(document, registered, config.display_names())
    found.notices[:0] = notices
    return found


def plan_cells(config: OrchestratorsConfig, found: Discovery) -> tuple[list[Cell], list[dict[str, str]]]:
    """The cells to test, in a stable order (orchestrator, pipeline, model), and what was filtered out."""
    filters: Filters = config.filters
    cells: list[Cell] = []
    dropped: list[dict[str, str]] = []

    def drop(o: Orchestrator, pipeline: str, model: str, reason: str) -> None:
        dropped.append({"orchestrator": o.address, "pipeline": pipeline, "model": model, "reason": reason})

    pinning = config.webhook.enabled
    for o in sorted(found.orchestrators, key=lambda o: o.address):
        if not filters.orchestrators.allows(o.address, o.service_uri):
            drop(o, "", "", "filters.orchestrators")
            continue
        if pinning and not o.service_uri and o.address not in config.gateway.orchestrator_urls:
            drop(o, "", "", "no service URI to pin the gateway to")
            continue
        for pipeline in sorted(o.pipelines):
            if config.pipeline(pipeline) is None:
                drop(o, pipeline, "", "pipeline not in the config's pipelines")
                continue
            if not filters.pipelines.allows(pipeline):
                drop(o, pipeline, "", "filters.pipelines")
                continue
            for model, info in sorted(o.pipelines[pipeline].items()):
                if not filters.models.allows(model):
                    drop(o, pipeline, model, "filters.models")
                elif filters.warm_only and not info.warm:
                    drop(o, pipeline, model, "filters.warm_only (cold)")
                else:
                    cells.append(Cell(o.address, o.service_uri, pipeline, model, info.warm))
    return cells, dropped
