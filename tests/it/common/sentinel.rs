//! A Redis Sentinel deployment as real local processes: one primary, replicas, and three
//! `redis-sentinel`s watching it (quorum 2, a primary is down after 400 ms unanswered).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::redis::{free_port, RedisServer};
use super::PATIENCE;

/// Certificate files for TLS (`super::redis::make_certificates`).
pub struct Tls {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// The name the sentinels monitor.
pub const MASTER: &str = "main";

pub struct Sentinels {
    /// Every data node; which one is the primary changes with failovers.
    pub nodes: Vec<RedisServer>,
    ports: Vec<u16>,
    /// The sentinels' TLS ports (none without TLS).
    tls_ports: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Sentinels {
    /// A primary with `replicas` replicas and three sentinels, once the sentinels know every
    /// replica (so a failover can happen).
    pub async fn start(replicas: usize) -> Self {
        Self::start_with(replicas, None).await
    }

    /// The same; with `tls`, every data node and sentinel also listens for TLS, and the
    /// sentinels and replicas reach the primary by TLS (so the sentinels name TLS ports).
    pub async fn start_with(replicas: usize, tls: Option<&Tls>) -> Self {
        let tls_args = |port: u16| -> Vec<String> {
            let Some(tls) = tls else { return vec![] };
            let mut args = vec!["--tls-port".to_owned(), port.to_string()];
            for (flag, file) in [
                ("--tls-cert-file", &tls.cert),
                ("--tls-key-file", &tls.key),
                ("--tls-ca-cert-file", &tls.ca),
            ] {
                args.extend([flag.to_owned(), file.display().to_string()]);
            }
            args.extend(["--tls-auth-clients", "no", "--tls-replication", "yes"].map(String::from));
            args
        };
        let primary_tls = free_port();
        let primary = RedisServer::start_with(&as_strs(&tls_args(primary_tls)));
        // What the sentinels and replicas connect to.
        let primary_port = if tls.is_some() {
            primary_tls
        } else {
            primary.port
        }
        .to_string();
        let mut nodes = vec![];
        nodes.push(primary);
        for _ in 0..replicas {
            let mut args = tls_args(free_port());
            args.extend(["--replicaof", "127.0.0.1", &primary_port].map(String::from));
            nodes.push(RedisServer::start_with(&as_strs(&args)));
        }
        let dir = std::env::temp_dir().join(format!(
            "ssehub-sentinel-{}-{primary_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut set = Self {
            nodes,
            ports: vec![],
            tls_ports: vec![],
            children: vec![],
            dir,
        };
        for _ in 0..3 {
            let port = free_port();
            let conf = set.dir.join(format!("sentinel-{port}.conf"));
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n",
                dir = set.dir.display()
            );
            if let Some(tls) = tls {
                let tls_port = free_port();
                set.tls_ports.push(tls_port);
                text.push_str(&format!(
                    "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                    tls.cert.display(),
                    tls.key.display(),
                    tls.ca.display()
                ));
            }
            text.push_str(&format!(
                "sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} 400\n\
                 sentinel failover-timeout {MASTER} 2000\n\
                 sentinel parallel-syncs {MASTER} 1\n"
            ));
            std::fs::write(&conf, text).unwrap();
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

    /// `--broker` for ssehub, by TLS (after `start_with` and a [`Tls`]).
    pub fn tls_url(&self) -> String {
        let hosts: Vec<String> = self
            .tls_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("rediss+sentinel://{}/{MASTER}", hosts.join(","))
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

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
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
