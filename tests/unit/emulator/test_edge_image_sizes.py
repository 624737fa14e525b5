"""The edge emulation counts the sizes of the images it receives (`/stats`: `image_sizes` per detector),
read from the PNG or JPEG header."""

from __future__ import annotations

import pytest

from inferswarm.emulator.edge import MAX_IMAGE_SIZES, PodCounters, image_dimensions
from inferswarm.protocols.groundlight import make_jpeg, make_png
from tests.conftest import ASSETS


@pytest.mark.parametrize(("width", "height"), [(8, 8), (320, 240), (641, 479), (4096, 9)])
def test_generated_images_are_read_back_at_their_size(width: int, height: int) -> None:
    assert image_dimensions(make_jpeg(width, height, 3)) == (width, height)
    assert image_dimensions(make_png(width, height, 3)) == (width, height)


def test_asset_images_and_unreadable_ones() -> None:
    assert image_dimensions((ASSETS / "image-64x48.jpg").read_bytes()) == (64, 48)
    assert image_dimensions((ASSETS / "image-64x48.png").read_bytes()) == (64, 48)
    for data in (b"", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"\x89PNG\r\n\x1a\n", b"RIFF0000WEBP"):
        assert image_dimensions(data) is None


def test_the_counter_is_bounded() -> None:
    counters = PodCounters()
    counters.count_image(make_png(320, 240, 1))
    counters.count_image(make_jpeg(320, 240, 2))
    counters.count_image(b"\xff\xd8")
    for side in range(100, 100 + MAX_IMAGE_SIZES + 3):
        counters.count_image(make_png(side, 10, 1))
    assert counters.image_sizes["320x240"] == 2 and counters.image_sizes["unknown"] == 1
    assert len(counters.image_sizes) == MAX_IMAGE_SIZES + 1
    assert counters.image_sizes["other"] == 5
