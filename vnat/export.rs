// SPDX-License-Identifier: GPL-2.0

//! A connection's saved state, as it travels with a process that moves to
//! another host (paper 3.3: the endpoint "may move with a process that has
//! been moved via an operating system process migration mechanism", and the
//! key "is part of the connection state saved and transported by the
//! migration mechanism").
//!
//! `conn-export` writes it, `conn-import` reads it on the new host (in the
//! netlink attribute `saved`); `vnatctl` keeps it in CRIU's image
//! directory. Version 1, 186 bytes, integers big-endian; an endpoint is 18
//! bytes, its 16-byte address (IPv4 as `::ffff:a.b.c.d`) and its port:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | version (1) |
//! | 1 | 1 | protocol (6 TCP, 17 UDP) |
//! | 2 | 2 | length of the whole record (186) |
//! | 4 | 18 | local virtual endpoint |
//! | 22 | 18 | remote virtual endpoint |
//! | 40 | 18 | local physical endpoint (where the peer sends now) |
//! | 58 | 18 | remote physical endpoint |
//! | 76 | 1 | origin (the netlink spec's enum) |
//! | 77 | 1 | conflict policy (spec enum) |
//! | 78 | 1 | helper to run when the peer suspends (spec enum) |
//! | 79 | 1 | flags: 1 suspended, 2 remote endpoint not validated, 4 keyed |
//! | 80 | 1 | where the key is (the spec's `auth`) |
//! | 81 | 1 | 1 if this end asks the peer for the key |
//! | 82 | 1 | key requests the peer refused so far |
//! | 83 | 1 | 0 |
//! | 84 | 4 | key id |
//! | 88 | 18 | this end as the peer names it (behind a NAT, the NAT's) |
//! | 106 | 8 | counter of the last VCMP message sent under the key |
//! | 114 | 8 | counter of the last one accepted from the peer |
//! | 122 | 32 | the key this end sends under (0 if not keyed) |
//! | 154 | 32 | the key the peer sends under |
//!
//! A reader refuses another version, a length other than its version's,
//! a protocol other than TCP and UDP, an unspecified endpoint, flags it
//! does not know, and a key without the keyed flag (or the flag without
//! one).

use crate::vcmp::{Endpoint, PROTO_TCP, PROTO_UDP};
use core::ffi::CStr;

/// The format's version.
pub const VERSION: u8 = 1;
/// The length of a version-1 record.
pub const LEN: usize = 186;
/// A key's length.
pub const KEY_LEN: usize = 32;

/// Flag: this end was suspended and has not resumed.
pub const FLAG_SUSPENDED: u8 = 1;
/// Flag: the remote physical endpoint came from an update and no packet
/// has come from it yet.
pub const FLAG_UNVALIDATED: u8 = 2;
/// Flag: the two keys are there.
pub const FLAG_KEYED: u8 = 4;
const FLAGS: u8 = FLAG_SUSPENDED | FLAG_UNVALIDATED | FLAG_KEYED;

/// A connection's saved state. The keys are secret: whoever holds them can
/// move the connection; [`Saved`] wipes them when dropped.
#[derive(PartialEq, Eq)]
pub struct Saved {
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// The local virtual endpoint.
    pub local_virtual: Endpoint,
    /// The remote virtual endpoint.
    pub remote_virtual: Endpoint,
    /// The local physical endpoint, where the peer sends now.
    pub local_physical: Endpoint,
    /// The remote physical endpoint.
    pub remote_physical: Endpoint,
    /// Origin, policy and helper choice (the spec's enums, as numbers).
    pub origin: u8,
    /// The conflict policy.
    pub policy: u8,
    /// The helper to run when the peer suspends.
    pub helper: u8,
    /// `FLAG_*`.
    pub flags: u8,
    /// Where the key is (the spec's `auth`).
    pub auth: u8,
    /// This end asks the peer for the key.
    pub asks: bool,
    /// Key requests the peer refused so far.
    pub refusals: u8,
    /// The key's id.
    pub key_id: u32,
    /// This end as the peer names it.
    pub named: Endpoint,
    /// Counter of the last message sent under the key.
    pub sent: u64,
    /// Counter of the last message accepted from the peer.
    pub accepted: u64,
    /// The key this end sends under.
    pub send_key: [u8; KEY_LEN],
    /// The key the peer sends under.
    pub recv_key: [u8; KEY_LEN],
}

impl core::fmt::Debug for Saved {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the keys.
        f.debug_struct("Saved")
            .field("proto", &self.proto)
            .field("local_virtual", &self.local_virtual)
            .field("remote_virtual", &self.remote_virtual)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        wipe(&mut self.send_key);
        wipe(&mut self.recv_key);
    }
}

/// Zeroes `b` (a record, a key) in a way the compiler keeps, as
/// `memzero_explicit()` does.
pub fn wipe(b: &mut [u8]) {
    for x in b.iter_mut() {
        // SAFETY: `x` is a valid, aligned `&mut u8`.
        unsafe { core::ptr::write_volatile(x, 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// Why a saved state was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Shorter than its header, or than its length says.
    Truncated,
    /// Another version of the format.
    Version,
    /// A length other than the version's.
    Length,
    /// A protocol other than TCP and UDP.
    Protocol,
    /// An unspecified endpoint, or endpoints of two families.
    Endpoint,
    /// Unknown flags, or keys that do not match the keyed flag.
    Flags,
}

impl Refused {
    /// Why, in words: the extack message the module answers with, and what
    /// `vnatctl` says of a file.
    pub const fn why(self) -> &'static CStr {
        match self {
            Self::Truncated => c"saved state is truncated",
            Self::Version => c"saved state is of another version",
            Self::Length => c"saved state has a wrong length",
            Self::Protocol => c"saved state is of neither TCP nor UDP",
            Self::Endpoint => c"saved state has a bad endpoint",
            Self::Flags => c"saved state has bad flags or keys",
        }
    }
}

fn put_ep(b: &mut [u8], at: usize, e: &Endpoint) {
    b[at..at + 16].copy_from_slice(&e.octets16());
    b[at + 16..at + 18].copy_from_slice(&e.port.to_be_bytes());
}

fn get_ep(b: &[u8; LEN], at: usize) -> Endpoint {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Endpoint::from_v6(a, u16::from_be_bytes([b[at + 16], b[at + 17]]))
}

fn get_u64(b: &[u8; LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

impl Saved {
    /// The record, [`LEN`] bytes. The caller wipes it once sent.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = VERSION;
        b[1] = self.proto;
        b[2..4].copy_from_slice(&(LEN as u16).to_be_bytes());
        put_ep(&mut b, 4, &self.local_virtual);
        put_ep(&mut b, 22, &self.remote_virtual);
        put_ep(&mut b, 40, &self.local_physical);
        put_ep(&mut b, 58, &self.remote_physical);
        b[76] = self.origin;
        b[77] = self.policy;
        b[78] = self.helper;
        b[79] = self.flags;
        b[80] = self.auth;
        b[81] = u8::from(self.asks);
        b[82] = self.refusals;
        b[84..88].copy_from_slice(&self.key_id.to_be_bytes());
        put_ep(&mut b, 88, &self.named);
        b[106..114].copy_from_slice(&self.sent.to_be_bytes());
        b[114..122].copy_from_slice(&self.accepted.to_be_bytes());
        b[122..154].copy_from_slice(&self.send_key);
        b[154..186].copy_from_slice(&self.recv_key);
        b
    }

    /// Reads one record from the start of `b`; returns it and its length.
    /// Whatever follows it is the caller's (a file holds several).
    pub fn decode(b: &[u8]) -> Result<(Self, usize), Refused> {
        if b.len() < 4 {
            return Err(Refused::Truncated);
        }
        if b[0] != VERSION {
            return Err(Refused::Version);
        }
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if len != LEN {
            return Err(Refused::Length);
        }
        let Some(r) = b.get(..LEN) else {
            return Err(Refused::Truncated);
        };
        let mut r: [u8; LEN] = r.try_into().map_err(|_| Refused::Truncated)?;
        let s = Self::from_record(&r);
        wipe(&mut r);
        s.map(|s| (s, LEN))
    }

    fn from_record(b: &[u8; LEN]) -> Result<Self, Refused> {
        let proto = b[1];
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return Err(Refused::Protocol);
        }
        let mut send_key = [0u8; KEY_LEN];
        let mut recv_key = [0u8; KEY_LEN];
        send_key.copy_from_slice(&b[122..154]);
        recv_key.copy_from_slice(&b[154..186]);
        let s = Self {
            proto,
            local_virtual: get_ep(b, 4),
            remote_virtual: get_ep(b, 22),
            local_physical: get_ep(b, 40),
            remote_physical: get_ep(b, 58),
            origin: b[76],
            policy: b[77],
            helper: b[78],
            flags: b[79],
            auth: b[80],
            asks: b[81] != 0,
            refusals: b[82],
            key_id: u32::from_be_bytes([b[84], b[85], b[86], b[87]]),
            named: get_ep(b, 88),
            sent: get_u64(b, 106),
            accepted: get_u64(b, 114),
            send_key,
            recv_key,
        };
        let eps = [
            s.local_virtual,
            s.remote_virtual,
            s.local_physical,
            s.remote_physical,
        ];
        if eps
            .iter()
            .any(|e| !e.is_specified() || !e.same_family(&s.local_virtual))
        {
            return Err(Refused::Endpoint);
        }
        // Keyed: both keys are there; not keyed: neither is.
        let keys_ok = if s.flags & FLAG_KEYED != 0 {
            s.send_key != [0; KEY_LEN] && s.recv_key != [0; KEY_LEN]
        } else {
            s.send_key == [0; KEY_LEN] && s.recv_key == [0; KEY_LEN]
        };
        if s.flags & !FLAGS != 0 || b[81] > 1 || b[83] != 0 || !keys_ok {
            return Err(Refused::Flags);
        }
        Ok(s)
    }
}
