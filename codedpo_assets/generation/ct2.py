"""CTranslate2: the CPU engine for local models (int8 SmolLM2-135M: ~3x transformers fp32 on 2 cores).

A Hugging Face checkpoint is converted once into ``<checkpoint>-ct2-<quantization>`` beside it and
stamped with what it was made from; a missing, stale or unreadable conversion is rebuilt, and a
conversion that fails falls back to transformers, saying so once. Requests mean what they mean on
``TransformersBackend``: the checkpoint's chat template, prefill, stop strings, a seed per batch,
progress per batch. Log-probabilities for training and evaluation stay on torch (same weights).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from codedpo_assets.generation.backends import (
    Backend,
    GenerationError,
    GenerationParams,
    Request,
    TransformersBackend,
    chat_prompt,
    conversion_lock,
    cut_at_stop,
    dir_identity,
    prefix_of,
)
from codedpo_assets.progress import notice

ENGINES = ("auto", "ctranslate2", "transformers")
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float32")  # what CTranslate2 computes on CPU
STAMP = "codedpo-conversion.json"  # what a converted model was made from; a mismatch means rebuild


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _stamp(source: Path, quantization: str, source_id: str | None = None) -> dict:
    import ctranslate2

    return {"source": source_id or dir_identity(source), "ctranslate2": ctranslate2.__version__, "quantization": quantization}


def _unusable(target: Path, stamp: dict) -> str:
    """Why the conversion at ``target`` cannot be used ("" when it can)."""
    if not target.exists():
        return "missing"
    try:
        found = json.loads((target / STAMP).read_text())
    except (OSError, ValueError):
        return "no readable stamp (interrupted or corrupt)"
    if found != stamp:
        return f"made from {found}, wanted {stamp}"
    return "" if (target / "model.bin").is_file() else "model.bin missing"


def converted(source: Path, quantization: str, log=notice, source_id: str | None = None) -> Path:
    """The CTranslate2 conversion of ``source`` (built now if missing, stale or corrupt; once, when
    several runs ask at the same time). ``source_id``: its ``dir_identity`` when already known."""
    target = source.with_name(f"{source.name}-ct2-{quantization}")
    stamp = _stamp(source, quantization, source_id)
    with conversion_lock(target):
        if reason := _unusable(target, stamp):
            log(f"ctranslate2: converting {source} to {quantization} ({target.name}: {reason})")
            _convert(source, target, quantization, stamp)
    return target


def _convert(source: Path, target: Path, quantization: str, stamp: dict) -> None:
    from ctranslate2.converters import TransformersConverter

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    TransformersConverter(str(source)).convert(str(partial), quantization=quantization, force=True)
    (partial / STAMP).write_text(json.dumps(stamp, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


class CTranslate2Backend:
    """A local HF checkpoint served by CTranslate2 on CPU. ``identity`` names engine, version and
    quantization beside the checkpoint's, so cached completions never mix engines."""

    prefills = True

    def __init__(self, path: str | Path, *, quantization: str = "int8", batch_size: int = 16, log=notice) -> None:
        import ctranslate2
        from transformers import AutoTokenizer

        source = Path(path)
        if not (source / "config.json").is_file():
            raise GenerationError(f"ctranslate2 converts a local checkpoint directory; {str(path)!r} is not one")
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.end_ids = _end_ids(source, self.tokenizer)
        self.quantization, self.replicas, self.batch_size = quantization, _cpu_count(), batch_size
        source_id = dir_identity(source)  # hashed once: the stamp and the identity both name it
        self.model_dir = converted(source, quantization, log, source_id)
        try:
            self._replica(0)
        except (RuntimeError, ValueError) as exc:  # the files passed the stamp check but do not load: convert again, once
            log(f"ctranslate2: {self.model_dir} does not load ({exc}); converting again")
            shutil.rmtree(self.model_dir)
            self.model_dir = converted(source, quantization, log, source_id)
        self.identity = f"ctranslate2-{ctranslate2.__version__}-{quantization}:{source_id}"

    def _replica(self, seed: int):
        """A one-thread generator whose sampling starts from ``seed``. CTranslate2 seeds a worker
        thread's random generator from the global seed at the thread's first draw, so the replica
        draws once now (loading one from the page cache takes ~0.07 s; a batch takes seconds)."""
        import ctranslate2

        ctranslate2.set_random_seed(seed)
        replica = ctranslate2.Generator(
            str(self.model_dir), device="cpu", compute_type=self.quantization, inter_threads=1, intra_threads=1
        )
        replica.generate_batch([self.tokenizer.convert_ids_to_tokens(self.end_ids[:1])], max_length=1, sampling_topk=0)
        return replica

    def _tokens(self, messages) -> list[str]:
        ids = self.tokenizer(chat_prompt(self.tokenizer, messages))["input_ids"]
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        return [tokens] if isinstance(tokens, str) else tokens

    def generate(self, requests: Sequence[Request], params: GenerationParams, progress=None) -> list[str]:
        """Requests sorted by prompt length (a batch then holds prompts of like length: CTranslate2
        feeds a batch's prompts at once only up to the shortest), in batches of ``batch_size`` run side
        by side, one single-threaded replica per core (on 2 cores ~1.5x one two-thread generator).
        A batch is seeded by its first request; the order is fixed, so outputs are reproducible."""
        prompts = [self._tokens(r.messages) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (len(prompts[i]), i))
        texts: dict[int, str] = {}
        for start in range(0, len(order), self.batch_size * self.replicas):
            chunk = order[start : start + self.batch_size * self.replicas]
            size = -(-len(chunk) // min(self.replicas, len(chunk)))  # spread a short chunk over every core
            batches = [chunk[i : i + size] for i in range(0, len(chunk), size)]
            replicas = [
                self._replica(requests[batch[0]].seed) for batch in batches
            ]  # alive until done: deleting one waits for its work
            pending = [self._submit(replica, [prompts[i] for i in batch], params) for replica, batch in zip(replicas, batches)]
            ids = [res.result().sequences_ids[0] for results in pending for res in results]
            for i, text in zip(chunk, self.tokenizer.batch_decode(ids, skip_special_tokens=True)):
                texts[i] = prefix_of(requests[i].messages) + cut_at_stop(text, params.stop)
            if progress:
                progress(len(texts), sum(map(len, ids)))
        return [texts[i] for i in range(len(requests))]

    def _submit(self, replica, prompts: list[list[str]], params: GenerationParams) -> list:
        """Start one batch on ``replica``; the results arrive as it finishes."""
        return replica.generate_batch(
            prompts,
            asynchronous=True,
            max_length=params.max_new_tokens,
            include_prompt_in_result=False,
            end_token=self.end_ids,
            sampling_temperature=params.temperature if params.temperature > 0 else 1.0,
            sampling_topk=0 if params.temperature > 0 else 1,  # 0: the whole vocabulary (top_p cuts it)
            sampling_topp=params.top_p,
            callback=_Stopper(self.tokenizer, params.stop, len(prompts)) if params.stop else None,
        )


def _end_ids(source: Path, tokenizer) -> list[int]:
    """The ids that end a reply, as transformers' ``generate`` reads them (generation config first)."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(source).eos_token_id
    except OSError:
        eos = None
    eos = tokenizer.eos_token_id if eos is None else eos
    return sorted({eos} if isinstance(eos, int) else set(eos))


class _Stopper:
    """``generate_batch`` callback: ends a sequence once its text holds a stop string (the text is
    cut there afterwards, as transformers' ``stop_strings`` leave it). A token is decoded only when
    its raw form shares a character with a stop string's tokens; any other token stands in the tail
    as a character no stop string holds, so it can neither complete nor fake a match."""

    def __init__(self, tokenizer, stop: Sequence[str], n: int) -> None:
        self.tokenizer, self.stop = tokenizer, [s for s in stop if s]
        self.raw = {
            c
            for s in self.stop
            for t in tokenizer.convert_ids_to_tokens(tokenizer(s, add_special_tokens=False)["input_ids"])
            for c in t
        }
        self.tails = [""] * n
        self.keep = max(map(len, self.stop), default=0) + 16

    def __call__(self, step) -> bool:
        piece = self.tokenizer.convert_tokens_to_string([step.token]) if self.raw.intersection(step.token) else "\0"
        tail = (self.tails[step.batch_id] + piece)[-self.keep :]
        self.tails[step.batch_id] = tail
        return any(s in tail for s in self.stop)


_fallbacks_said: set[str] = set()


def local_backend(path: str | Path, engine: str = "auto", *, quantization: str = "int8", batch_size: int = 16) -> Backend:
    """A local checkpoint on the engine asked for. ``auto``: CTranslate2 on CPU, transformers where
    CUDA is (bf16 batches on a GPU). A CTranslate2 conversion that fails falls back to transformers
    and says so once per checkpoint."""
    if engine not in ENGINES:
        raise GenerationError(f"engine: {engine!r} is not one of {ENGINES}")
    if quantization not in QUANTIZATIONS:
        raise GenerationError(f"quantization: {quantization!r} is not one of {QUANTIZATIONS}")
    if engine == "auto":
        import torch

        engine = "transformers" if torch.cuda.is_available() else "ctranslate2"
    if engine == "transformers":
        return TransformersBackend(path, batch_size=batch_size)
    try:
        return CTranslate2Backend(path, quantization=quantization, batch_size=batch_size)
    except GenerationError:
        raise
    except Exception as exc:  # noqa: BLE001 - any conversion failure: the model still works on transformers
        if str(path) not in _fallbacks_said:
            _fallbacks_said.add(str(path))
            notice(f"ctranslate2 unavailable for {path} ({type(exc).__name__}: {exc}); generating with transformers (slower)")
        return TransformersBackend(path, batch_size=batch_size)
