"""What every benchmark shares: the repository path, the machine line, rows and JSON output."""

from __future__ import annotations

import functools
import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The data dir when T2T_DATA_DIR is unset and it exists beside the checkout (as scripts/env.sh).
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def use_shared_data() -> None:
    """Points T2T_DATA_DIR at the data beside the checkout when it is unset and that exists."""
    if not os.environ.get("T2T_DATA_DIR") and os.path.isdir(SHARED_DATA):
        os.environ["T2T_DATA_DIR"] = SHARED_DATA


def machine_line() -> str:
    """The machine in one line (`t2t_lite.hardware.machine_line`) with the Keras version."""
    import keras

    from t2t_lite import hardware

    return f"{hardware.machine_line()}, Keras {keras.__version__}"


def machine_report() -> dict:
    """What runs here: the machine (`t2t_lite.hardware.machine_info`), the training precision
    and the decoding threads that "auto" picks, and the measured matmul peaks (GFLOP/s)."""
    from t2t_lite import hardware

    precision, why = hardware.resolve_precision("auto")
    layout = hardware.decode_layout()
    report = {
        "machine": hardware.machine_info(),
        "precision": {"auto": "float32" if precision == "none" else precision, "reason": why},
        "decoding": {
            "parallel_batches": layout.parallel_batches,
            "intra_threads": layout.intra_threads,
            "reason": layout.reason,
        },
        "peak_matmul_gflops": {
            dtype: round(peak_matmul_flops(dtype) / 1e9, 1) for dtype in matmul_dtypes()
        },
    }
    return report


def match_ctranslate2_isa() -> str:
    """Caps CTranslate2 at AVX2 where ONEDNN_MAX_CPU_ISA hides this CPU's AVX-512 from
    TensorFlow, so that both engines run on the same class of CPU: its own kernels
    (`CT2_FORCE_CPU_ISA`) and MKL's (`MKL_ENABLE_INSTRUCTIONS`), unless set already. Call it
    before CTranslate2 is imported. Returns the settings it runs with ("" if none)."""
    from t2t_lite import hardware

    machine = hardware.this_machine()
    if "avx512f" in machine.cpu_flags and "avx512f" not in machine.usable_flags:
        os.environ.setdefault("CT2_FORCE_CPU_ISA", "AVX2")
        os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    keys = ("CT2_FORCE_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
    return " ".join(f"{k}={os.environ[k]}" for k in keys if os.environ.get(k))


def matmul_dtypes() -> list[str]:
    """float32, and bfloat16 unless ONEDNN_MAX_CPU_ISA hides this CPU's bfloat16 support
    (TensorFlow then crashes on a bfloat16 matmul)."""
    from t2t_lite import hardware
    from t2t_lite.config import ConfigError

    try:
        hardware.resolve_precision("bfloat16")
    except ConfigError:
        return ["float32"]
    return ["float32", "bfloat16"]


@functools.cache
def peak_matmul_flops(dtype: str, n: int = 2048, chain: int = 20) -> float:
    """Measured FLOP/s of a chain of `chain` `[n, n] x [n, n]` matmuls in `dtype`, timed once
    after a warm-up run (`t2t_lite.hardware.matmul_flops`)."""
    from t2t_lite import hardware

    return hardware.matmul_flops(dtype, n=n, chain=chain, repeats=1)


def training_flops(cfg, batch: dict) -> float:
    """FLOPs of one training step (forward + backward = 3 x forward) on a padded batch."""
    b, s = batch["source"].shape
    t = batch["target_in"].shape[1]
    m = cfg.model
    d, f, vocab = m.d_model, m.d_ff, cfg.vocab.size
    enc = b * s * (2 * 4 * d * d + 2 * 2 * d * f) + 2 * 2 * b * s * s * d
    dec = b * t * (2 * 6 * d * d + 2 * 2 * d * f) + 2 * b * s * 2 * d * d  # + memory k/v
    dec += 2 * 2 * b * t * t * d + 2 * 2 * b * t * s * d  # self and cross attention
    output = 2 * b * t * d * vocab
    return 3.0 * (m.num_encoder_layers * enc + m.num_decoder_layers * dec + output)


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


def write_json(path: str, command: str, report: dict, rows: list[dict]) -> None:
    """Writes the command, machine line, commit, `machine_report()` and every row to `path`."""
    report = {
        "command": command,
        "machine_line": machine_line(),
        "commit": commit(),
        **report,
        "rows": rows,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
