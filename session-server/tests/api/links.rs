//! Faulty links between real processes on loopback: a TCP proxy whose replies can be dropped
//! (a reply lost after the server applied the request), and a cut of one primary → replica
//! replication link with the packet filter (both processes keep running; every other
//! connection, clients, Sentinels and the Cluster bus, is left alone).

use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::RedisServer;

/// A TCP proxy on loopback in front of `target`. Requests always reach the target; once a
/// request holding the bytes given to [`LossyProxy::drop_replies_from`] went through, every byte
/// the target sends back is thrown away: that request is applied, its answer never arrives.
pub struct LossyProxy {
    pub port: u16,
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
    dropping: Arc<AtomicBool>,
}

impl LossyProxy {
    pub async fn start(target: u16) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dropping = Arc::new(AtomicBool::new(false));
        let trigger: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (flag, armed) = (dropping.clone(), trigger.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut upstream_read, mut upstream_write) = upstream.into_split();
                let (set, armed) = (flag.clone(), armed.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let hit = armed.lock().unwrap().as_deref().is_some_and(|needle| {
                            buf[..n].windows(needle.len()).any(|w| w == needle)
                        });
                        if hit {
                            set.store(true, Ordering::SeqCst);
                        }
                        if upstream_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match upstream_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !flag.load(Ordering::SeqCst)
                            && client_write.write_all(&buf[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        LossyProxy {
            port,
            trigger,
            dropping,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Passes every answer again.
    pub fn pass_replies(&self) {
        *self.trigger.lock().unwrap() = None;
        self.dropping.store(false, Ordering::SeqCst);
    }

    /// Drops every answer from the first request holding `needle` on (a request split across
    /// reads is not recognised: tests pick a needle inside one small request).
    pub fn drop_replies_from(&self, needle: &[u8]) {
        *self.trigger.lock().unwrap() = Some(needle.to_vec());
        self.dropping.store(false, Ordering::SeqCst);
    }
}

/// The replication links of a primary, cut: every packet between the primary's port and the
/// ports its replicas' replication connections come from is dropped, both ways, by `iptables`
/// rules that name exactly those connections. Nothing notices at first: the processes run, the
/// connections stay open, the primary keeps counting its replicas. Restored on drop.
pub struct ReplicationCut {
    rules: Vec<Vec<String>>,
}

impl ReplicationCut {
    /// Cuts the links of every replica currently attached to the primary on `primary_port`.
    pub fn cut(primary_port: u16) -> ReplicationCut {
        let list = RedisServer::command_on(primary_port, &["CLIENT", "LIST", "TYPE", "replica"])
            .expect("the primary answers CLIENT LIST");
        let ports: Vec<u16> = list
            .split_whitespace()
            .filter_map(|field| field.strip_prefix("addr=127.0.0.1:"))
            .map(|p| p.parse().expect("a port"))
            .collect();
        assert!(
            !ports.is_empty(),
            "no replica attached to {primary_port}: {list}"
        );
        let mut cut = ReplicationCut { rules: Vec::new() };
        for replica in ports {
            for (from, to) in [(primary_port, replica), (replica, primary_port)] {
                let rule: Vec<String> = [
                    "OUTPUT",
                    "-p",
                    "tcp",
                    "-s",
                    "127.0.0.1",
                    "--sport",
                    &from.to_string(),
                    "-d",
                    "127.0.0.1",
                    "--dport",
                    &to.to_string(),
                    "-j",
                    "DROP",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                iptables("-I", &rule);
                cut.rules.push(rule);
            }
        }
        cut
    }

    /// Lets the bytes through again.
    pub fn restore(self) {
        drop(self);
    }
}

impl Drop for ReplicationCut {
    fn drop(&mut self) {
        for rule in self.rules.drain(..) {
            iptables("-D", &rule);
        }
    }
}

/// Runs `iptables -w <op> <rule>` (waiting for the lock other tests may hold).
fn iptables(op: &str, rule: &[String]) {
    let status = Command::new("iptables")
        .arg("-w")
        .arg(op)
        .args(rule)
        .status()
        .expect(
            "iptables must be installed and usable (the test command installs it; run as root)",
        );
    assert!(status.success(), "iptables {op} {rule:?} failed");
}
