//! A Redis Sentinel deployment as real local processes: one primary, replicas, and three
//! `redis-sentinel`s watching it (quorum 2, a primary is down after 400 ms unanswered).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::redis::{free_port, RedisServer};
use super::PATIENCE;

/// The name the sentinels monitor.
pub const MASTER: &str = "main";

pub struct Sentinels {
    /// Every data node; which one is the primary changes with failovers.
    pub nodes: Vec<RedisServer>,
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Sentinels {
    /// A primary with `replicas` replicas and three sentinels, once the sentinels know every
    /// replica (so a failover can happen).
    pub async fn start(replicas: usize) -> Self {
        let primary = RedisServer::start();
        let mut nodes = vec![];
        let primary_port = primary.port.to_string();
        nodes.push(primary);
        for _ in 0..replicas {
            nodes.push(RedisServer::start_with(&[
                "--replicaof",
                "127.0.0.1",
                &primary_port,
            ]));
        }
        let dir = std::env::temp_dir().join(format!(
            "ssehub-sentinel-{}-{primary_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut set = Self {
            nodes,
            ports: vec![],
            children: vec![],
            dir,
        };
        for _ in 0..3 {
            let port = free_port();
            let conf = set.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds {MASTER} 400\n\
                     sentinel failover-timeout {MASTER} 2000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir = set.dir.display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel not installed (scripts/test installs it)");
            set.ports.push(port);
            set.children.push(child);
        }
        set.until_replicas(replicas).await;
        set
    }

    /// `--broker` for ssehub.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The port of the primary as the first sentinel that answers names it.
    pub async fn primary_port(&self) -> Option<u16> {
        for port in &self.ports {
            let out = cli(*port, &["SENTINEL", "get-master-addr-by-name", MASTER]).await;
            if let Some(p) = out.lines().nth(1).and_then(|l| l.trim().parse().ok()) {
                return Some(p);
            }
        }
        None
    }

    /// The data node that is the primary now.
    pub async fn primary(&mut self) -> &mut RedisServer {
        let port = self.primary_port().await.expect("no primary");
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// Healthy replicas the first sentinel knows.
    async fn replicas_seen(&self) -> usize {
        let out = cli(self.ports[0], &["SENTINEL", "replicas", MASTER]).await;
        let lines: Vec<&str> = out.lines().collect();
        let mut healthy = 0;
        for (i, line) in lines.iter().enumerate() {
            if *line == "master-link-status" && lines.get(i + 1) == Some(&"ok") {
                healthy += 1;
            }
        }
        healthy
    }

    /// Waits until every sentinel names a primary other than `old`; returns it.
    pub async fn until_failover_from(&self, old: u16) -> u16 {
        let deadline = tokio::time::Instant::now() + PATIENCE * 2;
        'poll: loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no failover from {old}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut named = None;
            for port in &self.ports {
                let out = cli(*port, &["SENTINEL", "get-master-addr-by-name", MASTER]).await;
                match out
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse::<u16>().ok())
                {
                    Some(p) if p != old && named.is_none_or(|n| n == p) => named = Some(p),
                    _ => continue 'poll,
                }
            }
            if let Some(new) = named {
                return new;
            }
        }
    }

    /// SIGSTOP to every sentinel: no failover, no conversion, no answer, until
    /// [`Sentinels::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Sentinels::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        for child in &self.children {
            let status = Command::new("kill")
                .args([which, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Waits until the sentinels see `n` healthy replicas.
    pub async fn until_replicas(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE * 2;
        while self.replicas_seen().await != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {n} healthy replicas"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p PORT ARGS…`, its output.
pub async fn cli(port: u16, args: &[&str]) -> String {
    let output = tokio::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}
