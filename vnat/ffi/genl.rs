// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family's C side (`vnat/shim/netlink.c`): the records
//! it frames, and the events it multicasts.

use super::{Net, RawAddr};
use kernel::prelude::*;

// Pointers to bindgen's kernel structures are fine to pass: C only sees
// pointers, whatever Rust makes of the zero-sized members inside them.
#[expect(improper_ctypes)]
extern "C" {
    fn vnat_shim_nl_put_conn(skb: *mut c_void, cb: *mut c_void, c: *const NlConn) -> c_int;
    fn vnat_shim_nl_put_saved(
        skb: *mut c_void,
        cb: *mut c_void,
        c: *const NlConn,
        saved: *const u8,
        len: u32,
    ) -> c_int;
    fn vnat_shim_nl_event(
        net: *mut kernel::bindings::net,
        event: u8,
        c: *const NlConn,
        reason: *const kernel::ffi::c_char,
    );
    fn vnat_shim_nl_listening(net: *mut kernel::bindings::net) -> bool;
}

/// `struct vnat_nl_conn` of the shim: one connection of a netlink dump,
/// ports in network byte order, addresses of either family (IPv4 ones
/// v4-mapped, which the shim puts as the u32 attributes; IPv6 ones go as
/// the `*-addr6` attributes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NlConn {
    pub(crate) packets_out: u64,
    pub(crate) packets_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) local_addr: RawAddr,
    pub(crate) remote_addr: RawAddr,
    pub(crate) local_phys_addr: RawAddr,
    pub(crate) remote_phys_addr: RawAddr,
    pub(crate) local_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) local_phys_port: u16,
    pub(crate) remote_phys_port: u16,
    pub(crate) pid: u32,
    pub(crate) update_age_ms: u32,
    pub(crate) proto: u8,
    pub(crate) state: u8,
    pub(crate) origin: u8,
    pub(crate) policy: u8,
    pub(crate) vcmp_state: u8,
    pub(crate) vcmp_attempts: u8,
    pub(crate) helper: u8,
    pub(crate) peer_suspended: u8,
    pub(crate) auth: u8,
    /// Milliseconds until the next attempt of a retrying move; `u32::MAX`:
    /// none planned.
    pub(crate) vcmp_next_ms: u32,
}

// The layouts `struct vnat_nl_conn` and `struct vnat_nl_resume` have
// (vnat/shim/shim.h checks the same).
const _: () = {
    assert!(core::mem::size_of::<NlConn>() == 128);
    assert!(core::mem::offset_of!(NlConn, local_addr) == 32);
    assert!(core::mem::offset_of!(NlConn, remote_phys_addr) == 80);
    assert!(core::mem::offset_of!(NlConn, local_port) == 96);
    assert!(core::mem::offset_of!(NlConn, pid) == 104);
    assert!(core::mem::offset_of!(NlConn, proto) == 112);
    assert!(core::mem::offset_of!(NlConn, vcmp_next_ms) == 124);
    assert!(core::mem::size_of::<NlResume>() == 60);
    assert!(core::mem::offset_of!(NlResume, new_addr) == 32);
    assert!(core::mem::offset_of!(NlResume, local_port) == 48);
    assert!(core::mem::offset_of!(NlResume, pid) == 52);
    assert!(core::mem::offset_of!(NlResume, proto) == 56);
};

/// How a command selects connections (`enum vnat_nl_by` of the shim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum NlBy {
    /// By local physical address: a host's move.
    Address = 0,
    /// By process.
    Pid = 1,
    /// One connection, by its virtual five-tuple.
    Connection = 2,
}

impl TryFrom<u8> for NlBy {
    type Error = Error;

    fn try_from(n: u8) -> Result<Self> {
        match n {
            0 => Ok(Self::Address),
            1 => Ok(Self::Pid),
            2 => Ok(Self::Connection),
            _ => Err(EINVAL),
        }
    }
}

/// `struct vnat_nl_resume` of the shim: which connections a `conn-resume`
/// request moves (`by`: 0 local address, 1 pid, 2 five-tuple) and where;
/// ports in network byte order, addresses of either family as the request
/// gave them (IPv4 ones v4-mapped). `new_addr` all zero (`::`): none given
/// (the shim makes `0.0.0.0` that too).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NlResume {
    pub(crate) local_addr: RawAddr,
    pub(crate) remote_addr: RawAddr,
    pub(crate) new_addr: RawAddr,
    pub(crate) local_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) pid: u32,
    pub(crate) proto: u8,
    pub(crate) by: u8,
}

/// Whether anyone in `net` listens to the `events` group. Any context.
pub(crate) fn nl_listening(net: &Net) -> bool {
    // SAFETY: `net` is alive (type invariant of `Net`); the check reads an
    // RCU-protected bitmap and may be done from any context.
    unsafe { vnat_shim_nl_listening(net.as_ptr()) }
}

/// Multicasts event `event` about connection `c` to the `events` group of
/// `net` (ask [`nl_listening`] first: building the message costs). Any
/// context.
pub(crate) fn nl_event(net: &Net, event: u8, c: &NlConn, reason: Option<&CStr>) {
    let reason = reason.map_or(core::ptr::null(), |r| r.as_char_ptr());
    // SAFETY: `net` is alive (type invariant of `Net`); `c` and `reason`
    // outlive the call, which copies them into the message.
    unsafe { vnat_shim_nl_event(net.as_ptr(), event, c, reason) }
}

/// Adds one connection to a `conn-get` dump; `false` when the message is
/// full.
///
/// # Safety
///
/// `skb` and `cb` must be the dump's, as the shim passed them to the
/// running dump callback.
pub(crate) unsafe fn nl_put_conn(skb: *mut c_void, cb: *mut c_void, c: &NlConn) -> bool {
    // SAFETY: By the function's requirements; `c` lives across the call.
    unsafe { vnat_shim_nl_put_conn(skb, cb, c) == 0 }
}

/// Adds one connection's saved state `saved` to a `conn-export` dump, with
/// the virtual endpoints and owner of `c`; `false` when the message is
/// full.
///
/// # Safety
///
/// `skb` and `cb` must be the dump's, as the shim passed them to the
/// running dump callback.
pub(crate) unsafe fn nl_put_saved(
    skb: *mut c_void,
    cb: *mut c_void,
    c: &NlConn,
    saved: &[u8],
) -> bool {
    let Ok(len) = u32::try_from(saved.len()) else {
        return false;
    };
    // SAFETY: By the function's requirements; `c` and `saved` live across
    // the call, which copies them into the message.
    unsafe { vnat_shim_nl_put_saved(skb, cb, c, saved.as_ptr(), len) == 0 }
}
