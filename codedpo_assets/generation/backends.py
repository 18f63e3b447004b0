"""One generation interface, three backends: the embedded model, any HF model, OpenAI-compatible servers.

A backend turns chat prompts into completions. ``identity`` names the model exactly (path +
content hash or server model id) so the generation cache never mixes models.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

Messages = list[dict[str, str]]
COMPLETION_ROLE = "completion"  # a request of one such message is plain text to continue (local backends)


class GenerationError(RuntimeError):
    """Generation cannot run (missing model, unreachable server); the message says how to fix it."""


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 1.5  # the paper's sampling temperature
    top_p: float = 1.0
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()  # generation ends at the first of these (not included in the text)

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def prefix_of(messages: Messages) -> str:
    """An assistant message at the end is a prefill: the reply continues it (and starts with it)."""
    return messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else ""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(ends)] if ends else text


@dataclass(frozen=True)
class Request:
    messages: Messages
    seed: int  # derived from the prompt text and sample index: same config → same outputs


class Backend(Protocol):
    identity: str
    prefills: bool  # continues a final assistant message; otherwise that message is dropped

    def generate(
        self, requests: Sequence[Request], params: GenerationParams, progress: Callable[[int, int], None] | None = None
    ) -> list[str]: ...


@contextmanager
def conversion_lock(target: Path) -> Iterator[None]:
    """Held while ``target`` is checked and built: runs that start together (parallel partitions,
    several processes) convert a model once; the others wait, then find it built."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def chat_prompt(tokenizer, messages: Messages) -> str:
    """The checkpoint's chat template; a final assistant message is continued, not closed. A lone
    ``COMPLETION_ROLE`` message is the prompt text itself (bare completion, no template)."""
    if messages and messages[0]["role"] == COMPLETION_ROLE:
        return messages[0]["content"]
    if prefix_of(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def dir_identity(path: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(path.glob("*.json")) + sorted(path.glob("*.safetensors")):
        st = f.stat()
        digest.update(f"{f.name}:{st.st_size}".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(1 << 20))
    return f"{path.name}@{digest.hexdigest()[:16]}"


class TransformersBackend:
    """Local or Hub HF causal LM: chat template, left-padded batches, seeded sampling, CUDA+bf16 if present."""

    def __init__(self, path: str | Path, *, batch_size: int = 8) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise GenerationError(f"model path {str(path)!r} does not exist (and HF_HUB_OFFLINE=1): set model_path")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()  # type: ignore[arg-type]  # transformers types .to() by its decorator
        except OSError as exc:
            raise GenerationError(f"cannot load model {str(path)!r}: {exc}") from exc
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.identity = dir_identity(Path(path)) if Path(path).is_dir() else str(path)
        self.prefills = True

    def generate(self, requests, params, progress=None):
        import torch

        outputs: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            enc = self.tokenizer([chat_prompt(self.tokenizer, r.messages) for r in batch], return_tensors="pt", padding=True).to(
                self.device
            )
            torch.manual_seed(batch[0].seed)  # the batch is fixed by the request order: reproducible
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    do_sample=params.temperature > 0,
                    temperature=params.temperature if params.temperature > 0 else None,
                    top_p=params.top_p,
                    top_k=0,  # the whole vocabulary, as on CTranslate2 (None would mean the generation config's 50)
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    stop_strings=list(params.stop) or None,
                    tokenizer=self.tokenizer if params.stop else None,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            outputs += [prefix_of(r.messages) + cut_at_stop(t, params.stop) for r, t in zip(batch, texts)]
            if progress:
                progress(len(outputs), int((new != self.tokenizer.pad_token_id).sum()))
        return outputs


class OpenAIBackend:
    """Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp server, Ollama)."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "", concurrency: int = 64, retries: int = 3, timeout_s: float = 120.0,
                 prefill: bool = False) -> None:  # fmt: skip
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.prefills = prefill  # vLLM/SGLang: continue_final_message; other servers may reject it
        self.concurrency, self.retries, self.timeout_s = concurrency, retries, timeout_s
        self.identity = f"openai:{base_url.rstrip('/')}#{model}"

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500 and exc.code != 429:
                    raise GenerationError(f"{self.url}: HTTP {exc.code} {exc.read()[:300]!r}") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
                last = exc
            if attempt < self.retries:
                time.sleep(min(0.5 * 2**attempt, 8.0))
        raise GenerationError(
            f"{self.url} unreachable after {self.retries + 1} attempts (exponential backoff from 0.5 s, "
            f"timeout {self.timeout_s} s each): {last}"
        )

    def _one(self, request: Request, params: GenerationParams) -> tuple[str, int]:
        prefix = prefix_of(request.messages)
        if request.messages and request.messages[0]["role"] == COMPLETION_ROLE:
            raise GenerationError(f"{self.url}: bare completion prompts need a local backend (this one speaks the chat API)")
        messages = request.messages[:-1] if prefix and not self.prefills else request.messages
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": request.seed,
            "n": 1,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if prefix and self.prefills:
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        reply = self._post(body)
        try:
            tokens = int((reply.get("usage") or {}).get("completion_tokens") or 0)
            text = reply["choices"][0]["message"]["content"] or ""
            return (prefix + text if self.prefills else text), tokens
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise GenerationError(f"{self.url}: unexpected reply {str(reply)[:300]}") from exc

    def generate(self, requests, params, progress=None):
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = [pool.submit(self._one, r, params) for r in requests]
            outputs = []
            for f in futures:
                text, tokens = f.result()
                outputs.append(text)
                if progress:
                    progress(len(outputs), tokens)  # tokens as reported by the server's usage field
        return outputs
