//! HTTPS: rustls (no OpenSSL) with ALPN `h2` and `http/1.1` on the same port, so a browser
//! multiplexes all of a page's streams over one HTTP/2 connection (over HTTP/1 it opens at most
//! six per origin, and a seventh `EventSource` hangs).
//!
//! The certificate and key are read at start (a missing, unreadable or mismatched pair is a
//! clear start-up error) and again on SIGHUP or when either file changes (checked every few
//! seconds); a pair that fails to load then is logged and the old one kept. Connections already
//! open keep the certificate they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// How often the files are checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(String);

/// The server's TLS: an acceptor whose certificate can be replaced while it runs.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<Reloading>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.certificate.cert)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the files last loaded.
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a certificate chain and its private key, checking they belong together.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let fail = |what: &str, path: &Path, err: &dyn std::fmt::Display| {
        TlsError(format!("{what} {}: {err}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail("reading the certificate", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail("reading the certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(fail(
            "no certificate in",
            cert,
            &"the file holds no PEM certificate",
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| fail("reading the key", key, &e))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| fail("using the key", key, &e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| fail("the key does not match the certificate", cert, &e))?;
    Ok(certified)
}

impl Tls {
    /// Loads the pair and builds the acceptor.
    ///
    /// # Errors
    /// A missing, unreadable or mismatched pair.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certificate = Arc::new(Reloading {
            current: RwLock::new(Arc::new(load(cert, key)?)),
            stamps: Mutex::new((modified(cert), modified(key))),
            cert: cert.to_owned(),
            key: key.to_owned(),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Loads the files again; keeps the current pair if the new one fails.
    ///
    /// # Errors
    /// The new pair cannot be used (the old one stays in service).
    pub fn reload(&self) -> Result<(), TlsError> {
        let reloading = &self.certificate;
        let fresh = load(&reloading.cert, &reloading.key)?;
        *reloading.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        *reloading.stamps.lock().unwrap_or_else(|p| p.into_inner()) =
            (modified(&reloading.cert), modified(&reloading.key));
        tracing::info!(cert = %reloading.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    fn changed(&self) -> bool {
        let reloading = &self.certificate;
        let now = (modified(&reloading.cert), modified(&reloading.key));
        *reloading.stamps.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Reloads on SIGHUP and when the files change, until the process ends.
    pub async fn watch(self) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(WATCH_EVERY);
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<Option<()>>();
            let due = tokio::select! {
                _ = signalled => true,
                _ = tick.tick() => self.changed(),
            };
            if due {
                if let Err(err) = self.reload() {
                    tracing::warn!(%err, "TLS certificate not reloaded; keeping the current one");
                }
            }
        }
    }
}

/// Serves `listener` (cleartext) by redirecting every request to the same path and query on
/// `https://HOST[:https_port]`, until `stop` is cancelled.
pub async fn redirect(
    listener: tokio::net::TcpListener,
    https_port: u16,
    stop: crate::shutdown::Shutdown,
) -> std::io::Result<()> {
    use axum::http::{header, StatusCode, Uri};
    use axum::response::IntoResponse;
    let to_https = move |headers: axum::http::HeaderMap, uri: Uri| async move {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{port}{path}");
        (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response()
    };
    let router = axum::Router::new().fallback(to_https);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}
