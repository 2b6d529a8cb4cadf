//! The book's pages that cannot be allowed to drift: the configuration reference rendered from
//! the settings' definitions, the HTTP API reference rendered from the committed OpenAPI
//! documents, the metrics reference rendered from the metrics the server registers, and the curl
//! walkthroughs of Getting started and the README, run for real.
//!
//! After an intended change of the settings, the API or the metrics, regenerate the pages and
//! review the diff:
//!
//!     UPDATE_DOCS=1 cargo test -p session-server --test api docs::

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use session_server::metrics::Metrics;
use test_support::free_port;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compares a generated page with its committed copy, or writes it under `UPDATE_DOCS`: by a
/// rename, so that the tests reading the book meanwhile never see half a page.
fn assert_current(relative: &str, generated: &str) {
    let path = workspace().join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        if committed != generated {
            let fresh = path.with_extension("md.new");
            std::fs::write(&fresh, generated).unwrap();
            std::fs::rename(&fresh, &path).unwrap();
        }
        return;
    }
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{relative} is stale (first difference at line {}); run \
             `UPDATE_DOCS=1 cargo test -p session-server --test api docs::` and review the diff",
            line + 1
        );
    }
}

#[test]
fn the_configuration_reference_renders_the_settings() {
    assert_current(
        "docs/src/reference/configuration.md",
        &session_server::config::reference::markdown(),
    );
}

#[test]
fn the_api_reference_pages_render_the_committed_openapi_documents() {
    for (listener, title) in [("public", "Public listener"), ("admin", "Admin listener")] {
        let text = std::fs::read_to_string(workspace().join(format!("openapi/{listener}.json")))
            .expect("committed document");
        let document: Value = serde_json::from_str(&text).expect("valid JSON");
        let page = render_openapi(&document, title, listener);
        // Every operation and every schema has its section.
        for path in document["paths"].as_object().unwrap().keys() {
            assert!(page.contains(&format!(" {path}`")), "{path} missing");
        }
        assert_current(&format!("docs/src/reference/api/{listener}.md"), &page);
    }
}

#[test]
fn the_metrics_reference_lists_every_registered_metric() {
    let metrics = Metrics::new();
    let catalogue = metrics.catalogue();
    assert!(catalogue.len() >= 15, "every metric is in the catalogue");
    let mut page = String::from(
        "# Metrics\n\n\
         Every listener serves `GET /metrics` in the Prometheus text format. Labels never carry \
         tokens, usernames or user ids: only listeners, route patterns (not paths), methods, \
         status codes and outcome names.\n\n\
         This page is generated from the metrics the server registers \
         (`session-server/src/metrics.rs`).\n\n\
         | metric | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for m in catalogue {
        let labels = m
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            page,
            "| `{}` | {} | {} | {} |",
            m.name,
            m.kind,
            labels,
            cell(&m.help)
        )
        .unwrap();
    }
    // The rendered names are the scraped ones.
    metrics.sessions_created.inc();
    assert!(
        metrics
            .render()
            .contains("session_sessions_created_total 1")
    );
    assert!(page.contains("`session_sessions_created_total`"));
    assert_current("docs/src/reference/metrics.md", &page);
}

/// Rust doc comments become the document's descriptions, with their intra-doc links
/// (`` [`Name`] ``): on the page they link to the schema of that name, or become plain code.
fn prose(text: &str, document: &Value) -> String {
    let schemas = &document["components"]["schemas"];
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("`]") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let tail = &after[end + 2..];
        if tail.starts_with('(') {
            // Already a Markdown link.
            out.push_str(&rest[start..start + 2 + end + 2]);
        } else if schemas.get(name).is_some() {
            out.push_str(&format!("[`{name}`](#{})", anchor(name)));
        } else {
            out.push_str(&format!("`{name}`"));
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A Markdown table cell: one line, `|` escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn anchor(schema: &str) -> String {
    format!("schema-{}", schema.to_lowercase())
}

fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// A schema in a few words: its type, or a link to the named schema.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = ref_name(r);
        return format!("[{name}](#{})", anchor(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            let joiner = if key == "allOf" { " and " } else { " or " };
            return parts.iter().map(type_of).collect::<Vec<_>>().join(joiner);
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let base = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => "any".to_owned(),
    };
    if base.contains("array")
        && let Some(items) = schema.get("items")
    {
        return base.replace("array", &format!("array of {}", type_of(items)));
    }
    match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{base} ({format})"),
        None => base,
    }
}

/// The constraints of a schema, in words.
fn constraints(schema: &Value) -> String {
    let mut out = Vec::new();
    for (key, words) in [
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ] {
        if let Some(v) = schema.get(key) {
            out.push(words.replace("{}", &v.to_string()));
        }
    }
    // Long patterns (hosts, URLs) are described in words by the field's description; the
    // document has them in full.
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && p.len() <= 40
        && !p.contains('|')
    {
        out.push(format!("pattern `{p}`"));
    }
    if let Some(d) = schema.get("default") {
        out.push(format!("default `{d}`"));
    }
    out.join(", ")
}

fn describe(schema: &Value) -> String {
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let limits = constraints(schema);
    cell(&match (description.is_empty(), limits.is_empty()) {
        (_, true) => description.to_owned(),
        (true, false) => format!("({limits})"),
        (false, false) => format!("{description} ({limits})"),
    })
}

/// Renders one OpenAPI document as a static page: every operation, then every schema.
fn render_openapi(document: &Value, title: &str, listener: &str) -> String {
    let mut page = String::new();
    let info = &document["info"];
    writeln!(page, "# {title}\n").unwrap();
    writeln!(
        page,
        "{} Version {}.\n",
        info["description"].as_str().unwrap_or_default(),
        info["version"].as_str().unwrap_or_default()
    )
    .unwrap();
    writeln!(
        page,
        "This page is generated from `openapi/{listener}.json`, the document the listener serves \
         at `/openapi.json`; every field, status and error code of the API is in it. Overview: \
         [HTTP API](../http-api.md).\n"
    )
    .unwrap();
    if let Some(schemes) = document["components"]["securitySchemes"].as_object() {
        writeln!(page, "## Authentication\n\n| name | how |\n|---|---|").unwrap();
        for (name, scheme) in schemes {
            let how = match scheme["type"].as_str() {
                Some("apiKey") => format!(
                    "{} `{}`",
                    scheme["in"].as_str().unwrap_or_default(),
                    scheme["name"].as_str().unwrap_or_default()
                ),
                Some("http") => format!("HTTP `{}`", scheme["scheme"].as_str().unwrap_or_default()),
                other => other.unwrap_or_default().to_owned(),
            };
            let description = scheme["description"].as_str().unwrap_or_default();
            writeln!(page, "| `{name}` | {how}. {} |", cell(description)).unwrap();
        }
        page.push('\n');
    }
    writeln!(page, "## Operations\n").unwrap();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, op) in operations.as_object().unwrap() {
            if !matches!(
                method.as_str(),
                "get" | "post" | "put" | "patch" | "delete" | "head" | "options"
            ) {
                continue;
            }
            render_operation(&mut page, path, method, op);
        }
    }
    writeln!(page, "## Schemas\n").unwrap();
    if let Some(schemas) = document["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            render_schema(&mut page, name, schema);
        }
    }
    prose(page.trim_end(), document) + "\n"
}

fn render_operation(page: &mut String, path: &str, method: &str, op: &Value) {
    let summary = op["summary"].as_str().unwrap_or_default();
    writeln!(page, "### `{} {path}`\n", method.to_uppercase()).unwrap();
    if !summary.is_empty() {
        writeln!(page, "{summary}\n").unwrap();
    }
    if let Some(description) = op["description"].as_str() {
        writeln!(page, "{description}\n").unwrap();
    }
    let security = match op.get("security").and_then(Value::as_array) {
        None => "none".to_owned(),
        Some(alternatives) if alternatives.is_empty() => "none".to_owned(),
        Some(alternatives) => alternatives
            .iter()
            .map(|a| {
                let names: Vec<String> = a
                    .as_object()
                    .map(|o| o.keys().map(|k| format!("`{k}`")).collect())
                    .unwrap_or_default();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(" and ")
                }
            })
            .collect::<Vec<_>>()
            .join(" or "),
    };
    writeln!(page, "Authentication: {security}.\n").unwrap();
    if let Some(parameters) = op["parameters"].as_array() {
        writeln!(
            page,
            "| parameter | in | required | type | meaning |\n|---|---|---|---|---|"
        )
        .unwrap();
        for p in parameters {
            writeln!(
                page,
                "| `{}` | {} | {} | {} | {} |",
                p["name"].as_str().unwrap_or_default(),
                p["in"].as_str().unwrap_or_default(),
                if p["required"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                type_of(&p["schema"]),
                cell(&format!(
                    "{} {}",
                    p["description"].as_str().unwrap_or_default(),
                    constraints(&p["schema"])
                ))
            )
            .unwrap();
        }
        page.push('\n');
    }
    if let Some(body) = op.get("requestBody") {
        let required = if body["required"].as_bool() == Some(true) {
            "required"
        } else {
            "optional"
        };
        writeln!(page, "Request body ({required}):\n").unwrap();
        for (media, content) in body["content"].as_object().into_iter().flatten() {
            writeln!(page, "- `{media}`: {}", type_of(&content["schema"])).unwrap();
        }
        if let Some(description) = body["description"].as_str() {
            writeln!(page, "\n{description}").unwrap();
        }
        page.push('\n');
    }
    writeln!(page, "| status | body | meaning |\n|---|---|---|").unwrap();
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let bodies = response["content"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(media, content)| match content.get("schema") {
                        Some(schema) => format!("`{media}` {}", type_of(schema)),
                        None => format!("`{media}`"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| "none".to_owned());
        let mut meaning = response["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(headers) = response["headers"].as_object() {
            let names: Vec<String> = headers.keys().map(|h| format!("`{h}`")).collect();
            meaning.push_str(&format!(" (headers: {})", names.join(", ")));
        }
        writeln!(page, "| {status} | {bodies} | {} |", cell(&meaning)).unwrap();
    }
    page.push('\n');
}

fn render_schema(page: &mut String, name: &str, schema: &Value) {
    writeln!(page, "### {name} {{#{}}}\n", anchor(name)).unwrap();
    if let Some(description) = schema["description"].as_str() {
        writeln!(page, "{description}\n").unwrap();
    }
    let Some(properties) = schema["properties"].as_object() else {
        writeln!(page, "Type: {}.\n", type_of(schema)).unwrap();
        let limits = constraints(schema);
        if !limits.is_empty() {
            writeln!(page, "Constraints: {limits}.\n").unwrap();
        }
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    writeln!(
        page,
        "| field | type | required | meaning |\n|---|---|---|---|"
    )
    .unwrap();
    for (field, property) in properties {
        writeln!(
            page,
            "| `{field}` | {} | {} | {} |",
            cell(&type_of(property)),
            if required.contains(&field.as_str()) {
                "yes"
            } else {
                "no"
            },
            describe(property)
        )
        .unwrap();
    }
    page.push('\n');
}

/// The shell block that follows `<!-- walkthrough -->` in a Markdown file.
fn walkthrough_in(relative: &str) -> String {
    let text = std::fs::read_to_string(workspace().join(relative)).unwrap();
    let after = text
        .split_once("<!-- walkthrough -->")
        .unwrap_or_else(|| panic!("{relative} has no <!-- walkthrough --> marker"))
        .1;
    let block = after
        .split_once("```sh\n")
        .expect("a ```sh block after the marker")
        .1;
    block
        .split_once("```")
        .expect("a closed block")
        .0
        .to_owned()
}

/// The server as the walkthrough starts it (the real binary, embedded store, development
/// cookie, an API key made by `api-key new`), on free ports; killed on drop.
struct Served {
    child: std::process::Child,
    public: u16,
    admin: u16,
    key: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_as_the_walkthrough_says() -> Served {
    let binary = env!("CARGO_BIN_EXE_session-server");
    let printed = Command::new(binary)
        .args(["api-key", "new"])
        .output()
        .expect("api-key new runs");
    let printed = String::from_utf8(printed.stdout).unwrap();
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("api-key new prints a key and a digest")
    };
    let (key, digest) = (field("key:"), field("digest:"));
    let (public, admin) = (free_port(), free_port());
    let child = Command::new(binary)
        .env_clear()
        .env("SESSION_COOKIE_SECURE", "false")
        .env("SESSION_ADMIN_API_KEYS", digest)
        .env("SESSION_PUBLIC_ADDR", format!("127.0.0.1:{public}"))
        .env("SESSION_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("SESSION_ARGON2_MEMORY_KIB", "256")
        .env("SESSION_ARGON2_ITERATIONS", "1")
        .env("SESSION_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let served = Served {
        child,
        public,
        admin,
        key,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", served.admin)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", served.public)).is_err()
    {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    served
}

/// Runs a walkthrough with bash against the server, the way a reader would paste it.
fn run_walkthrough(script: &str, served: &Served) -> String {
    let script = script
        .replace("localhost:8080", &format!("127.0.0.1:{}", served.public))
        .replace("localhost:8081", &format!("127.0.0.1:{}", served.admin))
        .replace("<key>", &served.key);
    let dir = std::env::temp_dir().join(format!("walkthrough-{}", served.public));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir)
        .output()
        .expect("bash runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the walkthrough failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let served = serve_as_the_walkthrough_says();
    let out = run_walkthrough(&walkthrough_in("README.md"), &served);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(r#""username":"alice""#), "{out}");
    assert!(lines[1].contains(r#""session":{"#), "login: {out}");
    assert!(
        lines[2].contains(r#""username":"alice""#),
        "who am I: {out}"
    );
    assert_eq!(&lines[3..], ["204", "401"], "logout, then who am I: {out}");
}

#[test]
fn the_getting_started_walkthrough_runs_as_written() {
    let served = serve_as_the_walkthrough_says();
    let out = run_walkthrough(&walkthrough_in("docs/src/getting-started/curl.md"), &served);
    for expected in [
        r#""username":"alice""#,
        r#""current":true"#,
        r#""revoked":1"#,
        r#""active":true"#,
        r#""active":false"#,
    ] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }
    assert!(
        out.trim_end().ends_with("204\n401"),
        "logout, then 401:\n{out}"
    );
}

/// The README is outside the book, so the book's link check does not see it.
#[test]
fn the_readme_links_to_files_that_exist() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let mut checked = 0;
    for link in readme.split("](").skip(1) {
        let target = link.split(')').next().unwrap_or_default();
        if target.starts_with("http://") || target.starts_with("https://") {
            continue;
        }
        let path = target.split('#').next().unwrap_or_default();
        assert!(
            workspace().join(path).exists(),
            "README.md links to {target}, which does not exist"
        );
        checked += 1;
    }
    assert!(
        checked > 20,
        "the README links into the book ({checked} links)"
    );
}

/// The id mdBook gives a heading: lowercase, spaces to `-`, other punctuation dropped; or the
/// explicit `{#id}`.
fn heading_id(heading: &str) -> String {
    let text = heading.trim_start_matches('#').trim();
    if let Some((_, explicit)) = text.rsplit_once("{#") {
        return explicit.trim_end_matches('}').to_owned();
    }
    text.chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() => Some(c.to_lowercase().next().unwrap_or(c)),
            '_' | '-' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

fn book_pages(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            book_pages(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// mdbook-linkcheck checks that every linked page exists, not that the heading a link points to
/// does: this does.
#[test]
fn every_anchor_the_book_links_to_exists() {
    let src = workspace().join("docs/src");
    let mut pages = Vec::new();
    book_pages(&src, &mut pages);
    let ids = |page: &Path| -> Vec<String> {
        let mut in_code = false;
        std::fs::read_to_string(page)
            .unwrap()
            .lines()
            .filter(|line| {
                if line.starts_with("```") {
                    in_code = !in_code;
                }
                !in_code && line.starts_with('#')
            })
            .map(heading_id)
            .collect()
    };
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap_or_default();
            let Some((file, fragment)) = target.split_once('#') else {
                continue;
            };
            if file.starts_with("http") {
                continue;
            }
            let linked = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            assert!(
                ids(&linked).iter().any(|id| id == fragment),
                "{} links to {target}: no such heading",
                page.strip_prefix(&src).unwrap().display()
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "the book links to headings ({checked} links)");
}
