//! The report of a run: Markdown tables and an SVG chart of throughput and latency against the
//! replica count.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use plotters::prelude::*;

use crate::{
    Result,
    results::{Row, RunFile},
};

const SCENARIO_ORDER: [&str; 7] = [
    "checks",
    "storm: checks alone",
    "storm: checks + logins",
    "storm: logins",
    "web mix",
    "revocation",
    "revocation: background checks",
];

fn scenario_rank(s: &str) -> usize {
    SCENARIO_ORDER
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SCENARIO_ORDER.len())
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn num(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(x: Option<u64>) -> String {
    x.map_or("-".into(), |v| v.to_string())
}

/// Capacity on paper, from the measured CPU cost of one session check: each replica on a core
/// of its own, one Redis (its command loop is one thread, so one core).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Replica count of the row the costs come from.
    pub from_replicas: u32,
    pub replica_us: f64,
    pub redis_us: f64,
    pub haproxy_us: f64,
    pub redis_cmds: f64,
    /// Checks per second one replica serves on one core.
    pub per_replica: f64,
    /// Checks per second one Redis core serves.
    pub redis_limit: f64,
}

impl Projection {
    /// From the `checks` row (flat out, through the load balancer) with the fewest replicas.
    pub fn from_files(files: &[RunFile]) -> Option<Projection> {
        let row = scale_rows(files)
            .into_iter()
            .filter(|r| r.scenario == "checks" && r.offered_rate == 0.0)
            .min_by_key(|r| r.replicas)?;
        let redis = row.redis.as_ref()?;
        let replica_us = *row.cpu_us_per_request.get("replica")?;
        if replica_us <= 0.0 || redis.cpu_us_per_request <= 0.0 {
            return None;
        }
        Some(Projection {
            from_replicas: row.replicas,
            replica_us,
            redis_us: redis.cpu_us_per_request,
            haproxy_us: row
                .cpu_us_per_request
                .get("haproxy")
                .copied()
                .unwrap_or(0.0),
            redis_cmds: redis.commands_per_request,
            per_replica: 1e6 / replica_us,
            redis_limit: 1e6 / redis.cpu_us_per_request,
        })
    }

    /// Checks per second with `n` replicas, each on its own core.
    pub fn capacity(&self, n: u32) -> f64 {
        (n as f64 * self.per_replica).min(self.redis_limit)
    }

    /// Replicas at which one Redis becomes the bottleneck.
    pub fn knee(&self) -> f64 {
        self.redis_limit / self.per_replica
    }
}

fn projection_section(p: &Projection) -> String {
    let mut s = format!(
        "Projected, not measured: from the costs measured in the `checks` row with {} replica(s) \
         above, assuming each replica gets a core of its own and one Redis core serves all of \
         them. One check costs {:.1} µs of replica CPU, {:.1} µs of Redis CPU ({:.2} commands) \
         and {:.1} µs of HAProxy CPU. So one replica core serves about {} checks/s and one Redis \
         core about {}; Redis becomes the bottleneck at about {:.1} replicas, where HAProxy needs \
         about {:.1} cores.\n\n| replicas | projected checks/s | bound by |\n|---|---|---|\n",
        p.from_replicas,
        p.replica_us,
        p.redis_us,
        p.redis_cmds,
        p.haproxy_us,
        num(p.per_replica),
        num(p.redis_limit),
        p.knee(),
        p.redis_limit * p.haproxy_us / 1e6,
    );
    let last = (p.knee().ceil() as u32 + 2).clamp(3, 24);
    for n in 1..=last {
        let bound = if n as f64 * p.per_replica < p.redis_limit {
            "replica CPU"
        } else {
            "one Redis core"
        };
        let _ = writeln!(s, "| {n} | {} | {bound} |", num(p.capacity(n)));
    }
    s
}

type Key = (String, String, u32, String);

fn key(r: &Row) -> Key {
    (
        r.target.clone(),
        r.scenario.clone(),
        r.replicas,
        r.via.clone(),
    )
}

/// One row per target, scenario, replica count and path: with several rounds, the round with
/// the median rate (the lower middle one for an even count).
fn medians<'a>(rows: impl Iterator<Item = &'a Row>) -> Vec<&'a Row> {
    let mut groups: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups.entry(key(r)).or_default().push(r);
    }
    groups
        .into_values()
        .map(|mut g| {
            g.sort_by(|a, b| a.rate.total_cmp(&b.rate));
            g[(g.len() - 1) / 2]
        })
        .collect()
}

/// Rounds of the same measurement as `r`: how many, lowest and highest rate.
fn spread(files: &[RunFile], r: &Row) -> (usize, f64, f64) {
    let k = key(r);
    let rates: Vec<f64> = files
        .iter()
        .flat_map(|f| &f.rows)
        .filter(|x| key(x) == k)
        .map(|x| x.rate)
        .collect();
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    (rates.len(), min, max)
}

/// The rate, with the range over rounds when there were several.
fn rate_cell(files: &[RunFile], r: &Row) -> String {
    match spread(files, r) {
        (n, min, max) if n > 1 => format!("{} [{}–{}]", num(r.rate), num(min), num(max)),
        _ => num(r.rate),
    }
}

/// Rows measured through the load balancer, by scenario then replica count (median rounds).
fn scale_rows(files: &[RunFile]) -> Vec<&Row> {
    let mut rows = medians(
        files
            .iter()
            .flat_map(|f| &f.rows)
            .filter(|r| r.via != "direct"),
    );
    rows.sort_by_key(|r| (scenario_rank(&r.scenario), r.replicas));
    rows
}

/// Session checks on one server each (median rounds).
fn peer_rows(files: &[RunFile]) -> Vec<&Row> {
    medians(
        files
            .iter()
            .flat_map(|f| &f.rows)
            .filter(|r| r.via == "direct" && r.scenario == "checks"),
    )
}

/// The main table: scenario, replicas, req/s, p50, p99, p99.9, errors, revoked-but-accepted.
pub fn main_table(files: &[RunFile]) -> String {
    let mut t = String::from(
        "| scenario | replicas | req/s | p50 ms | p99 ms | p99.9 ms | errors | revoked-but-accepted |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in scale_rows(files) {
        let name = match r.scenario.as_str() {
            "revocation" => "revocation (revocations/s; latency = propagation)".to_owned(),
            "storm: logins" => "storm: logins (logins/s)".to_owned(),
            s => s.to_owned(),
        };
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            r.replicas,
            rate_cell(files, r),
            ms(r.latency.p50_ms),
            ms(r.latency.p99_ms),
            ms(r.latency.p999_ms),
            r.errors,
            opt(r.revoked_accepted)
        );
    }
    t
}

fn cost_table(files: &[RunFile]) -> String {
    let mut t = String::from(
        "| scenario | replicas | Redis cmds/req | by command | Redis CPU µs/req | replicas CPU µs/req | HAProxy CPU µs/req | load generator CPU µs/req | CPU busy % (per core) | CPU not accounted to them % |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in scale_rows(files) {
        let Some(redis) = &r.redis else { continue };
        let by: Vec<String> = redis
            .by_command
            .iter()
            .filter(|(_, v)| **v >= 0.005)
            .map(|(c, v)| format!("{c} {v:.2}"))
            .collect();
        let cpu = |role: &str| {
            r.cpu_us_per_request
                .get(role)
                .map_or("-".into(), |v| format!("{v:.1}"))
        };
        let busy: Vec<String> = r.cpu_busy_pct.iter().map(|b| format!("{b:.0}")).collect();
        let _ = writeln!(
            t,
            "| {} | {} | {:.2} | {} | {:.1} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.replicas,
            redis.commands_per_request,
            by.join(", "),
            redis.cpu_us_per_request,
            cpu("replica"),
            cpu("haproxy"),
            cpu("loadtest"),
            busy.join(" / "),
            r.other_cpu_pct.map_or("-".into(), |p| format!("{p:.0}"))
        );
    }
    t
}

fn ops_table(files: &[RunFile]) -> String {
    let mut t = String::from(
        "| scenario | replicas | operation | count | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|---|---|---|\n",
    );
    for r in scale_rows(files) {
        if r.scenario != "web mix" && r.scenario != "revocation" {
            continue;
        }
        for (op, l) in &r.ops {
            let _ = writeln!(
                t,
                "| {} | {} | {op} | {} | {} | {} | {} |",
                r.scenario,
                r.replicas,
                l.count,
                ms(l.p50_ms),
                ms(l.p99_ms),
                ms(l.p999_ms)
            );
        }
    }
    t
}

fn memory_table(files: &[RunFile]) -> String {
    let mut t = String::from(
        "| target | replicas | users | sessions | used_memory before → after | bytes per session (used_memory Δ) | keys | MEMORY USAGE by kind, bytes per session |\n|---|---|---|---|---|---|---|---|\n",
    );
    for f in files {
        if let Some(m) = &f.memory {
            let per = |b: u64| b as f64 / m.sessions.max(1) as f64;
            let kinds: Vec<String> = m
                .by_kind
                .iter()
                .map(|(k, b)| format!("{k} {:.0}", per(*b)))
                .collect();
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} → {} | {:.0} | {} | {} |",
                f.target,
                f.replicas,
                m.users,
                m.sessions,
                num(m.used_memory_before as f64),
                num(m.used_memory_after as f64),
                m.bytes_per_session,
                m.keys_after,
                kinds.join(", ")
            );
        }
    }
    t
}

/// Session checks against the peers: one server each, same pinning, same load.
pub fn peers_table(files: &[RunFile]) -> String {
    let rows = peer_rows(files);
    let ours = rows
        .iter()
        .find(|r| r.target == "session-server")
        .map(|r| r.rate);
    let mut t = String::from(
        "| target | req/s | p50 ms | p99 ms | p99.9 ms | errors | Redis cmds/check | server CPU µs/check | CPU busy % (per core) | session-server ÷ target (req/s) | target ÷ session-server (CPU/check) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let our_cpu = peer_rows(files)
        .iter()
        .find(|r| r.target == "session-server")
        .and_then(|r| r.cpu_us_per_request.get("replica").copied());
    for r in rows {
        let ratio = ours.map_or("-".into(), |o| format!("{:.2}×", o / r.rate.max(1e-9)));
        let cpu_ratio = match (our_cpu, r.cpu_us_per_request.get("replica")) {
            (Some(o), Some(c)) if o > 0.0 => format!("{:.2}×", c / o),
            _ => "-".into(),
        };
        let busy: Vec<String> = r.cpu_busy_pct.iter().map(|b| format!("{b:.0}")).collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {ratio} | {cpu_ratio} |",
            r.target,
            rate_cell(files, r),
            ms(r.latency.p50_ms),
            ms(r.latency.p99_ms),
            ms(r.latency.p999_ms),
            r.errors,
            r.redis
                .as_ref()
                // `+ 0.0` turns a rounding -0.0 into 0.0.
                .map_or("-".into(), |c| format!(
                    "{:.2}",
                    c.commands_per_request.max(0.0) + 0.0
                )),
            r.cpu_us_per_request
                .get("replica")
                .map_or("-".into(), |v| format!("{v:.1}")),
            busy.join(" / "),
        );
    }
    t
}

fn errors_section(files: &[RunFile]) -> String {
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for r in files.iter().flat_map(|f| &f.rows) {
        for (k, n) in &r.error_kinds {
            *kinds
                .entry(format!("{} ×{} {}: {k}", r.target, r.replicas, r.scenario))
                .or_default() += n;
        }
    }
    let skipped: Vec<String> = files
        .iter()
        .flat_map(|f| f.skipped.iter().map(move |s| format!("{}: {s}", f.target)))
        .collect();
    let mut s = String::new();
    if kinds.is_empty() {
        s.push_str("No errors.\n");
    } else {
        for (k, n) in kinds {
            let _ = writeln!(s, "- {k}: {n}");
        }
    }
    for k in skipped {
        let _ = writeln!(s, "- skipped: {k}");
    }
    s
}

/// The whole Markdown report.
/// Whether every row is of the `pages` scenario (the forward-auth measurement).
pub fn only_pages(files: &[RunFile]) -> bool {
    let mut rows = files.iter().flat_map(|f| &f.rows).peekable();
    rows.peek().is_some() && rows.all(|r| r.scenario.starts_with("page: "))
}

/// The `pages` rows: one per page and connection count, in the order measured, with the CPU
/// time each process role spent per request and Redis commands per request.
pub fn pages_table(files: &[RunFile]) -> String {
    let roles: std::collections::BTreeSet<&String> = files
        .iter()
        .flat_map(|f| &f.rows)
        .flat_map(|r| r.cpu_us_per_request.keys())
        .filter(|role| role.as_str() != "loadtest")
        .collect();
    let mut t = String::from(
        "| page | connections | req/s | p50 ms | p99 ms | p99.9 ms | errors | Redis cmds/req |",
    );
    for role in &roles {
        let _ = write!(t, " {role} CPU µs/req |");
    }
    t.push_str("\n|---|---|---|---|---|---|---|---|");
    for _ in &roles {
        t.push_str("---|");
    }
    t.push('\n');
    for r in files.iter().flat_map(|f| &f.rows) {
        let _ = write!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.trim_start_matches("page: "),
            r.connections,
            num(r.rate),
            ms(r.latency.p50_ms),
            ms(r.latency.p99_ms),
            ms(r.latency.p999_ms),
            r.errors,
            r.redis
                .as_ref()
                // `+ 0.0` turns a rounding -0.0 into 0.0.
                .map_or("-".into(), |c| format!(
                    "{:.2}",
                    c.commands_per_request.max(0.0) + 0.0
                )),
        );
        for role in &roles {
            let cell = r
                .cpu_us_per_request
                .get(*role)
                .map_or("-".into(), |v| format!("{v:.0}"));
            let _ = write!(t, " {cell} |");
        }
        t.push('\n');
    }
    t
}

/// results.md of a `pages` run.
pub fn pages_markdown(files: &[RunFile], preamble: &str) -> String {
    let mut md = String::new();
    md.push_str(preamble.trim_end());
    md.push_str("\n\n## Pages\n\n");
    md.push_str(&pages_table(files));
    md.push_str("\n## Errors\n\n");
    md.push_str(&errors_section(files));
    md
}

pub fn markdown(files: &[RunFile], preamble: &str) -> String {
    let mut md = String::new();
    md.push_str(preamble.trim_end());
    md.push_str("\n\n## Scenarios by replica count (through HAProxy)\n\n");
    md.push_str(&main_table(files));
    md.push_str("\n![throughput and latency against replicas](scaling.svg)\n");
    md.push_str("\n## What a request costs\n\nRedis commands from `INFO commandstats` (HAProxy's health checks reach Redis as `ping`), Redis CPU from `INFO cpu`, process CPU from `/proc/<pid>/stat`, all as deltas over the phase divided by its requests (logins: the storm phase minus the same check rate alone).\n\n");
    md.push_str(&cost_table(files));
    md.push_str("\n## Web mix and revocation by operation\n\n");
    md.push_str(&ops_table(files));
    md.push_str("\n## Redis memory per live session\n\n");
    md.push_str(&memory_table(files));
    let peers = peer_rows(files);
    if !peers.is_empty() {
        md.push_str(
            "\n## Session checks against the peers (one server each, same pinning, same load)\n\n",
        );
        md.push_str(&peers_table(files));
    }
    if let Some(p) = Projection::from_files(files) {
        md.push_str("\n## Scaling on paper\n\n");
        md.push_str(&projection_section(&p));
    }
    md.push_str("\n## Errors\n\n");
    md.push_str(&errors_section(files));
    md
}

/// Labels only at whole numbers (replica counts).
fn whole(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// The `checks` scenario against the replica count: measured throughput (left), measured
/// latency (middle), and capacity projected from the measured costs (right).
pub fn chart(files: &[RunFile], path: &Path) -> Result<()> {
    let mut rows: Vec<&Row> = scale_rows(files)
        .into_iter()
        .filter(|r| r.scenario == "checks")
        .collect();
    rows.sort_by_key(|r| r.replicas);
    if rows.is_empty() {
        return Err("no `checks` rows through the load balancer to chart".into());
    }
    let measured_n = rows.iter().map(|r| r.replicas).max().unwrap_or(1) as f64;
    let x_measured = 0.5..(measured_n + 0.5);
    let max_rate = rows.iter().map(|r| r.rate).fold(0.0, f64::max) * 1.25;
    let max_ms = rows.iter().map(|r| r.latency.p999_ms).fold(0.0, f64::max) * 1.25;
    let measured: Vec<(f64, f64)> = rows.iter().map(|r| (r.replicas as f64, r.rate)).collect();
    let root = SVGBackend::new(path, (1380, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(40);
    top.titled(
        "session-server behind HAProxy, GET /v1/session against replica count",
        ("sans-serif", 18),
    )?;
    let panels = body.split_evenly((1, 3));

    let mut c = ChartBuilder::on(&panels[0])
        .caption(
            "measured throughput (replicas share one core)",
            ("sans-serif", 14),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x_measured.clone(), 0.0..max_rate.max(1.0))?;
    c.configure_mesh()
        .x_desc("replicas")
        .y_desc("requests per second")
        .x_labels(measured_n as usize * 2 + 1)
        .x_label_formatter(&whole)
        .y_label_formatter(&|y| num(*y))
        .draw()?;
    c.draw_series(LineSeries::new(measured.clone(), BLUE.stroke_width(2)))?;
    c.draw_series(measured.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;

    let mut c = ChartBuilder::on(&panels[1])
        .caption("measured latency", ("sans-serif", 14))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_measured, 0.0..max_ms.max(0.1))?;
    c.configure_mesh()
        .x_desc("replicas")
        .y_desc("milliseconds")
        .x_labels(measured_n as usize * 2 + 1)
        .x_label_formatter(&whole)
        .draw()?;
    type Metric = fn(&Row) -> f64;
    let series: [(&str, RGBColor, Metric); 3] = [
        ("p50", GREEN, |r| r.latency.p50_ms),
        ("p99", RGBColor(230, 140, 0), |r| r.latency.p99_ms),
        ("p99.9", RED, |r| r.latency.p999_ms),
    ];
    for (label, color, value) in series {
        let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.replicas as f64, value(r))).collect();
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    if let Some(p) = Projection::from_files(files) {
        let max_n = (p.knee().ceil() as u32 + 2).clamp(measured_n as u32, 24) as f64;
        let mut c = ChartBuilder::on(&panels[2])
            .caption(
                "projected: a core per replica, one Redis core",
                ("sans-serif", 14),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.5..(max_n + 0.5), 0.0..p.redis_limit * 1.45)?;
        c.configure_mesh()
            .x_desc("replicas")
            .y_desc("checks per second")
            .x_labels(max_n as usize * 2 + 1)
            .x_label_formatter(&whole)
            .y_label_formatter(&|y| num(*y))
            .draw()?;
        let grey = RGBColor(110, 110, 110);
        let projected: Vec<(f64, f64)> = (1..=max_n as u32)
            .map(|n| (n as f64, p.capacity(n)))
            .collect();
        c.draw_series(DashedLineSeries::new(
            projected.clone(),
            6,
            4,
            grey.stroke_width(2),
        ))?
        .label(format!(
            "projected ({:.1} µs replica CPU per check)",
            p.replica_us
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(2)));
        c.draw_series(projected.iter().map(|q| Circle::new(*q, 3, grey.filled())))?;
        let purple = RGBColor(150, 60, 170);
        c.draw_series(DashedLineSeries::new(
            vec![(0.5, p.redis_limit), (max_n + 0.5, p.redis_limit)],
            3,
            3,
            purple.stroke_width(1),
        ))?
        .label(format!(
            "one Redis core ({:.1} µs Redis CPU per check)",
            p.redis_us
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], purple));
        c.draw_series(LineSeries::new(measured, BLUE.stroke_width(2)))?
            .label("measured here (shared cores)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Latency;

    fn row(scenario: &str, replicas: u32, rate: f64, via: &str, target: &str) -> Row {
        Row {
            target: target.into(),
            scenario: scenario.into(),
            replicas,
            via: via.into(),
            rate,
            latency: Latency {
                count: 10,
                p50_ms: 1.0,
                p99_ms: 2.0,
                p999_ms: 3.0,
                max_ms: 4.0,
            },
            revoked_accepted: (scenario == "revocation").then_some(0),
            ..Row::default()
        }
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(num(1234567.4), "1,234,567");
        assert_eq!(num(999.0), "999");
    }

    #[test]
    fn the_main_table_orders_by_scenario_then_replicas() {
        let files = vec![RunFile {
            rows: vec![
                row("revocation", 2, 40.0, "haproxy", "session-server"),
                row("checks", 2, 2000.0, "haproxy", "session-server"),
                row("checks", 1, 1000.0, "haproxy", "session-server"),
                row("checks", 1, 500.0, "direct", "actix-session"),
            ],
            ..RunFile::default()
        }];
        let t = main_table(&files);
        let lines: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("| checks | 1 | 1,000 |"), "{t}");
        assert!(lines[1].starts_with("| checks | 2 | 2,000 |"), "{t}");
        assert!(
            lines[2].contains("revocation") && lines[2].ends_with("| 0 |"),
            "{t}"
        );
    }

    #[test]
    fn rounds_are_summarized_by_their_median_and_range() {
        let files: Vec<RunFile> = [3000.0, 1000.0, 2000.0]
            .into_iter()
            .map(|rate| RunFile {
                rows: vec![row("checks", 1, rate, "direct", "actix-session")],
                ..RunFile::default()
            })
            .collect();
        let t = peers_table(&files);
        assert!(t.contains("| actix-session | 2,000 [1,000–3,000] |"), "{t}");
    }

    #[test]
    fn peers_are_compared_with_session_server() {
        let files = vec![RunFile {
            rows: vec![
                row("checks", 1, 3000.0, "direct", "session-server"),
                row("checks", 1, 1500.0, "direct", "actix-session"),
            ],
            ..RunFile::default()
        }];
        let t = peers_table(&files);
        assert!(t.contains("| actix-session | 1,500 |"), "{t}");
        assert!(t.contains("2.00×"), "{t}");
    }

    #[test]
    fn the_projection_is_bounded_by_one_redis_core() {
        let mut r = row("checks", 1, 20000.0, "haproxy", "session-server");
        r.cpu_us_per_request.insert("replica".into(), 25.0);
        r.redis = Some(crate::results::RedisCost {
            commands_per_request: 1.0,
            by_command: [("get".to_owned(), 1.0)].into(),
            cpu_us_per_request: 5.0,
        });
        let files = vec![RunFile {
            rows: vec![r],
            ..RunFile::default()
        }];
        let p = Projection::from_files(&files).unwrap();
        assert_eq!(p.per_replica, 40_000.0);
        assert_eq!(p.redis_limit, 200_000.0);
        assert_eq!(p.knee(), 5.0);
        assert_eq!(p.capacity(2), 80_000.0);
        assert_eq!(p.capacity(8), 200_000.0);
        let md = markdown(&files, "# t");
        assert!(md.contains("| 6 | 200,000 | one Redis core |"), "{md}");
    }

    #[test]
    fn the_chart_is_an_svg_with_both_panels() {
        let files = vec![RunFile {
            rows: (1..=3)
                .map(|n| row("checks", n, 1000.0 * n as f64, "haproxy", "session-server"))
                .collect(),
            ..RunFile::default()
        }];
        let dir = std::env::temp_dir().join(format!("loadtest-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scaling.svg");
        chart(&files, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("throughput") && svg.contains("latency") && svg.contains("p99.9"));
        assert!(
            !svg.contains("projected"),
            "no projection without measured costs"
        );
        assert!(svg.contains("<polyline"), "lines drawn");
    }
}
