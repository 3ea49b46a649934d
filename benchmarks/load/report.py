"""`o2o bench load`'s report: the table printed and the plot (load.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.load.figures import P99_TARGET_MS


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _run_name(report: dict[str, Any], r: dict[str, Any]) -> str:
    return f"{r['name']} {r['repeat']}" if "repeat" in r and len(report["main_runs"]["runs"]) > 1 else r["name"]


def table(report: dict[str, Any]) -> None:
    print(f"\n{'run':<8} {'target':<7} {'offered/s':>9} {'achieved/s':>10} {'p50 ms':>7} {'p90':>7} {'p99':>7} "
          f"{'p99.9':>7} {'max':>7} {'cpu us/req':>10} {'relay':>6} {'batch':>6}  errors / timeouts  sustained")
    for r in report["runs"]:
        lat = r["latency_ms"] or dict.fromkeys(("p50", "p90", "p99", "p99.9", "max"), float("nan"))
        bad = f"{r['errors'] or '-'} / {r['timeouts']}"
        name = _run_name(report, r)
        print(f"{name:<8} {r['target']:<7} {r['offered_per_s']:>9,} {r['achieved_per_s']:>10,.0f} "
              f"{lat['p50']:>7.1f} {lat['p90']:>7.1f} {lat['p99']:>7.1f} {lat['p99.9']:>7.1f} {lat['max']:>7.1f} "
              f"{r['service_cpu_us_per_request']:>10.0f} {_us(r.get('relay_cpu_us_per_request')):>6} "
              f"{_us(r.get('orders_per_batch')):>6}  {bad:<17}  "
              f"{'yes' if r['sustained'] else 'no'}")
    for r in report["runs"]:
        if r["target"] == "engine" and r.get("service_cpu_us_per_request_by_thread"):
            name = f"{_run_name(report, r)} {r['offered_per_s']:,}/s"
            print(f"{name}: the engine's process by thread, us CPU per order: " + ", ".join(
                f"{k} {v:.0f}" for k, v in r["service_cpu_us_per_request_by_thread"].items()))
    m = report.get("main_runs")
    if m and len(m["runs"]) > 1:
        w = m["worst"]
        print(f"\n{len(m['runs'])} main runs, each on a fresh engine: worst p99 {w['p99_ms']} ms (run {w['repeat']}), "
              f"{w['errors']} errors, {w['timeouts']} timeouts; every run sustained: "
              f"{'yes' if m['all_sustained'] else 'no'}; engine CPU per order, median of runs: "
              f"{m['median_cpu_us_per_request']:.0f} us")
    s = report["sustained"]
    print(f"\nsustained with p99 <= {P99_TARGET_MS:g} ms: engine {s['engine_per_s'] or '-'} orders/s, "
          f"echo {s['echo_per_s'] or '-'} requests/s, engine/echo {s['engine_share_of_echo'] or '-'}")
    if report["intake"]:
        i = report["intake"]
        print(f"JetStream intake: {i['orders']:,} orders published in {i['published_s']} s, all stored and "
              f"acknowledged after {i['stored_s']} s ({i['stored_per_s']:,.0f} orders/s)")
    print(f"engine peak RSS {report['engine_peak_rss_bytes'] / 2**20:,.0f} MiB; events: {report['events']['stored']:,} "
          f"stored, {report['events']['published']:,} published")
    mc = report["machine"]
    print(f"machine: a fixed Python loop in {mc['python_loop_s']} s CPU (solver.python_loop_s: lower is faster), "
          f"load average {mc['load_average_before'][0]:.2f} before")
    z = report["zero_loss"]
    print(f"zero-loss check: {'passed' if z['ok'] else 'FAILED'}: {z['orders_sent']:,} sent, {z['answered']:,} answered "
          f"and stored once with one outcome, {z['refused']} refused, {z['unanswered']} unanswered, "
          f"{z['answered_but_not_stored']} answered but not stored, "
          f"{z.get('answered_with_another_orders_reply', 0)} answered with another order's reply, "
          f"{z['stored_twice']} stored twice, "
          f"{z['doubled_replies']} doubled replies")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(18, 5.2))
    styles = {"engine": "-", "echo": "--"}
    for target in ("engine", "echo"):
        rs = sorted((r for r in report["runs"] if r["target"] == target and r["name"] != "warm-up" and r["latency_ms"]),
                    key=lambda r: r["offered_per_s"])
        if not rs:
            continue
        x = [r["offered_per_s"] for r in rs]
        for q, colour in (("p50", "tab:green"), ("p90", "tab:blue"), ("p99", "tab:red"), ("p99.9", "tab:purple")):
            left.plot(x, [r["latency_ms"][q] for r in rs], styles[target], marker="o", color=colour,
                      label=f"{target} {q}")
        middle.plot(x, [r["achieved_per_s"] for r in rs], styles[target], marker="o", label=target)
    left.axhline(P99_TARGET_MS, color="grey", lw=0.8, ls=":")
    left.text(0.01, P99_TARGET_MS, f"p99 target {P99_TARGET_MS:g} ms", va="bottom", color="grey",
              transform=left.get_yaxis_transform())
    left.set(xlabel="offered rate (requests/s, log)", ylabel="latency from due time (ms, log)", xscale="log",
             yscale="log", title="Latency percentiles against offered rate")
    left.legend(fontsize=8, ncol=2)
    rates = [r["offered_per_s"] for r in report["runs"]] or [1]
    middle.plot([min(rates), max(rates)], [min(rates), max(rates)], color="grey", lw=0.8, ls=":",
                label="achieved = offered")
    middle.set(xlabel="offered rate (requests/s, log)", ylabel="achieved (answered ok per s, log)", xscale="log",
               yscale="log", title="Throughput against offered rate")
    middle.legend(fontsize=8)
    main = next((r for r in report["runs"] if r["name"] == "main"), None)
    if main and main["per_second"]:
        t = [x["second"] for x in main["per_second"]]
        for q, colour in (("p50", "tab:green"), ("p99", "tab:red"), ("max", "tab:grey")):
            right.plot(t, [x[q] for x in main["per_second"]], color=colour, label=q, lw=1.2)
        right.axhline(P99_TARGET_MS, color="grey", lw=0.8, ls=":")
        right.set(xlabel="second of the run", ylabel="latency (ms)", ylim=(0, None),
                  title=f"Main run over time: {main['offered_per_s']:,} orders/s for {main['seconds']:g} s")
        right.legend(fontsize=8)
    p, s = report["parameters"], report["sustained"]
    store = p["store"].split(":", 1)[0].replace("postgresql", "postgres")
    fig.suptitle(f"o2o bench load: {p['nodes']} nodes x {p['skus']} SKUs, {store} store, {p['solver']} router; "
                 f"sustained at p99 <= {P99_TARGET_MS:g} ms: engine {s['engine_per_s'] or '-'} orders/s, "
                 f"echo {s['echo_per_s'] or '-'} requests/s", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
