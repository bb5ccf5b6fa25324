// SPDX-License-Identifier: GPL-2.0

//! VNAT's kernel-independent logic, compiled for the host.
//!
//! The sources live in the kernel module's tree (`vnat/`) and are included
//! here unchanged, so `cargo test`, property tests and fuzzing exercise the
//! very code the module runs.

#![no_std]

#[path = "../../../vnat/vcmp.rs"]
pub mod vcmp;

#[path = "../../../vnat/checksum.rs"]
pub mod checksum;

#[path = "../../../vnat/mapping.rs"]
pub mod mapping;

#[path = "../../../vnat/packet.rs"]
pub mod packet;

#[path = "../../../vnat/location_hiding.rs"]
pub mod location_hiding;

#[path = "../../../vnat/key.rs"]
pub mod key;

#[path = "../../../vnat/vcmp2.rs"]
pub mod vcmp2;

#[path = "../../../vnat/export.rs"]
pub mod export;

/// HMAC-SHA256 for the host: RustCrypto's, behind the module's [`key::Mac`]
/// (the module's own is lib/crypto's, `vnat/ffi/crypto.rs`), so that the
/// tests and the fuzz targets run `key.rs` and `vcmp2.rs` as the module
/// does.
#[derive(Clone)]
pub struct HmacSha256(hmac::Hmac<sha2::Sha256>);

impl key::Mac for HmacSha256 {
    fn new(key: &[u8]) -> Self {
        use hmac::Mac as _;
        // HMAC takes keys of any length: this cannot fail.
        Self(hmac::Hmac::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    fn update(&mut self, data: &[u8]) {
        use hmac::Mac as _;
        self.0.update(data);
    }

    fn finish(self) -> [u8; key::KEY_LEN] {
        use hmac::Mac as _;
        self.0.finalize().into_bytes().into()
    }
}
