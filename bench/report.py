"""Markdown tables from `bench.load --output` files.

    python -m bench.report results-10k.json [...]          a table per file
    python -m bench.report --compare before.json after.json  our figures before and after, shape by shape
"""
import json
import sys


def _f(value, spec=".1f"):
    return "-" if value is None else format(value, spec)


def comparison(result):
    info = result["info"]
    machine = info["machine"]
    rounds = info.get("rounds", 1)
    lines = [f"{info['accounts']:,} accounts, {info['connections']} connections, {info['duration']:g} s per run "
             f"after {info['warmup']:g} s of warm-up"
             + (f", the median of {rounds} interleaved rounds" if rounds > 1 else "")
             + f", {info['workers']} workers x {info['threads']} threads per "
             f"server; {machine['nproc']} CPUs ({machine['cpu']}), PostgreSQL {info['postgresql']}, "
             f"Python {machine['python']}; migration {info.get('migration', '?')}",
             "",
             "| shape | ours req/s | p50 ms | p99 ms | baseline req/s | p50 ms | p99 ms | p50 x | r/s x "
             "| CPU ms/req ours / baseline | goal |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["shapes"]:
        ours, base = row.get("ours") or {}, row.get("baseline") or {}
        lines.append(
            f"| {row['shape']} | {_f(ours.get('rps'))} | {_f(ours.get('p50_ms'), '.2f')} | "
            f"{_f(ours.get('p99_ms'), '.2f')} | {_f(base.get('rps'))} | {_f(base.get('p50_ms'), '.2f')} | "
            f"{_f(base.get('p99_ms'), '.2f')} | {_f(row.get('p50_ratio'), '.2f')} | {_f(row.get('rps_ratio'), '.2f')} | "
            f"{_f(ours.get('server_cpu_ms_per_request'), '.2f')} / {_f(base.get('server_cpu_ms_per_request'), '.2f')} | "
            f"{row.get('verdict', '-')} |")
    lines.append("")
    lines.append(f"Errors (non-2xx and socket): {result.get('errors', 0)}; shapes whose documents differ: "
                 f"{result.get('mismatched_shapes', 0)}.")
    return "\n".join(lines)


def soak(result):
    figures = result["figures"]
    lines = [f"Soak: {result['soak_seconds']:g} s, {result['info']['connections']} connections, "
             f"{figures['requests']:,} requests ({figures['rps']} req/s), p50 {figures['p50_ms']} ms, "
             f"p99 {figures['p99_ms']} ms, errors {result['errors']}",
             "",
             "| worker | start MiB | end MiB | max MiB | growth MiB | second half MiB |",
             "|---|---|---|---|---|---|"]
    for pid, w in result["workers"].items():
        lines.append(f"| {pid} | {w['start_kib'] / 1024:.1f} | {w['end_kib'] / 1024:.1f} | {w['max_kib'] / 1024:.1f} "
                     f"| {(w['end_kib'] - w['start_kib']) / 1024:+.1f} | {w['second_half_growth_kib'] / 1024:+.1f} |")
    return "\n".join(lines)


def before_after(before, after):
    rows_before = {row["shape"]: row for row in before["shapes"]}
    lines = ["| shape | p50 x before → after | our p50 ms before → after | our p99 ms before → after "
             "| our req/s before → after | our CPU ms/req before → after |",
             "|---|---|---|---|---|---|"]
    for row in after["shapes"]:
        old = rows_before.get(row["shape"])
        if old is None:
            continue
        a, b = old.get("ours") or {}, row.get("ours") or {}
        lines.append(
            f"| {row['shape']} | {_f(old.get('p50_ratio'), '.2f')} → {_f(row.get('p50_ratio'), '.2f')} "
            f"| {_f(a.get('p50_ms'), '.2f')} → {_f(b.get('p50_ms'), '.2f')} "
            f"| {_f(a.get('p99_ms'), '.2f')} → {_f(b.get('p99_ms'), '.2f')} "
            f"| {_f(a.get('rps'))} → {_f(b.get('rps'))} "
            f"| {_f(a.get('server_cpu_ms_per_request'), '.2f')} → {_f(b.get('server_cpu_ms_per_request'), '.2f')} |")
    return "\n".join(lines)


def main(argv=None):
    argv = argv if argv is not None else sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench.report RESULT.json ... | --compare before.json after.json\n\n"
              "Markdown tables from bench.load --output files (a soak file gives its memory table).")
        return 0 if argv else 2
    if argv[:1] == ["--compare"]:
        if len(argv) != 3:
            raise SystemExit("usage: python -m bench.report --compare before.json after.json")
        with open(argv[1]) as fh, open(argv[2]) as gh:
            print(before_after(json.load(fh), json.load(gh)))
        return 0
    for path in argv:
        with open(path) as fh:
            result = json.load(fh)
        print(soak(result) if "soak_seconds" in result else comparison(result))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
