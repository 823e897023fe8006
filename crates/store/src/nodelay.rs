//! `TCP_NODELAY` on the connections to PostgreSQL, which sqlx 0.9.0 leaves off.
//!
//! With Nagle's algorithm on, a message that the TLS layer writes as two records — any
//! statement of more than 16 KB, such as the `Bind` of a 20 KB version's text — sends its short
//! second record only when the first is acknowledged, and the backend, holding half a message,
//! acknowledges only when its delayed-ACK timer (40 ms on Linux) fires. Every such write then
//! waits 40 ms for nothing: W3 (submit a version) over TCP with TLS ran 15 writes per second at
//! c=1, against 117 without TLS and 120 over the Unix socket (BENCHMARKS.md). PostgreSQL sets
//! the option on its side; sqlx does not on ours and offers no hook at its socket (upstream
//! transact-rs/sqlx#4335: 0.8 set it, 0.9.0 dropped it in #4022, #4336 sets it again but is
//! not released). So after every new connection the pool's `after_connect`
//! ([`crate::Db::connect_with`]) sets it on this process's TCP sockets whose peer is the
//! database's port — the new connection's among them, and nothing else a server of ours
//! connects to. Remove this when sqlx sets it itself.
//!
//! Linux only (it finds the sockets in `/proc/self/fd`); elsewhere it does nothing, and the
//! Unix socket (`?host=/var/run/postgresql`) avoids the stall on any system.

/// Sets `TCP_NODELAY` on every TCP socket of this process whose peer port is `port` and that
/// does not have it yet; returns how many it set.
pub(crate) fn set_on_sockets_to(port: u16) -> usize {
    let mut set = 0;
    for_each_socket(|socket| {
        let to_database = socket
            .peer_addr()
            .ok()
            .and_then(|address| address.as_socket())
            .is_some_and(|address| address.port() == port);
        if to_database
            && socket.tcp_nodelay().is_ok_and(|on| !on)
            && socket.set_tcp_nodelay(true).is_ok()
        {
            set += 1;
        }
    });
    set
}

/// Calls `visit` with every socket this process has open (Linux: those in `/proc/self/fd`;
/// elsewhere none). Also what the tests use to look at the pool's sockets.
#[cfg(target_os = "linux")]
pub fn for_each_socket(mut visit: impl FnMut(socket2::SockRef<'_>)) {
    use std::os::fd::{BorrowedFd, RawFd};
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for socket calls (getpeername, getsockname,
        // getsockopt, setsockopt), none of which touches memory of ours. Should another thread
        // close it meanwhile, they fail with EBADF; should the number be reused at once, they
        // apply to that descriptor, and `set_on_sockets_to` sets the option only on a TCP
        // socket whose peer is the database's port — one of the pool's, where it belongs.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        visit(socket2::SockRef::from(&fd));
    }
}

#[cfg(not(target_os = "linux"))]
pub fn for_each_socket(_visit: impl FnMut(socket2::SockRef<'_>)) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::set_on_sockets_to;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn only_the_sockets_to_the_port_get_the_option() {
        let database = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        let to_database =
            TcpStream::connect(database.local_addr().expect("addr")).expect("connect");
        let to_other = TcpStream::connect(other.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = database.accept().expect("accept");
        assert!(!to_database.nodelay().expect("nodelay"));

        let port = database.local_addr().expect("addr").port();
        assert!(set_on_sockets_to(port) >= 1);
        assert!(to_database.nodelay().expect("nodelay"));
        assert!(
            !to_other.nodelay().expect("nodelay"),
            "another peer's socket"
        );
        // The accepted end's peer is the client's port, not the listening one.
        assert!(!accepted.nodelay().expect("nodelay"));
        // Already set: nothing to do the second time (other tests' sockets aside).
        let again = set_on_sockets_to(port);
        assert_eq!(again, 0, "{again} sockets set twice");
    }
}
