"""The embedded model's parts: presence, size and sha256 checked before anything is loaded."""

import hashlib
import os
from pathlib import Path

import pytest

from codedpo_assets.generation import embedded
from codedpo_assets.generation.backends import GenerationError
from codedpo_assets.generation.embedded import QWEN_CODER_05B, EmbeddedModel, Part, assemble, embedded_model_dir, part_paths

CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"second part" * 100, b"tail"]


def _model(tmp_path: Path, chunks=CHUNKS, whole: str | None = None) -> tuple[EmbeddedModel, dict[str, Path]]:
    dirs, parts = {}, []
    for i, data in enumerate(chunks):
        package = tmp_path / "site" / f"pkg{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / "part.bin").write_bytes(data)
        dirs[f"pkg{i}"] = package
        parts.append(Part(f"pkg{i}", "data/part.bin", len(data), hashlib.sha256(data).hexdigest()))
    digest = whole or hashlib.sha256(b"".join(chunks)).hexdigest()
    return EmbeddedModel("tiny", tuple(parts), sum(map(len, chunks)), digest, "MIT"), dirs


def test_assemble_checks_every_part_and_the_whole(tmp_path):
    model, dirs = _model(tmp_path)
    target = tmp_path / "model.gguf"
    assemble(model, part_paths(model, dirs.__getitem__), target, log=lambda _: None)
    assert target.read_bytes() == b"".join(CHUNKS)


def test_a_corrupt_part_is_named_and_nothing_is_left(tmp_path):
    model, dirs = _model(tmp_path)
    path = dirs["pkg1"] / "data" / "part.bin"
    data = bytearray(path.read_bytes())
    data[5] ^= 1  # same size, other content
    path.write_bytes(bytes(data))
    target = tmp_path / "model.gguf"
    with pytest.raises(GenerationError, match=r"part\.bin sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(corrupt part"):
        assemble(model, part_paths(model, dirs.__getitem__), target, log=lambda _: None)
    assert not target.exists() and not target.with_name("model.gguf.partial").exists()


def test_a_wrong_whole_hash_names_expected_and_found(tmp_path):
    model, dirs = _model(tmp_path, whole="0" * 64)
    found = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    with pytest.raises(GenerationError, match=f"assembled GGUF sha256 {found}, expected {'0' * 64}"):
        assemble(model, part_paths(model, dirs.__getitem__), tmp_path / "m.gguf", log=lambda _: None)


def test_missing_and_partial_packages_are_named(tmp_path):
    model, dirs = _model(tmp_path)
    (dirs["pkg2"] / "data" / "part.bin").unlink()
    with pytest.raises(GenerationError, match=r"pkg2/data/part\.bin is missing \(package pkg2 incomplete"):
        part_paths(model, dirs.__getitem__)
    (dirs["pkg2"] / "data" / "part.bin").write_bytes(b"ta")
    with pytest.raises(GenerationError, match="has 2 bytes, expected 4"):
        part_paths(model, dirs.__getitem__)


def test_not_installed_package_says_make_setup():
    with pytest.raises(GenerationError, match=r"package no-such-model-part is not installed \(run `make setup`\)"):
        embedded._package_dir("no_such_model_part")


def test_cache_is_content_addressed_and_reused(tmp_path, monkeypatch):
    model, dirs = _model(tmp_path)
    monkeypatch.setenv(embedded.MODEL_CACHE_ENV, str(tmp_path / "cache"))
    built: list[Path] = []

    def fake_convert(gguf: Path, checkpoint: Path, stamp: dict) -> None:
        assert gguf.read_bytes() == b"".join(CHUNKS)  # only a verified file is converted
        checkpoint.mkdir()
        (checkpoint / embedded.STAMP).write_text(__import__("json").dumps(stamp))
        built.append(checkpoint)

    monkeypatch.setattr(embedded, "gguf_to_checkpoint", fake_convert)
    first = embedded_model_dir(model, dirs.__getitem__)
    assert first.name == f"tiny-{model.sha256[:16]}" and built == [first]
    assert not list(first.parent.glob("*.gguf"))  # the assembled GGUF does not stay
    for d in dirs.values():  # later runs never touch the parts
        (d / "data" / "part.bin").unlink()
    assert embedded_model_dir(model, dirs.__getitem__) == first and built == [first]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_cache_is_one_clear_line(tmp_path, monkeypatch):
    model, dirs = _model(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv(embedded.MODEL_CACHE_ENV, str(locked / "models"))
    with pytest.raises(GenerationError, match=r"model cache .* cannot be created"):
        embedded_model_dir(model, dirs.__getitem__)


def test_unwritable_cache_reported_even_as_root(tmp_path, monkeypatch):
    model, dirs = _model(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(embedded.MODEL_CACHE_ENV, str(blocker / "models"))
    with pytest.raises(GenerationError, match=r"model cache .*file/models cannot be created .*CODEDPO_MODEL_CACHE"):
        embedded_model_dir(model, dirs.__getitem__)


def test_shipped_parts_add_up_to_the_declared_file():
    assert sum(p.size for p in QWEN_CODER_05B.parts) == QWEN_CODER_05B.size
    assert all(len(p.sha256) == 64 for p in QWEN_CODER_05B.parts) and QWEN_CODER_05B.licence == "Apache-2.0"


def test_the_default_confidence_fit_is_the_embedded_models():
    from codedpo_assets import calibration

    assert embedded.EMBEDDED.name == calibration.DEFAULT_FIT and set(calibration.THRESHOLDS) == set(calibration.FITS)
