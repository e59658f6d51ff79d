//! HTTPS for the TLS scenarios: a private CA and a server certificate for 127.0.0.1 made with
//! the `openssl` command (installed by `scripts/test`), and rustls client configurations that
//! trust that CA and offer ALPN `http/1.1` or `h2`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::bail;
use crate::error::{Context, Result};

/// The files ssehub is started with, and the CA the subscribers trust.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server certificate (PEM), for `--tls-cert`.
    pub cert: PathBuf,
    /// Its key (PEM), for `--tls-key`.
    pub key: PathBuf,
}

/// Which HTTP version the client asks for with ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1`.
    Http1,
    /// `h2`.
    H2,
}

impl Certificates {
    /// Makes a CA and a P-256 server certificate for `127.0.0.1` in `dir`.
    pub fn make(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let run = |args: &[&str]| -> Result<()> {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("running openssl (apt-get install openssl)")?;
            if !status.success() {
                bail!("openssl {} failed ({status})", args.join(" "));
            }
            Ok(())
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        let args = |text: &str| {
            text.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let call = |text: String| {
            let owned = args(&text);
            let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
            run(&refs)
        };
        call(format!(
            "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=ssehub-bench-CA"
        ))?;
        call(format!(
            "req {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
        ))?;
        std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n")
            .context("writing san.cnf")?;
        call(
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.cnf"
                .to_owned(),
        )?;
        Ok(Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        })
    }

    /// A client configuration trusting the CA and offering `alpn`.
    pub fn client(&self, alpn: Alpn) -> Result<Arc<rustls::ClientConfig>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).context("reading the CA")? {
            roots
                .add(cert.context("parsing the CA")?)
                .context("adding the CA")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![match alpn {
            Alpn::Http1 => b"http/1.1".to_vec(),
            Alpn::H2 => b"h2".to_vec(),
        }];
        Ok(Arc::new(config))
    }
}
