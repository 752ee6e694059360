//! Sessions over real TCP on loopback against a scripted peer written here with the codec: it
//! accepts (or connects), exchanges OPEN and KEEPALIVE, and reads what the speaker sends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use ferrolb_bgp::fsm::Direction;
use ferrolb_bgp::{Advertised, PeerAsn, PeerConfig, PeerStatus, Speaker, SpeakerOptions, State};
use ferrolb_bgp_wire::{
    Capabilities, Context, Family, Inbound, Message, Notification, Open, PathAttributes, Update,
    decode, encode, frame_length,
};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LOCAL_ASN: u32 = 64500;
const PEER_ASN: u32 = 64501;
const WAIT: Duration = Duration::from_secs(10);

fn net(s: &str) -> IpNet {
    s.parse().expect("a valid literal")
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn peer_config(name: &str, port: u16) -> PeerConfig {
    PeerConfig {
        port,
        connect_time: Duration::from_secs(2),
        next_hop_v6: Some("2001:db8:100::10".parse().expect("a valid literal")),
        ..PeerConfig::new(
            name,
            loopback(),
            LOCAL_ASN,
            PeerAsn::Fixed(PEER_ASN),
            Ipv4Addr::new(198, 51, 100, 10),
        )
    }
}

fn peer_open(hold_time: u16) -> Open {
    Open {
        asn: PEER_ASN,
        hold_time,
        router_id: Ipv4Addr::new(198, 51, 100, 1),
        capabilities: Capabilities {
            four_octet_asn: true,
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
            route_refresh: true,
            ..Capabilities::default()
        },
    }
}

fn routes() -> BTreeMap<IpNet, Advertised> {
    let with = |communities: Vec<u32>| Advertised {
        communities,
        ..Advertised::default()
    };
    BTreeMap::from([
        (net("203.0.113.1/32"), with(vec![1])),
        (net("203.0.113.2/32"), with(vec![1])),
        (net("203.0.113.3/32"), with(vec![2])),
        (net("2001:db8:203::1/128"), with(vec![1])),
    ])
}

/// The scripted peer's end of one connection.
struct FakePeer {
    stream: TcpStream,
    buffer: BytesMut,
    ctx: Context,
}

impl FakePeer {
    async fn accept(listener: &TcpListener) -> anyhow::Result<Self> {
        let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .context("the speaker did not connect")??;
        Ok(Self::new(stream))
    }

    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: BytesMut::new(),
            ctx: Context {
                four_octet_asn: true,
                ..Context::default()
            },
        }
    }

    async fn send(&mut self, message: &Message) -> anyhow::Result<()> {
        let bytes = encode(message, &self.ctx)?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    /// The next message, or `None` once the speaker closed the connection.
    async fn next(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            let framed = frame_length(&self.buffer, &self.ctx);
            if let Some(length) = framed.map_err(|n| anyhow::anyhow!("bad frame: {n}"))?
                && self.buffer.len() >= length
            {
                let frame = self.buffer.split_to(length);
                let decoded = decode(&frame, &self.ctx);
                return match decoded.map_err(|n| anyhow::anyhow!("undecodable: {n}"))? {
                    Inbound::Message(message) => Ok(Some(message)),
                    Inbound::TreatAsWithdraw { reason, .. } => bail!("malformed UPDATE: {reason}"),
                    Inbound::Ignored { reason } => bail!("a message to ignore: {reason}"),
                };
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buffer))
                .await
                .context("nothing from the speaker")?;
            match read {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(None);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The next message that is not a KEEPALIVE.
    async fn next_non_keepalive(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            match self.next().await? {
                Some(Message::Keepalive) => continue,
                other => return Ok(other),
            }
        }
    }

    async fn next_update(&mut self) -> anyhow::Result<Update> {
        match self.next_non_keepalive().await? {
            Some(Message::Update(update)) => Ok(update),
            other => bail!("expected an UPDATE, got {other:?}"),
        }
    }

    /// Reads the speaker's OPEN, answers with `open` and a KEEPALIVE, and reads its KEEPALIVE.
    async fn handshake(&mut self, open: Open) -> anyhow::Result<Open> {
        let Some(Message::Open(theirs)) = self.next().await? else {
            bail!("expected the speaker's OPEN");
        };
        self.send(&Message::Open(open)).await?;
        self.send(&Message::Keepalive).await?;
        let Some(Message::Keepalive) = self.next().await? else {
            bail!("expected the speaker's KEEPALIVE");
        };
        Ok(theirs)
    }

    /// UPDATEs until End-of-RIB for every family in `families`: what was announced (with
    /// attributes) and withdrawn.
    async fn table(
        &mut self,
        families: &[Family],
    ) -> anyhow::Result<(BTreeMap<IpNet, PathAttributes>, Vec<IpNet>)> {
        let mut announced = BTreeMap::new();
        let mut withdrawn = Vec::new();
        let mut pending: BTreeSet<Family> = families.iter().copied().collect();
        while !pending.is_empty() {
            let update = self.next_update().await?;
            if let Some(family) = update.end_of_rib {
                pending.remove(&family);
                continue;
            }
            assert!(
                pending.len() == families.len(),
                "an UPDATE after an End-of-RIB"
            );
            withdrawn.extend(update.withdrawn);
            for prefix in update.announced {
                let attributes = update.attributes.clone().context("attributes")?;
                announced.insert(prefix, attributes);
            }
        }
        Ok((announced, withdrawn))
    }

    /// UPDATEs until `count` prefixes were announced or withdrawn.
    async fn changes(
        &mut self,
        count: usize,
    ) -> anyhow::Result<(BTreeMap<IpNet, PathAttributes>, Vec<IpNet>)> {
        let mut announced = BTreeMap::new();
        let mut withdrawn = Vec::new();
        while announced.len() + withdrawn.len() < count {
            let update = self.next_update().await?;
            assert_eq!(update.end_of_rib, None);
            withdrawn.extend(update.withdrawn);
            for prefix in update.announced {
                announced.insert(prefix, update.attributes.clone().context("attributes")?);
            }
        }
        Ok((announced, withdrawn))
    }

    /// Nothing but KEEPALIVEs for `quiet`.
    async fn assert_quiet(&mut self, quiet: Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(quiet, self.next_non_keepalive()).await {
            Err(_) => Ok(()),
            Ok(message) => bail!("expected nothing, got {:?}", message?),
        }
    }

    /// Reads to the end of the connection; the NOTIFICATION sent before it, if any.
    async fn closing(&mut self) -> anyhow::Result<Option<Notification>> {
        let mut notification = None;
        while let Some(message) = self.next().await? {
            if let Message::Notification(n) = message {
                notification = Some(n);
            }
        }
        Ok(notification)
    }
}

async fn wait_for_status(
    speaker: &Speaker,
    peer: &str,
    what: impl Fn(&PeerStatus) -> bool,
) -> anyhow::Result<PeerStatus> {
    let mut status = speaker.status();
    let result = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(s) = status.borrow_and_update().get(peer)
                && what(s)
            {
                return Ok(s.clone());
            }
            status.changed().await?;
        }
    })
    .await;
    match result {
        Ok(status) => status,
        Err(_) => bail!(
            "{peer}: status never matched: {:?}",
            speaker.status().borrow().get(peer)
        ),
    }
}

async fn listener() -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((loopback(), 0)).await?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// A speaker with one peer "router" established against a fake peer, which has read the full
/// table and End-of-RIB.
async fn established(
    config: impl FnOnce(PeerConfig) -> PeerConfig,
) -> anyhow::Result<(Speaker, FakePeer, BTreeMap<IpNet, PathAttributes>)> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    speaker.set_routes("router", routes());
    speaker.set_peers(vec![config(peer_config("router", port))]);
    let mut peer = FakePeer::accept(&listener).await?;
    peer.handshake(peer_open(90)).await?;
    let (table, withdrawn) = peer
        .table(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
        .await?;
    assert!(withdrawn.is_empty());
    Ok((speaker, peer, table))
}

#[tokio::test]
async fn establishes_and_sends_the_full_table_then_end_of_rib() -> anyhow::Result<()> {
    let (speaker, _peer, table) = established(|c| c).await?;
    assert_eq!(
        table.keys().copied().collect::<Vec<_>>(),
        routes().keys().copied().collect::<Vec<_>>()
    );
    let v4 = &table[&net("203.0.113.1/32")];
    assert_eq!(v4.as_path, vec![LOCAL_ASN], "eBGP: our ASN");
    assert_eq!(v4.next_hop, loopback(), "the session's local address");
    assert_eq!(v4.local_pref, None, "no LOCAL_PREF to eBGP peers");
    assert_eq!(v4.communities, vec![1]);
    assert_eq!(table[&net("203.0.113.3/32")].communities, vec![2]);
    assert_eq!(
        table[&net("2001:db8:203::1/128")].next_hop,
        "2001:db8:100::10".parse::<IpAddr>()?,
        "the configured IPv6 next hop over an IPv4 session"
    );

    let status = wait_for_status(&speaker, "router", |s| s.prefixes_advertised == 4).await?;
    assert_eq!(status.state, State::Established);
    assert!(status.established_at.is_some());
    let negotiated = status.negotiated.clone().context("negotiated")?;
    assert_eq!(negotiated.peer_asn, PEER_ASN);
    assert_eq!(negotiated.hold_time, Duration::from_secs(90));
    assert_eq!(negotiated.direction, Direction::Outgoing);
    // 3 UPDATEs at least (two attribute sets for IPv4, one for IPv6) and two End-of-RIBs.
    assert!(status.updates_sent >= 5, "{status:?}");
    assert_eq!((status.opens_sent, status.opens_received), (1, 1));
    assert_eq!((status.keepalives_sent, status.keepalives_received), (1, 1));
    assert_eq!(
        (status.updates_received, status.notifications_received),
        (0, 0)
    );
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ibgp_routes_have_an_empty_as_path_and_local_pref() -> anyhow::Result<()> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    let config = PeerConfig {
        peer_asn: PeerAsn::Internal,
        ..peer_config("router", port)
    };
    speaker.set_routes(
        "router",
        BTreeMap::from([(
            net("203.0.113.9/32"),
            Advertised {
                local_pref: Some(250),
                ..Advertised::default()
            },
        )]),
    );
    speaker.set_peers(vec![config]);
    let mut peer = FakePeer::accept(&listener).await?;
    peer.handshake(Open {
        asn: LOCAL_ASN,
        ..peer_open(90)
    })
    .await?;
    let (table, _) = peer
        .table(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
        .await?;
    let attributes = &table[&net("203.0.113.9/32")];
    assert_eq!(attributes.as_path, Vec::<u32>::new());
    assert_eq!(attributes.local_pref, Some(250));
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_route_change_sends_only_the_difference() -> anyhow::Result<()> {
    let (speaker, mut peer, table) = established(|c| c).await?;
    let mut changed = routes();
    changed.remove(&net("203.0.113.1/32"));
    changed.insert(
        net("203.0.113.2/32"),
        Advertised {
            communities: vec![7],
            ..Advertised::default()
        },
    );
    changed.insert(
        net("203.0.113.4/32"),
        changed[&net("203.0.113.3/32")].clone(),
    );
    speaker.set_routes("router", changed);

    let (announced, withdrawn) = peer.changes(3).await?;
    assert_eq!(withdrawn, vec![net("203.0.113.1/32")]);
    assert_eq!(
        announced.keys().copied().collect::<Vec<_>>(),
        vec![net("203.0.113.2/32"), net("203.0.113.4/32")]
    );
    assert_eq!(announced[&net("203.0.113.2/32")].communities, vec![7]);
    assert_eq!(
        announced[&net("203.0.113.4/32")],
        table[&net("203.0.113.3/32")],
        "same attributes as the route it copies"
    );
    peer.assert_quiet(Duration::from_millis(500)).await?;
    wait_for_status(&speaker, "router", |s| s.prefixes_advertised == 4).await?;
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn removing_every_route_withdraws_them_all() -> anyhow::Result<()> {
    let (speaker, mut peer, _) = established(|c| c).await?;
    speaker.set_routes("router", BTreeMap::new());
    let (announced, withdrawn) = peer.changes(4).await?;
    assert!(announced.is_empty());
    assert_eq!(
        withdrawn.into_iter().collect::<BTreeSet<_>>(),
        routes().keys().copied().collect::<BTreeSet<_>>()
    );
    wait_for_status(&speaker, "router", |s| s.prefixes_advertised == 0).await?;
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn route_refresh_sends_the_family_again() -> anyhow::Result<()> {
    let (speaker, mut peer, table) = established(|c| c).await?;
    peer.send(&Message::RouteRefresh(Family::Ipv4Unicast))
        .await?;
    let (announced, withdrawn) = peer.changes(3).await?;
    assert!(withdrawn.is_empty());
    let v4: BTreeMap<IpNet, PathAttributes> = table
        .into_iter()
        .filter(|(prefix, _)| Family::of(prefix) == Family::Ipv4Unicast)
        .collect();
    assert_eq!(announced, v4);
    peer.assert_quiet(Duration::from_millis(500)).await?;
    let status = wait_for_status(&speaker, "router", |s| s.route_refreshes_received == 1).await?;
    assert_eq!(status.state, State::Established);
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hold_timer_expiry_sends_4_0() -> anyhow::Result<()> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    speaker.set_peers(vec![peer_config("router", port)]);
    let mut peer = FakePeer::accept(&listener).await?;
    // Hold time 3 s, and the fake peer never sends another KEEPALIVE.
    peer.handshake(peer_open(3)).await?;
    let started = tokio::time::Instant::now();
    let notification = peer.closing().await?;
    assert_eq!(notification, Some(Notification::new(4, 0, vec![])));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    let status = wait_for_status(&speaker, "router", |s| s.state != State::Established).await?;
    assert_eq!(status.last_error.as_deref(), Some("hold timer expired"));
    assert_eq!(status.notifications_sent, 1);
    speaker.shutdown().await;
    Ok(())
}

/// An UPDATE whose Withdrawn Routes Length (16) runs past its end (RFC 4271 §6.3: 3/1),
/// assembled by hand: marker, length 23, type 2, withdrawn length 16, attribute length 0.
const MALFORMED_UPDATE: [u8; 23] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x00, 0x17, 0x02, 0x00, 0x10, 0x00, 0x00,
];

#[tokio::test]
async fn a_malformed_update_ends_that_session_only_and_it_comes_back() -> anyhow::Result<()> {
    let (listener_a, port_a) = listener().await?;
    let (listener_b, port_b) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    speaker.set_routes("a", routes());
    speaker.set_routes("b", routes());
    speaker.set_peers(vec![peer_config("a", port_a), peer_config("b", port_b)]);
    let families = [Family::Ipv4Unicast, Family::Ipv6Unicast];
    let mut a = FakePeer::accept(&listener_a).await?;
    a.handshake(peer_open(90)).await?;
    a.table(&families).await?;
    let mut b = FakePeer::accept(&listener_b).await?;
    b.handshake(peer_open(90)).await?;
    b.table(&families).await?;

    a.stream.write_all(&MALFORMED_UPDATE).await?;
    assert_eq!(a.closing().await?, Some(Notification::new(3, 1, vec![])));
    let status = wait_for_status(&speaker, "a", |s| s.state != State::Established).await?;
    assert!(status.last_error.is_some_and(|e| e.contains("malformed")));

    // B is untouched and still gets changes.
    let mut fewer = routes();
    fewer.remove(&net("203.0.113.3/32"));
    speaker.set_routes("b", fewer);
    let (_, withdrawn) = b.changes(1).await?;
    assert_eq!(withdrawn, vec![net("203.0.113.3/32")]);
    let status_b = speaker.status().borrow()["b"].clone();
    assert_eq!(status_b.state, State::Established);
    assert_eq!(status_b.notifications_sent, 0);

    // A reconnects (after a second) and gets its table again.
    let mut a = FakePeer::accept(&listener_a).await?;
    a.handshake(peer_open(90)).await?;
    let (table, _) = a.table(&families).await?;
    assert_eq!(table.len(), 4);
    wait_for_status(&speaker, "a", |s| s.state == State::Established).await?;
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_with_graceful_restart_closes_without_notification() -> anyhow::Result<()> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    let config = PeerConfig {
        graceful_restart: true,
        ..peer_config("router", port)
    };
    speaker.set_peers(vec![config]);
    let mut peer = FakePeer::accept(&listener).await?;
    let ours = peer.handshake(peer_open(90)).await?;
    let gr = ours
        .capabilities
        .graceful_restart
        .context("GR capability")?;
    assert!(!gr.restarting);
    assert_eq!(gr.restart_time, 120);
    assert_eq!(
        gr.families,
        vec![(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, true)]
    );
    peer.table(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
        .await?;
    speaker.shutdown().await;
    assert_eq!(peer.closing().await?, None);
    Ok(())
}

#[tokio::test]
async fn shutdown_without_graceful_restart_sends_cease() -> anyhow::Result<()> {
    let (speaker, mut peer, _) = established(|c| c).await?;
    speaker.shutdown().await;
    assert_eq!(peer.closing().await?, Some(Notification::new(6, 2, vec![])));
    Ok(())
}

#[tokio::test]
async fn a_removed_peer_gets_cease_peer_deconfigured() -> anyhow::Result<()> {
    let (speaker, mut peer, _) = established(|c| PeerConfig {
        graceful_restart: true,
        ..c
    })
    .await?;
    speaker.set_peers(vec![]);
    assert_eq!(peer.closing().await?, Some(Notification::new(6, 3, vec![])));
    assert!(speaker.status().borrow().is_empty());
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reset_sends_administrative_reset_and_reconnects() -> anyhow::Result<()> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    speaker.set_peers(vec![peer_config("router", port)]);
    let mut peer = FakePeer::accept(&listener).await?;
    peer.handshake(peer_open(90)).await?;
    wait_for_status(&speaker, "router", |s| s.state == State::Established).await?;
    speaker.reset("router", "BFD down");
    let mut data = vec![8];
    data.extend_from_slice(b"BFD down");
    assert_eq!(peer.closing().await?, Some(Notification::new(6, 4, data)));
    let mut peer = FakePeer::accept(&listener).await?;
    peer.handshake(peer_open(90)).await?;
    wait_for_status(&speaker, "router", |s| s.state == State::Established).await?;
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn passive_sessions_are_accepted_from_configured_peers() -> anyhow::Result<()> {
    // A port nobody listens on: the speaker's own attempts fail and back off.
    let closed_port = listener().await?.1;
    let speaker = Speaker::start(SpeakerOptions {
        listen: Some(vec![SocketAddr::new(loopback(), 0)]),
        listen_vrf: None,
    })
    .await?;
    let listen = speaker.listen_addrs()[0];
    speaker.set_routes("router", routes());
    speaker.set_peers(vec![peer_config("router", closed_port)]);

    let mut peer = FakePeer::new(TcpStream::connect(listen).await?);
    peer.send(&Message::Open(peer_open(90))).await?;
    let Some(Message::Open(ours)) = peer.next().await? else {
        bail!("expected the speaker's OPEN");
    };
    assert_eq!(ours.asn, LOCAL_ASN);
    let Some(Message::Keepalive) = peer.next().await? else {
        bail!("expected the speaker's KEEPALIVE");
    };
    peer.send(&Message::Keepalive).await?;
    let (table, _) = peer
        .table(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
        .await?;
    assert_eq!(table.len(), 4);
    assert_eq!(table[&net("203.0.113.1/32")].next_hop, loopback());
    let status = wait_for_status(&speaker, "router", |s| s.state == State::Established).await?;
    assert_eq!(
        status.negotiated.map(|n| n.direction),
        Some(Direction::Incoming)
    );
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn connections_from_unknown_addresses_are_refused() -> anyhow::Result<()> {
    let speaker = Speaker::start(SpeakerOptions {
        listen: Some(vec![SocketAddr::new(loopback(), 0)]),
        listen_vrf: None,
    })
    .await?;
    let listen = speaker.listen_addrs()[0];
    // The only peer is 127.0.0.2 (with nothing listening); the stranger comes from 127.0.0.1.
    let mut config = peer_config("router", listener().await?.1);
    config.address = "127.0.0.2".parse()?;
    speaker.set_peers(vec![config]);
    let mut stranger = FakePeer::new(TcpStream::connect(listen).await?);
    stranger.send(&Message::Open(peer_open(90))).await?;
    assert_eq!(stranger.closing().await?, None);
    speaker.shutdown().await;
    Ok(())
}

/// Our outgoing connection and the peer's incoming one both get OPENs; returns which of the
/// two fake connections was closed with CEASE / Connection Collision Resolution, after checking
/// the other one establishes.
async fn collide(peer_router_id: Ipv4Addr) -> anyhow::Result<Direction> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions {
        listen: Some(vec![SocketAddr::new(loopback(), 0)]),
        listen_vrf: None,
    })
    .await?;
    let listen = speaker.listen_addrs()[0];
    speaker.set_peers(vec![peer_config("router", port)]);
    let open = Open {
        router_id: peer_router_id,
        ..peer_open(90)
    };

    let mut outgoing = FakePeer::accept(&listener).await?;
    let Some(Message::Open(_)) = outgoing.next().await? else {
        bail!("expected our OPEN on the outgoing connection");
    };
    let mut incoming = FakePeer::new(TcpStream::connect(listen).await?);
    incoming.send(&Message::Open(open.clone())).await?;
    let Some(Message::Open(_)) = incoming.next().await? else {
        bail!("expected our OPEN on the incoming connection");
    };
    let Some(Message::Keepalive) = incoming.next().await? else {
        bail!("expected our KEEPALIVE on the incoming connection");
    };
    // The second OPEN: both connections are in OpenConfirm, one must go.
    outgoing.send(&Message::Open(open)).await?;
    let Some(first) = outgoing.next().await? else {
        bail!("the outgoing connection closed at once");
    };
    let cease_collision = Some(Notification::new(6, 7, vec![]));
    let (closed, mut survivor) = if first == Message::Keepalive {
        assert_eq!(incoming.closing().await?, cease_collision);
        (Direction::Incoming, outgoing)
    } else {
        assert_eq!(Some(first), cease_collision.map(Message::Notification));
        (Direction::Outgoing, incoming)
    };
    survivor.send(&Message::Keepalive).await?;
    survivor
        .table(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
        .await?;
    let status = wait_for_status(&speaker, "router", |s| s.state == State::Established).await?;
    assert_eq!(
        status.negotiated.map(|n| n.direction),
        Some(match closed {
            Direction::Incoming => Direction::Outgoing,
            Direction::Outgoing => Direction::Incoming,
        })
    );
    speaker.shutdown().await;
    Ok(closed)
}

#[tokio::test]
async fn collision_keeps_our_connection_when_our_identifier_is_higher() -> anyhow::Result<()> {
    // Ours is 198.51.100.10.
    let closed = collide(Ipv4Addr::new(198, 51, 100, 1)).await?;
    assert_eq!(closed, Direction::Incoming);
    Ok(())
}

#[tokio::test]
async fn collision_keeps_the_peers_connection_when_its_identifier_is_higher() -> anyhow::Result<()>
{
    let closed = collide(Ipv4Addr::new(198, 51, 100, 200)).await?;
    assert_eq!(closed, Direction::Outgoing);
    Ok(())
}

#[tokio::test]
async fn a_changed_peer_restarts_with_cease_other_configuration_change() -> anyhow::Result<()> {
    let (listener, port) = listener().await?;
    let speaker = Speaker::start(SpeakerOptions::default()).await?;
    speaker.set_routes("router", routes());
    speaker.set_peers(vec![peer_config("router", port)]);
    let mut peer = FakePeer::accept(&listener).await?;
    peer.handshake(peer_open(90)).await?;

    speaker.set_peers(vec![PeerConfig {
        hold_time: Duration::from_secs(30),
        ..peer_config("router", port)
    }]);
    assert_eq!(peer.closing().await?, Some(Notification::new(6, 6, vec![])));
    let mut peer = FakePeer::accept(&listener).await?;
    let ours = peer.handshake(peer_open(90)).await?;
    assert_eq!(ours.hold_time, 30);
    let (table, _) = peer
        .table(&[Family::Ipv4Unicast, Family::Ipv6Unicast])
        .await?;
    assert_eq!(table.len(), 4, "the routes survive the restart");
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_password_signs_the_session_with_tcp_md5() -> anyhow::Result<()> {
    // The fake peer listens with the key installed for our address, as a router would.
    let listener =
        ferrolb_bgp::transport::Listener::bind(&[SocketAddr::new(loopback(), 0)], None).await?;
    listener.set_md5(loopback(), Some("s3cret"))?;
    let port = listener.local_addrs()[0].port();
    let speaker = Speaker::start(SpeakerOptions::default()).await?;

    // A wrong key: the kernel drops the SYNs, nothing is ever accepted.
    speaker.set_peers(vec![PeerConfig {
        password: Some("wrong".into()),
        ..peer_config("router", port)
    }]);
    let accepted = tokio::time::timeout(Duration::from_secs(2), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "a connection with the wrong key was accepted"
    );

    speaker.set_peers(vec![PeerConfig {
        password: Some("s3cret".into()),
        ..peer_config("router", port)
    }]);
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept()).await??;
    let mut peer = FakePeer::new(stream);
    peer.handshake(peer_open(90)).await?;
    wait_for_status(&speaker, "router", |s| s.state == State::Established).await?;
    speaker.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn routes_of_the_other_family_without_a_next_hop_are_held_back_and_reported()
-> anyhow::Result<()> {
    let (speaker, _peer, table) = established(|c| PeerConfig {
        next_hop_v6: None,
        ..c
    })
    .await?;
    assert_eq!(
        table.keys().copied().collect::<Vec<_>>(),
        vec![
            net("203.0.113.1/32"),
            net("203.0.113.2/32"),
            net("203.0.113.3/32")
        ]
    );
    let status = wait_for_status(&speaker, "router", |s| s.prefixes_advertised == 3).await?;
    let why = status.not_advertised.context("a reason")?;
    assert!(
        why.contains("1 IPv6") && why.contains("next_hop_v6"),
        "{why}"
    );
    speaker.shutdown().await;
    Ok(())
}
