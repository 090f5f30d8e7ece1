"""The README's screenshot of `stylenet-app`, taken in a real headless browser.

    python scripts/app_screenshot.py MODEL.pt [--photo chicago.jpg] [--style candy]

Serves the app on a free local port, opens it in Debian's chromium (``/usr/bin/chromium``, driven
by playwright; no browser download), uploads the photo, picks the style (a multi-style model),
presses Stylize, waits for the result and saves the page as a small JPEG (default
``docs/images/app.jpg``, at most ``--max-kb``). The default photo is
``../shared/data/content/chicago.jpg`` where the project's data sits beside the repo, else a
photo that ships inside scikit-image / scikit-learn (`stylenet.io.samples`).
"""

from __future__ import annotations

import argparse
import io
import re
import socket
import tempfile
from pathlib import Path

from PIL import Image

from stylenet.cli.app import Models, build_app, find_models
from stylenet.io.samples import package_photos

REPO = Path(__file__).resolve().parents[1]
SHARED_PHOTO = REPO.parent / "shared" / "data" / "content" / "chicago.jpg"
TIMEOUT_MS = 180_000  # a CPU stylizes a 712×474 photo in about a second; first load is slower


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_photo(tmp: Path) -> Path:
    if SHARED_PHOTO.is_file():
        return SHARED_PHOTO
    return package_photos(tmp, max_side=800)[0]


def save_small_jpeg(png: bytes, out: Path, *, max_kb: int) -> int:
    """Write a screenshot as the best-quality JPEG under `max_kb`; return its size in bytes."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    for quality in range(90, 20, -5):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
        if buf.tell() <= max_kb * 1024 or quality <= 25:
            break
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    return buf.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model file (or folder) for the app")
    parser.add_argument("--photo", type=Path, help="default: chicago.jpg, else a package photo")
    parser.add_argument("--style", help="style of a multi-style model (default: its first)")
    parser.add_argument("--strength", type=float, help="move the strength slider to this")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "app.jpg")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1280, help="browser window width")
    parser.add_argument("--height", type=int, default=860, help="browser window height")
    parser.add_argument("--max-kb", type=int, default=200, help="largest JPEG to write")
    args = parser.parse_args()

    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        photo = args.photo or default_photo(Path(tmp))
        demo = build_app(Models(find_models([args.model])), out_dir=Path(tmp) / "out")
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                page.goto(f"http://127.0.0.1:{port}/", timeout=TIMEOUT_MS)
                button = page.get_by_role("button", name="Stylize", exact=True)
                button.wait_for(timeout=TIMEOUT_MS)
                if args.style:  # replace the picked style: remove its token, choose another
                    picker = page.get_by_label("Style")
                    page.locator(".token .token-remove").first.click()
                    picker.click()
                    page.get_by_role("option", name=args.style, exact=True).click()
                    page.keyboard.press("Escape")
                if args.strength is not None:
                    page.get_by_label("number input for Strength").fill(str(args.strength))
                    page.keyboard.press("Enter")
                page.locator("input[type=file]").first.set_input_files(str(photo))
                # The uploaded photo shows in the input before Stylize can use it.
                expect(page.locator("img").first).to_be_visible(timeout=TIMEOUT_MS)
                button.click()
                expect(page.get_by_text(re.compile(r"px in [0-9.]+ s"))).to_be_visible(
                    timeout=TIMEOUT_MS
                )
                result = page.locator("img[src*='/file=']").last
                expect(result).to_be_visible(timeout=TIMEOUT_MS)
                page.wait_for_function(
                    "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)",
                    timeout=TIMEOUT_MS,
                )
                page.wait_for_timeout(500)  # let the progress overlay fade out
                png = page.screenshot(full_page=True)
                browser.close()
        finally:
            demo.close()
    size = save_small_jpeg(png, args.out, max_kb=args.max_kb)
    print(f"wrote {args.out} ({size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
