"""Which numeric precision a run trains in: ``trainer.precision: auto`` picks bf16-mixed only where
the device computes in bf16 natively, fp32 elsewhere.

Why not always bf16: on a CPU without AVX512-BF16 or AMX, bf16 is emulated and a MiniLM training
step takes about 6x as long as in fp32 (measured on a 2-core AMD EPYC, AVX2); on a CPU with
AVX512-BF16 it takes about half as long. The probe's answer can be forced with the environment
variable ``RLAB_NATIVE_BF16`` (``1`` or ``0``), which is how tests reach both branches.

Encoding (``encode_precision: auto``, the corpus and queries of the index, mining, validation)
follows the same probe: bf16 autocast where it is native, fp32 elsewhere. On a 2-core AMD EPYC with
AVX512-BF16 (Zen 5) it encodes SciFact's documents 2.1x as fast as fp32, and the fine-tuned model's nDCG@10
moved by -0.0005 (0.6786 -> 0.6781); where bf16 is emulated it would be several times slower.
"""

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from retrieval_lab.provenance import cpuinfo_field

AUTO = "auto"
FORCE_ENV = "RLAB_NATIVE_BF16"
BF16, FP32 = "bf16-mixed", "32-true"
# /proc/cpuinfo flags of native bf16 arithmetic: AVX512-BF16 and AMX (x86), the BF16 extension (Arm).
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# What encode_precision may be set to: the autocast dtypes encode_texts runs.
ENCODE_PRECISIONS = (FP32, BF16)


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a stage runs in, what was asked for, and why the two may differ."""

    precision: str  # a Lightning precision: "bf16-mixed", "32-true", ...
    requested: str
    device: str  # "cpu", "cuda", "mps", ...
    reason: str

    def as_record(self) -> dict[str, str]:
        return asdict(self)


def choose_precision(requested: str | int | None, accelerator: str | None = AUTO) -> PrecisionChoice:
    """``requested`` as configured (``trainer.precision``): an explicit Lightning precision is
    kept as it is; ``auto`` (or nothing) becomes bf16-mixed where ``accelerator``'s device runs
    bf16 natively and 32-true otherwise."""
    device = device_type(accelerator)
    if requested is not None and str(requested) != AUTO:
        return PrecisionChoice(str(requested), str(requested), device, "set explicitly (trainer.precision)")
    native, why = native_bf16(device)
    return PrecisionChoice(BF16 if native else FP32, AUTO, device,
                           f"auto: {why}, so {'bf16 mixed' if native else 'fp32'}")


def encoding_precision(requested: str | None = AUTO, accelerator: str | None = AUTO) -> PrecisionChoice:
    """``encode_precision`` as configured: ``32-true`` or ``bf16-mixed`` as it is; ``auto`` (or
    nothing) becomes bf16-mixed where ``accelerator``'s device runs bf16 natively, else 32-true."""
    device = device_type(accelerator)
    if requested is not None and str(requested) != AUTO:
        if str(requested) not in ENCODE_PRECISIONS:
            raise ValueError(f"encode_precision={requested!r}: use auto, {' or '.join(ENCODE_PRECISIONS)}")
        return PrecisionChoice(str(requested), str(requested), device, "set explicitly (encode_precision)")
    native, why = native_bf16(device)
    return PrecisionChoice(BF16 if native else FP32, AUTO, device,
                           f"auto: {why}, so {'bf16 autocast' if native else 'fp32'}")


def device_type(accelerator: str | None) -> str:
    """The device kind a Lightning ``accelerator`` setting trains on (``auto``: CUDA if
    available, then MPS, else the CPU)."""
    name = str(accelerator or AUTO).lower()
    if name in ("gpu", "cuda"):
        return "cuda"
    if name == AUTO:
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return name


def native_bf16(device: str) -> tuple[bool, str]:
    """(whether ``device`` computes in bf16 natively, a phrase saying how that was decided)."""
    forced = os.environ.get(FORCE_ENV)
    if forced is not None:
        if forced not in ("0", "1"):
            raise ValueError(f"{FORCE_ENV}={forced!r}: set it to 1 (native bf16) or 0 (not native), or unset it")
        return forced == "1", f"{FORCE_ENV}={forced} forces the probe's answer ({'native' if forced == '1' else 'no native'} bf16)"
    if device == "cuda":
        return _cuda_bf16()
    if device == "cpu":
        return _cpu_bf16(_cpu_flags())
    return False, f"bf16 is not probed on {device}"


def _cuda_bf16() -> tuple[bool, str]:
    """bf16 tensor cores start with compute capability 8.0 (Ampere); every visible GPU must have them."""
    if not torch.cuda.is_available():
        return False, "no CUDA device is visible"
    capabilities = {torch.cuda.get_device_name(i): torch.cuda.get_device_capability(i)
                    for i in range(torch.cuda.device_count())}
    old = {name: cap for name, cap in capabilities.items() if cap < (8, 0)}
    if old:
        name, (major, minor) = next(iter(old.items()))
        return False, f"{name} (compute capability {major}.{minor}) has no bf16 tensor cores"
    names = ", ".join(sorted(capabilities))
    return True, f"{names}: compute capability >= 8.0 runs bf16 natively"


def _cpu_bf16(flags: set[str] | None) -> tuple[bool, str]:
    capability = torch.backends.cpu.get_cpu_capability()
    if flags is None:
        return False, f"the CPU's flags cannot be read (ATen capability {capability})"
    found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
    if found:
        return True, f"the CPU has {', '.join(found)} (ATen capability {capability})"
    return False, f"the CPU has no {'/'.join(CPU_BF16_FLAGS)} (ATen capability {capability}): bf16 would be emulated"


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The feature flags of the first CPU (``flags`` on x86, ``Features`` on Arm); None where
    the file cannot be read (not Linux)."""
    if not cpuinfo.is_file():
        return None
    flags = cpuinfo_field("flags", cpuinfo) or cpuinfo_field("Features", cpuinfo) or ""
    return set(flags.split())
