// SPDX-License-Identifier: GPL-2.0

//! ICMP and ICMPv6 errors about a moved connection's packets: the quoted
//! endpoints are read and rewritten, the quoted IPv4 header checksum and
//! the ICMP checksum (with ICMPv6's pseudo header) stay valid, and nothing
//! else is read as an error.

use proptest::prelude::*;
use vnat_proto::{
    checksum::{add, checksum},
    mapping::{Tuple, PROTO_TCP, PROTO_UDP},
    packet::IcmpError,
    vcmp::Endpoint,
};

fn v4(a: u32, p: u16) -> Endpoint {
    Endpoint::new(a, p)
}

fn v6(last: u16, p: u16) -> Endpoint {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[14..].copy_from_slice(&last.to_be_bytes());
    Endpoint::from_v6(a, p)
}

/// The packet quoted: an IP header and the first 8 bytes of TCP or UDP
/// (IPv4, as RFC 792 has it) or 40 of them (IPv6).
fn quote(proto: u8, src: Endpoint, dst: Endpoint) -> Vec<u8> {
    let mut q = if src.is_v6() {
        let mut q = vec![0u8; 40 + 40];
        q[0] = 0x60;
        q[4..6].copy_from_slice(&1400u16.to_be_bytes());
        q[6] = proto;
        q[7] = 64;
        q[8..24].copy_from_slice(&src.octets16());
        q[24..40].copy_from_slice(&dst.octets16());
        q
    } else {
        let mut q = vec![0u8; 20 + 8];
        q[0] = 0x45;
        q[2..4].copy_from_slice(&1500u16.to_be_bytes());
        q[6] = 0x40; // DF
        q[8] = 64;
        q[9] = proto;
        q[12..16].copy_from_slice(&src.octets16()[12..]);
        q[16..20].copy_from_slice(&dst.octets16()[12..]);
        let c = checksum(0, &q[..20]);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        q
    };
    let l4 = if src.is_v6() { 40 } else { 20 };
    q[l4..l4 + 2].copy_from_slice(&src.port.to_be_bytes());
    q[l4 + 2..l4 + 4].copy_from_slice(&dst.port.to_be_bytes());
    q[l4 + 4..l4 + 8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    q
}

/// An error from `router` to `to` quoting `q`: ICMP type 3 code 4
/// (fragmentation needed, MTU 1280) or ICMPv6 type 2 (packet too big).
fn error(router: Endpoint, to: Endpoint, q: &[u8]) -> Vec<u8> {
    let mut msg = vec![0u8; 8];
    let mut b;
    if router.is_v6() {
        msg[0] = 2;
        msg[4..8].copy_from_slice(&1280u32.to_be_bytes());
        msg.extend_from_slice(q);
        b = vec![0u8; 40];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&(msg.len() as u16).to_be_bytes());
        b[6] = 58;
        b[7] = 64;
        b[8..24].copy_from_slice(&router.octets16());
        b[24..40].copy_from_slice(&to.octets16());
    } else {
        msg[0] = 3;
        msg[1] = 4;
        msg[6..8].copy_from_slice(&1280u16.to_be_bytes());
        msg.extend_from_slice(q);
        b = vec![0u8; 20];
        b[0] = 0x45;
        b[2..4].copy_from_slice(&((20 + msg.len()) as u16).to_be_bytes());
        b[8] = 64;
        b[9] = 1;
        b[12..16].copy_from_slice(&router.octets16()[12..]);
        b[16..20].copy_from_slice(&to.octets16()[12..]);
        let c = checksum(0, &b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let at = b.len();
    b.extend_from_slice(&msg);
    let c = icmp_sum(&b, at, 0);
    b[at + 2..at + 4].copy_from_slice(&c.to_be_bytes());
    b
}

/// The ICMP checksum of the message at `at` computed from scratch, its
/// field counted as `field` (0 to compute it, the field to verify: a
/// valid message then sums to 0).
fn icmp_sum(b: &[u8], at: usize, field: u16) -> u16 {
    let mut m = b[at..].to_vec();
    m[2..4].copy_from_slice(&field.to_be_bytes());
    let mut s = 0;
    if b[0] >> 4 == 6 {
        for w in b[8..40].chunks(2) {
            s = add(s, u16::from_be_bytes([w[0], w[1]]));
        }
        s = add(s, m.len() as u16);
        s = add(s, 58);
    }
    checksum(s, &m)
}

fn valid(b: &[u8]) -> bool {
    let at = if b[0] >> 4 == 6 { 40 } else { 20 };
    let field = u16::from_be_bytes([b[at + 2], b[at + 3]]);
    let q = at + 8;
    let quoted_ip_ok = b[0] >> 4 == 6 || checksum(0, &b[q..q + 20]) == 0;
    icmp_sum(b, at, field) == 0 && quoted_ip_ok
}

fn endpoint4() -> impl Strategy<Value = Endpoint> {
    (1u32.., 1u16..).prop_map(|(a, p)| v4(a, p))
}

fn endpoint6() -> impl Strategy<Value = Endpoint> {
    (any::<[u8; 16]>(), 1u16..)
        .prop_filter("not v4-mapped", |(a, _)| {
            a[..12] != [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
        })
        .prop_map(|(a, p)| Endpoint::from_v6(a, p))
}

proptest! {
    /// Rewriting the quote gives the error built from scratch with the new
    /// quote: every checksum valid, the rest unchanged.
    #[test]
    fn rewritten_error_is_the_one_built_with_the_new_quote(
        six in any::<bool>(), udp in any::<bool>(),
        e in proptest::array::uniform6(endpoint4()), f in proptest::array::uniform6(endpoint6())) {
        let [lp, rp, lv, rv, router, _] = if six { f } else { e };
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let mut b = error(router, lp, &quote(proto, lp, rp));
        prop_assert!(valid(&b));
        let want = error(router, lp, &quote(proto, lv, rv));
        let mut err = IcmpError::new(&mut b).expect("an error about a TCP or UDP packet");
        prop_assert_eq!(err.quoted(), Tuple { proto, src: lp, dst: rp });
        let to = Tuple { proto, src: lv, dst: rv };
        prop_assert!(err.rewrite_quoted(to).is_ok());
        prop_assert_eq!(err.quoted(), Tuple { proto, src: lv, dst: rv });
        prop_assert_eq!(&b, &want);
        prop_assert!(valid(&b));
    }

    /// Endpoints of the other family are refused, and change nothing.
    #[test]
    fn other_family_is_refused(e in endpoint4(), f in endpoint6()) {
        let mut b = error(f, f, &quote(PROTO_TCP, f, f));
        let before = b.clone();
        let mut err = IcmpError::new(&mut b).unwrap();
        let to = Tuple { proto: PROTO_TCP, src: e, dst: e };
        prop_assert!(err.rewrite_quoted(to).is_err());
        prop_assert_eq!(b, before);
    }

    /// Any bytes: no panic, and what parses has a quote of TCP or UDP.
    #[test]
    fn any_bytes(mut b in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(err) = IcmpError::new(&mut b) {
            let t = err.quoted();
            prop_assert!(t.proto == PROTO_TCP || t.proto == PROTO_UDP);
        }
    }
}

#[test]
fn not_errors() {
    let (a, b) = (v4(0x0a00_0102, 40000), v4(0x0a00_0902, 5000));
    // An echo request (type 8) quoting nothing is no error.
    let mut echo = error(a, b, &quote(PROTO_TCP, a, b));
    echo[20] = 8;
    assert!(IcmpError::new(&mut echo).is_none());
    // A quote of ICMP itself is not about a connection.
    let mut q = quote(PROTO_TCP, a, b);
    q[9] = 1;
    assert!(IcmpError::new(&mut error(a, b, &q)).is_none());
    // A quote of a fragment after the first holds no ports.
    let mut q = quote(PROTO_UDP, a, b);
    q[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
    assert!(IcmpError::new(&mut error(a, b, &q)).is_none());
    // Truncated quotes hold no ports (the outer header, the ICMP header,
    // the quoted IP header and the ports make 52 bytes).
    let whole = error(a, b, &quote(PROTO_TCP, a, b));
    for n in 0..52 {
        let mut t = whole[..n].to_vec();
        if n >= 4 {
            t[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        }
        assert!(IcmpError::new(&mut t).is_none(), "{n} bytes");
    }
    // An IPv6 error quoting an IPv4 packet is not one.
    let (c, d) = (v6(1, 40000), v6(2, 5000));
    assert!(IcmpError::new(&mut error(c, d, &quote(PROTO_TCP, a, b))).is_none());
}
