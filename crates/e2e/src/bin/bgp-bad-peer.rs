//! A misbehaving BGP peer for the end-to-end tests: it accepts a session, answers the OPEN,
//! and once the session is up sends an UPDATE whose Total Path Attribute Length runs past the
//! end of the message (RFC 7606 §4: "session reset", NOTIFICATION 3/1). It prints one line per
//! event on stdout (`established FROM`, `notification FROM CODE/SUBCODE`, `closed FROM`), which
//! the test reads, and serves connections one after another until it is killed.
//!
//! Usage: bgp-bad-peer LISTEN_ADDR:PORT ASN ROUTER_ID

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use ferrolb_bgp_wire::{
    Capabilities, Context, Family, HEADER_LEN, Inbound, Message, Open, decode, encode, frame_length,
};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, asn, router_id] = args.as_slice() else {
        bail!("usage: bgp-bad-peer LISTEN_ADDR:PORT ASN ROUTER_ID");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN_ADDR:PORT")?;
    let asn: u32 = asn.parse().context("ASN")?;
    let router_id: Ipv4Addr = router_id.parse().context("ROUTER_ID")?;
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("listening {listen}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let from = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.ip().to_string());
        if let Err(error) = serve(stream, &from, asn, router_id) {
            println!("closed {from} ({error:#})");
        }
    }
    Ok(())
}

fn serve(mut stream: TcpStream, from: &str, asn: u32, router_id: Ipv4Addr) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let ctx = Context {
        four_octet_asn: true,
        ..Context::default()
    };
    let open = Message::Open(Open {
        asn,
        hold_time: 90,
        router_id,
        capabilities: Capabilities {
            four_octet_asn: true,
            families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
            ..Capabilities::default()
        },
    });
    stream.write_all(&encode(&open, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?)?;
    stream.write_all(&encode(&Message::Keepalive, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let mut buffer = Vec::new();
    let mut sent_bad_update = false;
    loop {
        let message = read_message(&mut stream, &mut buffer, &ctx)?;
        match message {
            Inbound::Message(Message::Keepalive) if !sent_bad_update => {
                println!("established {from}");
                stream.write_all(&malformed_update())?;
                sent_bad_update = true;
            }
            Inbound::Message(Message::Notification(notification)) => {
                println!(
                    "notification {from} {}/{}",
                    notification.code, notification.subcode
                );
                return Ok(());
            }
            _ => {}
        }
    }
}

/// An UPDATE whose Total Path Attribute Length (200) runs past the end of the message.
fn malformed_update() -> Vec<u8> {
    let body: [u8; 8] = [
        0x00, 0x00, // Withdrawn Routes Length: 0
        0x00, 0xc8, // Total Path Attribute Length: 200, but 4 bytes follow
        0x40, 0x01, 0x01, 0x00, // ORIGIN IGP
    ];
    let mut message = vec![0xff; 16];
    let length = u16::try_from(HEADER_LEN + body.len()).unwrap_or(u16::MAX);
    message.extend_from_slice(&length.to_be_bytes());
    message.push(2); // UPDATE
    message.extend_from_slice(&body);
    message
}

fn read_message(stream: &mut TcpStream, buffer: &mut Vec<u8>, ctx: &Context) -> Result<Inbound> {
    loop {
        if let Some(length) = frame_length(buffer, ctx).map_err(|n| anyhow::anyhow!("{n}"))?
            && buffer.len() >= length
        {
            let frame: Vec<u8> = buffer.drain(..length).collect();
            return decode(&frame, ctx).map_err(|n| anyhow::anyhow!("{n}"));
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            bail!("connection closed");
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
