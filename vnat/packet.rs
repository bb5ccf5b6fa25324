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
    checksum::{self, add, fold},
    mapping::{Edit, EndpointChange, Tuple, WireKey, PROTO_TCP, PROTO_UDP},
    vcmp::Endpoint,
};
use core::net::IpAddr;

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

/// Why [`Packet::apply`] changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The packet is not the one the rule matches: the edit's sums, worked
    /// out for that one, would be wrong for it.
    OtherPacket,
    /// The rewrite would change the packet's family.
    WrongFamily,
}

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

/// The tuple of the IP and transport headers in `hdr`, and whether they
/// are a TCP segment that opens a connection (a SYN without ACK), if they
/// are complete and of TCP or UDP: what a hook reads, in one parse.
pub fn read(hdr: &[u8]) -> Option<(Tuple, bool)> {
    let at = parse(hdr)?;
    let t = Tuple {
        proto: at.proto,
        src: endpoint(hdr, &at, at.src(), at.l4),
        dst: endpoint(hdr, &at, at.dst(), at.l4 + 2),
    };
    Some((t, at.proto == PROTO_TCP && hdr[at.l4 + 13] & 0x12 == 0x02))
}

/// What a hook reads of a packet, in one parse.
pub struct Read {
    /// Its protocol and endpoints, as the table compares them.
    pub key: WireKey,
    /// A TCP segment that opens a connection (a SYN without ACK).
    pub opens: bool,
    /// The length of its IP and transport headers.
    pub len: usize,
}

/// What a hook reads of the IP and transport headers in `hdr`, if they are
/// complete and of TCP or UDP: [`read`], without making endpoints of them.
pub fn read_key(hdr: &[u8]) -> Option<Read> {
    let at = parse(hdr)?;
    Some(Read {
        key: key_of(hdr, &at)?,
        opens: at.proto == PROTO_TCP && hdr[at.l4 + 13] & 0x12 == 0x02,
        len: at.l4 + l4_len(at.proto)?,
    })
}

/// The key of the headers in `hdr`, whose parts are where `at` says.
fn key_of(hdr: &[u8], at: &Layout) -> Option<WireKey> {
    let l4 = hdr.get(at.l4..at.l4 + 4)?;
    let ports = [l4[0], l4[1], l4[2], l4[3]];
    Some(if at.v6 {
        let a = hdr.get(IP6_SRC..IP6_DST + 16)?;
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        src.copy_from_slice(&a[..16]);
        dst.copy_from_slice(&a[16..]);
        WireKey::v6(at.proto, &src, &dst, &ports)
    } else {
        let a = hdr.get(IP_SRC..IP_DST + 4)?;
        WireKey::v4(
            at.proto,
            &[a[0], a[1], a[2], a[3]],
            &[a[4], a[5], a[6], a[7]],
            &ports,
        )
    })
}

/// The tuple of IP and transport headers in `hdr`, if they are complete
/// and of TCP or UDP.
pub fn tuple(hdr: &[u8]) -> Option<Tuple> {
    read(hdr).map(|(t, _)| t)
}

/// Whether `hdr` holds a TCP segment that opens a connection: a SYN
/// without ACK.
pub fn opens_connection(hdr: &[u8]) -> bool {
    read(hdr).is_some_and(|(_, opens)| opens)
}

/// The family, the offset of the header after the IP header (and IPv6
/// extension headers skipped) and its protocol, if `hdr` starts with an IP
/// header VNAT reads (any transport).
fn ip_layout(hdr: &[u8]) -> Option<(bool, usize, u8)> {
    match hdr.first()? >> 4 {
        4 => {
            if hdr.len() < IP_MIN {
                return None;
            }
            let ihl = usize::from(hdr[0] & 0xf) * 4;
            if ihl < IP_MIN {
                return None;
            }
            Some((false, ihl, hdr[9]))
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
            Some((true, at, next))
        }
        _ => None,
    }
}

/// Where the parts are, if `hdr` holds both headers whole.
fn parse(hdr: &[u8]) -> Option<Layout> {
    let (v6, l4, proto) = ip_layout(hdr)?;
    if hdr.len() < l4.checked_add(l4_len(proto)?)? {
        return None;
    }
    Some(Layout { v6, l4, proto })
}

/// IP protocol numbers of ICMP and ICMPv6.
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;
/// Bytes of an ICMP or ICMPv6 error's own header before the packet it
/// quotes (type, code, checksum, 4 bytes: unused, MTU or pointer).
const ICMP_HDR: usize = 8;

/// An ICMP or ICMPv6 error (destination unreachable, also "fragmentation
/// needed"; packet too big; time exceeded; parameter problem) about a TCP
/// or UDP packet this host sent: a router on the path quotes the packet as
/// it left, with its physical endpoints. The socket it is about is found by
/// the quoted endpoints: those of a moved connection must be its virtual
/// ones again, or the socket never learns, among other things, the path
/// MTU (paper 4.2's translation, for the errors about a connection).
///
/// The whole message is in `hdr`: the outer IP header, the ICMP header and
/// the quote (RFC 792: the IP header and 8 bytes; RFC 4443: as much as
/// fits in 1,280 bytes).
pub struct IcmpError<'a> {
    hdr: &'a mut [u8],
    v6: bool,
    /// Offset of the ICMP header.
    icmp: usize,
    /// Where the ICMP message ends (the outer packet's own length).
    end: usize,
    /// Where the quoted packet's parts are; only its ports need be there.
    quoted: Layout,
}

impl<'a> IcmpError<'a> {
    /// The error whose IP packet `hdr` holds, if it is an ICMP error about
    /// a TCP or UDP packet with both ports quoted.
    pub fn new(hdr: &'a mut [u8]) -> Option<Self> {
        let (v6, icmp, proto) = ip_layout(hdr)?;
        let error = match (v6, proto, *hdr.get(icmp)?) {
            // Destination unreachable, time exceeded, parameter problem.
            (false, PROTO_ICMP, t) => matches!(t, 3 | 11 | 12),
            // Destination unreachable, packet too big, time exceeded,
            // parameter problem.
            (true, PROTO_ICMPV6, t) => matches!(t, 1..=4),
            _ => false,
        };
        if !error {
            return None;
        }
        let end = if v6 {
            IP6_LEN + usize::from(be16(hdr, 4))
        } else {
            usize::from(be16(hdr, 2))
        };
        let inner = icmp + ICMP_HDR;
        if end > hdr.len() || end < inner {
            return None;
        }
        let quote = &hdr[inner..end];
        let (qv6, ql4, qproto) = ip_layout(quote)?;
        // Its family is the error's; a fragment after the first quotes no
        // ports.
        if qv6 != v6 || l4_len(qproto).is_none() || quote.len() < ql4 + 4 {
            return None;
        }
        if !v6 && be16(quote, 6) & 0x1fff != 0 {
            return None;
        }
        Some(Self {
            hdr,
            v6,
            icmp,
            end,
            quoted: Layout {
                v6,
                l4: inner + ql4,
                proto: qproto,
            },
        })
    }

    /// The quoted packet's protocol and endpoints, as it left this host.
    pub fn quoted(&self) -> Tuple {
        let at = &self.quoted;
        let inner = self.icmp + ICMP_HDR;
        Tuple {
            proto: at.proto,
            src: endpoint(self.hdr, at, inner + at.src(), at.l4),
            dst: endpoint(self.hdr, at, inner + at.dst(), at.l4 + 2),
        }
    }

    /// Makes the quoted packet `to` (its endpoints; the protocol stays),
    /// with the quoted IPv4 header's checksum and the ICMP checksum
    /// recomputed (the quoted transport checksum, of which the quote may
    /// hold nothing, is left: the error's receiver does not check it).
    /// Refuses (changing nothing) endpoints of another family.
    pub fn rewrite_quoted(&mut self, to: Tuple) -> Result<(), WrongFamily> {
        if to.src.is_v6() != self.v6 || to.dst.is_v6() != self.v6 {
            return Err(WrongFamily);
        }
        let at = self.quoted;
        let inner = self.icmp + ICMP_HDR;
        let len = at.addr_len();
        let (src, dst) = (to.src.octets16(), to.dst.octets16());
        self.hdr[inner + at.src()..inner + at.src() + len].copy_from_slice(&src[16 - len..]);
        self.hdr[inner + at.dst()..inner + at.dst() + len].copy_from_slice(&dst[16 - len..]);
        self.hdr[at.l4..at.l4 + 2].copy_from_slice(&to.src.port.to_be_bytes());
        self.hdr[at.l4 + 2..at.l4 + 4].copy_from_slice(&to.dst.port.to_be_bytes());
        if !self.v6 {
            // The quoted IPv4 header is whole (`new` found its length).
            let ihl = usize::from(self.hdr[inner] & 0xf) * 4;
            self.hdr[inner + IP_CHECK..inner + IP_CHECK + 2].fill(0);
            let c = checksum::checksum(0, &self.hdr[inner..inner + ihl]);
            self.hdr[inner + IP_CHECK..inner + IP_CHECK + 2].copy_from_slice(&c.to_be_bytes());
        }
        // The ICMP checksum, from scratch: over the message, and for
        // ICMPv6 the pseudo header (RFC 4443 2.3).
        let (icmp, end) = (self.icmp, self.end);
        self.hdr[icmp + 2..icmp + 4].fill(0);
        let mut sum = 0;
        if self.v6 {
            for w in self.hdr[IP6_SRC..IP6_DST + 16].chunks(2) {
                sum = checksum::add(sum, u16::from_be_bytes([w[0], w[1]]));
            }
            let n = (end - icmp) as u32;
            sum = checksum::add(sum, (n >> 16) as u16);
            sum = checksum::add(sum, n as u16);
            sum = checksum::add(sum, u16::from(PROTO_ICMPV6));
        }
        let c = checksum::checksum(sum, &self.hdr[icmp..end]);
        self.hdr[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
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

    /// Rewrites the packet, if it is `from` (a rule's key), as the rule's
    /// `edit` says, to `to` (the rule's rewrite), with both checksums: what
    /// [`Packet::rewrite`] does for the source, then the destination, each
    /// if it changes, with the checksums' changes worked out beforehand
    /// (for `from`: another packet is refused). Returns each endpoint's
    /// change of the transport checksum field, as [`Packet::rewrite`] does.
    /// Refuses (changing nothing) a rewrite into another family.
    pub fn apply(
        &mut self,
        from: &WireKey,
        to: &Tuple,
        edit: &Edit,
    ) -> Result<[Option<CheckChange>; 2], Refused> {
        if key_of(self.hdr, &self.at).as_ref() != Some(from) {
            return Err(Refused::OtherPacket);
        }
        if edit.cross_family || to.src.is_v6() != self.at.v6 {
            return Err(Refused::WrongFamily);
        }
        let mut out = [None, None];
        if let Some(c) = &edit.src {
            out[0] = self.apply_side(false, &to.src, c);
        }
        if let Some(c) = &edit.dst {
            out[1] = self.apply_side(true, &to.dst, c);
        }
        Ok(out)
    }

    /// One endpoint of [`Packet::apply`] and [`Packet::rewrite`]: its
    /// address and port become `to`'s, and the checksums follow by the
    /// sums of `c` (RFC 1624 eqn. 3, the words' changes added at once).
    fn apply_side(&mut self, dst: bool, to: &Endpoint, c: &EndpointChange) -> Option<CheckChange> {
        let at = self.at;
        let (addr_at, port_at) = if dst {
            (at.dst(), at.l4 + 2)
        } else {
            (at.src(), at.l4)
        };
        if c.moved {
            match to.addr {
                IpAddr::V4(a) => {
                    let check = !fold(add(add(0, !self.be16(IP_CHECK)), c.addr));
                    self.put(IP_CHECK, &check.to_be_bytes());
                    self.put(addr_at, &a.octets());
                }
                IpAddr::V6(a) => self.put(addr_at, &a.octets()),
            }
        }
        let udp = at.proto == PROTO_UDP;
        let check_at = at.l4 + if udp { 6 } else { 16 };
        let old = self.be16(check_at);
        // A UDP checksum of zero means "none": leave it so (over IPv6, where
        // only tunnels may send one, the receiver decides).
        if udp && old == 0 && !self.partial {
            self.put(port_at, &to.port.to_be_bytes());
            return None;
        }
        let mut by_addr = old;
        let mut check = old;
        if self.partial {
            if c.moved {
                by_addr = fold(add(add(0, old), c.addr));
                check = by_addr;
            }
        } else {
            if c.moved {
                by_addr = !fold(add(add(0, !old), c.addr));
            }
            check = !fold(add(add(0, !by_addr), c.port));
            if udp && check == 0 {
                check = 0xffff;
            }
        }
        self.put(port_at, &to.port.to_be_bytes());
        self.put(check_at, &check.to_be_bytes());
        // A sum over the transport header sees the port change and the
        // field's answer to it cancel out: only the address's share of the
        // field's change is news to it (as `inet_proto_csum_replace4()`).
        // An IPv6 packet's sum still covers its IP header when the hooks
        // see it, where the address changed too: nothing is news to it
        // (as `inet_proto_csum_replace16()`, which leaves `skb->csum`).
        (c.moved && !at.v6).then_some(CheckChange { old, new: by_addr })
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
        if from.is_v6() != self.at.v6 || to.is_v6() != self.at.v6 {
            return Err(WrongFamily);
        }
        Ok(self.apply_side(dst, &to, &EndpointChange::new(&from, &to)))
    }
}
