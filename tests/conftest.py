"""Shared fixtures: temporary source trees, a tiny model, a local OpenAI-compatible server, a
throwaway PostgreSQL cluster."""

import json
import textwrap
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from servers import postgres_server

warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def module_with_function(i: int) -> str:
    """A small module with one keepable seed whose body differs per ``i``."""
    return f'''
    import math


    def scaled_norm_{i}(values, factor):
        """Euclidean norm times a factor."""
        total = 0.0
        for v in values:
            total += v * v * {i + 1}
        return math.sqrt(total) * factor
    '''


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Qwen2-shaped causal LM with a locally trained byte-level BPE tokenizer (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-model")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["def add(a, b):\n    return a + b\n", "assert add(1, 2) == 3\n", "Write a Python function.\n"] * 50
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None)
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    config = Qwen2Config(hidden_size=8, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
                         intermediate_size=32, vocab_size=len(fast), eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id)  # fmt: skip
    import torch

    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


class FakeServer:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted, seed-dependent answers."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0):
        self.calls = 0
        self.solutions = 0
        self.fail_first, self.delay_s = fail_first, delay_s
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls += 1
                    failing = server.calls <= server.fail_first
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if failing:
                        self.send_response(503)
                        self.end_headers()
                        return
                    time.sleep(server.delay_s)  # a server that takes a while: requests pile up in flight
                    with server.lock:
                        text = server.answer(body["messages"][-1]["content"])
                finally:
                    with server.lock:
                        server.in_flight -= 1
                payload = json.dumps(
                    {
                        "choices": [{"message": {"role": "assistant", "content": text}}],
                        "usage": {"completion_tokens": len(text.split())},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # a real server's backlog (uvicorn: 2048), not socketserver's 5

        self.httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, prompt: str) -> str:
        if "programming problem" in prompt:
            return "Return the sum of two integers a and b."
        if "test cases" in prompt:
            return "```python\nassert add(1, 2) == 3\nassert add(2, 5) == 7\nassert add(0, 0) == 0\n```"
        self.solutions += 1  # alternate: every batch of samples holds a right and a wrong program
        return (
            "```python\ndef add(a, b):\n    return a + b\n```"
            if self.solutions % 2
            else "Here:\n```python\ndef add(a, b):\n    return a - b\n```"
        )

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the session (tests/servers.py)."""
    try:
        with postgres_server() as pg:
            yield pg
    except FileNotFoundError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")


@pytest.fixture(params=["duckdb", "ducklake"])
def store_resource(request, tmp_path):
    """The store resource on each backend: a DuckDB file, and a DuckLake on a throwaway PostgreSQL."""
    from codedpo_assets.assets.resources import DuckDBStore

    if request.param == "duckdb":
        return DuckDBStore(database=str(tmp_path / "db.duckdb"))
    pg = request.getfixturevalue("postgres")
    return DuckDBStore(catalog=pg.create_database(f"e2e_{uuid.uuid4().hex[:12]}"), data_path=str(tmp_path / "lake"))
