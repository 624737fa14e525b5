"""The echo-mode capabilities of a BYOC worker: text-to-image, prompt-enhance and gpu-check (agent-net).

They answer the direct routes (`POST /prompt-enhance`, `POST /gpu-check`) and, behind the emulated BYOC
gateway, `POST /process/request/<route>`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inferswarm.emulator.gpu_check import gpu_check_report
from inferswarm.emulator.http import validated
from inferswarm.emulator.pipelines import PIXEL_PNG
from inferswarm.emulator.state import TargetState


class _Lenient(BaseModel):
    """Request models: typed known fields, unknown fields tolerated (as the gateway does)."""

    model_config = ConfigDict(extra="allow", strict=True)


class EchoImageRequest(_Lenient):
    prompt: str = Field(min_length=1, max_length=10_000)
    model_id: str = ""
    width: int = Field(default=512, ge=8, le=4096)
    height: int = Field(default=512, ge=8, le=4096)
    num_images_per_prompt: int = Field(default=1, ge=1, le=8)
    seed: int | None = None


class PromptEnhanceRequest(_Lenient):
    prompt: str = Field(min_length=1, max_length=10_000)


class GpuCheckRequest(_Lenient):
    agent_id: str | None = None


async def echo_text_to_image(state: TargetState, body: bytes) -> dict[str, Any]:
    request: EchoImageRequest = validated(body, EchoImageRequest)
    service_ms = await state.work("text-to-image")
    state.maybe_fail("text-to-image")
    seed = request.seed if request.seed is not None else state.rng.randrange(2**32)
    images = [
        {"url": f"data:image/png;base64,{PIXEL_PNG}", "seed": seed + i, "nsfw": False}
        for i in range(request.num_images_per_prompt)
    ]
    return {
        "status": "success",
        "capability": "text-to-image",
        "mode": "echo",
        "echo": request.model_dump(),
        "images": images,
        "service_time_ms": service_ms,
        "timestamp": round(time.time(), 3),
    }


async def echo_prompt_enhance(state: TargetState, body: bytes) -> dict[str, Any]:
    request: PromptEnhanceRequest = validated(body, PromptEnhanceRequest)
    service_ms = await state.work("prompt-enhance")
    state.maybe_fail("prompt-enhance")
    return {
        "status": "success",
        "capability": "prompt-enhance",
        "mode": "echo",
        "prompt": request.prompt,
        "enhanced_prompt": f"{request.prompt}, highly detailed, sharp focus, studio lighting",
        "service_time_ms": service_ms,
        "timestamp": round(time.time(), 3),
    }


async def gpu_check(state: TargetState, body: bytes, routed_via: str | None = None) -> dict[str, Any]:
    request: GpuCheckRequest = validated(body, GpuCheckRequest, optional=True)
    await state.work("gpu-check")
    state.maybe_fail("gpu-check")
    report = await asyncio.to_thread(gpu_check_report)  # NVML calls block; keep them off the event loop
    if request.agent_id is not None:
        report["agent_id"] = request.agent_id
    if routed_via is not None:
        report.setdefault("system_info", {})["routed_via"] = routed_via
    return report


ECHO_ROUTES = {
    "text-to-image": echo_text_to_image,
    "prompt-enhance": echo_prompt_enhance,
    "gpu-check": gpu_check,
    "agent-net": gpu_check,
}
