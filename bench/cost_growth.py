"""Cost growth: latency and CPU of the SSE drop stream as subscribers and ingest grow.

    python bench/cost_growth.py [--sweep both|subscribers|rate] [--duration 15] [--warmup 5]
                                [--subscriber-steps 100,1000,10000] [--rate 1000]
                                [--rate-steps 100,1000,10000] [--subscribers 1000]
                                [--clients 2] [--json FILE] [--profile]
    python bench/cost_growth.py --quick     # smoke test: small counts, 3 s windows (about 1 min)

Two sweeps of the drop-stream load of sse_drops.py:
- (a) subscribers: `--subscriber-steps` (100, 1,000, 10,000) at `--rate` (1,000) changes/s;
- (b) ingest: `--rate-steps` (100, 1,000, 10,000) changes/s at `--subscribers` (1,000).
The 1,000 x 1,000 step is common to both and runs once. Every step is one `ws_drops.measure`
run on the SSE drop stream, on a fresh gateway (fresh DB, fresh subscribers), and prints that
script's full table: `--warmup` s of load, then a `--duration` s window.

The load is sse_drops.py's: subscribers on `/v1/odds-drop/{sport}?threshold=10&heartbeat_s=30`
spread over 10 sports, held by `--clients` (2) processes of `_sseclient.py`; one load-generator
process POSTs flat quotes every 20 ms, one change in ten moving 10-30 cents (a drop past the
threshold). The market's events are ws_drops.py's in-play ones (commenced 30 min ago); on
/v1/odds-drop that changes nothing, as no SSE subscriber asks for live-only frames.

Per step: deliveries/s measured by the clients, latency p50/p99/max (client receipt - the
frame's `timestamp`, set by the server when it detected the drop), server CPU (% of one core,
process tree) and RSS at the end of the window, CPU of each client process, server CPU us per
delivery, and whether anything was lost or cut (connections that failed, slow-consumer cuts,
streams the server ended, error frames, delivered / expected below 0.99, ingest errors).
Delivered / expected counts the drops any client saw in the window; a drop whose deliveries
straddle an edge of the window falls short without a loss, by up to about max latency / window
in all: such a shortfall is marked "(window edges)".
"limit" names what was saturated: the server (>= 90 % of a core), a client process (>= 90 %:
its latency then includes its own queueing), both cores (machine >= 95 % busy), or ingest
(under 95 % of the target rate reached the server). A second table per sweep gives the "why"
figures: drops/s, server writes/s and frames per write (coalescing), ingest requests/s and POST
latency (the pusher slows down when the server does), the load generator's CPU and the
machine's load. Then, per sweep, how each figure grew from one step to the next, with the
marginal server CPU per extra delivery (us/delivery at small fan-outs is mostly the fixed cost
of ingest), and a markdown block to paste into bench/RESULTS.md.

10,000 subscribers need 10,000+ fds in the server and 5,000+ per client process:
RLIMIT_NOFILE is raised here (up to the hard limit) before anything is spawned.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import PROFILER, SPORTS, machine_info, print_machine, print_table, raise_nofile, wait_quiet
from bench.ws_drops import add_load_args, measure

SUBSCRIBER_STEPS = (100, 1_000, 10_000)
RATE_STEPS = (100.0, 1_000.0, 10_000.0)
QUICK_SUBSCRIBER_STEPS = (20, 50, 200)
QUICK_RATE_STEPS = (50.0, 200.0, 500.0)
QUICK_BASE_SUBSCRIBERS = 50
QUICK_BASE_RATE = 200.0
SATURATED = 90.0  # % of one core: a process at or above this is the limit


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.replace("_", "").split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.replace("_", "").split(",") if x.strip()]


def _n(x: float) -> str:
    return "-" if x != x else f"{x:,.0f}"


def _ms(x: float) -> str:
    if x != x:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


# -- one step --------------------------------------------------------------------------------------

def run_step(args: argparse.Namespace, sports: list[str], subscribers: int, rate: float) -> dict[str, Any]:
    """One `ws_drops.measure` run on the SSE drop stream; its figures plus ours."""
    if args.step_quiet_wait > 0:
        wait_quiet(argparse.Namespace(quiet_below=args.quiet_below, quiet_wait=args.step_quiet_wait))
    step = argparse.Namespace(**vars(args))
    step.subscribers, step.rate = subscribers, rate
    print(f"\n#### step: {subscribers:,} subscribers, {rate:,.0f} changes/s "
          f"({time.strftime('%H:%M:%S')})", flush=True)
    t = time.monotonic()
    try:
        f = measure(step, "sse", sports)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"step failed: {exc!r}", file=sys.stderr, flush=True)
        return {"subscribers": subscribers, "target": rate, "failed": repr(exc)}
    f["subscribers"], f["target"] = subscribers, rate
    f["step_s"] = time.monotonic() - t
    f["window_s"] = args.duration
    f["us_per_delivery"] = f["cpu"] / 100 * 1e6 / f["deliveries"] if f["deliveries"] else float("nan")
    f["lost"] = losses(f)
    f["limit"] = limits(f)
    return f


def losses(f: dict[str, Any]) -> str:
    out = []
    if f["connected"] < f["subscribers"]:
        out.append(f"{f['subscribers'] - f['connected']} not connected")
    if f["cuts"] or f["slow_frames"]:
        out.append(f"{max(f['cuts'], f['slow_frames'])} cut")
    if f["disconnects"]:
        out.append(f"{f['disconnects']} ended")
    # a drop whose deliveries straddle an edge of the window counts as expected for every
    # subscriber but delivered only inside it: up to about max latency / window short, no loss
    edge = f["lat"][100] / 1000 / f["window_s"] if f["lat"][100] == f["lat"][100] else 0.0
    if f["ratio"] < 0.99 - edge:
        out.append(f"delivered {f['ratio']:.3f}")
    elif f["ratio"] < 0.99:
        out.append(f"delivered {f['ratio']:.3f} (window edges)")
    bad = {k: v for k, v in f["statuses"].items() if k != 200}
    if bad:
        out.append(f"ingest {bad}")
    if f["rejected"]:
        out.append(f"{f['rejected']} rows rejected")
    return ", ".join(out) or "none"


def limits(f: dict[str, Any]) -> str:
    out = []
    if f["cpu"] >= SATURATED:
        out.append("server")
    if any(v >= SATURATED for v in f["ccpu"].values()):
        out.append("client")
    if f["busy"]["busy"] >= 95.0:
        out.append("both cores")
    if f["rate"] < 0.95 * f["target"]:
        out.append("ingest")
    return ", ".join(out) or "-"


# -- report ----------------------------------------------------------------------------------------

def _row(f: dict[str, Any]) -> list[object]:
    if "failed" in f:
        return [f"{f['subscribers']:,}", _n(f["target"]), *["-"] * 11, f"FAILED: {f['failed'][:60]}", "-"]
    lat = f["lat"]
    return [
        f"{f['subscribers']:,}", f"{_n(f['target'])} ({_n(f['rate'])})", _n(f["deliveries"]),
        f"{f['ratio']:.3f}", _ms(lat[50]), _ms(lat[99]), _ms(lat[100]), f"{f['cpu']:.0f}", f"{f['rss'][1]:.0f}",
        " / ".join(f"{v:.0f}" for v in f["ccpu"].values()), f"{f['us_per_delivery']:.1f}",
        f"{f['per_unit']:.1f}", f"{f['other']:.2f}", f["lost"], f["limit"],
    ]


HEADERS = ["subscribers", "changes/s (achieved)", "deliveries/s", "delivered/exp", "p50 ms", "p99 ms", "max ms",
           "server CPU %", "RSS MiB", "client CPU %", "us CPU/delivery", "frames/write", "other cores",
           "lost/cut", "limit"]


def _why_row(f: dict[str, Any]) -> list[object]:
    if "failed" in f:
        return [f"{f['subscribers']:,}", _n(f["target"]), "-", "-", "-", "-", "-", "-", "-", "-"]
    b = f["busy"]
    return [
        f"{f['subscribers']:,}", _n(f["target"]), f"{f['drops']:.1f}", _n(f["units"]),
        f"{f['requests']:.1f}", f"{_ms(f['post'][50])} / {_ms(f['post'][99])}", f"{f['mbs']:.1f}",
        f"{f['lgcpu']:.0f}", f"{b['busy']:.0f} ({b['irq']:.0f}, {b['steal']:.0f})", f"{f['step_s']:.0f}",
    ]


WHY_HEADERS = ["subscribers", "changes/s", "drops/s", "writes/s", "ingest req/s", "POST p50 / p99 ms", "MB/s",
               "loadgen CPU %", "machine busy % (irq, steal)", "step s"]


def _factor(a: float, b: float) -> str:
    if not a or a != a or b != b:
        return "-"
    return f"x{b / a:.2f}" if b / a < 10 else f"x{b / a:.0f}"


def _marginal(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Server CPU us per extra delivery between two steps: the slope, without the fixed cost
    (ingest, the writer, the loop) that dominates `us/delivery` at small fan-outs."""
    extra = b["deliveries"] - a["deliveries"]
    if extra <= 0:
        return "-"
    return f"{(b['cpu'] - a['cpu']) / 100 * 1e6 / extra:.1f}"


def growth(steps: list[dict[str, Any]], axis: str) -> None:
    """How each figure grew from one step of a sweep to the next."""
    rows = []
    ok = [f for f in steps if "failed" not in f]
    for a, b in itertools.pairwise(ok):
        load = (b["subscribers"] / a["subscribers"]) if axis == "subscribers" else (b["target"] / a["target"])
        what = (f"{a['subscribers']:,} -> {b['subscribers']:,} subs" if axis == "subscribers"
                else f"{a['target']:,.0f} -> {b['target']:,.0f} /s")
        rows.append([what, f"x{load:g}", _factor(a["deliveries"], b["deliveries"]),
                     _factor(a["lat"][50], b["lat"][50]), _factor(a["lat"][99], b["lat"][99]),
                     _factor(a["cpu"], b["cpu"]), _factor(a["us_per_delivery"], b["us_per_delivery"]),
                     _marginal(a, b),
                     _factor(a["per_unit"], b["per_unit"]), _factor(a["rss"][1], b["rss"][1]),
                     _factor(sum(a["ccpu"].values()), sum(b["ccpu"].values()))])
    if rows:
        print_table(f"growth per step, {axis} sweep", rows,
                    ["step", "load", "deliveries/s", "p50", "p99", "server CPU", "us/delivery",
                     "marginal us/delivery", "frames/write", "RSS", "client CPU"])
    first = next((f for f in ok if f["limit"] != "-"), None)
    if first is not None:
        print(f"  first saturated step: {first['subscribers']:,} subscribers x {first['target']:,.0f} changes/s "
              f"(limit: {first['limit']})", flush=True)
    else:
        print("  no step saturated a server core, a client process or the machine", flush=True)


def markdown(args: argparse.Namespace, sweeps: list[tuple[str, list[dict[str, Any]]]], argv: list[str]) -> str:
    info = machine_info()
    done = [f for _, steps in sweeps for f in steps if "failed" not in f]
    other = max((f["other"] for f in done), default=float("nan"))
    cmd = " ".join(["python bench/cost_growth.py", *argv])
    lines = [
        "## N. `cost_growth.py`: latency and CPU as subscribers and ingest grow",
        "",
        f"`{cmd}`: {info['date']}, {info['nproc']} cores ({info['cpu']}), Python {info['python']}, "
        f"kernel {info['kernel']}. Each step on a fresh gateway: {args.warmup:g} s warm-up, {args.duration:g} s "
        f"window; SSE drop stream, 10 sports, `threshold=10`, one change in ten crosses it; "
        f"{args.clients} client processes. Other processes on the machine: up to {other:.2f} cores in a window.",
        "",
        "| sweep | subscribers | changes/s (achieved) | deliveries/s | p50 ms | p99 ms | max ms | server CPU % "
        "| server RSS MiB | client CPU % | µs CPU / delivery | frames / write | lost / cut | limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, steps in sweeps:
        for f in steps:
            if "failed" in f:
                lines.append(f"| {name} | {f['subscribers']:,} | {_n(f['target'])} | | | | | | | | | | "
                             f"failed: {f['failed'][:80]} | |")
                continue
            lat = f["lat"]
            lines.append(
                f"| {name} | {f['subscribers']:,} | {_n(f['target'])} ({_n(f['rate'])}) | {_n(f['deliveries'])} "
                f"| {_ms(lat[50])} | {_ms(lat[99])} | {_ms(lat[100])} | {f['cpu']:.0f} | {f['rss'][1]:.0f} "
                f"| {' / '.join(f'{v:.0f}' for v in f['ccpu'].values())} | {f['us_per_delivery']:.1f} "
                f"| {f['per_unit']:.1f} | {f['lost']} | {f['limit']} |")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_args(ap)  # --rate is the subscriber sweep's ingest rate
    ap.set_defaults(duration=15.0)
    ap.add_argument("--subscribers", type=int, default=None,
                    help="subscribers of the ingest sweep (default 1000; 50 with --quick)")
    ap.add_argument("--sweep", choices=("both", "subscribers", "rate"), default="both")
    ap.add_argument("--subscriber-steps", type=_ints, default=None,
                    help="comma-separated subscriber counts (default 100,1000,10000)")
    ap.add_argument("--rate-steps", type=_floats, default=None,
                    help="comma-separated changes/s (default 100,1000,10000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: subscribers 20,50,200 at 200/s, rates 50,200,500 at 50 subscribers, "
                         "3 s windows after 1 s warm-up (explicit flags still win)")
    ap.add_argument("--step-quiet-wait", type=float, default=20.0,
                    help="before each step, wait at most this long for the machine to be quiet, s (0: never)")
    ap.add_argument("--json", type=Path, help="also write every step's figures here")
    ap.add_argument("--profile", action="store_true",
                    help=f"py-spy the server for up to 10 s of each window (needs {PROFILER}; skews the figures)")
    args = ap.parse_args(argv)
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if args.quick:
        args.duration = args.duration if "--duration" in given else 3.0
        args.warmup = args.warmup if "--warmup" in given else 1.0
        args.rate = args.rate if "--rate" in given else QUICK_BASE_RATE
        args.quiet_wait = min(args.quiet_wait, 10.0)
        args.step_quiet_wait = min(args.step_quiet_wait, 5.0)
    if args.subscribers is None:
        args.subscribers = QUICK_BASE_SUBSCRIBERS if args.quick else 1_000
    if args.subscriber_steps is None:
        args.subscriber_steps = list(QUICK_SUBSCRIBER_STEPS if args.quick else SUBSCRIBER_STEPS)
    if args.rate_steps is None:
        args.rate_steps = list(QUICK_RATE_STEPS if args.quick else RATE_STEPS)
    args.sports = max(1, min(args.sports, len(SPORTS)))
    sports = list(SPORTS[:args.sports])

    plan: list[tuple[str, list[tuple[int, float]]]] = []
    if args.sweep in ("both", "subscribers"):
        plan.append(("subscribers", [(n, args.rate) for n in args.subscriber_steps]))
    if args.sweep in ("both", "rate"):
        plan.append(("rate", [(args.subscribers, r) for r in args.rate_steps]))
    most = max(n for _, steps in plan for n, _ in steps)
    nofile = raise_nofile(max(4096, most * 2 + 1024))
    if nofile < most + 1024 or nofile < math.ceil(most / max(1, args.clients)) + 256:
        print(f"warning: RLIMIT_NOFILE is {nofile} (hard limit): {most:,} subscribers may not all connect",
              file=sys.stderr)

    wait_quiet(args)
    print_machine()
    listed = "; ".join(f"{name}: " + ", ".join(f"{n:,} x {r:,.0f}/s" for n, r in steps) for name, steps in plan)
    print(f"steps: {listed}; {args.warmup:g} s warm-up + {args.duration:g} s window each, RLIMIT_NOFILE {nofile}",
          flush=True)
    done: dict[tuple[int, float], dict[str, Any]] = {}
    sweeps: list[tuple[str, list[dict[str, Any]]]] = []
    for name, steps in plan:
        results = []
        for n, r in steps:
            if (n, r) not in done:  # the step both sweeps share runs once
                done[(n, r)] = run_step(args, sports, n, r)
            results.append(done[(n, r)])
        sweeps.append((name, results))

    for name, results in sweeps:
        label = (f"subscriber sweep at {args.rate:,.0f} changes/s" if name == "subscribers"
                 else f"ingest sweep at {args.subscribers:,} subscribers")
        print_table(f"cost growth: {label}, {args.duration:g} s windows", [_row(f) for f in results], HEADERS)
        print_table(f"why: {label}", [_why_row(f) for f in results], WHY_HEADERS)
        growth(results, name)
    print("\n---- for bench/RESULTS.md ----\n" + markdown(args, sweeps, argv) + "\n---- end ----", flush=True)
    if args.json:
        args.json.write_text(json.dumps([{"sweep": name, **f} for name, results in sweeps for f in results],
                                        indent=1, default=str))
        print(f"figures written to {args.json}")
    return 1 if any("failed" in f for f in done.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
