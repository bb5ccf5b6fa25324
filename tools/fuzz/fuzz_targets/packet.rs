// SPDX-License-Identifier: GPL-2.0
//! Packet headers as the hooks see them (packet.rs): any bytes parse
//! without a panic, and rewriting an endpoint of a packet that parses keeps
//! it parsing, with the new endpoint in its tuple.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::{
    packet::{self, Packet},
    vcmp::Endpoint,
};

fuzz_target!(|input: &[u8]| {
    if input.len() < 8 {
        return;
    }
    let (ctl, hdr) = input.split_at(8);
    let _ = packet::tuple(hdr);
    let mut b = hdr.to_vec();
    let partial = ctl[0] & 1 != 0;
    let dst = ctl[0] & 2 != 0;
    let to = Endpoint::new(
        u32::from_be_bytes([ctl[1], ctl[2], ctl[3], ctl[4]]),
        u16::from_be_bytes([ctl[5], ctl[6]]),
    );
    let Some(mut p) = Packet::new(&mut b, partial) else {
        return;
    };
    let before = p.tuple();
    let from = if dst { before.dst } else { before.src };
    let _ = p.rewrite(dst, from, to);
    let after = p.tuple();
    assert_eq!(if dst { after.dst } else { after.src }, to);
    assert_eq!(
        if dst { after.src } else { after.dst },
        if dst { before.src } else { before.dst }
    );
    assert_eq!(after.proto, before.proto);
    assert!(Packet::new(&mut b, partial).is_some());
});
