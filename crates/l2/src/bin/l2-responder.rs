//! `l2-responder --interface eth0 --ip 198.51.100.240 --ip 2001:db8:100::240`: answers ARP
//! and NDP for the given IPs on the given interfaces until SIGTERM or Ctrl-C, announcing
//! them at start. For tests and manual use; the speaker drives [`ferrolb_l2::Responder`]
//! itself.
//!
//! Prints `ready` on stdout once the sockets are open and the IPs owned, and the counters on
//! stderr when it stops.

use std::io::Write;
use std::net::IpAddr;

use anyhow::{Context, Result};
use clap::Parser;
use ferrolb_l2::Responder;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(about = "Answer ARP and IPv6 NDP for the given IPs on the given interfaces")]
struct Args {
    /// Interface to answer on (repeatable).
    #[arg(long = "interface", short = 'i', required = true)]
    interfaces: Vec<String>,
    /// IP to own (repeatable, IPv4 or IPv6).
    #[arg(long = "ip")]
    ips: Vec<IpAddr>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let responder = Responder::new(&args.interfaces)?;
    for (name, mac) in responder.interfaces() {
        tracing::info!(interface = %name, %mac, "answering");
    }
    responder.set_owned(args.ips.iter().copied());
    tracing::info!(ips = ?args.ips, "owning");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "ready")?;
        stdout.flush()?;
    }
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    let counters = responder.counters().snapshot();
    drop(responder);
    eprintln!("l2-responder stopping: {counters:?}");
    Ok(())
}
