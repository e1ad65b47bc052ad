"""Starlette app: pages, JSON API, the live stream (WebSocket ``/ws``) and contestant uploads.

Run: ``uvicorn --factory leaderboard_app.app:app_factory --port 8000`` (``quantcraft up`` does it).
State comes only from the Dagster instance (``DAGSTER_HOME``) and the bucket; nothing is stored here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.websockets import WebSocket, WebSocketDisconnect

from quantcraft_dagster import settings
from quantcraft_dagster.core import keys
from quantcraft_dagster.core.binary import HEADER_BYTES, MAX_BINARY_BYTES, Rejected, check_header, check_size
from quantcraft_dagster.core.intake import FILENAME_RE, IntakeCursor, scan
from quantcraft_dagster.core.limits import Refusal, check
from quantcraft_dagster.lifecycle import METRICS_ASSET, PARTITIONS, VERDICT_ASSET, Load, judging_load
from quantcraft_dagster.storage.bucket import Bucket, from_settings

from . import contestants
from .live import Board, Follower, Hub

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")  # autoescape on for .html
RETRY_AFTER_S = 10
UPLOAD_LIMIT = MAX_BINARY_BYTES + 64 * 1024  # the file plus the multipart headers around it
PRIVATE = ("divergences", "book_problems", "protocol_errors", "stderr_tail")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


def _token(request: Request) -> str | None:
    """From the Authorization header or the cookie only: a URL ends up in logs and histories."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get("qc_token")


async def _owner(request: Request) -> str | None:
    return await run_in_threadpool(contestants.authenticate, request.app.state.bucket, _token(request))


def _stored_json(bucket: Bucket, key: str) -> Any:
    """An asset value from the bucket, or None while the asset has not been written."""
    return orjson.loads(bucket.get_bytes(key)) if bucket.head(key) else None


async def _final_standings(request: Request) -> dict | None:
    """The ``final_standings`` asset's value once the finals have run: the final table."""
    return await run_in_threadpool(_stored_json, request.app.state.bucket, keys.FINAL_STANDINGS)


async def leaderboard_page(request: Request) -> Response:
    return templates.TemplateResponse(
        request,
        "leaderboard.html",
        {
            "dagster_url": request.app.state.dagster_url,
            "finals": await _final_standings(request),
            "scoring": request.app.state.board.scoring,
        },
    )


async def submission_page(request: Request) -> Response:
    partition = request.path_params["partition"]
    if request.app.state.board.state(partition) is None:
        raise HTTPException(404, "no such submission")
    context = {
        "partition": partition,
        "dagster_url": request.app.state.dagster_url,
        "scoring": request.app.state.board.scoring,
    }
    return templates.TemplateResponse(request, "submission.html", context)


async def upload_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "upload.html", {})


async def api_leaderboard(request: Request) -> Response:
    board: Board = request.app.state.board
    finals = await _final_standings(request)
    return _json(
        {
            "leaderboard": board.leaderboard(),
            "recent": board.recent(),
            "finals": finals,
            "scoring": board.scoring,
        }
    )


async def api_submission(request: Request) -> Response:
    """Public status, score and figures; the verdict's private diagnostics for the owner only."""
    state = request.app.state
    partition = request.path_params["partition"]
    data = state.board.submission(partition)
    if data is None:
        return _error(404, "no such submission")
    metrics_key = keys.asset_value(METRICS_ASSET.path, partition)
    phases = await run_in_threadpool(_stored_json, state.bucket, metrics_key)
    if phases is not None:  # per-phase figures and windows: the metrics asset's value
        data["metrics"] = {"phases": phases}
    data["private"] = None
    if await _owner(request) == data["status"]["contestant"]:
        key = keys.asset_value(VERDICT_ASSET.path, partition)
        verdict = await run_in_threadpool(_stored_json, state.bucket, key)
        data["private"] = {k: verdict.get(k) for k in PRIVATE} if verdict else None
    data["dagster_url"] = f"{state.dagster_url}/assets/score?partition={partition}"
    return _json(data)


def upload_refusal(instance: dg.DagsterInstance, bucket: Bucket, owner: str, now: float) -> Refusal | None:
    """Why ``owner`` may not upload now, under the contest's limits (``core.limits``), or None.

    Counted from state that outlives this process: the owner's judging runs in the instance, plus
    their objects in the bucket that the submission sensor has not taken yet (it looks every few
    seconds; an object it has taken has a partition). The sensor applies the same rule to
    whatever reaches the bucket by other roads.
    """
    limits = settings.current().upload_limits()
    if not limits.enabled:
        return None
    load = judging_load(instance, now - limits.window_s, owner).get(owner, Load())
    listed = scan(bucket.list(keys.submission(owner)), IntakeCursor()).new
    waiting = [
        sub.modified for sub in listed if not instance.has_dynamic_partition(PARTITIONS, sub.partition_key)
    ]
    return check(limits, now, load.uploads + waiting, load.pending + len(waiting))


class _SpooledParser(MultiPartParser):
    """Starlette's parser with the file spooled to disk past 64 KiB instead of 1 MiB."""

    spool_max_size = 64 * 1024


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise HTTPException(413, f"upload over the {MAX_BINARY_BYTES // 2**20} MiB limit")
        yield chunk


async def api_upload(request: Request) -> Response:
    """Multipart ``file`` (+ optional ``name``) with a contestant token; lands in their prefix.

    The body streams to a temporary file and from there to the bucket in bounded chunks, so an
    upload in flight costs a small constant of memory whatever its size. The refusals that need no
    body (declared size, uploads in flight, token) come before a byte of it is read: a client that
    sends ``Expect: 100-continue`` hears them without sending the file. One contestant's uploads
    go one at a time, so two at once cannot both pass the upload limits.
    """
    state = request.app.state
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > UPLOAD_LIMIT:
        return _error(413, f"upload over the {MAX_BINARY_BYTES // 2**20} MiB limit")
    if state.uploads.locked():
        message = f"{state.uploads_in_flight} uploads are in progress, the most this server takes at once"
        return _error(503, f"{message}; retry in {RETRY_AFTER_S} s", {"Retry-After": str(RETRY_AFTER_S)})
    async with state.uploads:
        owner = await _owner(request)
        if owner is None:
            return _error(401, "a valid contestant token is required (Authorization: Bearer TOKEN)")
        async with state.owner_locks.setdefault(owner, asyncio.Lock()):
            refusal = await run_in_threadpool(
                upload_refusal, state.instance, state.bucket, owner, time.time()
            )
            if refusal is not None:
                wait = refusal.retry_after_s
                return _json(
                    {"error": f"{refusal.reason}; retry in {wait} s", "reason": refusal.reason,
                     "retry_after_s": wait, "limits": settings.current().upload_limits().describe()},
                    429,
                    {"Retry-After": str(wait)},
                )  # fmt: skip
            return await _receive(request, owner)


async def _receive(request: Request, owner: str) -> Response:
    """The multipart body, spooled to disk, then stored under the owner's prefix."""
    parser = _SpooledParser(
        request.headers,
        _capped(request.stream(), UPLOAD_LIMIT),
        max_files=1,
        max_fields=1,
        max_part_size=1024,
    )
    try:
        form = await parser.parse()
    except HTTPException as exc:
        return _error(exc.status_code, exc.detail)
    except MultiPartException as exc:
        return _error(400, exc.message)
    try:
        return await _store(request.app.state.bucket, owner, form)
    finally:
        await form.close()


async def _store(bucket: Bucket, owner: str, form: FormData) -> Response:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return _error(400, "multipart field 'file' with the engine binary is required")
    name = str(form.get("name") or upload.filename or "engine").rsplit("/", 1)[-1]
    if not FILENAME_RE.match(name):
        return _error(400, "file name must be 1-128 of A-Z a-z 0-9 . _ + - (starting alphanumeric)")
    try:
        check_size(upload.size or 0)
        check_header(await upload.read(HEADER_BYTES))
    except Rejected as exc:
        return _error(400, str(exc))
    await upload.seek(0)
    key = keys.submission(owner, name)
    info = await run_in_threadpool(bucket.put_stream, key, upload.file)
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


def create_app(
    dagster_home: str | None = None,
    bucket: Bucket | None = None,
    dagster_url: str | None = None,
    uploads_in_flight: int | None = None,
) -> Starlette:
    """Arguments override the settings (``quantcraft_dagster.settings``), read when the app starts.

    Each upload in flight holds a few hundred KiB of memory and up to 50 MiB of temporary disk;
    the instance is polled well inside the promise of a score on screen within 1 s.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        configured = settings.current()
        home = dagster_home or configured.dagster_home
        if not home:
            raise RuntimeError("DAGSTER_HOME must name the Dagster instance's folder")
        instance = dg.DagsterInstance.from_config(home)
        # The pipeline's bucket, configured by the same environment (``quantcraft up`` passes it on).
        app.state.bucket = bucket if bucket is not None else from_settings(configured)
        app.state.instance = instance
        app.state.board = Board(instance)
        app.state.owner_locks = {}  # one upload at a time per contestant (a few bytes each)
        app.state.hub = Hub()
        app.state.dagster_url = dagster_url or configured.dagster_url
        app.state.uploads_in_flight = (
            configured.uploads_in_flight if uploads_in_flight is None else uploads_in_flight
        )
        app.state.uploads = asyncio.Semaphore(app.state.uploads_in_flight)
        follower = Follower(app.state.board, app.state.hub, interval=configured.leaderboard_poll_s)
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
