"""Training stage: ``dpo_checkpoint`` — TRL preference training on the exported pairs, via Dagster Pipes."""

import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from codedpo_assets.assets.metadata import code_version, numbers, preview, table_metadata
from codedpo_assets.assets.preferences import ExportConfig, preference_pairs_export
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.shortfall import no_pairs_report
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.plots import curves_plot
from codedpo_assets.training import ARMS, TrainingError, TrainSettings

TRAINING_POOL = "training"  # one training run at a time (limit in dagster.yaml), apart from DuckDB writers
_DEFAULTS = TrainSettings()


class TrainingConfig(dg.Config):
    """TRL training of the ``dpo_checkpoint``; defaults: DPO with LoRA, sized for a 2-core CPU."""

    arm: str = Field(
        default=_DEFAULTS.arm,
        description=f"Ablation arm: one of {ARMS} (rpo = DPO + NLL on chosen, the paper's loss; sft = chosen only).",
    )
    base_model: str = Field(
        default="", description="Local checkpoint dir or Hugging Face id; empty = the embedded Qwen2.5-Coder-0.5B-Instruct."
    )
    beta: float = Field(default=_DEFAULTS.beta, description="DPO/KTO beta.")
    sft_weight: float = Field(default=_DEFAULTS.sft_weight, description="rpo: weight of the NLL term.")
    learning_rate: float = Field(default=_DEFAULTS.learning_rate, description="AdamW learning rate (LoRA-sized).")
    epochs: float = Field(default=_DEFAULTS.epochs, description="Passes over the training split.")
    max_steps: int = Field(default=_DEFAULTS.max_steps, description="Stop after this many optimizer steps (-1: epochs decide).")
    batch_size: int = Field(default=_DEFAULTS.batch_size, description="Per-device batch (kto needs >= 2).")
    grad_accum: int = Field(default=_DEFAULTS.grad_accum, description="Gradient accumulation steps.")
    max_length: int = Field(
        default=_DEFAULTS.max_length, description="Tokens of prompt + reply; longer pairs are truncated (keep_start) and counted."
    )
    lora: bool = Field(
        default=_DEFAULTS.lora,
        description="Train LoRA adapters (merged into the saved weights); false = full fine-tune with an explicit reference model.",
    )
    lora_r: int = Field(default=_DEFAULTS.lora_r, description="LoRA rank.")
    lora_alpha: int = Field(default=_DEFAULTS.lora_alpha, description="LoRA alpha.")
    seed: int = Field(default=_DEFAULTS.seed, description="Training seed.")
    pairs_dir: str = Field(default=ExportConfig().directory, description="Exported pair directory (preference_pairs_export's).")
    checkpoints_dir: str = Field(default="data/checkpoints", description="Where checkpoint directories are written.")

    def settings(self) -> TrainSettings:
        return TrainSettings(**{k: getattr(self, k) for k in TrainSettings.__dataclass_fields__})


# `make run`: one DPO step (2 pairs, LoRA) on the embedded 0.5B model takes ~40 s on 2 cores at 320
# tokens (prompt + a short function), so 4 steps: the loop trained end to end in ~3 minutes, not a gain.
QUICK_TRAINING = {"max_steps": 4, "learning_rate": 1e-4, "max_length": 320}
# benchmarks/loop_gain.py: one pass over the training pairs (~40 s a step of 2 pairs on 2 cores).
LOOP_TRAINING = {"max_steps": -1, "epochs": 1.0, "learning_rate": 1e-4, "max_length": 320}
TRAINING_PROFILES = {"quick": QUICK_TRAINING, "loop": LOOP_TRAINING}  # over TrainingConfig's defaults (paper)


TRAINING_SKIPPED_TAG = "codedpo/training_skipped"  # on the run: the UI's run list says why nothing was trained


def _record(db, checkpoint: Path, content_hash: str, config: TrainingConfig, base: str, manifest: dict, run_id: str) -> dict:
    """Checkpoint row + curves in one transaction; returns the training.json it recorded."""
    info = json.loads((checkpoint / "training.json").read_text())
    row = {"checkpoint_id": checkpoint.name, "path": str(checkpoint), "content_hash": content_hash, "base_model": base,
           "arm": config.arm, "config": json.dumps(config.model_dump(), sort_keys=True), "pair_set_version": manifest["pair_set_version"],
           "pairs_snapshot": manifest.get("store_snapshot"), "pairs": info["pairs"], "truncated": info["truncated"], "unusable": info["unusable"], "steps": info["steps"],
           "runtime_s": info["runtime_s"], "final_loss": next((c["loss"] for c in reversed(info["curves"]) if "loss" in c), None), "run_id": run_id}  # fmt: skip
    curves = [
        {"checkpoint_id": checkpoint.name, "step": int(c["step"]), "metric": k, "value": v}
        for c in info["curves"]
        for k, v in c.items()
        if k != "step"
    ]
    with db.transaction() as conn:
        conn.execute("DELETE FROM dpo_checkpoint WHERE checkpoint_id = ?", [checkpoint.name])
        conn.execute("DELETE FROM dpo_checkpoint_curves WHERE checkpoint_id = ?", [checkpoint.name])
        conn.register("_ckpt", pl.DataFrame([row]))
        conn.execute("INSERT INTO dpo_checkpoint BY NAME SELECT * FROM _ckpt")
        if curves:
            conn.register("_curves", pl.DataFrame(curves))
            conn.execute("INSERT INTO dpo_checkpoint_curves BY NAME SELECT * FROM _curves")
    return info


def _reported(metadata: Mapping[str, Any], key: str) -> str:
    """One value the training subprocess reported (Pipes hands back metadata values or raw ones)."""
    value = metadata[key]
    return str(value.value if isinstance(value, dg.MetadataValue) else value)


TRAINING_ASSET_ARGS: dict[str, Any] = {
    "pool": TRAINING_POOL,
    "group_name": "training",
    "kinds": {"pytorch", "duckdb"},
    "owners": ["team:codedpo"],
}
VERSION = code_version(__name__, "codedpo_assets.training", "codedpo_assets.train_job")


@dg.asset(
    deps=[preference_pairs_export],
    output_required=False,  # no training pairs: nothing is materialized and model_evaluation is skipped
    code_version=VERSION,
    metadata=table_metadata("dpo_checkpoint"),
    **TRAINING_ASSET_ARGS,
    description="A model trained with TRL on the exported train split (DPO by default; RPO/KTO/SFT arms), run out of process via Dagster Pipes.",
)
def dpo_checkpoint(
    context: dg.AssetExecutionContext, config: TrainingConfig, store: DuckDBStore, pipes_client: dg.PipesSubprocessClient
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    db = store.get()
    try:
        config.settings().check()
    except TrainingError as exc:
        raise dg.Failure(f"dpo_checkpoint config: {exc}") from exc
    pairs_dir = Path(config.pairs_dir).resolve()
    manifest = json.loads((pairs_dir / "manifest.json").read_text()) if (pairs_dir / "manifest.json").exists() else None
    if manifest is None:
        raise dg.Failure(f"no pair export in {pairs_dir}: materialize preference_pairs_export first")
    if manifest["splits"]["train"] == 0:  # not an error: the run says why, and model_evaluation is skipped with it
        reason = f"no training pairs (pair set {manifest['pair_set_version']}): {no_pairs_report(db)}"
        context.log.warning(f"training skipped: {reason}")
        context.instance.add_run_tags(context.run.run_id, {TRAINING_SKIPPED_TAG: reason[:200]})
        yield dg.AssetObservation(asset_key=context.asset_key, metadata={"training_skipped": dg.MetadataValue.md(reason)})
        return
    base = config.base_model or str(embedded_model_dir())
    extras = {"pairs_file": str(pairs_dir / "preference_pairs.parquet"), "pair_set_version": manifest["pair_set_version"], "base_model": base,
              "checkpoints_dir": str(Path(config.checkpoints_dir).resolve()), "settings": config.settings().__dict__}  # fmt: skip
    env = {
        k: v for k, v in os.environ.items() if k.startswith(("PATH", "HOME", "HF_", "CUDA", "OMP", "CODEDPO_", "PYTHON", "LANG"))
    }
    invocation = pipes_client.run(
        context=context, command=[sys.executable, "-m", "codedpo_assets.train_job"], extras=extras, env=env
    )
    reported = invocation.get_materialize_result().metadata or {}
    checkpoint = Path(_reported(reported, "checkpoint_path"))
    info = _record(db, checkpoint, _reported(reported, "content_hash"), config, base, manifest, context.run.run_id)
    metadata = {k: v for k, v in reported.items() if k != "curves"}
    last = {k: v for c in info["curves"] for k, v in c.items() if k != "step"}  # each metric's last logged value
    yield dg.MaterializeResult(metadata={**metadata, "arm": config.arm, "base_model": base, "pair_set_version": manifest["pair_set_version"],
                                          "checkpoint_id": checkpoint.name, "settings": dg.MetadataValue.json(config.model_dump()),
                                          **numbers({f"final/{k}": v for k, v in last.items()}),
                                          "training_curves": dg.MetadataValue.md(curves_plot(info["curves"])),
                                          "preview": preview(db, "SELECT checkpoint_id, arm, pairs, steps, round(final_loss, 4) AS final_loss, round(runtime_s, 1) AS runtime_s, "
                                                                 "pair_set_version, path FROM dpo_checkpoint ORDER BY created_at DESC", limit=5)})  # fmt: skip
