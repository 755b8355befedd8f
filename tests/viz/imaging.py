"""Reading images back in tests: PNG size from its header, pixels through matplotlib."""

from __future__ import annotations

import io
import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def pixel_stats(data: bytes) -> tuple[float, int]:
    """(share of pixels that are not near-white, number of distinct colours)."""
    import numpy as np
    from matplotlib import image

    img = image.imread(io.BytesIO(data), format="png")[..., :3]
    rgb = (img * 255).round().astype(np.uint8)
    inked = float((rgb.min(axis=2) < 235).mean())
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    return inked, colours
