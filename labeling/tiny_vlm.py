"""A tiny random-weight chat VLM (LLaVA architecture) for tests and the offline demo.

Its outputs mean nothing; it exercises the same `from_pretrained` path as Qwen2.5-VL or LLaVA from the hub.
Usage: python -m labeling.tiny_vlm DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ eos_token if m['role'] == 'assistant' else '' }}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .records import QUESTION, answer_text
    from .schema import CATEGORIES

    corpus = [QUESTION, answer_text("real", []), "user: assistant: "]
    corpus += [answer_text("fake", [{"category": c, "description": f"the {c.replace('_', ' ')} is wrong"}])
               for c in CATEGORIES]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<pad>", "<s>", "</s>", "<image>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   extra_special_tokens={"image_token": "<image>"}, padding_side="left")


def build_tiny_llava(path: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny LLaVA (model + processor with a chat template); loadable offline from `path`."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    path = Path(path)
    tokenizer = _tokenizer()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                max_position_embeddings=2048, tie_word_embeddings=False),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        pad_token_id=tokenizer.pad_token_id,
    )
    config.aig_stand_in = True  # `aig label-semantic` says so in its output
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / "README.md").write_text("Tiny random-weight LLaVA built by `python -m labeling.tiny_vlm`: "
                                    "an untrained stand-in whose outputs carry no meaning.\n")
    return path


if __name__ == "__main__":
    print(build_tiny_llava(sys.argv[1] if len(sys.argv) > 1 else "aig-data/models/tiny-vlm"))
