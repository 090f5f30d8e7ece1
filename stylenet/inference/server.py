"""`stylenet-serve`'s engine: an HTTP API on LitServe (Lightning's serving engine) that stylizes
(or upscales) photos sent by many clients at once, batching concurrent requests.

    POST /stylize   body: the photo's bytes (options as query parameters: ?style=candy), or
                    multipart/form-data with a file field ``image`` (options as form fields)
    GET  /models    the models on offer: name, task, styles, scale
    GET  /health    "ok" once the workers are up (LitServe's)
    GET  /metrics   Prometheus metrics, with ``metrics=True`` (`Metrics`)

Options: ``model`` (a name from /models; default the first), ``style`` or ``mix``
(``mosaic:0.7,candy:0.3``) for a multi-style model, ``strength``, ``preserve_color``,
``match_histograms`` (super-resolution), ``max_side``, ``format`` (jpeg, png, webp; default: JPEG
for a JPEG photo, else PNG). The answer is the image, with a one-line ``X-Stylenet-Info`` header
(size, seconds, batch, tiling, backend); a bad request gets a 4xx with ``{"detail": "one line"}``:
400 a bad option or an unknown style, 404 an unknown model, 413 a body or photo too large (its
pixel count read from the header before anything is decoded), 415 not an image. An error while
stylizing fails only the photos of its group (500) and never the worker.

Batching: LitServe hands a worker up to ``max_batch_size`` requests that arrived within
``batch_timeout`` seconds. They are grouped by model, style, options and exact size, and each group
is one forward pass; photos of other sizes are not padded to a common size, because instance
normalization over padding changes the result, and a server's answer must be the CLI's. Photos
too large for the free memory are tiled, one at a time, as the CLI tiles them.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import litserve as ls
import torch
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stylenet.errors import ConfigError, FileReadError, StylenetError
from stylenet.inference.api import InputImageError, Stylizer
from stylenet.inference.batch import fit_size
from stylenet.inference.color import check_strength
from stylenet.inference.model_card import ModelCard
from stylenet.inference.model_file import ModelFileError, read_card
from stylenet.inference.serving import MAX_PIXELS, Models, check_pixels
from stylenet.inference.styles import parse_mix
from stylenet.io.images import encode_image, load_image, pil_to_tensor

log = logging.getLogger(__name__)

API_PATH = "/stylize"
MODELS_PATH = "/models"
# Largest request body: a 50 MP photo as a high-quality JPEG is 15-25 MB, as a PNG up to ~150 MB;
# above this a client gets 413 before the body is read to the end.
MAX_BYTES = 64 * 1024 * 1024
# Requests one forward pass may take (1: no batching), and how long a worker waits for a batch
# to fill (seconds). Chosen from scripts/bench_serve.py on this project's 2-core CPU (README,
# "Serving"): batches of 4 or 8 were 2-6% slower than none at 256² and 512² with 16 clients, and
# up to 45% slower with one client at 128² (the wait), since ONNX Runtime gains nothing from a
# batch there. On a GPU, where a batch fills the device, try --max-batch-size 8 (not measured).
MAX_BATCH_SIZE = 1
BATCH_TIMEOUT = 0.01
FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Refusal:
    """A request answered with an error: its HTTP status and one line."""

    status: int
    detail: str
    model: str = ""  # the model asked for, when the request got that far

    def response(self) -> Response:
        return JSONResponse({"detail": self.detail}, status_code=self.status)


@dataclass
class Job:
    """A decoded request: the photo (resized to ``max_side``) and what to do with it."""

    model: str
    image: Image.Image
    choice: dict[str, Any]  # style= or mix= for the model's `with_style`; {} for none
    strength: float
    preserve_color: bool
    match_histograms: bool | None
    format: str
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)  # when its request was decoded

    def group(self) -> tuple[Any, ...]:
        """Jobs with the same group run in one forward pass."""
        mix = tuple(sorted((self.choice.get("mix") or {}).items()))
        return (
            self.model,
            self.choice.get("style"),
            mix,
            self.strength,
            self.preserve_color,
            self.match_histograms,
            self.image.size,
        )


@dataclass
class Answer:
    image: Image.Image
    format: str
    info: str
    model: str = ""
    started: float = 0.0  # the job's


class StylizeAPI(ls.LitAPI):
    """The LitServe API: decode a request into a `Job` (or a `Refusal`), stylize batches of them,
    encode the image.

    Args:
        files: {name: model file} (`stylenet.inference.serving.find_models`).
        max_pixels: Largest photo (pixels, from its header) and upscaled result taken.
        tile: Always stylize in tiles of this many pixels (default: only photos too large for
            the free memory).
        max_batch_size: Requests one forward pass may take (1: no batching).
        batch_timeout: Seconds a worker waits for a batch to fill.
        metrics: Count each answer and forward pass in `Metrics` (needs
            ``$PROMETHEUS_MULTIPROC_DIR``).
    """

    def __init__(
        self,
        files: Mapping[str, Path],
        *,
        max_pixels: int = MAX_PIXELS,
        tile: int | None = None,
        max_batch_size: int = MAX_BATCH_SIZE,
        batch_timeout: float = BATCH_TIMEOUT,
        metrics: bool = False,
    ) -> None:
        super().__init__(
            max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=API_PATH
        )
        self.files = dict(files)
        self.max_pixels, self.tile, self.metrics = max_pixels, tile, metrics
        self.counters: Metrics | None = None

    def setup(self, device: str) -> None:
        self.counters = Metrics() if self.metrics else None  # in the worker's own process
        self.models = Models(self.files, device=device)
        self.models.get(next(iter(self.files)))  # the first model loaded before the first request

    # `request` stays unannotated: LitServe makes its annotation the endpoint's parameter type,
    # and none means the raw request (read as the form the `RawBody` middleware makes).
    def decode_request(self, request, **kwargs: Any) -> Job | Refusal:  # type: ignore[no-untyped-def]
        """Never raises: in a batch, an exception here would fail every request of the batch."""
        try:
            return self._decode(request)
        except Exception as err:  # anything else is a bug: 500 for this request only
            return replace(_refusal(err), model=self._known_model(request))

    def _known_model(self, form: Any) -> str:
        """The model a request asks for, if it is one on offer ("" otherwise: a metric's label
        is never a name a client made up)."""
        try:
            label = self._model_label(form)
        except Exception:
            return ""
        return label if label in self.files else ""

    def _model_label(self, form: Any) -> str:
        """The model a request names (``model``), or the first on offer."""
        return _text(form, "model") or next(iter(self.files))

    def batch(self, inputs: list[Job | Refusal]) -> list[Job | Refusal]:
        return list(inputs)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        if not isinstance(x, list):  # max_batch_size 1: one request at a time
            return self._predict([x])[0]
        return self._predict(x)

    def unbatch(self, output: list[Answer | Refusal]) -> list[Answer | Refusal]:
        return list(output)

    def encode_response(self, output: Answer | Refusal, **kwargs: Any) -> Response:
        if self.counters is not None:
            self.counters.answered(output)
        if isinstance(output, Refusal):
            return output.response()
        return Response(
            content=encode_image(output.image, output.format),
            media_type=MEDIA_TYPES[output.format],
            headers={"X-Stylenet-Info": output.info},
        )

    def _decode(self, form: Any) -> Job | Refusal:
        if not hasattr(form, "get"):
            return Refusal(
                400, "send the photo as the request body, or as a multipart file field 'image'"
            )
        upload = form.get("image")
        data = _read_upload(upload)
        if data is None:
            return Refusal(
                400, "send the photo as the request body, or as a multipart file field 'image'"
            )
        label = self._model_label(form)
        if label not in self.files:
            return Refusal(
                404,
                f"no model {label!r}; the models are {', '.join(self.files)} (GET {MODELS_PATH})",
            )
        stylizer = self.models.get(label)
        choice = _choice(stylizer, _text(form, "style"), _text(form, "mix"))
        strength = _number(form, "strength", 1.0)
        check_strength(strength)
        preserve_color = bool(_flag(form, "preserve_color", False))
        match = _flag(form, "match_histograms", None)
        notes = []
        if stylizer.task == "superres" and (strength != 1.0 or preserve_color):
            notes.append("strength and preserve_color do not apply to super-resolution: ignored")
            strength, preserve_color = 1.0, False
        if stylizer.task != "superres" and match:
            notes.append("match_histograms applies to super-resolution models only: ignored")
            match = None
        max_side = _integer(form, "max_side")
        if max_side is not None and max_side < 1:
            raise ConfigError(f"max_side must be a positive number of pixels, got {max_side}")
        name = Path(getattr(upload, "filename", None) or "photo").name or "photo"
        # Through a file of the client's name, so that messages name the photo as they do
        # everywhere else (and nothing of the server's folders).
        with tempfile.TemporaryDirectory(prefix="stylenet-serve-") as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            check_pixels(path, self.max_pixels, scale=stylizer.scale, max_side=max_side)
            image = load_image(path)
            with Image.open(path) as stored:
                kind = stored.format
        if (size := fit_size(image.size, max_side=max_side)) != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        stylizer.check_input_size(image.height, image.width)
        fmt = _text(form, "format")
        if fmt is not None and fmt.lower() not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(sorted(FORMATS))}, got {fmt!r}")
        out_format = FORMATS[fmt.lower()] if fmt else ("JPEG" if kind in ("JPEG", "MPO") else "PNG")
        return Job(label, image, choice, strength, preserve_color, match, out_format, notes)

    def _predict(self, items: Sequence[Job | Refusal]) -> list[Answer | Refusal]:
        answers: list[Answer | Refusal | None] = [
            item if isinstance(item, Refusal) else None for item in items
        ]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, item in enumerate(items):
            if isinstance(item, Job):
                groups.setdefault(item.group(), []).append(i)
        for indices in groups.values():
            jobs = [items[i] for i in indices]
            try:
                done = self._run([j for j in jobs if isinstance(j, Job)])
            except Exception as err:  # one group fails, not the batch and not the worker
                log.exception("stylizing a group of %d photo(s) failed", len(jobs))
                model = jobs[0].model if isinstance(jobs[0], Job) else ""
                done = [replace(_refusal(err), model=model)] * len(jobs)
            for i, answer in zip(indices, done, strict=True):
                answers[i] = answer
        return [a if a is not None else Refusal(500, "no answer") for a in answers]

    def _run(self, jobs: list[Job]) -> list[Answer | Refusal]:
        first = jobs[0]
        with self.models.borrow(first.model) as base:
            stylizer = base.with_style(**first.choice) if first.choice else base
            width, height = first.image.size
            tile = stylizer.choose_tile(height, width, self.tile, count=len(jobs))
            step = 1 if tile else max(1, stylizer.batch_capacity(height, width))
            answers: list[Answer | Refusal] = []
            for start in range(0, len(jobs), step):
                chunk = jobs[start : start + step]
                begin = time.perf_counter()
                images = _stylize(stylizer, chunk, tile=tile)
                seconds = time.perf_counter() - begin
                for job, image in zip(chunk, images, strict=True):
                    info = _info(stylizer, job, image, seconds, len(chunk), tile)
                    answers.append(Answer(image, job.format, info, job.model, job.started))
                if self.counters is not None:
                    self.counters.forward_pass(first.model, len(chunk), seconds)
        return answers


def _stylize(stylizer: Stylizer, jobs: list[Job], *, tile: int | None) -> list[Image.Image]:
    first = jobs[0]
    if tile or len(jobs) == 1:
        outputs = []
        for job in jobs:
            out = stylizer(
                job.image,
                match_histograms=job.match_histograms,
                tile=tile,
                strength=first.strength,
                preserve_color=first.preserve_color,
            )
            assert isinstance(out, Image.Image)
            outputs.append(out)
        return outputs
    photos = torch.stack([pil_to_tensor(job.image) for job in jobs])
    match = stylizer.match_histograms if first.match_histograms is None else first.match_histograms
    styled = stylizer.stylize_batch(
        photos,
        match_histograms=False,
        strength=first.strength,
        preserve_color=first.preserve_color,
    )
    return [
        stylizer.to_image(t, job.image, match_histograms=match)
        for t, job in zip(styled, jobs, strict=True)
    ]


def _info(
    stylizer: Stylizer,
    job: Job,
    out: Image.Image,
    seconds: float,
    batch: int,
    tile: int | None,
) -> str:
    w, h = job.image.size
    size = f"{w}x{h} px"
    if stylizer.task == "superres":
        size += f" upscaled x{stylizer.scale} to {out.width}x{out.height} px"
    parts = [f"{size} in {seconds:.3f} s ({stylizer.backend.name} on {stylizer.device})"]
    parts.append(f"tiled in {tile}-px tiles" if tile else f"batch of {batch}")
    return "; ".join(parts + job.notes)


def _refusal(err: BaseException) -> Refusal:
    """The HTTP answer to an error: 4xx for what the client can fix, 500 for the rest."""
    if isinstance(err, ModelFileError):
        return Refusal(500, f"cannot load the model {err.path.name}: {err.reason}")
    if isinstance(err, FileReadError):
        status = 413 if "decompression bomb" in err.reason else 415
        return Refusal(status, f"cannot read {err.kind} {err.path.name}: {err.reason}")
    if isinstance(err, InputImageError):
        return Refusal(413 if " MP" in str(err) else 400, str(err))
    if isinstance(err, StylenetError | ValueError):
        return Refusal(400, str(err) or type(err).__name__)
    if isinstance(err, torch.OutOfMemoryError):
        return Refusal(503, "out of memory for this photo: send it again with a smaller max_side")
    log.error("request failed: %s", err, exc_info=err)
    return Refusal(500, f"internal error ({type(err).__name__})")


def _read_upload(upload: Any) -> bytes | None:
    """The bytes of a multipart file field (LitServe hands the worker starlette's UploadFile)."""
    if upload is None or isinstance(upload, str):
        return None
    file = getattr(upload, "file", None)
    if file is None:
        return None
    file.seek(0)
    return file.read()


def _text(form: Any, key: str) -> str | None:
    value = form.get(key)
    if value is None or not isinstance(value, str):
        return None
    return value.strip() or None


def _number(form: Any, key: str, default: float) -> float:
    text = _text(form, key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {text!r}") from None


def _integer(form: Any, key: str) -> int | None:
    text = _text(form, key)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{key} must be a whole number, got {text!r}") from None


def _flag(form: Any, key: str, default: bool | None) -> bool | None:
    text = _text(form, key)
    if text is None:
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigError(f"{key} must be true or false, got {text!r}")


def _choice(stylizer: Stylizer, style: str | None, mix: str | None) -> dict[str, Any]:
    """style= or mix= for `Stylizer.with_style`, checked against the model's styles."""
    if stylizer.task == "superres":
        if style or mix:
            raise ConfigError("a super-resolution model has no styles: send no style or mix")
        return {}
    if style and mix:
        raise ConfigError("send a style or a mix, not both")
    if not stylizer.styles:
        if style or mix:
            raise ConfigError("this model has one style: send no style or mix")
        return {}
    if not style and not mix:
        raise ConfigError(
            f"this model carries {len(stylizer.styles)} styles ({', '.join(stylizer.styles)}): "
            "send style=NAME or mix=NAME:W,..."
        )
    choice = {"style": style} if style else {"mix": parse_mix(mix or "")}
    stylizer.with_style(**choice)  # an unknown style or a bad mix: ConfigError now
    return choice


def model_list(files: Mapping[str, Path]) -> list[dict[str, Any]]:
    """What GET /models answers: each model's name, task, styles and scale, from its card
    (nothing is loaded)."""
    listed: list[dict[str, Any]] = []
    for name, path in files.items():
        try:
            card: ModelCard = read_card(path)
        except StylenetError as err:
            listed.append({"name": name, "error": str(err)})
            continue
        styles = card.style_names(int(card.config.get("num_styles", 1)))
        superres = card.network == "SuperResolutionNet" or card.task == "superres"
        listed.append(
            {
                "name": name,
                "task": "superres" if superres else "style",
                "styles": [] if superres or len(styles) < 2 else styles,
                "scale": int(card.scale) if superres else 1,
            }
        )
    return listed


class RawBody:
    """ASGI middleware: a POST to /stylize whose body is the photo itself (any content type but
    multipart or JSON) is handed on as the multipart form LitServe reads, with the query
    parameters as its fields. A body over `max_bytes` is answered 413 before it is read."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != API_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        # A urlencoded form cannot carry a file: such a body is the photo (curl --data-binary
        # sends that content type unless told otherwise).
        if kind == "multipart/form-data":
            await self.app(scope, _capped(receive, self.max_bytes), send)
            return
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
        if kind == "application/json" or not body:
            # Not a photo: let the API say what it wants (its 400), with an empty form.
            body = bytearray()
        fields = dict(request.query_params)
        boundary = f"stylenet-{time.monotonic_ns()}"
        payload = _multipart(boundary, fields, bytes(body))
        headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"content-length", str(len(payload)).encode()),
        ]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def _multipart(boundary: str, fields: Mapping[str, str], image: bytes) -> bytes:
    parts = []
    for key, value in fields.items():
        safe = key.replace('"', "")
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{safe}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    if image:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + image
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def _too_large(max_bytes: int) -> Response:
    return JSONResponse(
        {"detail": f"the request is over {max_bytes / 2**20:g} MiB: send a smaller photo"},
        status_code=413,
    )


def _capped(receive: Receive, max_bytes: int) -> Receive:
    """`receive` that answers a body over `max_bytes` (no content-length given) by failing the
    read: the form parser's error becomes LitServe's 4xx/5xx, and nothing more is read."""
    total = 0

    async def capped() -> Message:
        nonlocal total
        message = await receive()
        total += len(message.get("body", b""))
        if total > max_bytes:
            raise ValueError(f"the request is over {max_bytes / 2**20:g} MiB")
        return message

    return capped


METRICS_PATH = "/metrics"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """Prometheus metrics of one worker process, written to prometheus_client's multiprocess
    files in ``$PROMETHEUS_MULTIPROC_DIR`` (set before the workers start: `stylenet-serve
    --metrics` makes and removes it); ``GET /metrics`` (`metrics_endpoint`) adds up every
    worker's on each scrape.

    Metrics: ``stylenet_requests_total{model,status}`` (every answer, by HTTP status; model "-"
    when the request named none on offer), ``stylenet_request_seconds{model}`` (from a request's
    decoding to its image), ``stylenet_megapixels_total{model}`` (of the images answered),
    ``stylenet_batch_photos{model}`` (photos per forward pass) and ``stylenet_pass_seconds
    {model}``.
    """

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        seconds = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120)
        self.requests = Counter(
            "stylenet_requests", "Requests answered, by HTTP status", ["model", "status"]
        )
        self.latency = Histogram(
            "stylenet_request_seconds",
            "Seconds from a request's decoding to its image",
            ["model"],
            buckets=seconds,
        )
        self.megapixels = Counter(
            "stylenet_megapixels", "Megapixels of the images answered", ["model"]
        )
        self.batch = Histogram(
            "stylenet_batch_photos",
            "Photos per forward pass",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.passes = Histogram(
            "stylenet_pass_seconds", "Seconds per forward pass", ["model"], buckets=seconds
        )

    def answered(self, output: Answer | Refusal) -> None:
        if isinstance(output, Refusal):
            self.requests.labels(model=output.model or "-", status=str(output.status)).inc()
            return
        self.requests.labels(model=output.model, status="200").inc()
        self.latency.labels(model=output.model).observe(time.perf_counter() - output.started)
        self.megapixels.labels(model=output.model).inc(
            output.image.width * output.image.height / 1e6
        )

    def forward_pass(self, model: str, photos: int, seconds: float) -> None:
        self.batch.labels(model=model).observe(photos)
        self.passes.labels(model=model).observe(seconds)


def metrics_endpoint(folder: str) -> Any:
    """The ``GET /metrics`` handler: every worker's metrics files in `folder`, in Prometheus'
    text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    def metrics() -> Response:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
        return Response(content=generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def build_server(
    files: Mapping[str, Path],
    *,
    accelerator: str = "auto",
    devices: int | str = "auto",
    workers_per_device: int = 1,
    max_batch_size: int = MAX_BATCH_SIZE,
    batch_timeout: float = BATCH_TIMEOUT,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    tile: int | None = None,
    timeout: float = 120,
    metrics: bool = False,
) -> ls.LitServer:
    """The LitServer for `files` ({name: model file}); ``server.run(host=..., port=...)``
    serves it. `metrics`: Prometheus metrics on ``GET /metrics`` (`Metrics`; needs
    ``$PROMETHEUS_MULTIPROC_DIR``)."""
    api = StylizeAPI(
        files,
        max_pixels=max_pixels,
        tile=tile,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
        metrics=metrics,
    )
    server = ls.LitServer(
        api,
        accelerator=accelerator,
        devices=devices,
        workers_per_device=workers_per_device,
        timeout=timeout,
        middlewares=[(RawBody, {"max_bytes": max_bytes})],
    )
    # LitServe gzips every answer over 1 KB: JPEG and PNG do not shrink, and it costs CPU.
    server.middlewares = [m for m in server.middlewares if _name(m) != "GZipMiddleware"]
    listed = model_list(files)
    server.app.add_api_route(MODELS_PATH, lambda: {"models": listed}, methods=["GET"])
    if metrics:
        folder = os.environ.get(METRICS_DIR_ENV)
        if not folder or not Path(folder).is_dir():
            raise ConfigError(f"metrics need ${METRICS_DIR_ENV}: an existing folder")
        server.app.add_api_route(METRICS_PATH, metrics_endpoint(folder), methods=["GET"])
    return server


def _name(middleware: Any) -> str:
    cls = middleware[0] if isinstance(middleware, tuple) else middleware
    return getattr(cls, "__name__", "")


__all__: Sequence[str] = [
    "API_PATH",
    "BATCH_TIMEOUT",
    "MAX_BATCH_SIZE",
    "MAX_BYTES",
    "METRICS_PATH",
    "MODELS_PATH",
    "Metrics",
    "StylizeAPI",
    "build_server",
    "model_list",
]
