"""Wall time of `lanmax --help` and `lanmax <command> --help`, each a fresh process.

Prints one line per help screen, the median over `--rounds` runs (commands alternate, so load
drift hits all alike), target <= 1.5 s: help imports no Keras and no backend.

    python bench/cli_latency.py [--rounds 5]
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = ("demo", "train", "tune", "evaluate", "sensitivity", "memse", "export", "summary")
TARGET_SECONDS = 1.5


def _seconds(args):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tf_lanmax", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    screens = {"lanmax --help": ["--help"]}
    screens.update({f"lanmax {c} --help": [c, "--help"] for c in COMMANDS})
    times = {name: [] for name in screens}
    for _ in range(rounds):
        for name, args in screens.items():
            times[name].append(_seconds(args))
    for name, values in times.items():
        print(f"{name}: {statistics.median(values):.2f} s  (target <= {TARGET_SECONDS} s)")


if __name__ == "__main__":
    main()
