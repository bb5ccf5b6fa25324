// SPDX-License-Identifier: GPL-2.0
//! ICMP and ICMPv6 errors as the PREROUTING hook reads them (packet.rs,
//! IcmpError): any bytes parse without a panic, and rewriting the quote of
//! one that parses to endpoints of its family keeps it parsing, with those
//! endpoints quoted.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::{mapping::Tuple, packet::IcmpError, vcmp::Endpoint};

fuzz_target!(|input: &[u8]| {
    if input.len() < 4 {
        return;
    }
    let (ctl, hdr) = input.split_at(4);
    let mut b = hdr.to_vec();
    let Some(mut err) = IcmpError::new(&mut b) else {
        return;
    };
    let q = err.quoted();
    let port = u16::from_be_bytes([ctl[0], ctl[1]]);
    let other = |e: Endpoint| Endpoint::from_ip(e.addr, e.port ^ port);
    let to = Tuple {
        proto: q.proto,
        src: other(q.dst),
        dst: if ctl[2] & 1 != 0 { q.src } else { other(q.src) },
    };
    assert!(err.rewrite_quoted(to).is_ok());
    assert_eq!(err.quoted(), to);
    let again = IcmpError::new(&mut b).expect("still an error");
    assert_eq!(again.quoted(), to);
});
