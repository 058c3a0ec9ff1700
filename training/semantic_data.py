"""Semantic-branch records: read the semantic-sft shards, scramble images as recorded, build SFT batches
whose labels cover the answer tokens only."""

from __future__ import annotations

import functools
import io
import json
import random
from dataclasses import dataclass

from .config import ConfigError


@dataclass
class Record:
    key: str
    label: str
    image: bytes
    messages: list
    scramble: dict


def read_records(shards: list[str], skips) -> list[Record]:
    """Every readable record of the shards, in file order; unreadable ones are counted in `skips`."""
    from webdataset.tariterators import tarfile_samples

    from aig.pipeline.shards import image_member

    out = []
    for s in tarfile_samples(({"url": u} for u in sorted(shards)), handler=skips):
        try:
            meta = json.loads(s["json"])
            img = image_member(s)
            msgs = meta["messages"]
            if msgs[-1]["role"] != "assistant":
                raise ValueError(f"{s['__key__']}: the last message must be the assistant's answer")
            out.append(Record(s["__key__"], meta["label"], img, msgs, meta["scramble"]))
        except Exception as e:  # a broken member or a record off the contract
            skips(e)
    return out


@functools.lru_cache(maxsize=4)
def epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The record order of one epoch (seeded by seed and epoch)."""
    from .pixel_stream import derive_seed

    order = list(range(n))
    random.Random(derive_seed(seed, "semantic", epoch)).shuffle(order)
    return tuple(order)


def rank_indices(n: int, seed: int, rank: int, world: int, start: int, count: int) -> list[int]:
    """Record indices number start..start+count-1 of this rank's endless stream (epoch after epoch)."""
    per_epoch = n // world
    out = []
    for i in range(start, start + count):
        epoch, j = divmod(i, per_epoch)
        out.append(epoch_order(n, seed, epoch)[rank + j * world])
    return out


def scrambled_image(rec: Record):
    from PIL import Image

    from aig.labeling.scramble import scramble

    im = Image.open(io.BytesIO(rec.image))
    im.load()
    return scramble(im, rec.scramble)


def _texts(processor, messages: list) -> tuple[str, str]:
    from aig.labeling.vlm import render

    full = render(processor, messages, add_generation_prompt=False)
    prompt = render(processor, messages[:-1], add_generation_prompt=True)
    if not full.startswith(prompt):
        raise ConfigError("the chat template does not render the prompt as a prefix of the full conversation; "
                          "answer-only loss needs that")
    return full, prompt


def encode(processor, img, prompt: str, answer: str) -> dict:
    """One record: the processor's prompt encoding (with the image) followed by the answer's tokens, encoded on
    their own exactly as generation would continue after the prompt; `labels` = -100 on the prompt."""
    import torch

    from aig.labeling.vlm import answer_token_type, encode_batch

    enc = encode_batch(processor, [img], [prompt])
    ans = torch.tensor(processor.tokenizer(answer, add_special_tokens=False)["input_ids"], dtype=torch.long)
    n = enc["input_ids"].shape[1]
    fills = {"attention_mask": 1, "token_type_ids": answer_token_type(processor)}
    out = {}
    for k, v in enc.items():
        if k == "input_ids":
            out[k] = torch.cat([v[0], ans])
        elif hasattr(v, "shape") and v.dim() == 2 and v.shape == (1, n):  # attention mask, token types
            fill = fills.get(k, 0)
            out[k] = torch.cat([v[0], torch.full((len(ans),), fill, dtype=v.dtype)])
        else:
            out[k] = v
    out["labels"] = torch.cat([torch.full((n,), -100, dtype=torch.long), ans])
    return out


def collate(items: list[dict], pad_id: int) -> dict:
    """Right-pad the sequence fields; concatenate the image fields along dim 0."""
    import torch

    width = max(len(it["input_ids"]) for it in items)
    out = {}
    for k in items[0]:
        if items[0][k].dim() == 1:
            fill = {"input_ids": pad_id, "labels": -100}.get(k, 0)
            out[k] = torch.stack([torch.cat([it[k], torch.full((width - len(it[k]),), fill, dtype=it[k].dtype)])
                                  for it in items])
        else:
            out[k] = torch.cat([it[k] for it in items])
    return out


def sft_batch(processor, records: list[Record], max_length: int):
    """Model inputs for the full conversations, with `labels` on the answer tokens only (-100 elsewhere)."""
    items = []
    for r in records:
        full, prompt = _texts(processor, r.messages)
        it = encode(processor, scrambled_image(r), prompt, full[len(prompt):])
        if len(it["input_ids"]) > max_length:
            raise ConfigError(f"record {r.key} has {len(it['input_ids'])} tokens, more than --max-length {max_length}; "
                              "raise --max-length (truncating would cut the answer or the image tokens)")
        items.append(it)
    pad = processor.tokenizer.pad_token_id
    return collate(items, pad if pad is not None else 0)


def verdict_scores(model, processor, records: list[Record], device) -> list[float]:
    """log P('fake') - log P('real') as the answer's verdict word, per record (higher = more fake)."""
    import torch

    prefix = '{"verdict": "'
    scores = []
    model.eval()
    with torch.no_grad():
        for rec in records:
            img = scrambled_image(rec)
            _, prompt = _texts(processor, rec.messages)
            lp = {}
            ids = {}
            for word in ("fake", "real"):
                enc = encode(processor, img, prompt, prefix + word)
                enc.pop("labels")
                ids[word] = {k: (v[None] if v.dim() == 1 else v) for k, v in enc.items()}
            a, b = ids["fake"]["input_ids"][0], ids["real"]["input_ids"][0]
            common = 0
            while common < min(len(a), len(b)) and a[common] == b[common]:
                common += 1
            for word, enc in ids.items():
                enc = {k: v.to(device) for k, v in enc.items()}
                logits = model(**enc).logits[0].float().log_softmax(-1)
                tgt = enc["input_ids"][0]
                lp[word] = float(sum(logits[t - 1, tgt[t]] for t in range(common, len(tgt))))
            scores.append(lp["fake"] - lp["real"])
    model.train()
    return scores
