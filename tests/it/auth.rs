//! Publishers' tokens over real sockets: refusals (none, expired, not yet valid, wrong key,
//! algorithm confusion, `alg: none`, a non-Bearer header) and legacy grants (draft-08 tokens
//! are in `auth_draft08.rs`). Every refusal is checked for its status, its `WWW-Authenticate`
//! challenge, its JSON error, and for not echoing the token.

use crate::common;

use common::auth::*;
use common::{spawn_app, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

async fn publisher_app() -> TestApp {
    spawn_app(|c| c.auth.keys.publisher_jwt_key = Some(SECRET.into())).await
}

#[tokio::test]
async fn without_a_token_a_publish_is_401_with_a_bare_challenge() {
    let app = publisher_app().await;
    publish_as(&app, None, "a")
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    let form = app
        .client
        .post(app.url("/publish"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=m&topic=a");
    Reply::read(form)
        .await
        .assert_refused(401, Some(BEARER), MISSING, "");
    // Nothing was published.
    let history = app.get_json("/api/topics/a/events").await;
    assert_eq!(history["events"], json!([]));
}

#[tokio::test]
async fn an_expired_token_is_401_invalid_token() {
    let app = publisher_app().await;
    // Past the clock-skew allowance of a few seconds, and long past.
    for ago in [11, 30, 86_400] {
        let mut claims = legacy(&["*"], &[]);
        claims["exp"] = json!(now() - ago);
        let token = hs256(SECRET, &claims);
        publish_as(&app, Some(&token), "a").await.assert_refused(
            401,
            Some(INVALID_TOKEN),
            INVALID,
            &token,
        );
    }
}

#[tokio::test]
async fn a_token_not_yet_valid_is_401() {
    let app = publisher_app().await;
    let mut claims = legacy(&["*"], &[]);
    claims["nbf"] = json!(now() + 60);
    let token = hs256(SECRET, &claims);
    publish_as(&app, Some(&token), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &token,
    );
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_401() {
    let app = publisher_app().await;
    let token = hs256("some-other-secret-of-enough-length", &legacy(&["*"], &[]));
    publish_as(&app, Some(&token), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &token,
    );
    // A subscriber key is no publisher key.
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.keys.subscriber_jwt_key = Some(SUB_SECRET.into());
    })
    .await;
    let token = hs256(SUB_SECRET, &legacy(&["*"], &["*"]));
    publish_as(&app, Some(&token), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &token,
    );
}

#[tokio::test]
async fn algorithm_confusion_is_refused_both_ways() {
    let rsa = KeyPair::generate("rsa");
    let claims = legacy(&["*"], &[]);
    let pem = rsa.public_pem.clone();
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(pem);
        c.auth.keys.publisher_jwt_alg = Some("RS256".into());
    })
    .await;
    // The server itself works with a real RS256 token.
    let good = rsa.sign(Algorithm::RS256, None, &claims);
    assert_eq!(publish_as(&app, Some(&good), "a").await.status, 201);
    // HS256 against an RS256 server: with some secret, and with the public key as the secret.
    let some_secret = hs256(SECRET, &claims);
    let public_as_secret = hs256(&rsa.public_pem, &claims);
    let mut trimmed = Header::new(Algorithm::HS256);
    trimmed.typ = Some("JWT".into());
    let trimmed = sign(
        &trimmed,
        &EncodingKey::from_secret(rsa.public_pem.trim().as_bytes()),
        &claims,
    );
    for token in [some_secret, public_as_secret, trimmed] {
        publish_as(&app, Some(&token), "a").await.assert_refused(
            401,
            Some(INVALID_TOKEN),
            INVALID,
            &token,
        );
    }
    // RS256 against an HS256 server.
    let app = publisher_app().await;
    publish_as(&app, Some(&good), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &good,
    );
}

#[tokio::test]
async fn unsigned_tokens_are_401() {
    let app = publisher_app().await;
    let claims = legacy(&["*"], &[]);
    let none = unsigned(&claims);
    // A valid token with its signature cut off, and one whose header says `none` over it.
    let valid = hs256(SECRET, &claims);
    let stripped = format!("{}.", valid.rsplit_once('.').unwrap().0);
    let relabelled = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        valid.split('.').nth(1).unwrap()
    );
    for token in [none, stripped, relabelled] {
        publish_as(&app, Some(&token), "a").await.assert_refused(
            401,
            Some(INVALID_TOKEN),
            INVALID,
            &token,
        );
    }
    for garbage in ["x", "a.b.c", "...."] {
        publish_as(&app, Some(garbage), "a").await.assert_refused(
            401,
            Some(INVALID_TOKEN),
            INVALID,
            "",
        );
    }
}

#[tokio::test]
async fn an_authorization_header_that_is_not_bearer_is_400_invalid_request() {
    let app = publisher_app().await;
    let token = hs256(SECRET, &legacy(&["*"], &[]));
    for header in [
        format!("Basic {token}"),
        format!("Token {token}"),
        "Bearer".into(),
    ] {
        let request = app
            .client
            .post(app.url("/api/messages"))
            .header("authorization", header)
            .json(&json!({"message": "m"}));
        Reply::read(request)
            .await
            .assert_refused(400, Some(INVALID_REQUEST), MALFORMED, &token);
    }
    // The scheme is case-insensitive.
    let request = app
        .client
        .post(app.url("/api/messages"))
        .header("authorization", format!("bearer {token}"))
        .json(&json!({"message": "m"}));
    assert_eq!(Reply::read(request).await.status, 201);
}

#[tokio::test]
async fn a_prefix_grant_publishes_under_the_prefix_only() {
    let app = publisher_app().await;
    let token = hs256(SECRET, &legacy(&["a/*"], &[]));
    for topic in ["a/x", "a/x/y"] {
        let reply = publish_as(&app, Some(&token), topic).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_eq!(reply.json()["data"]["topic"], topic);
        reply.assert_no_token(&token);
    }
    for topic in ["b", "a", "ab/x", "default"] {
        publish_as(&app, Some(&token), topic).await.assert_refused(
            403,
            Some(INSUFFICIENT_SCOPE),
            FORBIDDEN,
            &token,
        );
    }
    // The form endpoint checks the same grant.
    let form = |topic: &str| {
        app.client
            .post(app.url("/publish"))
            .header("authorization", bearer(&token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("message=m&topic={topic}&private=on"))
    };
    let reply = Reply::read(form("a/y")).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.json()["data"]["private"], true);
    Reply::read(form("b"))
        .await
        .assert_refused(403, Some(INSUFFICIENT_SCOPE), FORBIDDEN, &token);
    let history = app.get_json("/api/topics/b/events").await;
    assert_eq!(history["events"], json!([]));
}

#[tokio::test]
async fn a_star_grant_publishes_anywhere() {
    let app = publisher_app().await;
    let token = hs256(SECRET, &legacy(&["*"], &[]));
    for topic in ["b", "a/x", "default", "deep/er/topic"] {
        assert_eq!(publish_as(&app, Some(&token), topic).await.status, 201);
    }
    let body = json!({"message": "no topic"});
    let reply = post_message(&app.client, &base(&app), Some(&token), &body).await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["data"]["topic"], "default");
}

#[tokio::test]
async fn a_token_without_a_publish_grant_is_403() {
    let app = publisher_app().await;
    let no_claim = hs256(SECRET, &json!({"exp": now() + 60, "sub": "nobody"}));
    let subscribe_only = hs256(SECRET, &legacy(&[], &["*"]));
    let empty = hs256(SECRET, &json!({"mercure": {}}));
    for token in [no_claim, subscribe_only, empty] {
        publish_as(&app, Some(&token), "a").await.assert_refused(
            403,
            Some(INSUFFICIENT_SCOPE),
            FORBIDDEN,
            &token,
        );
    }
    // A mercure claim of the wrong shape makes the token invalid, not merely powerless.
    let malformed = hs256(SECRET, &json!({"mercure": {"publish": "a"}}));
    publish_as(&app, Some(&malformed), "a")
        .await
        .assert_refused(401, Some(INVALID_TOKEN), INVALID, &malformed);
}
