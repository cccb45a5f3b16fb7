"""Export: Verilog plus $readmemh ROM images that decode back to the spec's integers."""

import gc
import json
import re

import numpy as np
import pytest
from specs import mlp_spec

from amaranth_nn import Layer, NetworkSpec, QFormat
from amaranth_nn.export import EXPORT_FORMAT, main
from amaranth_nn.export import export as export_network
from amaranth_nn.folding import plan_network
from amaranth_nn.hexfile import format_hex, parse_hex
from amaranth_nn.lanes import unpack_lanes


def _spec(seed=1, sizes=(7, 5, 3), *, non_negative_last=False):
    """A small spec with prime sizes (padding on every folding below), weights of the whole
    Q(7, 8) range and 16-bit accumulators; ``non_negative_last`` makes the last layer's weights
    non-negative, its weight ROM lanes unsigned."""
    spec = mlp_spec(sizes, seed=seed, input_format=QFormat(6, 3), weight_format=QFormat(7, 8),
                    bias_width=16, output_format=QFormat(5, 5), weights=64, biases=3000,
                    name="small")
    if not non_negative_last:
        return spec
    last = spec.layers[-1]
    weights = np.abs(last.weights) % 64
    weights[0, 0] = 63  # the top bit of an unsigned lane set
    layer = Layer(last.name, weights, last.bias, last.weight_format, last.bias_format,
                  last.output_format, last.activation)
    return NetworkSpec(spec.input_format, [*spec.layers[:-1], layer], name=spec.name)


def _decode(out_dir, manifest, spec):
    """Rebuild every layer's weights and bias (+ rounding) from the hex files alone."""
    weights = [np.zeros_like(layer.weights) for layer in spec.layers]
    seen = [np.zeros(layer.weights.shape, dtype=bool) for layer in spec.layers]
    biases = [np.zeros_like(layer.bias) for layer in spec.layers]
    for rom in manifest["roms"]:
        words = parse_hex((out_dir / rom["file"]).read_text())
        assert len(words) == rom["depth"]
        assert all(0 <= word < (1 << rom["width"]) for word in words)
        assert rom["lanes"] * rom["lane_width"] == rom["width"]
        index = rom["layer"]
        pe, simd = manifest["folding"][index]
        m, n = spec.layers[index].weights.shape
        beats = -(-n // simd)
        for address, word in enumerate(words):
            lanes = unpack_lanes(word, rom["lanes"], rom["lane_width"], signed=rom["signed"])
            if rom["kind"] == "weights":
                g, b = divmod(address, beats)
                row = g * pe + rom["pe"]
                for k, value in enumerate(lanes):
                    col = b * simd + k
                    if row < m and col < n:
                        weights[index][row, col] = value
                        seen[index][row, col] = True
                    else:
                        assert value == 0, f"padding at {rom['file']} word {address} lane {k}"
            else:
                assert rom["kind"] == "bias"
                for p, value in enumerate(lanes):
                    neuron = address * pe + p
                    if neuron < m:
                        biases[index][neuron] = value - rom["rounding"]
                    else:
                        assert value == 0
    return weights, seen, biases


@pytest.mark.parametrize("folding", [((2, 3), (2, 2)), ((5, 7), (3, 5)), ((1, 1), (1, 1)),
                                     ((3, 4), (2, 3))])
def test_hex_decodes_to_spec_integers(tmp_path, folding):
    spec = _spec()
    manifest = export_network(spec, tmp_path, folding, progress=False)
    weights, seen, biases = _decode(tmp_path, manifest, spec)
    for index, layer in enumerate(spec.layers):
        assert seen[index].all()
        assert (weights[index] == layer.weights).all()
        assert (biases[index] == layer.bias).all()
    shifts = [layer.shift for layer in spec.layers]
    assert [r["rounding"] for r in manifest["roms"] if r["kind"] == "bias"] == \
        [1 << (s - 1) if s > 0 else 0 for s in shifts]


def verilog_roms(text):
    """``{(layer, memory): words}`` of every memory initialized in the layers' Verilog modules."""
    roms = {}
    for module, body in re.findall(r"^module \\?(\S+?)\s*\((.*?)^endmodule", text, re.S | re.M):
        if not module.split(".")[-1].startswith("layer"):
            continue  # FIFO storage is initialized too, to zeros
        for name, inits in re.findall(r"reg \[\d+:0\] (\w+) \[\d+:0\];\s*initial begin(.*?)end",
                                      body, re.S):
            if name == "x_buffer":
                continue  # the input buffer is a RAM, initialized to zeros
            values = re.findall(r"\w+\[(\d+)\] = \d+'h([0-9a-f]+);", inits)
            roms[(module.split(".")[-1], name)] = [int(v, 16) for _, v in values]
    return roms


def test_hex_files_equal_the_roms_in_the_verilog(tmp_path):
    spec = _spec(seed=2)
    folding = ((2, 3), (3, 2))
    manifest = export_network(spec, tmp_path, folding, progress=False)
    plan = plan_network(spec, folding)
    assert [rom.file_name for rom in plan.roms] == [rom["file"] for rom in manifest["roms"]]
    assert len(plan.roms) == sum(pe + 1 for pe, _ in folding)
    in_verilog = verilog_roms((tmp_path / "top.v").read_text())
    assert len(in_verilog) == len(plan.roms)
    for entry in manifest["roms"]:
        words = parse_hex((tmp_path / entry["file"]).read_text())
        layer, memory = entry["hierarchy"].split(".")
        assert in_verilog[(layer, memory)] == words, entry["file"]


def test_unsigned_weight_lanes(tmp_path):
    spec = _spec(seed=3, non_negative_last=True)
    manifest = export_network(spec, tmp_path, ((2, 2), (1, 5)), progress=False)
    last = [rom for rom in manifest["roms"] if rom["layer"] == 1 and rom["kind"] == "weights"]
    assert [rom["signed"] for rom in last] == [False]
    weights, seen, _ = _decode(tmp_path, manifest, spec)
    assert (weights[1] == spec.layers[1].weights).all() and seen[1].all()


def test_verilog_and_manifest(tmp_path):
    spec = _spec()
    manifest = export_network(spec, tmp_path, target_ii=6, name="mlp", progress=False)
    text = (tmp_path / "mlp.v").read_text()
    assert "module mlp(" in text
    header = text[text.index("module mlp("):].split(";", 1)[0]
    for port in manifest["ports"]:
        assert port["name"] in header
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["format"] == EXPORT_FORMAT and manifest["top"] == "mlp"
    plan = plan_network(spec, target_ii=6)
    assert manifest["ii"] == plan.ii <= 6
    assert manifest["latency"] == plan.latency
    assert manifest["folding"] == [list(pair) for pair in plan.folding]
    widths = {p["name"]: p["width"] for p in manifest["ports"]}
    assert widths["i__payload"] == plan.in_lanes * spec.input_format.width
    assert widths["o__payload"] == plan.out_lanes * spec.output_format.width
    assert "mlp.v" in (tmp_path / "README.md").read_text()


def test_hex_format_round_trip():
    words = [0, 1, 0x3f, 0x40, 0x7f]
    text = format_hex(words, 7)
    assert text == "00\n01\n3f\n40\n7f\n"
    assert parse_hex(text) == words
    assert parse_hex("// comment\n0a 0b\n") == [10, 11]
    with pytest.raises(ValueError, match=r"^line 1: address markers are not supported$"):
        parse_hex("@10\n")
    with pytest.raises(ValueError, match=r"^line 2: 'zz' is not a hex word$"):
        parse_hex("00\nzz\n")
    assert unpack_lanes(0x81ff, 2, 8) == [-1, -127]
    assert unpack_lanes(0x81ff, 2, 8, signed=False) == [255, 129]


def test_export_errors(tmp_path):
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not 'x'$"):
        export_network("x", tmp_path)
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 5 \(the out_features of layer "
                                         r"0 \('fc0'\)\), not 9$"):
        export_network(_spec(), tmp_path / "out", [(9, 1), (1, 1)])
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        export_network(_spec(), tmp_path / "file")
    (tmp_path / "file").unlink()
    with pytest.raises(ValueError, match=r"^Top module name must be a Verilog identifier, "
                                         r"not '1top'$"):
        export_network(_spec(), tmp_path, name="1top")
    assert not any(tmp_path.iterdir())


def test_cli_bad_spec_path(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["--model", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"error: --model '{missing}' is neither an embedded "
                                       f"model (digits, mnist1d, digits-conv) nor an existing "
                                       f"spec file\n")
    assert not (tmp_path / "out").exists()


def test_cli_bad_folding_exits_before_writing(tmp_path, capsys):
    spec_path = tmp_path / "small.json"
    _spec().save(spec_path)
    # The folding is checked before any hardware exists, so nothing is left unused to warn
    # (as an error, in this test suite) when it is collected.
    assert main(["--model", str(spec_path), "--out", str(tmp_path / "out"),
                 "--pe", "9,1", "--simd", "1,1"]) == 2
    gc.collect()
    assert capsys.readouterr().err == ("error: --pe 9,1 --simd 1,1: Pe must be from 1 to 5 (the "
                                       "out_features of layer 0 ('fc0')), not 9\n")
    assert not (tmp_path / "out").exists()


def test_cli_folding_errors(tmp_path, capsys):
    spec_path = tmp_path / "small.json"
    _spec().save(spec_path)
    assert main(["--model", str(spec_path), "--out", str(tmp_path / "out"), "--pe", "1,1"]) == 2
    assert capsys.readouterr().err == ("error: --pe and --simd go together: give one value per "
                                       "layer for each\n")
    assert main(["--model", str(spec_path), "--out", str(tmp_path / "out"), "--pe", "1",
                 "--simd", "1"]) == 2
    assert capsys.readouterr().err == "error: --pe has 1 values, but the model has 2 layers\n"
    assert not (tmp_path / "out").exists()


def test_cli_writes_files(tmp_path, capsys):
    spec_path = tmp_path / "small.json"
    _spec().save(spec_path)
    out = tmp_path / "out"
    assert main(["--model", str(spec_path), "--out", str(out), "--pe", "5,3", "--simd", "7,5"]) == 0
    report = capsys.readouterr().out
    assert "II       1 cycles per vector" in report
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted(["top.v", "manifest.json", "README.md", "layer0_bias.hex",
                            "layer1_bias.hex"] +
                           [f"layer0_weights_pe{p}.hex" for p in range(5)] +
                           [f"layer1_weights_pe{p}.hex" for p in range(3)])
