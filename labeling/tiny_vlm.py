"""Tiny random-weight VLMs for tests and the offline demo: LLaVA (the demo's), and one per supported family
(`build_tiny_vlm(family, DIR)`: qwen2_vl, qwen2_5_vl, idefics3, smolvlm, gemma3, paligemma), each built from its
real architecture's config classes with shrunk sizes and a byte-level BPE tokenizer trained offline.

Their outputs mean nothing; they exercise the same `from_pretrained` path as the hub checkpoints.
Usage: python -m aig.labeling.tiny_vlm DIR [FAMILY]
"""

from __future__ import annotations

import sys
from pathlib import Path


def chat_template(image: str = "<image>", end_of_turn: str = "{{ eos_token }}") -> str:
    """A minimal chat template: `role: content` lines, `image` where the image goes, `end_of_turn` after answers."""
    return (
        "{% for m in messages %}{{ m['role'] }}: "
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}" + image + "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}{% if m['role'] == 'assistant' %}" + end_of_turn + "{% endif %}{{ '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )


CHAT_TEMPLATE = chat_template()


def _tokenizer(specials: tuple[str, ...] = (), named: dict | None = None):
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
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<pad>", "<s>", "</s>", "<image>", *specials],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   extra_special_tokens=named or {"image_token": "<image>"}, padding_side="left")


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
    (path / "README.md").write_text("Tiny random-weight LLaVA built by `python -m aig.labeling.tiny_vlm`: "
                                    "an untrained stand-in whose outputs carry no meaning.\n")
    return path


FAMILIES = ("llava", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "gemma3", "paligemma")
_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2, max_position_embeddings=2048)
_SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)


def _qwen(path: Path, v25: bool):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    if v25:
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model
        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=8,
                      window_size=16, fullatt_block_indexes=[0])
    else:
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model
        vision = dict(depth=1, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=2, patch_size=8)
    marks = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>")
    tok = _tokenizer(marks, {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    ids = {m: tok.convert_tokens_to_ids(m) for m in marks}
    pixels = 32 * 32  # one 32x32 image: 16 patches of 8, 4 tokens after the 2x2 merge
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(patch_size=8, merge_size=2, min_pixels=pixels,
                                                                  max_pixels=pixels),
                            video_processor=Qwen2VLVideoProcessor(patch_size=8, merge_size=2), tokenizer=tok,
                            chat_template=chat_template("".join(marks[:3])))
    text = dict(_TEXT, vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                               "mrope_section": [2, 3, 3]})
    config = Config(text_config=text, vision_config=vision, image_token_id=ids[marks[1]],
                    video_token_id=ids[marks[3]], vision_start_token_id=ids[marks[0]],
                    vision_end_token_id=ids[marks[2]])
    return Model, config, proc, tok


def _idefics(path: Path, smol: bool):
    marks = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
    tok = _tokenizer(marks)
    image = dict(_SIGLIP, image_size=32, patch_size=8)  # 16 patches, 4 tokens after the 2x2 pixel shuffle
    if smol:
        from transformers import SmolVLMConfig as Config
        from transformers import SmolVLMForConditionalGeneration as Model
        from transformers import SmolVLMImageProcessor as ImageProcessor
        from transformers import SmolVLMProcessor as Processor
    else:
        from transformers import Idefics3Config as Config
        from transformers import Idefics3ForConditionalGeneration as Model
        from transformers import Idefics3ImageProcessor as ImageProcessor
        from transformers import Idefics3Processor as Processor
    improc = ImageProcessor(do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32})
    if smol:
        from transformers import SmolVLMVideoProcessor

        extra = {"video_processor": SmolVLMVideoProcessor(size={"longest_edge": 32},
                                                          max_image_size={"longest_edge": 32})}
    else:
        extra = {}
    proc = Processor(image_processor=improc, tokenizer=tok, image_seq_len=4,
                     chat_template=chat_template("<image>", "<end_of_utterance>"), **extra)
    config = Config(text_config=dict(_TEXT, model_type="llama", vocab_size=len(tok)), vision_config=image,
                    scale_factor=2, image_token_id=tok.convert_tokens_to_ids("<image>"))
    return Model, config, proc, tok


def _gemma3(path: Path):
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor,
                              Gemma3Processor)

    marks = ("<start_of_image>", "<image_soft_token>", "<end_of_image>", "<end_of_turn>")
    tok = _tokenizer(marks, {"image_token": marks[1], "boi_token": marks[0], "eoi_token": marks[2]})
    proc = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                           image_seq_length=4, chat_template=chat_template(marks[0], marks[3]))
    config = Gemma3Config(
        text_config=dict(_TEXT, vocab_size=len(tok), head_dim=16, sliding_window=64,
                         layer_types=["sliding_attention", "full_attention"]),
        vision_config=dict(_SIGLIP, image_size=32, patch_size=8), mm_tokens_per_image=4,
        boi_token_index=tok.convert_tokens_to_ids(marks[0]), eoi_token_index=tok.convert_tokens_to_ids(marks[2]),
        image_token_index=tok.convert_tokens_to_ids(marks[1]))
    return Gemma3ForConditionalGeneration, config, proc, tok


def _paligemma(path: Path):
    from transformers import (PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
                              SiglipImageProcessor)

    tok = _tokenizer()
    improc = SiglipImageProcessor(size={"height": 32, "width": 32})
    improc.image_seq_length = 16  # (32 / 8)^2 patches
    proc = PaliGemmaProcessor(image_processor=improc, tokenizer=tok)  # real checkpoints ship no chat template
    config = PaliGemmaConfig(text_config=dict(_TEXT, model_type="gemma", vocab_size=len(tok), head_dim=16),
                             vision_config=dict(_SIGLIP, image_size=32, patch_size=8, projection_dim=32),
                             projection_dim=32, image_token_index=tok.convert_tokens_to_ids("<image>"))
    return PaliGemmaForConditionalGeneration, config, proc, tok


def build_tiny_vlm(family: str, path: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny random-weight VLM of `family` (one of FAMILIES); loadable offline from `path`."""
    import torch

    if family == "llava":
        return build_tiny_llava(path, seed)
    builders = {"qwen2_vl": lambda p: _qwen(p, False), "qwen2_5_vl": lambda p: _qwen(p, True),
                "idefics3": lambda p: _idefics(p, False), "smolvlm": lambda p: _idefics(p, True),
                "gemma3": _gemma3, "paligemma": _paligemma}
    if family not in builders:
        raise ValueError(f"unknown VLM family {family!r}; known: {', '.join(FAMILIES)}")
    path = Path(path)
    model_cls, config, processor, tok = builders[family](path)
    config.get_text_config().pad_token_id = tok.pad_token_id
    config.aig_stand_in = True
    torch.manual_seed(seed)
    model = model_cls(config)
    eos = [tok.eos_token_id]
    if family == "gemma3":  # like the real checkpoints: answers end with <end_of_turn>, also an EOS
        eos.append(tok.convert_tokens_to_ids("<end_of_turn>"))
    elif family in ("idefics3", "smolvlm"):
        eos.append(tok.convert_tokens_to_ids("<end_of_utterance>"))
    model.generation_config.eos_token_id = eos if len(eos) > 1 else eos[0]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    (path / "README.md").write_text(f"Tiny random-weight {family} built by `python -m aig.labeling.tiny_vlm`: "
                                    "an untrained stand-in whose outputs carry no meaning.\n")
    return path


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "aig-data/models/tiny-vlm"
    print(build_tiny_vlm(sys.argv[2], out) if len(sys.argv) > 2 else build_tiny_llava(out))
