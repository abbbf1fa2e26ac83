//! A real Redis Cluster for a test: six Debian `redis-server` children
//! (3 masters, 3 replicas) on free loopback ports, joined with
//! `redis-cli --cluster create`, owned by the test and killed on drop.
//!
//! Ready means more than `cluster_state:ok`: every replica must have
//! finished its first sync with its master (`master_link_status:up`), or a
//! replica whose master is killed early refuses to take over (see
//! /work/notes/issue29-research.md §3). `cluster-replica-validity-factor 0`
//! lets a replica always take over; `cluster-node-timeout 2000` makes a
//! failover take about 3–4 s.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 6;
/// How long the cluster may take to form, and a failover to finish.
const READY_WITHIN: Duration = Duration::from_secs(30);

struct Node {
    port: u16,
    child: Option<Child>,
}

pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// Whether `port` is free on loopback.
fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Six ports whose cluster-bus ports (port + 10000) are free too. Both
/// stay below Linux's ephemeral range (32768…), from which the gateway's
/// and the test's own connections take their ports.
fn pick_ports() -> Vec<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..10_000 {
        if ports.len() == NODES {
            return ports;
        }
        let port: u16 = rng.gen_range(10_000..22_000);
        if !ports.contains(&port) && free(port) && free(port + 10_000) {
            ports.push(port);
        }
    }
    panic!("no free ports for a Redis Cluster");
}

/// `redis-cli -p PORT ARGS…`'s output, `None` if it could not run or failed.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Poll `ready` every 100 ms until it holds; panic naming `what` after
/// [`READY_WITHIN`].
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_WITHIN;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// The master's id, for a replica.
    pub master: Option<String>,
    /// Slot ranges served, for a master.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }
    pub fn failed(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            // 127.0.0.1:PORT@BUS
            let port = fields[1]
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(ClusterNode {
                id: fields[0].to_string(),
                port,
                flags: fields[2].split(',').map(str::to_string).collect(),
                master: (fields[3] != "-").then(|| fields[3].to_string()),
                slots,
            })
        })
        .collect()
}

impl RedisCluster {
    /// Start six servers, make them a cluster (one replica per master) and
    /// wait until it is ready: every node says `cluster_state:ok` and every
    /// replica's link to its master is up.
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for port in pick_ports() {
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", "2000"])
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&node_dir)
                .arg("--logfile")
                .arg(node_dir.join("log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start redis-server ({e}). The Redis Cluster tests need Debian's \
                         `redis-server` and `redis-tools`: apt-get install redis-server"
                    )
                });
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let cluster = RedisCluster { nodes, _dir: dir };
        for node in &cluster.nodes {
            wait_until(&format!("redis-server on port {}", node.port), || {
                cli(node.port, &["PING"]).is_some_and(|r| r.trim() == "PONG")
            });
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.wait_ready("the cluster to form");
        cluster
    }

    /// Seed URLs of every node, for `[state] nodes`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The `[state]` lines for a gateway on this cluster.
    pub fn state_lines(&self, policy: &str) -> Vec<String> {
        vec![
            "backend = \"redis_cluster\"".to_string(),
            format!("nodes = {:?}", self.urls()),
            "timeout_ms = 200".to_string(),
            format!("on_error = {policy:?}"),
        ]
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `CLUSTER NODES` as a live node sees it.
    pub fn topology(&self) -> Vec<ClusterNode> {
        for port in self.live_ports() {
            if let Some(text) = cli(port, &["CLUSTER", "NODES"]) {
                return parse_nodes(&text);
            }
        }
        panic!("no live node answers CLUSTER NODES");
    }

    /// Every live node says `cluster_state:ok`; every live replica's link
    /// to its master is up; every slot is served by a live master.
    fn ready(&self) -> bool {
        let live = self.live_ports();
        let ok = live.iter().all(|&port| {
            cli(port, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))
        });
        if !ok {
            return false;
        }
        let topology = self.topology();
        let replicas_up = topology
            .iter()
            .filter(|n| !n.is_master() && !n.failed() && live.contains(&n.port))
            .all(|n| {
                cli(n.port, &["INFO", "replication"])
                    .is_some_and(|i| i.contains("master_link_status:up"))
            });
        let served: usize = topology
            .iter()
            .filter(|n| n.is_master() && !n.failed() && live.contains(&n.port))
            .flat_map(|n| n.slots.iter().map(|(a, b)| usize::from(b - a) + 1))
            .sum();
        replicas_up && served == 16384
    }

    fn wait_ready(&self, what: &str) {
        wait_until(what, || self.ready());
    }

    /// The slot of `key` (Redis's own answer).
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        cli(port, &["CLUSTER", "KEYSLOT", key])
            .and_then(|s| s.trim().parse().ok())
            .expect("CLUSTER KEYSLOT answers")
    }

    /// The live master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> ClusterNode {
        self.topology()
            .into_iter()
            .find(|n| n.is_master() && !n.failed() && n.owns(slot))
            .unwrap_or_else(|| panic!("no live master serves slot {slot}"))
    }

    /// SIGKILL the master serving `key`; its id, for [`Self::wait_failover`].
    pub fn kill_master_of(&mut self, key: &str) -> String {
        let master = self.master_of_slot(self.slot_of(key));
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == master.port)
            .expect("the master is one of ours");
        let mut child = node.child.take().expect("the master is running");
        child.kill().unwrap();
        child.wait().unwrap();
        master.id
    }

    /// Wait until a replica has replaced the killed master `id`: no live
    /// node is its replica any more, the cluster is `ok` everywhere, and
    /// every slot is served again.
    pub fn wait_failover(&self, id: &str) {
        wait_until("a replica to take over", || {
            let topology = self.topology();
            let promoted = !topology
                .iter()
                .any(|n| n.master.as_deref() == Some(id) && !n.failed());
            let marked = topology.iter().any(|n| n.id == id && n.failed());
            promoted && marked && self.ready()
        });
    }

    /// `GET`-style command on the cluster, following redirections
    /// (`redis-cli -c`).
    pub fn command(&self, args: &[&str]) -> String {
        let port = self.live_ports()[0];
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        cli(port, &all).unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
