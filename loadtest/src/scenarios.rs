//! The scenarios: session checks, login storm, realistic web mix, revocation across replicas,
//! and pages (any URLs, e.g. an app behind a forward-auth proxy, fetched with the sessions).
//!
//! Every phase is bounded twice, by time and by request count (a [`Budget`]); every request by
//! [`crate::api::REQUEST_TIMEOUT`]. Workers own their connection and their [`Recorder`]; recorders
//! are merged when the phase ends.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header::HeaderValue};
use tokio::task::JoinSet;

use crate::{
    Result,
    api::{CheckConn, Conn, Session, password_for},
    probe::{Probes, Redis},
    progress::Progress,
    results::{Memory, Row},
    stats::{Budget, Live, Recorder, summarize},
};

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where checks, logins and the web mix go (the load balancer, or the one server).
    pub target: String,
    /// Each replica's own public URL (revocation checks go to each).
    pub replica_urls: Vec<String>,
    pub name: String,
    pub replicas: u32,
    pub via: String,
    /// `Origin` sent with state-changing requests; none: the server treats the tool as a
    /// non-browser client.
    pub origin: Option<String>,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    /// Checks per second for the `checks` scenario; 0 = flat out.
    pub rate: f64,
    pub sessions: usize,
    pub users: Vec<String>,
    pub register: bool,
    pub login_concurrency: usize,
    pub storm_check_rate: f64,
    pub mix_users: usize,
    pub page_views: usize,
    pub revocations: u64,
    pub revocation_workers: usize,
    pub background_connections: usize,
    pub max_requests: u64,
    pub user_prefix: String,
    /// The `pages` scenario: (label, URL) pairs, each fetched in a phase of its own.
    pub pages: Vec<(String, String)>,
    /// `Name: value` headers sent with every page request.
    pub page_headers: Vec<String>,
}

/// Shared by the scenarios of one run.
pub struct Context {
    pub opts: Options,
    pub probes: Probes,
    pub sessions: Arc<Vec<Session>>,
}

fn outcome(result: std::result::Result<StatusCode, String>, expect: u16) -> Option<String> {
    match result {
        Ok(s) if s.as_u16() == expect => None,
        Ok(s) => Some(format!("HTTP {}", s.as_u16())),
        Err(e) => Some(e),
    }
}

/// Runs `n` jobs on `concurrency` tasks; job `i` gets a connection of its task.
async fn concurrently<T, F, Fut>(
    base: &str,
    origin: Option<&str>,
    n: usize,
    concurrency: usize,
    job: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (job, next, conn) = (job.clone(), next.clone(), Conn::new(base, origin)?);
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, crate::Error>(out);
                }
                out.push((i, job(conn.clone(), i).await?));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        all.extend(done??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

/// A login that the hashing pool refused for now (503 busy) is tried again, a few times.
async fn login_with_retry(conn: &Conn, user: &str) -> Result<Session> {
    let mut last = String::new();
    for attempt in 0..5u32 {
        match conn.login(user, &password_for(user)).await {
            Ok(s) => return Ok(s),
            Err(e) if e == "503" => {
                last = e;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => return Err(format!("login as {user} at {}: {e}", conn.base()).into()),
        }
    }
    Err(format!("login as {user} at {}: {last} five times", conn.base()).into())
}

/// Registers the users (when asked) and logs in the sessions the checks use; measures Redis
/// memory per session on the way.
pub async fn setup(opts: &Options, probes: &Probes) -> Result<(Vec<Session>, Option<Memory>)> {
    let origin = opts.origin.as_deref();
    if opts.register {
        let users = Arc::new(opts.users.clone());
        let started = Instant::now();
        concurrently(
            &opts.target,
            origin,
            users.len(),
            opts.login_concurrency,
            move |conn, i| {
                let users = users.clone();
                async move { conn.register(&users[i], &password_for(&users[i])).await }
            },
        )
        .await?;
        eprintln!(
            "{:>32}: {} users in {:.1} s",
            "setup: register",
            opts.users.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let mut redis = match &probes.redis {
        Some(addr) => Some(Redis::connect(addr).await?),
        None => None,
    };
    let before = match redis.as_mut() {
        Some(r) => Some(r.used_memory().await?),
        None => None,
    };
    let users = Arc::new(opts.users.clone());
    let started = Instant::now();
    let sessions = concurrently(
        &opts.target,
        origin,
        opts.sessions,
        opts.login_concurrency,
        move |conn, i| {
            let users = users.clone();
            async move { login_with_retry(&conn, &users[i % users.len()]).await }
        },
    )
    .await?;
    eprintln!(
        "{:>32}: {} sessions in {:.1} s",
        "setup: log in",
        sessions.len(),
        started.elapsed().as_secs_f64()
    );
    let memory = match (redis.as_mut(), before) {
        (Some(r), Some(before)) => {
            let after = r.used_memory().await?;
            Some(Memory {
                users: opts.users.len() as u64,
                sessions: sessions.len() as u64,
                used_memory_before: before,
                used_memory_after: after,
                bytes_per_session: (after as f64 - before as f64) / sessions.len().max(1) as f64,
                keys_after: r.dbsize().await?,
                by_kind: r.memory_by_kind().await?,
            })
        }
        _ => None,
    };
    Ok((sessions, memory))
}

/// Session checks on `base` by `conns` workers, flat out (`rate` 0) or at `rate` per second in
/// total (open loop: latency counts from the moment each request was due, so a stalled server
/// is not hidden by the generator waiting for it). Stops on the budget or on `stop`.
#[allow(clippy::too_many_arguments)]
/// Who-am-I (`GET /v1/session`) on the server at `base`.
fn session_url(base: &str) -> String {
    format!("{}/v1/session", base.trim_end_matches('/'))
}

/// `GET url` with the sessions' cookies, expecting 200 (session checks, or any page).
#[allow(clippy::too_many_arguments)]
async fn checks(
    url: &str,
    headers: &[String],
    sessions: Arc<Vec<Session>>,
    conns: usize,
    rate: f64,
    budget: Arc<Budget>,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> Result<Recorder> {
    let mut set = JoinSet::new();
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(conns as f64 / rate));
    let cookies: Arc<Vec<HeaderValue>> = Arc::new(
        sessions
            .iter()
            .map(|s| HeaderValue::from_str(&s.cookie))
            .collect::<std::result::Result<_, _>>()?,
    );
    for w in 0..conns {
        let mut conn = CheckConn::page(url)?.with_headers(headers)?;
        let (cookies, budget, live, stop) =
            (cookies.clone(), budget.clone(), live.clone(), stop.clone());
        set.spawn(async move {
            let mut rec = Recorder::default();
            let mut next =
                Instant::now() + interval.map_or(Duration::ZERO, |i| i * w as u32 / conns as u32);
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) && budget.take() {
                if interval.is_some() {
                    tokio::time::sleep_until(next.into()).await;
                }
                let due = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                let cookie = &cookies[(w + k * conns) % cookies.len()];
                let result = conn.check(cookie).await;
                rec.record(&live, "check", due.elapsed(), outcome(result, 200));
                k += 1;
                if let Some(i) = interval {
                    next += i;
                }
            }
            rec
        });
    }
    let mut total = Recorder::default();
    while let Some(r) = set.join_next().await {
        total.merge(r?);
    }
    Ok(total)
}

impl Context {
    fn row(&self, scenario: &str, rec: &Recorder, seconds: f64) -> Row {
        let requests = rec.all.len();
        Row {
            target: self.opts.name.clone(),
            scenario: scenario.to_owned(),
            replicas: self.opts.replicas,
            via: self.opts.via.clone(),
            requests,
            seconds,
            rate: requests as f64 / seconds.max(1e-9),
            latency: summarize(&rec.all),
            errors: rec.error_count(),
            error_kinds: rec.errors.clone(),
            revoked_accepted: None,
            revoked_checks: None,
            ops: rec.op_latencies(),
            ..Row::default()
        }
    }

    fn budget(&self, duration: Duration) -> Arc<Budget> {
        Arc::new(Budget::new(duration, self.opts.max_requests))
    }

    async fn check_phase(
        &self,
        label: &str,
        rate: f64,
        duration: Duration,
    ) -> Result<(Recorder, f64)> {
        let live = Arc::new(Live::default());
        let progress = Progress::start(label, duration, live.clone());
        let started = Instant::now();
        let rec = checks(
            &session_url(&self.opts.target),
            &[],
            self.sessions.clone(),
            self.opts.connections,
            rate,
            self.budget(duration),
            live,
            Arc::new(AtomicBool::new(false)),
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        progress.finish();
        Ok((rec, secs))
    }

    /// Scenario 1: many live sessions, `GET /v1/session`, at `rate` or flat out.
    pub async fn session_checks(&self) -> Result<Vec<Row>> {
        if !self.opts.warmup.is_zero() {
            self.check_phase("checks: warm-up", self.opts.rate, self.opts.warmup)
                .await?;
        }
        let before = self.probes.snapshot().await?;
        let (rec, secs) = self
            .check_phase("checks", self.opts.rate, self.opts.duration)
            .await?;
        let after = self.probes.snapshot().await?;
        let mut row = self.row("checks", &rec, secs);
        self.probes
            .delta(&before, &after)
            .apply(&mut row, rec.all.len());
        row.offered_rate = self.opts.rate;
        row.connections = self.opts.connections as u32;
        Ok(vec![row])
    }

    /// Scenario 5: each of `pages` in a phase of its own (after a warm-up), flat out or at
    /// `rate`, over `connections`, rotating over the sessions' cookies; every answer must be 200.
    pub async fn pages(&self) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        for (label, url) in &self.opts.pages {
            let phase = |duration| {
                let live = Arc::new(Live::default());
                let progress = Progress::start(label, duration, live.clone());
                let rec = checks(
                    url,
                    &self.opts.page_headers,
                    self.sessions.clone(),
                    self.opts.connections,
                    self.opts.rate,
                    self.budget(duration),
                    live,
                    Arc::new(AtomicBool::new(false)),
                );
                async move {
                    let rec = rec.await;
                    progress.finish();
                    rec
                }
            };
            if !self.opts.warmup.is_zero() {
                phase(self.opts.warmup).await?;
            }
            let before = self.probes.snapshot().await?;
            let started = Instant::now();
            let rec = phase(self.opts.duration).await?;
            let secs = started.elapsed().as_secs_f64();
            let after = self.probes.snapshot().await?;
            let mut row = self.row(&format!("page: {label}"), &rec, secs);
            self.probes
                .delta(&before, &after)
                .apply(&mut row, rec.all.len());
            row.offered_rate = self.opts.rate;
            row.connections = self.opts.connections as u32;
            rows.push(row);
        }
        Ok(rows)
    }

    /// Scenario 2: checks at a fixed rate, first alone, then while `login_concurrency` clients
    /// log in flat out (saturating the password-hashing pools). Checks should keep their latency:
    /// hashing runs on its own bounded threads.
    pub async fn login_storm(&self) -> Result<Vec<Row>> {
        let rate = self.opts.storm_check_rate;
        let before = self.probes.snapshot().await?;
        let (alone, alone_secs) = self
            .check_phase("storm: checks alone", rate, self.opts.duration)
            .await?;
        let mid = self.probes.snapshot().await?;
        let alone_delta = self.probes.delta(&before, &mid);

        let live = Arc::new(Live::default());
        let progress = Progress::start("storm: checks + logins", self.opts.duration, live.clone());
        let budget = self.budget(self.opts.duration);
        let started = Instant::now();
        let url = session_url(&self.opts.target);
        let check_task = checks(
            &url,
            &[],
            self.sessions.clone(),
            self.opts.connections,
            rate,
            budget.clone(),
            live.clone(),
            Arc::new(AtomicBool::new(false)),
        );
        let login_task = self.logins(budget.clone(), live.clone());
        // Each load's own span: in-flight logins may outlast the checks' deadline.
        let ((during, check_secs), (logins, secs)) =
            tokio::join!(timed(started, check_task), timed(started, login_task));
        let (during, logins) = (during?, logins?);
        progress.finish();
        let after = self.probes.snapshot().await?;

        let mut rows = Vec::new();
        let mut a = self.row("storm: checks alone", &alone, alone_secs);
        alone_delta.apply(&mut a, alone.all.len());
        a.offered_rate = rate;
        a.connections = self.opts.connections as u32;
        rows.push(a);
        let mut d = self.row("storm: checks + logins", &during, check_secs);
        d.offered_rate = rate;
        d.connections = self.opts.connections as u32;
        rows.push(d);
        // What the logins cost: the phase's cost minus that of the same check rate alone.
        let mut l = self.row("storm: logins", &logins, secs);
        let login_delta = self
            .probes
            .delta(&mid, &after)
            .minus(&alone_delta, secs / alone_secs.max(1e-9));
        login_delta.apply(&mut l, logins.all.len());
        l.connections = self.opts.login_concurrency as u32;
        rows.push(l);
        Ok(rows)
    }

    /// Logins flat out by `login_concurrency` clients until the budget ends.
    async fn logins(&self, budget: Arc<Budget>, live: Arc<Live>) -> Result<Recorder> {
        let mut set = JoinSet::new();
        let users = Arc::new(self.opts.users.clone());
        for w in 0..self.opts.login_concurrency {
            let conn = Conn::new(&self.opts.target, self.opts.origin.as_deref())?;
            let (users, budget, live) = (users.clone(), budget.clone(), live.clone());
            set.spawn(async move {
                let mut rec = Recorder::default();
                let mut k = w;
                while !budget.expired() {
                    let user = &users[k % users.len()];
                    let started = Instant::now();
                    let result = conn.login(user, &password_for(user)).await;
                    rec.record(&live, "login", started.elapsed(), result.err());
                    k += 1;
                }
                rec
            });
        }
        let mut total = Recorder::default();
        while let Some(r) = set.join_next().await {
            total.merge(r?);
        }
        Ok(total)
    }

    /// Scenario 3: a realistic web mix. Each virtual user: log in, `page_views` page views (each
    /// a session check), list devices; every fourth visit also signs in a second device and
    /// revokes it from the first (which must then be refused); log out (then refused too).
    pub async fn web_mix(&self) -> Result<Vec<Row>> {
        let live = Arc::new(Live::default());
        let budget = self.budget(self.opts.duration);
        let before = self.probes.snapshot().await?;
        let progress = Progress::start("web mix", self.opts.duration, live.clone());
        let started = Instant::now();
        let mut set = JoinSet::new();
        let users = Arc::new(self.opts.users.clone());
        let page_views = self.opts.page_views;
        for w in 0..self.opts.mix_users {
            let conn = Conn::new(&self.opts.target, self.opts.origin.as_deref())?;
            let (users, budget, live) = (users.clone(), budget.clone(), live.clone());
            set.spawn(async move {
                let mut rec = Recorder::default();
                let user = users[w % users.len()].clone();
                let password = password_for(&user);
                let mut visit = 0usize;
                'visits: while budget.take() {
                    visit += 1;
                    let t = Instant::now();
                    let a = match conn.login(&user, &password).await {
                        Ok(s) => {
                            rec.record(&live, "login", t.elapsed(), None);
                            s
                        }
                        Err(e) => {
                            rec.record(&live, "login", t.elapsed(), Some(e));
                            continue;
                        }
                    };
                    for _ in 0..page_views {
                        if !budget.take() {
                            break 'visits;
                        }
                        let t = Instant::now();
                        let r = conn.check(&a.cookie).await;
                        rec.record(&live, "page view", t.elapsed(), outcome(r, 200));
                    }
                    let t = Instant::now();
                    let r = conn.list(&a.cookie).await;
                    rec.record(&live, "list devices", t.elapsed(), outcome(r, 200));
                    if visit.is_multiple_of(4) {
                        let t = Instant::now();
                        match conn.login(&user, &password).await {
                            Ok(b) => {
                                rec.record(&live, "login", t.elapsed(), None);
                                if let Some(handle) = &b.handle {
                                    let t = Instant::now();
                                    let r = conn.revoke_handle(&a.cookie, handle).await;
                                    rec.record(
                                        &live,
                                        "revoke device",
                                        t.elapsed(),
                                        outcome(r, 204),
                                    );
                                    let t = Instant::now();
                                    let r = conn.check(&b.cookie).await;
                                    rec.revoked_checks += 1;
                                    if matches!(r, Ok(StatusCode::OK)) {
                                        rec.revoked_accepted += 1;
                                    }
                                    rec.record(
                                        &live,
                                        "check revoked",
                                        t.elapsed(),
                                        outcome(r, 401),
                                    );
                                }
                            }
                            Err(e) => rec.record(&live, "login", t.elapsed(), Some(e)),
                        }
                    }
                    let t = Instant::now();
                    let r = conn.logout(&a.cookie).await;
                    rec.record(&live, "logout", t.elapsed(), outcome(r, 204));
                    let t = Instant::now();
                    let r = conn.check(&a.cookie).await;
                    rec.revoked_checks += 1;
                    if matches!(r, Ok(StatusCode::OK)) {
                        rec.revoked_accepted += 1;
                    }
                    rec.record(&live, "check revoked", t.elapsed(), outcome(r, 401));
                }
                rec
            });
        }
        let mut rec = Recorder::default();
        while let Some(r) = set.join_next().await {
            rec.merge(r?);
        }
        let secs = started.elapsed().as_secs_f64();
        progress.finish();
        let after = self.probes.snapshot().await?;
        let mut row = self.row("web mix", &rec, secs);
        self.probes
            .delta(&before, &after)
            .apply(&mut row, rec.all.len());
        row.revoked_accepted = Some(rec.revoked_accepted);
        row.revoked_checks = Some(rec.revoked_checks);
        row.connections = self.opts.mix_users as u32;
        Ok(vec![row])
    }

    /// Scenario 4: revocation correctness under load. While background checks run through the
    /// load balancer, each worker repeatedly: logs in through one replica; checks the new session
    /// on every replica (each must accept it); revokes it through another replica (logout, end by
    /// handle, or end all others, in turn); and right after the revocation's answer checks it on
    /// every other replica, polling until refused (at most 2 s). A refused-later session counts
    /// as revoked-but-accepted; the propagation time is from the revocation's answer to the
    /// refusal.
    pub async fn revocation(&self) -> Result<Vec<Row>> {
        let replicas: Vec<String> = if self.opts.replica_urls.is_empty() {
            vec![self.opts.target.clone()]
        } else {
            self.opts.replica_urls.clone()
        };
        let origin = self.opts.origin.clone();
        // Dedicated users: "end all others" must not end sessions the background load uses.
        let users: Vec<String> = (0..self.opts.revocation_workers)
            .map(|w| format!("{}rv{w}", self.opts.user_prefix))
            .collect();
        for u in &users {
            Conn::new(&replicas[0], origin.as_deref())?
                .register(u, &password_for(u))
                .await?;
        }
        let live = Arc::new(Live::default());
        let bg_live = Arc::new(Live::default());
        let budget = Arc::new(Budget::new(self.opts.duration, self.opts.revocations));
        let stop = Arc::new(AtomicBool::new(false));
        let before = self.probes.snapshot().await?;
        let progress = Progress::start("revocation", self.opts.duration, live.clone());
        let started = Instant::now();
        let background = {
            let (base, sessions) = (self.opts.target.clone(), self.sessions.clone());
            let (conns, stop, bg_live) = (
                self.opts.background_connections,
                stop.clone(),
                bg_live.clone(),
            );
            let bg_budget = Arc::new(Budget::new(
                self.opts.duration + Duration::from_secs(5),
                self.opts.max_requests,
            ));
            tokio::spawn(async move {
                let url = session_url(&base);
                checks(&url, &[], sessions, conns, 0.0, bg_budget, bg_live, stop).await
            })
        };
        let mut set = JoinSet::new();
        for (w, user) in users.iter().enumerate() {
            let conns: Vec<Conn> = replicas
                .iter()
                .map(|r| Conn::new(r, origin.as_deref()))
                .collect::<Result<_>>()?;
            let (user, budget, live) = (user.clone(), budget.clone(), live.clone());
            set.spawn(async move { revocation_worker(w, user, conns, budget, live).await });
        }
        let mut rec = Recorder::default();
        while let Some(r) = set.join_next().await {
            rec.merge(r??);
        }
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let bg = background.await??;
        let bg_secs = started.elapsed().as_secs_f64();
        progress.finish();
        let after = self.probes.snapshot().await?;

        let propagation = rec
            .ops
            .get("propagation")
            .map(summarize)
            .unwrap_or_default();
        let revocations = rec.ops.get("propagation").map_or(0, |h| h.len())
            / replicas.len().saturating_sub(1).max(1) as u64;
        let mut row = self.row("revocation", &rec, secs);
        row.requests = revocations;
        row.rate = revocations as f64 / secs.max(1e-9);
        row.latency = propagation;
        row.revoked_accepted = Some(rec.revoked_accepted);
        row.revoked_checks = Some(rec.revoked_checks);
        row.connections = self.opts.revocation_workers as u32;
        let mut bg_row = self.row("revocation: background checks", &bg, bg_secs);
        self.probes
            .delta(&before, &after)
            .apply(&mut bg_row, bg.all.len() + rec.all.len());
        bg_row.connections = self.opts.background_connections as u32;
        Ok(vec![row, bg_row])
    }
}

/// A future's output and the seconds from `started` to its end.
async fn timed<T>(started: Instant, f: impl Future<Output = T>) -> (T, f64) {
    let out = f.await;
    (out, started.elapsed().as_secs_f64())
}

/// One revocation worker (see [`Context::revocation`]).
async fn revocation_worker(
    w: usize,
    user: String,
    conns: Vec<Conn>,
    budget: Arc<Budget>,
    live: Arc<Live>,
) -> Result<Recorder> {
    let n = conns.len();
    let password = password_for(&user);
    let mut rec = Recorder::default();
    // The "other device" that revokes by handle or ends all others.
    let manager = login_with_retry(&conns[0], &user).await?;
    let mut k = 0usize;
    while budget.take() {
        let (login_at, revoke_at) = ((w + k) % n, (w + k + 1) % n);
        let t = Instant::now();
        let victim = match conns[login_at].login(&user, &password).await {
            Ok(s) => {
                rec.record(&live, "login", t.elapsed(), None);
                s
            }
            Err(e) => {
                rec.record(&live, "login", t.elapsed(), Some(e));
                k += 1;
                continue;
            }
        };
        // Logged in through one replica: every replica accepts the session at once.
        for conn in &conns {
            let t = Instant::now();
            let r = conn.check(&victim.cookie).await;
            rec.record(&live, "check new session", t.elapsed(), outcome(r, 200));
        }
        let method = if victim.handle.is_some() { k % 3 } else { 0 };
        let t = Instant::now();
        let (op, result) = match method {
            0 => (
                "revoke: logout",
                conns[revoke_at]
                    .logout(&victim.cookie)
                    .await
                    .map(|s| (s, 204)),
            ),
            1 => (
                "revoke: by handle",
                conns[revoke_at]
                    .revoke_handle(
                        &manager.cookie,
                        victim.handle.as_deref().unwrap_or_default(),
                    )
                    .await
                    .map(|s| (s, 204)),
            ),
            _ => (
                "revoke: all others",
                conns[revoke_at]
                    .revoke_others(&manager.cookie)
                    .await
                    .map(|s| (s, 200)),
            ),
        };
        let acked = Instant::now();
        let failed = match result {
            Ok((s, expect)) if s.as_u16() == expect => None,
            Ok((s, _)) => Some(format!("HTTP {}", s.as_u16())),
            Err(e) => Some(e),
        };
        let revoke_failed = failed.is_some();
        rec.record(&live, op, acked - t, failed);
        if revoke_failed {
            k += 1;
            continue;
        }
        // Right after the answer: every other replica must refuse the session.
        let mut polls = JoinSet::new();
        for (j, conn) in conns.iter().enumerate() {
            if j == revoke_at && n > 1 {
                continue;
            }
            let (conn, cookie) = (conn.clone(), victim.cookie.clone());
            polls.spawn(async move { poll_until_refused(&conn, &cookie, acked).await });
        }
        while let Some(p) = polls.join_next().await {
            let p = p?;
            rec.revoked_checks += p.checks;
            rec.revoked_accepted += p.accepted;
            match p.refused_after {
                Some(d) => rec.record(&live, "propagation", d, None),
                None => rec.error(&live, format!("revoked session never refused: {}", p.last)),
            }
        }
        k += 1;
    }
    Ok(rec)
}

struct Poll {
    checks: u64,
    accepted: u64,
    refused_after: Option<Duration>,
    last: String,
}

/// Checks a revoked session until a 401 (at most 2 s after `since`).
async fn poll_until_refused(conn: &Conn, cookie: &str, since: Instant) -> Poll {
    let mut poll = Poll {
        checks: 0,
        accepted: 0,
        refused_after: None,
        last: String::new(),
    };
    let deadline = since + Duration::from_secs(2);
    while Instant::now() < deadline {
        let r = conn.check(cookie).await;
        poll.checks += 1;
        match r {
            Ok(StatusCode::UNAUTHORIZED) => {
                poll.refused_after = Some(since.elapsed());
                return poll;
            }
            Ok(StatusCode::OK) => poll.accepted += 1,
            Ok(s) => poll.last = format!("HTTP {}", s.as_u16()),
            Err(e) => poll.last = e,
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if poll.last.is_empty() {
        poll.last = "still accepted after 2 s".into();
    }
    poll
}
