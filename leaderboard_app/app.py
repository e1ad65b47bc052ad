"""Starlette app: pages, JSON API, the live stream (WebSocket ``/ws``) and contestant uploads.

Run: ``uvicorn leaderboard_app.app:app --port 8000`` (``quantcraft up`` does it). State comes
only from the Dagster instance (``DAGSTER_HOME``) and the bucket; nothing is stored here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import dagster as dg
import orjson
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.websockets import WebSocket, WebSocketDisconnect

from quantcraft_dagster.core.binary import MAX_BINARY_BYTES, Rejected, check_size
from quantcraft_dagster.core.intake import FILENAME_RE, PREFIX

from . import contestants
from .live import Board, Follower, Hub, Tail

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")  # autoescape on for .html
UPLOAD_SLACK = 64 * 1024  # multipart headers around the file


def _json(data, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get("qc_token") or request.query_params.get("token")


async def leaderboard_page(request: Request) -> Response:
    return templates.TemplateResponse(
        request, "leaderboard.html", {"dagster_url": request.app.state.dagster_url}
    )


async def submission_page(request: Request) -> Response:
    partition = request.path_params["partition"]
    if request.app.state.board.submission(partition) is None:
        raise HTTPException(404, "no such submission")
    return templates.TemplateResponse(
        request, "submission.html", {"partition": partition, "dagster_url": request.app.state.dagster_url}
    )


async def upload_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "upload.html", {})


async def api_leaderboard(request: Request) -> Response:
    board: Board = request.app.state.board
    return _json({"leaderboard": board.leaderboard(), "recent": board.recent()})


async def api_submission(request: Request) -> Response:
    state = request.app.state
    partition = request.path_params["partition"]
    data = state.board.submission(partition)
    if data is None:
        return _error(404, "no such submission")
    with contextlib.suppress(Exception):  # per-phase figures and windows: the metrics asset's value
        phases = orjson.loads(
            await asyncio.to_thread(state.bucket.get_bytes, f"assets/metrics/{partition}.json")
        )
        data["metrics"] = {"phases": phases}
    owner = contestants.authenticate(state.bucket, _token(request))
    contestant = (data["score"] or {}).get("contestant") or data["status"].get("contestant")
    data["private"] = None
    if owner and owner == contestant:
        with contextlib.suppress(Exception):
            verdict = orjson.loads(state.bucket.get_bytes(f"assets/raw_telemetry/{partition}.json"))
            data["private"] = {k: verdict.get(k) for k in ("divergences", "stderr_tail", "protocol_errors",
                                                            "book_problems", "reason")}  # fmt: skip
    data["dagster_url"] = f"{state.dagster_url}/assets/score?partition={partition}"
    return _json(data)


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise HTTPException(413, f"upload over the {MAX_BINARY_BYTES // 2**20} MiB limit")
        yield chunk


async def api_upload(request: Request) -> Response:
    """Multipart ``file`` (+ optional ``name``) with a contestant token; lands in their prefix."""
    state = request.app.state
    owner = contestants.authenticate(state.bucket, _token(request))
    if owner is None:
        return _error(401, "a valid contestant token is required (Authorization: Bearer TOKEN)")
    limit = MAX_BINARY_BYTES + UPLOAD_SLACK
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _error(413, f"upload over the {MAX_BINARY_BYTES // 2**20} MiB limit")
    try:
        parser = MultiPartParser(request.headers, _capped(request.stream(), limit), max_part_size=1024)
        form = await parser.parse()
    except HTTPException as exc:
        return _error(exc.status_code, exc.detail)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return _error(400, "multipart field 'file' with the engine binary is required")
    name = str(form.get("name") or upload.filename or "engine").rsplit("/", 1)[-1]
    if not FILENAME_RE.match(name):
        return _error(400, "file name must be 1-128 of A-Z a-z 0-9 . _ + - (starting alphanumeric)")
    head = await upload.read(4)
    try:
        check_size(upload.size or 0)
        if head != b"\x7fELF":
            raise Rejected("not an ELF file: upload the compiled Linux x86-64 engine")
    except Rejected as exc:
        return _error(400, str(exc))
    await upload.seek(0)
    key = f"{PREFIX}{owner}/{name}"
    data = await upload.read()
    info = await asyncio.to_thread(state.bucket.put_bytes, key, data)
    return _json({"key": key, "size": info.size, "contestant": owner}, 201)


async def ws_stream(websocket: WebSocket) -> None:
    """Push every change; a reader task notices a closed browser at once (not at the next send)."""
    state = websocket.app.state
    await websocket.accept()
    queue = state.hub.subscribe()

    async def until_closed() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await websocket.receive_text()

    closed = asyncio.create_task(until_closed())
    try:
        board: Board = state.board
        init = {"type": "init", "leaderboard": board.leaderboard(), "recent": board.recent()}
        await websocket.send_text(orjson.dumps(init).decode())
        while not closed.done():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await websocket.send_text(getter.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        closed.cancel()
        state.hub.unsubscribe(queue)


def create_app(dagster_home: str | None = None, bucket=None, dagster_url: str | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from resources import BucketResource

        home = dagster_home or os.environ["DAGSTER_HOME"]
        instance = dg.DagsterInstance.from_config(home)
        app.state.bucket = bucket or BucketResource.from_env().client()
        app.state.board = Board()
        app.state.hub = Hub()
        app.state.dagster_url = dagster_url or os.environ.get(
            "QUANTCRAFT_DAGSTER_URL", "http://127.0.0.1:3000"
        )
        poll_s = float(os.environ.get("QUANTCRAFT_LEADERBOARD_POLL_S", "0.2"))  # well inside the 1 s promise
        follower = Follower(Tail(instance, app.state.board), app.state.hub, interval=poll_s)
        await asyncio.to_thread(follower.poll)  # rebuild the whole state before serving
        task = asyncio.create_task(follower.run())
        try:
            yield
        finally:
            follower.stop()
            await task
            instance.dispose()

    routes = [
        Route("/", leaderboard_page),
        Route("/submissions/{partition}", submission_page),
        Route("/upload", upload_page),
        Route("/api/leaderboard", api_leaderboard),
        Route("/api/submissions", api_upload, methods=["POST"]),
        Route("/api/submissions/{partition}", api_submission),
        WebSocketRoute("/ws", ws_stream),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def app_factory() -> Starlette:
    """For ``uvicorn --factory leaderboard_app.app:app_factory``."""
    return create_app()
