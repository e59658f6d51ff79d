//! A build without the `tls` feature: no certificate can be loaded, so no TLS server ever
//! exists, and `--tls-cert` is refused at start with a clear error.

use std::path::Path;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("--tls-cert needs ssehub built with the `tls` feature")]
pub struct TlsError;

/// Never made: [`Tls::new`] always fails in this build.
#[derive(Debug, Clone)]
pub enum Tls {}

impl Tls {
    /// Refuses: this build has no TLS.
    ///
    /// # Errors
    /// Always.
    pub fn new(_cert: &Path, _key: &Path) -> Result<Self, TlsError> {
        Err(TlsError)
    }

    /// Unreachable: no `Tls` exists.
    pub async fn watch(self) {
        match self {}
    }
}

/// Unreachable: `--redirect-http` requires `--tls-cert`, which this build refuses first.
///
/// # Errors
/// Never.
pub async fn redirect(
    _listener: tokio::net::TcpListener,
    _https_port: u16,
    _stop: crate::shutdown::Shutdown,
) -> std::io::Result<()> {
    Ok(())
}
