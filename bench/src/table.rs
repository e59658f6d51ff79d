//! Results: what each scenario measured on each server ([`Outcome`]), the side-by-side table
//! with the ssehub / nchan ratio (and ssehub / Pushpin, ssehub / minimal when they ran), and the JSON file.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::error::{Context, Result};
use crate::servers::ServerKind;
use crate::sys::CpuShare;

/// Generator CPU above this share of its core marks a number as generator-bound.
pub const GENERATOR_BOUND: f64 = 0.90;
/// Busy time on a pinned core not charged to the process pinned there, above this share,
/// marks a number as disturbed by background load (another program, or kernel work).
pub const BACKGROUND_LOAD: f64 = 0.25;

/// Which way a number is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Larger is better (throughput).
    Higher,
    /// Smaller is better (latency, memory).
    Lower,
}

/// One number of one scenario on one server.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Row key, the same on both servers.
    pub key: String,
    /// Row label.
    pub label: String,
    /// Unit shown after the label.
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// The value (none when it could not be measured).
    pub value: Option<f64>,
    /// Whether the generator used more than 90 % of its core while measuring it.
    pub generator_bound: bool,
    /// Whether other work (not the generator, not the server) kept a pinned core busy.
    pub background_load: bool,
    /// A short qualifier shown beside the value (e.g. the rate a maximum was reached at).
    pub note: String,
}

/// What one scenario did on one server.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: &'static str,
    /// Server.
    pub server: ServerKind,
    /// Numbers for the table.
    pub metrics: Vec<Metric>,
    /// Lost or duplicated messages, failed connections: fatal in a smoke run.
    pub problems: Vec<String>,
    /// Other remarks.
    pub notes: Vec<String>,
    /// Everything measured, step by step.
    pub details: serde_json::Value,
    /// Why the scenario stopped early, if it did.
    pub error: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

impl Outcome {
    /// An empty outcome.
    pub fn new(scenario: &'static str, server: ServerKind) -> Self {
        Self {
            scenario,
            server,
            metrics: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            details: serde_json::Value::Null,
            error: None,
            seconds: 0.0,
        }
    }

    /// Adds a number; flags and a note can be added to what it returns.
    pub fn metric(
        &mut self,
        key: impl Into<String>,
        label: impl Into<String>,
        unit: &'static str,
        better: Better,
        value: Option<f64>,
    ) -> &mut Metric {
        self.metrics.push(Metric {
            key: key.into(),
            label: label.into(),
            unit,
            better,
            value,
            generator_bound: false,
            background_load: false,
            note: String::new(),
        });
        let last = self.metrics.len() - 1;
        &mut self.metrics[last]
    }
}

impl Metric {
    /// Flags the number with what the CPUs did while it was measured.
    pub fn cpu(&mut self, cpu: &CpuShare) -> &mut Self {
        self.generator_bound |= cpu.generator > GENERATOR_BOUND;
        self.background_load |= cpu.background() > BACKGROUND_LOAD;
        self
    }

    /// Sets the note shown beside the value.
    pub fn note(&mut self, note: impl Into<String>) -> &mut Self {
        self.note = note.into();
        self
    }
}

/// Formats a number with thousands separators and `decimals` decimals.
pub fn number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

fn show(metric: Option<&Metric>) -> String {
    let Some(metric) = metric else {
        return "-".into();
    };
    let mut text = match metric.value {
        None => "n/a".into(),
        Some(v) if v.abs() >= 100.0 => number(v, 0),
        Some(v) if v.abs() >= 10.0 => number(v, 1),
        Some(v) => number(v, 2),
    };
    if metric.generator_bound {
        text.push_str(" [G]");
    }
    if metric.background_load {
        text.push_str(" [B]");
    }
    if !metric.note.is_empty() {
        let _ = write!(text, " ({})", metric.note);
    }
    text
}

/// The side-by-side table, one row per metric, as Markdown.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut keys: Vec<(&str, &Metric)> = Vec::new();
    for outcome in outcomes {
        for metric in &outcome.metrics {
            if !keys.iter().any(|(k, _)| *k == metric.key) {
                keys.push((&metric.key, metric));
            }
        }
    }
    let find = |server: ServerKind, key: &str| {
        outcomes
            .iter()
            .filter(|o| o.server == server)
            .flat_map(|o| o.metrics.iter())
            .find(|m| m.key == key)
    };
    let peers: Vec<(ServerKind, &str)> = [
        (ServerKind::Nchan, "nchan"),
        (ServerKind::Pushpin, "Pushpin"),
        (ServerKind::Minimal, "minimal"),
    ]
    .into_iter()
    .filter(|(kind, _)| *kind == ServerKind::Nchan || outcomes.iter().any(|o| o.server == *kind))
    .collect();
    let mut header = vec!["metric".to_owned(), "ssehub".to_owned()];
    for (kind, name) in &peers {
        header.push(match kind {
            ServerKind::Nchan => "nginx + nchan".to_owned(),
            ServerKind::Minimal => "minimal broadcaster".to_owned(),
            _ => (*name).to_owned(),
        });
    }
    for (_, name) in &peers {
        header.push(format!("ssehub / {name}"));
    }
    let mut rows = vec![header];
    for (key, first) in &keys {
        let ours = find(ServerKind::Ssehub, key);
        let mut row = vec![
            format!("{} [{}]", first.label, first.unit).replace('|', "/"),
            show(ours).replace('|', "/"),
        ];
        let mut ratios = Vec::new();
        for (kind, _) in &peers {
            let theirs = find(*kind, key);
            row.push(show(theirs).replace('|', "/"));
            ratios.push(
                match (ours.and_then(|m| m.value), theirs.and_then(|m| m.value)) {
                    (Some(a), Some(b)) if b != 0.0 => {
                        let direction = match first.better {
                            Better::Higher => "higher is better",
                            Better::Lower => "lower is better",
                        };
                        format!("{:.2}x ({direction})", a / b)
                    }
                    _ => "-".into(),
                },
            );
        }
        row.extend(ratios);
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    if c == 0 {
                        "-".repeat(w)
                    } else {
                        format!("{}:", "-".repeat(w.saturating_sub(1)))
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} |", rule.join(" | "));
        }
    }
    out
}

/// Writes `value` as pretty JSON to `path`, creating its directory.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).context("encoding results")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_table() {
        assert_eq!(number(1234567.0, 0), "1,234,567");
        assert_eq!(number(-1234.5, 1), "-1,234.5");
        assert_eq!(number(12.0, 2), "12.00");
        let mut a = Outcome::new("x", ServerKind::Ssehub);
        a.metric("k", "events", "ev/s", Better::Higher, Some(2000.0))
            .cpu(&CpuShare {
                generator: 0.95,
                ..CpuShare::default()
            });
        let mut b = Outcome::new("x", ServerKind::Nchan);
        b.metric("k", "events", "ev/s", Better::Higher, Some(1000.0))
            .note("at 5/s");
        let table = render(&[a, b]);
        assert!(table.contains("2,000 [G]"), "{table}");
        assert!(table.contains("1,000 (at 5/s)"), "{table}");
        assert!(table.contains("2.00x (higher is better)"), "{table}");
    }
}
