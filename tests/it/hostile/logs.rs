//! Log lines an anonymous client writes into: every client-controlled text in the text log
//! format is escaped, so no request can forge a line, a level or a field.

use crate::common::auth::{b64url, hs256, legacy, SECRET};
use crate::common::logs;

/// A token with this JOSE header and claims (any signature).
fn token_with(header: &str, claims: &str) -> String {
    format!(
        "{}.{}.c2ln",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    )
}

const FORGED: &str = "2026-12-07T03:00:00Z ERROR ssehub::app: FORGED";

#[tokio::test]
async fn no_request_can_forge_a_log_line() {
    let (_child, mut lines) =
        logs::run(&["--publisher-jwt-key", SECRET, "--access-log"], &[]).await;
    let seen = logs::line_with(&mut lines, "addr=").await;
    let addr = logs::addr_of(seen.last().unwrap());
    let client = reqwest::Client::new();
    let forged_alg = token_with(
        &format!(r#"{{"alg":"x\n{FORGED}\r\n","typ":"JWT"}}"#),
        r#"{"mercure":{"publish":["*"]}}"#,
    );
    // Signed with another key: refused after its header is read; its issuer is logged,
    // marked unverified.
    let forged_iss = hs256(
        "another-secret-that-is-long-enough-for-hs256",
        &serde_json::json!({"iss": format!("evil\n{FORGED}"), "mercure": {"publish": ["*"]}}),
    );
    // Verified, but granting nothing on a topic whose name carries no control characters
    // (topics refuse them): the refusal's fields are escaped all the same.
    let no_grant = hs256(SECRET, &legacy(&["elsewhere"], &[]));
    for token in [&forged_alg, &forged_iss, &no_grant] {
        let response = client
            .post(format!("http://{addr}/api/messages"))
            .bearer_auth(token)
            .json(&serde_json::json!({"message": "m", "topic": "t"}))
            .send()
            .await
            .unwrap();
        assert!([401, 403].contains(&response.status().as_u16()));
    }
    // A path with escapes and odd characters.
    let path = format!("http://{addr}/nothing%0A{}", "%0D%0AERROR");
    assert_eq!(client.get(path).send().await.unwrap().status(), 404);
    let mut all = logs::line_with(&mut lines, "publish refused").await;
    all.extend(logs::line_with(&mut lines, "/nothing").await);
    let refused: Vec<&String> = all.iter().filter(|l| l.contains("token refused")).collect();
    assert_eq!(refused.len(), 2, "{all:#?}");
    for line in &all {
        assert!(
            !line.trim_start().starts_with("2026-12-07T03:00:00Z") && !line.contains("\r"),
            "a forged line: {line:?} in {all:#?}"
        );
        if line.contains("FORGED") {
            assert!(line.contains("token refused"), "{line:?}");
            assert!(line.contains(r"\u{a}"), "unescaped: {line:?}");
        }
    }
    assert!(
        refused[1].contains(r"unverified_issuer=evil\u{a}2026-12-07T03:00:00Z ERROR"),
        "{:?}",
        refused[1]
    );
}
