"""The command-line scaffold, and every class of bad input in every command line that takes it.

Each bad input must give one line on stderr that names the option and the value or path, exit
status 2, and no work done (nothing on stdout, no file written).
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from specs import random_spec

from amaranth_nn import __version__, cli
from amaranth_nn import export as export_cli
from amaranth_nn import host as host_cli
from amaranth_nn import simulate as simulate_cli
from amaranth_nn.__main__ import main as package_main
from amaranth_nn.models import DEFAULT_MODEL, MODELS, default_spec, default_test_set

ROOT = Path(__file__).resolve().parents[2]


def _spec():
    """5 -> 4 -> 3, input Q(8, F); layers dense0 and dense1."""
    return random_spec(np.random.default_rng(5), [5, 4, 3], in_width=8)


@pytest.fixture
def spec_path(tmp_path):
    return _spec().save(tmp_path / "small.json")


# What each command line needs besides the option under test.
COMMANDS = {
    "simulate": (simulate_cli.main, lambda tmp: []),
    "export": (export_cli.main, lambda tmp: ["--out", tmp / "exported"]),
    "host": (host_cli.main, lambda tmp: ["--port", "sim"]),
}


def _run(cli_error, command, tmp_path, argv):
    main, base = COMMANDS[command]
    status, line = cli_error(main, base(tmp_path) + argv)
    assert status == 2
    assert not (tmp_path / "exported").exists()
    return line


# The scaffold.

def test_run_turns_expected_errors_into_one_line(capsys):
    def command(error):
        def run(argv):
            raise error
        return run

    assert cli.run(command(cli.CommandError("--x 'y': bad"))) == 2
    assert capsys.readouterr().err == "error: --x 'y': bad\n"
    assert cli.run(command(cli.CommandError("tool died", status=cli.FAILED))) == 1
    assert capsys.readouterr().err == "error: tool died\n"
    assert cli.run(command(OSError("two\nlines")), bad_input=(OSError,)) == 2
    assert capsys.readouterr().err == "error: two; lines\n"
    assert cli.run(command(RuntimeError("no fit")), failures=(RuntimeError,)) == 1
    assert capsys.readouterr().err == "error: no fit\n"
    assert cli.run(command(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    with pytest.raises(RuntimeError, match="^a bug$"):  # anything else keeps its traceback
        cli.run(command(RuntimeError("a bug")))
    assert cli.run(lambda argv: len(argv), ["a", "b"]) == 2


def test_number_rules():
    assert cli.check_int(1, "--n") == 1
    for value, lo, hi, text in [(0, 1, None, "a positive integer"),
                                (-1, 0, None, "a non-negative integer"),
                                (3, 4, None, "an integer of at least 4"),
                                (17, 2, 16, "an integer from 2 to 16")]:
        with pytest.raises(cli.CommandError, match=rf"^--n must be {text}, not {value}$"):
            cli.check_int(value, "--n", lo, hi)
    assert cli.check_real(75.0, "--p", 50, 100, lo_open=True) == 75.0
    with pytest.raises(cli.CommandError, match=r"^--p must be a number in \(50, 100\], not 50$"):
        cli.check_real(50.0, "--p", 50, 100, lo_open=True)
    with pytest.raises(cli.CommandError, match=r"^--s values must be numbers in \[0, 1\), "
                                               r"not nan$"):
        cli.check_real([0.0, float("nan")], "--s", 0, 1, hi_open=True)
    assert cli.parse_int_list("4, 2,1", "--pe") == [4, 2, 1]
    with pytest.raises(cli.CommandError, match=r"^--pe values must be integers from 1 to 3, "
                                               r"not 4$"):
        cli.parse_int_list("1,4", "--pe", 1, 3)


def test_version_is_one_source():
    assert __version__ == cli.version() == "0.1.0"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "amaranth_nn._version.__version__" }' in pyproject


@pytest.mark.parametrize("main", [simulate_cli.main, export_cli.main, host_cli.main,
                                  package_main])
def test_version_option(main, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"amaranth-nn {cli.version()}\n"


def test_package_lists_the_commands():
    done = subprocess.run([sys.executable, "-m", "amaranth_nn"], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == f"amaranth-nn {cli.version()}; commands:"
    assert len(lines) == 1 + len(cli.COMMANDS)
    for line, (command, does) in zip(lines[1:], cli.COMMANDS.items(), strict=True):
        assert line.split() == ["python", "-m", command] + does.split()
    # Each runs, with its line as its description (build and the torch_bridge commands are
    # tested where they live).
    for command in ("amaranth_nn.simulate", "amaranth_nn.export", "amaranth_nn.host"):
        done = subprocess.run([sys.executable, "-m", command, "--help"], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        assert " ".join(cli.COMMANDS[command].split()) in " ".join(done.stdout.split())


@pytest.mark.parametrize("model, ii, latency", [("mnist1d", 640, 1397),
                                                ("digits-conv", 1024, 2237)])
def test_conv_models_simulate_and_export(model, ii, latency, tmp_path, capsys):
    """The conv models run on the command line at their default folding, bit for bit."""
    assert simulate_cli.main(["--model", model, "--limit", "3", "--backend", "pysim",
                              "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"II        {ii} cycles measured, {ii} by the formula" in out
    assert f"latency   {latency} cycles measured, {latency} by the formula" in out
    assert "mismatches 0: every output equals the golden model" in out
    assert export_cli.main(["--model", model, "--out", str(tmp_path / "exported")]) == 0
    manifest = json.loads((tmp_path / "exported" / "manifest.json").read_text())
    assert (manifest["ii"], manifest["latency"]) == (ii, latency)


def test_describe_folding_names_each_entry_by_its_kind():
    spec = default_spec()
    assert cli.describe_folding(spec, ((4, 8), (2, 4), (2, 2))) == \
        "4x8, 2x4, 2x2 (pe x simd per layer)"
    spec = MODELS["mnist1d"].spec()
    folding = ((1, 5), (1, 1), (8, 5), (8, 8), (2, 6), (2, 2), (2, 2), (1, 2))
    assert cli.describe_folding(spec, folding) == (
        "conv 1x5, maxpool 1, conv 8x5, maxpool 8, conv 2x6, maxpool 2, flatten, dense 1x2 "
        "(pe x simd of a dense or conv layer, lanes of a pooling or scale-and-shift layer)")


def test_model_registry():
    assert DEFAULT_MODEL == "digits" and list(MODELS) == ["digits", "mnist1d", "digits-conv"]
    digits = MODELS["digits"]
    assert digits.spec().name == default_spec().name == "digits"
    x, y = default_test_set()
    assert x.shape == (450, 64) and y.shape == (450,)
    with pytest.raises(FileNotFoundError, match=r"^The file .*nope\.npz of the embedded model "
                                                r"'digits' is missing; regenerate it with "
                                                r"'python -m torch_bridge\.train_digits"):
        digits.file("nope.npz")


def test_embedded_model_by_name(capsys):
    assert simulate_cli.main(["--model", "digits", "--limit", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "vectors   3," in out and "accuracy  " in out


def test_simulate_npz_with_labels_subprocess():
    """The issue's example: the project's own test set as --inputs."""
    done = subprocess.run([sys.executable, "-m", "amaranth_nn.simulate", "--inputs",
                           "amaranth_nn/models/digits_test.npz", "--limit", "5"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "vectors   5," in done.stdout
    assert "accuracy  1.0000 (argmax of the hardware outputs vs labels)" in done.stdout
    assert "mismatches 0" in done.stdout


def test_bad_input_subprocess_exit_code(tmp_path):
    """The real exit status and stderr of a bad file: one line, no traceback."""
    (tmp_path / "x.json").write_text('{"x": [1, 2]}')
    done = subprocess.run([sys.executable, "-m", "amaranth_nn.simulate", "--inputs",
                           str(tmp_path / "x.json")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"error: --inputs '{tmp_path / 'x.json'}' is not a .npy or .npz "
                           f"file (the files np.save and np.savez write)\n")


# --model, in every command line that takes it.

def _model_cases(tmp_path):
    (tmp_path / "dir.json").mkdir()
    np.save(tmp_path / "binary.npy", np.zeros(3))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "other.json").write_text('{"format": "other"}')
    return [
        ("nope", "--model 'nope' is neither an embedded model (digits, mnist1d, digits-conv) "
                 "nor an existing spec file"),
        (tmp_path / "missing.json", f"--model '{tmp_path / 'missing.json'}' is neither an "
                                    f"embedded model (digits, mnist1d, digits-conv) nor an "
                                    f"existing spec file"),
        (tmp_path / "dir.json", f"--model: spec file '{tmp_path / 'dir.json'}': is a "
                                f"directory, not a JSON file"),
        (tmp_path / "binary.npy", f"--model: spec file '{tmp_path / 'binary.npy'}': is not a "
                                  f"JSON text file (byte 0x93 at offset 0 is not UTF-8)"),
        (tmp_path / "broken.json", f"--model: spec file '{tmp_path / 'broken.json'}': is not "
                                   f"valid JSON (truncated or corrupted?): Expecting property "
                                   f"name enclosed in double quotes at line 1 column 2"),
        (tmp_path / "other.json", f"--model: spec file '{tmp_path / 'other.json'}', spec, "
                                  f"field 'format': expected 'amaranth-nn-spec', got 'other'; "
                                  f"not a network spec"),
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_model(command, tmp_path, cli_error):
    for value, message in _model_cases(tmp_path):
        assert _run(cli_error, command, tmp_path, ["--model", value]) == f"error: {message}"


def test_unreadable_model(unreadable_file, tmp_path, cli_error):
    path, reason = unreadable_file
    for command in COMMANDS:
        assert _run(cli_error, command, tmp_path, ["--model", path]) == (
            f"error: --model: spec file '{path}': cannot be read: {reason}")


# --inputs, in simulate and host.

def _input_cases(tmp_path):
    def save(name, array):
        np.save(tmp_path / name, array, allow_pickle=True)
        return tmp_path / name

    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "x.json").write_text('{"x": [[1, 2, 3, 4, 5]]}')
    (tmp_path / "x.txt").write_text("1 2 3 4 5\n")
    (tmp_path / "empty.npy").write_bytes(b"")
    truncated = save("truncated.npy", np.zeros((50, 5), dtype=np.int64))
    truncated.write_bytes(truncated.read_bytes()[:200])
    np.savez(tmp_path / "no_x.npz", a=np.zeros(2), b=np.zeros(2))
    np.savez(tmp_path / "labels.npz", x=np.zeros((3, 5), dtype=np.int64),
             y=np.zeros(2, dtype=np.int64))
    np.savez(tmp_path / "float_labels.npz", x=np.zeros((3, 5), dtype=np.int64),
             y=np.zeros(3))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    out_of_range = np.zeros((2, 5), dtype=np.int64)
    out_of_range[1, 2] = 300
    cases = {
        tmp_path / "missing.npy": "{w}: no such file",
        tmp_path / "dir.npy": "{w} is a directory, not a .npy or .npz file",
        tmp_path / "x.json": "{w} is not a .npy or .npz file (the files np.save and np.savez "
                             "write)",
        tmp_path / "x.txt": "{w} is not a .npy or .npz file (the files np.save and np.savez "
                            "write)",
        tmp_path / "empty.npy": "{w} is empty (0 bytes), not a .npy or .npz file",
        truncated: "{w} is damaged: it holds less data than its header says (truncated?)",
        tmp_path / "other.zip": "{w} is a zip archive without numpy arrays, not a .npz file "
                                "(the files np.savez writes)",
        save("objects.npy", np.array([[1, "a"]], dtype=object)):
            "{w} holds Python objects (a pickle), which are never loaded; save numbers, e.g. "
            "np.save(path, x.astype(np.int64))",
        save("nothing.npy", np.zeros(0, dtype=np.int64)):
            "{w} holds no inputs (an array of shape (0,))",
        save("no_rows.npy", np.zeros((0, 5), dtype=np.int64)):
            "{w} holds no inputs (an array of shape (0, 5))",
        save("columns.npy", np.zeros((2, 6), dtype=np.int64)):
            "{w}: Inputs must have shape (batch, 5) or (5,), not (2, 6)",
        save("floats.npy", np.full((2, 5), 0.5)):
            "{w}: Inputs must be integers of the input format {f}, not float64; use "
            "spec.quantize_input() for real values",
        save("range.npy", out_of_range):
            "{w}: Input 300 at index (1, 2) is outside the input format {f}, range "
            "[-128, 127]",
        tmp_path / "no_x.npz": "{w} has no array 'x' (it has 'a', 'b'); save the inputs as x "
                               "and their labels as y: np.savez(path, x=x, y=y)",
        tmp_path / "labels.npz": "{w}: Labels 'y' must be 3 integers, one per sample, not an "
                                 "array of shape (2,) and type int64",
        tmp_path / "float_labels.npz": "{w}: Labels 'y' must be 3 integers, one per sample, "
                                       "not an array of shape (3,) and type float64",
    }
    fmt = _spec().input_format
    return [(path, message.format(w=f"--inputs '{path}'", f=fmt))
            for path, message in cases.items()]


@pytest.mark.parametrize("command", ["simulate", "host"])
def test_bad_inputs(command, tmp_path, spec_path, cli_error):
    for path, message in _input_cases(tmp_path):
        line = _run(cli_error, command, tmp_path, ["--model", spec_path, "--inputs", path])
        assert line == f"error: {message}"


@pytest.mark.parametrize("command", ["simulate", "host"])
def test_unreadable_inputs_and_missing_test_set(command, unreadable_file, tmp_path, spec_path,
                                                cli_error):
    path, reason = unreadable_file
    assert _run(cli_error, command, tmp_path, ["--model", spec_path, "--inputs", path]) == (
        f"error: --inputs '{path}' cannot be read: {reason}")
    assert _run(cli_error, command, tmp_path, ["--model", spec_path]) == (
        "error: --inputs is required with a spec file as --model (only the embedded models "
        "come with test inputs)")


@pytest.mark.parametrize("command", ["simulate", "host"])
def test_npz_inputs_with_labels(command, tmp_path, spec_path, capsys):
    x = np.array([[1, 2, 3, 4, 5], [-128, 127, 0, -1, 1], [7, -7, 7, -7, 7]])
    np.savez(tmp_path / "x.npz", x=x, y=np.array([0, 1, 2]))
    main, base = COMMANDS[command]
    extra = ["--divisor", "4"] if command == "host" else ["--no-progress"]
    assert main(base(tmp_path) + ["--model", str(spec_path), "--inputs",
                                  str(tmp_path / "x.npz")] + extra) == 0
    out = capsys.readouterr().out
    assert ("accuracy (labels)" if command == "host" else "accuracy  ") in out


# Output paths, checked before any work.

def test_simulate_output_files(tmp_path, spec_path, unwritable_dir, cli_error, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 5), dtype=np.int64))
    base = ["--model", spec_path, "--inputs", tmp_path / "x.npy"]
    locked, reason = unwritable_dir
    for option in ("--out", "--vcd"):
        for path, message in [
                (tmp_path, f"'{tmp_path}' is a directory, not a file"),
                (tmp_path / "no" / "y.npy", f"'{tmp_path / 'no' / 'y.npy'}': directory "
                                            f"'{tmp_path / 'no'}' does not exist"),
                (locked / "y.npy", f"'{locked / 'y.npy'}' cannot be written: {reason}")]:
            status, line = cli_error(simulate_cli.main, base + [option, path])
            assert status == 2 and line == f"error: {option} {message}"
    # The exact path given is written, and printed.
    out = tmp_path / "y.txt"
    assert simulate_cli.main([str(a) for a in base] + ["--out", str(out), "--vcd",
                                                         str(tmp_path / "w.vcd")]) == 0
    text = capsys.readouterr().out
    assert f"outputs   written to {out}\n" in text
    assert f"waveform  written to {tmp_path / 'w.vcd'}\n" in text
    assert np.load(out).shape == (2, 3) and not (tmp_path / "y.txt.npy").exists()


def test_export_output_directory(tmp_path, spec_path, unwritable_dir, cli_error, capsys):
    (tmp_path / "file").write_text("")
    locked, reason = unwritable_dir
    for path, message in [
            (tmp_path / "file", f"'{tmp_path / 'file'}' is a file, not a directory"),
            (tmp_path / "file" / "sub", f"'{tmp_path / 'file' / 'sub'}' cannot be created: "
                                        f"'{tmp_path / 'file'}' is a file"),
            (locked / "new", f"'{locked / 'new'}' cannot be written: {reason}")]:
        status, line = cli_error(export_cli.main, ["--model", spec_path, "--out", path])
        assert status == 2 and line == f"error: --out {message}"
    # A new directory is created, parents too; a file of the same name is replaced.
    out = tmp_path / "a" / "b"
    assert export_cli.main(["--model", str(spec_path), "--out", str(out)]) == 0
    (out / "top.v").write_text("old")
    (out / "mine.txt").write_text("kept")
    assert export_cli.main(["--model", str(spec_path), "--out", str(out)]) == 0
    assert (out / "top.v").read_text() != "old" and (out / "mine.txt").read_text() == "kept"
    assert f"manifest.json and README.md to {out}\n" in capsys.readouterr().out


# Numeric options and folding (host's own options: tests/boards/test_host.py).

@pytest.mark.parametrize("command, argv, message", [
    ("simulate", ["--limit", "0"], "--limit must be a positive integer, not 0"),
    ("simulate", ["--stalls", "2", "2"], "--stalls values must be numbers in [0, 1), not 2"),
    ("simulate", ["--stalls", "nan", "nan"],
     "--stalls values must be numbers in [0, 1), not nan"),
    ("simulate", ["--stalls", "0", "1"], "--stalls values must be numbers in [0, 1), not 1"),
    ("simulate", ["--stalls", "-0.5", "0"],
     "--stalls values must be numbers in [0, 1), not -0.5"),
    ("export", ["--name", "1top"],
     "--name: Top module name must be a Verilog identifier, not '1top'"),
])
def test_bad_numbers(command, argv, message, tmp_path, spec_path, cli_error):
    line = _run(cli_error, command, tmp_path, ["--model", spec_path] + argv)
    assert line == f"error: {message}"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("argv, message", [
    (["--target-ii", "0"], "--target-ii must be a positive integer, not 0"),
    (["--target-ii", "4", "--pe", "1,1", "--simd", "1,1"],
     "Give either --pe/--simd or --target-ii, not both"),
    (["--pe", "1,1"], "--pe and --simd go together: give one value per layer for each"),
    (["--pe", "1", "--simd", "1"], "--pe has 1 values, but the model has 2 layers"),
    (["--pe", "1,x", "--simd", "1,1"],
     "--pe expects a comma-separated list of positive integers, got 'x' in '1,x'"),
    (["--pe", "1,1", "--simd", "0,1"], "--simd values must be positive integers, not 0"),
    (["--pe", "5,1", "--simd", "1,1"],
     "--pe 5,1 --simd 1,1: Pe must be from 1 to 4 (the out_features of layer 0 ('dense0')), "
     "not 5"),
    (["--pe", "1,1", "--simd", "1,5"],
     "--pe 1,1 --simd 1,5: Simd must be from 1 to 4 (the in_features of layer 1 ('dense1')), "
     "not 5"),
])
def test_bad_folding(command, argv, message, tmp_path, spec_path, cli_error):
    np.save(tmp_path / "x.npy", np.zeros((2, 5), dtype=np.int64))
    inputs = [] if command == "export" else ["--inputs", tmp_path / "x.npy"]
    line = _run(cli_error, command, tmp_path, ["--model", spec_path] + inputs + argv)
    assert line == f"error: {message}"


def test_syntax_errors_stay_argparse_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        simulate_cli.main(["--limit", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m amaranth_nn.simulate")
    assert err.endswith("error: argument --limit: invalid int value: 'x'\n")
