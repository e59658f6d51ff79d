use super::*;

#[test]
fn counts_losses_duplicates_and_stray_messages() {
    let pool = Pool::new(Clock::new());
    pool.state.borrow_mut().subs = vec![Sub::default(); 3];
    for index in 0..3 {
        pool.on_head(index, 200);
    }
    pool.begin_warmup();
    pool.on_message(0, 1, 10);
    pool.on_message(1, 1, 10);
    assert_eq!(pool.warm(), 2);
    pool.begin_step(100, 104);
    for seq in 100..104 {
        pool.on_message(0, seq, 1_000);
    }
    pool.on_message(1, 100, 2_000);
    pool.on_message(1, 100, 2_000);
    pool.on_message(1, 1, 5); // late warm-up message: ignored
    pool.on_message(2, 200, 5); // beyond the step: ignored
    assert_eq!(pool.delivered(), 5);
    let delivery = pool.end_step(4);
    assert_eq!(delivery.delivered, 5);
    assert_eq!(delivery.duplicates, 1);
    assert_eq!(delivery.lost, 3 + 4);
    assert_eq!(delivery.subscribers_short, 2);
    assert_eq!(delivery.latency.count, 5);
    assert_eq!(pool.ignored(), 2 + 2);
    pool.on_end(2, Some("gone".into()));
    assert_eq!(pool.connections().closed, 1);
    assert_eq!(pool.connections().open, 2);
}
