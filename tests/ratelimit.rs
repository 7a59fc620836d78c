//! Rate limiters: decisions, costs, bad state, and under concurrency never
//! more than each limiter's guarantee allows.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::Runner;
use redis_state::prelude::*;
use redis_state::ratelimit::{Decision, FixedWindow, Gcra, SlidingWindow};
use redis_state::testing::shared_server;
use redis_state::{Error, Namespace};

fn fixed_window_counts_and_resets(r: &mut Runner, ns: &Namespace) {
    // Windows long beside a busy machine's stalls: the four checks must land
    // in one window.
    let rl = FixedWindow::new("login", 3, Duration::from_secs(2)).namespace(ns);
    let d: Vec<Decision> = (0..4).map(|_| r.run(rl.check("ada")).unwrap()).collect();
    assert_eq!(
        d.iter()
            .map(|d| (d.allowed, d.remaining))
            .collect::<Vec<_>>(),
        [(true, 2), (true, 1), (true, 0), (false, 0)]
    );
    assert_eq!(d[0].retry_after, Duration::ZERO);
    assert!(d[3].retry_after > Duration::ZERO && d[3].retry_after <= Duration::from_secs(2));
    // Other subjects have their own quota.
    assert!(r.run(rl.check("bob")).unwrap().allowed);
    std::thread::sleep(d[3].retry_after + Duration::from_millis(20));
    let again = r.run(rl.check("ada")).unwrap();
    assert!(again.allowed && again.remaining == 2, "{again:?}");
    // Costs.
    let big = r.run(rl.check_n("carol", 3)).unwrap();
    assert!(big.allowed && big.remaining == 0);
    assert!(!r.run(rl.check_n("carol", 1)).unwrap().allowed);
    assert!(matches!(
        r.run(rl.check_n("dave", 4)),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        r.run(rl.check_n("dave", 0)),
        Err(Error::InvalidConfig { .. })
    ));
}

fn sliding_window_counts_and_slides(r: &mut Runner, ns: &Namespace) {
    const WINDOW: Duration = Duration::from_secs(2);
    let rl = SlidingWindow::new("api", 3, WINDOW).namespace(ns);
    let first_sent = Instant::now();
    assert!(r.run(rl.check("ada")).unwrap().allowed);
    let first_answered = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    assert!(r.run(rl.check("ada")).unwrap().allowed);
    let third = r.run(rl.check("ada")).unwrap();
    assert!(third.allowed && third.remaining == 0, "{third:?}");
    let denied_sent = Instant::now();
    let denied = r.run(rl.check("ada")).unwrap();
    let denied_answered = Instant::now();
    assert!(!denied.allowed);
    // The oldest entry leaves the window first: WINDOW after the server saw
    // the first check, which happened between `first_sent` and
    // `first_answered` (bounds from what was measured, so a busy machine
    // cannot break them; 2 ms for the server's rounding).
    let slack = Duration::from_millis(2);
    let latest = WINDOW.saturating_sub(denied_sent - first_answered) + slack;
    let earliest = WINDOW.saturating_sub(denied_answered - first_sent + slack);
    assert!(
        denied.retry_after <= latest && denied.retry_after >= earliest,
        "{denied:?} not in {earliest:?}..={latest:?}"
    );
    std::thread::sleep(denied.retry_after + Duration::from_millis(20));
    let one = r.run(rl.check("ada")).unwrap();
    assert!(
        one.allowed && one.remaining == 0,
        "one slot came free: {one:?}"
    );
    assert!(!r.run(rl.check("ada")).unwrap().allowed);
    // A cost of 2 needs the two oldest entries gone.
    let two = r.run(rl.check_n("ada", 2)).unwrap();
    assert!(!two.allowed && two.retry_after > Duration::ZERO);
}

fn gcra_bursts_then_paces(r: &mut Runner, ns: &Namespace) {
    // 1 per second sustained, bursts of 3 (an interval long beside a busy
    // machine's stalls: the four checks must land within one).
    let rl = Gcra::new("upload", 1, Duration::from_secs(1))
        .burst(3)
        .namespace(ns);
    let started = Instant::now();
    let d: Vec<Decision> = (0..4).map(|_| r.run(rl.check("ada")).unwrap()).collect();
    let elapsed = started.elapsed();
    assert_eq!(
        d.iter()
            .map(|d| (d.allowed, d.remaining))
            .collect::<Vec<_>>(),
        [(true, 2), (true, 1), (true, 0), (false, 0)]
    );
    // The next slot opens one interval after the first check.
    let slack = Duration::from_millis(2);
    assert!(d[3].retry_after <= Duration::from_secs(1), "{:?}", d[3]);
    assert!(
        d[3].retry_after + elapsed + slack >= Duration::from_secs(1),
        "{:?} after {elapsed:?}",
        d[3]
    );
    assert!(d[2].reset_after <= Duration::from_secs(3));
    std::thread::sleep(d[3].retry_after + Duration::from_millis(10));
    assert!(r.run(rl.check("ada")).unwrap().allowed);
    assert!(!r.run(rl.check("ada")).unwrap().allowed);
    assert!(matches!(
        r.run(rl.check_n("ada", 4)),
        Err(Error::InvalidConfig { .. })
    ));
}

fn corrupt_state_is_an_error_not_a_pass(r: &mut Runner, ns: &Namespace) {
    let fixed = FixedWindow::new("x", 3, Duration::from_secs(10)).namespace(ns);
    let gcra = Gcra::new("x", 3, Duration::from_secs(10)).namespace(ns);
    let fkey = fixed.check("s").key().to_owned();
    let gkey = gcra.check("s").key().to_owned();
    let () = r.cmd("SET", &fkey).arg("lots").arg("PX").arg(10_000).go();
    let () = r.cmd("SET", &gkey).arg("soon").go();
    let e = r.run(fixed.check("s")).unwrap_err();
    assert!(e.to_string().contains(&fkey), "{e}");
    let e = r.run(gcra.check("s")).unwrap_err();
    assert!(e.to_string().contains(&gkey), "{e}");
    // A counter someone left without TTL starts a new window instead of
    // blocking forever.
    let () = r.cmd("SET", &fkey).arg(99).go();
    assert!(r.run(fixed.check("s")).unwrap().allowed);
    let ttl: i64 = r.cmd("PTTL", &fkey).go();
    assert!(ttl > 0);
}

fn subjects_are_escaped(r: &mut Runner, ns: &Namespace) {
    let rl = FixedWindow::new("n", 1, Duration::from_secs(10)).namespace(ns);
    assert!(r.run(rl.check("a:b")).unwrap().allowed);
    // "a" + ":b" must not share the quota of "a:b", nor a glob reach it.
    assert!(r.run(rl.check("a")).unwrap().allowed);
    assert!(r.run(rl.check("a*")).unwrap().allowed);
    assert!(!r.run(rl.check("a:b")).unwrap().allowed);
    assert!(rl.check("a:b").key().ends_with(":ratelimit:fixed:n:a%3Ab"));
}

fn batched_checks(r: &mut Runner, ns: &Namespace) {
    let a = SlidingWindow::new("a", 2, Duration::from_secs(10)).namespace(ns);
    let b = Gcra::new("b", 2, Duration::from_secs(10)).namespace(ns);
    let (x, y, z) = r
        .run(batch((a.check(1u32), a.check(2u32), b.check(1u32))))
        .unwrap();
    assert!(x.allowed && y.allowed && z.allowed);
}

/// Counting every request, as the `INCR` + `EXPIRE` recipe does: denied
/// requests count too and keep the subject denied until the window ends;
/// the first request sets the TTL; a counter left without one starts a new
/// window; a counter that is not a number is an error naming the key.
fn fixed_window_counting_every_request(r: &mut Runner, ns: &Namespace) {
    let rl = FixedWindow::new("login", 3, Duration::from_secs(2))
        .count_all_requests()
        .namespace(ns);
    let key = rl.check("ada").key().to_owned();
    let d: Vec<Decision> = (0..5).map(|_| r.run(rl.check("ada")).unwrap()).collect();
    assert_eq!(
        d.iter()
            .map(|d| (d.allowed, d.remaining))
            .collect::<Vec<_>>(),
        [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]
    );
    let counted: i64 = r.cmd("GET", &key).go();
    assert_eq!(counted, 5, "denied requests are counted");
    assert!(d[4].retry_after > Duration::ZERO && d[4].retry_after <= Duration::from_secs(2));
    assert!(
        d[4].retry_after <= d[3].retry_after,
        "the window does not move"
    );
    std::thread::sleep(d[4].retry_after + Duration::from_millis(20));
    let again = r.run(rl.check("ada")).unwrap();
    assert!(again.allowed && again.remaining == 2, "{again:?}");
    // Costs count whole, admitted or not.
    assert!(r.run(rl.check_n("bob", 3)).unwrap().allowed);
    assert!(!r.run(rl.check_n("bob", 2)).unwrap().allowed);
    let counted: i64 = r.cmd("GET", rl.check("bob").key()).go();
    assert_eq!(counted, 5);
    // A counter without a TTL opens a new window.
    let carol = rl.check("carol").key().to_owned();
    let _: () = r.cmd("SET", &carol).arg(100).go();
    let d = r.run(rl.check("carol")).unwrap();
    assert!(d.allowed && d.remaining == 2, "{d:?}");
    let pttl: i64 = r.cmd("PTTL", &carol).go();
    assert!(pttl > 0 && pttl <= 2_000);
    // A counter that is not a number fails the check and names the key.
    let _: () = r.cmd("SET", &carol).arg("lots").arg("PX").arg(60_000).go();
    match r.run(rl.check("carol")) {
        Err(e) => assert!(e.to_string().contains(&carol), "{e}"),
        Ok(d) => panic!("{d:?}"),
    }
}

/// `verbatim_keys`: the subject as given after the prefix, without the
/// limiter's kind and name, for every limiter.
fn verbatim_keys_take_the_subject_as_given(r: &mut Runner, ns: &Namespace) {
    let fixed = FixedWindow::new("api", 2, Duration::from_secs(60))
        .count_all_requests()
        .verbatim_keys("rate_limit:")
        .namespace(ns);
    assert_eq!(fixed.check("u:1").key(), format!("{ns}:rate_limit:u:1"));
    assert_eq!(fixed.check(42u64).key(), format!("{ns}:rate_limit:42"));
    // Limiters of another name share the state at the same prefix.
    let other = FixedWindow::new("web", 2, Duration::from_secs(60))
        .count_all_requests()
        .verbatim_keys("rate_limit:")
        .namespace(ns);
    assert!(r.run(fixed.check(42u64)).unwrap().allowed);
    assert!(r.run(other.check(42u64)).unwrap().allowed);
    assert!(!r.run(fixed.check(42u64)).unwrap().allowed);
    let sliding = SlidingWindow::new("api", 2, Duration::from_secs(60))
        .verbatim_keys("sliding:")
        .namespace(ns);
    assert_eq!(sliding.check("u:1").key(), format!("{ns}:sliding:u:1"));
    assert!(r.run(sliding.check("u:1")).unwrap().allowed);
    let gcra = Gcra::new("api", 2, Duration::from_secs(60))
        .verbatim_keys("gcra:")
        .namespace(ns);
    assert_eq!(gcra.check("u:1").key(), format!("{ns}:gcra:u:1"));
    assert!(r.run(gcra.check("u:1")).unwrap().allowed);
}

matrix!(
    fixed_window_counting_every_request,
    verbatim_keys_take_the_subject_as_given,
    fixed_window_counts_and_resets,
    sliding_window_counts_and_slides,
    gcra_bursts_then_paces,
    corrupt_state_is_an_error_not_a_pass,
    subjects_are_escaped,
    batched_checks,
);

// ---------------------------------------------------------------------------
// Concurrency

/// One admitted request: when it was sent and answered (the server's clock
/// is the same system clock: the server runs on this host).
#[derive(Debug, Clone, Copy)]
struct Admit {
    sent: f64,
    answered: f64,
    reset_after: f64,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// `threads` threads each checking as fast as they can for `run_for`;
/// returns the admitted requests and the number of checks.
fn hammer<F>(threads: usize, run_for: Duration, check: F) -> (Vec<Admit>, usize)
where
    F: Fn(&mut redis::Connection) -> Decision + Send + Sync + Clone + 'static,
{
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let check = check.clone();
            let mut con = shared_server().connection().unwrap();
            std::thread::spawn(move || {
                let mut admits = Vec::new();
                let mut checks = 0;
                let until = Instant::now() + run_for;
                while Instant::now() < until {
                    let sent = now_ms();
                    let d = check(&mut con);
                    checks += 1;
                    if d.allowed {
                        admits.push(Admit {
                            sent,
                            answered: now_ms(),
                            reset_after: d.reset_after.as_secs_f64() * 1000.0,
                        });
                    }
                }
                (admits, checks)
            })
        })
        .collect();
    let mut admits = Vec::new();
    let mut checks = 0;
    for h in handles {
        let (a, c) = h.join().unwrap();
        admits.extend(a);
        checks += c;
    }
    admits.sort_by(|a, b| a.sent.total_cmp(&b.sent));
    (admits, checks)
}

/// The largest number of admits whose server-side times certainly fall in
/// one span of `span_ms`: for each admit i, those sent after i was sent and
/// answered before i was sent + span (so their server time is in
/// [sent_i, sent_i + span)).
fn max_in_any_span(admits: &[Admit], span_ms: f64) -> usize {
    admits
        .iter()
        .map(|i| {
            admits
                .iter()
                .filter(|j| j.sent >= i.sent && j.answered < i.sent + span_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn sliding_window_never_admits_more_than_the_limit_in_any_window() {
    let ns = common::namespace("rl_sliding_conc");
    let rl = SlidingWindow::new("hot", 20, Duration::from_millis(250)).namespace(&ns);
    let (admits, checks) = hammer(8, Duration::from_millis(1200), move |con| {
        rl.check("one").run(con).unwrap()
    });
    assert!(checks > admits.len() * 2, "the limiter was under pressure");
    let worst = max_in_any_span(&admits, 250.0);
    assert!(worst <= 20, "{worst} admitted within one window");
    // ... and it does admit up to the limit (not a limiter that refuses all).
    assert!(worst >= 15, "{worst}");
    assert!(
        admits.len() >= 20 * 4,
        "{} admitted over ~5 windows",
        admits.len()
    );
}

#[test]
fn fixed_window_never_admits_more_than_the_limit_in_one_window() {
    let ns = common::namespace("rl_fixed_conc");
    fixed_window_under_load(FixedWindow::new("hot", 20, Duration::from_millis(250)).namespace(&ns));
}

#[test]
fn fixed_window_counting_every_request_never_admits_more_than_the_limit() {
    let ns = common::namespace("rl_fixed_all_conc");
    fixed_window_under_load(
        FixedWindow::new("hot", 20, Duration::from_millis(250))
            .count_all_requests()
            .namespace(&ns),
    );
}

fn fixed_window_under_load(rl: FixedWindow) {
    let (admits, checks) = hammer(8, Duration::from_millis(1200), move |con| {
        rl.check("one").run(con).unwrap()
    });
    assert!(checks > admits.len() * 2);
    // Group admits by the end of their window: the server says how long
    // the window has left, so the end lies in [sent, answered] + reset.
    // Windows are 250 ms apart; admits of one window agree within RTTs.
    let mut windows: Vec<(f64, usize)> = Vec::new();
    for a in &admits {
        let end = (a.sent + a.answered) / 2.0 + a.reset_after;
        match windows.iter_mut().find(|(e, _)| (end - *e).abs() < 100.0) {
            Some((_, n)) => *n += 1,
            None => windows.push((end, 1)),
        }
    }
    assert!(windows.len() >= 4, "{windows:?}");
    for (end, n) in &windows {
        assert!(*n <= 20, "{n} admitted in the window ending at {end}");
    }
    assert!(
        windows.iter().filter(|(_, n)| *n == 20).count() >= 3,
        "{windows:?}"
    );
}

#[test]
fn gcra_never_admits_more_than_burst_plus_rate() {
    let ns = common::namespace("rl_gcra_conc");
    // 40 per second (one per 25 ms), bursts of 10.
    let rl = Gcra::new("hot", 40, Duration::from_secs(1))
        .burst(10)
        .namespace(&ns);
    let (admits, checks) = hammer(8, Duration::from_millis(1200), move |con| {
        rl.check("one").run(con).unwrap()
    });
    assert!(checks > admits.len() * 2);
    for span in [25.0, 100.0, 500.0, 1000.0] {
        let worst = max_in_any_span(&admits, span);
        let bound = 10 + (span / 25.0).ceil() as usize;
        assert!(
            worst <= bound,
            "{worst} admitted within {span} ms (bound {bound})"
        );
    }
    // Over the whole run: the burst plus the rate, and close to it.
    let total = admits.len();
    assert!(total <= 10 + 1200 / 25 + 1, "{total}");
    assert!(total >= 40, "{total}");
}
