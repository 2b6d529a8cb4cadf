#!/usr/bin/env python3
"""The Grafana dashboard's queries, outside Grafana.

    dashboard.py queries                        # every query, template variables substituted
    dashboard.py rules > rules.yml              # the same as recording rules, for promtool check rules
    dashboard.py check --prometheus URL         # each query returns at least one series
    dashboard.py render --prometheus URL --out docs/src/images/dashboard.png

`check` is what deploy/compose-test.sh runs against the compose stack's Prometheus: it evaluates
every panel target and every query variable of session-service.json through the HTTP API
(/api/v1/query), polling until each returns a series or the deadline passes. `--expect EXPR`
adds queries that must return a series too (a comparison such as `... > 0` returns none when
false). `render` draws the panels from the same queries over a time range (/api/v1/query_range)
into a PNG laid out as the dashboard's grid; it needs matplotlib (`pip install matplotlib`).
Only the standard library otherwise.

Template variables are given the values Grafana would use with the job's first value and every
instance selected: $job the job (--job), $instance `.*`, $__rate_interval --rate-interval,
$__range --range (for render, the range drawn).
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

DASHBOARD = Path(__file__).with_name("session-service.json")


def load(path=DASHBOARD):
    return json.loads(Path(path).read_text())


def panels(dashboard):
    """Every panel that draws something (rows and their nested panels flattened)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def substitute(expr, args):
    values = {
        "__rate_interval": args.rate_interval,
        "__range": args.range,
        "__interval": args.rate_interval,
        "job": args.job,
        "instance": ".*",
    }

    def value(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            raise SystemExit(f"unknown template variable ${name} in {expr}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def queries(dashboard, args):
    """(what, PromQL) for every panel target and every query variable."""
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            what = f'panel "{panel["title"]}" {target["refId"]}'
            out.append((what, substitute(target["expr"], args)))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        q = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        # label_values(SELECTOR, LABEL): the selector's series, which must carry LABEL.
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
        if not m:
            raise SystemExit(f"variable {variable['name']}: unsupported query {q}")
        out.append((f'variable "{variable["name"]}" ({m.group(2)})', substitute(m.group(1), args)))
    return out


def api(base, path, params, timeout=10):
    url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body}")
    return body["data"]


def series(base, expr):
    data = api(base, "/api/v1/query", {"query": expr})
    return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]


def check(args):
    dashboard = load(args.dashboard)
    todo = queries(dashboard, args) + [(f"expected: {e}", e) for e in args.expect]
    deadline = time.monotonic() + args.timeout
    found = {}
    while True:
        for what, expr in todo:
            if what in found:
                continue
            try:
                result = series(args.prometheus, expr)
            except (OSError, RuntimeError) as e:  # Prometheus not answering yet
                result = []
                error = e
            else:
                error = None
            if result:
                found[what] = len(result)
            elif error and time.monotonic() > deadline:
                print(f"error: {what}: {error}", file=sys.stderr)
        if len(found) == len(todo) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for what, expr in todo:
        status = f"{found[what]} series" if what in found else "NO DATA"
        print(f"{status:>10}  {what}: {expr}")
    missing = [what for what, _ in todo if what not in found]
    if missing:
        print(f"{len(missing)} of {len(todo)} queries returned no series within {args.timeout}s",
              file=sys.stderr)
        return 1
    print(f"every query of the dashboard returned data ({len(todo)} queries)")
    return 0


def render(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    dashboard = load(args.dashboard)
    end = time.time() if args.end is None else args.end
    start = end - args.seconds
    step = max(1, int(args.seconds / 240))
    bg, panel_bg, text, muted, grid = "#111217", "#181b1f", "#ccccdc", "#8e8e8e", "#2c3235"
    palette = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"]
    colors = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830"}
    columns, col_w, row_h, header = 24, 0.68, 0.36, 0.7  # inches
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    fig_w, fig_h = columns * col_w, rows * row_h + header
    fig = plt.figure(figsize=(fig_w, fig_h), facecolor=bg)

    def rect(x, y, w, h):
        """Figure fraction of a box given in inches from the top-left corner."""
        return [x / fig_w, 1 - (y + h) / fig_h, w / fig_w, h / fig_h]

    def cell(gp, gap=0.06):
        return (gp["x"] * col_w + gap, header + gp["y"] * row_h + gap,
                gp["w"] * col_w - 2 * gap, gp["h"] * row_h - 2 * gap)

    fig.text(0.12 / fig_w, 1 - 0.35 / fig_h, dashboard["title"], color=text, fontsize=15, weight="bold", va="center")
    fig.text(1 - 0.12 / fig_w, 1 - 0.35 / fig_h, args.caption, color=muted, fontsize=9, ha="right", va="center")

    def fmt(unit):
        def f(v, _pos=None):
            if unit == "s":
                return f"{v * 1e3:g} ms" if 0 < abs(v) < 1 else f"{v:g} s"
            suffix = {"reqps": " req/s", "ops": "/s"}.get(unit, "")
            return f"{v:g}{suffix}"
        return FuncFormatter(f)

    for panel in dashboard["panels"]:
        x, y, w, h = cell(panel["gridPos"])
        if panel["type"] == "row":
            fig.text((x + 0.05) / fig_w, 1 - (y + h / 2) / fig_h, panel["title"], color=text,
                     fontsize=12, weight="bold", va="center")
            continue
        frame = fig.add_axes(rect(x, y, w, h))
        frame.set_axis_off()
        frame.add_patch(Rectangle((0, 0), 1, 1, transform=frame.transAxes, facecolor=panel_bg,
                                  edgecolor=grid, lw=0.8))
        frame.text(0.12 / w, 1 - 0.2 / h, panel["title"], transform=frame.transAxes, color=text,
                   fontsize=10, weight="bold", va="center")
        defaults = panel["fieldConfig"]["defaults"]
        unit = defaults.get("unit", "short")
        lines = []
        for target in panel["targets"]:
            expr = substitute(target["expr"], args)
            data = api(args.prometheus, "/api/v1/query_range",
                       {"query": expr, "start": start, "end": end, "step": step})
            for s in data["result"]:
                legend = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: s["metric"].get(m.group(1), ""),
                                target.get("legendFormat") or "") or target["refId"]
                xs = [float(t) - end for t, _ in s["values"]]
                ys = [float(v) for _, v in s["values"]]
                lines.append((legend, xs, ys))
        if panel["type"] == "stat":
            values = lines[0][2] if lines else []
            value = values[-1] if values and not math.isnan(values[-1]) else None
            color = text
            if value is None:
                shown = defaults.get("noValue", "No data")
            else:
                shown = format_value(value, unit, defaults.get("decimals"))
                for threshold in defaults.get("thresholds", {}).get("steps", []):
                    if threshold["value"] is None or value >= threshold["value"]:
                        color = colors.get(threshold["color"], threshold["color"])
            spark = fig.add_axes(rect(x + 0.05, y + h * 0.45, w - 0.1, h * 0.55 - 0.05))
            spark.set_axis_off()
            if lines and len(lines[0][1]) > 1:
                spark.fill_between(lines[0][1], lines[0][2], color=color, alpha=0.15, lw=0)
                spark.plot(lines[0][1], lines[0][2], color=color, alpha=0.6, lw=1)
                spark.set_xlim(-args.seconds, 0)
                spark.set_ylim(bottom=0)
            # A figure text: drawn above the sparkline's axes.
            fig.text((x + w / 2) / fig_w, 1 - (y + h / 2 + 0.1) / fig_h, shown, ha="center", va="center",
                     color=color, fontsize=24, weight="bold")
            continue
        legend_h = 0.3
        ax = fig.add_axes(rect(x + 0.75, y + 0.4, w - 0.9, h - 0.4 - 0.3 - legend_h), facecolor=panel_bg)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.tick_params(colors=muted, labelsize=7, length=0)
        ax.grid(True, color=grid, lw=0.6)
        ax.set_xlim(-args.seconds, 0)
        ticks = [-args.seconds + i * args.seconds / 5 for i in range(6)]
        ax.set_xticks(ticks)
        ax.set_xticklabels([time.strftime("%H:%M", time.gmtime(end + t)) for t in ticks])
        ax.yaxis.set_major_formatter(fmt(unit))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        lines.sort()
        if not lines:
            ax.text(0.5, 0.5, defaults.get("noValue", "No data"), transform=ax.transAxes,
                    ha="center", va="center", color=muted, fontsize=11)
        handles = []
        if defaults["custom"]["stacking"]["mode"] == "normal" and lines:
            xs = sorted({t for _, lx, _ in lines for t in lx})
            base = [0.0] * len(xs)
            for i, (legend, lx, ly) in enumerate(lines):
                values = dict(zip(lx, ly))
                top = [b + values.get(t, 0.0) for b, t in zip(base, xs)]
                c = palette[i % len(palette)]
                ax.fill_between(xs, base, top, color=c, alpha=0.25, lw=0)
                handles.append(ax.plot(xs, top, color=c, lw=1.2, label=legend)[0])
                base = top
        else:
            for i, (legend, lx, ly) in enumerate(lines):
                c = palette[i % len(palette)]
                ax.fill_between(lx, ly, color=c, alpha=0.06, lw=0)
                handles.append(ax.plot(lx, ly, color=c, lw=1.2, label=legend)[0])
        if "min" in defaults:
            finite = [v for _, _, ly in lines for v in ly if not math.isnan(v)]
            ax.set_ylim(bottom=defaults["min"], top=None if finite and max(finite) > 0 else 1)
        if handles:
            fig.legend(handles=handles, loc="lower left", bbox_to_anchor=rect(x + 0.7, y + h - legend_h, w - 0.8, legend_h),
                       fontsize=7.5, frameon=False, labelcolor=text, ncol=6, handlelength=1.2, borderaxespad=0)
    fig.savefig(args.out, dpi=args.dpi, facecolor=bg)
    print(f"wrote {args.out}")
    return 0


def format_value(value, unit, decimals):
    if unit == "s":
        for scale, suffix in ((1, " s"), (1e-3, " ms"), (1e-6, " µs")):
            if abs(value) >= scale or scale == 1e-6:
                return f"{value / scale:.{1 if decimals is None else decimals}f}{suffix}"
    text = f"{value:.{2 if decimals is None else decimals}f}"
    return text + {"reqps": " req/s", "ops": " /s"}.get(unit, "")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["queries", "rules", "check", "render"])
    parser.add_argument("--dashboard", default=DASHBOARD)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--job", default="session-server")
    parser.add_argument("--rate-interval", default="1m", help="$__rate_interval (default 1m)")
    parser.add_argument("--range", help="$__range (default 1h; render: --seconds)")
    parser.add_argument("--timeout", type=float, default=60, help="check: seconds to wait for data")
    parser.add_argument("--expect", action="append", default=[], help="check: a query that must return a series")
    parser.add_argument("--out", default="dashboard.png", help="render: the PNG to write")
    parser.add_argument("--seconds", type=int, default=900, help="render: the time range, ending now")
    parser.add_argument("--end", type=float, help="render: the range's end (Unix time; default now)")
    parser.add_argument("--dpi", type=int, default=110)
    parser.add_argument("--caption", default="")
    args = parser.parse_args()
    if args.range is None:
        args.range = f"{args.seconds}s" if args.command == "render" else "1h"
    if args.command == "queries":
        for what, expr in queries(load(args.dashboard), args):
            print(f"{what}: {expr}")
        return 0
    if args.command == "rules":  # JSON is YAML: promtool parses every expression
        rules = [{"record": f"dashboard:query:{i}", "expr": expr}
                 for i, (_, expr) in enumerate(queries(load(args.dashboard), args))]
        print(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=1))
        return 0
    return check(args) if args.command == "check" else render(args)


if __name__ == "__main__":
    sys.exit(main())
