//! Draft-08 access tokens of publishers over real sockets: `typ: at+jwt`, a trusted `iss`, an
//! `aud` naming the hub, a required `exp`, and the Mercure authorization details (one malformed
//! detail invalidates the token; unknown actions and foreign detail types grant nothing).
//! URL-pattern matchers are covered by the selector's unit tests: ssehub topics are not URLs.

use crate::common;

use common::auth::*;
use common::{spawn_app, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The resource identifier of these tests.
const RESOURCE: &str = "https://hub.test/.well-known/mercure";

async fn draft_app() -> TestApp {
    spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.resource_identifier = Some(RESOURCE.into());
    })
    .await
}

fn exact(topic: &str) -> Value {
    json!([{ "match": topic }])
}

#[tokio::test]
async fn draft_08_tokens_with_the_right_iss_and_aud_are_accepted() {
    let app = draft_app().await;
    let claims = draft08(
        RESOURCE,
        json!([detail(json!(["publish"]), exact("books/1"))]),
    );
    let token = at_jwt(SECRET, &claims);
    assert_eq!(publish_as(&app, Some(&token), "books/1").await.status, 201);
    publish_as(&app, Some(&token), "books/2")
        .await
        .assert_refused(403, Some(INSUFFICIENT_SCOPE), FORBIDDEN, &token);
    // `aud` as a list naming the hub, `typ` with the media type prefix, `*` as the match.
    let mut claims = draft08(RESOURCE, json!([detail(json!(["publish"]), exact("*"))]));
    claims["aud"] = json!(["https://elsewhere.test", RESOURCE]);
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("application/at+jwt".into());
    let token = sign(
        &header,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &claims,
    );
    assert_eq!(
        publish_as(&app, Some(&token), "any/topic").await.status,
        201
    );
    // Explicit `exact`, and two actions at once.
    let topics = json!([{"match": "books/3", "match_type": "exact"}]);
    let claims = draft08(
        RESOURCE,
        json!([detail(json!(["subscribe", "publish"]), topics)]),
    );
    let token = at_jwt(SECRET, &claims);
    assert_eq!(publish_as(&app, Some(&token), "books/3").await.status, 201);
}

#[tokio::test]
async fn draft_08_tokens_are_refused_for_wrong_aud_iss_typ_or_missing_exp() {
    let app = draft_app().await;
    let details = json!([detail(json!(["publish"]), exact("*"))]);
    let good = draft08(RESOURCE, details.clone());
    let mut cases: Vec<String> = Vec::new();
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://other.test/.well-known/mercure");
    let mut no_aud = good.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://attacker.test");
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    // A time claim that is not a number: the verifier would skip it (a future `nbf` as a
    // string would let the token in early).
    let future = (now() + 3600).to_string();
    let mut string_nbf = good.clone();
    string_nbf["nbf"] = json!(future);
    let mut string_iat = good.clone();
    string_iat["iat"] = json!("yesterday");
    let mut string_exp = good.clone();
    string_exp["exp"] = json!(future);
    // An unknown match_type refuses the token, whatever `match` says.
    let unknown_type = draft08(
        RESOURCE,
        json!([detail(
            json!(["publish"]),
            json!([{"match": "*", "match_type": "regex"}])
        )]),
    );
    for claims in [
        wrong_aud,
        no_aud,
        wrong_iss,
        no_iss,
        no_exp,
        string_nbf,
        string_iat,
        string_exp,
        unknown_type,
    ] {
        cases.push(at_jwt(SECRET, &claims));
    }
    // The right claims under `typ: JWT`, or no `typ`.
    cases.push(hs256(SECRET, &good));
    let mut untyped = Header::new(Algorithm::HS256);
    untyped.typ = None;
    cases.push(sign(
        &untyped,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &good,
    ));
    for token in &cases {
        publish_as(&app, Some(token), "a").await.assert_refused(
            401,
            Some(INVALID_TOKEN),
            INVALID,
            token,
        );
    }
    // The good one, for contrast.
    let token = at_jwt(SECRET, &good);
    assert_eq!(publish_as(&app, Some(&token), "a").await.status, 201);
}

#[tokio::test]
async fn one_malformed_detail_invalidates_the_whole_token() {
    let app = draft_app().await;
    let valid = detail(json!(["publish"]), exact("a"));
    let malformed = [
        detail(json!("publish"), exact("a")),
        detail(json!([]), exact("a")),
        detail(
            json!(["publish"]),
            json!([{"match": "a", "match_type": "regex"}]),
        ),
        detail(json!(["publish"]), json!("a")),
        detail(json!(["publish"]), json!([{"match_type": "exact"}])),
        json!({"actions": ["publish"], "topics": [{"match": "a"}]}),
    ];
    for bad in malformed {
        for details in [json!([valid, bad]), json!([bad, valid])] {
            let token = at_jwt(SECRET, &draft08(RESOURCE, details));
            publish_as(&app, Some(&token), "a").await.assert_refused(
                401,
                Some(INVALID_TOKEN),
                INVALID,
                &token,
            );
        }
    }
    let token = at_jwt(SECRET, &draft08(RESOURCE, json!([valid])));
    assert_eq!(publish_as(&app, Some(&token), "a").await.status, 201);
}

#[tokio::test]
async fn unknown_actions_and_foreign_detail_types_grant_nothing() {
    let app = draft_app().await;
    let unknown = detail(json!(["read", "write", "admin"]), exact("*"));
    let subscribe_only = detail(json!(["subscribe"]), exact("*"));
    let foreign = json!({"type": "https://other.test/detail", "actions": ["publish"], "topics": [{"match": "*"}]});
    for d in [unknown, subscribe_only, foreign] {
        let token = at_jwt(SECRET, &draft08(RESOURCE, json!([d])));
        publish_as(&app, Some(&token), "a").await.assert_refused(
            403,
            Some(INSUFFICIENT_SCOPE),
            FORBIDDEN,
            &token,
        );
    }
}

#[tokio::test]
async fn the_default_resource_identifier_is_this_hubs_url() {
    let app = spawn_app(|c| c.auth.keys.publisher_jwt_key = Some(SECRET.into())).await;
    let here = format!("http://{}/.well-known/mercure", app.addr);
    let details = json!([detail(json!(["publish"]), exact("a"))]);
    let token = at_jwt(SECRET, &draft08(&here, details.clone()));
    assert_eq!(publish_as(&app, Some(&token), "a").await.status, 201);
    let token = at_jwt(SECRET, &draft08(RESOURCE, details));
    publish_as(&app, Some(&token), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &token,
    );
}

#[tokio::test]
async fn trusted_issuers_are_configurable() {
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.resource_identifier = Some(RESOURCE.into());
        c.auth.trusted_issuers = vec!["https://issuer.test".into(), "https://b.test".into()];
    })
    .await;
    let mut claims = draft08(RESOURCE, json!([detail(json!(["publish"]), exact("a"))]));
    let token = at_jwt(SECRET, &claims);
    publish_as(&app, Some(&token), "a").await.assert_refused(
        401,
        Some(INVALID_TOKEN),
        INVALID,
        &token,
    );
    for issuer in ["https://issuer.test", "https://b.test"] {
        claims["iss"] = json!(issuer);
        let token = at_jwt(SECRET, &claims);
        assert_eq!(publish_as(&app, Some(&token), "a").await.status, 201);
    }
}
