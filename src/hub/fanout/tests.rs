//! The fan-out's promises, each forced deterministically: order, once, lag, caps, privacy.

use super::*;
use crate::event::Draft;
use crate::sse::{EventId, EventName};

fn event(seq: u64, topic: &str) -> Arc<Event> {
    let draft = Draft::new(
        TopicName::any(topic).unwrap(),
        EventName::message(),
        format!("m{seq}"),
    );
    Arc::new(Event::new(EventId::new(1, seq), draft, 0.0))
}

fn patterns(list: &[&str]) -> Vec<Pattern> {
    list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
}

fn drain(sub: &mut Subscription) -> Vec<u64> {
    std::iter::from_fn(|| sub.try_recv().unwrap().map(|e| e.id.seq)).collect()
}

/// Round 1's loss: a read finds topic a empty, then 5 (a) and 6 (b) are delivered, then the
/// read goes on. Every order of reads and deliveries must yield 5 then 6.
#[test]
fn reads_interleaved_with_deliveries_lose_nothing() {
    let fanout = Arc::new(Fanout::new(16, 16));
    let mut sub = fanout.subscribe(&patterns(&["a", "b"]), None).unwrap();
    assert_eq!(sub.try_recv().unwrap().map(|e| e.id.seq), None);
    fanout.deliver(&event(5, "a"));
    fanout.deliver(&event(6, "b"));
    assert_eq!(drain(&mut sub), [5, 6]);
    fanout.deliver(&event(7, "b"));
    assert_eq!(drain(&mut sub), [7]);
    fanout.deliver(&event(8, "a"));
    fanout.deliver(&event(9, "b"));
    fanout.deliver(&event(10, "a"));
    assert_eq!(sub.try_recv().unwrap().map(|e| e.id.seq), Some(8));
    fanout.deliver(&event(11, "b"));
    assert_eq!(drain(&mut sub), [9, 10, 11]);
}

#[test]
fn overlapping_patterns_deliver_once_in_order() {
    let fanout = Arc::new(Fanout::new(16, 16));
    let mut sub = fanout
        .subscribe(&patterns(&["x/y", "x/*", "*"]), None)
        .unwrap();
    for seq in 1..=4 {
        fanout.deliver(&event(seq, if seq % 2 == 0 { "x/y" } else { "x/z" }));
    }
    assert_eq!(drain(&mut sub), [1, 2, 3, 4]);
    assert_eq!(fanout.subscribers(&TopicName::new("x/y").unwrap()), 3);
}

#[test]
fn replayed_events_are_skipped() {
    let fanout = Arc::new(Fanout::new(16, 16));
    let mut sub = fanout.subscribe(&patterns(&["a"]), None).unwrap();
    fanout.deliver(&event(1, "a"));
    fanout.deliver(&event(2, "a"));
    sub.skip_through(EventId::new(1, 2));
    fanout.deliver(&event(2, "a"));
    fanout.deliver(&event(3, "a"));
    assert_eq!(drain(&mut sub), [3]);
}

#[test]
fn a_full_queue_lags_and_frees_it() {
    let fanout = Arc::new(Fanout::new(2, 16));
    let mut sub = fanout.subscribe(&patterns(&["a"]), None).unwrap();
    for seq in 1..=5 {
        fanout.deliver(&event(seq, "a"));
    }
    assert_eq!(sub.try_recv().unwrap_err(), Lagged(3));
    assert_eq!(sub.slot.lock().events.capacity(), 0);
}

#[test]
fn patterns_are_capped_and_released() {
    let fanout = Arc::new(Fanout::new(4, 3));
    let first = fanout.subscribe(&patterns(&["a", "b"]), None).unwrap();
    assert!(fanout.subscribe(&patterns(&["c", "d"]), None).is_err());
    let second = fanout.subscribe(&patterns(&["a", "c"]), None).unwrap();
    assert_eq!(fanout.pattern_count(), 3);
    drop(first);
    assert_eq!(fanout.pattern_count(), 2);
    drop(second);
    assert_eq!(fanout.pattern_count(), 0);
    assert!(!fanout.is_subscribed(&TopicName::new("a").unwrap()));
}

#[test]
fn private_events_reach_only_granted_subscribers() {
    let fanout = Arc::new(Fanout::new(16, 16));
    let mut anonymous = fanout.subscribe(&patterns(&["*"]), None).unwrap();
    let only_a: Access = Arc::new(|topic: &TopicName| topic.as_str() == "a");
    let mut granted = fanout.subscribe(&patterns(&["*"]), Some(only_a)).unwrap();
    let secret = |seq, topic| {
        let public = event(seq, topic);
        let draft = Draft {
            topic: public.topic.clone(),
            name: EventName::message(),
            message: public.message.clone(),
            private: true,
            alternates: Vec::new(),
            custom_id: None,
            retry: None,
        };
        Arc::new(Event::new(public.id, draft, 0.0))
    };
    fanout.deliver(&event(1, "a"));
    fanout.deliver(&secret(2, "a"));
    fanout.deliver(&secret(3, "b"));
    fanout.deliver(&event(4, "b"));
    assert_eq!(drain(&mut anonymous), [1, 4]);
    assert_eq!(drain(&mut granted), [1, 2, 4]);
}

#[tokio::test]
async fn recv_wakes_on_delivery() {
    let fanout = Arc::new(Fanout::new(4, 4));
    let mut sub = fanout.subscribe(&patterns(&["a/*"]), None).unwrap();
    let waiter = tokio::spawn(async move { sub.recv().await.map(|e| e.id.seq) });
    tokio::task::yield_now().await;
    fanout.deliver(&event(1, "a/b"));
    assert_eq!(waiter.await.unwrap(), Ok(1));
}

/// Subscribers sending the same pattern text share one compiled selector; the table keeps it
/// while any of them is subscribed.
#[test]
fn identical_patterns_share_one_compiled_selector() {
    let fanout = Arc::new(Fanout::new(16, 16));
    let compile = || Pattern::Matcher(Selector::legacy("https://e.test/{id}").unwrap());
    let compiled = |sub: &Subscription| match &sub.patterns[0] {
        Pattern::Matcher(Selector::Template(regex, _)) => Arc::clone(regex),
        other => panic!("{other:?}"),
    };
    let a = fanout.subscribe(&[compile()], None).unwrap();
    let b = fanout.subscribe(&[compile()], None).unwrap();
    assert!(Arc::ptr_eq(&compiled(&a), &compiled(&b)));
    drop(a);
    let c = fanout.subscribe(&[compile()], None).unwrap();
    assert!(Arc::ptr_eq(&compiled(&b), &compiled(&c)));
    let topic = TopicName::any("https://e.test/1").unwrap();
    assert_eq!(fanout.subscribers(&topic), 2);
}

/// Subscribers leave in any order (here: every other one, newest first, then the first) and
/// exactly the others stay, each still receiving, each once.
#[test]
fn subscribers_leave_in_any_order() {
    let fanout = Arc::new(Fanout::new(16, 16));
    let mut subs: Vec<Option<Subscription>> = (0..1000)
        .map(|_| Some(fanout.subscribe(&patterns(&["t", "*"]), None).unwrap()))
        .collect();
    for i in (1..1000).rev().step_by(2) {
        subs[i] = None;
    }
    subs[0] = None;
    let topic = TopicName::new("t").unwrap();
    assert_eq!(fanout.subscribers(&topic), 2 * 499, "two patterns each");
    assert_eq!(fanout.deliver(&event(1, "t")), 499);
    for (i, sub) in subs.iter_mut().enumerate() {
        if let Some(sub) = sub {
            assert_eq!(drain(sub), [1], "subscriber {i}");
        }
    }
    subs.clear();
    assert_eq!(fanout.pattern_count(), 0);
}

/// The reader's lock-free "anything more?" (the queue's `pending` flag): an event queued after
/// the flag read `false`, after a skip emptied the queue, or while the reader waits, is still
/// read, in order, and a lag still surfaces.
#[tokio::test]
async fn the_pending_flag_never_hides_an_event() {
    let fanout = Arc::new(Fanout::new(4, 16));
    let mut sub = fanout.subscribe(&patterns(&["a"]), None).unwrap();
    assert!(sub.try_recv().unwrap().is_none());
    fanout.deliver(&event(1, "a"));
    assert_eq!(drain(&mut sub), [1]);
    fanout.deliver(&event(2, "a"));
    fanout.deliver(&event(3, "a"));
    sub.skip_through(EventId::new(1, 3));
    assert!(sub.try_recv().unwrap().is_none());
    fanout.deliver(&event(4, "a"));
    assert_eq!(drain(&mut sub), [4]);
    // A wait that begins after the flag read false is woken by the next delivery.
    let waiting = tokio::spawn(async move {
        let got = sub.recv().await.map(|e| e.id.seq);
        (sub, got)
    });
    tokio::task::yield_now().await;
    fanout.deliver(&event(5, "a"));
    let (mut sub, got) = waiting.await.unwrap();
    assert_eq!(got, Ok(5));
    for seq in 6..=11 {
        fanout.deliver(&event(seq, "a"));
    }
    assert_eq!(sub.try_recv().unwrap_err(), Lagged(2));
}

/// Publishers on other threads against one reader that waits whenever it finds nothing: every
/// event arrives once, in order, however the flag's reads and the appends interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_reach_a_waiting_reader_in_order() {
    const EVENTS: u64 = 20_000;
    let fanout = Arc::new(Fanout::new(EVENTS as usize + 1, 16));
    let mut sub = fanout.subscribe(&patterns(&["a"]), None).unwrap();
    let publisher = {
        let fanout = Arc::clone(&fanout);
        std::thread::spawn(move || {
            for seq in 1..=EVENTS {
                fanout.deliver(&event(seq, "a"));
                if seq % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        for expected in 1..=EVENTS {
            assert_eq!(sub.recv().await.unwrap().id.seq, expected);
        }
    });
    read.await.expect("every event arrived");
    publisher.join().unwrap();
    assert!(sub.try_recv().unwrap().is_none());
}

/// Patterns run on this thread since the last call.
fn runs() -> usize {
    crate::topic::selector::RUNS.with(|runs| runs.replace(0))
}

fn template(text: &str) -> Pattern {
    Pattern::Matcher(Selector::legacy(text).unwrap())
}

/// Round 2's attack: 450 streams × 16 templates like `{a}x…{b}` (no literal to index by)
/// made every publish to a new topic run 7,200 patterns under the lock. Past the broad cap
/// subscriptions are refused, so a new topic runs at most the cap (and one more).
#[test]
fn patterns_the_index_cannot_narrow_are_capped() {
    let fanout = Arc::new(Fanout::new(16, 100_000));
    fanout.set_max_broad(64);
    let mut held = Vec::new();
    let mut refused = 0;
    for stream in 0..450 {
        let patterns: Vec<Pattern> = (0..16)
            .map(|i| template(&format!("{{a}}x{stream}y{i}{{b}}")))
            .collect();
        match fanout.subscribe(&patterns, None) {
            Ok(sub) => held.push(sub),
            Err(err) => {
                assert_eq!(err, TooManyPatterns::Broad);
                refused += 1;
            }
        }
    }
    assert_eq!(held.len(), 4, "65 fit: 4 streams of 16");
    assert_eq!(refused, 446);
    runs();
    for n in 0..100 {
        fanout.deliver(&event(n, &format!("fresh/{n}")));
    }
    assert!(runs() <= 100 * 65, "more than the cap per new topic");
    // Patterns with their own literal text are still welcome.
    let indexed: Vec<Pattern> = (0..16)
        .map(|i| template(&format!("https://e.test/{i}/{{id}}")))
        .collect();
    assert!(fanout.subscribe(&indexed, None).is_ok());
}

/// One client opening and closing subscriptions must not make every other topic's publish
/// run its patterns again: a new pattern is checked once against a remembered topic, a gone
/// one costs nothing.
#[test]
fn subscription_churn_does_not_rematch_remembered_topics() {
    let fanout = Arc::new(Fanout::new(16, 100_000));
    let steady: Vec<Pattern> = (0..50)
        .map(|i| template(&format!("https://e.test/steady/{i}/{{id}}")))
        .collect();
    let mut steady_sub = fanout.subscribe(&steady, None).unwrap();
    let topic = "https://e.test/steady/7/x";
    fanout.deliver(&event(1, topic));
    assert_eq!(drain(&mut steady_sub), [1]);
    runs();
    for n in 0..1000u64 {
        let churn = fanout
            .subscribe(
                &[template(&format!("https://e.test/churn/{n}/{{id}}"))],
                None,
            )
            .unwrap();
        fanout.deliver(&event(2 + n, topic));
        assert_eq!(drain(&mut steady_sub), [2 + n]);
        drop(churn);
    }
    // Each churned pattern is checked against the topic once, the steady ones never again.
    let churn_runs = runs();
    assert!(churn_runs <= 1000, "{churn_runs} runs");
}

/// A subscription's start is the newest event delivered before it, on any topic: every event
/// after that one reaches it (if it matches), none before it does, whichever thread delivers.
#[test]
fn a_subscription_starts_right_after_the_newest_event_delivered() {
    let fanout = Arc::new(Fanout::new(64, 16));
    let (_, start) = fanout.subscribe_from(&patterns(&["a"]), None).unwrap();
    assert_eq!(start, None, "nothing delivered yet");
    assert!(!fanout.delivered_any());
    fanout.deliver(&event(1, "a"));
    fanout.deliver(&event(2, "elsewhere"));
    let (mut sub, start) = fanout.subscribe_from(&patterns(&["a"]), None).unwrap();
    assert_eq!(start, Some(EventId::new(1, 2)));
    fanout.deliver(&event(3, "a"));
    assert_eq!(drain(&mut sub), [3]);
    // Racing deliveries: each subscription made meanwhile holds exactly the events after its
    // start.
    let deliverer = {
        let fanout = Arc::clone(&fanout);
        std::thread::spawn(move || {
            for seq in 4..=40 {
                fanout.deliver(&event(seq, "a"));
            }
        })
    };
    let mut made = Vec::new();
    while !deliverer.is_finished() || made.is_empty() {
        made.push(fanout.subscribe_from(&patterns(&["a"]), None).unwrap());
    }
    deliverer.join().unwrap();
    for (mut sub, start) in made {
        let after = start.map_or(0, |s| s.seq);
        assert_eq!(drain(&mut sub), (after + 1..=40).collect::<Vec<_>>());
    }
}
