"""JSON-schema-constrained decoding for transformers `generate`, with llguidance (no ready processor exists)."""

from __future__ import annotations

import json


class JsonSchemaLogitsProcessor:
    """A `LogitsProcessor`: one llguidance matcher per batch row; tokens the schema forbids get -inf.

    Build one per `generate` call (matchers hold the rows' state). `eos_token_id`: one id or a list (every
    one ends a row; the grammar's end is the first).
    """

    def __init__(self, tokenizer, schema: dict, batch_size: int, vocab_size: int, eos_token_id: int | list[int]):
        import llguidance
        import llguidance.hf

        eos_ids = list(eos_token_id) if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]
        self.lltok = _lltokenizer(tokenizer, vocab_size, eos_ids[0])
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema),
                                                               defaults={"whitespace_flexible": False})
        self.matchers = [llguidance.LLMatcher(self.lltok, grammar) for _ in range(batch_size)]
        self.eos, self.eos_ids = eos_ids[0], set(eos_ids)
        self.prompt_len: int | None = None
        self.finished = [False] * batch_size

    def __call__(self, input_ids, scores):
        import numpy as np
        import torch

        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        else:
            for row, m in enumerate(self.matchers):
                tok = int(input_ids[row, -1])
                if self.finished[row] or tok in self.eos_ids or m.is_stopped():
                    self.finished[row] = True
                    continue
                m.consume_token(tok)
        masks = []
        for row, m in enumerate(self.matchers):
            if self.finished[row] or m.is_error():
                allowed = np.zeros(scores.shape[1], dtype=bool)
                allowed[self.eos] = True
            else:
                bias = np.frombuffer(m.compute_logit_bias(), dtype=np.uint8)
                allowed = np.zeros(scores.shape[1], dtype=bool)
                n = min(len(bias), scores.shape[1])
                allowed[:n] = bias[:n] > 0
                if not allowed.any():
                    allowed[self.eos] = True
            masks.append(allowed)
        mask = torch.from_numpy(np.stack(masks)).to(scores.device)
        return scores.masked_fill(~mask, float("-inf"))

    def errors(self) -> list[str]:
        return [m.get_error() for m in self.matchers]


_CACHE: dict = {}


def _lltokenizer(tokenizer, vocab_size: int, eos_token_id: int):
    """llguidance's view of a HF tokenizer (~1 s to build; cached per tokenizer)."""
    import llguidance.hf

    key = (id(tokenizer), vocab_size, eos_token_id)
    held = _CACHE.get(key)
    if held is None or held[0] is not tokenizer:  # the entry holds its tokenizer, so an id is never reused for another
        held = _CACHE[key] = (tokenizer, llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size,
                                                                     eos_token=eos_token_id))
    return held[1]
