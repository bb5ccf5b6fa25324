// SPDX-License-Identifier: GPL-2.0

//! Kernel TCP sockets for vnatd: the thin layer over `sock_create_kern()`,
//! `kernel_accept()`, `kernel_recvmsg()` and friends.
//!
//! Every call here is non-blocking: vnatd sleeps in one place only, waiting
//! for its sockets' callbacks (see [`Watch`]).

use crate::ffi::{self, Net, Waker};
use crate::vcmp::Endpoint;
use core::{mem::size_of, net::IpAddr, ptr::NonNull};
use kernel::{bindings, error::to_result, prelude::*};

// `vnat/shim/kthread.c`.
// Pointers to bindgen's kernel structures are fine to pass: C only sees
// pointers, whatever Rust makes of the zero-sized members inside them.
#[expect(improper_ctypes)]
extern "C" {
    fn vnat_shim_sock_watch(sock: *mut bindings::socket, w: *mut ffi::RawWaker);
    fn vnat_shim_sock_unwatch(sock: *mut bindings::socket, w: *mut ffi::RawWaker);
    fn vnat_shim_sock_reuseaddr(sock: *mut bindings::socket);
    fn vnat_shim_sock_dual_stack(sock: *mut bindings::socket);
    fn vnat_shim_sock_limit_buffers(sock: *mut bindings::socket, bytes: c_int);
    fn vnat_shim_sock_dead(sock: *mut bindings::socket) -> bool;
    fn vnat_shim_sock_established(sock: *mut bindings::socket) -> bool;
    fn vnat_shim_sock_connecting(sock: *mut bindings::socket) -> bool;
    fn vnat_shim_sock_transmitted(sock: *mut bindings::socket) -> u64;
    fn vnat_shim_sock_quiet(sock: *mut bindings::socket) -> bool;
}

/// An IPv4 TCP socket owned by the kernel.
///
/// # Invariants
///
/// `sock` points to a TCP socket created by `sock_create_kern()` or
/// returned by `kernel_accept()`, owned by this value and released by its
/// `Drop`.
pub(crate) struct Socket {
    sock: NonNull<bindings::socket>,
}

// SAFETY: A `struct socket` may be used and released from any thread; the
// value is only ever used by one thread at a time (it is not `Sync`).
unsafe impl Send for Socket {}

/// A socket address of either family, as the kernel's calls take it.
enum SockAddr {
    V4(bindings::sockaddr_in),
    V6(bindings::sockaddr_in6),
}

impl SockAddr {
    /// The socket address `addr:port` (`addr` IPv4 or IPv6).
    fn new(addr: IpAddr, port: u16) -> Self {
        match addr {
            IpAddr::V4(a) => Self::V4(bindings::sockaddr_in {
                sin_family: bindings::AF_INET as u16,
                sin_port: port.to_be(),
                sin_addr: bindings::in_addr {
                    s_addr: a.to_bits().to_be(),
                },
                ..Default::default()
            }),
            IpAddr::V6(a) => {
                let mut sin6 = bindings::sockaddr_in6 {
                    sin6_family: bindings::AF_INET6 as u16,
                    sin6_port: port.to_be(),
                    ..Default::default()
                };
                sin6.sin6_addr.in6_u.u6_addr8 = a.octets();
                Self::V6(sin6)
            }
        }
    }

    /// The protocol family of a socket for it.
    fn family(&self) -> c_int {
        match self {
            Self::V4(_) => bindings::PF_INET as c_int,
            Self::V6(_) => bindings::PF_INET6 as c_int,
        }
    }

    /// A pointer to it and its length, for `kernel_bind()` and
    /// `kernel_connect()`, which copy it before they return.
    fn raw(&mut self) -> (*mut bindings::sockaddr_unsized, c_int) {
        match self {
            Self::V4(sin) => (
                (&raw mut *sin).cast(),
                core::mem::size_of::<bindings::sockaddr_in>() as c_int,
            ),
            Self::V6(sin6) => (
                (&raw mut *sin6).cast(),
                core::mem::size_of::<bindings::sockaddr_in6>() as c_int,
            ),
        }
    }
}

/// What a non-blocking receive found.
pub(crate) enum Received {
    /// This many bytes, at the front of the buffer.
    Data(usize),
    /// Nothing yet.
    WouldBlock,
    /// The peer closed the connection.
    Eof,
}

impl Socket {
    /// Creates a TCP socket of protocol family `family` in `net`.
    fn create(net: &Net, family: c_int) -> Result<Self> {
        let mut raw: *mut bindings::socket = core::ptr::null_mut();
        // SAFETY: `net` is alive (its invariant); `raw` is a valid out pointer.
        to_result(unsafe {
            bindings::sock_create_kern(
                net.as_ptr(),
                family,
                bindings::sock_type_SOCK_STREAM as c_int,
                bindings::IPPROTO_TCP as c_int,
                &mut raw,
            )
        })?;
        Ok(Self {
            // INVARIANT: `sock_create_kern()` succeeded, so `raw` is a socket we own.
            sock: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }

    /// Starts connecting from local address `from` to `addr:port` (both
    /// of one family) without waiting; see [`Socket::is_established`] and
    /// [`Socket::is_dead`].
    pub(crate) fn connect(net: &Net, from: IpAddr, addr: IpAddr, port: u16) -> Result<Self> {
        if from.is_ipv6() != addr.is_ipv6() {
            return Err(EAFNOSUPPORT);
        }
        let mut sa = SockAddr::new(addr, port);
        let sock = Self::create(net, sa.family())?;
        sock.bind(from, 0)?;
        let (ptr, len) = sa.raw();
        // SAFETY: The socket is valid and unconnected; `ptr` is a socket
        // address of its family and of length `len`, which
        // `kernel_connect()` copies before returning.
        let err = unsafe {
            bindings::kernel_connect(sock.as_ptr(), ptr, len, bindings::O_NONBLOCK as c_int)
        };
        if err != EINPROGRESS.to_errno() {
            to_result(err)?;
        }
        Ok(sock)
    }

    /// Whether the connection is established.
    pub(crate) fn is_established(&self) -> bool {
        // SAFETY: The socket is valid.
        unsafe { vnat_shim_sock_established(self.as_ptr()) }
    }

    /// Whether its connect is still under way. Once it is not, what the
    /// peer sent can be read, also after the peer closed or reset it.
    pub(crate) fn is_connecting(&self) -> bool {
        // SAFETY: The socket is valid.
        unsafe { vnat_shim_sock_connecting(self.as_ptr()) }
    }

    /// The bytes sent on the connection that went out on the wire at least
    /// once (not only queued here). Sleeps.
    pub(crate) fn transmitted(&self) -> u64 {
        // SAFETY: The socket is valid (type invariant).
        unsafe { vnat_shim_sock_transmitted(self.as_ptr()) }
    }

    /// Whether it has nothing to read and everything it sent acknowledged.
    /// Sleeps.
    pub(crate) fn is_quiet(&self) -> bool {
        // SAFETY: The socket is valid (type invariant).
        unsafe { vnat_shim_sock_quiet(self.as_ptr()) }
    }

    /// Sends as much of `buf` as fits without blocking; returns how much.
    pub(crate) fn send(&self, buf: &[u8]) -> Result<usize> {
        let mut vec = bindings::kvec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        // The all-zero `msghdr`: the empty message header the kernel's own
        // callers of `kernel_sendmsg()` start from.
        let mut msg = bindings::msghdr {
            msg_flags: bindings::MSG_DONTWAIT | bindings::MSG_NOSIGNAL,
            ..Default::default()
        };
        // SAFETY: The socket is valid; `vec` describes `buf`, which the kernel
        // only reads and which outlives the call.
        let ret =
            unsafe { bindings::kernel_sendmsg(self.as_ptr(), &mut msg, &mut vec, 1, buf.len()) };
        match ret {
            n if n >= 0 => Ok(n as usize),
            n if n == EAGAIN.to_errno() => Ok(0),
            n => Err(Error::from_errno(n)),
        }
    }

    /// Creates a socket in `net` listening on `[::]:port`, which takes
    /// IPv4 connections too (v4-mapped); on `0.0.0.0:port` if the kernel
    /// has no IPv6 (booted with `ipv6.disable=1`). The connections it
    /// accepts have send and receive buffers of `buffer` bytes each (see
    /// [`Socket::limit_buffers`]).
    pub(crate) fn listen(net: &Net, port: u16, backlog: i32, buffer: i32) -> Result<Self> {
        let any6 = IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED);
        let any4 = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);
        let (sock, any) = match Self::create(net, bindings::PF_INET6 as c_int) {
            Ok(sock) => (sock, any6),
            Err(e) if e == EAFNOSUPPORT => (Self::create(net, bindings::PF_INET as c_int)?, any4),
            Err(e) => return Err(e),
        };
        // SAFETY: The socket is valid (freshly created above).
        unsafe { vnat_shim_sock_reuseaddr(sock.as_ptr()) };
        if any.is_ipv6() {
            // SAFETY: The socket is valid, `AF_INET6` and not bound yet.
            unsafe { vnat_shim_sock_dual_stack(sock.as_ptr()) };
        }
        sock.bind(any, port)?;
        // Accepted sockets inherit them, also the window their handshake
        // offers.
        sock.limit_buffers(buffer);
        // SAFETY: The socket is valid and bound.
        to_result(unsafe { bindings::kernel_listen(sock.as_ptr(), backlog) })?;
        Ok(sock)
    }

    /// Binds the socket to `addr:port`, an address of its family.
    fn bind(&self, addr: IpAddr, port: u16) -> Result {
        let mut sa = SockAddr::new(addr, port);
        let (ptr, len) = sa.raw();
        // SAFETY: The socket is valid; `ptr` is a socket address of length
        // `len`, which `kernel_bind()` copies before returning (and refuses
        // if it is not of the socket's family).
        to_result(unsafe { bindings::kernel_bind(self.as_ptr(), ptr, len) })
    }

    fn as_ptr(&self) -> *mut bindings::socket {
        self.sock.as_ptr()
    }

    /// Accepts one pending connection, if any.
    pub(crate) fn accept(&self) -> Result<Option<Self>> {
        let mut raw: *mut bindings::socket = core::ptr::null_mut();
        // SAFETY: The socket is valid (type invariant); `raw` is a valid out
        // pointer. `O_NONBLOCK` makes the call return `EAGAIN` instead of
        // sleeping.
        let ret = unsafe {
            bindings::kernel_accept(self.as_ptr(), &mut raw, bindings::O_NONBLOCK as c_int)
        };
        match to_result(ret) {
            Ok(()) => Ok(NonNull::new(raw).map(|sock| Self { sock })),
            Err(e) if e == EAGAIN => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The endpoint of the peer of a connected socket (IPv4 also when a
    /// dual-stack listener took it, v4-mapped).
    pub(crate) fn peer(&self) -> Result<Endpoint> {
        let mut ss = bindings::__kernel_sockaddr_storage::default();
        // SAFETY: The socket is valid; `ss` is large enough for any socket
        // address, which is all `kernel_getpeername()` writes (it returns
        // the length written).
        let len = unsafe { bindings::kernel_getpeername(self.as_ptr(), (&raw mut ss).cast()) };
        if len < 0 {
            return Err(Error::from_errno(len));
        }
        let at = (&raw const ss).cast::<u16>();
        // SAFETY: Every socket address starts with its family, a `u16`, and
        // `ss` is aligned for all of them.
        let family = unsafe { at.read() };
        if family == bindings::AF_INET as u16 && len as usize >= size_of::<bindings::sockaddr_in>()
        {
            // SAFETY: The kernel wrote a `sockaddr_in` there.
            let sin = unsafe { (&raw const ss).cast::<bindings::sockaddr_in>().read() };
            return Ok(Endpoint::new(
                u32::from_be(sin.sin_addr.s_addr),
                u16::from_be(sin.sin_port),
            ));
        }
        if family == bindings::AF_INET6 as u16
            && len as usize >= size_of::<bindings::sockaddr_in6>()
        {
            // SAFETY: The kernel wrote a `sockaddr_in6` there.
            let sin6 = unsafe { (&raw const ss).cast::<bindings::sockaddr_in6>().read() };
            // SAFETY: Every bit pattern of the union is valid bytes.
            let a = unsafe { sin6.sin6_addr.in6_u.u6_addr8 };
            return Ok(Endpoint::from_v6(a, u16::from_be(sin6.sin6_port)));
        }
        Err(EAFNOSUPPORT)
    }

    /// Fixes the socket's send and receive buffers at `bytes` each, as
    /// `SO_SNDBUF` and `SO_RCVBUF` do (no autotuning; the kernel counts
    /// twice that, for its bookkeeping).
    fn limit_buffers(&self, bytes: i32) {
        // SAFETY: The socket is valid.
        unsafe { vnat_shim_sock_limit_buffers(self.as_ptr(), bytes) };
    }

    /// Receives into `buf` without blocking.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<Received> {
        let mut vec = bindings::kvec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // The all-zero `msghdr`: the empty message header the kernel's own
        // callers of `kernel_recvmsg()` start from.
        let mut msg = bindings::msghdr::default();
        // SAFETY: The socket is valid; `vec` describes `buf`, which outlives
        // the call.
        let ret = unsafe {
            bindings::kernel_recvmsg(
                self.as_ptr(),
                &mut msg,
                &mut vec,
                1,
                buf.len(),
                bindings::MSG_DONTWAIT as c_int,
            )
        };
        match ret {
            0 => Ok(Received::Eof),
            n if n > 0 => Ok(Received::Data(n as usize)),
            n if n == EAGAIN.to_errno() => Ok(Received::WouldBlock),
            n => Err(Error::from_errno(n)),
        }
    }

    /// Whether the peer has closed or reset the connection.
    pub(crate) fn is_dead(&self) -> bool {
        // SAFETY: The socket is valid.
        unsafe { vnat_shim_sock_dead(self.as_ptr()) }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: We own the socket (type invariant); it is not used again.
        unsafe { bindings::sock_release(self.as_ptr()) };
    }
}

/// A socket whose callbacks wake a vnatd thread; dropping it detaches the
/// callbacks and then releases the socket.
pub(crate) struct Watch<'a> {
    sock: Socket,
    waker: &'a Waker,
}

impl Socket {
    /// Makes the socket wake `waker`'s thread until the returned guard
    /// drops.
    pub(crate) fn watch(self, waker: &Waker) -> Watch<'_> {
        // SAFETY: Both are valid. The watch takes a reference on the waker,
        // which `Watch::drop` gives back once the callbacks are detached; a
        // guard that is leaked instead keeps the waker alive.
        unsafe { vnat_shim_sock_watch(self.as_ptr(), waker.as_raw()) };
        Watch { sock: self, waker }
    }
}

impl Watch<'_> {
    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        // SAFETY: Both are valid; after this returns no callback of the socket
        // refers to the waker, and the socket is released right after.
        unsafe { vnat_shim_sock_unwatch(self.sock.as_ptr(), self.waker.as_raw()) };
    }
}

#[kunit_tests(vnat_socket_tracking)]
mod tests {
    use super::*;
    use crate::{
        ffi::Sock,
        mapping::PROTO_TCP,
        vcmp::Endpoint,
        virtualization::{ConnectionTable, Origin, VirtualConnection},
    };
    use kernel::sync::aref::ARef;

    /// The `struct sock` of a socket, with a reference of its own.
    fn sk(s: &Socket) -> ARef<Sock> {
        // SAFETY: The socket is valid and has its `struct sock`.
        ARef::from(unsafe { Sock::from_raw((*s.as_ptr()).sk) })
    }

    fn keys(found: &[Option<ARef<Sock>>]) -> KVec<usize> {
        let mut v = KVec::new();
        for s in found.iter().flatten() {
            v.push(s.key(), GFP_KERNEL).unwrap();
        }
        v
    }

    /// Records whose close went unseen (as when the kprobe core skips a close
    /// probe hit) are found once their sockets are destroyed, and only then,
    /// also when they do not fit in one call; the table's reference keeps a
    /// socket's memory until its record is forgotten.
    #[test]
    fn destroyed_sockets_are_found() -> Result {
        // SAFETY: `init_net` lives as long as the kernel.
        let net = unsafe { Net::from_raw(&raw mut bindings::init_net) }?;
        let table = KBox::pin_init(ConnectionTable::new(), GFP_KERNEL)?;
        let conn = |port| {
            VirtualConnection::new(
                PROTO_TCP,
                Endpoint::new(0x7f00_0001, port),
                Endpoint::new(0x7f00_0001, 80),
                1,
                Origin::Connect,
            )
        };
        let live = Socket::create(&net, bindings::PF_INET as c_int)?;
        let gone = [
            Socket::create(&net, bindings::PF_INET as c_int)?,
            Socket::create(&net, bindings::PF_INET as c_int)?,
        ];
        let gone_sk = [sk(&gone[0]), sk(&gone[1])];
        let gone_keys = [gone_sk[0].key(), gone_sk[1].key()];
        table.insert(&sk(&live), &conn(1000))?;
        table.insert(&gone_sk[0], &conn(1001))?;
        table.insert(&gone_sk[1], &conn(1002))?;
        let mut out: [Option<ARef<Sock>>; 4] = Default::default();
        assert_eq!(table.destroyed(None, &mut out), (0, None));
        // Released by their owner; the probe ignores kernel sockets, so the
        // records stay, as after skipped hits.
        drop(gone);
        // Room for one at a time: the second call goes on after the first.
        let mut one: [Option<ARef<Sock>>; 1] = Default::default();
        let (n, after) = table.destroyed(None, &mut one);
        assert_eq!(n, 1);
        assert!(after.is_some());
        let first = keys(&one)[0];
        let (n, after) = table.destroyed(after, &mut one);
        assert_eq!(n, 1);
        let second = keys(&one)[0];
        assert!(first != second);
        assert!(gone_keys.contains(&first) && gone_keys.contains(&second));
        assert_eq!(table.destroyed(after, &mut one), (0, None));
        for s in &gone_sk {
            assert_eq!(table.remove(s, |_| {}).records, 1);
        }
        assert_eq!(table.destroyed(None, &mut out), (0, None));
        assert_eq!(table.len(), 1);
        assert_eq!(table.remove(&sk(&live), |_| {}).records, 1);
        Ok(())
    }
}
