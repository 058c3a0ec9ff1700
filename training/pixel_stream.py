"""Paired WebDataset stream for the pixel branch (imports torch: load it lazily from the CLI).

Tars are read with webdataset's tar iterator; adjacent members sharing a pair_id (the real crop and its
reconstruction, written next to each other by the reconstruct stage) become one item. Per epoch the shard
list is shuffled with a seed derived from (seed, epoch); shards are split across the (rank, loader worker)
slots, or, with fewer shards than slots, pairs are dealt round-robin. A shuffle buffer seeded by (seed,
epoch, slot) mixes items; augmentation is seeded by (seed, epoch, pair_id), so a pair's crops do not depend
on which worker read it. The stream is endless (epoch after epoch): every rank takes the same number of
steps. Each batch carries its worker's position, so `--resume` restarts every worker exactly where the
consumed batches left it (items skipped without decoding). Unreadable members are skipped and counted.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch.utils.data import IterableDataset, get_worker_info

from .augment import AugmentRecipe, pair_crops


@dataclass
class StreamSpec:
    shards: list[str]
    recipe: AugmentRecipe
    mean: list[float]
    std: list[float]
    seed: int = 0
    batch_size: int = 16            # crop pairs per batch (2x images)
    crops_per_pair: int = 4         # crops drawn from each decoded pair
    shuffle_buffer: int = 256
    rank: int = 0
    world: int = 1
    exclude_pairs: frozenset = frozenset()       # held back for threshold calibration
    start: dict = field(default_factory=dict)    # logical worker -> [items consumed, crops consumed]
    rotate: int = 0                              # steps already taken: maps loader worker -> logical worker


def derive_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little")


class Skips:
    """Counts unreadable members/pairs; `take()` returns the count since the last call."""

    def __init__(self):
        self.total = 0
        self._reported = 0
        self.last_error = ""

    def __call__(self, exn: Exception) -> bool:  # a webdataset handler: count and go on
        self.total += 1
        self.last_error = repr(exn)[:300]
        return True

    def take(self) -> int:
        n, self._reported = self.total - self._reported, self.total
        return n


def raw_pairs(shards: list[str], slot: int, nslots: int, seed: int, epoch: int, exclude: frozenset,
              skips: Skips) -> Iterator[dict]:
    """This slot's pairs of one epoch, undecoded: {'pair_id', 'real': bytes, 'fake': bytes, 'keys'}."""
    from webdataset.tariterators import tarfile_samples

    from aig.pipeline.shards import image_member

    order = list(shards)
    if epoch >= 0:  # epoch -1: file order (evaluation)
        random.Random(derive_seed(seed, "shards", epoch)).shuffle(order)
    by_shard = len(order) >= nslots
    mine = order[slot::nslots] if by_shard else order
    ordinal = 0
    pending: dict | None = None
    for s in tarfile_samples(({"url": u} for u in mine), handler=skips):
        try:
            meta = json.loads(s["json"])
            pid, label, img = meta["pair_id"], meta["label"], image_member(s)
        except Exception as e:  # missing or broken member
            skips(e)
            continue
        if pid in exclude:
            continue
        if pending is not None and pending["pair_id"] == pid and pending["label"] != label:
            real, fake = (pending, None) if pending["label"] == "real" else (None, pending)
            real = real or {"img": img, "key": s["__key__"]}
            fake = fake or {"img": img, "key": s["__key__"]}
            pending = None
            if by_shard or ordinal % nslots == slot:
                yield {"pair_id": pid, "real": real["img"], "fake": fake["img"], "keys": (real["key"], fake["key"])}
            ordinal += 1
            continue
        if pending is not None:  # its partner never came
            skips(ValueError(f"unpaired sample {pending['key']}"))
        pending = {"pair_id": pid, "label": label, "img": img, "key": s["__key__"]}
    if pending is not None:
        skips(ValueError(f"unpaired sample {pending['key']}"))


def shuffled(items: Iterator, size: int, rng: random.Random) -> Iterator:
    buf: list = []
    for it in items:
        if len(buf) < size:
            buf.append(it)
            continue
        i = rng.randrange(size)
        buf[i], it = it, buf[i]
        yield it
    rng.shuffle(buf)
    yield from buf


def endless_items(spec: StreamSpec, slot: int, nslots: int, skips: Skips) -> Iterator[tuple[int, dict]]:
    epoch = 0
    while True:
        n = 0
        rng = random.Random(derive_seed(spec.seed, "buffer", epoch, slot))
        for item in shuffled(raw_pairs(spec.shards, slot, nslots, spec.seed, epoch, spec.exclude_pairs, skips),
                             spec.shuffle_buffer, rng):
            n += 1
            yield epoch, item
        if n == 0:
            raise RuntimeError(f"loader slot {slot} of {nslots} got no readable pairs from {len(spec.shards)} "
                               f"shard(s) (skipped {skips.total}, last error: {skips.last_error or 'none'}); "
                               "use fewer workers/ranks or more data")
        epoch += 1


def to_tensor(imgs: list, mean: list[float], std: list[float]):
    import numpy as np
    import torch

    a = np.stack([np.asarray(im, dtype=np.float32) for im in imgs]) / 255.0
    a = (a - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


def decode(data: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def batches(spec: StreamSpec, worker: int, nworkers: int) -> Iterator[dict]:
    """Endless batches of one logical loader worker: x (2B,3,c,c) ordered real, fake, real, ...; y 0/1."""
    import torch

    skips = Skips()
    slot, nslots = spec.rank * nworkers + worker, spec.world * nworkers
    done_items, done_crops = spec.start.get(str(worker), [0, 0])
    buf: list = []
    pos = 0
    for epoch, item in endless_items(spec, slot, nslots, skips):
        if pos < done_items:
            pos += 1
            continue
        try:
            real, fake = decode(item["real"]), decode(item["fake"])
            crops = pair_crops(real, fake, random.Random(derive_seed(spec.seed, "aug", epoch, item["pair_id"])),
                               spec.recipe, spec.crops_per_pair)
        except Exception as e:  # undecodable image or mismatched pair
            skips(e)
            crops = []
        for j, (r, f, _) in enumerate(crops):
            if pos == done_items and j < done_crops:
                continue
            buf.append((r, f, item["pair_id"], epoch))
            if len(buf) == spec.batch_size:
                after = [pos, j + 1] if j + 1 < len(crops) else [pos + 1, 0]
                imgs = [im for r_, f_, _, _ in buf for im in (r_, f_)]
                yield {"x": to_tensor(imgs, spec.mean, spec.std),
                       "y": torch.tensor([0.0, 1.0] * len(buf)),
                       "pairs": [b[2] for b in buf], "epoch": buf[-1][3],
                       "worker": worker, "position": after, "skipped": skips.take()}
                buf = []
        pos += 1


class PairDataset(IterableDataset):
    """Each DataLoader worker runs `batches` for its logical worker id."""

    def __init__(self, spec: StreamSpec):
        self.spec = spec

    def __iter__(self):
        info = get_worker_info()
        n = info.num_workers if info else 1
        physical = info.id if info else 0
        return batches(self.spec, (physical + self.spec.rotate) % n, n)


def make_loader(spec: StreamSpec, workers: int):
    """A torch DataLoader over the endless batch stream (workers=0: in this process)."""
    from torch.utils.data import DataLoader

    ds = PairDataset(spec)
    return DataLoader(ds, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None,
                      persistent_workers=False)


def read_pairs(shards: list[str], skips: Skips | None = None, limit: int | None = None,
               only: frozenset | None = None) -> Iterator[tuple]:
    """(pair_id, real PIL, fake PIL) for every readable pair of the shards (or only those in `only`), in order."""
    skips = skips or Skips()
    n = 0
    for item in raw_pairs(sorted(shards), 0, 1, 0, -1, frozenset(), skips):
        if only is not None and item["pair_id"] not in only:
            continue
        if limit is not None and n >= limit:
            return
        try:
            yield item["pair_id"], decode(item["real"]), decode(item["fake"])
            n += 1
        except Exception as e:
            skips(e)
