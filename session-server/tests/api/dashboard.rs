//! The Grafana dashboard, `deploy/grafana/session-service.json`, against the metrics the server
//! registers: every panel has a query on the dashboard's data source, and every metric and label
//! a query names exists, so a renamed metric fails here rather than as an empty panel in Grafana.
//! `deploy/compose-test.sh` evaluates the same queries against a real Prometheus scraping the
//! compose stack (`deploy/grafana/dashboard.py check`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use session_server::metrics::{MetricDoc, Metrics};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/session-service.json"
);

/// Labels every scraped series carries, from Prometheus's target (not from the server).
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Series that Prometheus itself records for every target.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("the dashboard file");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every panel that draws (rows' nested panels included), with its title.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            out.push(panel);
        }
    }
    out
}

/// (where, PromQL) for every panel target and every query variable's selector.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            out.push((format!("panel {}", panel["title"]), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().expect("a query");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _label)| selector.to_owned())
                .unwrap_or_else(|| panic!("variable query {query}: label_values(selector, label)"));
            out.push((format!("variable {}", variable["name"]), inner));
        }
    }
    out
}

/// What a PromQL expression names: metric names, the labels of each selector (with the values
/// matched), and the labels of `by`/`without` clauses. A small scanner, enough for dashboards:
/// strings, durations and function calls are told apart from names by their delimiters.
#[derive(Debug, Default)]
struct Names {
    metrics: Vec<String>,
    /// (metric, label, matched value) for each matcher of a selector.
    matchers: Vec<(String, String, String)>,
    grouping: Vec<String>,
}

fn scan(expr: &str) -> Names {
    // Aggregations may put their `by` clause before the parenthesis: `sum by (le) (...)`.
    const KEYWORDS: [&str; 22] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Names::default();
    let mut i = 0;
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_ascii_alphanumeric() || "_:".contains(chars[*i])) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        let mut value = String::new();
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            value.push(chars[*i]);
            *i += 1;
        }
        *i += 1;
        value
    };
    let mut last_metric = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            string(&mut i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            // A selector: label op "value", ...
            i += 1;
            loop {
                skip_space(&mut i);
                if i >= chars.len() || chars[i] == '}' {
                    i += 1;
                    break;
                }
                if chars[i] == ',' {
                    i += 1;
                    continue;
                }
                let label = ident(&mut i);
                skip_space(&mut i);
                while i < chars.len() && "=!~".contains(chars[i]) {
                    i += 1;
                }
                skip_space(&mut i);
                let value = string(&mut i);
                names.matchers.push((last_metric.clone(), label, value));
            }
            last_metric.clear();
        } else if c.is_ascii_alphabetic() || c == '_' {
            let word = ident(&mut i);
            let mut j = i;
            skip_space(&mut j);
            let next = chars.get(j).copied();
            let label_list = [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ];
            if label_list.contains(&word.as_str()) && next == Some('(') {
                // by (a, b), on (a): label lists.
                i = j + 1;
                loop {
                    skip_space(&mut i);
                    match chars.get(i) {
                        Some(')') => {
                            i += 1;
                            break;
                        }
                        Some(',') => i += 1,
                        Some(_) => names.grouping.push(ident(&mut i)),
                        None => break,
                    }
                }
            } else if next == Some('(') || KEYWORDS.contains(&word.as_str()) {
                // A function or an operator keyword.
            } else {
                names.metrics.push(word.clone());
                last_metric = word;
            }
        } else if c.is_ascii_digit() {
            // A number (0.99, 1e3) or a duration.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The catalogue entry a scraped series name belongs to (a histogram's `_bucket`, `_sum` and
/// `_count` series belong to the histogram).
fn lookup<'a>(catalogue: &'a [MetricDoc], series: &str) -> Option<&'a MetricDoc> {
    catalogue.iter().find(|m| {
        m.name == series
            || (m.kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| series.strip_suffix(suffix) == Some(m.name.as_str())))
    })
}

#[test]
fn every_panel_of_the_dashboard_has_a_query_on_the_dashboards_data_source() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let variables: BTreeMap<&str, &Value> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(variables["datasource"]["type"], "datasource");
    assert_eq!(variables["datasource"]["query"], "prometheus");
    for name in TARGET_LABELS {
        assert_eq!(variables[name]["type"], "query", "a {name} variable");
    }
    let data_source = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = &panel["title"];
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "{title}: id taken"
        );
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (
            grid["x"].as_u64().unwrap(),
            grid["y"].as_u64().unwrap(),
            grid["w"].as_u64().unwrap(),
            grid["h"].as_u64().unwrap(),
        );
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {grid}");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(
                cells.insert(cell),
                "{title} overlaps another panel at {cell:?}"
            );
        }
        if panel["type"] == "row" {
            continue;
        }
        assert!(!title.as_str().unwrap_or_default().is_empty());
        assert_eq!(panel["datasource"], data_source, "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert_eq!(target["datasource"], data_source, "{title}");
            assert!(refs.insert(target["refId"].as_str().unwrap()), "{title}");
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: an empty query");
            // Every selector is filtered by the job and instance variables.
            let names = scan(expr);
            for metric in &names.metrics {
                for (label, value) in [("job", "$job"), ("instance", "$instance")] {
                    assert!(
                        names
                            .matchers
                            .iter()
                            .any(|(m, l, v)| m == metric && l == label && v == value),
                        "{title}: {metric} is not filtered by {label}=~\"{value}\" in {expr}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_dashboard_queries_only_metrics_and_labels_the_server_registers() {
    let metrics = Metrics::new();
    let catalogue = metrics.catalogue();
    let dashboard = dashboard();
    let queries = queries(&dashboard);
    let mut used = BTreeSet::new();
    for (place, expr) in &queries {
        let names = scan(expr);
        assert!(!names.metrics.is_empty(), "{place}: no metric in {expr}");
        let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        for metric in &names.metrics {
            if PROMETHEUS_SERIES.contains(&metric.as_str()) {
                continue;
            }
            let doc = lookup(catalogue, metric).unwrap_or_else(|| {
                panic!("{place}: {metric} is not a metric of the server (session-server/src/metrics.rs)")
            });
            used.insert(doc.name.clone());
            labels.extend(doc.labels.iter().map(String::as_str));
            if metric.ends_with("_bucket") {
                labels.insert("le");
            }
        }
        for (metric, label, value) in &names.matchers {
            let doc = lookup(catalogue, metric);
            let known = TARGET_LABELS.contains(&label.as_str())
                || doc.is_some_and(|d| d.labels.contains(label));
            assert!(known, "{place}: {metric} has no label {label}");
            // Outcome labels (result, reason, kind): each value matched is one the help names.
            if let Some(doc) =
                doc.filter(|_| !["job", "instance", "route"].contains(&label.as_str()))
            {
                for alternative in value.split('|') {
                    assert!(
                        doc.help
                            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                            .any(|word| word == alternative),
                        "{place}: {metric}{{{label}}} never takes the value {alternative:?} ({})",
                        doc.help
                    );
                }
            }
        }
        for label in &names.grouping {
            assert!(
                labels.contains(label.as_str()),
                "{place}: no metric of {expr} has the label {label}"
            );
        }
    }
    // The panels the dashboard exists for: checks and their latency, logins, ends, the feed's
    // outbox, the clock, store errors and unconfirmed writes.
    for name in [
        "session_http_requests_total",
        "session_http_request_duration_seconds",
        "session_logins_total",
        "session_sessions_revoked_total",
        "session_events_pending",
        "session_clock_offset_seconds",
        "session_store_errors_total",
        "session_store_ends_unconfirmed_total",
    ] {
        assert!(used.contains(name), "the dashboard has no panel on {name}");
    }
}

#[test]
fn the_scanner_tells_metrics_labels_and_functions_apart() {
    let names = scan(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(session_http_request_duration_seconds_bucket{job=~"$job", route=~"/v1/session|a{b}"}[$__rate_interval]))) / on (job) up"#,
    );
    assert_eq!(
        names.metrics,
        ["session_http_request_duration_seconds_bucket", "up"]
    );
    assert_eq!(names.grouping, ["le", "route", "job"]);
    assert_eq!(names.matchers.len(), 2);
    assert_eq!(names.matchers[1].1, "route");
    assert_eq!(names.matchers[1].2, "/v1/session|a{b}");
}
