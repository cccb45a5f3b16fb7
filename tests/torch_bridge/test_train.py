"""The ``python -m torch_bridge.train`` command line: every dataset end to end (few epochs), its
files and report, and its bad options."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amaranth_nn import golden
from amaranth_nn.spec import NetworkSpec
from torch_bridge import train as train_module

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dataset, argv, shape, kinds", [
    ("digits-conv", ["--channels", "4,6"], (8, 8, 1),
     ("conv", "maxpool", "conv", "maxpool", "flatten", "dense")),
    ("mnist1d", ["--channels", "4", "--bits", "4"], (40, 1),
     ("conv", "maxpool", "flatten", "dense")),
])
def test_train_end_to_end(dataset, argv, shape, kinds, tmp_path):
    out = tmp_path / "net.json"
    result = subprocess.run(
        [sys.executable, "-m", "torch_bridge.train", "--dataset", dataset, "--bits", "8",
         "--out", str(out), "--epochs", "2", "--qat-epochs", "2", *argv],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    for line in ("float accuracy:", "integer accuracy:", "PTQ accuracy:", "training time:",
                 "QAT eval forward == integer model: True; torch int64 == golden: True"):
        assert line in result.stdout
    assert "QAT" in result.stderr and "epoch" in result.stderr   # tqdm progress bars
    assert (f"wrote {out}, {tmp_path / 'net.report.json'}, {tmp_path / 'net_test.npz'}"
            in result.stdout)
    spec = NetworkSpec.load(out)
    assert spec.input_shape == shape and spec.kinds == kinds
    report = json.loads((tmp_path / "net.report.json").read_text())
    with np.load(tmp_path / "net_test.npz") as data:
        x, y = data["x"], data["y"]
    assert x.dtype == np.int64 and x.shape == (report["test_samples"], spec.input_size)
    assert float((golden.run(spec, x).argmax(axis=1) == y).mean()) == \
        report["integer_accuracy"]
    assert {"float_accuracy", "integer_accuracy", "ptq_integer_accuracy", "train_seconds",
            "data_seconds", "layers", "multiplies_per_inference"} <= set(report)
    assert report["model"] == dataset and report["qat_eval_equals_integer"]
    environment = report["environment"]
    assert environment["torch"] == torch.__version__ and environment["torch_threads"] == 1
    assert environment["python"] == platform.python_version()
    assert ("mnist1d" in environment) == (dataset == "mnist1d")


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "digits-conv", "--hidden", "16"],
     "--hidden applies to --dataset digits only; digits-conv takes --channels"),
    (["--dataset", "digits", "--channels", "4"],
     "--channels applies to the conv datasets (digits-conv, mnist1d); the digits MLP takes "
     "--hidden"),
    (["--dataset", "mnist1d", "--channels", "4,4,4,4"],
     "--channels takes 1 to 3 values for mnist1d (one per conv block), not 4"),
    (["--dataset", "digits-conv", "--channels", "4,4,4"],
     "--channels takes 1 or 2 values for digits-conv (one per conv block), not 3"),
    (["--dataset", "mnist1d", "--channels", "4,0"],
     "--channels values must be positive integers, not 0"),
    (["--dataset", "mnist1d", "--threads", "0"],
     "--threads must be an integer from 1 to 256, not 0"),
    (["--dataset", "mnist1d", "--bits", "17"], "--bits must be an integer from 2 to 16, not 17"),
])
def test_train_bad_options(argv, message, tmp_path, cli_error):
    out = tmp_path / "net.json"
    assert cli_error(train_module.main, ["--bits", "4", "--out", out] + argv) == (
        2, f"error: {message}")
    assert not any(tmp_path.iterdir())


def test_train_checks_outputs_before_training(tmp_path, cli_error):
    (tmp_path / "m.report.json").mkdir()
    assert cli_error(train_module.main, ["--dataset", "mnist1d", "--bits", "8", "--out",
                                         tmp_path / "m.json"]) == (
        2, f"error: --out '{tmp_path / 'm.report.json'}' is a directory, not a file")


def test_train_unknown_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--dataset", "cifar", "--bits", "8", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "argument --dataset: invalid choice: 'cifar'" in capsys.readouterr().err
