//! HTTPS with HTTP/2: certificates made by `openssl` here, a real rustls client (reqwest),
//! ALPN, many streams on one connection, clear errors for bad pairs, and reload while serving.

use crate::common;

use std::time::Duration;

use common::redis::make_certificates;
use common::{message, SseStream, PATIENCE};
use futures_util::future::join_all;
use ssehub::Config;
use tokio::sync::oneshot;

struct Served {
    base: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

fn dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ssehub-tls-{name}-{}", std::process::id()))
}

async fn serve_tls(name: &str) -> (Served, std::path::PathBuf) {
    serve_tls_with(name, |_| {}).await
}

/// [`serve_tls`] with the configuration adjusted; the CA is `DIR/ca.pem`.
async fn serve_tls_with(
    name: &str,
    adjust: impl FnOnce(&mut Config),
) -> (Served, std::path::PathBuf) {
    let dir = dir(name);
    let (ca, cert, key) = make_certificates(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::with_bind(addr);
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    adjust(&mut config);
    let state = ssehub::app::in_memory(config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ssehub::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let served = Served {
        base: format!("https://localhost:{}", addr.port()),
        client,
        stop: Some(stop),
    };
    (served, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_negotiates_http2_and_thirty_streams_share_it() {
    let (served, dir) = serve_tls("h2").await;
    let ping = served
        .client
        .get(format!("{}/api/ping", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.version(), reqwest::Version::HTTP_2);
    // Thirty live streams on thirty topics: over HTTP/1 a browser would stall at six.
    let streams = join_all((0..30).map(|i| {
        let url = format!("{}/stream?mode=live&topic=tls/t{i}", served.base);
        let client = served.client.clone();
        async move {
            let mut stream = SseStream::open(&client, &url, &[]).await;
            assert_eq!(stream.status, 200);
            assert_eq!(stream.next().await.unwrap().event, "keepalive");
            stream
        }
    }))
    .await;
    for i in 0..30 {
        let response = served
            .client
            .post(format!("{}/api/messages", served.base))
            .json(&serde_json::json!({"message": format!("to {i}"), "topic": format!("tls/t{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    for (i, mut stream) in streams.into_iter().enumerate() {
        let event = stream.next_event().await.unwrap();
        assert_eq!(message(&event), format!("to {i}"));
    }
    // The Mercure endpoint too.
    let mut mercure = SseStream::open(
        &served.client,
        &format!("{}/.well-known/mercure?topic=https://x.test/a", served.base),
        &[],
    )
    .await;
    assert_eq!(mercure.status, 200);
    let id = served
        .client
        .post(format!("{}/.well-known/mercure", served.base))
        .form(&[("topic", "https://x.test/a"), ("data", "over h2")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let event = tokio::time::timeout(PATIENCE, mercure.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.data.as_str(), event.id.as_deref()),
        ("over h2", Some(id.as_str()))
    );
    drop(served.stop);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_missing_or_mismatched_pair_is_a_clear_start_error() {
    let one = dir("one");
    let two = dir("two");
    let (_, cert_one, _) = make_certificates(&one);
    let (_, _, key_two) = make_certificates(&two);
    let mismatched = ssehub::tls::Tls::new(&cert_one, &key_two).unwrap_err();
    assert!(
        mismatched.to_string().contains("does not match"),
        "{mismatched}"
    );
    let missing = ssehub::tls::Tls::new(&one.join("nope.pem"), &key_two).unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    let _ = std::fs::remove_dir_all(one);
    let _ = std::fs::remove_dir_all(two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pair_is_served_without_a_restart_and_a_bad_one_is_ignored() {
    let (served, dir) = serve_tls("reload").await;
    let next = dir.join("next");
    let (ca_next, cert_next, key_next) = make_certificates(&next);
    let trusting_next = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca_next).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let ping = |client: &reqwest::Client| {
        let request = client.get(format!("{}/api/ping", served.base)).send();
        async move { request.await.map(|r| r.status().as_u16()).ok() }
    };
    assert_eq!(ping(&served.client).await, Some(200));
    assert_eq!(
        ping(&trusting_next).await,
        None,
        "the next CA is not in use yet"
    );
    // A broken certificate on disk is not taken: the old pair keeps serving.
    let library = ssehub::tls::Tls::new(&dir.join("server.pem"), &dir.join("server.key")).unwrap();
    std::fs::write(dir.join("server.pem"), b"not a certificate").unwrap();
    assert!(library.reload().is_err());
    // The new pair replaces the files; the server notices the change and serves it.
    std::fs::copy(&cert_next, dir.join("server.pem")).unwrap();
    std::fs::copy(&key_next, dir.join("server.key")).unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while ping(&trusting_next).await != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new pair was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // New connections from a client trusting only the old CA now fail.
    let old_only = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(ping(&old_only).await, None);
    drop(served.stop);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn plain_http_is_redirected_to_https() {
    let dir = dir("redirect");
    let (_, cert, key) = make_certificates(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain_port = common::redis::free_port();
    let mut config = Config::with_bind(addr);
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    config.redirect_http = Some(format!("127.0.0.1:{plain_port}").parse().unwrap());
    let state = ssehub::app::in_memory(config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ssehub::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let response = loop {
        match client
            .get(format!(
                "http://localhost:{plain_port}/stream?topic=a&mode=live"
            ))
            .send()
            .await
        {
            Ok(response) => break response,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("{err}"),
        }
    };
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://localhost:{}/stream?topic=a&mode=live", addr.port()).as_str()
    );
    drop(stop);
    let _ = std::fs::remove_dir_all(dir);
}

/// Over TLS the first request head gets `--header-timeout`, as in cleartext: a client that
/// completes the handshake and sends nothing is closed then, not after `--idle-timeout`.
#[tokio::test]
async fn a_silent_client_after_the_handshake_is_closed_at_the_header_deadline() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::AsyncReadExt;
    let (served, dir) = serve_tls_with("silent", |config| {
        config.header_timeout = Duration::from_millis(600);
        config.idle_timeout = Duration::from_secs(8);
    })
    .await;
    let port = served.base.rsplit(':').next().unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ca = dir.join("ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    for alpn in [None, Some(b"h2".to_vec())] {
        let mut config = client.clone();
        config.alpn_protocols = alpn.into_iter().collect();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, socket).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, async {
            // An h2 server sends its SETTINGS first; read until the close.
            while let Ok(1..) = tls.read(&mut buf).await {}
        })
        .await;
        assert!(read.is_ok(), "never closed");
        let took = started.elapsed();
        // Not before the deadline, and well before the 8 s idle deadline (CI slack).
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(4),
            "closed after {took:?}"
        );
    }
    drop(served.stop);
    let _ = std::fs::remove_dir_all(dir);
}
