"""The export and train_digits command lines, end to end in a temporary directory."""

import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from torch import nn

from amaranth_nn import cli, golden
from amaranth_nn.models import default_spec, default_test_set
from amaranth_nn.spec import NetworkSpec
from torch_bridge import export as export_module
from torch_bridge import train as train_module
from torch_bridge import train_digits
from torch_bridge.export import write_rom
from torch_bridge.modules import QLinear, QReLU, QuantInput

from .conftest import random_float_model

REPO = Path(__file__).resolve().parents[2]


def _export(*args):
    return export_module.main([str(a) for a in args])


def test_export_float_model_with_calibration(tmp_path, capsys):
    model = random_float_model(2, sizes=(6, 5, 3))
    torch.save(model, tmp_path / "model.pt")
    x = np.random.default_rng(0).normal(size=(100, 6))
    np.save(tmp_path / "cal.npy", x)
    out = tmp_path / "net.json"
    assert _export(tmp_path / "model.pt", "--out", out, "--calibration", tmp_path / "cal.npy",
                   "--bits", "6") == 0
    printed = capsys.readouterr().out
    assert "dense0: 6 -> 5" in printed and f"wrote {out}" in printed
    spec = NetworkSpec.load(out)
    assert spec.name == "net" and spec.metadata["source"] == "model.pt"
    assert [layer.weight_format.width for layer in spec.layers] == [6, 6]
    rom = tmp_path / "net_rom"
    assert sorted(p.name for p in rom.iterdir()) == [
        "dense0_bias.hex", "dense0_weights.hex", "dense1_bias.hex", "dense1_weights.hex"]


def test_export_qat_model_and_rom_contents(tmp_path):
    dense = QLinear(3, 2, input_format=(8, 4), weight_format=(5, 2), output_format=(8, 4),
                    bias_width=10)
    with torch.no_grad():
        dense.linear.weight.copy_(torch.tensor([[1.0, -0.25, -4.0], [0.5, 3.75, 0.0]]))
        dense.linear.bias.copy_(torch.tensor([-1.0, 0.5]))
    model = nn.Sequential(QuantInput((8, 4)), dense, QReLU())
    torch.save(model, tmp_path / "qat.pt")
    out = tmp_path / "qat.json"
    assert _export(tmp_path / "qat.pt", "--out", out, "--rom-dir", tmp_path / "hex") == 0
    spec = NetworkSpec.load(out)
    assert spec.layers[0].weights.tolist() == [[4, -1, -16], [2, 15, 0]]
    assert spec.layers[0].bias.tolist() == [-64, 32]          # at 2**-(4 + 2)
    assert spec.layers[0].activation.kind == "relu"
    # Two's complement, ceil(width / 4) digits, row-major.
    assert (tmp_path / "hex" / "dense0_weights.hex").read_text().split() == [
        "04", "1f", "10", "02", "0f", "00"]
    assert (tmp_path / "hex" / "dense0_bias.hex").read_text().split() == ["3c0", "020"]


def test_write_rom_wide_values(tmp_path):
    spec = NetworkSpec.from_dict(json.loads((REPO / "amaranth_nn/models/digits.json")
                                            .read_text()))
    paths = write_rom(spec, tmp_path)
    assert len(paths) == 2 * len(spec.layers)
    for layer in spec.layers:
        lines = (tmp_path / f"{layer.name}_weights.hex").read_text().split()
        assert len(lines) == layer.weights.size
        width = layer.weight_format.width
        values = [int(v, 16) - (1 << width) * (int(v, 16) >> (width - 1)) for v in lines]
        assert values == layer.weights.ravel().tolist()


@pytest.mark.parametrize("args, message", [
    (["--bits", "4"], "error: The model is a QAT model with its formats fixed; bits apply to "
                      "float models only"),
    ([], None),
])
def test_export_errors(tmp_path, capsys, args, message):
    model = nn.Sequential(QuantInput((8, 4)), QLinear(3, 2, input_format=(8, 4),
                                                      weight_format=(8, 4),
                                                      output_format=(8, 4)))
    torch.save(model, tmp_path / "m.pt")
    code = _export(tmp_path / "m.pt", "--out", tmp_path / "o.json", "--no-rom", *args)
    if message is None:
        assert code == 0 and not (tmp_path / "o_rom").exists()
    else:
        assert code == 2
        assert capsys.readouterr().err.strip() == message
        assert not (tmp_path / "o.json").exists()


def test_export_rejects_state_dicts_and_missing_files(tmp_path, capsys):
    torch.save(random_float_model(0).state_dict(), tmp_path / "sd.pt")
    assert _export(tmp_path / "sd.pt", "--out", tmp_path / "o.json") == 2
    assert capsys.readouterr().err.strip() == (
        f"error: Model file '{tmp_path / 'sd.pt'}' holds a state_dict, not a model; save the "
        f"module itself with torch.save(model, path)")
    assert _export(tmp_path / "nope.pt", "--out", tmp_path / "o.json") == 2
    assert capsys.readouterr().err.strip() == (
        f"error: Model file '{tmp_path / 'nope.pt'}' does not exist")
    torch.save(random_float_model(0), tmp_path / "f.pt")
    assert _export(tmp_path / "f.pt", "--out", tmp_path / "o.json") == 2
    assert "need calibration data" in capsys.readouterr().err


def test_export_format_option_syntax(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _export(tmp_path / "m.pt", "--out", tmp_path / "o.json", "--input-format", "8")
    assert ("argument --input-format: invalid format '8': expected WIDTH,FRAC like 8,6"
            in capsys.readouterr().err)


def test_train_digits_cli_end_to_end(tmp_path):
    out = tmp_path / "d4.json"
    result = subprocess.run(
        [sys.executable, "-m", "torch_bridge.train_digits", "--bits", "4", "--out", str(out),
         "--epochs", "3", "--qat-epochs", "3", "--hidden", "16"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "float accuracy:" in result.stdout and "integer accuracy:" in result.stdout
    assert "QAT eval forward == integer model: True" in result.stdout
    assert "QAT" in result.stderr and "epoch" in result.stderr   # tqdm progress bars
    assert f"wrote {out}, {tmp_path / 'd4.report.json'}, {tmp_path / 'd4_test.npz'}" in \
        result.stdout
    spec = NetworkSpec.load(out)
    assert [layer.out_features for layer in spec.layers] == [16, 10]
    assert all(layer.weight_format.width == 4 for layer in spec.layers)
    report = json.loads((tmp_path / "d4.report.json").read_text())
    with np.load(tmp_path / "d4_test.npz") as data:
        x, y = data["x"], data["y"]
    assert x.dtype == np.int64 and x.shape == (report["test_samples"], 64)
    accuracy = float((golden.run(spec, x).argmax(axis=1) == y).mean())
    assert accuracy == report["integer_accuracy"]
    assert 0 <= report["float_accuracy"] <= 1
    assert report["qat_eval_equals_integer"] and report["torch_int64_equals_golden"]
    # What a rerun's results depend on, so that a user can tell why theirs differ.
    environment = report["environment"]
    assert set(environment) == {"python", "torch", "numpy", "scikit-learn", "torch_threads",
                                "cpu", "machine", "platform"}
    assert environment["torch"] == torch.__version__ and environment["torch_threads"] == 1
    assert environment["python"] == platform.python_version()
    assert environment["numpy"] == np.__version__
    assert environment["scikit-learn"] == sklearn.__version__
    assert environment["cpu"] in (platform.processor(), platform.machine())


@pytest.mark.parametrize("argv, message", [
    (["--bits", "1"], "--bits must be an integer from 2 to 16, not 1"),
    (["--bits", "17"], "--bits must be an integer from 2 to 16, not 17"),
    (["--input-bits", "1"], "--input-bits must be an integer from 2 to 16, not 1"),
    (["--epochs", "0"], "--epochs must be a positive integer, not 0"),
    (["--qat-epochs", "0"], "--qat-epochs must be a positive integer, not 0"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, not -1"),
    (["--percentile", "101"], "--percentile must be a number in (50, 100], not 101"),
    (["--hidden", "16,0"], "--hidden values must be positive integers, not 0"),
    (["--hidden", "16,x"],
     "--hidden expects a comma-separated list of positive integers, got 'x' in '16,x'"),
])
def test_train_digits_bad_options(argv, message, tmp_path, cli_error):
    out = tmp_path / "d.json"
    assert cli_error(train_digits.main, ["--bits", "4", "--out", out] + argv) == (
        2, f"error: {message}")
    assert not any(tmp_path.iterdir())


def test_train_digits_checks_outputs_before_training(tmp_path, unwritable_dir, cli_error):
    """Every file it would write is checked first: nothing is trained for a bad one."""
    locked, reason = unwritable_dir
    (tmp_path / "d.report.json").mkdir()
    for out, message in [
            (tmp_path, f"--out '{tmp_path}' is a directory, not a file"),
            (tmp_path / "no" / "d.json",
             f"--out '{tmp_path / 'no' / 'd.json'}': directory '{tmp_path / 'no'}' does not "
             f"exist"),
            (locked / "d.json", f"--out '{locked / 'd.json'}' cannot be written: {reason}"),
            (tmp_path / "d.json",
             f"--out '{tmp_path / 'd.report.json'}' is a directory, not a file")]:
        assert cli_error(train_digits.main, ["--bits", "4", "--out", out]) == (
            2, f"error: {message}")
    assert not (tmp_path / "d.json").exists()


@pytest.mark.parametrize("main", [export_module.main, train_digits.main, train_module.main])
def test_version(main, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"amaranth-nn {cli.version()}\n"


def _model_file_cases(tmp_path):
    (tmp_path / "dir.pt").mkdir()
    (tmp_path / "x.json").write_text("{}")
    torch.save(nn.Linear(2, 2), tmp_path / "linear.pt")
    # A model whose class lives in a module that the exporting Python cannot import.
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mynet.py").write_text(
        "from torch import nn\nclass Net(nn.Sequential):\n    pass\n")
    subprocess.run([sys.executable, "-c", "import torch, mynet; torch.save(mynet.Net("
                    f"torch.nn.Linear(2, 2)), {str(tmp_path / 'net.pt')!r})"],
                   cwd=tmp_path / "code", check=True)
    return [
        (tmp_path / "missing.pt", "does not exist"),
        (tmp_path / "dir.pt", "is a directory"),
        (tmp_path / "x.json", "is not a file written by torch.save"),
        (tmp_path / "linear.pt", "holds a Linear, not an nn.Sequential"),
        (tmp_path / "net.pt", "needs code that cannot be imported here (No module named "
                              "'mynet'); save an nn.Sequential of modules that live in "
                              "importable packages"),
    ]


def test_export_bad_model_files(tmp_path, unreadable_file, cli_error):
    path, reason = unreadable_file
    cases = _model_file_cases(tmp_path) + [(path, f"cannot be read: {reason}")]
    for model, message in cases:
        assert cli_error(export_module.main, [model, "--out", tmp_path / "o.json"]) == (
            2, f"error: Model file '{model}' {message}")
    assert not (tmp_path / "o.json").exists()


def test_export_bad_calibration_files(tmp_path, unreadable_file, cli_error):
    torch.save(random_float_model(0, sizes=(6, 5, 3)), tmp_path / "f.pt")
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "x.json").write_text("[[1, 2, 3, 4, 5, 6]]")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "objects.npy", np.array([[1.0, None]], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "no_x.npz", a=np.zeros(6))
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as archive:
        archive.writestr("notes.txt", "")
    np.savez(tmp_path / "cal.npz", x=np.random.default_rng(0).normal(size=(20, 6)))
    path, reason = unreadable_file
    for data, message in [
            (tmp_path / "missing.npy", "{w}: no such file"),
            (tmp_path / "dir.npy", "{w} is a directory, not a .npy or .npz file"),
            (tmp_path / "x.json",
             "{w} is not a .npy or .npz file (the files np.save and np.savez write)"),
            (tmp_path / "empty.npy", "{w} is empty (0 bytes), not a .npy or .npz file"),
            (tmp_path / "objects.npy", "{w} holds Python objects (a pickle), which are never "
                                       "loaded; save numbers, e.g. np.save(path, "
                                       "x.astype(np.int64))"),
            (tmp_path / "no_x.npz", "{w} has no array 'x' (it has 'a'); save the inputs as x "
                                    "and their labels as y: np.savez(path, x=x, y=y)"),
            (tmp_path / "zip.npz", "{w} is a zip archive without numpy arrays, not a .npz file "
                                   "(the files np.savez writes)"),
            (path, f"{{w}} cannot be read: {reason}")]:
        assert cli_error(export_module.main, [tmp_path / "f.pt", "--out", tmp_path / "o.json",
                                              "--calibration", data]) == (
            2, "error: " + message.format(w=f"--calibration '{data}'"))
    # x in an .npz is accepted.
    assert export_module.main([str(tmp_path / "f.pt"), "--out", str(tmp_path / "o.json"),
                               "--calibration", str(tmp_path / "cal.npz")]) == 0


def test_export_non_finite_weights_name_the_layer(tmp_path, cli_error):
    model = random_float_model(0, sizes=(6, 5, 3))
    with torch.no_grad():
        model[3].weight[1, 2] = float("nan")
    torch.save(model, tmp_path / "nan.pt")
    np.save(tmp_path / "cal.npy", np.zeros((4, 6)))
    assert cli_error(export_module.main, [tmp_path / "nan.pt", "--out", tmp_path / "o.json",
                                          "--calibration", tmp_path / "cal.npy"]) == (
        2, "error: module 3 (Linear): parameter '3.weight' is not finite (nan at index (1, 2)); "
           "retrain or repair the model")


def test_export_saturation_is_a_warning_line(tmp_path, capsys):
    torch.save(random_float_model(0, sizes=(6, 5, 3)), tmp_path / "f.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(size=(20, 6)))
    assert _export(tmp_path / "f.pt", "--out", tmp_path / "o.json", "--calibration",
                   tmp_path / "cal.npy", "--weight-format", "4,3") == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("warning: layer ") for line in err)
    assert "saturated in Q(4, 3)" in err[0]


def test_export_bad_input_subprocess(tmp_path):
    """The real exit status, and one line without a traceback."""
    done = subprocess.run([sys.executable, "-m", "torch_bridge.export", str(tmp_path / "no.pt"),
                           "--out", str(tmp_path / "o.json")], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"error: Model file '{tmp_path / 'no.pt'}' does not exist\n"


def test_default_model_meets_its_targets():
    # The shipped default model: 8-bit, its integer accuracy within 0.5 points of its float
    # twin, and the stored test set reproduces the reported integer accuracy exactly.
    spec = default_spec()
    x, y = default_test_set()
    report = json.loads((REPO / "amaranth_nn/models/digits.report.json").read_text())
    assert report["bits"] == 8
    assert all(layer.weight_format.width == 8 and layer.output_format.width == 8
               for layer in spec.layers)
    assert spec.input_format.width == 8
    accuracy = float((golden.run(spec, x).argmax(axis=1) == y).mean())
    assert accuracy == report["integer_accuracy"]
    assert report["float_accuracy"] - report["integer_accuracy"] <= 0.005
    assert report["qat_eval_equals_integer"] and report["torch_int64_equals_golden"]


def test_four_bit_target():
    # The 4-bit target, measured by the real (default) training: integer accuracy within 2
    # points of the float twin, and the exactness checks hold. About 10 s of CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the CLI, so the figures are the documented ones
    try:
        spec, report, (x, y) = train_digits.run_training(4, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert all(layer.weight_format.width == 4 and layer.output_format.width == 4
               for layer in spec.layers)
    assert report["float_accuracy"] - report["integer_accuracy"] <= 0.02
    assert report["qat_eval_equals_integer"] and report["torch_int64_equals_golden"]
    assert float((golden.run(spec, x).argmax(axis=1) == y).mean()) == \
        report["integer_accuracy"]


def test_export_output_errors_come_before_any_work(tmp_path, capsys):
    # A spec path that is a directory, or a ROM directory that is a file, is refused before
    # the model is even loaded (the model file here does not exist).
    assert _export(tmp_path / "none.pt", "--out", tmp_path) == 2
    assert capsys.readouterr().err == f"error: --out '{tmp_path}' is a directory, not a file\n"
    (tmp_path / "file").write_text("")
    assert _export(tmp_path / "none.pt", "--out", tmp_path / "o.json", "--rom-dir",
                   tmp_path / "file") == 2
    assert capsys.readouterr().err == (
        f"error: --rom-dir '{tmp_path / 'file'}' is a file, not a directory\n")
    # A spec file needs its directory; a ROM directory is created, with its parents.
    model = nn.Sequential(QuantInput((8, 4)), QLinear(3, 2, input_format=(8, 4),
                                                      weight_format=(8, 4),
                                                      output_format=(8, 4)))
    torch.save(model, tmp_path / "m.pt")
    out = tmp_path / "new" / "o.json"
    assert _export(tmp_path / "m.pt", "--out", out) == 2
    assert capsys.readouterr().err == (f"error: --out '{out}': directory '{tmp_path / 'new'}' "
                                       f"does not exist\n")
    out = tmp_path / "o.json"
    assert _export(tmp_path / "m.pt", "--out", out, "--rom-dir", tmp_path / "a" / "b") == 0
    assert NetworkSpec.load(out).layers[0].in_features == 3
    assert (tmp_path / "a" / "b" / "dense0_weights.hex").is_file()


@pytest.mark.parametrize("args, message", [
    (["--bits", "0"], "--bits must be an integer from 2 to 62, not 0"),
    (["--bits", "63"], "--bits must be an integer from 2 to 62, not 63"),
    (["--input-bits", "99"], "--input-bits must be an integer from 2 to 62, not 99"),
    (["--bias-width", "1"], "--bias-width must be an integer from 2 to 62, not 1"),
    (["--percentile", "50"], "--percentile must be a number in (50, 100], not 50"),
    (["--percentile", "nan"], "--percentile must be a number in (50, 100], not nan"),
    (["--input-format", "99,3"], "--input-format: Width must be an integer from 2 to 62, not 99"),
    (["--weight-format", "1,0"], "--weight-format: Width must be an integer from 2 to 62, not 1"),
    (["--bits", "33"], "module 0 (Linear): its bias needs 64 bits at the accumulator scale "
                       "2**-61 (input frac 30 + weight frac 31), more than 62; choose fewer bits "
                       "or narrower formats"),
])
def test_export_bad_widths(tmp_path, cli_error, args, message):
    torch.save(random_float_model(0, sizes=(6, 5, 3)), tmp_path / "f.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).normal(size=(20, 6)))
    assert cli_error(export_module.main, [tmp_path / "f.pt", "--out", tmp_path / "o.json",
                                          "--calibration", tmp_path / "cal.npy", *args]) == (
        2, f"error: {message}")
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o_rom").exists()


@pytest.mark.parametrize("data, message", [
    (np.array([["a"] * 6]), "Calibration data must hold real numbers, not <U1"),
    (np.zeros((4, 7)), "Calibration data must have shape (batch, 6), not (4, 7)"),
    (np.zeros((0, 6)), "Calibration data holds no samples"),
    (np.array([[0.0, 1.0, np.nan, 0.0, 0.0, 0.0]]),
     "Cannot quantize calibration data: value nan at index (0, 2) is not finite"),
])
def test_export_bad_calibration_data(tmp_path, cli_error, data, message):
    torch.save(random_float_model(0, sizes=(6, 5, 3)), tmp_path / "f.pt")
    np.save(tmp_path / "cal.npy", data)
    assert cli_error(export_module.main, [tmp_path / "f.pt", "--out", tmp_path / "o.json",
                                          "--calibration", tmp_path / "cal.npy"]) == (
        2, f"error: --calibration '{tmp_path / 'cal.npy'}': {message}")
