"""Tokens/s of batched generation vs one sequence at a time, embedded SmolLM2-135M on this CPU.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation_bench.py   (figures: docs/benchmarks.md)
Greedy decoding with a fixed number of new tokens (no early EOS) so both arms generate the same
token count; they run side by side in one process.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from codedpo_assets.generation.backends import TransformersBackend, embedded_model_dir  # noqa: E402

N_PROMPTS, NEW_TOKENS = 16, 64


def timed(backend: TransformersBackend, prompts: list[str], batch_size: int) -> float:
    tok, model = backend.tokenizer, backend.model
    start = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True)
        with torch.no_grad():
            model.generate(**enc, do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id)
    return N_PROMPTS * NEW_TOKENS / (time.perf_counter() - start)


if __name__ == "__main__":
    backend = TransformersBackend(embedded_model_dir())
    prompts = [backend._prompt([{"role": "user", "content": f"Write a Python function that returns {i} squared."}]) for i in range(N_PROMPTS)]
    timed(backend, prompts[:2], 2)  # warm-up
    print(f"torch threads: {torch.get_num_threads()}; {N_PROMPTS} prompts x {NEW_TOKENS} new tokens, greedy")
    single = timed(backend, prompts, 1)
    for bs in (4, 8, 16):
        batched = timed(backend, prompts, bs)
        print(f"batch {bs:2d}: {batched:6.1f} tokens/s vs one-at-a-time {single:6.1f} tokens/s -> {batched / single:.1f}x")
