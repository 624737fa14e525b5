"""Livepeer capability ids, go-livepeer's display names and the gateway's pipeline URIs: one table.

Discovery reports capabilities by id (`/getNetworkCapabilities`) or by display name (the job-tester
fork's `/getOrchestratorAICapabilities`); jobs are sent to pipeline URIs. Ids and names are go-livepeer's
(`core/capabilities.go`); `uri` is None for capabilities that are not batch pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capability:
    id: int
    name: str
    uri: str | None


CAPABILITIES: tuple[Capability, ...] = (
    Capability(27, "Text to image", "text-to-image"),
    Capability(28, "Image to image", "image-to-image"),
    Capability(29, "Image to video", "image-to-video"),
    Capability(30, "Upscale", "upscale"),
    Capability(31, "Audio to text", "audio-to-text"),
    Capability(32, "Segment anything 2", "segment-anything-2"),
    Capability(33, "Llm", "llm"),
    Capability(34, "Image to text", "image-to-text"),
    Capability(35, "Live video to video", None),
    Capability(36, "Text to speech", "text-to-speech"),
    Capability(37, "byoc", None),
)
ALIASES = {"large language model": "llm"}
"""Other display names in use (seed 002's config calls the LLM pipeline "Large language model")."""


def by_id(capability_id: int) -> Capability | None:
    return next((c for c in CAPABILITIES if c.id == capability_id), None)


def by_name(name: str) -> Capability | None:
    lowered = name.strip().lower()
    lowered = ALIASES.get(lowered, lowered)
    return next((c for c in CAPABILITIES if lowered in (c.name.lower(), c.uri)), None)


def by_uri(uri: str) -> Capability | None:
    return next((c for c in CAPABILITIES if c.uri == uri), None)
