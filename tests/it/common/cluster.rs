//! A Redis Cluster as real local processes: primaries and replicas created with
//! `redis-cli --cluster create`, a node declared failed after 1 s unanswered.

use std::process::Command;
use std::time::Duration;

use super::redis::RedisServer;
use super::sentinel::cli;
use super::PATIENCE;

pub struct RedisCluster {
    /// Every data node; which are primaries changes with failovers.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, once every slot is served and
    /// every replica is in sync.
    pub async fn start(primaries: usize, replicas: usize) -> Self {
        Self::start_with(primaries, replicas, |_| Vec::new()).await
    }

    /// The same, each node also given the arguments `extra` returns for it (its index).
    pub async fn start_with(
        primaries: usize,
        replicas: usize,
        extra: impl Fn(usize) -> Vec<String>,
    ) -> Self {
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|i| {
                let mut args: Vec<String> = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--appendonly",
                    "no",
                ]
                .map(String::from)
                .to_vec();
                args.extend(extra(i));
                RedisServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli not installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        cluster.until_healthy(primaries * (1 + replicas)).await;
        cluster
    }

    /// `--broker` for ssehub: two seeds.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .take(2)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// `CLUSTER SHARDS` as `(role, port, health)` per node, asked of the first live node.
    async fn shards(&self) -> Vec<(String, u16, String)> {
        for node in &self.nodes {
            let out = cli(node.port, &["CLUSTER", "SHARDS"]).await;
            let lines: Vec<&str> = out.lines().collect();
            if lines.is_empty() {
                continue;
            }
            let mut found = vec![];
            let mut port = None;
            let mut role = None;
            for (i, line) in lines.iter().enumerate() {
                match *line {
                    "port" => port = lines.get(i + 1).and_then(|p| p.parse().ok()),
                    "role" => role = lines.get(i + 1).map(|r| r.to_string()),
                    "health" => {
                        if let (Some(p), Some(r)) = (port.take(), role.take()) {
                            found.push((r, p, lines.get(i + 1).unwrap_or(&"").to_string()));
                        }
                    }
                    _ => {}
                }
            }
            return found;
        }
        vec![]
    }

    /// Waits until `n` nodes are online and every node says the cluster is ok.
    pub async fn until_healthy(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE * 2;
        loop {
            let online = self
                .shards()
                .await
                .iter()
                .filter(|(_, _, health)| health == "online")
                .count();
            let mut ok = online >= n;
            for node in &self.nodes {
                let info = cli(node.port, &["CLUSTER", "INFO"]).await;
                if !info.is_empty() && !info.contains("cluster_state:ok") {
                    ok = false;
                }
            }
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster never got healthy ({online} of {n} online)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node on `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }
}
