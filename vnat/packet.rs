// SPDX-License-Identifier: GPL-2.0

//! The headers of an IPv4 TCP or UDP packet as translation reads and
//! rewrites them (paper 4.2): the 5-tuple, and one endpoint rewritten with
//! the IP header checksum and the transport checksum kept valid.
//!
//! Plain `no_std` Rust over a byte slice, shared with `tools/vnat-proto`,
//! whose tests check every rewrite against checksums computed from scratch.
//! The module's hooks get the slice from the socket buffer
//! (`ffi/skb.rs`).

use crate::{
    checksum::{self, Summed},
    mapping::{Tuple, PROTO_TCP, PROTO_UDP},
    vcmp::Endpoint,
};

/// Offsets in the IPv4 header.
const IP_CHECK: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;
/// The smallest IPv4 header.
const IP_MIN: usize = 20;

/// Length of the fixed transport header of `proto`, if VNAT translates it.
pub const fn l4_len(proto: u8) -> Option<usize> {
    match proto {
        PROTO_TCP => Some(20),
        PROTO_UDP => Some(8),
        _ => None,
    }
}

/// The IP and transport headers of one packet, contiguous.
pub struct Packet<'a> {
    hdr: &'a mut [u8],
    ihl: usize,
    proto: u8,
    /// `CHECKSUM_PARTIAL`: the transport checksum field holds the
    /// pseudo-header sum, and the device or the stack completes it.
    partial: bool,
}

/// The change of the transport checksum field that a rewrite's address
/// change caused, for a `CHECKSUM_COMPLETE` packet's sum over its transport
/// header and payload, which does not cover the pseudo header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckChange {
    /// The field before, as read big-endian.
    pub old: u16,
    /// The field after.
    pub new: u16,
}

/// The tuple of IP and transport headers in `hdr`, if they are complete
/// and of TCP or UDP.
pub fn tuple(hdr: &[u8]) -> Option<Tuple> {
    let (ihl, proto) = parse(hdr)?;
    let be16 = |o: usize| u16::from_be_bytes([hdr[o], hdr[o + 1]]);
    let be32 = |o: usize| u32::from_be_bytes([hdr[o], hdr[o + 1], hdr[o + 2], hdr[o + 3]]);
    Some(Tuple {
        proto,
        src: Endpoint::new(be32(IP_SRC), be16(ihl)),
        dst: Endpoint::new(be32(IP_DST), be16(ihl + 2)),
    })
}

/// Whether `hdr` holds a TCP segment that opens a connection: a SYN
/// without ACK.
pub fn opens_connection(hdr: &[u8]) -> bool {
    matches!(parse(hdr), Some((ihl, PROTO_TCP)) if hdr[ihl + 13] & 0x12 == 0x02)
}

/// Header length and protocol, if `hdr` holds both headers whole.
fn parse(hdr: &[u8]) -> Option<(usize, u8)> {
    if hdr.len() < IP_MIN || hdr[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(hdr[0] & 0xf) * 4;
    let proto = hdr[9];
    if ihl < IP_MIN || hdr.len() < ihl + l4_len(proto)? {
        return None;
    }
    Some((ihl, proto))
}

impl<'a> Packet<'a> {
    /// The packet whose IP header starts `hdr`, if `hdr` holds it and the
    /// TCP or UDP header after it.
    pub fn new(hdr: &'a mut [u8], partial: bool) -> Option<Self> {
        let (ihl, proto) = parse(hdr)?;
        Some(Self {
            hdr,
            ihl,
            proto,
            partial,
        })
    }

    /// Its 5-tuple.
    pub fn tuple(&self) -> Tuple {
        // `new` checked what `tuple` checks.
        tuple(self.hdr).unwrap_or(Tuple {
            proto: self.proto,
            src: Endpoint::new(0, 0),
            dst: Endpoint::new(0, 0),
        })
    }

    fn be16(&self, o: usize) -> u16 {
        u16::from_be_bytes([self.hdr[o], self.hdr[o + 1]])
    }

    fn put(&mut self, o: usize, bytes: &[u8]) {
        self.hdr[o..o + bytes.len()].copy_from_slice(bytes);
    }

    /// Rewrites the destination (`dst`) or the source endpoint from `from`
    /// to `to`, with both checksums. Returns the change of the transport
    /// checksum field when an address changed (a `CHECKSUM_COMPLETE`
    /// packet's sum must follow it).
    pub fn rewrite(&mut self, dst: bool, from: Endpoint, to: Endpoint) -> Option<CheckChange> {
        let (addr_at, port_at) = if dst {
            (IP_DST, self.ihl + 2)
        } else {
            (IP_SRC, self.ihl)
        };
        let summed = if self.partial {
            Summed::Partial
        } else {
            Summed::Full
        };
        if from.addr != to.addr {
            let c =
                checksum::replace32(self.be16(IP_CHECK), from.addr, to.addr, Summed::Full, false);
            self.put(IP_CHECK, &c.to_be_bytes());
            self.put(addr_at, &to.addr.to_be_bytes());
        }
        let check_at = self.ihl + if self.proto == PROTO_UDP { 6 } else { 16 };
        let old = self.be16(check_at);
        // A UDP checksum of zero means "none": leave it so.
        if self.proto == PROTO_UDP && old == 0 && !self.partial {
            self.put(port_at, &to.port.to_be_bytes());
            return None;
        }
        let by_addr = checksum::replace32(old, from.addr, to.addr, summed, true);
        let mut c = checksum::replace16(by_addr, from.port, to.port, summed);
        if self.proto == PROTO_UDP && c == 0 && !self.partial {
            c = 0xffff;
        }
        self.put(port_at, &to.port.to_be_bytes());
        self.put(check_at, &c.to_be_bytes());
        // A sum over the transport header sees the port change and the
        // field's answer to it cancel out: only the address's share of the
        // field's change is news to it (as `inet_proto_csum_replace4()`).
        (from.addr != to.addr).then_some(CheckChange { old, new: by_addr })
    }
}
