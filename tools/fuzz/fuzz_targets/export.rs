// SPDX-License-Identifier: GPL-2.0
//! A connection's saved state as conn-import reads it (export.rs): any
//! bytes decode without a panic, and what decodes is exactly the first LEN
//! bytes, which encode back unchanged (so nothing a record holds is lost
//! or altered, and nothing after it is read).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::export::{Refused, Saved, LEN};

fuzz_target!(|b: &[u8]| {
    match Saved::decode(b) {
        Ok((s, n)) => {
            assert_eq!(n, LEN);
            assert_eq!(s.encode()[..], b[..LEN]);
            assert!(Saved::decode(&s.encode()) == Ok((s, LEN)));
        }
        Err(Refused::Truncated) => assert!(b.len() < LEN),
        Err(_) => assert!(b.len() >= 4),
    }
});
