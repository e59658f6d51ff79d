//! The servers under test as child processes: ssehub, nginx with the nchan module from a
//! generated configuration, Pushpin (see [`crate::pushpin`]) and the minimal broadcaster. Each
//! runs in its own process group, pinned to its own CPU, with `PR_SET_PDEATHSIG` so it dies
//! with us; dropping a [`Server`] kills the whole group, so an
//! error or Ctrl-C leaves no stray process.

#![allow(unsafe_code)] // system calls tokio does not wrap; each block says why it is sound

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::bail;
use crate::error::{Context, Result};
use crate::sys;

mod kind;

pub use self::kind::{Options, Programs, ServerKind};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    /// Which one.
    pub kind: ServerKind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where publishes go (Pushpin's publish API; the same as `addr` for the others).
    pub publish_addr: SocketAddr,
    child: Child,
    /// Pushpin's GRIP backend, served by this process.
    backend: Option<tokio::task::JoinHandle<()>>,
    dir: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl Server {
    /// Starts a fresh server with its files under `dir` and waits until it accepts connections.
    pub async fn start(
        kind: ServerKind,
        programs: &Programs,
        dir: &Path,
        options: Options,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr = free_port().context("finding a free port")?;
        let mut publish_addr = addr;
        let mut backend = None;
        let (mut command, log) = match kind {
            ServerKind::Ssehub => {
                let mut command = Command::new(&programs.ssehub);
                command
                    .arg("--bind")
                    .arg(addr.to_string())
                    .env("RUST_LOG", "warn");
                if options.many_streams {
                    command.args(["--max-streams", "19500", "--max-connections", "19900"]);
                }
                if let Some(max) = options.max_topics {
                    command.arg("--max-topics").arg(max.to_string());
                }
                if let Some(url) = &options.broker {
                    command.arg("--broker").arg(url);
                }
                command.args(&options.args);
                (command, dir.join("ssehub.log"))
            }
            ServerKind::Redis => {
                // Persistence as a production cluster would run it (fsync once a second).
                let mut command = Command::new(&programs.redis);
                command
                    .arg("--port")
                    .arg(addr.port().to_string())
                    .args(["--bind", "127.0.0.1", "--save", ""])
                    .args(["--appendonly", "yes", "--appendfsync", "everysec"])
                    .arg("--dir")
                    .arg(dir);
                (command, dir.join("stdout.log"))
            }
            ServerKind::Nchan => {
                let config = dir.join("nginx.conf");
                std::fs::write(
                    &config,
                    crate::nchan::config(dir, addr, &programs.nchan_module),
                )
                .with_context(|| format!("writing {}", config.display()))?;
                let mut command = Command::new(&programs.nginx);
                command
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .arg("-c")
                    .arg(&config)
                    .arg("-p")
                    .arg(dir);
                (command, dir.join("error.log"))
            }
            ServerKind::Minimal => {
                let mut command = Command::new(&programs.minimal);
                command.arg(addr.to_string());
                (command, dir.join("stdout.log"))
            }
            ServerKind::Pushpin => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding the GRIP backend")?;
                let zmq = [
                    free_port()?.port(),
                    free_port()?.port(),
                    free_port()?.port(),
                ];
                let ports = crate::pushpin::Ports {
                    http: addr,
                    publish: free_port().context("finding a free port")?,
                    backend: listener.local_addr().context("backend address")?,
                    zmq,
                };
                publish_addr = ports.publish;
                backend = Some(crate::pushpin::backend(listener));
                let config = crate::pushpin::prepare(dir, &ports)?;
                let mut command = Command::new(&programs.pushpin);
                command.arg("--config").arg(&config).arg("--merge-output");
                (command, dir.join("stdout.log"))
            }
        };
        let out = File::create(dir.join("stdout.log")).context("creating the server's log")?;
        let err = out.try_clone().context("duplicating the log handle")?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let cpu = programs.cpu;
        // SAFETY: only async-signal-safe system calls run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(cpu) = cpu {
                    sys::pin_to_cpu(cpu)?;
                }
                Ok(())
            });
        }
        let program = match kind {
            ServerKind::Ssehub => &programs.ssehub,
            ServerKind::Nchan => &programs.nginx,
            ServerKind::Pushpin => &programs.pushpin,
            ServerKind::Minimal => &programs.minimal,
            ServerKind::Redis => &programs.redis,
        };
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut server = Self {
            kind,
            addr,
            publish_addr,
            child,
            backend,
            dir: dir.to_owned(),
            log: log.clone(),
            stopped: false,
        };
        server
            .wait_ready()
            .await
            .with_context(|| format!("starting {} (log: {})", kind.name(), log.display()))?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.check_alive()?;
            let accepting = tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && tokio::net::TcpStream::connect(self.publish_addr)
                    .await
                    .is_ok();
            let workers_up = match self.kind {
                ServerKind::Nchan => !sys::children(self.pid()).is_empty(),
                // The runner, condure, zurl, the proxy and the handler.
                ServerKind::Pushpin => self.pids().len() >= 5,
                _ => true,
            };
            if accepting && workers_up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "not accepting connections on {} after {START_TIMEOUT:?}",
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's processes: the main one and its descendants (nginx's worker, Pushpin's
    /// services).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        let mut at = 0;
        while at < pids.len() {
            let children = sys::children(pids[at]);
            pids.extend(children);
            at += 1;
        }
        pids
    }

    /// Sends SIGTERM to the server's main process only (the shutdown scenario).
    pub fn terminate(&self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// The exit status, if the main process has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().context("checking the server")
    }

    /// Resident memory of all its processes, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        self.pids().into_iter().map(sys::rss_kib).sum()
    }

    /// Fails if the server has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking the server")? {
            self.stopped = true;
            bail!(
                "{} exited ({status}); log tail:\n{}",
                self.kind.name(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for path in [&self.log, &self.dir.join("stdout.log")] {
            if let Ok(content) = std::fs::read_to_string(path) {
                let lines: Vec<&str> = content.lines().collect();
                let from = lines.len().saturating_sub(10);
                text.extend(lines[from..].iter().map(|l| format!("    {l}\n")));
            }
        }
        text
    }

    /// Stops it: SIGTERM to its group, SIGKILL after a grace period.
    pub async fn stop(mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if self
                .child
                .try_wait()
                .context("waiting for the server")?
                .is_some()
            {
                break;
            }
            if Instant::now() >= deadline {
                self.signal(libc::SIGKILL);
                self.child.wait().context("waiting for the killed server")?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Anything left in the group (an nginx worker whose master died first).
        self.signal(libc::SIGKILL);
        self.stopped = true;
        if let Some(backend) = self.backend.take() {
            backend.abort();
        }
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) {
        let group = self.pid() as libc::pid_t;
        // SAFETY: kill has no memory preconditions; the group is the one we created.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.abort();
        }
        if !self.stopped {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on now.
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    listener.local_addr().context("local address")
}
