"""What this machine has: its CPU and the optional packages installed, found without importing them."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform

from .errors import StstError


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


# The CPU's vector extensions that decide which engines and precisions run fast (/proc/cpuinfo's names).
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# The x86 extensions that run bf16 natively: AVX-512 without them (an Ice Lake Xeon) only emulates it.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def _x86_flags() -> frozenset[str] | None:
    """The flags ``/proc/cpuinfo`` lists for an x86 CPU, read once a process; None where there is no such line (not
    Linux on x86)."""
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(next(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
    except (OSError, StopIteration):
        return None


def cpu_flags() -> list[str]:
    """Which of :data:`VECTOR_FLAGS` this CPU has (``/proc/cpuinfo``; empty where it cannot be read)."""
    have = _x86_flags() or frozenset()
    return [flag for flag in VECTOR_FLAGS if flag in have]


def native_bf16() -> bool | None:
    """Whether this x86 CPU runs bf16 natively (:data:`NATIVE_BF16_FLAGS`); None where its flags cannot be read."""
    have = _x86_flags()
    return None if have is None else bool(have & set(NATIVE_BF16_FLAGS))


def describe_cpu() -> str:
    """One line for benchmark output: the CPU's model name, its vector extensions and the cores this process has."""
    flags = cpu_flags()
    bf16 = "native bf16" if native_bf16() else "no native bf16"
    return f"CPU: {cpu_name()} ({', '.join(flags) or 'flags unknown'}; {bf16}), {cpu_cores()} cores"


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def installed(module: str) -> bool:
    """Whether ``module`` is installed, found without importing it: importing onnx alone takes most of a
    second, which a run that finds its graph in the cache never needs."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str) -> None:
    """Install check with a hint: ``purpose`` needs the package ``module``."""
    if not installed(module):
        raise StstError(f"{purpose} needs the package '{module}': pip install {module} (a dependency of stst: "
                        "reinstall it)")


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` from its metadata (no import), or "none"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"
