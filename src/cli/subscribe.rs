//! `ssehub subscribe`: follows a stream (`GET /stream`, or `GET /.well-known/mercure` with
//! `--mercure`) and prints its events, reconnecting as a browser's `EventSource` does: when the
//! response ends or the connection breaks, it waits the stream's `retry:` time (3 s until the
//! server sets one) and reconnects with `Last-Event-ID`, so the hub replays what was missed.
//! Every connect and reconnect is reported on standard error; events go to standard output.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::BodyExt;
use hyper::Method;

use super::client::{ClientArgs, ClientError, Role};
use super::http::{refused, Endpoint};
use super::render::{classify, Received};
use crate::sse::Parser;

/// The reconnection time until a stream sets one (what browsers use).
const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// Which native stream to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamMode {
    /// Every matching event, until interrupted.
    Live,
    /// The next matching event, repeated, then `close`: the command ends (exit 0).
    Burst,
}

/// Flags of `ssehub subscribe`.
#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    /// Topics (repeatable): native patterns (`news`, `chat/*`, `*`), or with `--mercure` its
    /// `topic` selectors (IRIs, URI templates, `*`).
    #[arg(long, short, required = true, num_args = 1..)]
    pub topic: Vec<String>,
    /// Native stream mode.
    #[arg(long, value_enum, default_value_t = StreamMode::Live, conflicts_with = "mercure")]
    pub mode: StreamMode,
    /// Resume after this event id (sent as `Last-Event-ID`).
    #[arg(long)]
    pub last_event_id: Option<String>,
    /// One JSON object per event (`time`, `topic`, `id`, `event`, `message`, and `replayed`,
    /// `sequence`, `total` when they apply) instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Reconnection attempts in a row that may fail before giving up with exit 3 (`0`: do not
    /// reconnect at all; default: never give up, as a browser).
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Reconnect when nothing at all (not even a heartbeat comment) arrives for this long, e.g.
    /// `45s`: a connection silently dropped on the way (NAT, proxy) is noticed. Set it above the
    /// server's `--heartbeat` (15 s by default). Default: wait forever, as a browser.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stall_timeout: Option<Duration>,
    /// Where and as whom.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How one connection ended.
enum End {
    /// A burst completed: the command is done.
    Complete,
    /// The server ended the response (with its `close` status, if it said one).
    Ended(Option<String>),
}

/// Runs `ssehub subscribe`, printing events to `out` until a burst completes, the server
/// refuses, or reconnecting fails `--max-retries` times in a row.
///
/// # Errors
/// See [`ClientError`]. The first connection failing is an error at once; later ones are
/// retried, as are `502`, `503` and `504` answers to a reconnect.
pub async fn run(args: &SubscribeArgs, out: &mut impl Write) -> Result<(), ClientError> {
    let endpoint = Endpoint::new(&args.client)?;
    let mut follower = Follower {
        args,
        endpoint,
        last_id: args.last_event_id.clone().filter(|id| !id.is_empty()),
        retry: DEFAULT_RETRY,
    };
    let mut connected_once = false;
    let mut failures = 0u32;
    loop {
        let mut opened = false;
        let why = match follower.follow(out, &mut opened).await {
            Ok(End::Complete) => return Ok(()),
            Ok(End::Ended(status)) => match status {
                Some(status) => format!("the server ended the stream ({status})"),
                None => "the server ended the stream".to_owned(),
            },
            Err(err @ ClientError::Connection(_)) if connected_once || opened => err.to_string(),
            Err(ClientError::Refused { status, body })
                if connected_once
                    && ["502", "503", "504"].iter().any(|c| status.starts_with(c)) =>
            {
                format!("the server answered {status}: {body}")
            }
            Err(err) => return Err(err),
        };
        connected_once |= opened;
        failures = if opened { 0 } else { failures + 1 };
        if args.max_retries.is_some_and(|max| failures >= max) {
            return Err(ClientError::Connection(match failures {
                0 => format!("{why}; not reconnecting (--max-retries 0)"),
                _ => format!("{why}; gave up after {failures} failed reconnection attempts"),
            }));
        }
        let cursor = match &follower.last_id {
            Some(id) => format!(" with Last-Event-ID {id}"),
            None => String::new(),
        };
        notice(&format!(
            "{why}; reconnecting in {} ms{cursor}",
            follower.retry.as_millis()
        ));
        tokio::time::sleep(follower.retry).await;
    }
}

/// The state a browser keeps across reconnections.
struct Follower<'a> {
    args: &'a SubscribeArgs,
    endpoint: Endpoint,
    /// The last event id set by the stream (sent as `Last-Event-ID`).
    last_id: Option<String>,
    /// The reconnection time (the stream's last `retry:`).
    retry: Duration,
}

impl Follower<'_> {
    /// Opens the stream once and prints its events until it ends; sets `opened` once the
    /// server accepted it.
    async fn follow(
        &mut self,
        out: &mut impl Write,
        opened: &mut bool,
    ) -> Result<End, ClientError> {
        let args = self.args;
        let mercure = args.client.mercure;
        let mut query: Vec<(&str, &str)> =
            args.topic.iter().map(|t| ("topic", t.as_str())).collect();
        let url = if mercure {
            self.endpoint.url(crate::auth::HUB_PATH, &query)
        } else {
            let mode = match args.mode {
                StreamMode::Live => "live",
                StreamMode::Burst => "burst",
            };
            query.push(("mode", mode));
            self.endpoint.url("/stream", &query)
        };
        let mut headers = vec![
            ("accept", "text/event-stream".to_owned()),
            ("cache-control", "no-cache".to_owned()),
        ];
        if let Some(id) = &self.last_id {
            headers.push(("last-event-id", id.clone()));
        }
        // Minted per connection, so a stream ended at its token's expiry reconnects with a
        // fresh one.
        if let Some(token) = args.client.token(Role::Subscribe(&args.topic))? {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        let mut connection = self.endpoint.connect().await?;
        let response = connection
            .send(Method::GET, &url, &headers, Bytes::new())
            .await?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let stream = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !stream {
            return Err(ClientError::Protocol(format!(
                "{url} did not answer with an event stream"
            )));
        }
        *opened = true;
        match &self.last_id {
            Some(id) => notice(&format!("connected to {url} (after {id})")),
            None => notice(&format!("connected to {url}")),
        }
        let mut body = response.into_body();
        let mut parser = Parser::new();
        let mut status = None;
        let mut events = Vec::new();
        loop {
            let next = match args.stall_timeout {
                None => body.frame().await,
                Some(stall) => match tokio::time::timeout(stall, body.frame()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return Err(ClientError::Connection(format!(
                            "nothing received for {} (not even a heartbeat)",
                            humantime::format_duration(stall)
                        )))
                    }
                },
            };
            let frame = match next {
                None => return Ok(End::Ended(status)),
                Some(Ok(frame)) => frame,
                Some(Err(err)) => {
                    return Err(ClientError::Connection(format!("the stream broke: {err}")))
                }
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            parser.feed_with(&chunk, |event| events.push(event));
            if let Some(retry) = parser.retry() {
                self.retry = Duration::from_millis(retry);
            }
            for event in events.drain(..) {
                // As EventSource: the id in force when an event is dispatched is the one sent
                // on reconnect; an empty `id:` clears it.
                if let Some(id) = &event.id {
                    self.last_id = Some(id.clone()).filter(|id| !id.is_empty());
                }
                match classify(&event, mercure) {
                    Received::Handshake => {}
                    Received::Gap { requested } => notice(&format!(
                        "gap: events after {requested:?} are no longer all in history; continuing from the oldest held"
                    )),
                    Received::Close { status: ended } => {
                        if args.mode == StreamMode::Burst && ended == "complete" {
                            return Ok(End::Complete);
                        }
                        status = Some(ended);
                    }
                    Received::Event(shown) => shown
                        .write(out, args.json)
                        .map_err(|e| ClientError::output(&e))?,
                }
            }
            out.flush().map_err(|e| ClientError::output(&e))?;
        }
    }
}

/// A line on standard error about the connection (events go to standard output).
fn notice(text: &str) {
    eprintln!("ssehub subscribe: {text}");
}
