"""The two branches at inference: the pixel checkpoint (probabilities) and the VLM (verdict + named inconsistencies)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from aig.manifests.errors import AigError


def default_threads() -> int:
    """CPU threads for inference: half the cores, at most 4 (more oversubscribes a shared machine badly)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def set_threads(n: int | None) -> int:
    import torch

    torch.set_num_threads(n or default_threads())
    return torch.get_num_threads()


def resolve_run_folder(path: Path, marker: str, subfolders: tuple[str, ...]) -> Path:
    """A training run folder stands for its export: the first subfolder holding `marker`."""
    if path.is_dir() and not (path / marker).is_file():
        for sub in subfolders:
            if (path / sub / marker).is_file():
                return path / sub
    return path


class BranchError(AigError, RuntimeError):
    """A branch cannot be loaded; the message names the path and what to do."""


class PixelBranch:
    """A pixel-artifact checkpoint written by `aig train --branch pixel` (aig.training.checkpoint)."""

    def __init__(self, path: str | Path, batch_size: int = 16):
        try:
            from aig.training.checkpoint import load_pixel_model
        except ImportError as e:
            raise BranchError(f"the pixel branch needs aig.training.checkpoint: {e}") from None
        path = resolve_run_folder(Path(path), "config.json", ("best", "final"))
        if not path.exists():
            raise BranchError(f"pixel checkpoint '{path}' does not exist: train one with `aig train --branch pixel` "
                              f"or pass --pixel PATH")
        try:
            self.model, self.cfg = load_pixel_model(path)
        except Exception as e:
            raise BranchError(f"cannot load the pixel checkpoint '{path}': {type(e).__name__}: {e}") from None
        import torch

        self.model = self.model.to("cuda" if torch.cuda.is_available() else "cpu")
        self.path, self.batch_size = str(path), batch_size
        self.threshold = self.cfg.get("threshold")  # calibrated on held-back train pairs, when training did

    def score(self, images: list) -> list[float]:
        from aig.training.checkpoint import score_images

        out: list[float] = []
        for i in range(0, len(images), self.batch_size):
            out += [float(p) for p in score_images(self.model, self.cfg, images[i:i + self.batch_size])]
        return out


@dataclass
class SemanticAnswer:
    verdict: str | None
    status: str
    inconsistencies: list[dict] = field(default_factory=list)
    text: str = ""
    prob_fake: float | None = None  # P(fake) from the verdict word's likelihood (ranking score)

    @property
    def says_fake(self) -> bool:
        return self.verdict == "fake"


def answer_schema() -> dict:
    """The JSON the semantic branch was trained to answer (aig.labeling.records.answer_text)."""
    from aig.labeling.schema import CATEGORIES, MAX_DESCRIPTION, MAX_INCONSISTENCIES

    item = {"type": "object", "additionalProperties": False, "required": ["category", "description"],
            "properties": {"category": {"enum": list(CATEGORIES)},
                           "description": {"type": "string", "maxLength": MAX_DESCRIPTION}}}
    return {"type": "object", "additionalProperties": False, "required": ["verdict", "inconsistencies"],
            "properties": {"verdict": {"enum": ["real", "fake"]},
                           "inconsistencies": {"type": "array", "maxItems": MAX_INCONSISTENCIES, "items": item}}}


def _base_of_adapter(adapter: Path) -> str:
    cfg = adapter / "adapter_config.json"
    if not cfg.is_file():
        raise BranchError(f"'{adapter}' is not a peft adapter folder (no adapter_config.json)")
    base = json.loads(cfg.read_text()).get("base_model_name_or_path")
    if not base:
        raise BranchError(f"adapter '{adapter}' does not name its base model: pass --semantic-model")
    return base


class SemanticBranch:
    """A chat VLM (AutoModelForImageTextToText), optionally with a LoRA adapter, asked aig.labeling.records.QUESTION."""

    def __init__(self, model: str | None, adapter: str | None = None, batch_size: int = 4,
                 max_new_tokens: int = 256, constrained: bool = False):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from aig.pipeline.devices import torch_setup

        if adapter:
            adapter = str(resolve_run_folder(Path(adapter), "adapter_config.json", ("adapter",)))
        if adapter and not Path(adapter).is_dir():
            raise BranchError(f"semantic adapter '{adapter}' is not a folder: pass the adapter directory "
                              f"written by `aig train --branch semantic`")
        model = model or _base_of_adapter(Path(adapter))
        self.model_id, self.adapter = model, adapter
        self.device, self.dtype, _ = torch_setup("auto", torch.get_num_threads())
        try:
            own = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
            proc_src = adapter if adapter and any((Path(adapter) / f).is_file() for f in own) else model
            self.processor = AutoProcessor.from_pretrained(proc_src)
            net = AutoModelForImageTextToText.from_pretrained(model, dtype=self.dtype)
        except (OSError, ValueError) as e:
            raise BranchError(f"cannot load the VLM '{model}': {e}") from None
        if adapter:
            from peft import PeftModel

            try:
                net = PeftModel.from_pretrained(net, adapter)
            except Exception as e:
                raise BranchError(f"cannot load the adapter '{adapter}' onto '{model}': {e}") from None
        self.model = net.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"
        self.batch_size, self.max_new_tokens, self.constrained = batch_size, max_new_tokens, constrained
        from aig.labeling.vlm import VLMFormatError, eos_ids, prompt_text

        self.eos = eos_ids(self.model.generation_config, self.tokenizer)
        try:
            prompt_text(self.processor, "")
        except VLMFormatError as e:
            raise BranchError(f"cannot use the VLM '{model}': {e}") from None
        torch.manual_seed(0)

    def ask(self, images: list) -> list[SemanticAnswer]:
        from aig.labeling.records import QUESTION, parse_answer

        out = []
        for i in range(0, len(images), self.batch_size):
            batch = images[i:i + self.batch_size]
            probs = self.verdict_probs(batch, QUESTION)
            for text, prob in zip(self._generate(batch, QUESTION), probs):
                p = parse_answer(text)
                out.append(SemanticAnswer(p.verdict, p.status, p.inconsistencies, text, prob))
        return out

    def _prompt(self, question: str) -> str:
        from aig.labeling.vlm import prompt_text

        return prompt_text(self.processor, question)

    def verdict_probs(self, images: list, question: str) -> list[float]:
        """sigmoid(log P('fake') - log P('real')) as the answer's verdict word, after `{"verdict": "`
        (the format of aig.labeling.records.answer_text), so the branch has a ranking score for AP/AUROC."""
        import torch

        from aig.labeling.vlm import answer_token_type, encode_batch

        prompt = self._prompt(question)
        enc = encode_batch(self.processor, images, [prompt] * len(images))
        n = enc["input_ids"].shape[1]
        answers = {w: self.tokenizer('{"verdict": "' + w, add_special_tokens=False)["input_ids"] for w in ("fake", "real")}
        a, b = answers["fake"], answers["real"]
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        logp = {}
        for word, ans in answers.items():
            ids = torch.tensor(ans, dtype=torch.long).expand(len(images), -1)
            inputs = {}
            for k, v in enc.items():
                if k == "input_ids":
                    v = torch.cat([v, ids], 1)
                elif torch.is_tensor(v) and v.dim() == 2 and v.shape == (len(images), n):  # masks, token types
                    fill = 1 if k == "attention_mask" else answer_token_type(self.processor) if k == "token_type_ids" else 0
                    v = torch.cat([v, torch.full((len(images), len(ans)), fill, dtype=v.dtype)], 1)
                inputs[k] = v.to(self.device, self.dtype) if torch.is_tensor(v) and v.is_floating_point() else (
                    v.to(self.device) if torch.is_tensor(v) else v)
            with torch.inference_mode():
                lp = self.model(**inputs).logits.float().log_softmax(-1)
            tgt = inputs["input_ids"]
            logp[word] = sum(lp[:, n + j - 1].gather(1, tgt[:, n + j, None])[:, 0] for j in range(common, len(ans)))
        return torch.sigmoid(logp["fake"] - logp["real"]).cpu().tolist()

    def _generate(self, images: list, question: str) -> list[str]:
        import torch

        from aig.labeling.vlm import encode_batch

        prompt = self._prompt(question)
        inputs = encode_batch(self.processor, images, [prompt] * len(images))
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items()}
        kwargs = {}
        if self.constrained:  # llguidance: the answer always parses (aig.labeling.constrained)
            from transformers import LogitsProcessorList

            from aig.labeling.constrained import JsonSchemaLogitsProcessor

            vocab = self.model.get_output_embeddings().weight.shape[0]
            kwargs["logits_processor"] = LogitsProcessorList([JsonSchemaLogitsProcessor(
                self.tokenizer, answer_schema(), len(images), vocab, self.eos)])
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos, **kwargs)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
