"""trainer.precision=auto: bf16-mixed where the device runs bf16 natively, fp32 elsewhere; an
explicit precision wins; both branches of the probe, forced, end to end through the CLI."""

import json
from pathlib import Path

import pytest
import torch

from retrieval_lab.training import precision
from retrieval_lab.training.precision import (
    BF16,
    FORCE_ENV,
    FP32,
    _cpu_bf16,
    _cpu_flags,
    choose_precision,
    device_type,
    encoding_precision,
    native_bf16,
)
from tests.conftest import TINY, run_rlab

AVX2_FLAGS = "fpu sse sse2 avx f16c avx2 fma bmi2 sha_ni vaes"
SAPPHIRE_RAPIDS_FLAGS = AVX2_FLAGS + " avx512f avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16 amx_tile"


@pytest.fixture(autouse=True)
def unforced(monkeypatch):
    monkeypatch.delenv(FORCE_ENV, raising=False)


def _cpuinfo(tmp_path: Path, key: str, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: a CPU\n{key}\t\t: {flags}\n\nprocessor\t: 1\n{key}\t: other\n")
    return path


def test_cpu_flags_are_read_from_the_first_processor(tmp_path):
    assert _cpu_flags(_cpuinfo(tmp_path, "flags", AVX2_FLAGS)) == set(AVX2_FLAGS.split())
    assert _cpu_flags(_cpuinfo(tmp_path, "Features", "fp asimd bf16 i8mm")) == {"fp", "asimd", "bf16", "i8mm"}
    assert _cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("flags", "native", "named"),
    [
        (AVX2_FLAGS, False, "emulated"),
        (AVX2_FLAGS + " avx512f avx512bw avx512vl", False, "emulated"),  # AVX-512 without its BF16 extension
        (AVX2_FLAGS + " avx512f avx512_bf16", True, "avx512_bf16"),
        (SAPPHIRE_RAPIDS_FLAGS, True, "avx512_bf16, amx_bf16"),
        ("fp asimd bf16", True, "bf16"),  # Arm's BF16 extension (Graviton3)
    ],
)
def test_cpu_probe_reads_the_bf16_flags(flags, native, named):
    answer, why = _cpu_bf16(set(flags.split()))
    assert answer is native and named in why
    assert torch.backends.cpu.get_cpu_capability() in why


def test_cpu_probe_without_flags_says_fp32():
    assert _cpu_bf16(None) == (False, f"the CPU's flags cannot be read (ATen capability "
                                      f"{torch.backends.cpu.get_cpu_capability()})")


def test_auto_follows_the_cpu_probe_in_both_branches(monkeypatch, tmp_path):
    for flags, expected in ((AVX2_FLAGS, FP32), (SAPPHIRE_RAPIDS_FLAGS, BF16)):
        monkeypatch.setattr(precision, "_cpu_flags", lambda flags=flags: set(flags.split()))
        choice = choose_precision("auto", "cpu")
        assert (choice.precision, choice.requested, choice.device) == (expected, "auto", "cpu")
        assert choice.reason.startswith("auto: the CPU has")
        assert choice.reason.endswith("so bf16 mixed" if expected == BF16 else "so fp32")


def test_forcing_the_probe(monkeypatch):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: set(SAPPHIRE_RAPIDS_FLAGS.split()))
    monkeypatch.setenv(FORCE_ENV, "0")
    assert native_bf16("cpu") == (False, f"{FORCE_ENV}=0 forces the probe's answer (no native bf16)")
    assert choose_precision("auto", "cpu").precision == FP32
    monkeypatch.setattr(precision, "_cpu_flags", lambda: set(AVX2_FLAGS.split()))
    monkeypatch.setenv(FORCE_ENV, "1")
    assert choose_precision(None, "cpu").precision == BF16  # Lightning's own default (None) is auto too
    monkeypatch.setenv(FORCE_ENV, "yes")
    with pytest.raises(ValueError, match=f"{FORCE_ENV}='yes'"):
        native_bf16("cpu")


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", 32])
def test_an_explicit_precision_wins_over_the_probe(monkeypatch, explicit):
    monkeypatch.setenv(FORCE_ENV, "0" if "bf16" in str(explicit) else "1")
    choice = choose_precision(explicit, "cpu")
    assert choice.precision == str(explicit) and choice.requested == str(explicit)
    assert choice.reason == "set explicitly (trainer.precision)"


def test_cuda_probe_needs_compute_capability_8_on_every_gpu(monkeypatch):
    # No GPU on the test machines: the CUDA queries answer as two GPUs would.
    gpus = {0: ("NVIDIA A100-SXM4-80GB", (8, 0)), 1: ("Tesla V100-SXM2-16GB", (7, 0))}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: gpus[i][0])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: gpus[i][1])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_type("auto") == device_type("gpu") == "cuda"
    native, why = native_bf16("cuda")
    assert not native and why == "Tesla V100-SXM2-16GB (compute capability 7.0) has no bf16 tensor cores"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert choose_precision("auto", "gpu").precision == BF16
    assert "NVIDIA A100-SXM4-80GB" in choose_precision("auto", "gpu").reason


def test_other_devices_stay_fp32():
    assert native_bf16("mps") == (False, "bf16 is not probed on mps")
    assert device_type("cpu") == "cpu"
    assert encoding_precision("auto", "mps").precision == FP32


@pytest.mark.parametrize(("forced", "expected"), [("0", FP32), ("1", BF16)])
def test_encoding_precision_auto_follows_the_probe(monkeypatch, forced, expected):
    monkeypatch.setenv(FORCE_ENV, forced)
    choice = encoding_precision("auto", "cpu")
    assert choice.precision == expected and choice.requested == "auto"
    assert choice.reason.endswith("bf16 autocast" if expected == BF16 else "fp32")


def test_encoding_precision_explicit_is_kept_and_others_refused(monkeypatch):
    monkeypatch.setenv(FORCE_ENV, "1")
    assert encoding_precision(FP32, "cpu").precision == FP32
    monkeypatch.setenv(FORCE_ENV, "0")
    assert encoding_precision(BF16, "cpu").precision == BF16
    with pytest.raises(ValueError, match="encode_precision='16-mixed'"):
        encoding_precision("16-mixed", "cpu")


def _trained_precision(tmp_path: Path, tiny_beir: Path, forced: str) -> tuple[dict, str]:
    args = [a for a in TINY if not a.startswith(("trainer.precision=", "encode_precision="))]
    args += ["trainer.max_epochs=1", "stages=[train,index]"]
    run_dir = tmp_path / f"forced_{forced}"
    result = run_rlab(args, run_dir, tiny_beir, env={FORCE_ENV: forced})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "run.json").read_text())["precision"], (run_dir / "rlab.log").read_text()


@pytest.mark.parametrize(("forced", "expected"), [("0", FP32), ("1", BF16)])
def test_auto_end_to_end_records_the_precision_and_why(tmp_path, tiny_beir, forced, expected):
    recorded, log = _trained_precision(tmp_path, tiny_beir, forced)
    assert recorded["train"]["precision"] == expected and recorded["train"]["requested"] == "auto"
    assert f"{FORCE_ENV}={forced} forces the probe's answer" in recorded["train"]["reason"]
    assert recorded["encode"]["precision"] == expected and recorded["encode"]["requested"] == "auto"
    assert f"encode precision: {expected} on cpu (auto: {FORCE_ENV}={forced}" in log
    assert f"train precision: {expected} on cpu (auto: {FORCE_ENV}={forced}" in log
    # Lightning's own word that the trainer got it:
    assert ("Using bfloat16 Automatic Mixed Precision (AMP)" in log) is (expected == BF16)
