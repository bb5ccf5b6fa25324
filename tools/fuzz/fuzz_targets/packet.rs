// SPDX-License-Identifier: GPL-2.0
//! Packet headers as the hooks see them (packet.rs): any bytes parse
//! without a panic, and rewriting an endpoint of a packet that parses keeps
//! it parsing, with the new endpoint in its tuple; a rewrite into the other
//! family (an IPv4 endpoint into an IPv6 packet, or the reverse) is refused
//! and changes no byte.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::{
    packet::{self, Packet, WrongFamily},
    vcmp::Endpoint,
};

/// Bytes of control before the packet (as in `seeds/packet/`): flags, an
/// IPv4 address (4), a port (2), one more byte for an IPv6 address.
const CTL: usize = 8;

fuzz_target!(|input: &[u8]| {
    if input.len() < CTL {
        return;
    }
    let (ctl, hdr) = input.split_at(CTL);
    let _ = packet::tuple(hdr);
    let _ = packet::opens_connection(hdr);
    let mut b = hdr.to_vec();
    let partial = ctl[0] & 1 != 0;
    let dst = ctl[0] & 2 != 0;
    // The other family's endpoint instead of the packet's.
    let cross = ctl[0] & 4 != 0;
    // `from` of the other family rather than `to`.
    let cross_from = ctl[0] & 8 != 0;
    // An IPv6 `to` in 2001:db8::/32 rather than next to `from`.
    let doc = ctl[0] & 16 != 0;
    let port = u16::from_be_bytes([ctl[5], ctl[6]]);
    let to4 = Endpoint::new(u32::from_be_bytes([ctl[1], ctl[2], ctl[3], ctl[4]]), port);
    let Some(mut p) = Packet::new(&mut b, partial) else {
        return;
    };
    let before = p.tuple();
    let from = if dst { before.dst } else { before.src };
    let v6 = hdr[0] >> 4 == 6;
    // An IPv6 address: `from`'s (or 2001:db8::) with the control's IPv4
    // address as its last four bytes and one more byte in its middle;
    // kept IPv6 if that made it IPv4-mapped.
    let mut ip6 = if doc {
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    } else {
        from.octets16()
    };
    ip6[12..].copy_from_slice(&ctl[1..5]);
    ip6[8] ^= ctl[7];
    if ip6[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
        ip6[0] = 0x20;
    }
    let to6 = Endpoint::from_v6(ip6, port);
    assert!(to6.is_v6());
    let (own, other) = if v6 { (to6, to4) } else { (to4, to6) };
    // An IPv6 packet with an IPv4-mapped address reads as IPv4 there.
    if from.is_v6() != v6 || cross {
        let r = if from.is_v6() != v6 {
            p.rewrite(dst, from, own)
        } else if cross_from {
            p.rewrite(dst, other.with_port(from.port), own)
        } else {
            p.rewrite(dst, from, other)
        };
        assert_eq!(r, Err(WrongFamily));
        assert_eq!(b, hdr, "a refused rewrite changes nothing");
        return;
    }
    let r = p.rewrite(dst, from, own);
    assert!(r.is_ok());
    let after = p.tuple();
    assert_eq!(if dst { after.dst } else { after.src }, own);
    assert_eq!(
        if dst { after.src } else { after.dst },
        if dst { before.src } else { before.dst }
    );
    assert_eq!(after.proto, before.proto);
    assert!(Packet::new(&mut b, partial).is_some());
    assert_eq!(b.len(), hdr.len());
});
