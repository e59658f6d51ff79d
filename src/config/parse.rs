//! Parsing flag values (durations, sizes) and reading the process' open-file limit.

use std::time::Duration;

use crate::broker::durable::Fsync;

/// The process' soft open-file limit (what `main` raised it to), or 1024 if unknown.
pub fn open_file_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct we pass.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        if ok {
            return usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        }
    }
    1024
}

/// `--fsync always|interval`: the broker's [`Fsync`] as a command-line value (here, so the
/// broker does not depend on the CLI library).
impl clap::ValueEnum for Fsync {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Always, Self::Interval]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let (name, help) = match self {
            Self::Always => ("always", "Before the publish is answered"),
            Self::Interval => ("interval", "Within 100 ms"),
        };
        Some(clap::builder::PossibleValue::new(name).help(help))
    }
}

/// Parses `128MiB`, `64KiB`, `1GiB`, `500kB` or a plain number of bytes.
pub(super) fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (use e.g. 128MiB, 64KiB, 1000000)"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" | "K" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" | "M" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" | "G" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|err| format!("{err} (use e.g. 15s, 250ms, 1h)"))
}
