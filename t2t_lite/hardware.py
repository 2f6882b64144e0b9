"""What this machine runs fast: the training precision and the decoding layout (threads,
graph optimizer).

The facts come from `/proc/cpuinfo` (CPU model and the ISA flags in `ISA_FLAGS`; elsewhere the
CPU is unknown and has none), the GPUs TensorFlow sees with their compute capability, and two
environment variables: `ONEDNN_MAX_CPU_ISA` (or its older name `DNNL_MAX_CPU_ISA`) caps the
instructions oneDNN may use, so `ONEDNN_MAX_CPU_ISA=AVX2` makes an AVX-512 CPU count as an
AVX2-only one (there an explicit bfloat16 is refused: TensorFlow would crash);
`TF_ENABLE_ONEDNN_OPTS=0` turns oneDNN off, leaving bfloat16 to Eigen, which
emulates it. Benchmarks also record oneDNN's version and the instructions it reports using
(`onednn_info`, which asks a child process).

bfloat16 can be fast only where the hardware computes in it: x86 CPUs with AVX512_BF16 (AMD
Zen 4 and newer, Intel Cooper Lake and newer) or AMX-BF16 (Intel Sapphire Rapids and newer),
and GPUs of compute capability 8.0 or more. Elsewhere TensorFlow converts to float32 and back
around every op, and training is about 25% slower than in float32 (AVX2-only CPUs: AMD Zen 2
and 3, Intel Skylake to Ice Lake). The instructions alone do not make it fast: on an AMD Zen 4
oneDNN's bfloat16 matmuls run at about 1.9x its float32 ones, on an Intel Xeon whose AMX is
not exposed (AVX512_BF16 and AVX512_FP16 without AMX flags, as in some virtual machines) at
about 0.5-0.8x. So on a CPU with bfloat16 instructions, "auto" times both (`bf16_matmul_speedup`,
about 0.4 s once per process) and takes bfloat16 only where its matmuls run at least
`BF16_MIN_MATMUL_SPEEDUP` times float32's. float16 is fast on GPUs of compute capability 7.x
and later (with loss scaling).

Example:
    >>> resolve_precision("auto")
    ('none', 'CPU without AVX512_BF16/AMX')
    >>> decode_layout().summary()
    '2 batches at a time, 1 intra-op thread each, graph optimizer off (2 CPU cores, no GPU)'
    >>> machine_line()
    'CPU AMD EPYC 7B12 (2 cores; avx2), TensorFlow 2.21.0, oneDNN 3.7.3, no GPU'
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from absl import logging

from t2t_lite.config import ConfigError

if TYPE_CHECKING:
    from t2t_lite.config import Config

# The ISA flags (as /proc/cpuinfo spells them) that decide what runs fast.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# oneDNN's `ONEDNN_MAX_CPU_ISA` values (its `dnnl_cpu_isa_t` names) -> the ISA_FLAGS its
# kernels may still use. Each ISA includes those before it; the AVX2 variants add VNNI (and
# bfloat16 conversions), not AVX-512.
_AVX2 = ("avx2",)
_AVX512 = ("avx2", "avx512f")
_AVX512_BF16 = ("avx2", "avx512f", "avx512_bf16")
_ONEDNN_ISA_CAPS: dict[str, tuple[str, ...]] = {
    "SSE41": (),
    "AVX": (),
    "AVX2": _AVX2,
    "AVX2_VNNI": _AVX2,
    "AVX2_VNNI_2": _AVX2,
    "AVX512_CORE": _AVX512,
    "AVX512_CORE_VNNI": _AVX512,
    "AVX512_CORE_BF16": _AVX512_BF16,
    "AVX512_CORE_FP16": _AVX512_BF16,
    "AVX10_1_512": _AVX512_BF16,
    "AVX512_CORE_AMX": ISA_FLAGS,
    "AVX10_1_512_AMX": ISA_FLAGS,
    "AVX512_CORE_AMX_FP16": ISA_FLAGS,
    "AVX10_1_512_AMX_FP16": ISA_FLAGS,
    "DEFAULT": ISA_FLAGS,
    "ALL": ISA_FLAGS,
}

# On a CPU with bfloat16 instructions, "auto" trains in bfloat16 only where its matmuls run at
# least this many times as fast as float32's: the elementwise ops and casts gain less, so a
# bfloat16 step gains about 1.25x at the 1.9x matmul speed-up of an AMD Zen 4.
BF16_MIN_MATMUL_SPEEDUP = 1.3

# At most this many batches are decoded at a time on a CPU (see `decode_layout`).
MAX_PARALLEL_BATCHES = 4


@dataclasses.dataclass(frozen=True)
class Gpu:
    """A GPU TensorFlow sees; `compute_capability` is `(major, minor)`, None if unknown."""

    name: str
    compute_capability: tuple[int, int] | None


@dataclasses.dataclass(frozen=True)
class Machine:
    """What `detect` found.

    Attributes:
        cpu_model: the CPU's model name, "unknown" without `/proc/cpuinfo`.
        cores: CPU cores this process may run on.
        cpu_flags: the `ISA_FLAGS` the CPU has.
        usable_flags: those oneDNN may use (`cpu_flags` capped by `ONEDNN_MAX_CPU_ISA`).
        onednn_max_cpu_isa: the cap as set in the environment ("" = none).
        onednn_opts: False when `TF_ENABLE_ONEDNN_OPTS` turns oneDNN off.
        gpus: the GPUs TensorFlow sees.
        bf16_speedup: bfloat16 over float32 matmul throughput on the CPU; None: measured
            (`bf16_matmul_speedup`) when a decision needs it.
    """

    cpu_model: str
    cores: int
    cpu_flags: tuple[str, ...]
    usable_flags: tuple[str, ...]
    onednn_max_cpu_isa: str = ""
    onednn_opts: bool = True
    gpus: tuple[Gpu, ...] = ()
    bf16_speedup: float | None = None

    @property
    def cpu_bf16(self) -> str | None:
        """The flag that makes bfloat16 native on this CPU (for oneDNN), or None."""
        if not self.onednn_opts:
            return None
        return next((f for f in _BF16_FLAGS if f in self.usable_flags), None)

    def cpu_bf16_speedup(self) -> float:
        """bfloat16 over float32 matmul throughput here: `bf16_speedup`, else measured."""
        return self.bf16_speedup if self.bf16_speedup is not None else bf16_matmul_speedup()

    @property
    def compute_capability(self) -> tuple[int, int] | None:
        """The lowest compute capability over the GPUs (every replica runs one policy)."""
        known = [g.compute_capability for g in self.gpus if g.compute_capability]
        return min(known) if known and len(known) == len(self.gpus) else None


@dataclasses.dataclass(frozen=True)
class DecodeLayout:
    """How to decode: batches searched at a time, threads per TensorFlow op (0 = default),
    and whether TensorFlow's graph optimizer (Grappler) runs on the search's graph."""

    parallel_batches: int
    intra_threads: int
    reason: str
    optimize_graphs: bool = True

    def summary(self) -> str:
        """E.g. `2 batches at a time, 1 intra-op thread each, graph optimizer off (2 CPU
        cores, no GPU)`."""
        batches = f"{self.parallel_batches} batch{'es' if self.parallel_batches > 1 else ''}"
        if self.intra_threads:
            plural = "s" if self.intra_threads > 1 else ""
            threads = f"{self.intra_threads} intra-op thread{plural} each"
        else:
            threads = "TensorFlow's default intra-op threads"
        optimizer = "" if self.optimize_graphs else ", graph optimizer off"
        return f"{batches} at a time, {threads}{optimizer} ({self.reason})"


def _parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """`/proc/cpuinfo` text -> (model name, the ISA_FLAGS present); the first CPU is read."""
    model, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model == "unknown":
            model = " ".join(value.split()) or "unknown"
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, tuple(f for f in ISA_FLAGS if f in flags)


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _tensorflow_gpus() -> tuple[Gpu, ...]:
    """The GPUs TensorFlow sees; listing them does not initialise the runtime."""
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        gpus.append(Gpu(details.get("device_name", device.name), capability))
    return tuple(gpus)


def detect(
    cpuinfo: str | None = None,
    gpus: Sequence[Gpu] | None = None,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
    bf16_speedup: float | None = None,
) -> Machine:
    """Reads what this machine has; every argument replaces one source (for tests).

    Args:
        cpuinfo: `/proc/cpuinfo` text; default: read it ("" where it does not exist).
        gpus: the GPUs; default: those TensorFlow sees.
        environ: the environment; default `os.environ`.
        cores: CPU cores; default: those this process may run on.
        bf16_speedup: bfloat16 over float32 matmul throughput; default: measured when needed.
    """
    environ = os.environ if environ is None else environ
    model, flags = _parse_cpuinfo(_read_cpuinfo() if cpuinfo is None else cpuinfo)
    cap = (environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or "").strip()
    allowed = _ONEDNN_ISA_CAPS.get(cap.upper(), ISA_FLAGS)  # oneDNN ignores unknown values
    opts = environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() not in ("0", "false")
    return Machine(
        cpu_model=model,
        cores=cores or _cpu_count(),
        cpu_flags=flags,
        usable_flags=tuple(f for f in flags if f in allowed),
        onednn_max_cpu_isa=cap,
        onednn_opts=opts,
        gpus=tuple(_tensorflow_gpus() if gpus is None else gpus),
        bf16_speedup=bf16_speedup,
    )


@functools.cache
def this_machine() -> Machine:
    """`detect()`, once per process."""
    return detect()


def matmul_flops(dtype: str, n: int = 1024, chain: int = 4, repeats: int = 3) -> float:
    """FLOP/s of TensorFlow's `[n, n] x [n, n]` matmuls in `dtype` ("float32", "bfloat16")
    on this machine's default device: the best of `repeats` timings of a chain of `chain`
    products, after one run to trace and warm up."""
    import time

    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal([n, n], seed=[0, 0]) / n**0.5, dtype)

    @tf.function(autograph=False)
    def run(x):
        for _ in range(chain):
            x = tf.matmul(x, a)
        return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

    run(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * chain / best


@functools.cache
def bf16_matmul_speedup() -> float:
    """bfloat16 over float32 throughput of `matmul_flops`' default chain (four `[1024, 1024]`
    products, best of three) on this machine. Once per process (about 0.4 s on 2 cores)."""
    return matmul_flops("bfloat16") / matmul_flops("float32")


def _cpu_reason(machine: Machine) -> str:
    """Why this CPU runs bfloat16 fast or not, e.g. `CPU with AVX512_BF16, bfloat16 matmuls
    1.89x float32's`."""
    if machine.cpu_bf16:
        flag = machine.cpu_bf16.upper().replace("AMX_BF16", "AMX-BF16")
        return f"CPU with {flag}, bfloat16 matmuls {machine.cpu_bf16_speedup():.2f}x float32's"
    if not machine.onednn_opts and any(f in machine.cpu_flags for f in _BF16_FLAGS):
        return "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"
    if any(f in machine.cpu_flags for f in _BF16_FLAGS):
        return f"CPU without AVX512_BF16/AMX (ONEDNN_MAX_CPU_ISA={machine.onednn_max_cpu_isa})"
    return "CPU without AVX512_BF16/AMX"


def _gpu_reason(machine: Machine) -> str:
    cc = machine.compute_capability
    name = machine.gpus[0].name
    return f"GPU {name}, compute capability {cc[0]}.{cc[1]}" if cc else f"GPU {name}"


def _capped_below_avx512(machine: Machine) -> bool:
    """Whether ONEDNN_MAX_CPU_ISA hides AVX-512 from oneDNN on a CPU with bfloat16 support:
    TensorFlow then runs bfloat16 ops through oneDNN, which aborts."""
    has_bf16 = any(f in machine.cpu_flags for f in _BF16_FLAGS)
    capped = "avx512f" in machine.cpu_flags and "avx512f" not in machine.usable_flags
    return has_bf16 and capped and machine.onednn_opts and not machine.gpus


def _native(policy: str, machine: Machine) -> bool:
    """Whether `policy` ("none", "bfloat16", "float16") computes natively on `machine`."""
    if policy == "none":
        return True
    if machine.gpus:
        cc = machine.compute_capability or (0, 0)
        return cc >= ((8, 0) if policy == "bfloat16" else (7, 0))
    return policy == "bfloat16" and machine.cpu_bf16 is not None


def _fast(policy: str, machine: Machine) -> bool:
    """Whether `policy` is native on `machine` and, for bfloat16 on a CPU, its matmuls run at
    least `BF16_MIN_MATMUL_SPEEDUP` times float32's."""
    if not _native(policy, machine):
        return False
    if policy != "bfloat16" or machine.gpus:
        return True
    return machine.cpu_bf16_speedup() >= BF16_MIN_MATMUL_SPEEDUP


def resolve_precision(requested: str, machine: Machine | None = None) -> tuple[str, str]:
    """`train.mixed_precision` as it runs here: (policy, reason).

    "auto" becomes "bfloat16" where the hardware computes in it fast (x86 CPU with
    AVX512_BF16 or AMX-BF16 whose bfloat16 matmuls measure at least `BF16_MIN_MATMUL_SPEEDUP`
    times float32's, GPUs of compute capability 8.0 or more), "float16" on GPUs of compute
    capability 7.x (the trainer adds loss scaling), else "none" (float32). Any other value is
    kept.

    Args:
        requested: "auto", "none", "bfloat16" or "float16".
        machine: default `this_machine()`.

    Returns:
        The policy in config terms ("none", "bfloat16", "float16") and a short reason, e.g.
        `("none", "CPU without AVX512_BF16/AMX")` or `("none", "CPU with AVX512_BF16,
        bfloat16 matmuls 0.53x float32's")`.

    Raises:
        ConfigError: "bfloat16" on a CPU with bfloat16 support whose AVX-512 is hidden from
            oneDNN by `ONEDNN_MAX_CPU_ISA` (e.g. AVX2), where TensorFlow crashes.
    """
    machine = machine or this_machine()
    if requested == "bfloat16" and _capped_below_avx512(machine):
        raise ConfigError(
            f"train.mixed_precision=bfloat16 with ONEDNN_MAX_CPU_ISA="
            f"{machine.onednn_max_cpu_isa}: TensorFlow sees this CPU's bfloat16 support and "
            "hands bfloat16 to oneDNN, which has no bfloat16 kernels below AVX512_CORE and "
            "crashes; use train.mixed_precision=auto (float32 here) or unset ONEDNN_MAX_CPU_ISA"
        )
    if requested != "auto":
        if _fast(requested, machine):
            return requested, "set by train.mixed_precision"
        if _native(requested, machine):
            return requested, f"set by train.mixed_precision; slower here: {_cpu_reason(machine)}"
        if machine.gpus:
            where = _gpu_reason(machine)
        else:
            where = "CPU" if requested == "float16" else _cpu_reason(machine)
        return requested, f"set by train.mixed_precision; emulated here: {where}"
    if machine.gpus:
        for policy in ("bfloat16", "float16"):
            if _native(policy, machine):
                return policy, _gpu_reason(machine)
        return "none", f"{_gpu_reason(machine)}: no fast float16 or bfloat16"
    return ("bfloat16" if _fast("bfloat16", machine) else "none"), _cpu_reason(machine)


def training_precision(requested: str, machine: Machine | None = None) -> str:
    """Resolves `train.mixed_precision` and logs it in one line; returns the policy.

    Logs e.g. `mixed precision: float32 (CPU without AVX512_BF16/AMX)`, and a warning when
    an explicit choice is emulated by this machine, or is bfloat16 on a CPU whose bfloat16
    matmuls measure slower than `BF16_MIN_MATMUL_SPEEDUP` times float32's (it still runs).
    """
    machine = machine or this_machine()
    policy, reason = resolve_precision(requested, machine)
    logging.info("mixed precision: %s (%s)", _display(policy), reason)
    if not _fast(policy, machine):
        auto, why = resolve_precision("auto", machine)
        if _native(policy, machine):
            cost = (
                f"its matmuls measure {machine.cpu_bf16_speedup():.2f}x float32's here, below "
                f"the {BF16_MIN_MATMUL_SPEEDUP}x it takes to train faster than in float32"
            )
        else:
            cost = (
                f"this machine has no native {policy} and TensorFlow emulates it, "
                f"{'likely ~25% slower' if policy == 'bfloat16' else 'likely slower'} "
                "than float32 here"
            )
        logging.warning(
            "train.mixed_precision=%s: %s; train.mixed_precision=auto picks %s (%s)",
            policy,
            cost,
            _display(auto),
            why,
        )
    return policy


def _display(policy: str) -> str:
    return "float32" if policy == "none" else policy


def decode_layout(
    cpu_count: int | None = None,
    parallel_batches: int | str = "auto",
    intra_threads: int | str = "auto",
    machine: Machine | None = None,
) -> DecodeLayout:
    """Batches decoded at a time and intra-op threads for this machine.

    A step of beam search runs many small ops (one target position for `B*K` hypotheses), too
    small to split well over threads: on a CPU, batches decoded side by side with one thread
    each use the cores better than one batch whose ops are split (two batches of one thread
    are about 1.9x as fast as one batch of two threads on 2 cores). Beyond
    `MAX_PARALLEL_BATCHES` batches the extra cores go into each op instead: a chunk of lines
    being translated (t2t-translate reads 1,000 at a time) makes only a few batches of
    `decode.batch_tokens` (2,048) tokens, and each batch in flight holds its own search
    state. So `cores` CPU cores give `ceil(cores / 4)` threads per op and `cores // threads`
    batches: 2 cores -> 2 x 1, 4 -> 4 x 1, 8 -> 4 x 2, 16 -> 4 x 4; one core -> one batch,
    default threads. On a GPU, one batch at a time keeps the device busy; more would only
    compete for it.

    Where each batch's ops run on one CPU thread, the search's graph (about 1,500 ops at
    beam 4) runs without TensorFlow's graph optimizer (Grappler): optimizing it costs about
    0.3 s of every new translator's first batch, and the fusions it makes do not speed up
    one-thread ops (docs/tuning.md). With more threads per op, or on a GPU, the fusions pay
    and it runs.

    A number given for either value is kept, and the other fits around it.

    Args:
        cpu_count: CPU cores; default: the machine's.
        parallel_batches: "auto" or batches decoded at a time (>= 1).
        intra_threads: "auto" or threads per op (0 = TensorFlow's default: one per core).
        machine: default `this_machine()`.
    """
    machine = machine or this_machine()
    cores = max(1, cpu_count or machine.cores)
    if machine.gpus:
        batches = 1 if parallel_batches == "auto" else int(parallel_batches)
        threads = 0 if intra_threads == "auto" else int(intra_threads)
        return DecodeLayout(batches, threads, f"GPU {machine.gpus[0].name}")
    reason = f"{cores} CPU core{'s' if cores > 1 else ''}, no GPU"
    if parallel_batches == "auto" and intra_threads == "auto":
        threads = math.ceil(cores / MAX_PARALLEL_BATCHES)
        batches = cores // threads
    elif parallel_batches == "auto":
        threads = int(intra_threads)
        batches = max(1, min(MAX_PARALLEL_BATCHES, cores // threads)) if threads else 1
    else:
        batches = int(parallel_batches)
        threads = max(1, cores // batches) if intra_threads == "auto" else int(intra_threads)
    if batches == 1 and intra_threads == "auto":
        threads = 0  # one batch: every core for each op
    return DecodeLayout(batches, threads, reason, optimize_graphs=threads != 1)


def apply_decode_layout(layout: DecodeLayout) -> None:
    """Sets up this process's TensorFlow to decode as `layout` says: its intra-op threads
    (before any TensorFlow op runs) and, unless `layout.optimize_graphs`, no Grappler for the
    functions it runs from then on. For processes that only decode (t2t-translate,
    t2t-evaluate, t2t-serve): training keeps Grappler."""
    import tensorflow as tf

    if layout.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(layout.intra_threads)
    if not layout.optimize_graphs:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def resolve_auto(
    cfg: Config, machine: Machine | None = None, precision: str | None = None
) -> Config:
    """A copy of `cfg` with `train.mixed_precision` and `decode.parallel_batches` as they run
    here ("auto" resolved), e.g. for TensorBoard; the model directory's config.yaml keeps
    "auto", so a model directory moved to another machine resolves it there. `precision`,
    if given, is the one training runs in (the workers' agreed one)."""
    machine = machine or this_machine()
    if precision is None:
        precision, _ = resolve_precision(cfg.train.mixed_precision, machine)
    layout = decode_layout(parallel_batches=cfg.decode.parallel_batches, machine=machine)
    return dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, mixed_precision=precision),
        decode=dataclasses.replace(cfg.decode, parallel_batches=layout.parallel_batches),
    )


@dataclasses.dataclass(frozen=True)
class OneDnn:
    """The oneDNN library inside TensorFlow, as it describes itself.

    Attributes:
        version: e.g. "3.7.3"; "" where TensorFlow runs no oneDNN primitive on the CPU
            (builds without oneDNN) or it could not be asked.
        isa: the instructions oneDNN uses here, in its words, e.g. "Intel AVX-512 with
            float16, Intel DL Boost and bfloat16 support and Intel AMX with bfloat16 and 8-bit
            integer support"; "" when unknown.
    """

    version: str = ""
    isa: str = ""


def parse_onednn_verbose(text: str) -> OneDnn:
    """The version and ISA from oneDNN's verbose header (`ONEDNN_VERBOSE=1` output), whose
    lines read `onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)` and
    `onednn_verbose,v1,info,cpu,isa:Intel AVX2` (older releases omit the `v1,` field)."""
    version = isa = ""
    for line in text.splitlines():
        if not line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            continue
        fields = line.split(",")
        for i, field in enumerate(fields):
            if field.startswith("oneDNN v") and not version:
                version = field[len("oneDNN v") :].split()[0]
            elif field.startswith("isa:") and fields[i - 1] == "cpu" and not isa:
                isa = ",".join(fields[i:])[len("isa:") :].strip()
    return OneDnn(version, isa)


@functools.cache
def onednn_info(timeout_s: float = 120.0) -> OneDnn:
    """oneDNN's version and ISA, asked once per process: TensorFlow has no API for them, so a
    child Python (this interpreter, this environment with `ONEDNN_VERBOSE=1` and no GPU)
    multiplies two small matrices on the CPU and this reads oneDNN's verbose header from its
    output (a few seconds, for importing TensorFlow). `OneDnn()` if the child fails or prints
    no header."""
    import subprocess
    import sys

    code = (
        "import tensorflow as tf\n"
        "with tf.device('/CPU:0'):\n"
        "    tf.matmul(tf.ones([16, 16]), tf.ones([16, 16])).numpy()\n"
    )
    # The child leaves the GPUs alone: oneDNN is the CPU's library.
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return OneDnn()
    return parse_onednn_verbose(done.stdout + "\n" + done.stderr)


def machine_info(machine: Machine | None = None, onednn: OneDnn | None = None) -> dict[str, Any]:
    """What a benchmark records about the machine: CPU, cores, ISA flags, GPUs, TensorFlow
    and oneDNN.

    Keys: `cpu`, `cores`, `isa` (the `ISA_FLAGS` the CPU has), `onednn_max_cpu_isa` and
    `onednn_opts` (only when set in the environment), `gpus` (name and compute capability),
    `tensorflow` (version), `onednn` (`version` and `isa`, as oneDNN reports them; default
    `onednn_info()`).
    """
    import tensorflow as tf

    machine = machine or this_machine()
    onednn = onednn if onednn is not None else onednn_info()
    info: dict[str, Any] = {
        "cpu": machine.cpu_model,
        "cores": machine.cores,
        "isa": list(machine.cpu_flags),
    }
    if machine.onednn_max_cpu_isa:
        info["onednn_max_cpu_isa"] = machine.onednn_max_cpu_isa
    if not machine.onednn_opts:
        info["onednn_opts"] = False
    info["gpus"] = [
        {"name": g.name, "compute_capability": ".".join(map(str, g.compute_capability or ()))}
        for g in machine.gpus
    ]
    info["tensorflow"] = tf.__version__
    info["onednn"] = {"version": onednn.version, "isa": onednn.isa}
    return info


def machine_line(machine: Machine | None = None, onednn: OneDnn | None = None) -> str:
    """`machine_info` in one line, e.g. `CPU AMD EPYC 7B12 (2 cores; avx2), TensorFlow 2.21.0,
    oneDNN 3.7.3, no GPU`."""
    info = machine_info(machine, onednn)
    isa = " ".join(info["isa"]) or "no AVX2"
    parts = [f"CPU {info['cpu']} ({info['cores']} cores; {isa})"]
    if "onednn_max_cpu_isa" in info:
        parts.append(f"ONEDNN_MAX_CPU_ISA={info['onednn_max_cpu_isa']}")
    if "onednn_opts" in info:
        parts.append("TF_ENABLE_ONEDNN_OPTS=0")
    parts.append(f"TensorFlow {info['tensorflow']}")
    if info["onednn"]["version"]:
        parts.append(f"oneDNN {info['onednn']['version']}")
    gpus = [f"{g['name']} (compute capability {g['compute_capability']})" for g in info["gpus"]]
    parts.append(", ".join(gpus) if gpus else "no GPU")
    return ", ".join(parts)
