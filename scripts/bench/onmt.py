"""Side by side with OpenNMT-tf: runs the OpenNMT-tf anchor script (OpenNMT-tf 2.32 / TF 2.12
and, with decoding, CTranslate2 on its own export) on the same data and compares its figures
with ours on the same measure."""

from __future__ import annotations

import argparse
import json
import os
import subprocess

from bench.common import REPO

DEFAULT_ANCHOR = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "onmt_anchor.sh"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--compare-onmt, --onmt_anchor and --onmt_steps."""
    parser.add_argument(
        "--compare-onmt",
        action="store_true",
        dest="compare_onmt",
        help="also run the OpenNMT-tf anchor script and print the ratios",
    )
    parser.add_argument(
        "--onmt_anchor",
        default=DEFAULT_ANCHOR,
        help="the OpenNMT-tf anchor script (default: ../shared/bench/onmt_anchor.sh beside "
        "the checkout)",
    )
    parser.add_argument("--onmt_steps", type=int, default=200, help="OpenNMT-tf training steps")


def check_anchor(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stops with a usage error if --compare-onmt is given and the anchor script is missing."""
    if args.compare_onmt and not os.path.isfile(args.onmt_anchor):
        parser.error(f"--onmt_anchor: no such file: {args.onmt_anchor}")


def run(args: argparse.Namespace, decode: bool) -> list[dict]:
    """Runs the anchor script (with `--ct2` when `decode`) and returns its JSON lines."""
    command = ["bash", args.onmt_anchor, "--steps", str(args.onmt_steps)]
    command += ["--ct2"] if decode else []
    print(
        f"running {' '.join(command)} (installs its own venv under /tmp the first time)", flush=True
    )
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def ratios(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Lines comparing our figures with the anchor's on the same measure."""
    lines = []
    train = [r for r in ours if r["what"] == "train"]
    onmt_train = [r for r in theirs if r.get("what") == "train"]
    if train and onmt_train and onmt_train[0].get("tokens_per_s"):
        ratio = train[0]["tokens_per_s"] / onmt_train[0]["tokens_per_s"]
        lines.append(f"train tokens/s: t2t_lite / OpenNMT-tf = {ratio:.2f}x")
    for beam in (4, 1):
        what = f"decode beam {beam}"
        mine = [
            r
            for r in ours
            if r["what"] == what and r.get("batch") == 32 and r["system"].startswith("t2t_lite")
        ]
        # CTranslate2 on our export (same model), then OpenNMT-tf and CTranslate2 on theirs.
        others = [
            dict(r, system=f"{r['system']} on our export")
            for r in ours
            if r["what"].startswith(what) and not r["system"].startswith("t2t_lite")
        ] + [r for r in theirs if r.get("what", "").startswith(what)]
        for row in mine:
            for other in others:
                ratio = row["sentences_per_s"] / other["sentences_per_s"]
                lines.append(
                    f"beam {beam} sentences/s: {row['system']} / {other['system']} = {ratio:.2f}x"
                )
    return lines
