//! `loadtest run`: drive one topology through the scenarios, write a JSON result file.
//! `loadtest report`: turn the result files of a run into Markdown tables and an SVG chart.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::{Args, Parser, Subcommand};
use loadtest::{
    Result, report,
    results::RunFile,
    scenarios::{Context, Options},
};

#[derive(Parser)]
#[command(name = "loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios against one topology and write a JSON result file.
    Run(Box<RunArgs>),
    /// Write the Markdown report and the SVG chart of result files; print the tables.
    Report(ReportArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the load balancer (or of the one server): checks, logins and the web mix.
    #[arg(long)]
    target: String,
    /// Public base URL of each replica (repeat): revocations are checked on each.
    #[arg(long = "replica")]
    replica_urls: Vec<String>,
    /// Name of what is measured, e.g. session-server or actix-session.
    #[arg(long, default_value = "session-server")]
    name: String,
    /// Replica count to report (default: the number of --replica, at least 1).
    #[arg(long)]
    replicas: Option<u32>,
    /// `haproxy` (through the load balancer) or `direct`.
    #[arg(long, default_value = "haproxy")]
    via: String,
    /// Comma-separated: checks, logins, mix, revocation, pages.
    #[arg(long, default_value = "checks,logins,mix,revocation")]
    scenarios: String,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unmeasured checks before the checks scenario.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Connections (workers) for session checks.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Checks per second in the checks scenario; 0 = as fast as the server answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Live sessions logged in before the scenarios (the checks rotate over them).
    #[arg(long, default_value_t = 256)]
    sessions: usize,
    /// Users to register (session-server) and log in as: lt-u0, lt-u1, ...
    #[arg(long, default_value_t = 32)]
    users: usize,
    /// Log in as these users instead (e.g. the peers' alice,bob,carol).
    #[arg(long, value_delimiter = ',')]
    user_names: Vec<String>,
    /// Register the users first (`POST /v1/users`); the peers have fixed users.
    #[arg(long)]
    register: bool,
    /// Prefix of generated user names.
    #[arg(long, default_value = "lt-")]
    user_prefix: String,
    /// Concurrent logins in set-up and in the login storm.
    #[arg(long, default_value_t = 16)]
    login_concurrency: usize,
    /// Checks per second held during the login storm (before and during the logins).
    #[arg(long, default_value_t = 2000.0)]
    storm_check_rate: f64,
    /// Virtual users in the web mix.
    #[arg(long, default_value_t = 32)]
    mix_users: usize,
    /// Page views (session checks) per visit in the web mix.
    #[arg(long, default_value_t = 50)]
    page_views: usize,
    /// Most revocations in the revocation scenario (also bounded by --duration).
    #[arg(long, default_value_t = 300)]
    revocations: u64,
    /// Concurrent revocation workers.
    #[arg(long, default_value_t = 4)]
    revocation_workers: usize,
    /// Connections of background checks during the revocation scenario.
    #[arg(long, default_value_t = 16)]
    background_connections: usize,
    /// Most requests per phase (a second bound besides --duration).
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Origin header for state-changing requests (default: none, a non-browser client).
    #[arg(long)]
    origin: Option<String>,
    /// Redis to read INFO commandstats, cpu and memory from (host:port).
    #[arg(long)]
    redis: Option<String>,
    /// A process whose CPU time is charged to the requests: ROLE=PID (repeat; roles replica,
    /// haproxy).
    #[arg(long = "pid", value_parser = parse_pid)]
    pids: Vec<(String, u32)>,
    /// Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Where to write the JSON result file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A page for the `pages` scenario: LABEL=URL (repeat), fetched with the sessions' cookies.
    #[arg(long = "page", value_parser = parse_page)]
    pages: Vec<(String, String)>,
    /// A header sent with every page request: `Name: value` (repeat).
    #[arg(long = "page-header")]
    page_headers: Vec<String>,
}

#[derive(Args)]
struct ReportArgs {
    /// Result files written by `loadtest run`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Directory for results.md and scaling.svg.
    #[arg(long)]
    out_dir: PathBuf,
    /// Markdown put at the top of results.md (machine, date, command).
    #[arg(long)]
    preamble: Option<PathBuf>,
}

fn parse_pid(s: &str) -> std::result::Result<(String, u32), String> {
    let (role, pid) = s.split_once('=').ok_or("expected ROLE=PID")?;
    Ok((
        role.to_owned(),
        pid.parse().map_err(|_| "PID must be a number")?,
    ))
}

fn parse_page(s: &str) -> std::result::Result<(String, String), String> {
    let (label, url) = s.split_once('=').ok_or("expected LABEL=URL")?;
    if !url.starts_with("http://") {
        return Err("the URL must start with http://".into());
    }
    Ok((label.to_owned(), url.to_owned()))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 3600.0))
}

async fn run(args: RunArgs) -> Result<RunFile> {
    let scenarios: Vec<&str> = args.scenarios.split(',').map(str::trim).collect();
    for s in &scenarios {
        if !["checks", "logins", "mix", "revocation", "pages"].contains(s) {
            return Err(format!("unknown scenario {s:?}").into());
        }
    }
    let users = if args.user_names.is_empty() {
        (0..args.users.max(1))
            .map(|i| format!("{}u{i}", args.user_prefix))
            .collect()
    } else {
        args.user_names.clone()
    };
    let opts = Options {
        target: args.target.clone(),
        replicas: args
            .replicas
            .unwrap_or(args.replica_urls.len().max(1) as u32),
        replica_urls: args.replica_urls.clone(),
        name: args.name.clone(),
        via: args.via.clone(),
        origin: args.origin.clone(),
        duration: secs(args.duration),
        warmup: secs(args.warmup),
        connections: args.connections.max(1),
        rate: args.rate,
        sessions: args.sessions.max(1),
        users,
        register: args.register,
        login_concurrency: args.login_concurrency.max(1),
        storm_check_rate: args.storm_check_rate.max(1.0),
        mix_users: args.mix_users.max(1),
        page_views: args.page_views,
        revocations: args.revocations,
        revocation_workers: args.revocation_workers.max(1),
        background_connections: args.background_connections,
        max_requests: args.max_requests,
        user_prefix: args.user_prefix.clone(),
        pages: args.pages.clone(),
        page_headers: args.page_headers.clone(),
    };
    let probes = loadtest::probe::Probes {
        redis: args.redis.clone(),
        pids: args.pids.clone(),
        clk_tck: args.clk_tck.max(1),
    };
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (sessions, memory) = loadtest::scenarios::setup(&opts, &probes).await?;
    let ctx = Context {
        opts,
        probes,
        sessions: sessions.into(),
    };
    let mut file = RunFile {
        target: args.name.clone(),
        replicas: ctx.opts.replicas,
        via: args.via.clone(),
        started_unix,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        memory,
        ..RunFile::default()
    };
    for s in scenarios {
        let rows = match s {
            "checks" => ctx.session_checks().await?,
            "logins" => ctx.login_storm().await?,
            "mix" => ctx.web_mix().await?,
            "pages" => ctx.pages().await?,
            _ if !args.register => {
                file.skipped.push(
                    "revocation: needs users it may register (dedicated users per worker)".into(),
                );
                continue;
            }
            _ => ctx.revocation().await?,
        };
        file.rows.extend(rows);
    }
    Ok(file)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            let out = args.out.clone();
            match run(*args).await {
                Ok(file) => {
                    let files = std::slice::from_ref(&file);
                    if report::only_pages(files) {
                        println!("{}", report::pages_table(files));
                    } else {
                        println!("{}", report::main_table(files));
                    }
                    match out {
                        Some(path) => serde_json::to_vec_pretty(&file)
                            .map_err(Into::into)
                            .and_then(|json| std::fs::write(&path, json).map_err(Into::into)),
                        None => Ok(()),
                    }
                }
                Err(e) => Err(e),
            }
        }
        Command::Report(args) => write_report(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_report(args: ReportArgs) -> Result<()> {
    let files = args
        .files
        .iter()
        .map(|p| {
            let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_slice::<RunFile>(&text)
                .map_err(|e| format!("{}: {e}", p.display()).into())
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out_dir)?;
    let preamble = match &args.preamble {
        Some(p) => std::fs::read_to_string(p)?,
        None => "# Load test results".into(),
    };
    if report::only_pages(&files) {
        std::fs::write(
            args.out_dir.join("results.md"),
            report::pages_markdown(&files, &preamble),
        )?;
        println!("{}", report::pages_table(&files));
        return Ok(());
    }
    let charted = files
        .iter()
        .flat_map(|f| &f.rows)
        .any(|r| r.via != "direct" && r.scenario == "checks");
    if charted {
        report::chart(&files, &args.out_dir.join("scaling.svg"))?;
    }
    std::fs::write(
        args.out_dir.join("results.md"),
        report::markdown(&files, &preamble),
    )?;
    println!("{}", report::main_table(&files));
    if files.iter().any(|f| f.via == "direct") {
        println!("{}", report::peers_table(&files));
    }
    Ok(())
}
