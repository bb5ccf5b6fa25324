// SPDX-License-Identifier: GPL-2.0

//! A packet at a netfilter hook (`vnat/shim/hooks.c`): its headers as byte
//! slices, and the two routing calls translation needs.

use super::{Net, RawAddr};
use crate::{mapping::WireKey, vcmp::Endpoint};
use kernel::{bindings, error::to_result, prelude::*, types::Opaque};

/// `struct vnat_pkt` of the shim: where a packet's IP header starts, how
/// many bytes of IP and transport header follow it in the linear area, and
/// its checksum state.
#[repr(C)]
struct RawPkt {
    hdr: *mut u8,
    len: u32,
    partial: bool,
    /// `&skb->csum` of a `CHECKSUM_COMPLETE` packet, else null.
    csum: *mut u32,
}

impl RawPkt {
    /// Nothing found yet: what the shim fills.
    const EMPTY: Self = Self {
        hdr: core::ptr::null_mut(),
        len: 0,
        partial: false,
        csum: core::ptr::null_mut(),
    };
}

// The layout `struct vnat_pkt` has (vnat/shim/shim.h checks the same).
const _: () = {
    assert!(core::mem::size_of::<RawPkt>() == 24);
    assert!(core::mem::offset_of!(RawPkt, len) == 8);
    assert!(core::mem::offset_of!(RawPkt, partial) == 12);
    assert!(core::mem::offset_of!(RawPkt, csum) == 16);
};

// Pointers to bindgen's kernel structures are fine to pass: C only sees
// pointers, whatever Rust makes of the zero-sized members inside them.
#[expect(improper_ctypes)]
extern "C" {
    fn vnat_shim_pkt_parse(skb: *mut bindings::sk_buff, p: *mut RawPkt, icmp: bool) -> c_int;
    fn vnat_shim_pkt_writable(skb: *mut bindings::sk_buff, len: u32, p: *mut RawPkt) -> c_int;
    fn vnat_shim_csum_none(skb: *mut bindings::sk_buff);
    fn vnat_shim_route_local(skb: *mut bindings::sk_buff) -> c_int;
    fn vnat_shim_reroute(net: *mut bindings::net, skb: *mut bindings::sk_buff) -> c_int;
    fn vnat_shim_demux(
        skb: *mut bindings::sk_buff,
        saddr: *const RawAddr,
        sport: u16,
        daddr: *const RawAddr,
        dport: u16,
    ) -> c_int;
    fn vnat_shim_tcp_lookup(
        skb: *mut bindings::sk_buff,
        saddr: *const RawAddr,
        sport: u16,
        daddr: *const RawAddr,
        dport: u16,
        syn: bool,
    ) -> c_int;
}

/// `VNAT_PKT_ICMP_ERROR` of the shim (`VNAT_PKT_TRANSPORT` is 0).
const PKT_ICMP_ERROR: c_int = 1;

/// A packet's bytes, to read, as [`Skb::read`] finds them.
pub(crate) enum Read<'a> {
    /// Its IP and TCP or UDP headers.
    Transport(&'a [u8]),
    /// All of an ICMP or ICMPv6 error, writable. A caller that changes it
    /// calls [`Skb::sum_changed`].
    IcmpError(&'a mut [u8]),
}

/// Why a packet's headers are not given to translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// A TCP or UDP packet that translation cannot read (a fragment).
    TcpOrUdp,
    /// Any other packet (another protocol, or headers that cannot be had).
    Other,
}

/// What an incoming TCP packet would find (`enum vnat_tcp_found`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpFound {
    /// No socket takes it.
    Nothing,
    /// A socket of its 4-tuple: established, request or TIME_WAIT.
    Connection,
    /// A SYN that a listener bound to exactly its destination address takes
    /// (now `IP_TRANSPARENT`).
    Listener,
}

/// A packet that a hook is given, for the duration of the hook.
#[repr(transparent)]
pub(crate) struct Skb(Opaque<bindings::sk_buff>);

/// The writable headers of a packet.
pub(crate) struct Headers<'a> {
    /// The IP header and the transport header after it.
    pub(crate) bytes: &'a mut [u8],
    /// `CHECKSUM_PARTIAL`.
    pub(crate) partial: bool,
    /// The sum over the transport header and payload of a
    /// `CHECKSUM_COMPLETE` packet.
    pub(crate) csum: Option<&'a mut u32>,
}

impl Skb {
    /// Borrows the packet a netfilter hook is called with.
    ///
    /// # Safety
    ///
    /// `ptr` must be the packet of a running netfilter hook, which nothing
    /// else uses during `'a` (the hook owns it until it returns a verdict),
    /// and `'a` must end with the hook. So an `Skb` borrow implies an RCU
    /// read section, as hooks run in one.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::sk_buff) -> &'a mut Skb {
        // SAFETY: By the function's requirements; `Skb` is transparent.
        unsafe { &mut *ptr.cast() }
    }

    fn as_ptr(&self) -> *mut bindings::sk_buff {
        self.0.get()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> u32 {
        // SAFETY: The packet is valid while borrowed (see `from_raw`).
        unsafe { (*self.as_ptr()).len }
    }

    /// The shim's parse: with `icmp`, an ICMP error is made all writable
    /// and given whole; the bool says it is one.
    fn parse(&mut self, icmp: bool) -> Result<(RawPkt, bool), Unreadable> {
        let mut p = RawPkt::EMPTY;
        // SAFETY: The packet is valid and ours (see `from_raw`); the shim
        // pulls the headers (all of an ICMP error, unshared) into the linear
        // area and fills `p`.
        match unsafe { vnat_shim_pkt_parse(self.as_ptr(), &mut p, icmp) } {
            0 => Ok((p, false)),
            PKT_ICMP_ERROR => Ok((p, true)),
            e if e == EPROTONOSUPPORT.to_errno() => Err(Unreadable::TcpOrUdp),
            _ => Err(Unreadable::Other),
        }
    }

    /// The IP and TCP or UDP headers of a packet that is not a fragment,
    /// to read; with `icmp`, also all of an ICMP or ICMPv6 error, writable;
    /// why not for any other packet.
    pub(crate) fn read(&mut self, icmp: bool) -> Result<Read<'_>, Unreadable> {
        let (p, icmp_error) = self.parse(icmp)?;
        if icmp_error {
            // SAFETY: The shim made `len` bytes at `hdr` linear and
            // writable; they stay so while the packet is borrowed.
            return Ok(Read::IcmpError(unsafe {
                core::slice::from_raw_parts_mut(p.hdr, p.len as usize)
            }));
        }
        // SAFETY: The shim made `len` bytes at `hdr` linear; they stay so
        // while the packet is borrowed, as nothing else changes it.
        Ok(Read::Transport(unsafe {
            core::slice::from_raw_parts(p.hdr, p.len as usize)
        }))
    }

    /// Its IP and TCP or UDP headers, as [`Skb::read`] gave them (`len`
    /// bytes), made writable (unshared) first; `Err` when memory is short
    /// (or the packet is shorter).
    pub(crate) fn headers_mut(&mut self, len: usize) -> Result<Headers<'_>> {
        let mut p = RawPkt::EMPTY;
        let len = u32::try_from(len).map_err(|_| ENOMEM)?;
        // SAFETY: The packet is valid and ours (see `from_raw`); the shim
        // makes `len` bytes from its IP header linear and writable, if it
        // has them, and fills `p`.
        to_result(unsafe { vnat_shim_pkt_writable(self.as_ptr(), len, &mut p) })?;
        // SAFETY: As in `headers`, and the shim made the bytes writable
        // (`skb_ensure_writable()`).
        let bytes = unsafe { core::slice::from_raw_parts_mut(p.hdr, p.len as usize) };
        // SAFETY: Null, or the packet's own `csum` field, outside `bytes`.
        let csum = unsafe { p.csum.as_mut() };
        Ok(Headers {
            bytes,
            partial: p.partial,
            csum,
        })
    }

    /// The bytes of a [`Read::IcmpError`] were changed: the receive
    /// path checks the packet's checksum in software, as the sum the
    /// device computed was over the old bytes.
    pub(crate) fn sum_changed(&mut self) {
        // SAFETY: The packet is ours; one field is set.
        unsafe { vnat_shim_csum_none(self.as_ptr()) }
    }

    /// PREROUTING: routes the packet by its destination, the physical
    /// (local) one, so that it is delivered locally once its destination
    /// becomes a virtual address that need not be local any more. Called
    /// before the destination is rewritten.
    pub(crate) fn route_local(&mut self) -> Result {
        // SAFETY: The packet is ours; hooks run under RCU, as routing needs.
        to_result(unsafe { vnat_shim_route_local(self.as_ptr()) })
    }

    /// PREROUTING, for an incoming TCP segment that PREROUTING and LOCAL_IN
    /// will rewrite to the endpoints of `to`: gives it the socket of those
    /// endpoints and the input route that socket keeps, as the stack's
    /// early demux would after the rewrite (`vnat_shim_demux`); whether it
    /// did. The segment is then neither routed nor looked up again. The
    /// route is not referenced, as early demux's is not: the stack forces
    /// a reference where a packet leaves the RCU section (a queue).
    pub(crate) fn demux(&mut self, to: &WireKey) -> bool {
        let (s, sport, d, dport) = to.lookup_form();
        let (s, d) = (RawAddr(s), RawAddr(d));
        // SAFETY: The packet is ours; hooks run under RCU, as the lookup
        // and the route need; `s` and `d` are valid for the call.
        let r = unsafe { vnat_shim_demux(self.as_ptr(), &s, sport, &d, dport) };
        r == 0
    }

    /// What an incoming TCP packet from `src` to `dst` (a SYN if `syn`)
    /// would find in its namespace; a listener that takes a SYN is made
    /// `IP_TRANSPARENT` (see `vnat_shim_tcp_lookup`). Nothing for a packet
    /// that has no input device (one sent by this host).
    pub(crate) fn tcp_lookup(&mut self, src: Endpoint, dst: Endpoint, syn: bool) -> TcpFound {
        let (s, d) = (RawAddr::from(src.addr), RawAddr::from(dst.addr));
        // SAFETY: The packet is ours; hooks run under RCU, as the lookups
        // need; the shim checks the device; `s` and `d` are valid for the
        // call.
        let found = unsafe {
            vnat_shim_tcp_lookup(
                self.as_ptr(),
                &s,
                src.port.to_be(),
                &d,
                dst.port.to_be(),
                syn,
            )
        };
        match found {
            1 => TcpFound::Connection,
            2 => TcpFound::Listener,
            _ => TcpFound::Nothing,
        }
    }

    /// LOCAL_OUT: routes the packet again after its destination changed.
    pub(crate) fn reroute(&mut self, net: &Net) -> Result {
        // SAFETY: The packet is ours and `net` is alive (its invariant).
        to_result(unsafe { vnat_shim_reroute(net.as_ptr(), self.as_ptr()) })
    }
}
