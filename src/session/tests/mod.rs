//! The session's timing and endings, in paused time: what a client sees frame by frame.

use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::{Mode, Session, Settings, StreamGuard};
use crate::event::{Draft, Event};
use crate::hub::Delivery;
use crate::hub::{Fanout, Pattern, Replay, TopicName};
use crate::metrics::{HttpVersion, Metrics, Scrape, StreamKind};
use crate::sse::{EventId, EventName, Parser, SseEvent};

pub(super) struct Fixture {
    pub(super) fanout: Arc<Fanout>,
    pub(super) shutdown: Shutdown,
    pub(super) session: Timed,
    pub(super) count: Arc<AtomicUsize>,
    pub(super) metrics: Metrics,
}

fn settings() -> Arc<Settings> {
    Arc::new(Settings {
        repeats: 3,
        interval: Duration::from_secs(1),
        heartbeat: Duration::from_secs(15),
        retry_ms: 2000,
        drain_spread: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(5),
        pacer: super::Pacer::new(Duration::ZERO),
    })
}

/// A session with its timer, as a writer holds them.
pub(super) struct Timed {
    session: Session,
    timer: Pin<Box<Sleep>>,
}

impl Timed {
    fn new(session: Session) -> Self {
        let timer = Box::pin(session.timer());
        Self { session, timer }
    }

    pub(super) async fn next_chunk(&mut self) -> Option<Bytes> {
        self.session.next_chunk(self.timer.as_mut()).await
    }

    pub(super) fn ready_frame(&mut self) -> Option<Bytes> {
        self.session.ready_frame()
    }

    pub(super) fn is_finished(&self) -> bool {
        self.session.is_finished()
    }

    pub(super) fn ending_after(self, after: Duration, status: &'static str) -> Self {
        Self {
            session: self.session.ending_after(after, status),
            timer: self.timer,
        }
    }
}

pub(super) fn fixture(mode: Mode, queue: usize, replay: Replay) -> Fixture {
    fixture_with(mode, queue, replay, settings())
}

fn fixture_with(mode: Mode, queue: usize, replay: Replay, settings: Arc<Settings>) -> Fixture {
    let fanout = Arc::new(Fanout::new(queue, 16));
    let subscription = fanout
        .subscribe(&[Pattern::parse("t").unwrap()], None)
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let mut guard = StreamGuard::acquire(&count, 10).unwrap();
    let metrics = Metrics::new();
    let kind = match mode {
        Mode::Burst => StreamKind::Burst,
        Mode::Live => StreamKind::Live,
        Mode::Mercure => StreamKind::Mercure,
    };
    guard.observe(metrics.stream(kind, HttpVersion::Http11));
    let shutdown = Shutdown::new();
    let session = Session::new(
        mode,
        settings,
        subscription,
        replay,
        None,
        shutdown.clone(),
        guard,
    );
    Fixture {
        fanout,
        shutdown,
        session: Timed::new(session),
        count,
        metrics,
    }
}

pub(super) fn event(seq: u64) -> Arc<Event> {
    let draft = Draft::new(
        TopicName::new("t").unwrap(),
        EventName::message(),
        format!("m{seq}"),
    );
    Arc::new(Event::new(EventId::new(1, seq), draft, 0.0))
}

pub(super) fn parse(frame: &Bytes) -> SseEvent {
    let mut events = Parser::new().feed(frame);
    assert_eq!(events.len(), 1, "{frame:?}");
    events.remove(0)
}

pub(super) fn status(event: &SseEvent) -> String {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    data["data"]["status"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(start_paused = true)]
async fn burst_copies_are_one_interval_apart_then_close() {
    let mut f = fixture(Mode::Burst, 8, Replay::default());
    assert_eq!(
        parse(&f.session.next_chunk().await.unwrap()).event,
        "keepalive"
    );
    let start = Instant::now();
    let publisher = Arc::clone(&f.fanout);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        publisher.deliver(&event(1));
    });
    let mut times = Vec::new();
    for sequence in 1..=3 {
        let frame = f.session.next_chunk().await.unwrap();
        times.push(start.elapsed());
        let data: serde_json::Value = serde_json::from_str(&parse(&frame).data).unwrap();
        assert_eq!(data["data"]["sequence"], sequence);
    }
    assert_eq!(
        times,
        [300, 1300, 2300].map(Duration::from_millis),
        "copies must follow the first by exact intervals"
    );
    // `close` is ready at once with the last copy, and the response ends.
    let close = f.session.ready_frame().unwrap();
    assert_eq!(parse(&close).event, "close");
    assert!(f.session.is_finished());
    assert_eq!(f.session.next_chunk().await, None);
    assert_eq!(start.elapsed(), Duration::from_millis(2300));
}

/// A copy that goes out late (the server was busy with thousands of other streams due in the
/// same instant) moves the next one with it: the client sees one long gap, not a long gap and
/// then a short one.
#[tokio::test(start_paused = true)]
async fn a_late_copy_moves_the_next_one_with_it() {
    let mut f = fixture(Mode::Burst, 8, Replay::default());
    f.session.next_chunk().await.unwrap(); // the handshake
    let start = Instant::now();
    f.fanout.deliver(&event(1));
    f.session.next_chunk().await.unwrap();
    // The connection gets to the second copy 30 ms after it was due.
    tokio::time::advance(Duration::from_millis(1030)).await;
    f.session.next_chunk().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(1030));
    f.session.next_chunk().await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(2030),
        "the third copy is due one interval after the second went out"
    );
}

/// Two bursts taking an event at the same instant: the pacer gives the second first copy a
/// later slot, and each stream's rhythm then follows its own first copy.
#[tokio::test(start_paused = true)]
async fn paced_first_copies_keep_each_streams_rhythm() {
    let shared = Arc::new(Settings {
        pacer: super::Pacer::new(Duration::from_millis(100)),
        ..(*settings()).clone()
    });
    let mut a = fixture_with(Mode::Burst, 8, Replay::default(), Arc::clone(&shared));
    let mut b = fixture_with(Mode::Burst, 8, Replay::default(), shared);
    a.session.next_chunk().await.unwrap();
    b.session.next_chunk().await.unwrap();
    let start = Instant::now();
    a.fanout.deliver(&event(1));
    b.fanout.deliver(&event(1));
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    // Both streams are polled all along, as their connections would.
    while times_a.len() < 3 || times_b.len() < 3 {
        tokio::select! {
            frame = a.session.next_chunk(), if times_a.len() < 3 => {
                frame.unwrap();
                times_a.push(start.elapsed());
            }
            frame = b.session.next_chunk(), if times_b.len() < 3 => {
                frame.unwrap();
                times_b.push(start.elapsed());
            }
        }
    }
    let ms = |list: [u64; 3]| list.map(Duration::from_millis).to_vec();
    let (first, second) = if times_a[0] < times_b[0] {
        (times_a, times_b)
    } else {
        (times_b, times_a)
    };
    assert_eq!(first, ms([0, 1000, 2000]));
    assert_eq!(second, ms([100, 1100, 2100]));
}

#[tokio::test(start_paused = true)]
async fn an_idle_live_stream_sends_heartbeats_on_time() {
    let mut f = fixture(Mode::Live, 8, Replay::default());
    assert!(parse(&f.session.next_chunk().await.unwrap())
        .retry
        .is_some());
    let start = Instant::now();
    for n in 1..=3 {
        let frame = f.session.next_chunk().await.unwrap();
        assert_eq!(&frame[..], b": heartbeat\n\n");
        assert_eq!(start.elapsed(), Duration::from_secs(15 * n));
    }
    // An event in between is sent at once and resets nothing it should not.
    f.fanout.deliver(&event(7));
    let frame = f.session.next_chunk().await.unwrap();
    assert_eq!(parse(&frame).id.as_deref(), Some("urn:ssehub:1-7"));
    assert_eq!(start.elapsed(), Duration::from_secs(45));
}

/// Frames until the end of the response, each with when it came.
pub(super) async fn rest(session: &mut Timed) -> Vec<(Duration, Bytes)> {
    let start = Instant::now();
    let mut frames = Vec::new();
    while let Some(frame) = session.next_chunk().await {
        frames.push((start.elapsed(), frame));
    }
    frames
}

/// A wake-up with nothing new (no event, no shutdown) sends nothing: the stream waits on.
#[tokio::test(start_paused = true)]
async fn a_wake_with_nothing_new_sends_nothing() {
    let mut f = fixture(Mode::Live, 8, Replay::default());
    f.session.next_chunk().await.unwrap();
    f.fanout.wake_all();
    let fanout = Arc::clone(&f.fanout);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fanout.wake_all();
        tokio::time::sleep(Duration::from_millis(300)).await;
        fanout.deliver(&event(1));
    });
    let start = Instant::now();
    let frame = f.session.next_chunk().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(600));
    assert!(parse(&frame).data.contains("m1"), "{frame:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lagging_live_stream_is_told_and_ends() {
    let mut f = fixture(Mode::Live, 2, Replay::default());
    f.session.next_chunk().await.unwrap();
    for seq in 1..=5 {
        f.fanout.deliver(&event(seq));
    }
    let frame = f.session.next_chunk().await.unwrap();
    assert!(frame.starts_with(b": lagged"), "{frame:?}");
    assert!(f.session.is_finished());
    assert_eq!(f.session.next_chunk().await, None);
}

#[tokio::test(start_paused = true)]
async fn replayed_events_come_first_marked_and_are_not_repeated_live() {
    let replay = Replay {
        events: vec![event(1), event(2)],
        gap: true,
        start: None,
    };
    let mut f = fixture(Mode::Live, 8, replay);
    f.session.next_chunk().await.unwrap();
    assert_eq!(parse(&f.session.next_chunk().await.unwrap()).event, "gap");
    for seq in 1..=2 {
        let replayed = parse(&f.session.next_chunk().await.unwrap());
        assert_eq!(replayed.id, Some(format!("urn:ssehub:1-{seq}")));
        assert!(replayed.data.contains("\"replayed\":true"));
    }
    f.fanout.deliver(&event(3));
    let live = parse(&f.session.next_chunk().await.unwrap());
    assert_eq!(live.id.as_deref(), Some("urn:ssehub:1-3"));
}

#[tokio::test(start_paused = true)]
async fn a_stream_ends_at_its_deadline_with_its_status() {
    let mut f = fixture(Mode::Live, 8, Replay::default());
    f.session = f.session.ending_after(Duration::from_secs(20), "expired");
    f.session.next_chunk().await.unwrap();
    let start = Instant::now();
    // A heartbeat at 15 s, then the close at 20 s.
    assert_eq!(
        &f.session.next_chunk().await.unwrap()[..],
        b": heartbeat\n\n"
    );
    let close = parse(&f.session.next_chunk().await.unwrap());
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    assert_eq!(
        (close.event.as_str(), status(&close).as_str()),
        ("close", "expired")
    );
    assert_eq!(f.session.next_chunk().await, None);
}

/// The value of `ssehub_streams_ended_total` for `mode` and `reason`.
fn ended(metrics: &Metrics, mode: &str, reason: &str) -> f64 {
    let series = format!("ssehub_streams_ended_total{{mode=\"{mode}\",reason=\"{reason}\"}} ");
    let text = metrics.render(&Scrape::default());
    text.lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

#[tokio::test(start_paused = true)]
async fn streams_count_the_events_they_send_and_why_they_end() {
    // A burst: three copies sent, then `complete`.
    let mut f = fixture(Mode::Burst, 8, Replay::default());
    f.session.next_chunk().await.unwrap();
    f.fanout.deliver(&event(1));
    rest(&mut f.session).await;
    assert_eq!(f.metrics.open_streams(StreamKind::Burst), 1);
    drop(f.session);
    assert_eq!(f.metrics.delivered(), 3);
    assert_eq!(f.metrics.open_streams(StreamKind::Burst), 0);
    assert_eq!(ended(&f.metrics, "burst", "complete"), 1.0);

    // A live stream: a replayed event and a live one are counted (by the next write at the
    // latest), then it lags.
    let replay = Replay {
        events: vec![event(1)],
        gap: false,
        start: None,
    };
    let mut f = fixture(Mode::Live, 2, replay);
    f.session.next_chunk().await.unwrap();
    f.session.next_chunk().await.unwrap();
    f.fanout.deliver(&event(2));
    f.session.next_chunk().await.unwrap();
    // The next wait (here for a heartbeat) hands the count over.
    assert_eq!(f.metrics.delivered(), 1);
    f.session.next_chunk().await.unwrap();
    assert_eq!(f.metrics.delivered(), 2);
    for seq in 3..=8 {
        f.fanout.deliver(&event(seq));
    }
    rest(&mut f.session).await;
    drop(f.session);
    assert_eq!(ended(&f.metrics, "live", "lagged"), 1.0);

    // A token that expires; a client that leaves.
    let mut f = fixture(Mode::Live, 8, Replay::default());
    f.session = f.session.ending_after(Duration::from_secs(1), "expired");
    rest(&mut f.session).await;
    drop(f.session);
    assert_eq!(ended(&f.metrics, "live", "expired"), 1.0);
    let mut f = fixture(Mode::Mercure, 8, Replay::default());
    f.session.next_chunk().await.unwrap();
    drop(f.session);
    assert_eq!(ended(&f.metrics, "mercure", "client_gone"), 1.0);
    assert_eq!(ended(&f.metrics, "mercure", "expired"), 0.0);
}

mod drain;
