//! Two of our `Bfd` instances on loopback addresses (no root needed): they come Up, a removal
//! reaches the other side as AdminDown, silence is detected with diag 1, a profile change keeps
//! the session Up, and a packet with TTL below 255 is dropped. Each test has its own pair of
//! 127.0.0.x addresses, so they can run in parallel.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ferrolb_bfd::{Bfd, ControlPacket, Diag, PeerState, Profile, State};
use tokio::sync::watch;

fn addr(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn fast() -> Profile {
    Profile {
        receive_interval: Duration::from_millis(50),
        transmit_interval: Duration::from_millis(50),
        detect_multiplier: 3,
        ..Profile::default()
    }
}

async fn wait_for(
    states: &mut watch::Receiver<BTreeMap<IpAddr, PeerState>>,
    peer: IpAddr,
    what: &str,
    mut accept: impl FnMut(&PeerState) -> bool,
) -> PeerState {
    let found = {
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            states.wait_for(|states| states.get(&peer).is_some_and(&mut accept)),
        )
        .await;
        match waited {
            Ok(Ok(states)) => Some(states[&peer]),
            _ => None,
        }
    };
    match found {
        Some(state) => state,
        None => panic!(
            "timed out waiting for {what}; states: {:?}",
            *states.borrow()
        ),
    }
}

async fn pair(a: &str, b: &str, profile_a: Profile, profile_b: Profile) -> (Bfd, Bfd) {
    let (a, b) = (addr(a), addr(b));
    let side_a = Bfd::start(vec![a]).await.expect("starting A");
    let side_b = Bfd::start(vec![b]).await.expect("starting B");
    side_a.add(b, a, profile_a).expect("adding B to A");
    side_b.add(a, b, profile_b).expect("adding A to B");
    (side_a, side_b)
}

#[tokio::test]
async fn two_instances_come_up_and_a_removal_is_seen_as_admin_down() {
    let (a, b) = ("127.0.0.11", "127.0.0.12");
    let (side_a, side_b) = pair(a, b, fast(), fast()).await;
    let mut states_a = side_a.states();
    let mut states_b = side_b.states();
    wait_for(&mut states_a, addr(b), "A Up", |s| s.state == State::Up).await;
    wait_for(&mut states_b, addr(a), "B Up", |s| s.state == State::Up).await;

    side_b.remove(addr(a));
    let down = wait_for(&mut states_a, addr(b), "A Down", |s| s.state == State::Down).await;
    assert_eq!(down.diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(
        (down.remote_state, down.remote_diag),
        (State::AdminDown, Diag::AdministrativelyDown)
    );
    assert!(!side_b.states().borrow().contains_key(&addr(a)));
}

#[tokio::test]
async fn a_passive_side_comes_up_when_the_other_starts() {
    let (a, b) = ("127.0.0.21", "127.0.0.22");
    let passive = Profile {
        passive: true,
        ..fast()
    };
    let (side_a, _side_b) = pair(a, b, passive, fast()).await;
    let mut states_a = side_a.states();
    wait_for(&mut states_a, addr(b), "passive A Up", |s| {
        s.state == State::Up
    })
    .await;
}

#[test]
fn silence_is_detected_with_diag_1() {
    let (a, b) = (addr("127.0.0.31"), addr("127.0.0.32"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let side_a = runtime.block_on(Bfd::start(vec![a])).expect("starting A");
    side_a.add(b, a, fast()).expect("adding B to A");
    let mut states_a = side_a.states();

    // B in a runtime of its own, dropped without a word: its tasks simply stop, as if the
    // process were killed.
    let runtime_b = tokio::runtime::Runtime::new().expect("runtime");
    let side_b = runtime_b.block_on(Bfd::start(vec![b])).expect("starting B");
    {
        let _entered = runtime_b.enter();
        side_b.add(a, b, fast()).expect("adding A to B");
    }
    runtime.block_on(wait_for(&mut states_a, b, "A Up", |s| s.state == State::Up));
    // Let the Poll Sequence settle the 50 ms timers.
    std::thread::sleep(Duration::from_millis(300));
    let silenced = Instant::now();
    runtime_b.shutdown_background();
    let down = runtime.block_on(wait_for(&mut states_a, b, "A Down", |s| {
        s.state == State::Down
    }));
    assert_eq!(down.diag, Diag::ControlDetectionTimeExpired);
    let measured = down.last_change.saturating_duration_since(silenced);
    println!("detection time on loopback: {measured:?} (negotiated 150 ms)");
    assert!(measured <= Duration::from_millis(150 + 500), "{measured:?}");
    drop(side_b);
}

#[tokio::test]
async fn a_new_profile_is_negotiated_without_going_down() {
    let (a, b) = ("127.0.0.41", "127.0.0.42");
    let (side_a, side_b) = pair(a, b, fast(), fast()).await;
    let mut states_a = side_a.states();
    let up = wait_for(&mut states_a, addr(b), "A Up", |s| s.state == State::Up).await;
    let slower = Profile {
        transmit_interval: Duration::from_millis(200),
        receive_interval: Duration::from_millis(200),
        ..fast()
    };
    side_a
        .add(addr(b), addr(a), slower.clone())
        .expect("new profile A");
    side_b.add(addr(a), addr(b), slower).expect("new profile B");
    // Long enough for the old detection time (150 ms) to have expired several times over if
    // the rate changed before the peer agreed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = side_a.states().borrow()[&addr(b)];
    assert_eq!(now.state, State::Up);
    assert_eq!(now.last_change, up.last_change, "the session flapped");
}

#[tokio::test]
async fn a_packet_that_crossed_a_router_is_dropped() {
    let (a, b) = ("127.0.0.51", "127.0.0.52");
    let (side_a, _side_b) = pair(a, b, fast(), fast()).await;
    let mut states_a = side_a.states();
    let up = wait_for(&mut states_a, addr(b), "A Up", |s| s.state == State::Up).await;
    // AdminDown with Your Discriminator 0 is valid and goes by source address: it would take
    // the session Down if its TTL of 254 did not give it away (RFC 5881 §5).
    let forger = UdpSocket::bind(SocketAddr::new(addr(b), 0)).expect("binding the forger");
    forger.set_ttl(254).expect("IP_TTL");
    let packet = ControlPacket {
        diag: Diag::AdministrativelyDown,
        state: State::AdminDown,
        poll: false,
        is_final: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0bad_cafe,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 1_000_000,
        required_min_echo_rx_us: 0,
    };
    forger
        .send_to(&packet.encode(), SocketAddr::new(addr(a), 3784))
        .expect("sending");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        side_a.states().borrow()[&addr(b)].last_change,
        up.last_change
    );
    // The control: the same packet with TTL 255 is taken.
    forger.set_ttl(255).expect("IP_TTL");
    forger
        .send_to(&packet.encode(), SocketAddr::new(addr(a), 3784))
        .expect("sending");
    let down = wait_for(&mut states_a, addr(b), "A Down", |s| s.state == State::Down).await;
    assert_eq!(down.remote_state, State::AdminDown);
}
