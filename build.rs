//! Records the git commit the binary is built from, for `ssehub --version`: `SSEHUB_COMMIT`
//! from the environment when set (a build from a source archive, a package), else
//! `git rev-parse --short=12 HEAD`, else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SSEHUB_COMMIT");
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("SSEHUB_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let output = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let text = String::from_utf8(output.stdout).ok()?;
            (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    // One line of visible ASCII: it is printed as is.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect();
    println!("cargo:rustc-env=SSEHUB_COMMIT={commit}");
}
