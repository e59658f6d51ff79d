//! Publishes are served by two paths too: the direct HTTP/1 path (a plain `Content-Length`
//! publish) and the axum route (chunked bodies, HTTP/2, anything unusual). Both must say the
//! same, byte for byte but the date and the event id, and the direct path must keep the
//! connection as hyper would: pipelined requests, bodies in pieces, late bodies, idle clients.

use crate::common;

use std::time::Duration;

use common::auth::{bearer, hs256, legacy, SECRET};
use common::raw::{both_ways, read_response, request, send, Case};
use common::{spawn_app, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn publishes_say_the_same_on_both_paths() {
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.cors_origins = vec!["http://allowed.example".into()];
        c.max_message = 64;
    })
    .await;
    let granted = bearer(&hs256(SECRET, &legacy(&["news", "default"], &[])));
    let other = bearer(&hs256(SECRET, &legacy(&["elsewhere"], &[])));
    let wrong = bearer(&hs256(
        "another-secret-that-is-long-enough-for-hs256",
        &legacy(&["*"], &[]),
    ));
    let json = ("Content-Type", "application/json");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let text = ("Content-Type", "text/plain; charset=utf-8");
    let auth = |token: &str| ("Authorization", token.to_owned());
    let long = format!(r#"{{"message": "{}"}}"#, "x".repeat(65));
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("/api/messages", vec![auth(&granted)], r#"{"message": "hi", "topic": "news"}"#, 201),
        ("/api/messages", vec![], r#"{"message": "hi"}"#, 401),
        ("/api/messages", vec![auth(&wrong)], r#"{"message": "hi"}"#, 401),
        ("/api/messages", vec![("Authorization", "Basic abc".into())], r#"{"message": "hi"}"#, 400),
        ("/api/messages", vec![auth(&other)], r#"{"message": "hi", "topic": "news"}"#, 403),
        ("/api/messages", vec![auth(&granted)], r#"{"message": "hi", "private": true}"#, 201),
        ("/api/messages", vec![auth(&granted)], r#"{"message": "hi", "#, 400),
        ("/api/messages", vec![auth(&granted)], r#"["hi"]"#, 400),
        ("/api/messages", vec![auth(&granted)], r#"{"message": "  "}"#, 400),
        ("/api/messages", vec![auth(&granted)], r#"{"message": "hi", "topic": "a b"}"#, 400),
        ("/api/messages", vec![auth(&granted)], r#"{"message": "hi", "event": "a\nb"}"#, 400),
        ("/api/messages", vec![auth(&granted)], &long, 413),
        ("/publish?topic=news", vec![auth(&granted)], "message=by+form&private=on", 202),
        ("/publish?topic=news&event=note", vec![auth(&granted)], "plain text", 202),
        ("/publish", vec![auth(&granted)], "", 400),
        ("/api/messages", vec![auth(&granted), ("Origin", "http://allowed.example".into())], r#"{"message": "cors"}"#, 201),
        ("/api/messages", vec![auth(&granted), ("Origin", "http://other.example".into())], r#"{"message": "cors"}"#, 201),
        ("/api/messages", vec![("Origin", "http://allowed.example".into())], r#"{"message": "cors"}"#, 401),
    ];
    let kinds = [
        json, json, json, json, json, json, json, json, json, json, json, json, form, text, text,
        json, json, json,
    ];
    assert_eq!(kinds.len(), cases.len());
    let mut wrong_type = 0;
    for ((target, headers, body, status), kind) in cases.into_iter().zip(kinds) {
        let mut headers: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(kind);
        both_ways(&app, target, &headers, body, status).await;
        // The same request with a type its endpoint does not read.
        if target == "/api/messages" && status == 201 {
            headers.pop();
            headers.push(text);
            both_ways(&app, target, &headers, body, 415).await;
            wrong_type += 1;
        }
    }
    assert_eq!(wrong_type, 4);
}

#[tokio::test]
async fn mercure_publishes_say_the_same_on_both_paths() {
    let app = spawn_app(|c| {
        c.auth.keys.publisher_jwt_key = Some(SECRET.into());
        c.auth.cors_origins = vec!["http://allowed.example".into()];
        c.auth.publish_origins = vec!["http://allowed.example".into()];
        c.max_message = 64;
    })
    .await;
    let granted = bearer(&hs256(SECRET, &legacy(&["https://e.x/{id}", "news"], &[])));
    let other = bearer(&hs256(SECRET, &legacy(&["elsewhere"], &[])));
    let cookie = format!(
        "mercureAuthorization={}",
        hs256(SECRET, &legacy(&["*"], &[]))
    );
    let form = (
        "Content-Type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let auth = |token: &str| ("Authorization", token.to_owned());
    let origin = |o: &str| ("Origin", o.to_owned());
    let long = format!("topic=news&data={}", "x".repeat(65));
    let many: String = (0..65).map(|i| format!("topic=t{i}&")).collect();
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=https%3A%2F%2Fe.x%2F1&data=hi", 200),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=news&topic=https://e.x/2&data=a&private=on&id=my-id&type=note&retry=5", 200),
        ("/.well-known/mercure", vec![auth(&granted), ("Content-Type", "Application/X-WWW-Form-Urlencoded; charset=UTF-8".into())], "topic=news", 200),
        ("/.well-known/mercure", vec![auth(&granted), form.clone(), origin("http://allowed.example")], "topic=news", 200),
        ("/.well-known/mercure", vec![("Cookie", cookie.clone()), form.clone(), origin("http://allowed.example")], "topic=news", 200),
        ("/.well-known/mercure", vec![("Cookie", cookie.clone()), form.clone(), origin("http://other.example")], "topic=news", 403),
        ("/.well-known/mercure", vec![form.clone()], "topic=news", 401),
        ("/.well-known/mercure", vec![auth(&other), form.clone()], "topic=news", 403),
        ("/.well-known/mercure", vec![("Authorization", "Basic abc".into()), form.clone()], "topic=news", 400),
        ("/.well-known/mercure", vec![auth(&granted), ("Content-Type", "application/json".into())], "topic=news", 415),
        ("/.well-known/mercure", vec![auth(&granted), ("Content-Type", "application/x-www-form-urlencodedx".into())], "topic=news", 415),
        ("/.well-known/mercure", vec![auth(&granted)], "topic=news", 415),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "data=no+topic", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=*", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=http://x/.well-known/mercure/subscriptions", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=news&id=%23x", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=news&type=mercure", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=news&type=a%0Ab", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=news&retry=1s", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], "topic=news&data=%FF", 400),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], &long, 413),
        ("/.well-known/mercure", vec![auth(&granted), form.clone()], &many, 413),
    ];
    for (target, headers, body, status) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let direct = both_ways(&app, target, &headers, body, status).await;
        if status == 200 {
            let link = "link: <http://x/.well-known/mercure>; rel=\"mercure\"".to_owned();
            assert!(direct.headers.contains(&link), "{direct:?}");
        }
    }
}

#[tokio::test]
async fn a_refusal_of_the_hub_says_the_same_on_both_paths() {
    let app = spawn_app(|c| c.max_topics = 1).await;
    // The only topic slot is taken and watched, so a new topic cannot be made room for.
    app.publish("watched", "first").await;
    let _watcher = app.stream("/stream?mode=live&topic=watched").await;
    let json = [("Content-Type", "application/json")];
    let body = r#"{"message": "no room", "topic": "new"}"#;
    let direct = both_ways(&app, "/api/messages", &json, body, 503).await;
    assert!(direct.headers.contains(&"retry-after: 1".to_owned()));
}

#[tokio::test]
async fn pipelined_and_split_publishes_are_answered_in_order() {
    let app = spawn_app(|_| {}).await;
    let json = [("Content-Type", "application/json")];
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    // Three requests in one write: the direct path answers each in turn.
    let three: String = (1..=3)
        .map(|i| {
            request(
                "/api/messages",
                &json,
                &format!(r#"{{"message": "p{i}"}}"#),
                false,
            )
        })
        .collect();
    socket.write_all(three.as_bytes()).await.unwrap();
    for i in 1..=3 {
        let response = read_response(&mut socket).await;
        assert_eq!(response.body["data"]["message"], format!("p{i}"));
    }
    // A head, then its body in two pieces a moment apart, on the same connection.
    let raw = request("/api/messages", &json, r#"{"message": "split"}"#, false);
    let (head, body) = raw.split_at(raw.len() - 10);
    socket.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(&body.as_bytes()[..4]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(&body.as_bytes()[4..]).await.unwrap();
    assert_eq!(
        read_response(&mut socket).await.body["data"]["message"],
        "split"
    );
    // Then a request the direct path hands to hyper, on the same connection still.
    socket
        .write_all(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("200 OK") {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_late_body_gets_408_and_a_closed_connection() {
    let app = spawn_app(|c| c.body_timeout = Duration::from_millis(300)).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"mess";
    socket.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut socket).await;
    assert!(response.status.starts_with("HTTP/1.1 408 "), "{response:?}");
    assert!(response.headers.contains(&"connection: close".to_owned()));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app(|c| c.idle_timeout = Duration::from_millis(300)).await;
    let json = [("Content-Type", "application/json")];
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let raw = request("/api/messages", &json, r#"{"message": "once"}"#, false);
    socket.write_all(raw.as_bytes()).await.unwrap();
    read_response(&mut socket).await;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest))
        .await
        .expect("the idle connection stayed open")
        .unwrap();
    assert!(rest.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn a_body_over_the_limit_gets_hypers_413() {
    let app = spawn_app(|c| {
        c.body_limit = 1024;
        c.max_message = 1024;
    })
    .await;
    let json = [("Content-Type", "application/json")];
    let body = format!(r#"{{"message": "{}"}}"#, "x".repeat(2000));
    let response = send(&app, &request("/api/messages", &json, &body, false)).await;
    assert!(response.status.starts_with("HTTP/1.1 413 "), "{response:?}");
    assert_eq!(response.body["error"], "body is larger than 1024 bytes");
}

#[tokio::test]
async fn a_connection_that_keeps_publishing_is_not_idle() {
    let app = spawn_app(|c| {
        c.idle_timeout = Duration::from_millis(400);
        c.header_timeout = Duration::from_millis(500);
    })
    .await;
    let json = [("Content-Type", "application/json")];
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    // Five publishes 200 ms apart: a second in all, each gap under the idle limit.
    for i in 0..5 {
        let raw = request(
            "/api/messages",
            &json,
            &format!(r#"{{"message": "n{i}"}}"#),
            false,
        );
        socket.write_all(raw.as_bytes()).await.unwrap();
        assert_eq!(
            read_response(&mut socket).await.body["data"]["message"],
            format!("n{i}")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A head begun and never finished is cut at the header deadline, not the idle one.
    socket
        .write_all(b"POST /api/messages HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest))
        .await
        .expect("a half-sent head kept the connection open")
        .unwrap();
}
