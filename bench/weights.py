"""Loading the learned weights: the shipped .npz file against the same weights as .json.

Every process that judges mentions (each ``monitor`` command, each scoring process, each
``monitor worker``) loads the weights once, so the time is paid per process. The baseline is
the .json file ``monitor learn --out weights.json`` writes, made here from the shipped weights
so both files hold the same model. Each load runs in a fresh interpreter, as a process pays it,
alternating the two files; the medians are reported.

    .venv/bin/python bench/weights.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.learning import DEFAULT_MODEL, LearnedModel  # noqa: E402

# Imports first (they are not the weights' cost), then the load alone, on the wall clock and in
# CPU seconds.
_LOAD = """
import sys, time
from pathlib import Path
from monitor.learning import LearnedModel
wall, cpu = time.perf_counter(), time.process_time()
LearnedModel.read(Path(sys.argv[1]))
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def load_once(path: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path)], cwd=ROOT, check=True, capture_output=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        as_json = Path(folder) / "learned.json"
        LearnedModel.read(DEFAULT_MODEL).save(as_json)
        files = {".json (baseline)": as_json, ".npz (shipped)": DEFAULT_MODEL}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in files}
        for _ in range(args.rounds):
            for name, path in files.items():
                times[name].append(load_once(path))
        print(f"Loading the learned weights, one fresh process a load, {args.rounds} rounds")
        print("| file | size, MB | load, s (median) | CPU, s (median) | × faster than .json |")
        print("| --- | ---: | ---: | ---: | ---: |")
        baseline = statistics.median(wall for wall, _ in times[".json (baseline)"])
        for name, path in files.items():
            wall = statistics.median(w for w, _ in times[name])
            cpu = statistics.median(c for _, c in times[name])
            size = path.stat().st_size / 1e6
            print(f"| {name} | {size:.1f} | {wall:.3f} | {cpu:.3f} | {baseline / wall:.1f}× |")


if __name__ == "__main__":
    main()
