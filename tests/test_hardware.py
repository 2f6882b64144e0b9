"""hardware: precision and decoding threads from faked CPU flags and faked GPUs."""

import logging
import platform

import pytest
import tensorflow as tf

from t2t_lite.config import ConfigError, config_from_dict
from t2t_lite.hardware import (
    Gpu,
    OneDnn,
    apply_decode_layout,
    decode_layout,
    detect,
    machine_info,
    machine_line,
    onednn_info,
    parse_onednn_verbose,
    resolve_auto,
    resolve_precision,
    training_precision,
)


def _cpuinfo(model: str, flags: str) -> str:
    """Two processors of /proc/cpuinfo text, as Linux writes it on x86."""
    cpu = (
        "processor\t: {n}\nvendor_id\t: X\nmodel name\t: {model}\n"
        "flags\t\t: fpu sse sse2 {flags}\nbugs\t\t: none\n\n"
    )
    return "".join(cpu.format(n=n, model=model, flags=flags) for n in range(2))


EPYC_BF16 = _cpuinfo(
    "AMD EPYC 9654 96-Core Processor",
    "avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni",
)
EPYC_AVX2 = _cpuinfo("AMD EPYC 7B12", "avx avx2 fma")
XEON_AMX = _cpuinfo(
    "Intel(R) Xeon(R) Platinum 8480+",
    "avx avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8",
)
ARM = (
    "processor\t: 0\nBogoMIPS\t: 2100.00\n"
    "Features\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics bf16 i8mm sve\n"
    "CPU implementer\t: 0x41\nCPU part\t: 0xd40\n"
)


def machine(
    cpuinfo: str = EPYC_AVX2, gpus=(), cores: int = 2, bf16_speedup: float = 1.9, **environ: str
):
    """A faked machine; bfloat16 matmuls at `bf16_speedup` times float32's (an AMD Zen 4's)."""
    return detect(
        cpuinfo=cpuinfo, gpus=gpus, environ=environ, cores=cores, bf16_speedup=bf16_speedup
    )


def test_cpuinfo_model_and_isa_flags():
    m = machine(EPYC_BF16)
    assert m.cpu_model == "AMD EPYC 9654 96-Core Processor"
    assert m.cpu_flags == ("avx2", "avx512f", "avx512_bf16")
    assert machine(XEON_AMX).cpu_flags == ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    assert machine(ARM).cpu_model == "unknown" and machine(ARM).cpu_flags == ()
    assert machine("").cpu_model == "unknown"  # no /proc/cpuinfo (not Linux)


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [
        (EPYC_BF16, ("bfloat16", "CPU with AVX512_BF16, bfloat16 matmuls 1.90x float32's")),
        (EPYC_AVX2, ("none", "CPU without AVX512_BF16/AMX")),
        (XEON_AMX, ("bfloat16", "CPU with AMX-BF16, bfloat16 matmuls 1.90x float32's")),
        (ARM, ("none", "CPU without AVX512_BF16/AMX")),
        ("", ("none", "CPU without AVX512_BF16/AMX")),
    ],
)
def test_auto_precision_on_cpus(cpuinfo, expected):
    assert resolve_precision("auto", machine(cpuinfo)) == expected


@pytest.mark.parametrize(
    "capabilities, policy",
    [
        ([(7, 0)], "float16"),
        ([(7, 5)], "float16"),
        ([(8, 0)], "bfloat16"),
        ([(9, 0), (9, 0)], "bfloat16"),
        ([(8, 0), (7, 0)], "float16"),  # every replica runs the policy of the weakest GPU
        ([(6, 1)], "none"),
        ([None], "none"),
    ],
)
def test_auto_precision_on_gpus(capabilities, policy):
    gpus = [Gpu(f"GPU {i}", cc) for i, cc in enumerate(capabilities)]
    # The GPU decides, whatever the CPU has.
    resolved, reason = resolve_precision("auto", machine(EPYC_BF16, gpus=gpus))
    assert resolved == policy and reason.startswith("GPU GPU 0")
    if capabilities[0]:
        assert "compute capability" in reason


@pytest.mark.parametrize("cap", ["AVX2", "avx2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE_VNNI"])
def test_onednn_max_cpu_isa_below_bf16_means_float32(cap):
    m = machine(EPYC_BF16, ONEDNN_MAX_CPU_ISA=cap)
    assert m.cpu_flags == ("avx2", "avx512f", "avx512_bf16")  # what the CPU has
    assert "avx512_bf16" not in m.usable_flags and "avx2" in m.usable_flags
    policy, reason = resolve_precision("auto", m)
    assert policy == "none" and f"ONEDNN_MAX_CPU_ISA={cap}" in reason
    assert ("avx512f" in m.usable_flags) == cap.startswith("AVX512")


def test_explicit_bf16_under_an_avx2_cap_is_refused():
    # TensorFlow hands bfloat16 to oneDNN, which crashes without AVX-512 kernels.
    for cap in ("AVX2", "AVX2_VNNI_2"):
        with pytest.raises(ConfigError, match=f"bfloat16 with ONEDNN_MAX_CPU_ISA={cap}"):
            resolve_precision("bfloat16", machine(EPYC_BF16, ONEDNN_MAX_CPU_ISA=cap))
    for cap in ("AVX512_CORE", "AVX512_CORE_BF16"):
        assert resolve_precision("bfloat16", machine(EPYC_BF16, ONEDNN_MAX_CPU_ISA=cap))
    assert resolve_precision("bfloat16", machine(EPYC_AVX2, ONEDNN_MAX_CPU_ISA="AVX2"))


def test_onednn_caps_that_keep_bf16():
    for cap in ("AVX512_CORE_BF16", "AVX10_1_512_AMX", "DEFAULT", "no-such-isa"):
        assert resolve_precision("auto", machine(XEON_AMX, ONEDNN_MAX_CPU_ISA=cap))[0] == (
            "bfloat16"
        )
    # AMX capped away, AVX512_BF16 left.
    m = machine(XEON_AMX, ONEDNN_MAX_CPU_ISA="AVX512_CORE_BF16")
    assert resolve_precision("auto", m) == (
        "bfloat16",
        "CPU with AVX512_BF16, bfloat16 matmuls 1.90x float32's",
    )
    # The older name of the variable.
    assert resolve_precision("auto", machine(EPYC_BF16, DNNL_MAX_CPU_ISA="AVX2"))[0] == "none"


# An Intel Xeon whose AMX is not exposed (as in some virtual machines): AVX512_BF16 and
# AVX512_FP16, no AMX flags; its bfloat16 matmuls run at about half float32's speed.
XEON_NO_AMX = _cpuinfo(
    "Intel(R) Xeon(R) Processor", "avx avx2 fma avx512f avx512_bf16 avx512_fp16 avx512_vnni"
)


@pytest.mark.parametrize(
    "speedup, policy",
    [(0.53, "none"), (1.0, "none"), (1.29, "none"), (1.3, "bfloat16"), (1.9, "bfloat16")],
)
def test_auto_on_a_bf16_cpu_follows_the_measured_matmul_speed(speedup, policy):
    m = machine(XEON_NO_AMX, bf16_speedup=speedup)
    assert resolve_precision("auto", m) == (
        policy,
        f"CPU with AVX512_BF16, bfloat16 matmuls {speedup:.2f}x float32's",
    )


def test_explicit_bf16_where_it_measures_slow_runs_and_warns(caplog):
    m = machine(XEON_NO_AMX, bf16_speedup=0.53)
    assert resolve_precision("bfloat16", m) == (
        "bfloat16",
        "set by train.mixed_precision; slower here: CPU with AVX512_BF16, bfloat16 matmuls "
        "0.53x float32's",
    )
    with caplog.at_level(logging.INFO, logger="absl"):
        assert training_precision("bfloat16", m) == "bfloat16"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "train.mixed_precision=bfloat16: its matmuls measure 0.53x float32's here, below the "
        "1.3x it takes to train faster than in float32; train.mixed_precision=auto picks "
        "float32 (CPU with AVX512_BF16, bfloat16 matmuls 0.53x float32's)"
    ]


def test_the_matmul_speed_is_measured_only_where_bf16_is_native(monkeypatch):
    from t2t_lite import hardware

    calls = []
    monkeypatch.setattr(hardware, "bf16_matmul_speedup", lambda: calls.append(1) or 0.5)
    for cpuinfo in (EPYC_AVX2, ARM, ""):
        assert resolve_precision("auto", detect(cpuinfo=cpuinfo, gpus=(), environ={}))[0] == (
            "none"
        )
    capped = detect(cpuinfo=XEON_NO_AMX, gpus=(), environ={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert resolve_precision("auto", capped)[0] == "none"
    gpu = detect(cpuinfo=XEON_NO_AMX, gpus=[Gpu("A100", (8, 0))], environ={})
    assert resolve_precision("auto", gpu)[0] == "bfloat16"
    assert calls == []
    native = detect(cpuinfo=XEON_NO_AMX, gpus=(), environ={})
    assert resolve_precision("auto", native)[0] == "none" and calls


def test_matmul_flops_and_the_bf16_speedup_are_measured_here():
    from t2t_lite.hardware import bf16_matmul_speedup, matmul_flops

    # The rates are positive and finite on any CPU (TensorFlow runs bfloat16 matmuls
    # everywhere, emulated where there is no support); a small product keeps the test short.
    here = detect(gpus=())
    if "avx512f" in here.cpu_flags and "avx512f" not in here.usable_flags:
        pytest.skip("ONEDNN_MAX_CPU_ISA hides AVX-512: a bfloat16 matmul would abort")
    for dtype in ("float32", "bfloat16"):
        assert 1e6 < matmul_flops(dtype, n=128, chain=2, repeats=2) < 1e16
    assert 0.01 < bf16_matmul_speedup() < 100


def test_onednn_off_means_float32():
    m = machine(EPYC_BF16, TF_ENABLE_ONEDNN_OPTS="0")
    assert resolve_precision("auto", m) == ("none", "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)")


def test_explicit_precision_is_kept():
    for policy in ("none", "bfloat16", "float16"):
        assert resolve_precision(policy, machine(EPYC_BF16))[0] == policy
        assert resolve_precision(policy, machine(EPYC_AVX2))[0] == policy
    policy, reason = resolve_precision("bfloat16", machine(EPYC_AVX2))
    assert reason == ("set by train.mixed_precision; emulated here: CPU without AVX512_BF16/AMX")
    assert resolve_precision("bfloat16", machine(EPYC_BF16)) == (
        "bfloat16",
        "set by train.mixed_precision",
    )


def test_training_precision_logs_one_line(caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        assert training_precision("auto", machine(EPYC_AVX2)) == "none"
    assert [r.getMessage() for r in caplog.records] == [
        "mixed precision: float32 (CPU without AVX512_BF16/AMX)"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="absl"):
        gpus = [Gpu("Tesla V100", (7, 0))]
        assert training_precision("auto", machine(gpus=gpus)) == "float16"
    assert [r.getMessage() for r in caplog.records] == [
        "mixed precision: float16 (GPU Tesla V100, compute capability 7.0)"
    ]


def test_explicit_bf16_on_emulating_hardware_warns(caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        assert training_precision("bfloat16", machine(EPYC_AVX2)) == "bfloat16"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "emulates" in warnings[0] and "~25% slower than float32" in warnings[0]
    assert "auto picks float32" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="absl"):
        training_precision("bfloat16", machine(EPYC_BF16))
        training_precision("none", machine(EPYC_AVX2))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with caplog.at_level(logging.INFO, logger="absl"):
        training_precision("float16", machine(EPYC_BF16))  # float16 on a CPU
    assert [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    "cores, expected",
    [(1, (1, 0)), (2, (2, 1)), (3, (3, 1)), (4, (4, 1)), (6, (3, 2)), (8, (4, 2)), (16, (4, 4))],
)
def test_decode_layout_on_cpus(cores, expected):
    layout = decode_layout(cores, machine=machine())
    assert (layout.parallel_batches, layout.intra_threads) == expected
    assert layout.parallel_batches * max(layout.intra_threads, 1) <= cores


def test_decode_layout_keeps_given_numbers():
    m = machine()
    assert decode_layout(2, parallel_batches=1, machine=m).intra_threads == 0
    assert decode_layout(8, parallel_batches=2, machine=m).intra_threads == 4
    assert decode_layout(8, intra_threads=2, machine=m).parallel_batches == 4
    assert decode_layout(2, intra_threads=0, machine=m).parallel_batches == 1
    both = decode_layout(2, parallel_batches=3, intra_threads=2, machine=m)
    assert (both.parallel_batches, both.intra_threads) == (3, 2)
    assert decode_layout(2, machine=m).summary() == (
        "2 batches at a time, 1 intra-op thread each, graph optimizer off (2 CPU cores, no GPU)"
    )


def test_decode_layout_on_a_gpu():
    m = machine(gpus=[Gpu("A100", (8, 0))], cores=16)
    layout = decode_layout(machine=m)
    assert (layout.parallel_batches, layout.intra_threads) == (1, 0)
    assert layout.optimize_graphs and "graph optimizer" not in layout.summary()
    assert decode_layout(parallel_batches=2, machine=m).parallel_batches == 2


@pytest.mark.parametrize(
    "cores, parallel_batches, intra_threads, optimize",
    [(2, "auto", "auto", False), (4, 2, 1, False), (2, 1, "auto", True), (8, "auto", "auto", True)],
)
def test_decode_layout_turns_grappler_off_for_one_thread_ops(
    cores, parallel_batches, intra_threads, optimize
):
    layout = decode_layout(cores, parallel_batches, intra_threads, machine=machine())
    assert layout.optimize_graphs == optimize


def test_apply_decode_layout(monkeypatch):
    calls = []
    monkeypatch.setattr(
        tf.config.threading, "set_intra_op_parallelism_threads", lambda n: calls.append(n)
    )
    monkeypatch.setattr(tf.config.optimizer, "set_experimental_options", calls.append)
    apply_decode_layout(decode_layout(2, machine=machine()))
    assert calls == [1, {"disable_meta_optimizer": True}]
    calls.clear()
    apply_decode_layout(decode_layout(2, parallel_batches=1, machine=machine()))
    assert calls == []  # TensorFlow's default threads and graph optimizer
    calls.clear()
    apply_decode_layout(decode_layout(machine=machine(gpus=[Gpu("A100", (8, 0))])))
    assert calls == []


def test_machine_info_and_line():
    m = machine(EPYC_BF16, ONEDNN_MAX_CPU_ISA="AVX2")
    onednn = OneDnn("3.7.3", "Intel AVX2")
    info = machine_info(m, onednn)
    assert info["cpu"] == "AMD EPYC 9654 96-Core Processor" and info["cores"] == 2
    assert info["isa"] == ["avx2", "avx512f", "avx512_bf16"]
    assert info["onednn_max_cpu_isa"] == "AVX2" and info["gpus"] == []
    assert info["onednn"] == {"version": "3.7.3", "isa": "Intel AVX2"}
    line = machine_line(m, onednn)
    assert line.startswith("CPU AMD EPYC 9654 96-Core Processor (2 cores; avx2 avx512f")
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in line and line.endswith("no GPU")
    assert f"TensorFlow {info['tensorflow']}, oneDNN 3.7.3, no GPU" in line
    gpu_line = machine_line(machine(ARM, gpus=[Gpu("Tesla V100", (7, 0))]), OneDnn())
    assert "(2 cores; no AVX2)" in gpu_line and "oneDNN" not in gpu_line
    assert gpu_line.endswith("Tesla V100 (compute capability 7.0)")


def test_parse_onednn_verbose():
    v3 = (
        "onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)\n"
        "onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2\n"
        "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with float16, Intel DL Boost and "
        "bfloat16 support and Intel AMX with bfloat16 and 8-bit integer support\n"
        "onednn_verbose,v1,info,gpu,runtime:none\n"
        "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core,...\n"
    )
    assert parse_onednn_verbose("noise\n" + v3) == OneDnn(
        "3.7.3",
        "Intel AVX-512 with float16, Intel DL Boost and bfloat16 support and Intel AMX with "
        "bfloat16 and 8-bit integer support",
    )
    v2 = "dnnl_verbose,info,oneDNN v2.7.3 (commit abc)\ndnnl_verbose,info,cpu,isa:Intel AVX2\n"
    assert parse_onednn_verbose(v2) == OneDnn("2.7.3", "Intel AVX2")
    assert parse_onednn_verbose("TensorFlow logs only\n") == OneDnn()


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="oneDNN's verbose header is read on x86-64",
)
def test_onednn_info_asks_this_tensorflow():
    # A child process of this interpreter: TensorFlow's x86-64 Linux wheels carry oneDNN.
    info = onednn_info()
    assert info.version.count(".") == 2 and info.version.split(".")[0].isdigit()
    assert info.isa


def test_this_process_sees_no_gpu():
    # The tests hide GPUs (CUDA_VISIBLE_DEVICES=-1); detection asks TensorFlow.
    assert detect(cpuinfo="").gpus == ()


def test_resolve_auto_replaces_auto_values_only():
    cfg = config_from_dict({"train": {"mixed_precision": "auto"}})
    assert cfg.decode.parallel_batches == "auto"
    resolved = resolve_auto(cfg, machine(EPYC_AVX2))
    assert resolved.train.mixed_precision == "none" and resolved.decode.parallel_batches == 2
    assert cfg.train.mixed_precision == "auto"  # a copy
    fixed = config_from_dict(
        {"train": {"mixed_precision": "bfloat16"}, "decode": {"parallel_batches": 3}}
    )
    again = resolve_auto(fixed, machine(EPYC_AVX2))
    assert (again.train.mixed_precision, again.decode.parallel_batches) == ("bfloat16", 3)


def test_config_rejects_other_values():
    with pytest.raises(ConfigError, match="train.mixed_precision: expected one of"):
        config_from_dict({"train": {"mixed_precision": "fp8"}})
    with pytest.raises(ConfigError, match="decode.parallel_batches: expected int or 'auto'"):
        config_from_dict({"decode": {"parallel_batches": "many"}})
