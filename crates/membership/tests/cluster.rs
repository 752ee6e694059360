//! Real UDP clusters on 127.0.0.1 with ephemeral ports. Timing bounds are generous:
//! they check behaviour, not performance.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_membership::{Config, Membership, Tuning};
use tokio::sync::watch;
use tokio::time::Instant;

const KEY: &[u8] = b"shared-memberlist-secretkey";

type Live = watch::Receiver<BTreeSet<String>>;

async fn member(name: &str, key: &[u8], seeds: Vec<SocketAddr>) -> (Membership, Live) {
    let config = Config {
        node_name: name.to_string(),
        advertise: None,
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        key: key.to_vec(),
        seeds,
        tuning: Tuning::default(),
    };
    match Membership::start(config).await {
        Ok(started) => started,
        Err(e) => panic!("start {name}: {e}"),
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Waits until `rx` shows `want`; returns how long it took, or None on timeout.
async fn wait_for(rx: &mut Live, want: &BTreeSet<String>, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    tokio::time::timeout(limit, rx.wait_for(|s| s == want))
        .await
        .ok()?
        .ok()?;
    Some(start.elapsed())
}

async fn three() -> [(Membership, Live); 3] {
    let a = member("a", KEY, vec![]).await;
    let seed = vec![a.0.local_addr()];
    let b = member("b", KEY, seed.clone()).await;
    let c = member("c", KEY, seed).await;
    let mut all = [a, b, c];
    let want = set(&["a", "b", "c"]);
    for (m, rx) in &mut all {
        let took = wait_for(rx, &want, Duration::from_secs(5)).await;
        assert!(
            took.is_some(),
            "{} did not converge: {:?}",
            m.identity().name,
            *rx.borrow()
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_converge() {
    let all = three().await;
    for (m, _) in &all {
        let s = m.stats();
        assert!(s.received > 0 && s.sent > 0, "{s:?}");
        assert_eq!(s.rejected_unauthenticated, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_member_is_removed_within_two_seconds() {
    let [mut a, mut b, c] = three().await;
    drop(c); // aborts the task: no leave message
    let want = set(&["a", "b"]);
    for (m, rx) in [&mut a, &mut b] {
        let took = wait_for(rx, &want, Duration::from_secs(2)).await;
        assert!(
            took.is_some(),
            "{} still sees {:?}",
            m.identity().name,
            *rx.borrow()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_member_is_removed_within_200ms() {
    let [mut a, mut b, c] = three().await;
    let start = Instant::now();
    c.0.leave().await;
    let want = set(&["a", "b"]);
    for (m, rx) in [&mut a, &mut b] {
        let took = wait_for(rx, &want, Duration::from_millis(1000)).await;
        let since_leave = start.elapsed();
        assert!(
            took.is_some(),
            "{} still sees {:?}",
            m.identity().name,
            *rx.borrow()
        );
        assert!(
            since_leave < Duration::from_millis(200),
            "took {since_leave:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_never_joins_and_is_counted() {
    let (a, mut a_rx) = member("a", KEY, vec![]).await;
    let seed = vec![a.local_addr()];
    let (_b, mut b_rx) = member("b", KEY, seed.clone()).await;
    let (d, d_rx) = member("intruder", b"not-the-secret", seed).await;
    let want = set(&["a", "b"]);
    assert!(
        wait_for(&mut a_rx, &want, Duration::from_secs(5))
            .await
            .is_some()
    );
    assert!(
        wait_for(&mut b_rx, &want, Duration::from_secs(5))
            .await
            .is_some()
    );
    // Give the intruder several seed retries.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(*a_rx.borrow(), want);
    assert_eq!(*b_rx.borrow(), want);
    assert_eq!(*d_rx.borrow(), set(&["intruder"]));
    assert!(a.stats().rejected_unauthenticated > 0, "{:?}", a.stats());
    assert!(d.stats().sent > 0);
    assert_eq!(d.stats().received, 0);
}

#[tokio::test]
async fn empty_key_is_refused() {
    let config = Config {
        node_name: "a".into(),
        advertise: None,
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        key: vec![],
        seeds: vec![],
        tuning: Tuning::default(),
    };
    assert!(Membership::start(config).await.is_err());
}

#[tokio::test]
async fn wildcard_bind_needs_an_advertise_address() {
    let config = Config {
        node_name: "a".into(),
        advertise: None,
        bind: SocketAddr::from(([0, 0, 0, 0], 0)),
        key: KEY.to_vec(),
        seeds: vec![],
        tuning: Tuning::default(),
    };
    assert!(Membership::start(config).await.is_err());
}

/// `cargo test -p ferrolb-membership --release -- --ignored --nocapture detection_times`
/// prints min/median/max of the time from aborting a member to both others dropping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a test"]
async fn detection_times() {
    let mut abort = Vec::new();
    let mut leave = Vec::new();
    for _ in 0..10 {
        let [mut a, mut b, c] = three().await;
        let start = Instant::now();
        drop(c);
        let want = set(&["a", "b"]);
        for (_, rx) in [&mut a, &mut b] {
            assert!(wait_for(rx, &want, Duration::from_secs(5)).await.is_some());
        }
        abort.push(start.elapsed());

        let [mut a, mut b, c] = three().await;
        let start = Instant::now();
        c.0.leave().await;
        for (_, rx) in [&mut a, &mut b] {
            assert!(wait_for(rx, &want, Duration::from_secs(5)).await.is_some());
        }
        leave.push(start.elapsed());
    }
    for (what, mut v) in [("abort", abort), ("leave", leave)] {
        v.sort();
        println!(
            "{what}: n={} min={:?} median={:?} max={:?} all={v:?}",
            v.len(),
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_rejoins_at_the_same_address() {
    let [mut a, mut b, c] = three().await;
    let addr = c.0.local_addr();
    let seed = vec![a.0.local_addr()];
    drop(c);
    let without = set(&["a", "b"]);
    for (_, rx) in [&mut a, &mut b] {
        assert!(
            wait_for(rx, &without, Duration::from_secs(3))
                .await
                .is_some()
        );
    }
    // The aborted task releases the port asynchronously: retry the bind briefly.
    let mut restarted = None;
    for _ in 0..50 {
        let config = Config {
            node_name: "c".into(),
            advertise: None,
            bind: addr,
            key: KEY.to_vec(),
            seeds: seed.clone(),
            tuning: Tuning::default(),
        };
        if let Ok(m) = Membership::start(config).await {
            restarted = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some((_c, mut c_rx)) = restarted else {
        panic!("could not rebind {addr}");
    };
    // A newer generation at the same address wins over the Down identity.
    let with = set(&["a", "b", "c"]);
    for rx in [&mut a.1, &mut b.1, &mut c_rx] {
        let took = wait_for(rx, &with, Duration::from_secs(3)).await;
        assert!(took.is_some(), "sees {:?}", *rx.borrow());
    }
}
