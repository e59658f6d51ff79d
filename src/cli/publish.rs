//! `ssehub publish`: publishes a message (or, with `--lines`, each line of standard input) and
//! prints the id of each event, one per line. Natively through `POST /api/messages` (JSON); with
//! `--mercure` through `POST /.well-known/mercure` (a form, as every Mercure client sends).

use std::io::Write;

use bytes::Bytes;
use clap::Args;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::client::{ClientArgs, ClientError, Role};
use super::http::{body_text, refused, Connection, Endpoint};

/// The native topic when none is named (the server's own default).
const DEFAULT_TOPIC: &str = "default";

/// Flags of `ssehub publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// The message; read whole from standard input when absent (one trailing newline dropped).
    #[arg(conflicts_with = "lines")]
    pub message: Option<String>,
    /// Topic to publish to (native default: `default`; required with `--mercure`, where it is
    /// usually an IRI such as `https://example.com/books/1`).
    #[arg(long, short)]
    pub topic: Option<String>,
    /// Event type (the SSE `event:` field; Mercure's `type`). Default: `message`.
    #[arg(long, short)]
    pub event: Option<String>,
    /// Deliver only to subscribers whose token grants the topic.
    #[arg(long)]
    pub private: bool,
    /// The event's id (Mercure only; the hub issues one otherwise).
    #[arg(long, requires = "mercure")]
    pub id: Option<String>,
    /// Publish each non-empty line of standard input as its own event, as it is read.
    #[arg(long)]
    pub lines: bool,
    /// Where and as whom.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `ssehub publish`, printing each id to `out`.
///
/// # Errors
/// See [`ClientError`]: the first publish that fails ends the command (ids of those before it
/// are printed).
pub async fn run(args: &PublishArgs, out: &mut impl Write) -> Result<(), ClientError> {
    if args.client.mercure && args.topic.is_none() {
        return Err(ClientError::Usage(
            "--mercure needs --topic (an update names its topic)".into(),
        ));
    }
    let endpoint = Endpoint::new(&args.client)?;
    let mut publisher = Publisher {
        args,
        endpoint,
        connection: None,
    };
    if args.lines {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| ClientError::Usage(format!("reading standard input: {e}")))?
        {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let id = publisher.publish(line).await?;
            writeln!(out, "{id}").map_err(|e| ClientError::output(&e))?;
        }
        return Ok(());
    }
    let message = match &args.message {
        Some(message) => message.clone(),
        None => {
            let mut text = String::new();
            tokio::io::stdin()
                .read_to_string(&mut text)
                .await
                .map_err(|e| ClientError::Usage(format!("reading standard input: {e}")))?;
            let trimmed = text.strip_suffix('\n').unwrap_or(&text);
            trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
        }
    };
    let id = publisher.publish(&message).await?;
    writeln!(out, "{id}").map_err(|e| ClientError::output(&e))
}

struct Publisher<'a> {
    args: &'a PublishArgs,
    endpoint: Endpoint,
    /// Kept between publishes (`--lines`), replaced when the server closed it.
    connection: Option<Connection>,
}

impl Publisher<'_> {
    /// Publishes one message; returns its id.
    async fn publish(&mut self, message: &str) -> Result<String, ClientError> {
        let args = self.args;
        let topic = args.topic.as_deref().unwrap_or(DEFAULT_TOPIC);
        let mut headers = Vec::new();
        // Minted per publish, so a long `--lines` run never presents an expired token.
        if let Some(token) = args
            .client
            .token(Role::Publish(std::slice::from_ref(&topic.to_owned())))?
        {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let (url, body) = if args.client.mercure {
            let mut form = vec![("topic", topic), ("data", message)];
            if args.private {
                form.push(("private", "on"));
            }
            if let Some(id) = &args.id {
                form.push(("id", id));
            }
            if let Some(event) = &args.event {
                form.push(("type", event));
            }
            headers.push((
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ));
            let body = serde_urlencoded::to_string(&form)
                .map_err(|e| ClientError::Usage(e.to_string()))?;
            (self.endpoint.url(crate::auth::HUB_PATH, &[]), body)
        } else {
            let mut body = json!({"message": message, "topic": topic});
            if let Some(event) = &args.event {
                body["event"] = json!(event);
            }
            if args.private {
                body["private"] = json!(true);
            }
            headers.push(("content-type", "application/json".to_owned()));
            (self.endpoint.url("/api/messages", &[]), body.to_string())
        };
        let body = Bytes::from(body);
        let (connection, reused) = match self.connection.take() {
            Some(connection) if connection.is_open() => (connection, true),
            _ => (self.endpoint.connect().await?, false),
        };
        let connection = self.connection.insert(connection);
        let response = match connection
            .send(Method::POST, &url, &headers, body.clone())
            .await
        {
            // A kept-alive connection the server closed just now: the publish was not sent,
            // so sending it on a fresh connection publishes it once.
            Err(_) if reused && connection.failed_unsent() => {
                let connection = self.connection.insert(self.endpoint.connect().await?);
                connection.send(Method::POST, &url, &headers, body).await?
            }
            answer => answer?,
        };
        let status = response.status();
        if !status.is_success() {
            return Err(refused(response).await);
        }
        let text = body_text(response).await?;
        let id = if args.client.mercure && status == StatusCode::OK {
            Some(text.clone()).filter(|id| !id.is_empty() && !id.contains('\n'))
        } else {
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["data"]["id"].as_str().map(str::to_owned))
        };
        id.ok_or_else(|| ClientError::Protocol(format!("no event id in the answer: {text}")))
    }
}
