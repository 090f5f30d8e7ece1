"""`stylenet-serve`: a real server (LitServe, in a subprocess, on 127.0.0.1) answered over real
HTTP: photos as raw bodies and as multipart forms, the models list, every bad request with its
4xx and one line, an error in one model that fails only its requests, and concurrent requests
batched without a bad one spoiling the batch, counted in the Prometheus metrics."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image

import stylenet
from stylenet.io.images import load_image, pil_to_tensor
from tests.helpers import photo, save_tiny_model, save_tiny_multistyle_model

httpx = pytest.importorskip("httpx")
pytest.importorskip("litserve")

MAX_BYTES = 200_000
MAX_PIXELS = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(folder: Path, *options: str) -> Iterator[str]:
    """`stylenet-serve FOLDER` in a subprocess on a free port of 127.0.0.1: its URL; stopped with
    SIGTERM at the end, which must leave none of its processes behind."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "stylenet.cli.serve", str(folder), "--port", str(port),
        "--accelerator", "cpu", "--max-bytes", str(MAX_BYTES), "--max-pixels", str(MAX_PIXELS),
        *options,
    ]  # fmt: skip
    log_path = folder.parent / f"server-{port}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log_path.read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.terminate()  # SIGTERM, as systemd or docker stop a server
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _, alive = psutil.wait_procs(children, timeout=30)
        for child in alive:
            child.kill()
        assert not alive, f"SIGTERM left {len(alive)} of the server's processes running"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("serve") / "models"
    one, _ = save_tiny_model(folder / "one")
    multi, _ = save_tiny_multistyle_model(folder / "multi", ["mosaic", "candy"])
    return folder, {"one/model.pt": one, "multi/model.pt": multi}


@pytest.fixture(scope="module")
def served(models: tuple[Path, dict[str, Path]]) -> Iterator[tuple[str, dict[str, Path]]]:
    """The server with its default settings (batching off)."""
    folder, files = models
    save_tiny_model(folder / "zz_doomed")
    with _server(folder) as url:
        # A model file that goes away after the server started (it is not the first, which each
        # worker loads at start): it fails when first asked for.
        shutil.rmtree(folder / "zz_doomed")
        yield url, files


def _jpeg(size: tuple[int, int], tmp: Path, name: str = "p.jpg") -> bytes:
    path = photo(tmp / name, size=size)
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_models_are_listed_without_server_paths(served) -> None:
    url, _ = served
    models = {m["name"]: m for m in httpx.get(f"{url}/models").json()["models"]}
    assert models["multi/model.pt"]["styles"] == ["mosaic", "candy"]
    assert models["one/model.pt"] == {
        "name": "one/model.pt",
        "task": "style",
        "styles": [],
        "scale": 1,
    }
    assert all(not m["name"].startswith("/") for m in models.values())


def test_a_photo_as_raw_body_or_multipart_comes_back_as_the_cli_makes_it(
    served, tmp_path: Path
) -> None:
    url, files = served
    data = _jpeg((60, 44), tmp_path)
    jpeg = httpx.post(f"{url}/stylize", params={"model": "one/model.pt"}, content=data, timeout=60)
    assert jpeg.status_code == 200, jpeg.text
    assert jpeg.headers["content-type"] == "image/jpeg"  # a JPEG in, a JPEG out by default
    assert "60x44 px" in jpeg.headers["x-stylenet-info"]
    params = {"model": "one/model.pt", "format": "png"}  # lossless, to compare with the CLI's
    raw = httpx.post(f"{url}/stylize", params=params, content=data, timeout=60)
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    form = httpx.post(
        f"{url}/stylize",
        files={"image": ("p.jpg", data, "image/jpeg")},
        data={"model": "multi/model.pt", "style": "candy", "format": "png"},
        timeout=60,
    )
    assert form.status_code == 200, form.text
    assert form.headers["content-type"] == "image/png"
    (tmp_path / "in.jpg").write_bytes(data)
    for response, path, style in [
        (raw, files["one/model.pt"], None),
        (form, files["multi/model.pt"], "candy"),
    ]:
        want = stylenet.load(path, device="cpu", backend="eager", style=style)(
            load_image(tmp_path / "in.jpg")
        )
        got = Image.open(io.BytesIO(response.content)).convert("RGB")
        assert got.size == (60, 44)
        assert (pil_to_tensor(got) - pil_to_tensor(want)).abs().max() <= 1 / 255 + 1e-6


BAD = {
    "not an image": ({"content": b"hello, not a photo"}, {}, 415, "not an image"),
    "empty body": ({"content": b""}, {}, 400, "send the photo"),
    "a decompression bomb": (None, {}, 413, "photos of up to 1 MP"),
    "too many bytes": ({"content": b"\xff" * (MAX_BYTES + 10)}, {}, 413, "over"),
    "an unknown model": (..., {"model": "nope.pt"}, 404, "no model 'nope.pt'"),
    "an unknown style": (
        ...,
        {"model": "multi/model.pt", "style": "starry"},
        400,
        "no style 'starry'",
    ),
    "no style for a multi-style model": (..., {"model": "multi/model.pt"}, 400, "send style="),
    "a bad mix": (..., {"model": "multi/model.pt", "mix": "mosaic=1"}, 400, "NAME:WEIGHT"),
    "a strength out of range": (..., {"strength": "1.5"}, 400, "strength must be in [0, 1]"),
    "a strength that is not a number": (..., {"strength": "lots"}, 400, "must be a number"),
    "a bad max_side": (..., {"max_side": "-3"}, 400, "max_side"),
    "a bad format": (..., {"format": "gif"}, 400, "format must be one of"),
    "a bad flag": (..., {"preserve_color": "maybe"}, 400, "true or false"),
    "a style for a one-style model": (..., {"style": "candy"}, 400, "one style"),
    "a photo under the minimum side": ("tiny", {}, 400, "px"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_request_gets_its_4xx_and_the_next_good_one_is_answered(
    served, tmp_path: Path, case: str
) -> None:
    url, _ = served
    body, params, status, words = BAD[case]
    if body is ...:
        body = {"content": _jpeg((40, 30), tmp_path)}
    elif body == "tiny":
        body = {"content": _jpeg((5, 5), tmp_path)}
    elif body is None:  # 12 KB of PNG that declares 100 MP
        bomb = tmp_path / "bomb.png"
        Image.new("1", (10_000, 10_000)).save(bomb)
        body = {"content": bomb.read_bytes()}
    params = {"model": "one/model.pt", **params}
    response = httpx.post(f"{url}/stylize", params=params, timeout=60, **body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail, detail
    good = httpx.post(
        f"{url}/stylize", params={"model": "one/model.pt"}, content=_jpeg((40, 30), tmp_path)
    )
    assert good.status_code == 200


def test_a_model_that_fails_fails_its_requests_only(served, tmp_path: Path) -> None:
    url, _ = served
    data = _jpeg((40, 30), tmp_path)
    broken = httpx.post(f"{url}/stylize", params={"model": "zz_doomed/model.pt"}, content=data)
    assert broken.status_code == 500 and "cannot load the model" in broken.json()["detail"]
    assert httpx.post(f"{url}/stylize", params={"model": "one/model.pt"}, content=data).is_success


def test_concurrent_requests_are_batched_and_a_bad_one_spoils_nothing(
    models, tmp_path: Path
) -> None:
    folder, _ = models
    options = ["--max-batch-size", "4", "--batch-timeout", "0.5", "--metrics"]
    with _server(folder, *options) as url:
        _send_concurrently(url, tmp_path)
        # Prometheus metrics (--metrics), summed over the workers: what was just sent.
        text = httpx.get(f"{url}/metrics").text
        metrics = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("stylenet_")
        }
        one = 'model="one/model.pt"'
        assert metrics[f'stylenet_requests_total{{{one},status="200"}}'] == 7
        assert metrics[f'stylenet_requests_total{{{one},status="415"}}'] == 1
        assert metrics[f"stylenet_request_seconds_count{{{one}}}"] == 7
        assert metrics[f"stylenet_megapixels_total{{{one}}}"] == pytest.approx(
            (5 * 48 * 40 + 2 * 64 * 32) / 1e6
        )
        # 7 photos in fewer passes: some shared one.
        assert metrics[f"stylenet_batch_photos_sum{{{one}}}"] == 7
        assert metrics[f"stylenet_batch_photos_count{{{one}}}"] < 7


def _send_concurrently(url: str, tmp_path: Path) -> None:
    same = _jpeg((48, 40), tmp_path, "same.jpg")
    other = _jpeg((64, 32), tmp_path, "other.jpg")
    bodies = [same, same, same, b"not a photo", other, same, other, same]

    def send(body: bytes) -> httpx.Response:
        return httpx.post(
            f"{url}/stylize", params={"model": "one/model.pt"}, content=body, timeout=120
        )

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(send, bodies))
    assert [a.status_code for a in answers] == [200, 200, 200, 415, 200, 200, 200, 200]
    infos = [a.headers["x-stylenet-info"] for a in answers if a.is_success]
    assert any("batch of 1" not in info for info in infos), infos  # some shared a pass
    # Batched or not, a photo comes out the same.
    outputs = {
        Image.open(io.BytesIO(a.content)).tobytes()
        for a, b in zip(answers, bodies, strict=True)
        if b is same
    }
    assert len(outputs) == 1
