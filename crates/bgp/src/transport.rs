//! TCP sockets for BGP sessions: MD5 signatures (RFC 2385), TTL for eBGP multihop and GTSM,
//! source address, VRF devices, and the listener for passive sessions.
//!
//! Everything here is socket options around plain TCP; the session code decides which options a
//! peer gets (TTL 1 for single-hop eBGP, 255 for multihop, which key, which VRF). Linux only:
//! MD5 keys, `SO_BINDTODEVICE` and `IP_MINTTL` are Linux kernel state.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The port BGP listens on (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// The longest key Linux accepts in `TCP_MD5SIG` (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LENGTH: usize = 80;

/// DSCP CS6 ("network control", RFC 4594) in the TOS / traffic-class byte: routers mark their
/// routing-protocol traffic this way so that it is queued ahead of user traffic under load.
const CONTROL_TRAFFIC_CLASS: u32 = 0xc0;

/// Linux's `IFNAMSIZ` less the terminating NUL: the longest device name the kernel knows.
const MAX_DEVICE_NAME_LENGTH: usize = 15;

const LISTEN_BACKLOG: i32 = 64;

/// How to open an active BGP connection to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    pub peer: SocketAddr,
    /// The local address to connect from (BGPPeer `sourceAddress`); the kernel picks one if unset.
    pub source: Option<IpAddr>,
    /// RFC 2385 TCP MD5 signature key, 1 to 80 bytes.
    pub md5_key: Option<String>,
    /// Outgoing TTL (IPv4) or hop limit (IPv6), 1 to 255; the kernel default if unset.
    pub ttl: Option<u8>,
    /// The VRF device to bind the socket to (`SO_BINDTODEVICE`).
    pub vrf: Option<String>,
    /// How long the TCP handshake may take.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "the TCP MD5 key for peer {peer} is {length} bytes long; Linux accepts at most {MD5_MAX_KEY_LENGTH}"
    )]
    Md5KeyTooLong { peer: IpAddr, length: usize },
    #[error("the TCP MD5 key for peer {peer} is empty; leave it unset to connect without one")]
    Md5KeyEmpty { peer: IpAddr },
    #[error(
        "cannot use a TCP MD5 key for peer {peer}: this kernel has no TCP MD5 support (CONFIG_TCP_MD5SIG)"
    )]
    Md5Unsupported { peer: IpAddr },
    #[error("cannot set the TCP MD5 key for peer {peer}: {source}")]
    Md5 { peer: IpAddr, source: io::Error },
    #[error("TTL 0 requested for peer {peer}; the TTL must be 1 to 255")]
    InvalidTtl { peer: SocketAddr },
    #[error("source address {source_address} is not of the same IP family as peer {peer}")]
    SourceFamilyMismatch {
        peer: SocketAddr,
        source_address: IpAddr,
    },
    #[error("VRF device name {device:?} is invalid: {reason}")]
    InvalidDeviceName {
        device: String,
        reason: &'static str,
    },
    #[error("VRF device {device:?} does not exist; cannot bind the socket for {endpoint} to it")]
    NoSuchDevice {
        device: String,
        endpoint: SocketAddr,
    },
    #[error("cannot bind the socket for {endpoint} to VRF device {device:?}: {source}")]
    BindDevice {
        device: String,
        endpoint: SocketAddr,
        source: io::Error,
    },
    #[error("cannot bind source address {address} for the connection to peer {peer}: {source}")]
    BindSource {
        address: IpAddr,
        peer: SocketAddr,
        source: io::Error,
    },
    #[error("connecting to peer {peer} timed out after {timeout:?}")]
    ConnectTimeout { peer: SocketAddr, timeout: Duration },
    #[error("connecting to peer {peer} failed: {source}")]
    Connect { peer: SocketAddr, source: io::Error },
    #[error("cannot {action} on the socket for {endpoint}: {source}")]
    SocketOption {
        action: &'static str,
        endpoint: SocketAddr,
        source: io::Error,
    },
    #[error("no addresses to listen on")]
    NoListenAddresses,
    #[error("cannot listen for BGP connections on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("accepting a BGP connection failed: {source}")]
    Accept { source: io::Error },
    #[error("the BGP connection's socket has no address any more: {source}")]
    Unusable { source: io::Error },
}

/// Opens a TCP connection to `options.peer` with every option applied before the SYN is sent,
/// so that the handshake itself is signed, bound and carries the TTL.
pub async fn connect(options: &ConnectOptions) -> Result<TcpStream, TransportError> {
    let peer = options.peer;
    if let Some(key) = &options.md5_key {
        validate_md5_key(peer.ip(), key)?;
    }
    if options.ttl == Some(0) {
        return Err(TransportError::InvalidTtl { peer });
    }
    if let Some(source) = options.source
        && source.is_ipv4() != peer.is_ipv4()
    {
        return Err(TransportError::SourceFamilyMismatch {
            peer,
            source_address: source,
        });
    }
    if let Some(device) = &options.vrf {
        validate_device_name(device)?;
    }

    let option_error = |action| {
        move |source| TransportError::SocketOption {
            action,
            endpoint: peer,
            source,
        }
    };
    let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))
        .map_err(option_error("create a TCP socket"))?;
    socket
        .set_nonblocking(true)
        .map_err(option_error("make the socket non-blocking"))?;
    if let Some(device) = &options.vrf {
        // Before bind(): in a VRF the source address is looked up in the VRF's table.
        bind_device(&socket, device, peer)?;
    }
    set_control_traffic_class(&socket, peer.is_ipv4())
        .map_err(option_error("set the DSCP to CS6"))?;
    if let Some(ttl) = options.ttl {
        set_ttl_on(&SockRef::from(&socket), peer.is_ipv4(), ttl)
            .map_err(option_error("set the TTL"))?;
    }
    if let Some(key) = &options.md5_key {
        set_md5_key(socket.as_fd(), peer.ip(), Some(key))?;
    }
    if let Some(source) = options.source {
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(|error| TransportError::BindSource {
                address: source,
                peer,
                source: error,
            })?;
    }

    let socket = TcpSocket::from_std_stream(socket.into());
    let stream = match tokio::time::timeout(options.timeout, socket.connect(peer)).await {
        Err(_elapsed) => {
            return Err(TransportError::ConnectTimeout {
                peer,
                timeout: options.timeout,
            });
        }
        Ok(Err(source)) => return Err(TransportError::Connect { peer, source }),
        Ok(Ok(stream)) => stream,
    };
    set_no_delay(&stream, peer)?;
    Ok(stream)
}

/// The passive side: one listening socket per address, accepting from all of them.
#[derive(Debug)]
pub struct Listener {
    listeners: Vec<TcpListener>,
    /// Which socket `accept` polls first, rotated so that a busy one cannot starve the others.
    next: AtomicUsize,
}

impl Listener {
    /// Listens on every address in `addresses` (port 179 is [`BGP_PORT`]), each socket bound to
    /// device `vrf` if given. IPv6 sockets are IPv6-only, so that `0.0.0.0` and `::` can be
    /// listened on side by side and IPv4 peers never appear as mapped IPv6 addresses.
    pub async fn bind(addresses: &[SocketAddr], vrf: Option<&str>) -> Result<Self, TransportError> {
        if addresses.is_empty() {
            return Err(TransportError::NoListenAddresses);
        }
        if let Some(device) = vrf {
            validate_device_name(device)?;
        }
        let listeners = addresses
            .iter()
            .map(|&address| listen(address, vrf))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Listener {
            listeners,
            next: AtomicUsize::new(0),
        })
    }

    /// Installs (`Some`) or removes (`None`) the MD5 key for connections from `peer` on every
    /// listening socket of its family; accepted connections inherit it. Setting a key again
    /// replaces it; removing a key that is not there is not an error.
    pub fn set_md5(&self, peer: IpAddr, key: Option<&str>) -> Result<(), TransportError> {
        if let Some(key) = key {
            validate_md5_key(peer, key)?;
        }
        for listener in &self.listeners {
            let same_family = listener
                .local_addr()
                .is_ok_and(|local| local.is_ipv4() == peer.is_ipv4());
            if same_family {
                set_md5_key(listener.as_fd(), peer, key)?;
            }
        }
        Ok(())
    }

    /// The next incoming connection on any of the addresses, with its peer's address.
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), TransportError> {
        let count = self.listeners.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let (stream, peer) = poll_fn(|context| {
            for offset in 0..count {
                let listener = &self.listeners[(start + offset) % count];
                if let Poll::Ready(result) = listener.poll_accept(context) {
                    return Poll::Ready(result);
                }
            }
            Poll::Pending
        })
        .await
        .map_err(|source| TransportError::Accept { source })?;
        set_no_delay(&stream, peer)?;
        // Accepted sockets inherit the listener's TOS, but set it anyway: the listener's value
        // is an implementation detail of the kernel's clone, ours is a promise.
        set_control_traffic_class(&SockRef::from(&stream), peer.is_ipv4()).map_err(|source| {
            TransportError::SocketOption {
                action: "set the DSCP to CS6",
                endpoint: peer,
                source,
            }
        })?;
        Ok((stream, peer))
    }

    /// The addresses actually listened on (with the kernel's port if 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .collect()
    }
}

/// Sets the outgoing TTL (IPv4) or hop limit (IPv6) of an established connection, for passive
/// sessions whose peer is known only after `accept`.
pub fn set_ttl(stream: &TcpStream, ttl: u8) -> Result<(), TransportError> {
    let peer = stream_peer(stream)?;
    if ttl == 0 {
        return Err(TransportError::InvalidTtl { peer });
    }
    set_ttl_on(&SockRef::from(stream), peer.is_ipv4(), ttl).map_err(|source| {
        TransportError::SocketOption {
            action: "set the TTL",
            endpoint: peer,
            source,
        }
    })
}

/// GTSM (RFC 5082): the kernel drops segments of this connection that arrive with a TTL (hop
/// limit) below `ttl`, so a peer one hop away sending with TTL 255 cannot be spoofed from
/// farther away. 0 turns the check off.
pub fn set_min_ttl(stream: &TcpStream, ttl: u8) -> Result<(), TransportError> {
    let peer = stream_peer(stream)?;
    let (level, name) = if peer.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MINTTL)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
    };
    set_raw_option(stream.as_fd(), level, name, &libc::c_int::from(ttl)).map_err(|source| {
        TransportError::SocketOption {
            action: "set the minimum TTL (GTSM)",
            endpoint: peer,
            source,
        }
    })
}

fn stream_peer(stream: &TcpStream) -> Result<SocketAddr, TransportError> {
    // The local address serves when the peer is gone (reset): it names the family all the same.
    stream
        .peer_addr()
        .or_else(|_| stream.local_addr())
        .map_err(|source| TransportError::Unusable { source })
}

fn listen(address: SocketAddr, vrf: Option<&str>) -> Result<TcpListener, TransportError> {
    let listen_error = |source| TransportError::Listen { address, source };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(listen_error)?;
    socket.set_nonblocking(true).map_err(listen_error)?;
    // A restarted speaker must be able to listen again while the old connections sit in TIME_WAIT.
    socket.set_reuse_address(true).map_err(listen_error)?;
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(listen_error)?;
    }
    if let Some(device) = vrf {
        bind_device(&socket, device, address)?;
    }
    set_control_traffic_class(&socket, address.is_ipv4()).map_err(listen_error)?;
    socket.bind(&address.into()).map_err(listen_error)?;
    socket.listen(LISTEN_BACKLOG).map_err(listen_error)?;
    TcpListener::from_std(socket.into()).map_err(listen_error)
}

fn set_no_delay(stream: &TcpStream, peer: SocketAddr) -> Result<(), TransportError> {
    // BGP writes small messages (KEEPALIVEs of 19 bytes, single UPDATEs) and the peer's hold
    // timer and convergence wait on each; Nagle would hold them back for the previous one's ACK.
    stream
        .set_nodelay(true)
        .map_err(|source| TransportError::SocketOption {
            action: "set TCP_NODELAY",
            endpoint: peer,
            source,
        })
}

fn set_control_traffic_class(socket: &Socket, ipv4: bool) -> io::Result<()> {
    if ipv4 {
        socket.set_tos_v4(CONTROL_TRAFFIC_CLASS)
    } else {
        socket.set_tclass_v6(CONTROL_TRAFFIC_CLASS)
    }
}

fn set_ttl_on(socket: &Socket, ipv4: bool, ttl: u8) -> io::Result<()> {
    if ipv4 {
        socket.set_ttl_v4(u32::from(ttl))
    } else {
        socket.set_unicast_hops_v6(u32::from(ttl))
    }
}

fn validate_device_name(device: &str) -> Result<(), TransportError> {
    let reason = if device.is_empty() {
        "it is empty"
    } else if device.len() > MAX_DEVICE_NAME_LENGTH {
        "Linux device names are at most 15 bytes"
    } else if device.contains(['\0', '/']) || device.chars().any(char::is_whitespace) {
        "it contains a character Linux does not allow in device names"
    } else {
        return Ok(());
    };
    Err(TransportError::InvalidDeviceName {
        device: device.to_owned(),
        reason,
    })
}

fn bind_device(socket: &Socket, device: &str, endpoint: SocketAddr) -> Result<(), TransportError> {
    socket
        .bind_device(Some(device.as_bytes()))
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ENODEV) => TransportError::NoSuchDevice {
                device: device.to_owned(),
                endpoint,
            },
            _ => TransportError::BindDevice {
                device: device.to_owned(),
                endpoint,
                source,
            },
        })
}

fn validate_md5_key(peer: IpAddr, key: &str) -> Result<(), TransportError> {
    if key.is_empty() {
        return Err(TransportError::Md5KeyEmpty { peer });
    }
    if key.len() > MD5_MAX_KEY_LENGTH {
        return Err(TransportError::Md5KeyTooLong {
            peer,
            length: key.len(),
        });
    }
    Ok(())
}

/// `struct tcp_md5sig` of Linux's `include/uapi/linux/tcp.h`. The kernel copies it byte by byte,
/// so only the byte layout matters: `tcpm_addr` is a `__kernel_sockaddr_storage` (128 bytes)
/// holding a `sockaddr_in` or `sockaddr_in6`.
#[repr(C)]
struct TcpMd5Sig {
    address: [u8; 128],
    /// `TCP_MD5SIG_FLAG_*`; only read with `TCP_MD5SIG_EXT`, which is not used.
    flags: u8,
    /// Only read with `TCP_MD5SIG_EXT` (`TCP_MD5SIG_FLAG_PREFIX`): keys here are per address.
    prefix_length: u8,
    /// 0 removes the key for the address.
    key_length: u16,
    /// Only read with `TCP_MD5SIG_EXT` (`TCP_MD5SIG_FLAG_IFINDEX`): a key without it applies in
    /// every VRF.
    interface_index: i32,
    key: [u8; MD5_MAX_KEY_LENGTH],
}

impl TcpMd5Sig {
    /// The option value for `key` (already validated) on connections with `peer`; `None` for
    /// the value that removes the key.
    fn new(peer: IpAddr, key: Option<&str>) -> TcpMd5Sig {
        let mut option = TcpMd5Sig {
            address: sockaddr_bytes(peer),
            flags: 0,
            prefix_length: 0,
            key_length: 0,
            interface_index: 0,
            key: [0; MD5_MAX_KEY_LENGTH],
        };
        if let Some(key) = key {
            let bytes = key.as_bytes();
            let length = bytes.len().min(MD5_MAX_KEY_LENGTH);
            option.key[..length].copy_from_slice(&bytes[..length]);
            option.key_length = length as u16; // at most 80
        }
        option
    }
}

/// `peer` as a `sockaddr_in` or `sockaddr_in6` with port 0 (the kernel matches keys on the
/// address alone), padded to the 128 bytes of a `sockaddr_storage`.
fn sockaddr_bytes(peer: IpAddr) -> [u8; 128] {
    let mut bytes = [0u8; 128];
    // sa_family is in host byte order, port and address in network byte order; the port,
    // IPv6 flow info and scope id stay 0.
    match peer {
        IpAddr::V4(address) => {
            bytes[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            bytes[4..8].copy_from_slice(&address.octets());
        }
        IpAddr::V6(address) => {
            bytes[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            bytes[8..24].copy_from_slice(&address.octets());
        }
    }
    bytes
}

fn set_md5_key(
    socket: BorrowedFd<'_>,
    peer: IpAddr,
    key: Option<&str>,
) -> Result<(), TransportError> {
    let option = TcpMd5Sig::new(peer, key);
    match set_raw_option(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &option) {
        Ok(()) => Ok(()),
        // Removing a key that was never installed leaves the socket as asked.
        Err(error) if key.is_none() && error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(error) if error.raw_os_error() == Some(libc::ENOPROTOOPT) => {
            Err(TransportError::Md5Unsupported { peer })
        }
        Err(source) => Err(TransportError::Md5 { peer, source }),
    }
}

/// Option values `setsockopt` may read as plain bytes: `repr(C)` or primitive, no pointers,
/// every byte initialised (no padding).
trait RawOptionValue {}
impl RawOptionValue for libc::c_int {}
impl RawOptionValue for TcpMd5Sig {}

/// `setsockopt` for the options neither socket2 nor nix wraps (`TCP_MD5SIG`, `IP_MINTTL`,
/// `IPV6_MINHOPCOUNT`): this crate's one `unsafe` block.
#[allow(unsafe_code)]
fn set_raw_option<T: RawOptionValue>(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let length = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `socket` is a descriptor borrowed for the duration of the call, so it is open;
    // `value` points to `length` initialised bytes (`RawOptionValue` types have no padding)
    // that live across the call, and the kernel only reads them.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            length,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), BGP_PORT);

    fn options() -> ConnectOptions {
        ConnectOptions {
            peer: PEER,
            source: None,
            md5_key: None,
            ttl: None,
            vrf: None,
            timeout: Duration::from_secs(1),
        }
    }

    /// Offsets from `include/uapi/linux/tcp.h`: a 128-byte `__kernel_sockaddr_storage`, then
    /// `__u8 tcpm_flags`, `__u8 tcpm_prefixlen`, `__u16 tcpm_keylen`, `int tcpm_ifindex`,
    /// `__u8 tcpm_key[80]`; 216 bytes in all.
    #[test]
    fn md5_option_has_the_kernel_layout() {
        assert_eq!(offset_of!(TcpMd5Sig, address), 0);
        assert_eq!(offset_of!(TcpMd5Sig, flags), 128);
        assert_eq!(offset_of!(TcpMd5Sig, prefix_length), 129);
        assert_eq!(offset_of!(TcpMd5Sig, key_length), 130);
        assert_eq!(offset_of!(TcpMd5Sig, interface_index), 132);
        assert_eq!(offset_of!(TcpMd5Sig, key), 136);
        assert_eq!(size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn md5_option_carries_the_key_and_the_peer() {
        let option = TcpMd5Sig::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), Some("s3cret"));
        assert_eq!(option.key_length, 6);
        assert_eq!(&option.key[..6], b"s3cret");
        assert!(option.key[6..].iter().all(|&byte| byte == 0));
        // sockaddr_in: family AF_INET (2) in host order, port 0, then the address.
        assert_eq!(&option.address[0..2], &2u16.to_ne_bytes());
        assert_eq!(&option.address[2..4], &[0, 0]);
        assert_eq!(&option.address[4..8], &[198, 51, 100, 7]);
        assert!(option.address[8..].iter().all(|&byte| byte == 0));

        let removal = TcpMd5Sig::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 7)),
            None,
        );
        assert_eq!(removal.key_length, 0);
        // sockaddr_in6: family AF_INET6 (10), port 0, flow info 0, the address, scope id 0.
        assert_eq!(&removal.address[0..2], &10u16.to_ne_bytes());
        assert_eq!(&removal.address[2..8], &[0; 6]);
        assert_eq!(
            &removal.address[8..24],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7
            ]
        );
        assert!(removal.address[24..].iter().all(|&byte| byte == 0));
    }

    #[tokio::test]
    async fn bad_options_are_refused_before_any_socket_is_opened() {
        let too_long = ConnectOptions {
            md5_key: Some("k".repeat(81)),
            ..options()
        };
        let error = connect(&too_long)
            .await
            .err()
            .map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the TCP MD5 key for peer 192.0.2.1 is 81 bytes long; Linux accepts at most 80")
        );

        let empty = ConnectOptions {
            md5_key: Some(String::new()),
            ..options()
        };
        assert!(matches!(
            connect(&empty).await,
            Err(TransportError::Md5KeyEmpty { .. })
        ));

        let ttl_zero = ConnectOptions {
            ttl: Some(0),
            ..options()
        };
        assert!(matches!(
            connect(&ttl_zero).await,
            Err(TransportError::InvalidTtl { .. })
        ));

        let mixed = ConnectOptions {
            source: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..options()
        };
        let error = connect(&mixed).await.err().map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some("source address ::1 is not of the same IP family as peer 192.0.2.1:179")
        );

        for device in ["", "a-name-of-16-chr", "bad/name", "bad name"] {
            let bad_device = ConnectOptions {
                vrf: Some(device.to_owned()),
                ..options()
            };
            assert!(
                matches!(
                    connect(&bad_device).await,
                    Err(TransportError::InvalidDeviceName { .. })
                ),
                "{device:?}"
            );
        }
    }

    #[test]
    fn key_lengths_up_to_eighty_bytes_are_valid() {
        let peer = PEER.ip();
        assert!(validate_md5_key(peer, "k").is_ok());
        assert!(validate_md5_key(peer, &"k".repeat(80)).is_ok());
        assert!(matches!(
            validate_md5_key(peer, &"k".repeat(81)),
            Err(TransportError::Md5KeyTooLong { length: 81, .. })
        ));
    }

    #[tokio::test]
    async fn a_listener_needs_an_address() {
        assert!(matches!(
            Listener::bind(&[], None).await,
            Err(TransportError::NoListenAddresses)
        ));
    }
}
