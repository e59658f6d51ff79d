//! Redis HA (ssehub only): the publish-to-delivery latency of a two-node ssehub cluster on each
//! of the three Redis deployments it runs on, side by side, the same load on each: one Redis;
//! Sentinel (a primary, two replicas, three sentinels, a primary down after 1 s unanswered;
//! `--redis-min-replicas 1`, so every publish waits for a replica's `WAIT`); a Redis Cluster of
//! three primaries with two replicas each (the same `WAIT`; `cluster-node-timeout` 2 s). Publishes go to node A at 10 messages/s, 1,000 subscribers are split over A and
//! B. Then, with Sentinel and with a Cluster, a primary is killed under load
//! ([`super::ha_kill`]). Every Redis process shares the server CPU with the nodes. Not in the
//! smoke run (it starts up to nine Redis processes); `bench/run --only redis-ha`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{describe_step, progress, Ctx, Live};
use crate::bail;
use crate::error::{Context, Result};
use crate::servers::{Options, Server, ServerKind};
use crate::table::{Better, Outcome};

/// How long a deployment may take to be ready (replicas in sync, every slot served).
const READY_TIMEOUT: Duration = Duration::from_secs(40);
/// The name the sentinels monitor.
const MASTER: &str = "main";

/// Runs the scenario.
pub async fn run(ctx: &Ctx, kind: ServerKind, outcome: &mut Outcome) -> Result<()> {
    if ctx.smoke {
        progress(kind, "redis-ha", "not in the smoke run");
        return Ok(());
    }
    let subscribers = 1_000;
    let mut details = Vec::new();
    for deployment in ["single", "sentinel", "cluster"] {
        let dir = ctx.work.join(format!("redis-ha-{deployment}"));
        let (redis, url) = match deployment {
            "single" => single(ctx, &dir).await?,
            "sentinel" => sentinel(ctx, &dir).await?,
            _ => cluster(ctx, &dir).await?,
        };
        let options = Options {
            broker: Some(url),
            ..Options::default()
        };
        let scenario = format!("redis-ha-{deployment}");
        let (node_a, node_b) = pair(ctx, kind, &options, &scenario, ["a", "b"]).await?;
        let mut live =
            Live::open_spread(ctx, node_a, vec![node_b], 1, subscribers, outcome).await?;
        let step = live.step(ctx, 10.0, 10.0, Duration::from_secs(3)).await?;
        progress(
            kind,
            "redis-ha",
            &format!("{deployment}: {}", describe_step(&step)),
        );
        let d = &step.delivery;
        if d.lost > 0 || d.duplicates > 0 {
            outcome.problems.push(format!(
                "{deployment}: {} lost, {} duplicates",
                d.lost, d.duplicates
            ));
        }
        for (quantile, value) in [("p50", d.latency.p50_ms), ("p99", d.latency.p99_ms)] {
            outcome
                .metric(
                    format!("redis-ha.{deployment}.{quantile}"),
                    format!("2 nodes on {deployment} Redis, 1,000 subs split, 10 msg/s: publish-to-delivery {quantile}"),
                    "ms",
                    Better::Lower,
                    Some(value),
                )
                .cpu(&step.cpu);
        }
        live.close().await?;
        // A primary killed under load (not with a single Redis: nothing takes its place).
        let recovery = if deployment == "single" {
            None
        } else {
            let (publisher, subscriber) = pair(ctx, kind, &options, &scenario, ["c", "d"]).await?;
            let mut redis = redis;
            let recovery = super::ha_kill::measure(publisher.addr, subscriber.addr, || {
                redis.kill_first();
            })
            .await?;
            progress(
                kind,
                "redis-ha",
                &format!("{deployment}: kill -9 of a primary: {recovery:?}"),
            );
            if recovery.lost > 0 {
                outcome.problems.push(format!(
                    "{deployment}: {} acknowledged events lost after a primary was killed",
                    recovery.lost
                ));
            }
            outcome.metric(
                format!("redis-ha.{deployment}.recovery"),
                format!("2 nodes on {deployment} Redis, a primary killed: kill to the first delivery on every topic"),
                "ms",
                Better::Lower,
                recovery.worst_ms,
            );
            publisher.stop().await?;
            subscriber.stop().await?;
            Some(recovery)
        };
        details.push(json!({ "deployment": deployment, "step": step, "recovery": recovery }));
    }
    outcome.details = json!({ "subscribers": subscribers, "nodes": 2, "deployments": details });
    Ok(())
}

/// Two fresh ssehub nodes on the deployment, once both are ready (their broker connected).
async fn pair(
    ctx: &Ctx,
    kind: ServerKind,
    options: &Options,
    scenario: &str,
    names: [&str; 2],
) -> Result<(Server, Server)> {
    let first = ctx
        .start(&format!("{scenario}-{}", names[0]), kind, options.clone())
        .await?;
    let second = ctx
        .start(&format!("{scenario}-{}", names[1]), kind, options.clone())
        .await?;
    for node in [first.addr, second.addr] {
        until_ready(node).await?;
    }
    Ok((first, second))
}

/// Redis processes started here, on the servers' CPU, killed (and their files removed) when
/// dropped.
struct Processes {
    children: Vec<Child>,
    dir: PathBuf,
    cpu: Option<usize>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Processes {
    /// `kill -9` of the first process started (the primary, with Sentinel and with a Cluster).
    fn kill_first(&mut self) {
        if let Some(first) = self.children.first_mut() {
            let _ = first.kill();
        }
    }

    fn new(ctx: &Ctx, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            children: Vec::new(),
            dir: dir.to_owned(),
            cpu: ctx.programs.cpu,
        })
    }

    /// `program` to run on the servers' CPU (children inherit the generator's otherwise).
    fn command(&self, program: &str) -> Command {
        match self.cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.args(["-c", &cpu.to_string(), program]);
                command
            }
            None => Command::new(program),
        }
    }

    /// A `redis-server` on `port` (persistence as a production deployment runs it), accepting.
    async fn redis(&mut self, port: u16, extra: &[&str]) -> Result<()> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).context("creating a Redis directory")?;
        let child = self
            .command("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.children.push(child);
        until_accepting(port).await
    }
}

async fn single(ctx: &Ctx, dir: &Path) -> Result<(Processes, String)> {
    let mut set = Processes::new(ctx, dir)?;
    let port = free_port(false)?;
    set.redis(port, &[]).await?;
    Ok((set, format!("redis://127.0.0.1:{port}/0")))
}

async fn sentinel(ctx: &Ctx, dir: &Path) -> Result<(Processes, String)> {
    let mut set = Processes::new(ctx, dir)?;
    let primary = free_port(false)?;
    set.redis(primary, &[]).await?;
    // Two replicas: one left after a failover, so publishes can still be acknowledged by one
    // (`--redis-min-replicas 1`) without waiting for the dead primary to come back.
    for _ in 0..2 {
        let replica = free_port(false)?;
        set.redis(replica, &["--replicaof", "127.0.0.1", &primary.to_string()])
            .await?;
    }
    let mut sentinels = Vec::new();
    for _ in 0..3 {
        let port = free_port(false)?;
        let conf = set.dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 3000\n",
                set.dir.display()
            ),
        )
        .context("writing a sentinel's configuration")?;
        let child = set
            .command("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-sentinel (Debian: redis-sentinel)")?;
        set.children.push(child);
        until_accepting(port).await?;
        sentinels.push(format!("127.0.0.1:{port}"));
    }
    let first = sentinels[0]
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    until(|| {
        let out = cli(&first, &["SENTINEL", "replicas", MASTER]);
        out.matches("master-link-status\nok").count() == 2
    })
    .await
    .context("the sentinels never saw the replica in sync")?;
    Ok((
        set,
        format!("redis+sentinel://{}/{MASTER}", sentinels.join(",")),
    ))
}

async fn cluster(ctx: &Ctx, dir: &Path) -> Result<(Processes, String)> {
    let mut set = Processes::new(ctx, dir)?;
    let mut ports = Vec::new();
    // Three primaries with two replicas each (one left after a failover, as for Sentinel); a
    // node is failed after 2 s unanswered (Redis' default is 15 s).
    for _ in 0..9 {
        let port = free_port(true)?;
        set.redis(
            port,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ],
        )
        .await?;
        ports.push(port);
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "2", "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .context("running redis-cli --cluster create")?;
    if !status.success() {
        bail!("redis-cli --cluster create failed");
    }
    until(|| {
        ports.iter().all(|p| {
            let port = p.to_string();
            let info = cli(&port, &["INFO", "replication"]);
            cli(&port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                && (info.contains("role:master") || info.contains("master_link_status:up"))
        })
    })
    .await
    .context("the cluster never served every slot with its replicas in sync")?;
    Ok((set, format!("redis+cluster://{},{}", addrs[0], addrs[1])))
}

/// `redis-cli -p PORT ARGS…`'s output ("" when it fails).
fn cli(port: &str, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", port])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// A free loopback port; for a Cluster node, one whose bus port (+10,000) is free too.
fn free_port(bus: bool) -> Result<u16> {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let port = listener.local_addr().context("local address")?.port();
        if !bus || (port < 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()) {
            return Ok(port);
        }
    }
    bail!("no free port pair for a Cluster node")
}

async fn until_accepting(port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            bail!("nothing accepts on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Polls `check` (a blocking `redis-cli` call) until it holds, within [`READY_TIMEOUT`].
async fn until(check: impl Fn() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            bail!("not ready within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Waits until the node answers `GET /api/ready` with 200 (its broker connected).
async fn until_ready(addr: SocketAddr) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let mut answer = Vec::new();
        if let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await {
            let request = b"GET /api/ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
            if socket.write_all(request).await.is_ok() {
                let _ = socket.read_to_end(&mut answer).await;
            }
        }
        if answer.starts_with(b"HTTP/1.1 200") {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{addr} never became ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
