"""The inference server: a REST service that returns the same JSON as ``defectlab predict --json``.

Routes (described by the OpenAPI schema at ``/openapi.json``):

- ``GET /health``: whether a model is loaded; needs no key.
- ``GET /model``: what is loaded (task, classes, threshold, engine, provenance).
- ``PUT /model``: load another model and swap it in; requests already running
  finish with the model they started with.
- ``POST /predict``: one image, as a multipart file field ``file`` or as JSON
  ``{"image": BASE64, "name": NAME}``.
- ``POST /predict/batch``: several images, as multipart fields ``files`` or as
  JSON ``{"images": [{"image": BASE64, "name": NAME}, ...]}``. An image that
  cannot be read gets an ``error`` entry. The others are still predicted.

``?heatmap=true`` adds ``heatmap_png``: the anomaly heatmap as a base64 PNG.
When an API key is set, every route but ``/health`` needs it in the
``X-API-Key`` header (or ``Authorization: Bearer KEY``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from defectlab.deployment.capture import Capture, check_metadata
from defectlab.errors import DefectlabError, InvalidInputError
from defectlab.images import decode_image
from defectlab.prediction.outputs import heatmap_png
from defectlab.prediction.predictor import Prediction, Predictor

__all__ = ["ModelSlot", "ServerSettings", "create_app"]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Upload:
    """One image of a request: its name, encoded bytes and the caller's metadata."""

    name: str
    data: bytes
    metadata: dict[str, Any]


class UnauthorizedError(DefectlabError):
    """A request without the server's API key."""

    http_status = 401


class TooLargeError(DefectlabError):
    """A request or image above the server's limits."""

    http_status = 413


@dataclass(frozen=True)
class ServerSettings:
    """Limits and access rules of one server.

    Attributes:
        api_key: Key every route but ``/health`` requires; None for no key (loopback only).
        max_request_bytes: Maximum request body size in bytes.
        max_pixels: Maximum image size in pixels.
        max_batch: Maximum number of images in one batch request.
    """

    api_key: str | None = None
    max_request_bytes: int = 64 << 20
    max_pixels: int = 64_000_000
    max_batch: int = 64


class ModelSlot:
    """The loaded model, swapped whole so that each request uses one model from start to end.

    Args:
        load: Turns a model reference (model id, model file or bundle folder) into a predictor.
        reference: The first model to load.
    """

    def __init__(self, load: Callable[[str], Predictor], reference: str) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._current = self._loaded(reference)

    def get(self) -> tuple[Predictor, dict[str, Any]]:
        """Return the current predictor and its description."""
        return self._current

    def swap(self, reference: str) -> dict[str, Any]:
        """Load another model, then make it current; the old one serves requests already started."""
        loaded = self._loaded(reference)
        with self._lock:
            self._current = loaded
        logger.info("now serving %s", reference)
        return loaded[1]

    def _loaded(self, reference: str) -> tuple[Predictor, dict[str, Any]]:
        predictor = self._load(reference)
        description = {
            **predictor.description,
            "reference": reference,
            "task": predictor.task,
            "class_names": predictor.class_names,
            "threshold": predictor.threshold,
            "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return predictor, description


def create_app(slot: ModelSlot, settings: ServerSettings = ServerSettings(), capture: Capture | None = None) -> FastAPI:
    """Build the FastAPI application serving ``slot``'s model, recording predictions into ``capture`` when given."""
    # The interactive /docs and /redoc pages load their scripts from a CDN, which an offline
    # line PC cannot reach, so only the schema is served: /openapi.json.
    app = FastAPI(title="defectlab inference server", version="1", docs_url=None, redoc_url=None,
                  description="Predictions that match `defectlab predict --json` for the loaded model.")
    app.add_middleware(_BodyLimit, limit=settings.max_request_bytes)
    engine_lock = threading.Lock()
    authorized = Depends(_key_check(settings.api_key))

    @app.exception_handler(DefectlabError)
    async def _error(request: Request, error: DefectlabError) -> JSONResponse:
        logger.warning("%s %s failed with status %d: %s", request.method, request.url.path, error.http_status, error)
        return JSONResponse({"error": str(error)}, status_code=error.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        logger.warning("%s %s failed with status %d: %s", request.method, request.url.path, error.status_code, error.detail)
        return JSONResponse({"error": f"{request.method} {request.url.path}: {error.detail}"}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors())
        logger.warning("%s %s rejected: %s", request.method, request.url.path, problems)
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)

    @app.get("/health", summary="Whether the server is up and a model is loaded")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": slot.get()[0] is not None}

    @app.get("/model", summary="What model is loaded", dependencies=[authorized])
    def model() -> dict[str, Any]:
        return slot.get()[1]

    @app.put("/model", summary="Load another model and swap it in without dropping requests",
             dependencies=[authorized], openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object", "required": ["model"], "properties": {
                     "model": {"type": "string", "description": "Model id, model file or bundle folder."}}}}}}})
    async def swap(request: Request) -> dict[str, Any]:
        body = await _json(request)
        reference = body.get("model") if isinstance(body, dict) else None
        if not isinstance(reference, str) or not reference:
            raise InvalidInputError("field 'model' is missing; send {\"model\": MODEL_ID_OR_FILE_OR_BUNDLE}")
        return await run_in_threadpool(slot.swap, reference)

    def predict(uploads: list[Upload], heatmap: bool) -> list[dict[str, Any] | DefectlabError]:
        """Return each image's prediction as JSON, or the error that kept it from being read."""
        predictor, description = slot.get()
        decoded, answers = [], []
        for upload in uploads:
            try:
                _check_pixels(upload.data, upload.name, settings.max_pixels)
                decoded.append((upload, decode_image(upload.data, source=upload.name)))
                answers.append(None)
            except DefectlabError as error:
                answers.append(error)
        with engine_lock:
            results = predictor.predict([image.pixels for _, image in decoded],
                                        paths=[upload.name for upload, _ in decoded], heatmaps=heatmap)
        model = str(description.get("model_id") or description["reference"])
        finished = []
        for (upload, image), result in zip(decoded, results):
            answer = _answer(result, heatmap)
            if capture is not None:
                answer["capture"] = capture.record(upload.name, upload.data, image, result, model=model,
                                                   metadata=upload.metadata)
            finished.append(answer)
        remaining = iter(finished)
        return [answer if answer is not None else next(remaining) for answer in answers]

    @app.post("/predict", summary="Predict one image", dependencies=[authorized],
              openapi_extra=_request_body(batch=False))
    async def predict_one(request: Request, heatmap: bool = False) -> dict[str, Any]:
        images = await _images(request, batch=False, max_batch=1)
        answer = (await run_in_threadpool(predict, images, heatmap))[0]
        if isinstance(answer, DefectlabError):
            raise answer
        return answer

    @app.post("/predict/batch", summary="Predict several images", dependencies=[authorized],
              openapi_extra=_request_body(batch=True))
    async def predict_many(request: Request, heatmap: bool = False) -> dict[str, Any]:
        images = await _images(request, batch=True, max_batch=settings.max_batch)
        answers = await run_in_threadpool(predict, images, heatmap)
        for upload, answer in zip(images, answers):
            if isinstance(answer, DefectlabError):
                logger.warning("image %s of a batch not predicted: %s", upload.name, answer)
        return {"predictions": [{"path": upload.name, "error": str(answer)} if isinstance(answer, DefectlabError)
                                else answer for upload, answer in zip(images, answers)]}

    return app


def _answer(prediction: Prediction, heatmap: bool) -> dict[str, Any]:
    answer = prediction.to_dict()
    if heatmap:
        has_map = prediction.heatmap is not None
        answer["heatmap_png"] = base64.b64encode(heatmap_png(prediction.heatmap)).decode("ascii") if has_map else None
    return answer


def _key_check(api_key: str | None) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if api_key is None:
            return
        sent = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization") or ""
        if bearer.lower().startswith("bearer "):
            sent = sent or bearer[7:].strip()
        if not sent:
            raise UnauthorizedError("this server needs an API key; send it in the X-API-Key header")
        if not hmac.compare_digest(sent.encode(), api_key.encode()):
            raise UnauthorizedError("the API key is invalid; send the key the server was started with")

    return check


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as error:
        raise InvalidInputError(f"the request body is not valid JSON ({error})") from error


async def _images(request: Request, *, batch: bool, max_batch: int) -> list[Upload]:
    """Return each image of a multipart or JSON request with its name and metadata."""
    kind = request.headers.get("content-type", "")
    if not kind:
        raise InvalidInputError("the request has no Content-Type header; send multipart/form-data or application/json")
    if kind.startswith("multipart/form-data"):
        images = await _multipart(request, "files" if batch else "file")
    elif kind.startswith("application/json"):
        images = _from_json(await _json(request), batch)
    else:
        raise InvalidInputError(
            f"content type {kind or 'none'!r} is not accepted; send multipart/form-data with a "
            f"{'files' if batch else 'file'!r} field, or application/json"
        )
    if not images:
        raise InvalidInputError("the request has no image; " + ("add 'files' fields" if batch else "add a 'file' field"))
    if not batch and len(images) > 1:
        raise InvalidInputError(f"/predict takes one image and the request has {len(images)}; "
                                "send several images to /predict/batch")
    if len(images) > max_batch:
        raise TooLargeError(f"the request has {len(images)} images; this server takes at most {max_batch} per request")
    return images


async def _multipart(request: Request, field: str) -> list[Upload]:
    form = await request.form()
    uploads = form.getlist(field)
    if not uploads:
        raise InvalidInputError(f"the form has no {field!r} field; send each image as a file in {field!r}")
    metadata = _form_metadata(form, field)
    images = []
    for index, upload in enumerate(uploads):
        if isinstance(upload, str):
            raise InvalidInputError(f"form field {field!r} number {index + 1} is text; send the image as a file")
        images.append(Upload(upload.filename or f"<image {index}>", await upload.read(), metadata))
    return images


def _form_metadata(form: Any, field: str) -> dict[str, Any]:
    """Return the form's text fields as metadata, merged with the JSON object in a ``metadata`` field."""
    metadata = {key: value for key, value in form.multi_items() if key not in (field, "metadata") and isinstance(value, str)}
    text = form.get("metadata")
    if isinstance(text, str):
        try:
            extra = json.loads(text)
        except ValueError as error:
            raise InvalidInputError(f"form field 'metadata' is not valid JSON ({error}); send a JSON object") from error
        metadata.update(check_metadata(extra, "form field 'metadata'"))
    return check_metadata(metadata, "the form's text fields")


def _from_json(body: Any, batch: bool) -> list[Upload]:
    items = body.get("images") if batch and isinstance(body, dict) else [body]
    shared = check_metadata(body.get("metadata"), "field 'metadata'") if batch and isinstance(body, dict) else {}
    if not isinstance(items, list):
        raise InvalidInputError('field \'images\' is missing; send {"images": [{"image": BASE64, "name": NAME}, ...]}')
    images = []
    for index, item in enumerate(items):
        where = f"images[{index}]" if batch else "the body"
        if not isinstance(item, dict) or "image" not in item:
            raise InvalidInputError(f"{where} has no 'image' field; send {{\"image\": BASE64, \"name\": NAME}}")
        if not isinstance(item["image"], str):
            raise InvalidInputError(f"{where}: field 'image' is {type(item['image']).__name__}; send the file's bytes as base64 text")
        name = str(item.get("name") or f"<image {index}>")
        metadata = {**shared, **check_metadata(item.get("metadata"), f"{where}: field 'metadata'")}
        try:
            images.append(Upload(name, base64.b64decode(item["image"], validate=True), metadata))
        except (binascii.Error, ValueError):
            raise InvalidInputError(f"{where}: field 'image' ({name}) is not valid base64; encode the file's bytes as base64") from None
    return images


def _check_pixels(data: bytes, name: str, limit: int) -> None:
    """Refuse an image above ``limit`` pixels from its header, before decoding it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - decode_image gives the reason for unreadable files
        return
    if width * height > limit:
        raise TooLargeError(f"{name} has {width} x {height} pixels; this server takes at most {limit} pixels per image")


def _request_body(*, batch: bool) -> dict[str, Any]:
    """Describe both accepted request forms for OpenAPI."""
    field = "files" if batch else "file"
    binary = {"type": "string", "format": "binary"}
    metadata = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "Key-value pairs stored with each prediction when capture is on, "
                               "such as station, camera and time."}
    item = {"type": "object", "required": ["image"],
            "properties": {"image": {"type": "string", "format": "byte"}, "name": {"type": "string"},
                           "metadata": metadata}}
    form = {field: {"type": "array", "items": binary} if batch else binary,
            "metadata": {"type": "string", "description": "A JSON object of more metadata."}}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": [field], "properties": form,
                                           "additionalProperties": {"type": "string"},
                                           "description": "Other text fields (station, camera...) become metadata."}},
        "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {
            "images": {"type": "array", "items": item}, "metadata": metadata}} if batch else item},
    }}}


class _BodyLimit:
    """ASGI middleware that rejects a request body above ``limit`` bytes, declared or streamed, with status 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send)
            return
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise TooLargeError(self._message())
            return message

        try:
            await self.app(scope, counted, send)
        except TooLargeError:
            await self._reject(send)

    def _message(self) -> str:
        return f"the request is larger than this server's limit of {self.limit} bytes; send fewer or smaller images"

    async def _reject(self, send: Callable) -> None:
        logger.warning("request rejected: %s", self._message())
        response = JSONResponse({"error": self._message()}, status_code=413)
        await response({"type": "http"}, None, send)
