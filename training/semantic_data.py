"""Semantic-branch records: read the semantic-sft shards, scramble images as recorded, build SFT batches
whose labels cover the answer tokens only."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")


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

    out = []
    for s in tarfile_samples(({"url": u} for u in sorted(shards)), handler=skips):
        try:
            meta = json.loads(s["json"])
            img = next(s[e] for e in IMAGE_EXTS if e in s)
            msgs = meta["messages"]
            if msgs[-1]["role"] != "assistant":
                raise ValueError(f"{s['__key__']}: the last message must be the assistant's answer")
            out.append(Record(s["__key__"], meta["label"], img, msgs, meta["scramble"]))
        except Exception as e:  # a broken member or a record off the contract
            skips(e)
    return out


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    from .pixel_stream import derive_seed

    order = list(range(n))
    random.Random(derive_seed(seed, "semantic", epoch)).shuffle(order)
    return order


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

    from labeling.scramble import scramble

    im = Image.open(io.BytesIO(rec.image))
    im.load()
    return scramble(im, rec.scramble)


def _texts(processor, messages: list) -> tuple[str, str]:
    full = processor.apply_chat_template(messages, tokenize=False)
    prompt = processor.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the full conversation; "
                         "answer-only loss needs that")
    return full, prompt


def sft_batch(processor, records: list[Record], max_length: int):
    """Processor inputs for the full conversations, plus `labels` = input ids on answer tokens, -100 elsewhere."""
    import torch

    images = [scrambled_image(r) for r in records]
    fulls, prompts = zip(*(_texts(processor, r.messages) for r in records))
    inputs = processor(text=list(fulls), images=images, return_tensors="pt", padding=True)
    prompt_lens = [int(processor(text=[p], images=[im], return_tensors="pt")["attention_mask"].sum())
                   for p, im in zip(prompts, images)]
    labels = torch.full_like(inputs["input_ids"], -100)
    for row, plen in enumerate(prompt_lens):
        pos = inputs["attention_mask"][row].nonzero().flatten()
        answer = pos[plen:]
        if len(answer) == 0:
            raise ValueError(f"record {records[row].key}: no answer tokens")
        labels[row, answer] = inputs["input_ids"][row, answer]
    if inputs["input_ids"].shape[1] > max_length:
        raise ValueError(f"a record has {inputs['input_ids'].shape[1]} tokens, more than --max-length {max_length}; "
                         "raise --max-length (truncating would cut the answer or the image tokens)")
    inputs["labels"] = labels
    return inputs


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
                enc = processor(text=[prompt + prefix + word], images=[img], return_tensors="pt")
                ids[word] = enc
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
