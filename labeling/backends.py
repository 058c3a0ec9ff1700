"""Annotator backends behind one interface: `generate(images, prompt, schema, attempt) -> list[Reply]`.

- `TransformersBackend`: a local chat VLM (AutoModelForImageTextToText + AutoProcessor), batched,
  JSON-schema-constrained with llguidance.
- `OpenAIBackend`: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, hosted), bounded
  concurrency, timeouts, retries with backoff on 429/5xx, guided JSON via `response_format`.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass

from aig.manifests.errors import AigError


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    constrained: bool = True  # schema-constrained decoding where the backend offers it
    retry_temperature: float = 0.7  # parse retries sample, so that a retry can differ

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reply:
    text: str | None  # raw model output
    error: str | None = None  # transport/model error after retries (the image stays to do)
    truncated: bool = False  # stopped by the token limit
    invalid: bool = False  # a reply that is not an answer at all (e.g. content that is not text): never parsed


@dataclass(frozen=True)
class BackendSpec:
    kind: str  # transformers | openai
    model: str  # hub id or local path; for openai the served model name
    revision: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    concurrency: int = 4
    timeout_s: float = 120.0
    http_retries: int = 5
    dtype: str = "auto"
    max_response_bytes: int = 16 * 1024 * 1024  # a chat reply is a few KB; a bigger body is cut off

    def endpoint(self) -> str:
        """The base URL as written anywhere (tables, tars, logs): credentials in it masked."""
        from aig.pipeline.redact import redact_url

        return redact_url((self.base_url or "").rstrip("/"))

    def annotator_id(self) -> str:
        if self.kind == "openai":
            return f"openai:{self.endpoint()}#{self.model}"
        return f"transformers:{self.model}" + (f"@{self.revision}" if self.revision else "")


class BackendError(AigError, RuntimeError):
    """The backend cannot be used; the message names the model or endpoint and what to do."""


def make_backend(spec: BackendSpec, decoding: Decoding, threads: int = 1):
    if spec.kind == "transformers":
        return TransformersBackend(spec, decoding, threads)
    if spec.kind == "openai":
        return OpenAIBackend(spec, decoding)
    raise BackendError(f"unknown backend {spec.kind!r}; use transformers or openai")


def check_backend(spec: BackendSpec) -> None:
    """Fail fast in the driver: the model's processor config exists (local path or hub), or the URL is set."""
    if spec.kind == "openai":
        if not spec.base_url:
            raise BackendError("the openai backend needs --base-url (e.g. http://localhost:8000/v1) or OPENAI_BASE_URL")
        if not spec.model:
            raise BackendError("the openai backend needs --model, the served model's name")
        return
    from aig.pipeline.hub import ModelLoadError, read_model_json

    try:
        read_model_json("VLM", spec.model, "config.json", None, spec.revision)
    except ModelLoadError as e:
        raise BackendError(str(e)) from None


class TransformersBackend:
    wants_bytes = False  # takes decoded PIL images

    def __init__(self, spec: BackendSpec, decoding: Decoding, threads: int = 1):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from aig.pipeline.devices import torch_setup

        from . import vlm

        self.spec, self.decoding = spec, decoding
        self.device, self.dtype, self.threads = torch_setup(spec.dtype, threads)
        try:
            self.processor = AutoProcessor.from_pretrained(spec.model, revision=spec.revision)
            self.model = AutoModelForImageTextToText.from_pretrained(spec.model, revision=spec.revision,
                                                                     dtype=self.dtype).to(self.device).eval()
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load the VLM '{spec.model}': {e}") from None
        tok = getattr(self.processor, "tokenizer", self.processor)
        tok.padding_side = "left"  # decoder-only batches generate from the right end
        self.tokenizer = tok
        self.eos = vlm.eos_ids(self.model.generation_config, tok)  # stop on every one (Gemma3 lists several)
        try:
            vlm.prompt_text(self.processor, "")
        except vlm.VLMFormatError as e:
            raise BackendError(f"cannot use the VLM '{spec.model}': {e}") from None
        self.vocab = self.model.get_output_embeddings().weight.shape[0]
        torch.manual_seed(decoding.seed)

    def describe(self) -> dict:
        return {"class": type(self.model).__name__, "processor": type(self.processor).__name__,
                "device": self.device, "dtype": str(self.dtype).removeprefix("torch."), "threads": self.threads}

    def generate(self, images: list, prompt: str, schema: dict | None, attempt: int = 0) -> list[Reply]:
        import torch
        from transformers import LogitsProcessorList

        from . import vlm

        text = vlm.prompt_text(self.processor, prompt)
        inputs = vlm.encode_batch(self.processor, images, [text] * len(images))
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items()}
        d = self.decoding
        temperature = d.temperature if attempt == 0 else max(d.temperature, d.retry_temperature)
        kwargs = {"max_new_tokens": d.max_new_tokens, "do_sample": temperature > 0, "pad_token_id": self.tokenizer.pad_token_id,
                  "eos_token_id": self.eos}
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=d.top_p)
            torch.manual_seed(d.seed + attempt)
        constraint = None
        if schema is not None and d.constrained:
            from .constrained import JsonSchemaLogitsProcessor

            constraint = JsonSchemaLogitsProcessor(self.tokenizer, schema, len(images), self.vocab, self.eos)
            kwargs["logits_processor"] = LogitsProcessorList([constraint])
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new = out[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(new, skip_special_tokens=True)
        ended = [torch.isin(row, torch.tensor(self.eos, device=row.device)).any().item() for row in new]
        return [Reply(t, truncated=not e and len(row) >= d.max_new_tokens) for t, e, row in zip(texts, ended, new)]


class DeadlineExceeded(AigError):
    """A request outlived its whole-request deadline (e.g. a server trickling its reply)."""


class OpenAIBackend:
    """HTTP chat completions. Each request has a whole-request deadline (`timeout_s`, headers and body together:
    a watchdog shuts the socket down when it passes) and a response size cap; one thread pool and one pooled
    HTTP session per thread live as long as the backend, so connections are reused across batches."""

    wants_bytes = True  # sends the stored bytes as they are
    RETRY_STATUS = (429, 500, 502, 503, 504)

    def __init__(self, spec: BackendSpec, decoding: Decoding):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.spec, self.decoding = spec, decoding
        self.url = spec.base_url.rstrip("/") + "/chat/completions"
        self.shown_url = spec.endpoint() + "/chat/completions"  # what error messages say
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=max(1, spec.concurrency), thread_name_prefix="aig-http")

    def describe(self) -> dict:
        return {"endpoint": self.spec.endpoint(), "concurrency": self.spec.concurrency, "timeout_s": self.spec.timeout_s,
                "http_retries": self.spec.http_retries, "max_response_bytes": self.spec.max_response_bytes}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            import requests
            from urllib3.util.retry import Retry

            from .http_deadline import DeadlineAdapter

            retry = Retry(total=self.spec.http_retries, connect=self.spec.http_retries, read=0,
                          status_forcelist=self.RETRY_STATUS, allowed_methods=None, backoff_factor=0.5,
                          backoff_max=30, respect_retry_after_header=True, raise_on_status=False)
            session = requests.Session()
            session.mount("http://", DeadlineAdapter(max_retries=retry))
            session.mount("https://", DeadlineAdapter(max_retries=retry))
            if self.spec.api_key:
                session.headers["Authorization"] = f"Bearer {self.spec.api_key}"
            self._local.session = session
        return session

    def generate(self, images: list, prompt: str, schema: dict | None, attempt: int = 0) -> list[Reply]:
        return list(self._pool.map(lambda img: self.one(img, prompt, schema, attempt), images))

    def body(self, image, prompt: str, schema: dict | None, attempt: int) -> dict:
        d = self.decoding
        body = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(image)}},
                {"type": "text", "text": prompt}]}],
            "max_tokens": d.max_new_tokens,
            "temperature": d.temperature if attempt == 0 else max(d.temperature, d.retry_temperature),
            "top_p": d.top_p,
            "seed": d.seed + attempt,
        }
        if schema is not None and d.constrained:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "annotation", "schema": schema, "strict": True}}
        return body

    def one(self, image, prompt: str, schema: dict | None, attempt: int) -> Reply:
        import json

        import requests

        from aig.pipeline.redact import redact_url

        from .http_deadline import deadline

        cap = self.spec.max_response_bytes
        try:
            with deadline(self.spec.timeout_s) as expired:
                try:
                    r = self._session().post(self.url, json=self.body(image, prompt, schema, attempt),
                                             timeout=(10, self.spec.timeout_s), stream=True)
                    data = _read_capped(r, cap)
                    if expired():  # the socket was shut down and the body ended early
                        raise DeadlineExceeded
                except requests.RequestException as e:
                    if expired():
                        raise DeadlineExceeded from None
                    return Reply(None, error=redact_url(f"{type(e).__name__}: {e}"))
        except DeadlineExceeded:
            return Reply(None, error=f"no complete reply from {self.shown_url} within {self.spec.timeout_s:g}s")
        if data is None:
            return Reply(None, error=f"reply from {self.shown_url} exceeds {cap} bytes")
        text = data[:200].decode("utf-8", "replace")
        if r.status_code != 200:
            return Reply(None, error=f"HTTP {r.status_code} from {self.shown_url}: {text}")
        try:
            choice = json.loads(data)["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            return Reply(None, error=f"malformed response from {self.shown_url} ({type(e).__name__}): {text}")
        if content is not None and not isinstance(content, str):  # e.g. a list or an object: an invalid answer
            return Reply(f"(message.content is a {type(content).__name__}, not text) {json.dumps(content)[:2000]}",
                         invalid=True)
        return Reply(content or "", truncated=choice.get("finish_reason") == "length")


def _read_capped(r, cap: int) -> bytes | None:
    """The whole body, or None (connection closed) once it passes `cap` bytes."""
    declared = r.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        r.close()
        return None
    buf = bytearray()
    for chunk in r.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            r.close()
            return None
    return bytes(buf)


def data_url(image) -> str:
    """An image (PIL or (bytes, mime)) as a data: URL."""
    if isinstance(image, tuple):
        data, mime = image
    else:
        import io

        buf = io.BytesIO()
        image.save(buf, "PNG")
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"

