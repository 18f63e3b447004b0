"""Progress lines: counts, rate and ETA as a person reads them; throttled; shared through a file."""

import time

import pytest

from codedpo_assets import progress as progress_mod
from codedpo_assets.progress import PROGRESS_ENV, Progress, duration, line


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0, 42.4, 187, 3720, -3)] == ["0s", "42s", "3m07s", "1h02m", "0s"]


def test_line_has_counts_rate_and_eta():
    assert line("sandbox", 0, 8, 0.0, "partitions") == "[sandbox] 0/8 partitions (0 %)"
    assert line("sandbox", 2, 8, 4.0, "partitions") == "[sandbox] 2/8 partitions (25 %), 0.5/s, elapsed 4s, ETA 12s"
    assert (
        line("training", 3, 6, 60.0, "steps", "loss=0.5")
        == "[training] 3/6 steps (50 %), 3.0/min, elapsed 1m00s, ETA 1m00s, loss=0.5"
    )
    assert line("x", 4, 4, 2.0).endswith("2.0/s, elapsed 2s, done")
    # work found done at the start (cached) is not speed: the rate counts from base
    assert (
        line("generation", 15, 20, 5.0, "completions", base=10)
        == "[generation] 15/20 completions (75 %), 1.0/s, elapsed 5s, ETA 5s"
    )


def test_progress_throttles_but_always_reports_the_end(monkeypatch):
    clock = iter([0.0, 0.0, 1.0, 1.5, 2.0, 7.0, 8.0])
    monkeypatch.setattr(progress_mod, "time", type("Clock", (), {"monotonic": staticmethod(lambda: next(clock))}))
    seen: list[str] = []
    p = Progress("stage", 4, "items", seen.append, every_s=5.0)  # start: t = 0
    p.update(0)  # t = 0: reported (the first line)
    p.update(1)  # t = 1: within 5 s, quiet
    p.update(1)  # t = 1.5: quiet
    p.update(2)  # t = 2: quiet
    p.update(3)  # t = 7: reported
    p.update(4)  # t = 8: the end is always reported
    p.update(4)  # and only once (no clock read: the iterator would be exhausted)
    p.update(2)  # a lower count: ignored
    assert [s.split(" (")[0] for s in seen] == ["[stage] 0/4 items", "[stage] 3/4 items", "[stage] 4/4 items"]
    assert seen[-1].endswith("done")


def test_lines_go_to_the_progress_file_when_one_is_set(tmp_path, monkeypatch):
    target = tmp_path / "run.progress"
    monkeypatch.setenv(PROGRESS_ENV, str(target))
    Progress("a", 2).update(2)
    Progress("b", 1).update(1, "x\ny")
    assert target.read_text().splitlines() == ["[a] 2/2 items (100 %)", "[b] 1/1 items (100 %), x y"]
    monkeypatch.delenv(PROGRESS_ENV)
    Progress("c", 1).update(1)
    assert len(target.read_text().splitlines()) == 2


@pytest.mark.parametrize("total", [0, 3])
def test_empty_or_instant_stages_do_not_crash(total):
    seen: list[str] = []
    Progress("s", total, log=seen.append).update(total)
    assert seen and seen[0].startswith(f"[s] {total}/{total}")


def test_console_sends_noise_to_the_log_and_restores_the_terminal_even_on_error(tmp_path, capfd):
    import os

    from codedpo_assets.cli import Console
    from codedpo_assets.progress import publish

    log = tmp_path / "logs" / "run.log"
    with pytest.raises(RuntimeError, match="boom"), Console(log, verbose=False) as console:
        os.write(2, b"a third-party warning\n")  # fd level: what child processes and C extensions write
        os.write(1, b"a stray print\n")
        publish("[stage] 1/2 items (50 %)")
        console.say("summary line")
        raise RuntimeError("boom")
    os.write(1, b"after the run\n")
    out, err = capfd.readouterr()
    assert out.splitlines() == ["[stage] 1/2 items (50 %)", "summary line", "after the run"] and err == ""
    text = log.read_text()
    assert "a third-party warning" in text and "a stray print" in text and "summary line" in text and "RuntimeError: boom" in text
    assert PROGRESS_ENV not in os.environ and not log.with_suffix(".progress").exists()


def test_verbose_console_keeps_everything_on_the_terminal(tmp_path, capfd):
    import os

    from codedpo_assets.cli import Console
    from codedpo_assets.progress import publish

    log = tmp_path / "logs" / "run.log"
    with Console(log, verbose=True) as console:
        os.write(1, b"dagster says\n")
        publish("[stage] 2/2 items (100 %)")
        console.say("summary line")
    out, _ = capfd.readouterr()
    assert out.splitlines() == ["dagster says", "[stage] 2/2 items (100 %)", "summary line"] and not log.exists()


def test_a_long_batch_keeps_the_line_moving():
    """The report: progress lines went silent for minutes while one model batch ran."""
    seen: list[str] = []
    p = Progress("generation", 10, "completions", seen.append, every_s=0.05)
    p.update(2)
    p.keep_alive()
    time.sleep(0.4)  # no count arrives: the line repeats with the time elapsed
    p.close()
    repeats = [s for s in seen if "working on the next batch" in s]
    assert len(repeats) >= 3 and all(s.startswith("[generation] 2/10 completions") for s in repeats)
    time.sleep(0.15)
    assert len([s for s in seen if "working" in s]) == len(repeats)  # closed: silent
    p2 = Progress("g", 1, log=seen.append, every_s=0.05)
    p2.keep_alive()
    time.sleep(0.15)
    p2.close()
    assert not any(s.startswith("[g]") for s in seen)  # nothing counted yet: nothing to repeat


def test_a_model_that_cannot_be_set_up_is_one_line_and_exit_2(tmp_path, capfd, monkeypatch):
    from codedpo_assets import cli
    from codedpo_assets.generation.backends import GenerationError

    def broken(*_):
        raise GenerationError("embedded model: assembled GGUF sha256 ab12, expected cd34 (491400064 bytes); not loaded")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_run", broken)
    assert cli.run(rebuild=False) == 2
    out, err = capfd.readouterr()
    assert out.splitlines()[1:] == [
        "error: embedded model: assembled GGUF sha256 ab12, expected cd34 (491400064 bytes); not loaded"
    ]
    assert "Traceback" not in out + err
