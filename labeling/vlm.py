"""What differs between VLM families, in one place, for labeling, semantic training and evaluation: the prompt
format (the chat template, or PaliGemma's prefix format), how images go to the processor (one list per
sample), the EOS ids generation stops on (all of them), the answer's token types and the default LoRA
targets (the language model's linear layers, never the vision tower's)."""

from __future__ import annotations

import re

from aig.manifests.errors import AigError

PREFIX_LM_PROCESSORS = ("PaliGemmaProcessor",)  # no chat template: image tokens + prefix text; the answer is a suffix


class VLMFormatError(AigError, ValueError):
    """A processor whose prompt format aig does not know; the message says what to do."""


def is_prefix_lm(processor) -> bool:
    return getattr(processor, "chat_template", None) is None and type(processor).__name__ in PREFIX_LM_PROCESSORS


def _user_parts(message: dict) -> tuple[int, str]:
    content = message["content"]
    if isinstance(content, str):
        return 0, content
    return (sum(1 for c in content if c.get("type") == "image"),
            "".join(c["text"] for c in content if c.get("type") == "text"))


def render(processor, messages: list[dict], add_generation_prompt: bool) -> str:
    """The text of a conversation as the model expects it. A prefix LM (PaliGemma) has no chat template: its
    prompt is the image tokens and the question (the processor adds BOS and the newline), its answer the
    assistant's text followed by EOS."""
    if getattr(processor, "chat_template", None) is not None:
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    if not is_prefix_lm(processor):
        raise VLMFormatError(f"the processor {type(processor).__name__} has no chat template and no known prompt "
                             "format; use a chat (instruct) checkpoint, or add a chat_template to its processor")
    n_images, question = _user_parts(messages[0])
    text = processor.image_token * n_images + question
    for m in messages[1:]:
        if m["role"] == "assistant":
            text += _user_parts(m)[1] + processor.tokenizer.eos_token
    return text


def prompt_text(processor, question: str) -> str:
    """The generation prompt for one image and a question."""
    return render(processor, [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                  add_generation_prompt=True)


def encode_batch(processor, images: list, texts: list[str]):
    """Processor inputs for one image per text; images go as one list per sample (Gemma3, Idefics3 need it)."""
    return processor(images=[[im] for im in images], text=texts, return_tensors="pt", padding=True)


def answer_token_type(processor) -> int:
    """token_type_ids value of answer tokens: 1 for a prefix LM (its causal suffix), else 0 (text)."""
    return 1 if is_prefix_lm(processor) else 0


def eos_ids(generation_config, tokenizer) -> list[int]:
    """Every id generation stops on: the generation config's (an int or a list, e.g. Gemma3's <end_of_turn>),
    else the tokenizer's EOS."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    ids = eos if isinstance(eos, (list, tuple)) else [eos]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def language_model_prefix(model) -> str:
    """Dotted name of the model's language-model (decoder) submodule, e.g. `model.language_model` or
    `model.text_model` (Idefics3)."""
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError, ValueError):
        decoder = None
    for name, module in model.named_modules():
        if decoder is not None and module is decoder and name:
            return name
    for name, _ in model.named_modules():  # fallback by name
        if name.rsplit(".", 1)[-1] in ("language_model", "text_model"):
            return name
    raise VLMFormatError(f"cannot find the language model inside {type(model).__name__}; pass --lora-targets")


def default_lora_targets(model) -> str:
    """A peft target regex: every Linear layer inside the language model (its attention and MLP projections)."""
    from torch import nn

    prefix = language_model_prefix(model)
    leaves = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                     if isinstance(m, nn.Linear) and name.startswith(prefix + ".")})
    if not leaves:
        raise VLMFormatError(f"the language model {prefix} of {type(model).__name__} has no Linear layer; "
                             "pass --lora-targets")
    return rf"^{re.escape(prefix)}\..*\.({'|'.join(map(re.escape, leaves))})$"
