"""The diagrams as a browser shows them: headless Chromium renders each SVG to a PNG, and the PNG holds the boxes
the SVG draws (their fill colours appear in the pixels), at the size the SVG declares."""

from __future__ import annotations

import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import diagrams

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def read_png(path: Path) -> tuple[int, int, set[tuple[int, int, int]]]:
    """(width, height, colours) of an 8-bit RGB/RGBA non-interlaced PNG: enough to see what was drawn."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 3 == 0:  # every third row is plenty to find each box's fill
            colours.update(tuple(line[i:i + 3]) for i in range(0, stride, bpp))
        prev = line
    return width, height, colours


def screenshot(svg: Path, png: Path, width: int, height: int, tmp: Path) -> None:
    profile = tmp / f"profile-{svg.stem}"
    profile.mkdir()
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--hide-scrollbars", f"--window-size={width},{height}", f"--screenshot={png}", svg.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]


def hex_rgb(value: str) -> tuple[int, int, int]:
    return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("name", ["lab", "colossus-100k", "sakuraone"])
def test_chromium_renders_the_diagrams(name, tmp_path):
    plan = build_plan(check_spec(CLUSTERS / f"{name}.yaml").spec)
    for rel, data in diagrams.render(plan).items():
        svg = tmp_path / Path(rel).name
        svg.write_bytes(data)
        root = ET.fromstring(data)
        width, height = int(root.get("width")), int(root.get("height"))
        png = tmp_path / f"{svg.stem}.png"
        screenshot(svg, png, width, height, tmp_path)
        w, h, colours = read_png(png)
        assert (w, h) == (width, height)
        fills = {r.get("fill") for r in root.iter("{http://www.w3.org/2000/svg}rect")} - {"#ffffff", "#f7f7f7"}
        assert fills
        for fill in fills:
            assert hex_rgb(fill) in colours, f"{rel}: no pixel of {fill} in the screenshot"
