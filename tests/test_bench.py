"""Smoke test of the benchmark (``make bench``): it runs and reports sensible numbers. Speed
goals live in the benchmark's output, never in a test; nothing here compiles."""

import math

import torch

from bench import bench


def test_training_contenders_take_real_steps():
    data = torch.randn(1024, 2)
    for make in (bench.nf_contenders, bench.fm_contenders):
        contenders = bench.interleave(make(data, compile=False), blocks=2, steps=2)
        assert [c.name for c in contenders] == ["reference", "ours eager"]
        for contender in contenders:
            assert len(contender.ms) == 2 and all(math.isfinite(t) and t > 0 for t in contender.ms)
            assert math.isfinite(contender.step())
        lines = bench.training_table("model", contenders, "eager")
        assert len(lines) == 2 + len(contenders) and "x" in lines[-1]


def test_sampling_contenders_return_points():
    contenders = bench.sampling(n=20, dt=0.1, repeats=1)
    assert [c.name for c in contenders] == ["reference", "ours"]
    assert all(c.median > 0 and math.isfinite(c.step()) for c in contenders)
    assert "points" in bench.sampling_table(contenders, 20, 0.1)[0]


def test_quick_run_prints_the_tables(capsys):
    assert bench.main(["--quick", "--no-compile", "--blocks", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    for expected in ("torch ", "thread(s)", "Normalizing flow", "Flow matching", "sampling",
                     "speed-up", "20 epochs"):
        assert expected in out
