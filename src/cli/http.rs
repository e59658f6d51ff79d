//! The client side of HTTP for `ssehub publish` and `ssehub subscribe`: one HTTP/1.1 connection
//! (hyper's `client::conn::http1`) over TCP, or over rustls for `https://` (the public roots of
//! `webpki-roots`, plus `--ca`), reused for consecutive requests. Nothing more is needed to talk
//! to one hub, so no pooling client is pulled in.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::client::{ClientArgs, ClientError, ANSWER_TIMEOUT, CONNECT_TIMEOUT};

/// The largest answer to a publish this client reads.
const MAX_ANSWER: usize = 1 << 20;

/// The hub: its base URL and, for `https://`, how to check its certificate.
pub struct Endpoint {
    base: Url,
    tls: Option<TlsConnector>,
}

impl Endpoint {
    /// Parses `--url` and prepares TLS for `https://`.
    ///
    /// # Errors
    /// A URL that does not parse or is not `http`/`https` with a host, or an unreadable `--ca`.
    pub fn new(args: &ClientArgs) -> Result<Self, ClientError> {
        let usage = |text: String| ClientError::Usage(text);
        let base = Url::parse(&args.url).map_err(|e| usage(format!("--url {}: {e}", args.url)))?;
        if base.host_str().is_none() {
            return Err(usage(format!("--url {}: no host", args.url)));
        }
        let tls = match base.scheme() {
            "http" => None,
            "https" => Some(connector(args.ca.as_deref())?),
            other => return Err(usage(format!("--url: unsupported scheme {other:?}"))),
        };
        Ok(Self { base, tls })
    }

    /// The URL of `path` under the base URL (whose own path is a prefix), with `query`. A base
    /// that already ends with `path` is used as is (`--url https://example.com/.well-known/mercure`).
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        if !prefix.ends_with(path) {
            url.set_path(&format!("{prefix}{path}"));
        }
        url.set_query(None);
        url.set_fragment(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Opens a connection to the hub.
    ///
    /// # Errors
    /// [`ClientError::Connection`] when it cannot be reached or the TLS handshake fails.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let host = self.base.host_str().unwrap_or("localhost").to_owned();
        let port = self.base.port_or_known_default().unwrap_or(80);
        let failed = |e: &dyn std::fmt::Display| {
            ClientError::Connection(format!("cannot connect to {}: {e}", self.base))
        };
        let address = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((address, port)))
            .await
            .map_err(|_| failed(&"timed out"))?
            .map_err(|e| failed(&e))?;
        let _ = tcp.set_nodelay(true);
        let sender = match &self.tls {
            None => handshake(tcp).await?,
            Some(connector) => {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(bare.to_owned()).map_err(|e| failed(&e))?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| failed(&"TLS handshake timed out"))?
                    .map_err(|e| failed(&e))?;
                handshake(tls).await?
            }
        };
        let authority = match self.base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Ok(Connection {
            sender,
            authority,
            unsent: false,
        })
    }
}

/// Builds the rustls connector: public roots, plus the certificates of `ca`. Only HTTP/1.1 is
/// offered, which is what [`Connection`] speaks.
fn connector(ca: Option<&std::path::Path>) -> Result<TlsConnector, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let usage =
            |e: &dyn std::fmt::Display| ClientError::Usage(format!("--ca {}: {e}", path.display()));
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| usage(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| usage(&e))?;
        if certificates.is_empty() {
            return Err(usage(&"no PEM certificate in the file"));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| usage(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Usage(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ClientError::Connection(format!("HTTP handshake: {e}")))?;
    // The connection's I/O runs beside the requests; it ends when both sides are done.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One open connection to the hub.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The `Host` header: the URL's host and port as written.
    authority: String,
    /// The last request failed before it was written.
    unsent: bool,
}

impl Connection {
    /// Whether another request may be sent on this connection.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends a request for `url` and waits for the response head.
    ///
    /// # Errors
    /// [`ClientError::Connection`] when the connection fails or no answer comes within
    /// [`ANSWER_TIMEOUT`].
    pub async fn send(
        &mut self,
        method: Method,
        url: &Url,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        self.unsent = false;
        let mut request = Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, &self.authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("ssehub/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ClientError::Usage(format!("building the request: {e}")))?;
        let lost = |e: &dyn std::fmt::Display| ClientError::Connection(format!("{url}: {e}"));
        self.unsent = true;
        self.sender.ready().await.map_err(|e| lost(&e))?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.sender.send_request(request))
            .await
            .map_err(|_| lost(&"no answer in time"));
        match answer? {
            Ok(response) => Ok(response),
            Err(err) => {
                self.unsent = err.is_canceled();
                Err(lost(&err))
            }
        }
    }

    /// Whether the last failed request was never written (the connection had closed, e.g. a
    /// kept-alive one the server timed out): sending it again cannot duplicate it.
    pub fn failed_unsent(&self) -> bool {
        self.unsent
    }
}

/// Reads a (short) response body whole, as text.
///
/// # Errors
/// [`ClientError::Connection`] when it breaks off or takes over [`ANSWER_TIMEOUT`];
/// [`ClientError::Protocol`] past 1 MiB.
pub async fn body_text(response: Response<Incoming>) -> Result<String, ClientError> {
    let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER);
    let bytes = tokio::time::timeout(ANSWER_TIMEOUT, limited.collect())
        .await
        .map_err(|_| ClientError::Connection("the answer did not arrive in time".into()))?
        .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}

/// The error of a response with an error status: the status and the server's JSON error.
pub async fn refused(response: Response<Incoming>) -> ClientError {
    let status = response.status();
    let status = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    let body = body_text(response).await.unwrap_or_default();
    ClientError::Refused { status, body }
}
