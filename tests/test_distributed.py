"""DDP through torchrun: two CPU processes (gloo) train one model; the ranks agree; one folder is written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.training_helpers import fast_options, write_data, write_tiny_config
from vitedge.converters.training.finetune import finetune


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    data = write_data(tmp_path / "data")
    config = write_tiny_config(tmp_path / "config.json")
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "vitedge.cli", "finetune", str(config), "--data", str(data), "--out", str(out),
               "--epochs", "2", "--batch-size", "8", "--lr", "2e-3", "--warmup", "0", "--label-smoothing", "0",
               "--threads", "1", "--device", "cpu", "--val-fraction", "0.25", "--quiet"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    hashes = re.findall(r"rank (\d)/2: weights sha256 ([0-9a-f]{64})", completed.stdout)
    assert sorted(rank for rank, _ in hashes) == ["0", "1"], completed.stdout
    assert len({digest for _, digest in hashes}) == 1  # both ranks hold the same weights
    assert completed.stdout.count(f"wrote {out}") == 1  # rank 0 writes, once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "data", "ddp", "ddp.checkpoint"]
    record = json.loads((out / "vitedge_training.json").read_text())
    assert record["result"]["world_size"] == 2

    # Each step's batch is split over the processes and DDP averages the gradients: the same
    # training as one process on the whole batch (18 images: every batch splits evenly), up to float
    # summation order, which Adam magnifies for near-zero gradients (the key bias has none at all).
    single = finetune(str(config), data, tmp_path / "single", fast_options(epochs=2, val_fraction=0.25))
    from vitedge.converters.loading import load_source

    distributed = load_source(str(out)).model.state_dict()
    for name, tensor in single.model.state_dict().items():
        assert torch.allclose(tensor, distributed[name], atol=5e-4), name
