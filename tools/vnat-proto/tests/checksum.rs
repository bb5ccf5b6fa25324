// SPDX-License-Identifier: GPL-2.0

//! Incremental checksum updates equal checksums computed from scratch, for
//! IPv4 headers and for TCP/UDP segments whose addresses and ports change,
//! in full and in partial (CHECKSUM_PARTIAL) form.

use proptest::prelude::*;
use vnat_proto::checksum::*;

/// 0x0000 and 0xffff are the same one's complement number.
fn same(a: u16, b: u16) -> bool {
    a == b || (a == 0 || a == 0xffff) && (b == 0 || b == 0xffff)
}

fn pseudo_sum(src: u32, dst: u32, proto: u8, len: u16) -> u32 {
    let mut s = 0;
    for w in [
        (src >> 16) as u16,
        src as u16,
        (dst >> 16) as u16,
        dst as u16,
        proto as u16,
        len,
    ] {
        s = add(s, w);
    }
    s
}

/// A transport segment's full checksum over pseudo header + segment, with
/// the checksum field (at `at`) taken as zero.
fn l4_checksum(src: u32, dst: u32, proto: u8, seg: &[u8], at: usize) -> u16 {
    let mut seg = seg.to_vec();
    seg[at] = 0;
    seg[at + 1] = 0;
    checksum(pseudo_sum(src, dst, proto, seg.len() as u16), &seg)
}

#[test]
fn known_ipv4_header() {
    // The example header of RFC 1071 style tutorials: 45 00 00 73 00 00 40 00 40 11 .. c0 a8 00 01 c0 a8 00 c7
    let h = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(checksum(0, &h), 0xb861);
}

proptest! {
    #[test]
    fn ipv4_header_address_change(mut h in proptest::array::uniform20(any::<u8>()), new in any::<u32>(), which in 0usize..2) {
        h[10] = 0;
        h[11] = 0;
        let c = checksum(0, &h);
        let at = 12 + 4 * which;
        let old = u32::from_be_bytes(h[at..at + 4].try_into().unwrap());
        h[at..at + 4].copy_from_slice(&new.to_be_bytes());
        let inc = replace32(c, old, new, Summed::Full, false);
        prop_assert!(same(inc, checksum(0, &h)), "incremental {inc:#x}");
    }

    #[test]
    fn segment_address_and_port_change(
        seg in proptest::collection::vec(any::<u8>(), 20..200),
        src in any::<u32>(), dst in any::<u32>(),
        new_src in any::<u32>(), new_port in any::<u16>(), udp in any::<bool>(),
    ) {
        let (proto, at) = if udp { (17u8, 6usize) } else { (6u8, 16usize) };
        let mut seg = seg;
        let c = l4_checksum(src, dst, proto, &seg, at);
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        // Full: rewrite the source address (pseudo header) and source port.
        let old_port = u16::from_be_bytes([seg[0], seg[1]]);
        let c1 = replace32(c, src, new_src, Summed::Full, true);
        let c2 = replace16(c1, old_port, new_port, Summed::Full);
        seg[0..2].copy_from_slice(&new_port.to_be_bytes());
        prop_assert!(same(c2, l4_checksum(new_src, dst, proto, &seg, at)));
    }

    #[test]
    fn partial_tracks_the_pseudo_header(src in any::<u32>(), dst in any::<u32>(), new_dst in any::<u32>(),
                                        len in 20u16..65535, port in any::<u16>(), new_port in any::<u16>()) {
        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum.
        let field = fold(pseudo_sum(src, dst, 6, len));
        let f1 = replace32(field, dst, new_dst, Summed::Partial, true);
        prop_assert!(same(f1, fold(pseudo_sum(src, new_dst, 6, len))));
        // Ports are not in the pseudo header: the field stays.
        prop_assert_eq!(replace16(f1, port, new_port, Summed::Partial), f1);
    }

    #[test]
    fn complete_csum_follows_the_rewrite(seg in proptest::collection::vec(any::<u8>(), 20..200),
                                         src in any::<u32>(), dst in any::<u32>(), new_dst in any::<u32>()) {
        // CHECKSUM_COMPLETE: skb->csum is the unfolded sum over the segment,
        // checksum field included. After an address rewrite changes the
        // field, the adjusted csum equals the sum over the new bytes.
        let words = |b: &[u8]| b.chunks(2).fold(0u32, |s, c| add(s, u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])));
        let mut seg = seg;
        let c = l4_checksum(src, dst, 6, &seg, 16);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        let csum = words(&seg);
        let c1 = replace32(c, dst, new_dst, Summed::Full, true);
        seg[16..18].copy_from_slice(&c1.to_be_bytes());
        let adjusted = complete_adjust(csum, c, c1);
        prop_assert!(same(fold(adjusted), fold(words(&seg))));
        prop_assert!(same(c1, l4_checksum(src, new_dst, 6, &seg, 16)));
    }
}
