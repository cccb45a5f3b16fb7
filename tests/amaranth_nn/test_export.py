"""Export: Verilog plus $readmemh ROM images that decode back to the spec's integers."""

import gc
import json
import re

import numpy as np
import pytest
from specs import mlp_spec, stream_spec

from amaranth_nn import Layer, NetworkSpec, QFormat
from amaranth_nn.export import EXPORT_FORMAT, main
from amaranth_nn.export import export as export_network
from amaranth_nn.folding import plan_network
from amaranth_nn.hexfile import format_hex, parse_hex
from amaranth_nn.lanes import unpack_lanes
from amaranth_nn.models import MODELS


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
    """Rebuild every layer's multiplier matrix (``W``; a conv layer's in window order), bias
    (+ rounding) and scales from the hex files alone: ``{layer: array}`` each, and which matrix
    entries some lane held."""
    weights, seen, biases, scales = {}, {}, {}, {}
    for rom in manifest["roms"]:
        words = parse_hex((out_dir / rom["file"]).read_text())
        assert len(words) == rom["depth"]
        assert all(0 <= word < (1 << rom["width"]) for word in words)
        assert rom["lanes"] * rom["lane_width"] == rom["width"]
        index = rom["layer"]
        layer = spec.layers[index]
        m, n = layer.multiplier_matrix.shape
        weights.setdefault(index, np.zeros((m, n), dtype=np.int64))
        seen.setdefault(index, np.zeros((m, n), dtype=bool))
        pe, simd = manifest["folding"][index]
        beats = -(-n // simd)
        values = biases if rom["kind"] == "bias" else scales
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
                continue
            assert rom["kind"] in ("bias", "scale")
            offset = rom["rounding"] if rom["kind"] == "bias" else 0
            vector = values.setdefault(index, np.zeros(m, dtype=np.int64))
            for k, value in enumerate(lanes):
                element = address * rom["lanes"] + k
                if element < m:
                    vector[element] = value - offset
                else:
                    assert value == 0, f"padding at {rom['file']} word {address} lane {k}"
    return weights, seen, biases, scales


@pytest.mark.parametrize("folding", [((2, 3), (2, 2)), ((5, 7), (3, 5)), ((1, 1), (1, 1)),
                                     ((3, 4), (2, 3))])
def test_hex_decodes_to_spec_integers(tmp_path, folding):
    spec = _spec()
    manifest = export_network(spec, tmp_path, folding, progress=False)
    weights, seen, biases, _ = _decode(tmp_path, manifest, spec)
    for index, layer in enumerate(spec.layers):
        assert seen[index].all()
        assert (weights[index] == layer.weights).all()
        assert (biases[index] == layer.bias).all()
    shifts = [layer.shift for layer in spec.layers]
    assert [r["rounding"] for r in manifest["roms"] if r["kind"] == "bias"] == \
        [1 << (s - 1) if s > 0 else 0 for s in shifts]


def verilog_roms(text, top="top"):
    """``{hierarchy: words}`` of every ROM in the Verilog: each memory named as
    :data:`~amaranth_nn.plan.ROM_KINDS` name them (weights{P}, biases, scale) with an initial
    block, by its path below ``top`` (``layer2.dense.weights0``). The line buffers, input buffers
    and FIFO storage are RAMs of other names, initialized to zeros."""
    names = re.compile(r"weights\d+|biases|scale")
    roms = {}
    for module, body in re.findall(r"^module \\?(\S+?)\s*\((.*?)^endmodule", text,
                                   re.S | re.M):
        for name, inits in re.findall(r"reg \[\d+:0\] (\w+) \[\d+:0\];\s*initial begin(.*?)end",
                                      body, re.S):
            if not names.fullmatch(name):
                continue
            values = re.findall(r"\w+\[(\d+)\] = \d+'h([0-9a-f]+);", inits)
            assert [int(a) for a, _ in values] == list(range(len(values)))
            path = module.removeprefix(f"{top}.") + "." + name
            roms[path] = [int(v, 16) for _, v in values]
    return roms


def _check_verilog_roms(out_dir, manifest, plan):
    """The ROMs in the Verilog are exactly the manifest's, at its hierarchy, word for word as
    its hex files; returns how many."""
    assert [rom.file_name for rom in plan.roms] == [rom["file"] for rom in manifest["roms"]]
    assert [".".join(rom.path) for rom in plan.roms] == \
        [rom["hierarchy"] for rom in manifest["roms"]]
    in_verilog = verilog_roms((out_dir / f"{manifest['top']}.v").read_text(), manifest["top"])
    assert sorted(in_verilog) == sorted(rom["hierarchy"] for rom in manifest["roms"])
    for entry in manifest["roms"]:
        words = parse_hex((out_dir / entry["file"]).read_text())
        assert in_verilog[entry["hierarchy"]] == words, entry["file"]
    return len(in_verilog)


def test_hex_files_equal_the_roms_in_the_verilog(tmp_path):
    spec = _spec(seed=2)
    folding = ((2, 3), (3, 2))
    manifest = export_network(spec, tmp_path, folding, progress=False)
    plan = plan_network(spec, folding)
    assert _check_verilog_roms(tmp_path, manifest, plan) == sum(pe + 1 for pe, _ in folding)


@pytest.mark.parametrize("name", ["mnist1d", "digits-conv"])
def test_conv_models_export_their_roms_where_the_hardware_has_them(tmp_path, name):
    """A conv layer's ROMs sit in its dense engine (``layer{i}.dense.weights{p}``); every hex
    file equals the memory at its hierarchy in the Verilog and decodes to the spec's
    integers."""
    spec = MODELS[name].spec()
    manifest = export_network(spec, tmp_path, progress=False)
    plan = plan_network(spec)
    count = _check_verilog_roms(tmp_path, manifest, plan)
    assert count == sum(folding[0] + 1
                        for layer, folding in zip(spec.layers, plan.folding, strict=True)
                        if layer.kind in ("conv", "dense"))
    assert manifest["kinds"] == list(spec.kinds)
    assert (manifest["in_lanes"], manifest["out_lanes"]) == (plan.in_lanes, plan.out_lanes)
    assert plan.in_lanes == spec.layers[0].in_channels == 1
    assert manifest["streams"]["i"].startswith(f"{spec.input_size} beats per vector")
    assert "is element b*1 + k;" in manifest["streams"]["i"]
    assert manifest["folding_text"].startswith(f"conv {plan.folding[0][0]}x{plan.folding[0][1]}, "
                                               f"maxpool {plan.folding[1][0]}, conv ")
    convs = [rom for rom in manifest["roms"] if spec.layers[rom["layer"]].kind == "conv"]
    assert convs and all(rom["hierarchy"].split(".")[1] == "dense" for rom in convs)
    weights, seen, biases, scales = _decode(tmp_path, manifest, spec)
    assert not scales
    for index, layer in enumerate(spec.layers):
        if layer.kind in ("conv", "dense"):
            assert seen[index].all()
            assert (weights[index] == layer.multiplier_matrix).all()
            assert (biases[index] == layer.bias).all()
        else:
            assert index not in weights


def test_scale_shift_exports_a_scale_rom(tmp_path):
    """A scale-and-shift layer's ROMs are ``layer{i}.scale`` and ``layer{i}.biases``, in
    ``layer{i}_scale.hex`` and ``layer{i}_bias.hex``."""
    spec = stream_spec(np.random.default_rng(4), (5, 3), [
        ("scale_shift",), ("conv", 4, (3,), (1,), (1,)), ("avgpool", (2,)), ("flatten",),
        ("dense", 3)])
    folding = [3, (3, 5), 2, None, (2, 4)]
    manifest = export_network(spec, tmp_path, folding, progress=False)
    plan = plan_network(spec, folding)
    assert _check_verilog_roms(tmp_path, manifest, plan) == 2 + 4 + 3
    first = [(rom["kind"], rom["file"], rom["hierarchy"]) for rom in manifest["roms"]
             if rom["layer"] == 0]
    assert first == [("scale", "layer0_scale.hex", "layer0.scale"),
                     ("bias", "layer0_bias.hex", "layer0.biases")]
    weights, seen, biases, scales = _decode(tmp_path, manifest, spec)
    assert (scales[0] == spec.layers[0].scale).all()
    assert (biases[0] == spec.layers[0].bias).all()
    for index in (1, 4):
        assert seen[index].all()
        assert (weights[index] == spec.layers[index].multiplier_matrix).all()
        assert (biases[index] == spec.layers[index].bias).all()


def test_unsigned_weight_lanes(tmp_path):
    spec = _spec(seed=3, non_negative_last=True)
    manifest = export_network(spec, tmp_path, ((2, 2), (1, 5)), progress=False)
    last = [rom for rom in manifest["roms"] if rom["layer"] == 1 and rom["kind"] == "weights"]
    assert [rom["signed"] for rom in last] == [False]
    weights, seen, _, _ = _decode(tmp_path, manifest, spec)
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
