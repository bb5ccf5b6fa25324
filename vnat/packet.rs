// SPDX-License-Identifier: GPL-2.0

//! The headers of an IPv4 or IPv6 TCP or UDP packet as translation reads
//! and rewrites them (paper 4.2): the 5-tuple, and one endpoint rewritten
//! with the IPv4 header checksum and the transport checksum kept valid (over
//! IPv6, the transport checksum's pseudo header has the 128-bit addresses,
//! and there is no IP header checksum).
//!
//! IPv6 extension headers before the transport header (hop-by-hop options,
//! routing with no segments left, destination options) are skipped; a
//! packet with a fragment header, AH, ESP, a routing header with segments
//! left, or anything else is not translated (`None`): the module counts it.
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
/// Offsets in the IPv6 header, and its length.
const IP6_NEXT: usize = 6;
const IP6_SRC: usize = 8;
const IP6_DST: usize = 24;
const IP6_LEN: usize = 40;
/// IPv6 extension headers skipped: hop-by-hop options, routing,
/// destination options (RFC 8200 4.1); at most this many.
const EXT_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_DEST: u8 = 60;
const EXT_MAX: usize = 8;

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
    at: Layout,
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

/// A rewrite that would change a packet's family (an IPv4 endpoint into
/// an IPv6 packet, or the reverse): never done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongFamily;

/// Where a packet's parts are.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// IPv6 (else IPv4).
    v6: bool,
    /// Offset of the transport header.
    l4: usize,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    proto: u8,
}

impl Layout {
    const fn src(&self) -> usize {
        if self.v6 {
            IP6_SRC
        } else {
            IP_SRC
        }
    }

    const fn dst(&self) -> usize {
        if self.v6 {
            IP6_DST
        } else {
            IP_DST
        }
    }

    const fn addr_len(&self) -> usize {
        if self.v6 {
            16
        } else {
            4
        }
    }
}

fn be16(hdr: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([hdr[o], hdr[o + 1]])
}

fn endpoint(hdr: &[u8], at: &Layout, addr_at: usize, port_at: usize) -> Endpoint {
    let port = be16(hdr, port_at);
    if at.v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&hdr[addr_at..addr_at + 16]);
        Endpoint::from_v6(a, port)
    } else {
        let a = u32::from_be_bytes([
            hdr[addr_at],
            hdr[addr_at + 1],
            hdr[addr_at + 2],
            hdr[addr_at + 3],
        ]);
        Endpoint::new(a, port)
    }
}

/// The tuple of IP and transport headers in `hdr`, if they are complete
/// and of TCP or UDP.
pub fn tuple(hdr: &[u8]) -> Option<Tuple> {
    let at = parse(hdr)?;
    Some(Tuple {
        proto: at.proto,
        src: endpoint(hdr, &at, at.src(), at.l4),
        dst: endpoint(hdr, &at, at.dst(), at.l4 + 2),
    })
}

/// Whether `hdr` holds a TCP segment that opens a connection: a SYN
/// without ACK.
pub fn opens_connection(hdr: &[u8]) -> bool {
    matches!(parse(hdr), Some(at) if at.proto == PROTO_TCP && hdr[at.l4 + 13] & 0x12 == 0x02)
}

/// Where the parts are, if `hdr` holds both headers whole.
fn parse(hdr: &[u8]) -> Option<Layout> {
    let (v6, l4, proto) = match hdr.first()? >> 4 {
        4 => {
            if hdr.len() < IP_MIN {
                return None;
            }
            let ihl = usize::from(hdr[0] & 0xf) * 4;
            if ihl < IP_MIN {
                return None;
            }
            (false, ihl, hdr[9])
        }
        6 => {
            if hdr.len() < IP6_LEN {
                return None;
            }
            // A v4-mapped address is IPv4 only on a dual-stack socket, never
            // on the wire (RFC 4291 2.5.5.2): not a packet of a connection.
            const MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
            if hdr[IP6_SRC..IP6_SRC + 12] == MAPPED || hdr[IP6_DST..IP6_DST + 12] == MAPPED {
                return None;
            }
            let (mut next, mut at) = (hdr[IP6_NEXT], IP6_LEN);
            let mut skipped = 0;
            while matches!(next, EXT_HOP | EXT_ROUTING | EXT_DEST) {
                if skipped == EXT_MAX || hdr.len() < at + 2 {
                    return None;
                }
                // With segments left, the destination is the next segment,
                // not the connection's, and the transport checksum covers
                // the final one (RFC 8200 8.1): not translated.
                if next == EXT_ROUTING && matches!(hdr.get(at + 3), Some(&left) if left != 0) {
                    return None;
                }
                next = hdr[at];
                at += (usize::from(hdr[at + 1]) + 1) * 8;
                skipped += 1;
            }
            (true, at, next)
        }
        _ => return None,
    };
    if hdr.len() < l4.checked_add(l4_len(proto)?)? {
        return None;
    }
    Some(Layout { v6, l4, proto })
}

impl<'a> Packet<'a> {
    /// The packet whose IP header starts `hdr`, if `hdr` holds it and the
    /// TCP or UDP header after it.
    pub fn new(hdr: &'a mut [u8], partial: bool) -> Option<Self> {
        let at = parse(hdr)?;
        Some(Self { hdr, at, partial })
    }

    /// Its 5-tuple.
    pub fn tuple(&self) -> Tuple {
        // `new` checked what `tuple` checks.
        tuple(self.hdr).unwrap_or(Tuple {
            proto: self.at.proto,
            src: Endpoint::new(0, 0),
            dst: Endpoint::new(0, 0),
        })
    }

    fn be16(&self, o: usize) -> u16 {
        be16(self.hdr, o)
    }

    fn put(&mut self, o: usize, bytes: &[u8]) {
        self.hdr[o..o + bytes.len()].copy_from_slice(bytes);
    }

    /// Rewrites the destination (`dst`) or the source endpoint from `from`
    /// to `to`, with both checksums. Returns the change of the transport
    /// checksum field when an address changed (a `CHECKSUM_COMPLETE`
    /// packet's sum must follow it). Refuses (changing nothing) a `to` or
    /// `from` of another family than the packet's.
    pub fn rewrite(
        &mut self,
        dst: bool,
        from: Endpoint,
        to: Endpoint,
    ) -> Result<Option<CheckChange>, WrongFamily> {
        let at = self.at;
        if from.is_v6() != at.v6 || to.is_v6() != at.v6 {
            return Err(WrongFamily);
        }
        let (addr_at, port_at) = if dst {
            (at.dst(), at.l4 + 2)
        } else {
            (at.src(), at.l4)
        };
        let summed = if self.partial {
            Summed::Partial
        } else {
            Summed::Full
        };
        // The address as 32-bit words: one for IPv4, four for IPv6.
        let (old_ip, new_ip) = (from.octets16(), to.octets16());
        let words = 16 - at.addr_len()..16;
        let word =
            |ip: &[u8; 16], i: usize| u32::from_be_bytes([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
        let moved = from.addr != to.addr;
        if moved {
            if !at.v6 {
                let c = checksum::replace32(
                    self.be16(IP_CHECK),
                    word(&old_ip, 12),
                    word(&new_ip, 12),
                    Summed::Full,
                    false,
                );
                self.put(IP_CHECK, &c.to_be_bytes());
            }
            self.put(addr_at, &new_ip[words.clone()]);
        }
        let check_at = at.l4 + if at.proto == PROTO_UDP { 6 } else { 16 };
        let old = self.be16(check_at);
        // A UDP checksum of zero means "none": leave it so (over IPv6, where
        // only tunnels may send one, the receiver decides).
        if at.proto == PROTO_UDP && old == 0 && !self.partial {
            self.put(port_at, &to.port.to_be_bytes());
            return Ok(None);
        }
        let mut by_addr = old;
        if moved {
            for i in words.step_by(4) {
                by_addr =
                    checksum::replace32(by_addr, word(&old_ip, i), word(&new_ip, i), summed, true);
            }
        }
        let mut c = checksum::replace16(by_addr, from.port, to.port, summed);
        if at.proto == PROTO_UDP && c == 0 && !self.partial {
            c = 0xffff;
        }
        self.put(port_at, &to.port.to_be_bytes());
        self.put(check_at, &c.to_be_bytes());
        // A sum over the transport header sees the port change and the
        // field's answer to it cancel out: only the address's share of the
        // field's change is news to it (as `inet_proto_csum_replace4()`).
        // An IPv6 packet's sum still covers its IP header when the hooks
        // see it, where the address changed too: nothing is news to it
        // (as `inet_proto_csum_replace16()`, which leaves `skb->csum`).
        Ok((moved && !at.v6).then_some(CheckChange { old, new: by_addr }))
    }
}
