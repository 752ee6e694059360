//! The testbed's backend "pod": answers every HTTP request on `[::]:PORT` (IPv4 too) with
//! `pod=<name> client=<addr>` so that tests can see which backend served them and whether the
//! client's source address was preserved. Standard library only: it must start in milliseconds.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(pod), port) = (args.next(), args.next()) else {
        eprintln!("usage: testbed-echo POD_NAME [PORT]");
        std::process::exit(2);
    };
    let port: u16 = match port.as_deref().unwrap_or("8080").parse() {
        Ok(port) => port,
        Err(err) => {
            eprintln!("testbed-echo: bad port: {err}");
            std::process::exit(2);
        }
    };
    // A dual-stack socket: `[::]` with IPV6_V6ONLY off, which is Linux's default.
    let listener = match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("testbed-echo: cannot listen on port {port}: {err}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        let pod = pod.clone();
        std::thread::spawn(move || {
            if let Err(err) = serve(stream, &pod) {
                eprintln!("testbed-echo: {err}");
            }
        });
    }
}

/// Shows an IPv4 client as `a.b.c.d`, not as the IPv4-mapped IPv6 address the socket reports.
fn client_address(peer: SocketAddr) -> String {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.ip().to_string(),
        },
        SocketAddr::V4(v4) => v4.ip().to_string(),
    }
}

fn serve(stream: TcpStream, pod: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let client = client_address(stream.peer_addr()?);
    let mut reader = BufReader::new(stream.try_clone()?);
    // Read the request head; the body, if any, is ignored.
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let body = format!("pod={pod} client={client}\n");
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_clients_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:198.51.100.4]:40000".parse().expect("literal");
        assert_eq!(client_address(mapped), "198.51.100.4");
        let v6: SocketAddr = "[2001:db8:100::4]:40000".parse().expect("literal");
        assert_eq!(client_address(v6), "2001:db8:100::4");
    }
}
