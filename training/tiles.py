"""Crops for scoring a whole image: a grid of non-overlapping native-resolution tiles (no resizing)."""

from __future__ import annotations


def tile_boxes(width: int, height: int, crop: int, max_tiles: int) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of a grid of crop x crop tiles, centred; evenly thinned to max_tiles.
    A side shorter than `crop` gives one tile that runs past the image (padded by the caller)."""
    def starts(n: int) -> list[int]:
        if n <= crop:
            return [0]
        k = n // crop
        off = (n - k * crop) // 2
        return [off + i * crop for i in range(k)]

    boxes = [(x, y, x + crop, y + crop) for y in starts(height) for x in starts(width)]
    if len(boxes) > max_tiles:
        step = len(boxes) / max_tiles
        boxes = [boxes[int(i * step + step / 2)] for i in range(max_tiles)]
    return boxes
