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
$__range --range.
"""

import argparse
import json
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
    from matplotlib.ticker import EngFormatter

    dashboard = load(args.dashboard)
    end = time.time() if args.end is None else args.end
    start = end - args.seconds
    step = max(1, int(args.seconds / 240))
    bg, panel_bg, text, grid = "#111217", "#181b1f", "#ccccdc", "#2c3235"
    palette = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    unit_h, unit_w, width = 0.34, 0.62, 24
    fig = plt.figure(figsize=(width * unit_w, rows * unit_h + 0.9), facecolor=bg)
    total_h = rows * unit_h + 0.9

    def box(grid_pos, pad=0.05):
        x, y, w, h = (grid_pos[k] for k in ("x", "y", "w", "h"))
        return [
            x / width + pad / (width * unit_w),
            1 - (0.9 + (y + h) * unit_h) / total_h + pad / total_h,
            w / width - 2 * pad / (width * unit_w),
            h * unit_h / total_h - 2 * pad / total_h,
        ]

    fig.text(0.01, 1 - 0.35 / total_h, dashboard["title"], color=text, fontsize=16, weight="bold", va="center")
    fig.text(0.99, 1 - 0.35 / total_h, args.caption, color="#8e8e8e", fontsize=9, ha="right", va="center")
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            gp = panel["gridPos"]
            fig.text(0.005, 1 - (0.9 + (gp["y"] + 0.6) * unit_h) / total_h, panel["title"],
                     color=text, fontsize=12, weight="bold", va="center")
            continue
        defaults = panel["fieldConfig"]["defaults"]
        unit = defaults.get("unit", "short")
        ax = fig.add_axes(box(panel["gridPos"]), facecolor=panel_bg)
        for side in ax.spines.values():
            side.set_color(grid)
        ax.set_title(panel["title"], color=text, fontsize=10, loc="left", pad=4)
        ax.tick_params(colors="#8e8e8e", labelsize=7)
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
            ax.set_xticks([])
            ax.set_yticks([])
            value = lines[0][2][-1] if lines and lines[0][2] else None
            if value is None:
                shown = defaults.get("noValue", "No data")
                color = text
            else:
                shown = format_value(value, unit, defaults.get("decimals"))
                color = "#73bf69"
                for step_ in defaults.get("thresholds", {}).get("steps", []):
                    if step_["value"] is None or value >= step_["value"]:
                        color = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830"}.get(step_["color"], step_["color"])
            if lines and len(lines[0][1]) > 1:
                ax.fill_between(lines[0][1], lines[0][2], color=color, alpha=0.12, lw=0)
                ax.plot(lines[0][1], lines[0][2], color=color, alpha=0.5, lw=1)
            ax.text(0.5, 0.42, shown, transform=ax.transAxes, ha="center", va="center",
                    color=color, fontsize=22, weight="bold")
            continue
        ax.grid(True, color=grid, lw=0.5)
        ax.set_xlim(-args.seconds, 0)
        ticks = [-args.seconds + i * args.seconds / 4 for i in range(5)]
        ax.set_xticks(ticks)
        ax.set_xticklabels([time.strftime("%H:%M", time.gmtime(end + t)) for t in ticks])
        if unit == "s":
            ax.yaxis.set_major_formatter(EngFormatter(unit="s", places=0))
        elif unit in ("reqps", "ops"):
            ax.yaxis.set_major_formatter(EngFormatter(unit="/s" if unit == "ops" else " req/s", places=1))
        stacked = panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
        if not lines:
            ax.text(0.5, 0.5, defaults.get("noValue", "No data"), transform=ax.transAxes,
                    ha="center", va="center", color="#8e8e8e", fontsize=11)
        if stacked and lines:
            xs = sorted({x for _, lx, _ in lines for x in lx})
            base = [0.0] * len(xs)
            for i, (legend, lx, ly) in enumerate(sorted(lines)):
                values = dict(zip(lx, ly))
                top = [b + values.get(x, 0.0) for b, x in zip(base, xs)]
                c = palette[i % len(palette)]
                ax.fill_between(xs, base, top, color=c, alpha=0.25, lw=0)
                ax.plot(xs, top, color=c, lw=1, label=legend)
                base = top
        else:
            for i, (legend, lx, ly) in enumerate(sorted(lines)):
                ax.plot(lx, ly, color=palette[i % len(palette)], lw=1.2, label=legend)
        if "min" in defaults:
            ax.set_ylim(bottom=defaults["min"])
            if all(max(ly, default=0) == 0 for _, _, ly in lines):
                ax.set_ylim(0, 1)
        if lines:
            ax.legend(loc="upper left", fontsize=7, frameon=False, labelcolor=text, ncol=4)
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
    parser.add_argument("--range", default="1h", help="$__range (default 1h)")
    parser.add_argument("--timeout", type=float, default=60, help="check: seconds to wait for data")
    parser.add_argument("--expect", action="append", default=[], help="check: a query that must return a series")
    parser.add_argument("--out", default="dashboard.png", help="render: the PNG to write")
    parser.add_argument("--seconds", type=int, default=900, help="render: the time range, ending now")
    parser.add_argument("--end", type=float, help="render: the range's end (Unix time; default now)")
    parser.add_argument("--dpi", type=int, default=110)
    parser.add_argument("--caption", default="")
    args = parser.parse_args()
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
