//! The few operating-system facts the benchmark needs: the open-file limit, CPU pinning, CPU
//! time (ours from `getrusage`, a server's from `/proc/<pid>/stat`), resident memory from
//! `/proc/<pid>/status` and a description of the machine.

#![allow(unsafe_code)] // system calls tokio does not wrap; each block says why it is sound

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Context, Result};

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_open_file_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Pins the calling thread (and the threads and children it starts later) to one CPU.
/// Also used between `fork` and `exec` for the servers, so it only makes a system call.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for cpu <
    // CPU_SETSIZE (checked by the caller through `allowed_cpus`).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// User plus system CPU time this process has used.
pub fn own_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
}

/// The CPUs the generator and the servers are pinned to, for [`CpuWindow`]'s per-core
/// readings (set once at start).
static CORES: OnceLock<(Option<usize>, Option<usize>)> = OnceLock::new();

/// Records which CPUs the generator and the servers run on.
pub fn set_cores(generator: Option<usize>, server: Option<usize>) {
    let _ = CORES.set((generator, server));
}

/// Measures the CPU share of one core used over a window, by this process, by a set of server
/// processes, and the busy share of the two pinned cores (which also counts the kernel's
/// softirq work for loopback TCP, not charged to any process).
#[derive(Debug, Clone, Copy)]
pub struct CpuWindow {
    wall: Instant,
    own: Duration,
    server: Duration,
    generator_core: Option<(u64, u64)>,
    server_core: Option<(u64, u64)>,
}

/// What a [`CpuWindow`] saw: fractions of one core (1.0 = a whole core).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShare {
    /// The load generator (this process, getrusage user + system).
    pub generator: f64,
    /// The server's processes together (/proc/<pid>/stat user + system).
    pub server: f64,
    /// Busy share of the generator's core (all work on it, softirq included).
    pub generator_core: Option<f64>,
    /// Busy share of the server's core.
    pub server_core: Option<f64>,
}

impl CpuShare {
    /// Busy time on the pinned cores not charged to the process pinned there (the larger of
    /// the two): another program, or kernel work on their behalf.
    pub fn background(&self) -> f64 {
        let generator = self.generator_core.map_or(0.0, |c| c - self.generator);
        let server = self.server_core.map_or(0.0, |c| c - self.server);
        generator.max(server).max(0.0)
    }
}

impl CpuWindow {
    /// Starts a window; `pids` are the server's processes.
    pub fn start(pids: &[u32]) -> Self {
        let (generator, server) = CORES.get().copied().unwrap_or((None, None));
        Self {
            wall: Instant::now(),
            own: own_cpu_time(),
            server: pids.iter().map(|&pid| process_cpu_time(pid)).sum(),
            generator_core: generator.and_then(core_ticks),
            server_core: server.and_then(core_ticks),
        }
    }

    /// Ends the window.
    pub fn finish(&self, pids: &[u32]) -> CpuShare {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let server: Duration = pids.iter().map(|&pid| process_cpu_time(pid)).sum();
        let (generator_cpu, server_cpu) = CORES.get().copied().unwrap_or((None, None));
        // Core counters tick every 10 ms: too coarse for a shorter window.
        let long_enough = wall >= 0.5;
        let busy = |start: Option<(u64, u64)>, cpu: Option<usize>| {
            let (busy0, total0) = start.filter(|_| long_enough)?;
            let (busy1, total1) = core_ticks(cpu?)?;
            let total = total1.saturating_sub(total0);
            (total > 0).then(|| busy1.saturating_sub(busy0) as f64 / total as f64)
        };
        CpuShare {
            generator: (own_cpu_time().saturating_sub(self.own)).as_secs_f64() / wall,
            server: server.saturating_sub(self.server).as_secs_f64() / wall,
            generator_core: busy(self.generator_core, generator_cpu),
            server_core: busy(self.server_core, server_cpu),
        }
    }
}

/// Busy share of all CPUs together over `window` (1.0 = every CPU busy).
pub async fn machine_busy(window: Duration) -> f64 {
    let before = cpu_ticks("cpu");
    tokio::time::sleep(window).await;
    match (before, cpu_ticks("cpu")) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            b1.saturating_sub(b0) as f64 / (t1 - t0) as f64
        }
        _ => 0.0,
    }
}

/// (busy, total) jiffies of one CPU from /proc/stat; busy leaves out idle, iowait and steal.
fn core_ticks(cpu: usize) -> Option<(u64, u64)> {
    cpu_ticks(&format!("cpu{cpu}"))
}

fn cpu_ticks(name: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let busy = total - v[3] - v[4] - v[7];
    Some((busy, total))
}

/// User plus system CPU time of a process (zero if it is gone).
pub fn process_cpu_time(pid: u32) -> Duration {
    let (user, system) = process_cpu_split(pid);
    user + system
}

/// User and system CPU time of a process, apart (zeros if it is gone).
pub fn process_cpu_split(pid: u32) -> (Duration, Duration) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let time = |i: usize| {
        let ticks = fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_secs_f64(ticks as f64 / hz)
    };
    (time(11), time(12))
}

/// Resident set size of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// Direct children of a process.
pub fn children(pid: u32) -> Vec<u32> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    // Kernels without CONFIG_PROC_CHILDREN: scan every process's parent.
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs online.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// The open-file limit in force for the generator.
    pub open_file_limit: u64,
}

impl Machine {
    /// Reads the facts from /proc.
    pub fn describe(open_file_limit: u64) -> Self {
        let read = |path: &str| std::fs::read_to_string(Path::new(path)).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        // SAFETY: sysconf has no preconditions.
        let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
        Self {
            nproc,
            cpu_model,
            memory_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            open_file_limit,
        }
    }
}
