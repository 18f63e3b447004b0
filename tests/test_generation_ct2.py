"""The CTranslate2 backend: request semantics as on transformers, the conversion cache, the fallback."""

import shutil

import pytest

from codedpo_assets.generation import ct2
from codedpo_assets.generation.backends import GenerationParams, Request, TransformersBackend, cut_at_stop


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    """A private copy of the tiny checkpoint: conversions land beside it."""
    return shutil.copytree(tiny_model_dir, tmp_path / "tiny")


def _requests(n: int, seed: int = 7, prefill: str = "") -> list[Request]:
    tail = [{"role": "assistant", "content": prefill}] if prefill else []
    return [Request([{"role": "user", "content": f"Write a Python function {i}."}, *tail], seed=seed) for i in range(n)]


def test_seeded_batches_prefill_and_identity(model_dir):
    backend = ct2.CTranslate2Backend(model_dir, batch_size=3)
    params = GenerationParams(temperature=1.0, max_new_tokens=12)
    first = backend.generate(_requests(5, prefill="def add("), params)
    assert len(first) == 5 and all(t.startswith("def add(") for t in first)  # a prefill is continued, and kept
    assert backend.generate(_requests(5, prefill="def add("), params) == first  # same seeds -> same outputs
    assert backend.generate(_requests(5, seed=8, prefill="def add("), params) != first
    greedy = GenerationParams(temperature=0.0, max_new_tokens=12)
    assert backend.generate(_requests(2, seed=1), greedy) == backend.generate(
        _requests(2, seed=2), greedy
    )  # greedy ignores the seed
    import ctranslate2

    assert backend.identity == f"ctranslate2-{ctranslate2.__version__}-int8:" + TransformersBackend(model_dir).identity
    assert (
        ct2.CTranslate2Backend(model_dir, quantization="float32").identity != backend.identity
    )  # the cache key tells engines apart


def test_stop_strings_cut_the_text_and_end_generation_early(model_dir):
    backend = ct2.CTranslate2Backend(model_dir, batch_size=1)  # one sequence per batch: the same draws with and without a stop
    requests = _requests(4)
    free_tokens, stopped_tokens = [], []
    free = backend.generate(requests, GenerationParams(temperature=1.0, max_new_tokens=40), lambda _, n: free_tokens.append(n))
    text = next(t for t in free if sum(c.isascii() and c.isalnum() for c in t) >= 4)
    stop = next(text[i : i + 2] for i in range(len(text)) if text[i : i + 2].isascii() and text[i : i + 2].isalnum())
    stopped = backend.generate(
        requests, GenerationParams(temperature=1.0, max_new_tokens=40, stop=(stop,)), lambda _, n: stopped_tokens.append(n)
    )
    assert stopped == [cut_at_stop(t, (stop,)) for t in free]
    assert all(stop not in t for t in stopped)
    assert sum(stopped_tokens) < sum(free_tokens)  # the engine stopped, not only the text was cut


def test_conversion_is_cached_stamped_and_rebuilt_when_corrupt(model_dir, capsys):
    ct2.CTranslate2Backend(model_dir)
    assert "converting" in capsys.readouterr().err
    target = model_dir.with_name(model_dir.name + "-ct2-int8")
    stamp = (target / ct2.STAMP).read_text()
    ct2.CTranslate2Backend(model_dir)
    assert "converting" not in capsys.readouterr().err  # converted once
    (target / "model.bin").write_bytes(b"not a model")  # corrupt, stamp intact: loading fails, it is converted again
    backend = ct2.CTranslate2Backend(model_dir)
    err = capsys.readouterr().err
    assert "does not load" in err and "converting" in err
    assert len(backend.generate(_requests(1), GenerationParams(max_new_tokens=4))) == 1
    (target / ct2.STAMP).unlink()  # an interrupted conversion
    ct2.CTranslate2Backend(model_dir)
    assert "no readable stamp" in capsys.readouterr().err and (target / ct2.STAMP).read_text() == stamp
    shutil.rmtree(target)
    ct2.CTranslate2Backend(model_dir)
    assert "(tiny-ct2-int8: missing)" in capsys.readouterr().err


def test_failed_conversion_falls_back_to_transformers_and_says_so_once(model_dir, capsys, monkeypatch):
    from ctranslate2.converters import TransformersConverter

    def broken(self, *args, **kwargs):
        raise ValueError("unsupported architecture")

    monkeypatch.setattr(TransformersConverter, "convert", broken)
    monkeypatch.setattr(ct2, "_fallbacks_said", set())
    first = ct2.local_backend(model_dir, "ctranslate2")
    assert isinstance(first, TransformersBackend)
    err = capsys.readouterr().err
    assert err.count("ctranslate2 unavailable") == 1 and "unsupported architecture" in err and "transformers" in err
    assert isinstance(ct2.local_backend(model_dir, "ctranslate2"), TransformersBackend)
    assert "unavailable" not in capsys.readouterr().err  # said once
    assert not model_dir.with_name(model_dir.name + "-ct2-int8").exists()


def test_engine_choice(model_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert isinstance(ct2.local_backend(model_dir), ct2.CTranslate2Backend)  # auto on CPU
    assert isinstance(ct2.local_backend(model_dir, "transformers"), TransformersBackend)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(TransformersBackend, "__init__", lambda self, path, batch_size=16: None)  # no GPU to load onto here
    assert isinstance(ct2.local_backend(model_dir), TransformersBackend)  # auto on a GPU
    with pytest.raises(ct2.GenerationError, match="engine"):
        ct2.local_backend(model_dir, "llama")
    with pytest.raises(ct2.GenerationError, match="quantization: 'int4' is not one of"):
        ct2.local_backend(model_dir, quantization="int4")


def test_generator_resource_runs_the_embedded_model_on_ctranslate2(model_dir, monkeypatch):
    import torch

    from codedpo_assets.assets import generation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(generation, "embedded_model_dir", lambda: model_dir)
    generation._backend.cache_clear()
    assert isinstance(generation.Generator().get(), ct2.CTranslate2Backend)
    assert isinstance(generation.Generator(engine="transformers").get(), TransformersBackend)
    assert isinstance(
        generation.Generator(backend="transformers", model_path=str(model_dir)).get(), TransformersBackend
    )  # a named model: as asked
    monkeypatch.setenv("CODEDPO_ENGINE", "transformers")
    assert generation.generator_from_env().engine == "transformers"
    generation._backend.cache_clear()


def test_runs_starting_together_convert_once(model_dir):
    from concurrent.futures import ThreadPoolExecutor

    said: list[str] = []
    with ThreadPoolExecutor(3) as pool:  # flock excludes open files, threads as well as processes
        targets = list(pool.map(lambda _: ct2.converted(model_dir, "int8", said.append), range(3)))
    assert len(set(targets)) == 1 and len([s for s in said if "converting" in s]) == 1
    assert not ct2._unusable(targets[0], ct2._stamp(model_dir, "int8"))
