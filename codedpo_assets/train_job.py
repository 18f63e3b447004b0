"""Training as an external process, driven through Dagster Pipes.

The ``dpo_checkpoint`` asset launches ``python -m codedpo_assets.train_job`` with a Pipes client
(``PipesSubprocessClient`` locally; a k8s/Docker Pipes client on a GPU cluster runs the same
command in a container). Extras carry everything the job needs: the exported pair file (never the
DuckDB file), the base model, the output directory and the training settings. Progress goes to the
Dagster run log; the checkpoint path comes back as materialization metadata.
"""

import json
from pathlib import Path

import polars as pl
from dagster_pipes import open_dagster_pipes

from codedpo_assets.progress import Progress
from codedpo_assets.training import TrainSettings, train


def read_pairs(path: Path, split: str) -> list[dict]:
    """Pairs of one split from an exported preference_pairs.parquet."""
    frame = pl.read_parquet(path)
    if "split" in frame.columns:
        frame = frame.filter(pl.col("split") == split)
    return frame.select("prompt", "chosen", "rejected").to_dicts()


def main() -> None:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        pairs = read_pairs(Path(extras["pairs_file"]), "train")
        settings = TrainSettings(**extras["settings"])
        pipes.log.info(f"training {settings.arm} on {len(pairs)} pairs from {extras['pairs_file']} (base {extras['base_model']})")

        progress: list[Progress] = []

        def report(p: dict) -> None:  # run log and the CLI's terminal: steps done/total, rate, ETA, the step's metrics
            if not progress:
                progress.append(Progress(f"training {settings.arm}", p["total"], "steps", pipes.log.info))
            progress[0].update(
                p["step"],
                " ".join(f"{k}={v:.4g}" for k, v in p.items() if k in ("loss", "rewards/accuracies", "rewards/margins")),
            )

        result = train(pairs, extras["base_model"], Path(extras["checkpoints_dir"]), settings, report=report,
                       metadata={"pair_set_version": extras["pair_set_version"], "pairs_file": extras["pairs_file"]})  # fmt: skip
        pipes.report_asset_materialization(
            metadata={
                "checkpoint_path": {"raw_value": str(result.path), "type": "path"},
                "content_hash": result.content_hash,
                "steps": result.steps,
                "train_pairs": len(pairs),
                "truncated_pairs": result.truncated,
                "runtime_s": {"raw_value": round(result.runtime_s, 1), "type": "float"},
                "curves": {"raw_value": json.dumps(result.curves), "type": "text"},
            }
        )


if __name__ == "__main__":
    main()
