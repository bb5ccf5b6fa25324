// SPDX-License-Identifier: GPL-2.0
//! VCMP version 1 (vcmp.rs): any bytes decode without a panic, and what
//! decodes encodes to a message that decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::vcmp::Message;

fuzz_target!(|b: &[u8]| {
    if let Ok(m) = Message::decode(b) {
        let e = m.encode();
        assert_eq!(Message::decode(&e), Ok(m));
        // Only the fields the paper marks "Not Used" may differ.
        assert_eq!(e[..2], b[..2]);
    }
});
