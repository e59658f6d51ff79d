//! Asymmetric keys and the real binary: RSA (RS256), EC (ES256) and Ed25519 (EdDSA) keys made
//! by `openssl`, configured as PEM text, as a file and as a JWK Set with `kid`s; then
//! `ssehub token` minting tokens the server accepts, and the Mercure environment names.

use crate::common;

use common::auth::*;
use common::{spawn_app, spawn_binary, spawn_binary_env, TestApp};
use jsonwebtoken::Algorithm;
use serde_json::json;

/// A server whose publisher key is `key` for `alg`.
async fn keyed_app(key: String, alg: &str) -> TestApp {
    let alg = alg.to_owned();
    spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(key);
        c.auth.keys.publisher_jwt_alg = Some(alg);
    })
    .await
}

/// The public key as PEM text and as a file both verify tokens of the private key, and
/// refuse those of another key of the same kind and HS256 tokens made with the public key.
async fn asymmetric(kind: &str, algorithm: Algorithm, alg: &str) {
    let pair = KeyPair::generate(kind);
    let stranger = KeyPair::generate(kind);
    let claims = legacy(&["a/*"], &[]);
    let good = pair.sign(algorithm, None, &claims);
    let foreign = stranger.sign(algorithm, None, &claims);
    let confused = hs256(&pair.public_pem, &claims);
    let path = pair.public_path.to_str().unwrap().to_owned();
    for key in [pair.public_pem.clone(), path] {
        let app = keyed_app(key, alg).await;
        let reply = publish_as(&app, Some(&good), "a/x").await;
        assert_eq!(reply.status, 201, "{alg}: {reply:?}");
        publish_as(&app, Some(&good), "b").await.assert_refused(
            403,
            Some(INSUFFICIENT_SCOPE),
            FORBIDDEN,
            &good,
        );
        for token in [&foreign, &confused] {
            publish_as(&app, Some(token), "a/x").await.assert_refused(
                401,
                Some(INVALID_TOKEN),
                INVALID,
                token,
            );
        }
    }
}

#[tokio::test]
async fn rsa_keys_verify_rs256_tokens() {
    asymmetric("rsa", Algorithm::RS256, "RS256").await;
}

#[tokio::test]
async fn ec_keys_verify_es256_tokens() {
    asymmetric("ec", Algorithm::ES256, "ES256").await;
}

#[tokio::test]
async fn ed25519_keys_verify_eddsa_tokens() {
    asymmetric("ed25519", Algorithm::EdDSA, "EdDSA").await;
}

#[tokio::test]
async fn a_shared_jwt_key_serves_both_roles() {
    let pair = KeyPair::generate("ec");
    let pem = pair.public_pem.clone();
    let app = spawn_app(|c| {
        c.auth.keys.jwt_key = Some(pem);
        c.auth.keys.jwt_alg = Some("ES256".into());
    })
    .await;
    let token = pair.sign(Algorithm::ES256, None, &legacy(&["x"], &["x"]));
    let auth = bearer(&token);
    let mut stream = app
        .stream_with("/stream?mode=live&topic=x", &[("authorization", &auth)])
        .await;
    let body = json!({"message": "private", "topic": "x", "private": true});
    let reply = post_message(&app.client, &base(&app), Some(&token), &body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let event = stream.next_event().await.unwrap();
    assert_eq!(common::message(&event), "private");
}

#[tokio::test]
async fn a_jwk_set_with_kids_is_trusted() {
    let rsa = KeyPair::generate("rsa");
    let ed = KeyPair::generate("ed25519");
    let dir = TempDir::new("jwks");
    let file = dir.0.join("jwks.json");
    let set = json!({"keys": [rsa.jwk("RS256", "rsa-1"), ed.jwk("EdDSA", "ed-1")]});
    std::fs::write(&file, set.to_string()).unwrap();
    let app = spawn_app(|c| c.auth.jwks_file = Some(file.clone())).await;
    let claims = legacy(&["*"], &[]);
    for token in [
        rsa.sign(Algorithm::RS256, Some("rsa-1"), &claims),
        ed.sign(Algorithm::EdDSA, Some("ed-1"), &claims),
        // No kid: every key of the algorithm is tried.
        ed.sign(Algorithm::EdDSA, None, &claims),
    ] {
        let reply = publish_as(&app, Some(&token), "a").await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let stranger = KeyPair::generate("rsa");
    for token in [
        // A kid naming another key, or no key of the set.
        rsa.sign(Algorithm::RS256, Some("ed-1"), &claims),
        rsa.sign(Algorithm::RS256, Some("unknown"), &claims),
        stranger.sign(Algorithm::RS256, Some("rsa-1"), &claims),
        // An algorithm the set has no key for.
        rsa.sign(Algorithm::PS256, Some("rsa-1"), &claims),
        hs256(SECRET, &claims),
    ] {
        publish_as(&app, Some(&token), "a").await.assert_refused(
            401,
            Some(INVALID_TOKEN),
            INVALID,
            &token,
        );
    }
    publish_as(&app, None, "a")
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
}

/// Runs `ssehub token` with `args` and `env`; returns the token it printed.
fn mint(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssehub"))
        .arg("token")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ssehub token {args:?}: {stderr}");
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3, "{token:?}");
    token.trim().to_owned()
}

/// `POST /api/messages` on a spawned binary.
async fn publish_to(addr: &str, token: Option<&str>, topic: &str) -> Reply {
    let body = json!({"message": "m", "topic": topic});
    post_message(
        &reqwest::Client::new(),
        &format!("http://{addr}"),
        token,
        &body,
    )
    .await
}

const KEY: &str = "cli-secret-that-is-long-enough-for-hs256";

#[tokio::test]
async fn ssehub_token_mints_legacy_tokens_the_server_accepts() {
    let (_server, addr) = spawn_binary(&["--jwt-key", KEY]).await;
    let token = mint(&["--publish", "a/*", "--jwt-key", KEY], &[]);
    let reply = publish_to(&addr, Some(&token), "a/x").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    publish_to(&addr, Some(&token), "b").await.assert_refused(
        403,
        Some(INSUFFICIENT_SCOPE),
        FORBIDDEN,
        &token,
    );
    publish_to(&addr, None, "a/x")
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let other = mint(&["--publish", "*", "--jwt-key", "another-key"], &[]);
    publish_to(&addr, Some(&other), "a/x").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &other,
    );
}

#[tokio::test]
async fn ssehub_token_mints_draft_08_tokens_for_the_resource_identifier() {
    let resource = "https://hub.example/.well-known/mercure";
    let args = ["--jwt-key", KEY, "--resource-identifier", resource];
    let (_server, addr) = spawn_binary(&args).await;
    let draft = ["--format", "draft-08", "--publish", "a/x", "--jwt-key", KEY];
    let token = mint(&[&draft[..], &["--audience", resource]].concat(), &[]);
    let reply = publish_to(&addr, Some(&token), "a/x").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    publish_to(&addr, Some(&token), "a/y").await.assert_refused(
        403,
        Some(INSUFFICIENT_SCOPE),
        FORBIDDEN,
        &token,
    );
    let elsewhere = mint(
        &[&draft[..], &["--audience", "https://x.test/"]].concat(),
        &[],
    );
    publish_to(&addr, Some(&elsewhere), "a/x")
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &elsewhere);
    // With no --resource-identifier, the audience is the hub's own URL.
    let (_server, addr) = spawn_binary(&["--jwt-key", KEY]).await;
    let here = format!("http://{addr}/.well-known/mercure");
    let token = mint(&[&draft[..], &["--audience", &here]].concat(), &[]);
    let reply = publish_to(&addr, Some(&token), "a/x").await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

/// A PEM key given as the flag's text (`--publisher-jwt-key "$(cat pub.pem)"`) begins with
/// `-`: it is the flag's value, not another flag.
#[tokio::test]
async fn a_pem_key_given_as_flag_text_is_read() {
    let pair = KeyPair::generate("ed25519");
    let pem = pair.public_pem.clone();
    assert!(pem.starts_with('-'));
    let args = ["--publisher-jwt-key", &pem, "--publisher-jwt-alg", "EdDSA"];
    let (_server, addr) = spawn_binary(&args).await;
    let claims = legacy(&["*"], &[]);
    let token = pair.sign(Algorithm::EdDSA, None, &claims);
    let reply = publish_to(&addr, Some(&token), "a").await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[tokio::test]
async fn ssehub_token_signs_with_a_private_key() {
    let pair = KeyPair::generate("ed25519");
    let public = pair.public_path.to_str().unwrap();
    let private = pair.private_path.to_str().unwrap();
    let (_server, addr) = spawn_binary(&["--jwt-key", public, "--jwt-alg", "EdDSA"]).await;
    let token = mint(
        &[
            "--publish",
            "*",
            "--jwt-alg",
            "EdDSA",
            "--signing-key",
            private,
        ],
        &[],
    );
    let reply = publish_to(&addr, Some(&token), "a").await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[tokio::test]
async fn mercure_environment_names_configure_the_keys() {
    let env = [("MERCURE_PUBLISHER_JWT_KEY", KEY)];
    let (_server, addr) = spawn_binary_env(&[], &env).await;
    let token = hs256(KEY, &legacy(&["*"], &[]));
    let reply = publish_to(&addr, Some(&token), "a").await;
    assert_eq!(reply.status, 201, "{reply:?}");
    publish_to(&addr, None, "a")
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let forged = hs256("some-other-secret-of-enough-length", &legacy(&["*"], &[]));
    publish_to(&addr, Some(&forged), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &forged,
    );
    // `ssehub token` reads the same names.
    let minted = mint(&["--publish", "*"], &env);
    assert_eq!(publish_to(&addr, Some(&minted), "a").await.status, 201);
    // The SSEHUB_ name wins over the Mercure one.
    let both = [
        ("MERCURE_PUBLISHER_JWT_KEY", "ignored-key"),
        ("SSEHUB_PUBLISHER_JWT_KEY", KEY),
    ];
    let (_server, addr) = spawn_binary_env(&[], &both).await;
    assert_eq!(publish_to(&addr, Some(&token), "a").await.status, 201);
}
