//! Multi-node Redis deployments for the tests: a 3-primary Redis Cluster with one replica each,
//! and a primary + replica watched by three Sentinels. Real `redis-server` processes on loopback,
//! started by the harness. Every process runs under a small watchdog that stops it when the test
//! process ends, so shared deployments never outlive the test run.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::helpers::{RedisServer, free_port};

/// A loopback port that is free, and whose Cluster bus port (port + 10000) is free too.
pub fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// One `redis-server` (or Sentinel) process under a watchdog tied to this test process.
pub struct Node {
    pub port: u16,
    args: Vec<String>,
    pidfile: PathBuf,
    watchdog: Mutex<Option<Child>>,
}

impl Node {
    fn start(port: u16, args: Vec<String>) -> Node {
        let node = Node {
            port,
            args,
            pidfile: std::env::temp_dir().join(format!("session-test-node-{port}.pid")),
            watchdog: Mutex::new(None),
        };
        node.launch();
        node
    }

    fn launch(&self) {
        let quoted: Vec<String> = self.args.iter().map(|a| format!("'{a}'")).collect();
        // The watchdog stops redis-server when the test process is gone (also after a crash).
        let script = format!(
            "redis-server {} & r=$!; echo $r > '{}'; \
             while kill -0 {} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
             kill -9 $r 2>/dev/null",
            quoted.join(" "),
            self.pidfile.display(),
            std::process::id()
        );
        let child = Command::new("bash")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash and redis-server");
        *self.watchdog.lock().unwrap() = Some(child);
        wait_for(
            &format!("node {}", self.port),
            Duration::from_secs(10),
            || {
                self.command(&["PING"])
                    .is_some_and(|r| r.starts_with("+PONG"))
            },
        );
    }

    pub fn command(&self, args: &[&str]) -> Option<String> {
        RedisServer::command_on(self.port, args)
    }

    /// Kills the node abruptly (SIGKILL), as a crash would.
    pub fn kill(&self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        if let Some(mut watchdog) = self.watchdog.lock().unwrap().take() {
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_file(&self.pidfile);
    }

    pub fn restart(&self) {
        self.launch();
    }

    /// Whether this node has replicas, all online and at its replication offset.
    pub fn replicas_in_sync(&self) -> bool {
        replicas_in_sync(&self.command(&["INFO", "replication"]).unwrap_or_default())
    }

    /// Whether the node is a primary now.
    pub fn is_primary(&self) -> bool {
        self.command(&["ROLE"])
            .is_some_and(|r| r.contains("master"))
    }
}

/// Whether a primary's `INFO replication` shows replicas, all online and at its offset.
pub fn replicas_in_sync(info: &str) -> bool {
    let Some(offset) = info_field(info, "master_repl_offset") else {
        return false;
    };
    let replicas: Vec<&str> = info.lines().filter(|l| l.starts_with("slave")).collect();
    !replicas.is_empty()
        && replicas
            .iter()
            .all(|l| l.contains("state=online") && l.contains(&format!("offset={offset},")))
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("session-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the primary `node` serves `key`'s slot.
pub fn holds(node: &Node, key: &str) -> bool {
    node.command(&["EXISTS", key])
        .is_some_and(|r| r.starts_with(':'))
}

fn info_field(reply: &str, field: &str) -> Option<String> {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Three primaries with one replica each, created with `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = temp_dir(&format!("cluster-{}", free_port_pair()));
        let nodes: Vec<Node> = (0..6)
            .map(|_| {
                let port = free_port_pair();
                let node_dir = dir.join(port.to_string());
                std::fs::create_dir_all(&node_dir).unwrap();
                Node::start(
                    port,
                    [
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        // A replica's first sync starts at once, not after 5 s.
                        "--repl-diskless-sync-delay",
                        "0",
                        "--dir",
                        node_dir.to_str().unwrap(),
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes };
        cluster.wait_until_ok();
        // Ends wait for a replica's confirmation: hand the cluster out once every replica is in
        // sync.
        wait_for("replicas in sync", Duration::from_secs(30), || {
            cluster.replicas_in_sync()
        });
        cluster
    }

    pub fn wait_until_ok(&self) {
        wait_for("cluster_state:ok", Duration::from_secs(30), || {
            self.nodes.iter().all(|n| {
                n.command(&["CLUSTER", "INFO"])
                    .is_some_and(|i| i.contains("cluster_state:ok"))
            })
        });
    }

    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Nodes that currently serve as primaries.
    pub fn primaries(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| {
                n.command(&["INFO", "replication"])
                    .and_then(|i| info_field(&i, "role"))
                    .is_some_and(|r| r == "master")
            })
            .collect()
    }

    /// Whether every primary's replicas are online and have everything it has.
    pub fn replicas_in_sync(&self) -> bool {
        self.primaries().iter().all(|p| p.replicas_in_sync())
    }

    /// The node that replicates `primary`.
    pub fn replica_of(&self, primary: &Node) -> &Node {
        self.nodes
            .iter()
            .find(|n| {
                n.command(&["INFO", "replication"])
                    .is_some_and(|i| i.contains(&format!("master_port:{}\r", primary.port)))
            })
            .expect("a replica of the primary")
    }

    /// The primary that serves `key`'s slot (the one that answers for it instead of redirecting).
    pub fn primary_of(&self, key: &str) -> &Node {
        self.primaries()
            .into_iter()
            .find(|p| holds(p, key))
            .expect("a primary for every slot")
    }

    /// The cluster shared by tests that only need a working cluster (each uses its own prefix).
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }
}

/// A primary, one replica and three Sentinels watching them as `mymaster`.
pub struct SentinelGroup {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
}

pub const MASTER: &str = "mymaster";

impl SentinelGroup {
    pub fn start() -> SentinelGroup {
        let dir = temp_dir(&format!("sentinel-{}", free_port_pair()));
        let data = |port: u16| {
            let d = dir.join(port.to_string());
            std::fs::create_dir_all(&d).unwrap();
            d.to_str().unwrap().to_owned()
        };
        let server = |port: u16, extra: &[&str]| {
            let mut args: Vec<String> = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                "--dir",
                &data(port),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(extra.iter().map(|s| s.to_string()));
            Node::start(port, args)
        };
        let primary = server(free_port_pair(), &[]);
        let replica_port = free_port_pair();
        let replica = server(
            replica_port,
            &["--replicaof", "127.0.0.1", &primary.port.to_string()],
        );
        wait_for("replica in sync", Duration::from_secs(15), || {
            replica
                .command(&["INFO", "replication"])
                .and_then(|i| info_field(&i, "master_link_status"))
                .is_some_and(|s| s == "up")
        });
        let sentinels = (0..3)
            .map(|_| {
                let port = free_port_pair();
                let conf = dir.join(format!("sentinel-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {MASTER} 1000\n\
                         sentinel failover-timeout {MASTER} 5000\nsentinel parallel-syncs {MASTER} 1\n",
                        data(port),
                        primary.port
                    ),
                )
                .unwrap();
                Node::start(
                    port,
                    vec![conf.to_str().unwrap().to_owned(), "--sentinel".into(), "--port".into(), port.to_string()],
                )
            })
            .collect::<Vec<_>>();
        let group = SentinelGroup {
            primary,
            replica,
            sentinels,
        };
        wait_for(
            "sentinels to know the replica",
            Duration::from_secs(20),
            || {
                group.sentinels.iter().all(|s| {
                    s.command(&["SENTINEL", "REPLICAS", MASTER])
                        .is_some_and(|r| r.contains(&replica_port.to_string()))
                })
            },
        );
        group
    }

    pub fn urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port the Sentinels currently name as primary.
    pub fn current_primary_port(&self) -> Option<u16> {
        let reply = self.sentinels[0].command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])?;
        reply
            .split("\r\n")
            .filter(|l| !l.starts_with(['*', '$']))
            .nth(1)?
            .parse()
            .ok()
    }

    pub fn shared() -> &'static SentinelGroup {
        static SHARED: OnceLock<SentinelGroup> = OnceLock::new();
        SHARED.get_or_init(SentinelGroup::start)
    }
}
