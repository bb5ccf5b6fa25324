// SPDX-License-Identifier: GPL-2.0
//! VCMP version 2 (vcmp2.rs): any bytes decode without a panic; what
//! decodes encodes back to the same bytes but the MAC; a MAC made under a
//! key verifies under it and under no other, and received bytes verify
//! exactly when they are what the key makes of their message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::vcmp2::{verify, Message, MAX_LEN, TAG_LEN};
use vnat_proto::{key::KEY_LEN, HmacSha256};

fuzz_target!(|b: &[u8]| {
    let key = [0x5a; KEY_LEN];
    if let Ok(m) = Message::decode(b) {
        let mut e = [0u8; MAX_LEN];
        let n = m.encode::<HmacSha256>(Some(&key), &mut e);
        assert_eq!(n, b.len());
        let t = if m.has_mac() { TAG_LEN } else { 0 };
        assert_eq!(e[..n - t], b[..n - t]);
        // The seeds carry MACs under `key`: bytes verify exactly when they
        // are the message as `key` encodes it.
        assert_eq!(Message::decode(&e[..n]), Ok(m));
        if m.has_mac() {
            assert_eq!(verify::<HmacSha256>(b, &key), e[..n] == *b);
            assert!(verify::<HmacSha256>(&e[..n], &key));
            assert!(!verify::<HmacSha256>(&e[..n], &[0xa5; KEY_LEN]));
        }
    }
});
