// SPDX-License-Identifier: GPL-2.0

//! Rewriting a packet's endpoints (what the hooks do to a migrated
//! connection's packets) leaves the IPv4 header checksum and the TCP or UDP
//! checksum equal to ones computed from scratch, in full and partial form,
//! and tells a CHECKSUM_COMPLETE packet's sum what it must add.

use proptest::prelude::*;
use vnat_proto::{
    checksum::{add, checksum, fold},
    mapping::{Tuple, PROTO_TCP, PROTO_UDP},
    packet::{self, Packet},
    vcmp::Endpoint,
};

/// 0x0000 and 0xffff are the same one's complement number.
fn same(a: u16, b: u16) -> bool {
    a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Sum of a byte string as big-endian words.
fn words(b: &[u8]) -> u32 {
    b.chunks(2).fold(0, |s, c| {
        add(s, u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
    })
}

/// The transport checksum of `pkt` computed from scratch (field zeroed).
fn l4_check(pkt: &[u8], proto: u8) -> u16 {
    let at = 20 + if proto == PROTO_UDP { 6 } else { 16 };
    let mut seg = pkt[20..].to_vec();
    seg[at - 20] = 0;
    seg[at - 20 + 1] = 0;
    let mut s = words(&pkt[12..20]);
    s = add(s, u16::from(proto));
    s = add(s, seg.len() as u16);
    checksum(s, &seg)
}

/// An IPv4 packet of `proto` from `src` to `dst` with `payload`, with valid
/// checksums.
fn build(proto: u8, src: Endpoint, dst: Endpoint, payload: &[u8]) -> Vec<u8> {
    let l4 = if proto == PROTO_UDP { 8 } else { 20 };
    let len = 20 + l4 + payload.len();
    let mut b = vec![0u8; len];
    b[0] = 0x45;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[8] = 64;
    b[9] = proto;
    b[12..16].copy_from_slice(&src.addr.to_be_bytes());
    b[16..20].copy_from_slice(&dst.addr.to_be_bytes());
    b[20..22].copy_from_slice(&src.port.to_be_bytes());
    b[22..24].copy_from_slice(&dst.port.to_be_bytes());
    if proto == PROTO_UDP {
        b[24..26].copy_from_slice(&((l4 + payload.len()) as u16).to_be_bytes());
    } else {
        b[32] = 0x50;
    }
    b[20 + l4..].copy_from_slice(payload);
    let c = checksum(0, &b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    let at = 20 + if proto == PROTO_UDP { 6 } else { 16 };
    let c = l4_check(&b, proto);
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    b
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (any::<u32>(), 1..=u16::MAX).prop_map(|(a, p)| Endpoint::new(a, p))
}

#[test]
fn short_or_foreign_headers_are_refused() {
    let mut b = build(PROTO_TCP, Endpoint::new(1, 2), Endpoint::new(3, 4), b"");
    assert!(Packet::new(&mut b[..39], false).is_none());
    assert!(packet::tuple(&b[..39]).is_none());
    b[9] = 1; // ICMP
    assert!(packet::tuple(&b).is_none());
    b[9] = PROTO_TCP;
    b[0] = 0x44; // header length 16
    assert!(packet::tuple(&b).is_none());
    b[0] = 0x65; // IPv6
    assert!(packet::tuple(&b).is_none());
}

proptest! {
    #[test]
    fn rewrite_keeps_checksums_valid(udp in any::<bool>(), dst in any::<bool>(),
                                     a in endpoint(), b in endpoint(), to in endpoint(),
                                     payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let mut pkt = build(proto, a, b, &payload);
        let (from, want) = if dst {
            (b, build(proto, a, to, &payload))
        } else {
            (a, build(proto, to, b, &payload))
        };
        let sum_before = words(&pkt[20..]);
        let hdr_len = 20 + if udp { 8 } else { 20 };
        let change = {
            let mut p = Packet::new(&mut pkt[..hdr_len], false).unwrap();
            let c = p.rewrite(dst, from, to);
            let t = p.tuple();
            prop_assert_eq!(t, Tuple { proto, src: if dst { a } else { to }, dst: if dst { to } else { b } });
            c
        };
        prop_assert_eq!(be16(&pkt, 10), be16(&want, 10));
        let at = 20 + if udp { 6 } else { 16 };
        prop_assert!(same(be16(&pkt, at), be16(&want, at)));
        prop_assert_eq!(&pkt[..at], &want[..at]);
        // CHECKSUM_COMPLETE: the sum over the transport header and payload,
        // adjusted by the change, is the sum over the new bytes (also when
        // the port changed with the address).
        let adjusted = match change {
            Some(c) => add(add(sum_before, !c.old), c.new),
            None => sum_before,
        };
        prop_assert!(same(fold(adjusted), fold(words(&pkt[20..]))));
        prop_assert_eq!(change.is_some(), from.addr != to.addr);
    }

    #[test]
    fn partial_checksum_follows_the_pseudo_header(a in endpoint(), b in endpoint(), to in endpoint()) {
        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum.
        let mut pkt = build(PROTO_TCP, a, b, b"");
        let pseudo = |p: &[u8]| fold(add(add(words(&p[12..20]), u16::from(PROTO_TCP)), 20));
        let field = pseudo(&pkt);
        pkt[36..38].copy_from_slice(&field.to_be_bytes());
        Packet::new(&mut pkt[..40], true).unwrap().rewrite(false, a, to);
        prop_assert!(same(be16(&pkt, 36), pseudo(&pkt)));
    }
}
