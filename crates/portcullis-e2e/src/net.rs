//! Loopback addresses and ports for the harness, the backend and the soak.
//!
//! Every end-to-end run stays on loopback. Each client gets an address of
//! its own in `127.0.0.0/8` (every address there is a distinct peer to
//! Envoy), listeners get ports from [`free_port`] (below the ephemeral
//! range, so no outgoing connection takes one before Envoy binds it), and
//! [`connect_from`] binds the client address before it connects.
//!
//! This module does not pick stand-ins for a policy's addresses (that is
//! [`crate::translate`]) and never touches a non-loopback address.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// `127.0.0.1`.
pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Ports handed out start here: Linux's ephemeral range is 32768-60999, so
/// an outgoing connection of another process (curl, Envoy's upstream) can
/// never take one between [`free_port`] and Envoy's bind.
pub const LOW_PORT: u16 = 20_000;
/// How many ports above [`LOW_PORT`] are handed out.
pub const PORT_SPAN: u16 = 12_000;

/// `127.0.0.1:port`.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((LOCALHOST, port))
}

/// `127.0.0.1:0`: a listener whose port the OS picks (read it back with
/// `local_addr`), or a client whose port does not matter.
pub fn any_port() -> SocketAddr {
    localhost(0)
}

/// The loopback address `127.a.b.c`: one per client, so that every client
/// is a distinct peer. `a` names a group of clients (the soak's caller
/// ranges, a listener's own address), `b` and `c` the client in it.
pub fn client(a: u8, b: u8, c: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, c)
}

/// A port free on every address in `ips` (bound and released), from
/// [`LOW_PORT`]..[`LOW_PORT`]+[`PORT_SPAN`], and never one this process
/// handed out before (listeners of several files share one Envoy and are
/// only bound when it starts). Each process starts at its own offset, so
/// concurrent test binaries rarely probe the same port.
pub fn free_port<A: Into<IpAddr> + Copy>(ips: &[A]) -> Result<u16, String> {
    static HANDED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed = HANDED.lock().unwrap_or_else(|e| e.into_inner());
    let span = u32::from(PORT_SPAN);
    let start = std::process::id().wrapping_mul(7919) % span;
    for i in 0..span {
        let port = u16::try_from(u32::from(LOW_PORT) + (start + i * 13) % span).unwrap_or(0);
        if port == 0 || handed.contains(&port) {
            continue;
        }
        if ips
            .iter()
            .all(|ip| TcpListener::bind((Into::<IpAddr>::into(*ip), port)).is_ok())
        {
            handed.insert(port);
            return Ok(port);
        }
    }
    Err("no free port found".into())
}

/// A TCP connection from `source` (port 0: the OS picks one) to `to`, the
/// source bound before connecting; no Nagle, reads and writes bounded by
/// `deadline` (a hang guard, not a performance threshold).
pub fn connect_from(
    source: SocketAddr,
    to: SocketAddr,
    deadline: Duration,
) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&source.into())?;
    socket.connect_timeout(&to.into(), deadline)?;
    let tcp: TcpStream = socket.into();
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(deadline))?;
    tcp.set_write_timeout(Some(deadline))?;
    Ok(tcp)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_handed_twice() {
        let ips = [LOCALHOST, client(0, 0, 2)];
        let a = free_port(&ips).unwrap();
        let b = free_port(&ips).unwrap();
        assert_ne!(a, b);
        for p in [a, b] {
            assert!((LOW_PORT..LOW_PORT + PORT_SPAN).contains(&p), "{p}");
            assert!(p < 32768);
        }
    }

    #[test]
    fn clients_connect_from_their_own_address() {
        let l = TcpListener::bind(any_port()).unwrap();
        let to = l.local_addr().unwrap();
        let from = client(0, 3, 4);
        let c = connect_from(SocketAddr::from((from, 0)), to, Duration::from_secs(5)).unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(from));
        assert_eq!(c.local_addr().unwrap(), peer);
    }
}
