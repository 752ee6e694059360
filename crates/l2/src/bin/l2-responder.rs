//! `l2-responder --interface eth0 --ip 198.51.100.240 --ip 2001:db8:100::240`: answers ARP
//! and NDP for the given IPs on the given interfaces until SIGTERM or Ctrl-C, announcing
//! them at start. For tests and manual use; the speaker drives [`ferrolb_l2::Responder`]
//! itself.
//!
//! With `--follow`, the links are followed over netlink instead ([`Responder::start`]):
//! every usable link not excluded by name answers, or, when `--interface` is given too,
//! only the named links (excluded names included), as an L2Advertisement's `interfaces`
//! does. `--exclude` replaces MetalLB's default exclusion list.
//!
//! Prints `ready` on stdout once the sockets are open and the IPs owned, and the counters on
//! stderr when it stops.

use std::io::Write;
use std::net::IpAddr;

use anyhow::{Context, Result};
use clap::Parser;
use std::time::Duration;

use ferrolb_l2::{Responder, ResponderOptions, Scope};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(about = "Answer ARP and IPv6 NDP for the given IPs on the given interfaces")]
struct Args {
    /// Interface to answer on (repeatable); with --follow, the scope of every IP.
    #[arg(long = "interface", short = 'i', required_unless_present = "follow")]
    interfaces: Vec<String>,
    /// Follow the host's links over netlink instead of a fixed list.
    #[arg(long)]
    follow: bool,
    /// With --follow: a regular expression for link names not answered on by default
    /// (repeatable; replaces MetalLB's default list).
    #[arg(long = "exclude", requires = "follow")]
    exclude: Vec<String>,
    /// With --follow: announce every IP again every this many milliseconds.
    #[arg(long = "refresh-ms", requires = "follow")]
    refresh_ms: Option<u64>,
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
    let (responder, scope) = if args.follow {
        let mut options = ResponderOptions {
            refresh: args.refresh_ms.map(Duration::from_millis),
            ..ResponderOptions::default()
        };
        if !args.exclude.is_empty() {
            options.exclude = args.exclude.clone();
        }
        let scope = if args.interfaces.is_empty() {
            Scope::All
        } else {
            Scope::only(args.interfaces.iter().cloned())
        };
        (Responder::start(options).await?, scope)
    } else {
        (Responder::new(&args.interfaces)?, Scope::All)
    };
    for (name, mac) in responder.interfaces() {
        tracing::info!(interface = %name, %mac, "answering");
    }
    responder.set_owned(args.ips.iter().map(|ip| (*ip, scope.clone())));
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
