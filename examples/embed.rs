//! Embedding ssehub in another tokio program: build the state from a `Config`, mount the hub's
//! router next to your own routes, or run it with `ssehub::serve` on your own listener.
//!
//! ```text
//! cargo run --example embed        # serves on 127.0.0.1:8080 until Ctrl-C
//! ```

use axum::routing::get;
use ssehub::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    let mut config = Config::with_bind(listener.local_addr()?);
    config.repeats = 3;
    let state = ssehub::app::in_memory(config)?;

    // Publish from your own code through the hub handle.
    let hub = state.hub().clone();
    tokio::spawn(async move {
        let draft = ssehub::hub::Draft {
            topic: ssehub::hub::TopicName::new("system").expect("valid topic"),
            name: ssehub::sse::EventName::message(),
            message: "embedded hub started".into(),
            private: false,
            alternates: Vec::new(),
            custom_id: None,
            retry: None,
        };
        if let Err(err) = hub.publish(draft).await {
            eprintln!("publish failed: {err}");
        }
    });

    // Either serve the hub on its own (graceful shutdown included)...
    if std::env::var_os("EMBED_ROUTER").is_none() {
        return ssehub::serve(listener, state, async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await
        .map_err(Into::into);
    }
    // ...or merge its router with yours and serve it with axum.
    let app =
        ssehub::build(state).merge(axum::Router::new().route("/hello", get(|| async { "hi" })));
    axum::serve(listener, app).await?;
    Ok(())
}
