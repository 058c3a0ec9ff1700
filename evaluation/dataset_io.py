"""Read a dataset's samples (manifest rows) and their image bytes straight from the tars."""

from __future__ import annotations

from pathlib import Path

from aig.manifests.dataset import Dataset

# Rows that are images of their own (semantic-sft samples repeat images already in the dataset).
IMAGE_TASKS = ("both", "pixel", "semantic")


def sample_rows(root: Path, split: str | None = None) -> list[dict]:
    """Image samples with the input's JPEG quality inherited by pair members (they share the source)."""
    where = "list_contains(?, s.task)" + (" and s.split = ?" if split else "")
    return Dataset(root).query(f"""
        select s.*, case when s.pair_id is not null then coalesce(s.source_quality, src.source_quality)
                         else s.source_quality end as input_quality
        from samples s left join (select key, source_quality from samples where stage = 'ingest') src
             on src.key = s.source_id
        where {where} order by s.key""", [list(IMAGE_TASKS)] + ([split] if split else []))


def open_rgb(data: bytes):
    """(RGB image, None) or (None, reason)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB"), None
    except Exception as e:
        return None, f"unreadable: {type(e).__name__}: {e}"


def open_path(path: str):
    """(RGB image, None) or (None, reason) for a file on disk."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as e:
        return None, f"unreadable: {e}"
    if not data:
        return None, "unreadable: empty file"
    return open_rgb(data)
