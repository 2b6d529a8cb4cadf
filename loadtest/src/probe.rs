//! What a request costs: Redis commands and CPU (`INFO commandstats`, `INFO cpu`), and the CPU
//! time of the server processes (`/proc/<pid>/stat`), sampled before and after a phase.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{
    Result,
    results::{RedisCost, Row},
};

/// A minimal RESP client: enough for `INFO`, `DBSIZE` and `PING` on one connection.
pub struct Redis {
    stream: BufReader<TcpStream>,
}

impl Redis {
    pub async fn connect(addr: &str) -> Result<Redis> {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to redis at {addr}: timeout"))??;
        Ok(Redis {
            stream: BufReader::new(stream),
        })
    }

    /// Sends a command; returns the reply (an error reply is an `Err`).
    pub async fn call(&mut self, args: &[&str]) -> Result<Value> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let io = async {
            self.stream.get_mut().write_all(req.as_bytes()).await?;
            read_value(&mut self.stream).await
        };
        tokio::time::timeout(Duration::from_secs(5), io)
            .await
            .map_err(|_| "redis command timeout")?
    }

    /// Sends a command; returns a bulk or simple string reply, or an integer as text.
    pub async fn command(&mut self, args: &[&str]) -> Result<String> {
        match self.call(args).await? {
            Value::Text(t) => Ok(t),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(format!("unexpected reply {other:?}").into()),
        }
    }

    /// `MEMORY USAGE` summed over all keys by kind (session-server's key schema), with `SCAN`:
    /// a measurement tool's pass over a test database, never part of the request path.
    pub async fn memory_by_kind(&mut self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        let mut cursor = "0".to_owned();
        for _ in 0..100_000 {
            let Value::Array(reply) = self.call(&["SCAN", &cursor, "COUNT", "1000"]).await? else {
                return Err("SCAN: unexpected reply".into());
            };
            let [Value::Text(next), Value::Array(keys)] = reply.as_slice() else {
                return Err("SCAN: unexpected reply".into());
            };
            for key in keys {
                let Value::Text(key) = key else { continue };
                if let Value::Int(bytes) =
                    self.call(&["MEMORY", "USAGE", key, "SAMPLES", "0"]).await?
                {
                    *out.entry(key_kind(key).to_owned()).or_default() += bytes.max(0) as u64;
                }
            }
            cursor = next.clone();
            if cursor == "0" {
                return Ok(out);
            }
        }
        Err("SCAN did not finish".into())
    }

    pub async fn info(&mut self, section: &str) -> Result<BTreeMap<String, String>> {
        let text = self.command(&["INFO", section]).await?;
        Ok(parse_info(&text))
    }

    pub async fn used_memory(&mut self) -> Result<u64> {
        let info = self.info("memory").await?;
        Ok(info.get("used_memory").ok_or("no used_memory")?.parse()?)
    }

    pub async fn dbsize(&mut self) -> Result<u64> {
        Ok(self.command(&["DBSIZE"]).await?.parse()?)
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Text(String),
    Array(Vec<Value>),
}

fn read_value<'a>(
    r: &'a mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        r.read_line(&mut line).await?;
        let line = line.trim_end();
        let rest = line.get(1..).unwrap_or_default();
        match line.as_bytes().first() {
            Some(b'+') => Ok(Value::Text(rest.to_owned())),
            Some(b':') => Ok(Value::Int(rest.parse()?)),
            Some(b'-') => Err(format!("redis error: {rest}").into()),
            Some(b'$') if rest == "-1" => Ok(Value::Nil),
            Some(b'$') => {
                let len: usize = rest.parse()?;
                let mut buf = vec![0u8; len + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(len);
                Ok(Value::Text(String::from_utf8_lossy(&buf).into_owned()))
            }
            Some(b'*') if rest == "-1" => Ok(Value::Nil),
            Some(b'*') => {
                let n: usize = rest.parse()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_value(r).await?);
                }
                Ok(Value::Array(items))
            }
            _ => Err(format!("redis replied {line:?}").into()),
        }
    })
}

/// The kind of a key in session-server's schema (`../session-server/src/store/keys.rs`);
/// `other` for anything else (e.g. a peer's keys).
pub fn key_kind(key: &str) -> &'static str {
    if key.ends_with("}:sessions") {
        "user sessions"
    } else if key.ends_with("}:user") {
        "user"
    } else if key.contains(":name:") {
        "username"
    } else if key.contains(":rl:") {
        "throttling"
    } else if key.ends_with(":events") {
        "event feed"
    } else {
        "other"
    }
}

/// `key:value` lines of an `INFO` reply.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Calls per command from `INFO commandstats` (`cmdstat_get:calls=12,usec=...`).
pub fn command_calls(info: &BTreeMap<String, String>) -> BTreeMap<String, u64> {
    info.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?;
            let calls = v
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// CPU seconds (user + system) of a process, from `/proc/<pid>/stat` (`self` for this one).
pub fn process_cpu_seconds(pid: &str, clk_tck: u64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clk_tck as f64)
}

/// Per-CPU (busy, total) jiffies from `/proc/stat`.
pub fn cpu_jiffies() -> Vec<(u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// Processes whose CPU time is charged to the requests, by role.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    pub redis: Option<String>,
    pub pids: Vec<(String, u32)>,
    pub clk_tck: u64,
}

/// One sample of every counter.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    at: Option<Instant>,
    calls: BTreeMap<String, u64>,
    redis_cpu: f64,
    role_cpu: BTreeMap<String, f64>,
    jiffies: Vec<(u64, u64)>,
}

/// What happened between two snapshots, in absolute terms.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// `None` without a Redis to ask.
    pub calls: Option<BTreeMap<String, f64>>,
    pub redis_cpu_s: f64,
    pub role_cpu_s: BTreeMap<String, f64>,
    pub cpu_busy_pct: Vec<f64>,
    /// CPU not accounted to the measured processes, in percent of one core: busy time of all
    /// cores less the measured processes' time. Other processes, and kernel work not charged to
    /// ours (softirq processing of loopback traffic); large values mean something else ran.
    pub other_cpu_pct: Option<f64>,
}

impl Delta {
    /// This delta less `factor` times `other` (e.g. the cost of a load that ran alongside).
    pub fn minus(&self, other: &Delta, factor: f64) -> Delta {
        let calls = self.calls.as_ref().map(|calls| {
            calls
                .iter()
                .map(|(cmd, n)| {
                    let o = other.calls.as_ref().and_then(|c| c.get(cmd)).copied();
                    (cmd.clone(), (n - factor * o.unwrap_or(0.0)).max(0.0))
                })
                .filter(|(_, n)| *n > 0.0)
                .collect()
        });
        Delta {
            calls,
            redis_cpu_s: (self.redis_cpu_s - factor * other.redis_cpu_s).max(0.0),
            role_cpu_s: self
                .role_cpu_s
                .iter()
                .map(|(role, s)| {
                    let o = other.role_cpu_s.get(role).copied().unwrap_or(0.0);
                    (role.clone(), (s - factor * o).max(0.0))
                })
                .collect(),
            cpu_busy_pct: self.cpu_busy_pct.clone(),
            other_cpu_pct: None,
        }
    }

    /// Writes the costs per request into a result row.
    pub fn apply(&self, row: &mut Row, requests: u64) {
        let per = |x: f64| {
            if requests == 0 {
                0.0
            } else {
                x / requests as f64
            }
        };
        row.redis = self.calls.as_ref().map(|calls| RedisCost {
            commands_per_request: per(calls.values().sum()),
            by_command: calls.iter().map(|(c, n)| (c.clone(), per(*n))).collect(),
            cpu_us_per_request: per(self.redis_cpu_s * 1e6),
        });
        row.cpu_us_per_request = self
            .role_cpu_s
            .iter()
            .map(|(role, s)| (role.clone(), per(s * 1e6)))
            .collect();
        row.cpu_busy_pct = self.cpu_busy_pct.clone();
        row.other_cpu_pct = self.other_cpu_pct;
    }
}

impl Probes {
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot {
            at: Some(Instant::now()),
            ..Snapshot::default()
        };
        if let Some(addr) = &self.redis {
            let mut redis = Redis::connect(addr).await?;
            snap.calls = command_calls(&redis.info("commandstats").await?);
            let cpu = redis.info("cpu").await?;
            let get = |k: &str| {
                cpu.get(k)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            snap.redis_cpu = get("used_cpu_user") + get("used_cpu_sys");
        }
        for (role, pid) in &self.pids {
            if let Some(s) = process_cpu_seconds(&pid.to_string(), self.clk_tck) {
                *snap.role_cpu.entry(role.clone()).or_default() += s;
            }
        }
        if let Some(s) = process_cpu_seconds("self", self.clk_tck) {
            snap.role_cpu.insert("loadtest".into(), s);
        }
        snap.jiffies = cpu_jiffies();
        Ok(snap)
    }

    /// What happened between two snapshots. The `INFO` calls of the snapshots themselves (two
    /// per snapshot) are not counted.
    pub fn delta(&self, before: &Snapshot, after: &Snapshot) -> Delta {
        let calls = self.redis.as_ref().map(|_| {
            after
                .calls
                .iter()
                .filter_map(|(cmd, calls)| {
                    let mut d = calls.saturating_sub(before.calls.get(cmd).copied().unwrap_or(0));
                    if cmd == "info" {
                        d = d.saturating_sub(2);
                    }
                    (d > 0).then(|| (cmd.clone(), d as f64))
                })
                .collect()
        });
        let role_cpu_s: BTreeMap<String, f64> = after
            .role_cpu
            .iter()
            .map(|(role, s)| {
                let b = before.role_cpu.get(role).copied().unwrap_or(*s);
                (role.clone(), s - b)
            })
            .collect();
        let cpu_busy_pct: Vec<f64> = after
            .jiffies
            .iter()
            .zip(&before.jiffies)
            .map(|((ab, at), (bb, bt))| {
                let total = at.saturating_sub(*bt);
                if total == 0 {
                    0.0
                } else {
                    100.0 * ab.saturating_sub(*bb) as f64 / total as f64
                }
            })
            .collect();
        let redis_cpu_s = after.redis_cpu - before.redis_cpu;
        let other_cpu_pct = match (before.at, after.at) {
            (Some(b), Some(a)) if !cpu_busy_pct.is_empty() => {
                let secs = (a - b).as_secs_f64().max(1e-9);
                let measured: f64 = role_cpu_s.values().sum::<f64>() + redis_cpu_s;
                let busy: f64 = cpu_busy_pct.iter().sum();
                Some((busy - 100.0 * measured / secs).max(0.0))
            }
            _ => None,
        };
        Delta {
            calls,
            redis_cpu_s,
            role_cpu_s,
            cpu_busy_pct,
            other_cpu_pct,
        }
    }
}

impl Snapshot {
    pub fn taken_at(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_give_calls_per_command() {
        let info = parse_info(
            "# Commandstats\r\ncmdstat_get:calls=120,usec=300,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_evalsha:calls=7,usec=70,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let calls = command_calls(&info);
        assert_eq!(calls.get("get"), Some(&120));
        assert_eq!(calls.get("evalsha"), Some(&7));
    }

    #[test]
    fn costs_are_deltas_per_request_without_the_probes_own_info_calls() {
        let probes = Probes {
            redis: Some("unused".into()),
            pids: vec![],
            clk_tck: 100,
        };
        let before = Snapshot {
            calls: [("get".to_owned(), 100), ("info".to_owned(), 4)].into(),
            redis_cpu: 1.0,
            ..Snapshot::default()
        };
        let after = Snapshot {
            calls: [("get".to_owned(), 1100), ("info".to_owned(), 6)].into(),
            redis_cpu: 1.5,
            ..Snapshot::default()
        };
        let mut row = Row::default();
        probes.delta(&before, &after).apply(&mut row, 1000);
        let redis = row.redis.unwrap();
        assert_eq!(redis.commands_per_request, 1.0);
        assert_eq!(redis.by_command.get("info"), None);
        assert!((redis.cpu_us_per_request - 500.0).abs() < 1e-6);
    }

    #[test]
    fn keys_are_classified_by_the_schema() {
        let uid = "{0123456789abcdef0123456789abcdef}";
        assert_eq!(key_kind(&format!("sess:{uid}:sessions")), "user sessions");
        // Keys of the layout before one hash per user are no longer the schema's.
        assert_eq!(key_kind(&format!("sess:{uid}:s:AbC-_x")), "other");
        assert_eq!(key_kind(&format!("sess:{uid}:idx")), "other");
        assert_eq!(key_kind(&format!("sess:{uid}:user")), "user");
        assert_eq!(key_kind("sess:name:alice"), "username");
        assert_eq!(key_kind("sess:rl:ip:127.0.0.1"), "throttling");
        assert_eq!(key_kind("sess:events"), "event feed");
        assert_eq!(key_kind("actix-session:abc"), "other");
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu_seconds("self", 100).is_some());
        assert!(!cpu_jiffies().is_empty());
    }
}
