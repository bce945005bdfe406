"""torchrun: data-parallel training equals one process on the same global batch; stylize shards its inputs.

The equivalence runs in float64 (a worker that sets torch's default dtype):
in float32, Adam turns rounding differences between one full-batch gradient
and the mean of two half-batch gradients into visibly different weights
within a few steps, in one process just as across two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from torch.distributed.run import get_args_parser

from stst.model.checkpoint import load_checkpoint
from stst.cli import main

from conftest import PHOTOS, STYLES, TRAIN

WORKER = """import sys
import torch
torch.set_default_dtype(torch.float64)
from stst.cli import main
main(sys.argv[1:])
"""
# fp32 named (a run setting, so again on --resume): the equivalence is of data-parallel steps, and auto would
# time the engines first (in float64: 40 s). No colour fit: it follows the steps in rank 0 alone (tests/test_train.py
# checks it), and in float64 on one thread it took 10 of each run's 19 s.
TRAIN_ARGS = ["train", "--style", str(STYLES / "starry_night.jpg"), "--dataset", str(TRAIN), "--image-size", "32",
              "--style-size", "64", "--batch-size", "4", "--workers", "0", "--lr-schedule", "constant",
              "--precision", "fp32", "--no-palette-fit"]
# Per-channel constants that a later instance norm removes (biases of convolutions before a norm, and of the
# residual blocks' last norms, which only reach the next norm through linear layers): their gradient is zero in
# exact arithmetic, and Adam's normalised steps turn the rounding noise in it into steps of up to 1e-5 here.
NULL_BIAS = ("conv1.conv2d.bias", "conv2.conv2d.bias", "conv3.conv2d.bias", "deconv1.conv2d.bias",
             "deconv2.conv2d.bias", *(f"res{i}.conv{j}.conv2d.bias" for i in range(1, 6) for j in (1, 2)),
             *(f"res{i}.in2.bias" for i in range(1, 6)))


def run(tmp_path, args, processes=1, float64=True, torchrun=False):
    """``stst ARGS`` in one process, or in ``processes`` under torchrun (``torchrun``: one too); in float64 unless
    told otherwise."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command = [*(launcher if processes > 1 or torchrun else [sys.executable]),
               *([str(worker)] if float64 else ["-m", "stst"]),
               *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def curve(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_train_the_same_weights_as_one_and_resume_in_one(tmp_path):
    """3 steps in two processes, then 3 more in torchrun's only process (a resume; a process group of one, as
    ``--nproc-per-node 1`` on a GPU runs NCCL): the same losses and weights as 6 steps in one process alone."""
    run(tmp_path, [*TRAIN_ARGS, "--iterations", "6", "-o", "one.pth", "--loss-log", "one.jsonl"])
    two = run(tmp_path, [*TRAIN_ARGS, "--iterations", "3", "-o", "two.pth", "--loss-log", "two.jsonl"], processes=2)
    assert two.stdout.count("wrote two.pth") == 1  # only rank 0 reports and writes
    resumed = run(tmp_path, ["train", "--resume", "two.pth", "--iterations", "6", "--loss-log", "two.jsonl",
                             "--precision", "fp32"], torchrun=True)
    assert resumed.stdout.count("wrote two.pth") == 1
    both = curve(tmp_path / "two.jsonl")
    assert [r["iteration"] for r in both] == list(range(1, 7))
    for x, y in zip(curve(tmp_path / "one.jsonl"), both, strict=True):
        assert x["total"] == pytest.approx(y["total"], rel=1e-6)
    a, b = load_checkpoint(tmp_path / "one.pth"), load_checkpoint(tmp_path / "two.pth")
    assert b.metadata["hardware"]["processes"] == 1 and "processes" not in a.metadata["hardware"]  # a group of one
    for name, weight in a.state_dict.items():
        tolerance = 1e-3 if name in NULL_BIAS else 1e-9
        assert (weight - b.state_dict[name]).abs().max() < tolerance, name


def test_ctrl_c_under_torchrun_leaves_one_resumable_checkpoint(tmp_path):
    out, log = tmp_path / "c.pth", tmp_path / "c.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "stst",
               *map(str, TRAIN_ARGS), "--iterations", "400", "-o", str(out), "--loss-log", str(log)]
    # A terminal's Ctrl-C reaches the whole process group: torchrun and both ranks.
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 180
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert stderr.count("stst: error: interrupted at iteration") == 1  # rank 0 reports, once
    done = load_checkpoint(out).metadata["iterations"]
    assert 3 <= done < 400 and len(log.read_text().splitlines()) == done
    resumed = CliRunner().invoke(main, ["train", "--resume", str(out), "--iterations", str(done + 2)])  # here
    assert resumed.exit_code == 0 and load_checkpoint(out).metadata["iterations"] == done + 2, resumed.output


def test_torchrun_stylize_writes_every_photo_once(tmp_path):
    out = tmp_path / "out"
    done = run(tmp_path, ["stylize", PHOTOS, "-m", "udnie", "-o", f"{out}/", "--backend", "torch"], processes=2,
               float64=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}-udnie.jpg" for p in PHOTOS.glob("*.jpg"))
    assert done.stdout.count("5 stylized, 0 skipped, 0 failed") == 1


@pytest.mark.parametrize("command", ["train", "stylize", "distill", "evaluate", "export", "info"])
def test_every_option_survives_torchruns_parser(command):
    """torchrun matches abbreviations of its own options anywhere on the line: none of ours may be one."""
    for param in main.commands[command].params:
        first = next((o for o in param.opts if o.startswith("--")), None)
        if first is None:
            continue
        args = get_args_parser().parse_args(["--nproc-per-node", "2", "-m", "stst", command, first, "x"])
        assert args.training_script_args[-2:] == [first, "x"]


def test_a_batch_that_does_not_split_evenly_is_refused():
    from stst.training.data import crop_loader

    with pytest.raises(Exception, match="the batch size 3 is not a multiple of the 2 processes"):
        crop_loader([PHOTOS / "kodim01.jpg"], 32, 3, 0, world=2)
