"""The integer models' speed: the golden model (numpy) and torch int64 inference on the full
test set of every embedded model, and that both give the same integers.

Usage::

    python bench/bench_golden.py [--repeat N]

For each model it prints one row of a markdown table: the test samples, the kinds of its layers,
the best of ``N`` wall times (default 5) of ``amaranth_nn.golden.run`` and of
``torch_bridge.infer.run`` on all of them, and the integer accuracy. torch is optional: without
it the torch column is empty. Figures, never assertions.
"""

import argparse
import time

import numpy as np

from amaranth_nn import golden
from amaranth_nn.models import MODELS

try:
    from torch_bridge import infer
except ImportError:   # amaranth_nn runs without torch
    infer = None


def best_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    args = parser.parse_args()
    print("| model | samples | layers | golden | torch int64 | equal | integer accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, model in MODELS.items():
        spec = model.spec()
        x, y = model.test_set()
        seconds, out = best_time(lambda: golden.run(spec, x), args.repeat)   # noqa: B023
        torch_cell, equal = "", ""
        if infer is not None:
            torch_seconds, t_out = best_time(lambda: infer.run(spec, x), args.repeat)  # noqa: B023
            torch_cell = f"{torch_seconds * 1e3:.0f} ms"
            equal = "yes" if np.array_equal(t_out.numpy(), out) else "NO"
        accuracy = float((out.argmax(axis=1) == y).mean())
        print(f"| {name} | {len(x)} | {' '.join(spec.kinds)} | {seconds * 1e3:.0f} ms | "
              f"{torch_cell} | {equal} | {100 * accuracy:.2f} % |")


if __name__ == "__main__":
    main()
