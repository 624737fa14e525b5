"""go-livepeer's AI capability table: id, display name, pipeline URI.

One table for the gateway emulation (emulator.gateway) and the orchestrator tester, which both have to
speak go-livepeer's numbering: discovery answers key capabilities by id (`"27"`), the legacy
`/getOrchestratorAICapabilities` names them by display name ("Text to image"), jobs go to `POST /<uri>`.
Ids and names are go-livepeer's (`core/capabilities.go`, `CapabilityNameLookup`). No web framework here:
this module is imported by the tester too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capability:
    id: int
    name: str
    """go-livepeer's display name (`CapabilityNameLookup`), as discovery answers carry it."""
    uri: str | None
    """The batch pipeline's path without the slash (`POST /<uri>`); None for capabilities with none."""


CAPABILITIES: tuple[Capability, ...] = (
    Capability(27, "Text to image", "text-to-image"),
    Capability(28, "Image to image", "image-to-image"),
    Capability(29, "Image to video", "image-to-video"),
    Capability(30, "Upscale", "upscale"),
    Capability(31, "Audio to text", "audio-to-text"),
    Capability(32, "Segment anything 2", "segment-anything-2"),
    Capability(33, "Llm", "llm"),
    Capability(34, "Image to text", "image-to-text"),
    Capability(35, "Live video to video", None),  # a live (trickle) route, not a batch pipeline
    Capability(36, "Text to speech", "text-to-speech"),
    Capability(37, "byoc", None),  # generic capabilities go through /process/request/, named by header
)

ALIASES: dict[str, int] = {"large language model": 33}
"""Other names configs use for a capability (seed 002's tester config calls the LLM this)."""

_BY_ID = {cap.id: cap for cap in CAPABILITIES}
_BY_NAME = {cap.name.lower(): cap for cap in CAPABILITIES} | {
    alias: _BY_ID[cap_id] for alias, cap_id in ALIASES.items()
}
_BY_URI = {cap.uri: cap for cap in CAPABILITIES if cap.uri is not None}


def by_id(cap_id: int) -> Capability | None:
    return _BY_ID.get(cap_id)


def by_name(name: str) -> Capability | None:
    """The capability of a display name, case-insensitively ("text to image", "LLM", an alias)."""
    return _BY_NAME.get(name.strip().lower())


def by_uri(uri: str) -> Capability | None:
    return _BY_URI.get(uri.strip("/"))


def uri_of_id(cap_id: int) -> str | None:
    cap = _BY_ID.get(cap_id)
    return cap.uri if cap else None


def id_of_uri(uri: str) -> int | None:
    cap = by_uri(uri)
    return cap.id if cap else None


def names() -> dict[str, str]:
    """`capabilities_names` of `/getNetworkCapabilities`: id as a string -> display name."""
    return {str(cap.id): cap.name for cap in CAPABILITIES}
