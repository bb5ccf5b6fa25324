// SPDX-License-Identifier: GPL-2.0

//! Rewriting a packet's endpoints (what the hooks do to a migrated
//! connection's packets) leaves the IPv4 header checksum and the TCP or UDP
//! checksum equal to ones computed from scratch, in full and partial form,
//! over IPv4 and over IPv6 (with extension headers before the transport
//! header), and tells a CHECKSUM_COMPLETE packet's sum what it must add; a
//! rewrite into the other family changes nothing.

use proptest::prelude::*;
use vnat_proto::{
    checksum::{add, checksum, fold},
    mapping::{Edit, Tuple, WireKey, PROTO_TCP, PROTO_UDP},
    packet::{self, Packet, Refused, WrongFamily},
    vcmp::Endpoint,
};

/// IPv6 extension headers (RFC 8200 4.1).
const HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const ESP: u8 = 50;
const AH: u8 = 51;
const NO_NEXT: u8 = 59;
const DEST: u8 = 60;

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

fn l4_len(proto: u8) -> usize {
    if proto == PROTO_UDP {
        8
    } else {
        20
    }
}

/// Offset of the checksum field in the transport header.
fn check_off(proto: u8) -> usize {
    if proto == PROTO_UDP {
        6
    } else {
        16
    }
}

/// The checksum of the transport segment at `pkt[l4..]` computed from
/// scratch (field zeroed), its pseudo header summing to `pseudo`.
fn l4_check(pkt: &[u8], l4: usize, proto: u8, pseudo: u32) -> u16 {
    let mut seg = pkt[l4..].to_vec();
    let at = check_off(proto);
    seg[at] = 0;
    seg[at + 1] = 0;
    checksum(pseudo, &seg)
}

/// A UDP checksum that comes out zero is sent as 0xffff: zero means none
/// (RFC 768).
fn udp_nonzero(proto: u8, c: u16) -> u16 {
    if proto == PROTO_UDP && c == 0 {
        0xffff
    } else {
        c
    }
}

/// The sum of an IPv4 pseudo header: both addresses, protocol, length.
fn pseudo4(pkt: &[u8], proto: u8) -> u32 {
    add(
        add(words(&pkt[12..20]), u16::from(proto)),
        (pkt.len() - 20) as u16,
    )
}

/// The sum of an IPv6 pseudo header (RFC 8200 8.1): source, destination
/// (the final one), upper-layer length as 32 bits, three zero bytes and
/// the next header, the transport protocol.
fn pseudo6(src: &[u8; 16], dst: &[u8; 16], len: usize, proto: u8) -> u32 {
    let mut p = Vec::new();
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    words(&p)
}

fn v4(e: &Endpoint) -> [u8; 4] {
    e.v4().expect("an IPv4 endpoint").to_be_bytes()
}

/// The transport header and payload of `proto` from `src` to `dst`, the
/// checksum field zero.
fn segment(proto: u8, src: &Endpoint, dst: &Endpoint, payload: &[u8]) -> Vec<u8> {
    let l4 = l4_len(proto);
    let mut s = vec![0u8; l4 + payload.len()];
    s[0..2].copy_from_slice(&src.port.to_be_bytes());
    s[2..4].copy_from_slice(&dst.port.to_be_bytes());
    if proto == PROTO_UDP {
        s[4..6].copy_from_slice(&((l4 + payload.len()) as u16).to_be_bytes());
    } else {
        s[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        s[12] = 0x50;
        s[13] = 0x18; // PSH, ACK
        s[14..16].copy_from_slice(&64240u16.to_be_bytes());
    }
    s[l4..].copy_from_slice(payload);
    s
}

/// An IPv4 packet of `proto` from `src` to `dst` with `payload`, with valid
/// checksums.
fn build(proto: u8, src: Endpoint, dst: Endpoint, payload: &[u8]) -> Vec<u8> {
    let seg = segment(proto, &src, &dst, payload);
    let len = 20 + seg.len();
    let mut b = vec![0u8; 20];
    b[0] = 0x45;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[8] = 64;
    b[9] = proto;
    b[12..16].copy_from_slice(&v4(&src));
    b[16..20].copy_from_slice(&v4(&dst));
    b.extend_from_slice(&seg);
    let c = checksum(0, &b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    let at = 20 + check_off(proto);
    let c = udp_nonzero(proto, l4_check(&b, 20, proto, pseudo4(&b, proto)));
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    b
}

/// An IPv6 extension header: its type, its length in 8-octet units not
/// counting the first (the field as on the wire), and for a routing
/// header the segments left.
#[derive(Clone, Copy, Debug)]
struct Ext {
    kind: u8,
    len8: u8,
    segments_left: u8,
}

/// Options of `n` bytes: Pad1 and PadN only (RFC 8200 4.2).
fn padding(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    while v.len() < n {
        let rest = n - v.len();
        if rest == 1 {
            v.push(0);
        } else {
            let k = rest.min(257);
            v.push(1);
            v.push((k - 2) as u8);
            v.extend(std::iter::repeat_n(0, k - 2));
        }
    }
    v
}

/// An IPv6 address that is neither IPv4-mapped nor anything the tests
/// use as an endpoint: what a routing header lists.
fn segment_addr(i: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[4] = 0xee;
    a[15] = i as u8;
    a
}

/// A built IPv6 packet and where its transport header starts.
struct Built6 {
    bytes: Vec<u8>,
    l4: usize,
}

/// An IPv6 packet of `proto` from `src` to `dst` with `payload`, the
/// extension headers `exts` before the transport header, with a valid
/// transport checksum. A routing header is a segment routing header (type
/// 4, RFC 8754): with segments left, its first segment is the final
/// destination, the checksum's (RFC 8200 8.1); else `dst` is.
fn build6(proto: u8, src: Endpoint, dst: Endpoint, exts: &[Ext], payload: &[u8]) -> Built6 {
    assert!(src.is_v6() && dst.is_v6());
    let seg = segment(proto, &src, &dst, payload);
    let mut b = vec![0u8; 40];
    b[0] = 0x60;
    b[1..4].copy_from_slice(&[0x0a, 0xbc, 0xde]);
    b[6] = exts.first().map_or(proto, |e| e.kind);
    b[7] = 64;
    b[8..24].copy_from_slice(&src.octets16());
    b[24..40].copy_from_slice(&dst.octets16());
    let mut final_dst = dst.octets16();
    for (i, e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, |n| n.kind);
        let len = (usize::from(e.len8) + 1) * 8;
        let mut h = vec![next, e.len8];
        if e.kind == ROUTING {
            let n = usize::from(e.len8) / 2;
            h.extend([4, e.segments_left, n.saturating_sub(1) as u8, 0, 0, 0]);
            for k in 0..n {
                let a = segment_addr(k);
                if k == 0 && e.segments_left > 0 {
                    final_dst = a;
                }
                h.extend_from_slice(&a);
            }
            h.resize(len, 0);
        } else {
            h.extend(padding(len - 2));
        }
        assert_eq!(h.len(), len);
        b.extend_from_slice(&h);
    }
    let l4 = b.len();
    b.extend_from_slice(&seg);
    let plen = b.len() - 40;
    b[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    let pseudo = pseudo6(&src.octets16(), &final_dst, seg.len(), proto);
    let c = udp_nonzero(proto, l4_check(&b, l4, proto, pseudo));
    let at = l4 + check_off(proto);
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Built6 { bytes: b, l4 }
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (any::<u32>(), 1..=u16::MAX).prop_map(|(a, p)| Endpoint::new(a, p))
}

/// An IPv6 endpoint: any address but IPv4-mapped ones (which are IPv4).
fn endpoint6() -> impl Strategy<Value = Endpoint> {
    (
        prop_oneof![
            any::<[u8; 16]>(),
            // Few distinct addresses, so that some rewrites keep theirs.
            (0u8..3).prop_map(|i| segment_addr(100 + usize::from(i))),
            // ::a.b.c.d (IPv4-compatible): IPv6 all the same.
            any::<[u8; 4]>().prop_map(|a| {
                let mut ip = [0u8; 16];
                ip[12..].copy_from_slice(&a);
                ip
            }),
        ],
        1..=u16::MAX,
    )
        .prop_map(|(ip, p)| Endpoint::from_v6(ip, p))
        .prop_filter("IPv6", Endpoint::is_v6)
}

/// Extension headers the parser skips, of various lengths (routing
/// headers with no segment left: those with some are not translated).
fn exts() -> impl Strategy<Value = Vec<Ext>> {
    proptest::collection::vec(
        (
            prop_oneof![Just(HOP), Just(DEST), Just(ROUTING)],
            prop_oneof![0u8..4, 4u8..40, Just(255)],
        )
            .prop_map(|(kind, len8)| Ext {
                kind,
                len8,
                segments_left: 0,
            }),
        0..=8,
    )
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
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
    assert!(packet::tuple(&[]).is_none());
    assert!(packet::tuple(&[0x60; 39]).is_none());
}

/// A TCP packet over IPv6 with a hop-by-hop, a routing and a destination
/// options header reads as its endpoints, and a SYN opens a connection.
#[test]
fn v6_tuple_with_extension_headers() {
    let src = Endpoint::from_v6(
        [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        40000,
    );
    let dst = Endpoint::from_v6(
        [0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        5000,
    );
    assert_eq!(src.to_string(), "[2001:db8:1::2]:40000");
    let ext = |kind, len8| Ext {
        kind,
        len8,
        segments_left: 0,
    };
    let mut p = build6(
        PROTO_TCP,
        src,
        dst,
        &[ext(HOP, 0), ext(ROUTING, 2), ext(DEST, 1)],
        b"vnat",
    );
    assert_eq!(p.l4, 40 + 8 + 24 + 16);
    assert_eq!(&p.bytes[p.l4 - 16..p.l4 - 14], &[PROTO_TCP, 1]);
    let want = Tuple {
        proto: PROTO_TCP,
        src,
        dst,
    };
    assert_eq!(packet::tuple(&p.bytes), Some(want));
    assert!(!packet::opens_connection(&p.bytes));
    let l4 = p.l4;
    p.bytes[l4 + 13] = 0x02; // SYN
    assert!(packet::opens_connection(&p.bytes));
    p.bytes[l4 + 13] = 0x12; // SYN, ACK
    assert!(!packet::opens_connection(&p.bytes));
    let hdr_len = l4 + 20;
    let pkt = Packet::new(&mut p.bytes[..hdr_len], false).unwrap();
    assert_eq!(pkt.tuple(), want);
    // Without the last byte of the TCP header: not whole.
    assert!(packet::tuple(&p.bytes[..hdr_len - 1]).is_none());
    let u = build6(PROTO_UDP, src, dst, &[ext(DEST, 0)], b"");
    assert_eq!(
        packet::tuple(&u.bytes),
        Some(Tuple {
            proto: PROTO_UDP,
            ..want
        })
    );
    assert!(!packet::opens_connection(&u.bytes));
}

/// A fragment header, AH, ESP, "no next header" or an unknown one, after
/// any extension headers the parser skips: not translated.
#[test]
fn v6_headers_not_skipped_are_refused() {
    let src = Endpoint::from_v6(segment_addr(1), 1);
    let dst = Endpoint::from_v6(segment_addr(2), 2);
    for before in [
        vec![],
        vec![(HOP, 0)],
        vec![(HOP, 1), (DEST, 0), (ROUTING, 2)],
    ] {
        for stop in [FRAGMENT, AH, ESP, NO_NEXT, 1, 58, 132, 253] {
            let mut exts: Vec<Ext> = before
                .iter()
                .map(|&(kind, len8)| Ext {
                    kind,
                    len8,
                    segments_left: 0,
                })
                .collect();
            // AH's length counts 4-octet units, the others' 8: as a
            // 16-byte header either way, the TCP header would follow it.
            exts.push(Ext {
                kind: stop,
                len8: 1,
                segments_left: 0,
            });
            for proto in [PROTO_TCP, PROTO_UDP] {
                let mut p = build6(proto, src, dst, &exts, &[0; 32]);
                assert!(packet::tuple(&p.bytes).is_none(), "{before:?} {stop}");
                assert!(!packet::opens_connection(&p.bytes));
                assert!(Packet::new(&mut p.bytes, false).is_none());
            }
        }
    }
}

/// Eight extension headers are skipped; a ninth is one too many.
#[test]
fn v6_at_most_eight_extension_headers() {
    let src = Endpoint::from_v6(segment_addr(1), 1);
    let dst = Endpoint::from_v6(segment_addr(2), 2);
    for n in 0..=12 {
        let exts: Vec<Ext> = (0..n)
            .map(|i| Ext {
                kind: [HOP, DEST, ROUTING][i % 3],
                len8: (i % 2) as u8,
                segments_left: 0,
            })
            .collect();
        let p = build6(PROTO_TCP, src, dst, &exts, b"");
        assert_eq!(packet::tuple(&p.bytes).is_some(), n <= 8, "{n} headers");
    }
}

/// A routing header with segments left: the destination in the IPv6
/// header is the next segment, not the connection's, and the transport
/// checksum covers the final one (RFC 8200 8.1): not translated.
#[test]
fn v6_routing_header_with_segments_left_is_refused() {
    let src = Endpoint::from_v6(segment_addr(1), 1);
    let dst = Endpoint::from_v6(segment_addr(2), 2);
    for left in [1, 2, 255] {
        for before in [vec![], vec![HOP]] {
            let mut exts: Vec<Ext> = before
                .iter()
                .map(|&kind| Ext {
                    kind,
                    len8: 0,
                    segments_left: 0,
                })
                .collect();
            exts.push(Ext {
                kind: ROUTING,
                len8: 4,
                segments_left: left,
            });
            let mut p = build6(PROTO_TCP, src, dst, &exts, b"");
            assert!(packet::tuple(&p.bytes).is_none(), "{left} left");
            assert!(Packet::new(&mut p.bytes, false).is_none());
        }
    }
}

/// An IPv6 packet with an IPv4-mapped address (not to be seen on the
/// wire, RFC 4291 2.5.5.2) is of the other family than the endpoint
/// read from that address: no rewrite of that end changes a byte, and the
/// other end's rewrite leaves the mapped address as it is.
#[test]
fn v6_packet_with_a_mapped_address_keeps_it() {
    let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 2];
    let v4 = Endpoint::new(0x0a00_0102, 40000);
    let dst = Endpoint::from_v6(segment_addr(2), 5000);
    let other = Endpoint::from_v6(segment_addr(3), 5001);
    // Built with an IPv6 source, then given the mapped one (the checksum
    // does not matter here).
    let mut p = build6(
        PROTO_TCP,
        Endpoint::from_v6(segment_addr(1), 40000),
        dst,
        &[],
        b"",
    );
    p.bytes[8..24].copy_from_slice(&mapped);
    let before = p.bytes.clone();
    let Some(t) = packet::tuple(&p.bytes) else {
        // Refusing the packet is as good.
        return;
    };
    assert_eq!((t.src, t.dst), (v4, dst));
    let mut pkt = Packet::new(&mut p.bytes, false).unwrap();
    for to in [v4, Endpoint::new(0x0a00_0202, 1), other] {
        assert_eq!(pkt.rewrite(false, t.src, to), Err(WrongFamily), "{to}");
    }
    assert_eq!(p.bytes, before);
    let mut pkt = Packet::new(&mut p.bytes, false).unwrap();
    assert!(pkt.rewrite(true, dst, other).is_ok());
    assert_eq!(pkt.tuple().dst, other);
    assert_eq!(p.bytes[8..24], mapped);
}

/// A UDP datagram without a checksum (zero) keeps none when rewritten,
/// over either family, and tells a CHECKSUM_COMPLETE sum nothing.
#[test]
fn udp_without_checksum_keeps_none() {
    let (a4, b4, c4) = (
        Endpoint::new(0x0a00_0102, 1),
        Endpoint::new(0x0a00_0902, 2),
        Endpoint::new(0x0a00_0202, 3),
    );
    let (a6, b6, c6) = (
        Endpoint::from_v6(segment_addr(1), 1),
        Endpoint::from_v6(segment_addr(2), 2),
        Endpoint::from_v6(segment_addr(3), 3),
    );
    let hop = [Ext {
        kind: HOP,
        len8: 0,
        segments_left: 0,
    }];
    for (mut pkt, l4, a, b, c) in [
        (build(PROTO_UDP, a4, b4, b"x"), 20, a4, b4, c4),
        (build6(PROTO_UDP, a6, b6, &hop, b"x").bytes, 48, a6, b6, c6),
    ] {
        pkt[l4 + 6] = 0;
        pkt[l4 + 7] = 0;
        let mut p = Packet::new(&mut pkt, false).unwrap();
        assert_eq!(p.rewrite(false, a, c), Ok(None));
        assert_eq!(p.rewrite(true, b, a), Ok(None));
        assert_eq!(
            p.tuple(),
            Tuple {
                proto: PROTO_UDP,
                src: c,
                dst: a
            }
        );
        assert_eq!(be16(&pkt, l4 + 6), 0);
    }
}

/// `to`, or with `keep`'s bits: its address (1, 4) or its port (2, 8)
/// those of `from` (the source's: bits 1 and 2, the destination's: 4, 8).
fn kept(from: &Tuple, to: &Tuple, keep: u8) -> Tuple {
    let side = |f: Endpoint, t: Endpoint, addr: bool, port: bool| Endpoint {
        addr: if addr { f.addr } else { t.addr },
        port: if port { f.port } else { t.port },
    };
    Tuple {
        proto: from.proto,
        src: side(from.src, to.src, keep & 1 != 0, keep & 2 != 0),
        dst: side(from.dst, to.dst, keep & 4 != 0, keep & 8 != 0),
    }
}

/// An IPv4 endpoint, often one whose words sum to nothing when replaced
/// (all ones by all zeros, and the reverse): the two zeros' edge.
fn edge4() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        endpoint(),
        Just(Endpoint::new(u32::MAX, u16::MAX)),
        Just(Endpoint::new(0, 0)),
        Just(Endpoint::new(u32::MAX, 0)),
        Just(Endpoint::new(0, u16::MAX)),
    ]
}

/// A checksum field as a packet may carry it, the two zeros included.
fn field() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(0xffff), any::<u16>()]
}

proptest! {
    /// What the hooks do, a rule's rewrite with the checksums' changes
    /// worked out when the rule was made (`Packet::apply`), leaves the very
    /// bytes, and tells the very changes, of `Packet::rewrite` for each
    /// endpoint that changes, one after the other (whose checksums the
    /// tests below check against ones computed from scratch): for both
    /// families, both protocols, full and partial checksums, and any
    /// value the checksum fields may hold. The key a hook reads is the
    /// table's key of the packet's tuple, and gives the socket lookups its
    /// endpoints.
    #[test]
    fn apply_is_rewrite(udp in any::<bool>(), v6 in any::<bool>(), partial in any::<bool>(),
                        e4 in (edge4(), edge4(), edge4(), edge4()),
                        e6 in (endpoint6(), endpoint6(), endpoint6(), endpoint6()),
                        keep in 0u8..16, checks in (field(), field()), exts in exts(), payload in payload()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let (a, b, c, d) = if v6 { e6 } else { e4 };
        let (mut pkt, l4) = if v6 {
            let Built6 { bytes, l4 } = build6(proto, a, b, &exts, &payload);
            (bytes, l4)
        } else {
            (build(proto, a, b, &payload), 20)
        };
        let at = l4 + check_off(proto);
        pkt[at..at + 2].copy_from_slice(&checks.0.to_be_bytes());
        if !v6 {
            pkt[10..12].copy_from_slice(&checks.1.to_be_bytes());
        }
        let from = Tuple { proto, src: a, dst: b };
        let to = kept(&from, &Tuple { proto, src: c, dst: d }, keep);
        let read = packet::read_key(&pkt).unwrap();
        prop_assert_eq!(read.key, WireKey::from(&from));
        prop_assert_eq!(read.key.tuple(), from);
        // What the socket lookups are given: addresses in 16 bytes (IPv4
        // mapped), ports in network order.
        prop_assert_eq!(read.key.lookup_form(),
                        (from.src.octets16(), from.src.port.to_be(), from.dst.octets16(), from.dst.port.to_be()));
        prop_assert_eq!(read.len, l4 + l4_len(proto));

        let mut want = pkt.clone();
        let mut p = Packet::new(&mut want, partial).unwrap();
        let mut changes = [None, None];
        if from.src != to.src {
            changes[0] = p.rewrite(false, from.src, to.src).unwrap();
        }
        if from.dst != to.dst {
            changes[1] = p.rewrite(true, from.dst, to.dst).unwrap();
        }
        let edit = Edit::new(&from, &to);
        prop_assert_eq!(edit.is_noop(), from == to);
        prop_assert_eq!(edit.moves_dst(), from.dst.addr != to.dst.addr);
        // Another packet than the rule's is refused, unchanged.
        let other = WireKey::from(&Tuple { proto: if udp { PROTO_TCP } else { PROTO_UDP }, ..from });
        let before = pkt.clone();
        prop_assert_eq!(Packet::new(&mut pkt, partial).unwrap().apply(&other, &to, &edit), Err(Refused::OtherPacket));
        prop_assert_eq!(&pkt, &before);
        let got = Packet::new(&mut pkt, partial).unwrap().apply(&read.key, &to, &edit);
        prop_assert_eq!(got, Ok(changes));
        prop_assert_eq!(&pkt, &want);
    }

    #[test]
    fn rewrite_keeps_checksums_valid(udp in any::<bool>(), dst in any::<bool>(),
                                     a in endpoint(), b in endpoint(), to in endpoint(),
                                     payload in payload()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let mut pkt = build(proto, a, b, &payload);
        let (from, want) = if dst {
            (b, build(proto, a, to, &payload))
        } else {
            (a, build(proto, to, b, &payload))
        };
        let sum_before = words(&pkt[20..]);
        let hdr_len = 20 + l4_len(proto);
        let change = {
            let mut p = Packet::new(&mut pkt[..hdr_len], false).unwrap();
            let c = p.rewrite(dst, from, to);
            let t = p.tuple();
            prop_assert_eq!(t, Tuple { proto, src: if dst { a } else { to }, dst: if dst { to } else { b } });
            c
        };
        prop_assert!(change.is_ok());
        let change = change.unwrap();
        prop_assert_eq!(be16(&pkt, 10), be16(&want, 10));
        let at = 20 + check_off(proto);
        prop_assert!(same(be16(&pkt, at), be16(&want, at)));
        prop_assert_eq!(&pkt[..at], &want[..at]);
        prop_assert_eq!(&pkt[at + 2..], &want[at + 2..]);
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
        let pseudo = |p: &[u8]| fold(pseudo4(p, PROTO_TCP));
        let field = pseudo(&pkt);
        pkt[36..38].copy_from_slice(&field.to_be_bytes());
        let r = Packet::new(&mut pkt[..40], true).unwrap().rewrite(false, a, to);
        prop_assert!(r.is_ok());
        prop_assert!(same(be16(&pkt, 36), pseudo(&pkt)));
    }

    /// Over IPv6, with extension headers: the transport checksum is the one
    /// computed from scratch with the new 128-bit address in the pseudo
    /// header, every other byte is the new packet's, the tuple is the new
    /// one, and a CHECKSUM_COMPLETE sum needs no change: at the hooks it
    /// still covers the IPv6 header, whose address change cancels the
    /// transport checksum's (as `inet_proto_csum_replace16()` leaves
    /// `skb->csum`).
    #[test]
    fn v6_rewrite_keeps_checksums_valid(udp in any::<bool>(), dst in any::<bool>(),
                                        a in endpoint6(), b in endpoint6(), to in endpoint6(),
                                        exts in exts(), payload in payload()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let Built6 { bytes: mut pkt, l4 } = build6(proto, a, b, &exts, &payload);
        prop_assert_eq!(packet::tuple(&pkt), Some(Tuple { proto, src: a, dst: b }));
        let (from, want) = if dst {
            (b, build6(proto, a, to, &exts, &payload).bytes)
        } else {
            (a, build6(proto, to, b, &exts, &payload).bytes)
        };
        let sum_before = words(&pkt);
        let hdr_len = l4 + l4_len(proto);
        let change = {
            let mut p = Packet::new(&mut pkt[..hdr_len], false).unwrap();
            let c = p.rewrite(dst, from, to);
            let t = p.tuple();
            prop_assert_eq!(t, Tuple { proto, src: if dst { a } else { to }, dst: if dst { to } else { b } });
            c
        };
        prop_assert!(change.is_ok());
        let change = change.unwrap();
        let at = l4 + check_off(proto);
        prop_assert!(same(be16(&pkt, at), be16(&want, at)), "{:04x} {:04x}", be16(&pkt, at), be16(&want, at));
        prop_assert_eq!(&pkt[..at], &want[..at]);
        prop_assert_eq!(&pkt[at + 2..], &want[at + 2..]);
        prop_assert_eq!(change, None);
        prop_assert!(same(fold(sum_before), fold(words(&pkt))));
        prop_assert_eq!(packet::tuple(&pkt), Some(Tuple { proto, src: if dst { a } else { to }, dst: if dst { to } else { b } }));
    }

    /// Both endpoints rewritten one after the other, as a hook does when a
    /// rule changes both: the result is the packet built from scratch.
    #[test]
    fn v6_rewrite_both_endpoints(udp in any::<bool>(), a in endpoint6(), b in endpoint6(),
                                 c in endpoint6(), d in endpoint6(), exts in exts(), payload in payload()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let Built6 { bytes: mut pkt, l4 } = build6(proto, a, b, &exts, &payload);
        let want = build6(proto, c, d, &exts, &payload).bytes;
        let sum_before = words(&pkt);
        let changes = {
            let mut p = Packet::new(&mut pkt, false).unwrap();
            [p.rewrite(false, a, c).unwrap(), p.rewrite(true, b, d).unwrap()]
        };
        prop_assert_eq!(changes, [None, None]);
        let at = l4 + check_off(proto);
        prop_assert!(same(be16(&pkt, at), be16(&want, at)));
        prop_assert_eq!(&pkt[..at], &want[..at]);
        prop_assert_eq!(&pkt[at + 2..], &want[at + 2..]);
        prop_assert!(same(fold(sum_before), fold(words(&pkt))));
    }

    /// CHECKSUM_PARTIAL over IPv6: the field holds the folded sum of the
    /// pseudo header, and follows the new address, whichever end changed.
    #[test]
    fn v6_partial_checksum_follows_the_pseudo_header(udp in any::<bool>(), dst in any::<bool>(),
                                                     a in endpoint6(), b in endpoint6(), to in endpoint6(),
                                                     exts in exts(), payload in payload()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let Built6 { bytes: mut pkt, l4 } = build6(proto, a, b, &exts, &payload);
        let seg_len = pkt.len() - l4;
        let pseudo = |p: &[u8]| {
            let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
            s.copy_from_slice(&p[8..24]);
            d.copy_from_slice(&p[24..40]);
            fold(pseudo6(&s, &d, seg_len, proto))
        };
        let at = l4 + check_off(proto);
        let field = pseudo(&pkt);
        pkt[at..at + 2].copy_from_slice(&field.to_be_bytes());
        let from = if dst { b } else { a };
        let r = Packet::new(&mut pkt, true).unwrap().rewrite(dst, from, to);
        prop_assert!(r.is_ok());
        prop_assert!(same(be16(&pkt, at), pseudo(&pkt)));
        let want = if dst { (a, to) } else { (to, b) };
        prop_assert_eq!(&pkt[8..24], &want.0.octets16()[..]);
        prop_assert_eq!(&pkt[24..40], &want.1.octets16()[..]);
        let ports = if dst { (a.port, to.port) } else { (to.port, b.port) };
        prop_assert_eq!((be16(&pkt, l4), be16(&pkt, l4 + 2)), ports);
    }

    /// Every prefix of an IPv6 packet that ends before its transport
    /// header does (inside the IPv6 header, an extension header, or the
    /// transport header) is refused; what holds the headers whole reads.
    #[test]
    fn v6_truncated_headers_are_refused(udp in any::<bool>(), a in endpoint6(), b in endpoint6(), exts in exts()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let Built6 { bytes: mut pkt, l4 } = build6(proto, a, b, &exts, &[]);
        let whole = l4 + l4_len(proto);
        prop_assert_eq!(pkt.len(), whole);
        for n in 0..whole {
            prop_assert!(packet::tuple(&pkt[..n]).is_none(), "{} of {} bytes", n, whole);
            prop_assert!(Packet::new(&mut pkt[..n], false).is_none());
        }
        prop_assert!(packet::tuple(&pkt).is_some());
    }

    /// An endpoint of the other family, as `from` or as `to`: refused, and
    /// no byte changes; IPv4 and IPv6 packets alike.
    #[test]
    fn cross_family_rewrite_changes_nothing(udp in any::<bool>(), dst in any::<bool>(), partial in any::<bool>(),
                                            a4 in endpoint(), b4 in endpoint(), a6 in endpoint6(), b6 in endpoint6(),
                                            o4 in endpoint(), o6 in endpoint6(), exts in exts(), payload in payload()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let pkt4 = build(proto, a4, b4, &payload);
        let pkt6 = build6(proto, a6, b6, &exts, &payload).bytes;
        for (pkt, from, ok, other) in [
            (pkt4, if dst { b4 } else { a4 }, o4, o6),
            (pkt6, if dst { b6 } else { a6 }, o6, o4),
        ] {
            let mut b = pkt.clone();
            let mut p = Packet::new(&mut b, partial).unwrap();
            prop_assert_eq!(p.rewrite(dst, from, other), Err(WrongFamily));
            prop_assert_eq!(p.rewrite(dst, other, ok), Err(WrongFamily));
            prop_assert_eq!(p.rewrite(dst, other, other), Err(WrongFamily));
            prop_assert_eq!(p.rewrite(dst, other, from), Err(WrongFamily));
            prop_assert_eq!(&b, &pkt);
            // And of its own family, it is done.
            let mut p = Packet::new(&mut b, partial).unwrap();
            prop_assert!(p.rewrite(dst, from, ok).is_ok());
            prop_assert_eq!(if dst { p.tuple().dst } else { p.tuple().src }, ok);
            // Nor does a rule's edit into the other family do anything.
            let mut b = pkt.clone();
            let t = packet::tuple(&b).unwrap();
            let to = if dst { Tuple { dst: other, ..t } } else { Tuple { src: other, ..t } };
            let mut p = Packet::new(&mut b, partial).unwrap();
            prop_assert_eq!(p.apply(&WireKey::from(&t), &to, &Edit::new(&t, &to)), Err(Refused::WrongFamily));
            prop_assert_eq!(&b, &pkt);
        }
    }
}
