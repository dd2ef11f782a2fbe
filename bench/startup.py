"""Startup time of gateway.testing: from the call to the first accepted HTTP connection.

Run: python bench/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from gateway.testing import run_gateway


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with run_gateway():
        pass  # imports and first-run costs are not what a test suite pays per test
    times, stops = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        with run_gateway() as gw:
            httpx.get(f"{gw.base_url}/healthz", timeout=5).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
            t1 = time.perf_counter()
        stops.append((time.perf_counter() - t1) * 1000)
    times.sort()
    print(f"runs: {args.runs}")
    print(f"start -> first accepted request: median {statistics.median(times):.1f} ms, "
          f"p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, max {times[-1]:.1f} ms")
    print(f"shutdown: median {statistics.median(stops):.1f} ms, max {max(stops):.1f} ms")


if __name__ == "__main__":
    main()
