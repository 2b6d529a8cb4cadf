//! A progress bar per phase (on a terminal; hidden otherwise), and one summary line per phase on
//! standard error either way.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::stats::Live;

pub struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
    label: String,
    live: Arc<Live>,
    started: Instant,
}

impl Progress {
    /// Shows `label` filling up over `duration`, with live request and error counts.
    pub fn start(label: &str, duration: Duration, live: Arc<Live>) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(duration.as_millis().max(1) as u64),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>32} [{elapsed:>3}] {bar:30} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        let started = Instant::now();
        let (b, l) = (bar.clone(), live.clone());
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let elapsed = started.elapsed();
                let n = l.requests.load(Ordering::Relaxed);
                let e = l.errors.load(Ordering::Relaxed);
                b.set_position(elapsed.as_millis() as u64);
                b.set_message(format!(
                    "{n} req, {:.0} req/s, {e} errors",
                    n as f64 / elapsed.as_secs_f64().max(1e-3)
                ));
            }
        });
        Progress {
            bar,
            ticker,
            label: label.to_owned(),
            live,
            started,
        }
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
        let n = self.live.requests.load(Ordering::Relaxed);
        let e = self.live.errors.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{:>32}: {n} requests in {secs:.1} s ({:.0}/s), {e} errors",
            self.label,
            n as f64 / secs.max(1e-3)
        );
    }
}
