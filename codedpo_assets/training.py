"""Preference training with TRL: DPO, RPO (DPO + SFT term), KTO and SFT-on-chosen ablation arms.

Pure core (no Dagster): ``train`` reads pair dicts, fine-tunes a base model (LoRA by default on
CPU, merged into the weights at the end) and writes a checkpoint directory that
``AutoModelForCausalLM.from_pretrained`` loads offline. The directory appears only when complete:
training writes to ``<name>.partial`` and renames, so an interrupted or out-of-memory run leaves
earlier checkpoints untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codedpo_assets.generation.tasks import FENCE, solution_messages

ARMS = ("dpo", "rpo", "kto", "sft")


class TrainingError(RuntimeError):
    """Training cannot start (no pairs, unknown arm, bad settings); the message says why."""


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs; defaults suit LoRA on a 2-core CPU (the asset config documents each)."""

    arm: str = "dpo"
    beta: float = 0.1
    sft_weight: float = 1.0  # rpo: weight of the NLL term on chosen (the paper's RPO)
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    grad_accum: int = 1
    max_length: int = 512
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0

    def check(self) -> None:
        if self.arm not in ARMS:
            raise TrainingError(f"arm {self.arm!r} is not one of {ARMS}")
        if self.arm == "kto" and self.batch_size < 2:
            raise TrainingError("kto needs batch_size >= 2 (TRL's KL estimate pairs examples within a batch)")
        if self.max_length < 32 or self.batch_size < 1 or self.learning_rate <= 0:
            raise TrainingError(f"max_length >= 32, batch_size >= 1 and learning_rate > 0 required: {self}")


@dataclass
class TrainResult:
    path: Path
    content_hash: str
    steps: int
    runtime_s: float
    truncated: int  # pairs longer than max_length (TRL truncates them, keep_start)
    unusable: int  # pairs whose prompt alone fills max_length (TRL drops them)
    curves: list[dict[str, float]] = field(default_factory=list)  # one dict per logged step


def chat_example(pair: dict) -> dict:
    """A pair in the chat format the generator prompts with, so training moves the sampled policy."""
    prompt = solution_messages(pair["prompt"])[:-1]  # without the prefill: TRL applies the template

    def reply(code: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": f"{FENCE}python\n{code.rstrip()}\n{FENCE}"}]

    return {"prompt": prompt, "chosen": reply(pair["chosen"]), "rejected": reply(pair["rejected"])}


def count_truncated(tokenizer: Any, examples: Sequence[dict], max_length: int) -> tuple[int, int]:
    """(truncated, unusable): prompt + longer reply over ``max_length`` tokens; prompt alone that long
    (TRL drops those: nothing of the reply would be left to learn from)."""
    truncated = unusable = 0
    for ex in examples:
        prompt = tokenizer.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        n_reply = max(len(tokenizer(ex[s][0]["content"], add_special_tokens=False)["input_ids"]) for s in ("chosen", "rejected"))
        truncated += n_prompt + n_reply + 2 > max_length
        unusable += n_prompt >= max_length
    return truncated, unusable


def dir_hash(path: Path) -> str:
    """Content hash of every file in a checkpoint directory (names + bytes)."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _progress_callback(report: Callable[[dict], None], curves: list[dict[str, float]]):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Step / total, elapsed and ETA on every log; numeric logs become the training curves."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) and k != "epoch"}
            if "loss" not in numbers and not any(k.startswith("rewards/") for k in numbers):
                return  # the final summary (train_runtime, ...) is not a curve point
            elapsed = time.monotonic() - self.start
            eta = elapsed / max(state.global_step, 1) * (state.max_steps - state.global_step)
            curves.append({"step": float(state.global_step), **numbers})
            report({"step": state.global_step, "total": state.max_steps, "elapsed_s": elapsed, "eta_s": eta, **numbers})

    return Progress()


def _trainer(settings: TrainSettings, model: Any, ref: Any, tokenizer: Any, examples: list[dict], out: Path, cuda: bool):
    from datasets import Dataset

    common: dict[str, Any] = {
        "output_dir": str(out), "per_device_train_batch_size": settings.batch_size, "gradient_accumulation_steps": settings.grad_accum,
        "num_train_epochs": settings.epochs, "max_steps": settings.max_steps, "learning_rate": settings.learning_rate, "logging_steps": 1,
        "save_strategy": "no", "report_to": "none", "seed": settings.seed, "bf16": cuda, "use_cpu": not cuda, "disable_tqdm": True,
        "gradient_checkpointing": False, "max_length": settings.max_length, "dataloader_num_workers": 0,
    }  # fmt: skip
    peft = None
    if settings.lora:
        from peft import LoraConfig

        peft = LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    if settings.arm == "sft":
        from trl import SFTConfig, SFTTrainer

        data = Dataset.from_list([{"prompt": e["prompt"], "completion": e["chosen"]} for e in examples])
        return SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=data, processing_class=tokenizer, peft_config=peft)
    paired: dict[str, Any] = {"model": model, "ref_model": ref, "train_dataset": Dataset.from_list(examples), "processing_class": tokenizer,
                              "peft_config": peft}  # fmt: skip
    if settings.arm == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer(args=KTOConfig(beta=settings.beta, **common), **paired)
    from trl import DPOConfig, DPOTrainer

    losses = {"dpo": (["sigmoid"], None), "rpo": (["sigmoid", "sft"], [1.0, settings.sft_weight])}[settings.arm]
    return DPOTrainer(args=DPOConfig(beta=settings.beta, loss_type=losses[0], loss_weights=losses[1], **common), **paired)


def train(
    pairs: Sequence[dict],
    base_model: str | Path,
    out_root: Path,
    settings: TrainSettings,
    *,
    report: Callable[[dict], None] = lambda _: None,
    metadata: dict | None = None,
) -> TrainResult:
    """Fine-tune ``base_model`` on preference ``pairs`` (prompt/chosen/rejected code strings).

    The checkpoint lands in ``out_root/<arm>-<content hash>`` (merged weights + tokenizer +
    ``training.json`` with settings, curves and ``metadata``).
    """
    settings.check()
    if not pairs:
        raise TrainingError("no training pairs")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(settings.seed)
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    # Without LoRA TRL would rebuild the reference from config._name_or_path: pass it explicitly.
    needs_ref = not settings.lora and settings.arm in ("dpo", "rpo", "kto")
    ref = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype) if needs_ref else None
    examples = [chat_example(p) for p in pairs]
    truncated, unusable = count_truncated(tokenizer, examples, settings.max_length)
    if unusable == len(examples):
        raise TrainingError(f"every pair's prompt is at least max_length={settings.max_length} tokens long: raise max_length")
    out_root.mkdir(parents=True, exist_ok=True)
    work = out_root / f".partial-{os.getpid()}-{time.time_ns()}"
    curves: list[dict[str, float]] = []
    try:
        trainer = _trainer(settings, model, ref, tokenizer, examples, work / "trainer", cuda)
        trainer.add_callback(_progress_callback(report, curves))
        started = time.monotonic()
        trainer.train()
        runtime = time.monotonic() - started
        trained = trainer.model.merge_and_unload() if settings.lora else trainer.model
        model_dir = work / "model"
        trained.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        info = {"settings": asdict(settings), "base_model": str(base_model), "pairs": len(pairs), "truncated": truncated, "unusable": unusable,
                "steps": trainer.state.global_step, "runtime_s": runtime, "curves": curves, **(metadata or {})}  # fmt: skip
        (model_dir / "training.json").write_text(json.dumps(info, indent=1))
        digest = dir_hash(model_dir)
        final = out_root / f"{settings.arm}-{digest[:12]}"
        if final.exists():  # same content already there (deterministic re-run): keep the old one
            shutil.rmtree(model_dir)
        else:
            model_dir.rename(final)
        return TrainResult(final, digest, trainer.state.global_step, runtime, truncated, unusable, curves)
    finally:
        shutil.rmtree(work, ignore_errors=True)
