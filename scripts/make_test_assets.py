"""Generate the small payload files in test-assets/ (committed, so this only runs when they change).

    python scripts/make_test_assets.py

Deterministic output: a 64x48 RGB PNG gradient and a 1 s, 16 kHz mono WAV tone (standard library), and
the same gradient as a baseline JPEG (needs Pillow: `pip install pillow`; only this script uses it).
"""

from __future__ import annotations

import math
import struct
import wave
import zlib
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "test-assets"


def png(width: int, height: int) -> bytes:
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes((x * 255 // (width - 1), y * 255 // (height - 1), 128))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def write_wav(path: Path, seconds: float = 1.0, rate: int = 16000, freq: float = 440.0) -> None:
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def write_jpeg(path: Path, png_path: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("the JPEG needs Pillow: pip install pillow") from None
    with Image.open(png_path) as image:
        image.convert("RGB").save(path, "JPEG", quality=85, optimize=True)


def main() -> None:
    ASSETS.mkdir(exist_ok=True)
    (ASSETS / "image-64x48.png").write_bytes(png(64, 48))
    write_jpeg(ASSETS / "image-64x48.jpg", ASSETS / "image-64x48.png")
    write_wav(ASSETS / "tone-1s-16khz.wav")
    for path in sorted(ASSETS.iterdir()):
        print(f"{path.relative_to(ASSETS.parent)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
