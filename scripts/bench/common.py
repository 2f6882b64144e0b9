"""What every benchmark shares: the repository path, the machine line, rows and JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The data dir when T2T_DATA_DIR is unset and it exists beside the checkout (as scripts/env.sh).
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def use_shared_data() -> None:
    """Points T2T_DATA_DIR at the data beside the checkout when it is unset and that exists."""
    if not os.environ.get("T2T_DATA_DIR") and os.path.isdir(SHARED_DATA):
        os.environ["T2T_DATA_DIR"] = SHARED_DATA


# The CPU flags that decide which kernels TensorFlow uses here (bfloat16 needs AVX512_BF16).
_ISA_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_bf16": "AVX512_BF16"}


def machine_line() -> str:
    """CPU model, its ISA flags, the TensorFlow / Keras versions and the core count, one line.

    Example: "AMD EPYC, AVX2 + AVX-512F + AVX512_BF16, TF 2.21, Keras 3.15, 2 cores".
    """
    import keras
    import tensorflow as tf

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = " + ".join(name for flag, name in _ISA_FLAGS.items() if flag in flags) or "no AVX2"
    return (
        f"{model}, {isa}, TF {_minor(tf.__version__)}, Keras {_minor(keras.__version__)}, "
        f"{os.cpu_count()} cores"
    )


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def commit() -> str:
    """The checkout's short commit hash, with "+changes" if its tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "diff", "--quiet", "HEAD"], check=False)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty.returncode else "")


def format_row(row: dict) -> str:
    """One result as `key=value` pairs, numbers with thousands separators."""
    return "  ".join(
        f"{k}={v:,}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in row.items()
    )


def write_json(path: str, command: str, rows: list[dict]) -> None:
    """Writes the command, machine line, commit and every row to `path`."""
    report = {"command": command, "machine": machine_line(), "commit": commit(), "rows": rows}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
