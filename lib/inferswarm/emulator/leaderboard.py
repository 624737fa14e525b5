"""The Livepeer leaderboard's stats API (livepeer/leaderboard-serverless), emulated.

- `GET /api/regions` -> `{"regions": [{id, name, type}]}` from the settings.
- `POST /api/post_stats`: `Authorization` must be hex(HMAC-SHA256(key=secret, msg=the raw body)), compared
  in constant time, else 403 `{"error": "request can not be authenticated"}`. The body is decoded as the
  Go handler decodes it (a field of the wrong JSON type is a 400 in encoding/json's words; unknown fields
  and nulls are ignored), then its region must be a known id (400 `{"error": "invalid region"}`). The
  first `fail_first` valid posts get a 500 text/plain, as a database error does (http.Error). Otherwise
  200 text/plain `ok`, and the stat is kept with `received_epoch_s` and `body_sha256`.
- `GET /api/raw_stats` -> `{"stats": [...]}`, optionally filtered by orchestrator, pipeline, model, region.
Errors are the leaderboard's `{"error": "<text>"}`, not the gateway's nested shape. The secret (from the
variable `secret_env` names) never appears in a log line or an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from inferswarm.emulator.http import ApiError, read_body
from inferswarm.emulator.settings import LeaderboardSettings

log = logging.getLogger("inferswarm.emulator.leaderboard")

MAX_STAT_BYTES = 1024 * 1024
"""A posted stat is refused (413) beyond this; real ones are a few KiB."""
UNAUTHENTICATED = "request can not be authenticated"

# Go's field types as encoding/json checks them: name -> (accepted Python types, Go type for the message).
STR, BOOL, FLOAT, INT, ERRORS = "string", "bool", "float64", "int64", "[]models.Error"
AI_FIELDS = {
    "region": STR,
    "orchestrator": STR,
    "pipeline": STR,
    "model": STR,
    "model_is_warm": BOOL,
    "success_rate": FLOAT,
    "round_trip_time": FLOAT,
    "errors": ERRORS,
    "timestamp": INT,
    "input_parameters": STR,
    "response_payload": STR,
}
TRANSCODING_FIELDS = {
    "seg_duration": FLOAT,
    "segments_sent": INT,
    "segments_received": INT,
    "upload_time": FLOAT,
    "download_time": FLOAT,
    "transcode_time": FLOAT,
}
ERROR_FIELDS = {"error_code": STR, "message": STR, "count": INT}


def json_type(value: Any) -> str:
    """encoding/json's name for a JSON value's type, as its UnmarshalTypeError says it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def fits(value: Any, go_type: str) -> bool:
    if value is None:
        return True  # a JSON null leaves a Go field at its zero value
    if go_type == STR:
        return isinstance(value, str)
    if go_type == BOOL:
        return isinstance(value, bool)
    if go_type == FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if go_type == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, list)


def type_problem(stat: dict[str, Any]) -> str | None:
    """The Go decoder's error for the first field of the wrong type, or None when the stat decodes."""
    for name, go_type in (AI_FIELDS | TRANSCODING_FIELDS).items():
        if name in stat and not fits(stat[name], go_type):
            kind = json_type(stat[name])
            if go_type == INT and kind == "number":
                kind = f"number {stat[name]}"  # a fraction where Go wants an int64
            return f"json: cannot unmarshal {kind} into Go struct field Stats.{name} of type {go_type}"
    for entry in stat.get("errors") or []:
        if not isinstance(entry, dict):
            kind = json_type(entry)
            return f"json: cannot unmarshal {kind} into Go struct field Stats.errors of type models.Error"
        for name, go_type in ERROR_FIELDS.items():
            if name in entry and not fits(entry[name], go_type):
                kind, field = json_type(entry[name]), f"Error.errors.{name}"
                return f"json: cannot unmarshal {kind} into Go struct field {field} of type {go_type}"
    return None


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Leaderboard:
    def __init__(self, settings: LeaderboardSettings) -> None:
        self.settings = settings
        self.key = os.environ.get(settings.secret_env, "").encode()
        if not self.key:
            log.warning(
                "leaderboard: %s is not set; posts are checked against the empty key (local use only)",
                settings.secret_env,
            )
        self.region_ids = {region.id for region in settings.regions}
        self.stats: deque[dict[str, Any]] = deque(maxlen=settings.max_stats)
        self.posts = 0
        self.refused: dict[int, int] = {}
        self.failed_on_purpose = 0

    def authentic(self, signature: str, body: bytes) -> bool:
        expected = hmac.new(self.key, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature.strip().encode(), expected.encode())

    def refuse(self, status: int, message: str) -> JSONResponse:
        self.refused[status] = self.refused.get(status, 0) + 1
        return error(status, message)

    async def post(self, request: Request) -> Response:
        self.posts += 1
        try:
            body = await read_body(request, MAX_STAT_BYTES)
        except ApiError as exc:
            return self.refuse(exc.status, exc.message)
        if not self.authentic(request.headers.get("authorization", ""), body):
            return self.refuse(403, UNAUTHENTICATED)
        try:
            stat = json.loads(body)
        except ValueError as exc:  # UnicodeDecodeError is one
            return self.refuse(400, f"invalid JSON: {str(exc)[:200]}")
        if not isinstance(stat, dict):
            return self.refuse(
                400, f"json: cannot unmarshal {json_type(stat)} into Go value of type models.Stats"
            )
        problem = type_problem(stat)
        if problem is not None:
            return self.refuse(400, problem)
        if stat.get("region") not in self.region_ids:
            return self.refuse(400, "invalid region")
        if self.failed_on_purpose < self.settings.fail_first:
            self.failed_on_purpose += 1
            # http.Error: text/plain with a trailing newline, like a failed database insert.
            return PlainTextResponse("error inserting stats (emulated)\n", status_code=500)
        received = {
            "received_epoch_s": round(time.time(), 3),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        self.stats.append(stat | received)
        return PlainTextResponse("ok")

    def raw_stats(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        return [s for s in self.stats if all(s.get(k) == v for k, v in filters.items())]

    def snapshot(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "stored": len(self.stats),
            "refused": {str(status): n for status, n in sorted(self.refused.items())},
            "failed_on_purpose": self.failed_on_purpose,
        }


FILTERS = ("orchestrator", "pipeline", "model", "region")


def register_leaderboard(app: FastAPI, board: Leaderboard) -> None:
    @app.get("/api/regions")
    async def regions() -> dict[str, Any]:
        return {"regions": [region.model_dump() for region in board.settings.regions]}

    @app.post("/api/post_stats")
    async def post_stats(request: Request) -> Response:
        return await board.post(request)

    @app.get("/api/raw_stats")
    async def raw_stats(request: Request) -> dict[str, Any]:
        filters = {k: v for k, v in request.query_params.items() if k in FILTERS}
        return {"stats": board.raw_stats(filters)}
