// SPDX-License-Identifier: GPL-2.0

//! The security key's primitives (`vnat/shim/crypto.c`): X25519 (RFC 7748)
//! and HMAC-SHA256 (RFC 2104) from lib/crypto, a constant-time comparison,
//! and secrets that are wiped when dropped.

use crate::key::{Mac, KEY_LEN};
use core::{
    mem::MaybeUninit,
    sync::atomic::{compiler_fence, Ordering},
};
use kernel::{bindings, prelude::*};

/// `VNAT_HMAC_CTX_SIZE` of `shim.h`: the size of `struct hmac_sha256_ctx`,
/// asserted there.
const HMAC_CTX_SIZE: usize = 136;

extern "C" {
    fn vnat_shim_x25519(out: *mut u8, scalar: *const u8, point: *const u8) -> bool;
    fn vnat_shim_x25519_public(public: *mut u8, secret: *const u8) -> bool;
    fn vnat_shim_hmac_init(ctx: *mut c_void, key: *const u8, key_len: usize);
    fn vnat_shim_hmac_update(ctx: *mut c_void, data: *const u8, len: usize);
    fn vnat_shim_hmac_final(ctx: *mut c_void, out: *mut u8);
    fn vnat_shim_memeq(a: *const c_void, b: *const c_void, len: usize) -> bool;
}

/// Overwrites `b` with `zero` in a way the compiler does not remove, as
/// `memzero_explicit()` does.
fn wipe<T: Copy>(b: &mut [T], zero: T) {
    for x in b.iter_mut() {
        // SAFETY: `x` is a valid, aligned, exclusive reference.
        unsafe { core::ptr::write_volatile(x, zero) };
    }
    compiler_fence(Ordering::SeqCst);
}

/// Whether `a` and `b` are equal, in a time that depends only on their
/// lengths (MACs are compared with this, never with `==`).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // SAFETY: Both pointers are valid for `a.len()` bytes when the lengths
    // are equal, which is checked first.
    a.len() == b.len() && unsafe { vnat_shim_memeq(a.as_ptr().cast(), b.as_ptr().cast(), a.len()) }
}

/// A random number from the kernel's CRNG.
pub(crate) fn random_u32() -> u32 {
    // SAFETY: `get_random_u32` has no preconditions.
    unsafe { bindings::get_random_u32() }
}

/// Fills `b` with random bytes from the kernel's CRNG.
pub(crate) fn random_bytes(b: &mut [u8]) {
    // SAFETY: `b` is valid for writes of `b.len()` bytes.
    unsafe { bindings::get_random_bytes(b.as_mut_ptr().cast(), b.len()) }
}

/// 32 secret bytes (a private key, a shared secret, a derived key), wiped
/// when dropped. Not `Copy`, not `Debug`.
pub(crate) struct Secret([u8; KEY_LEN]);

impl Secret {
    /// A secret that `fill` writes where it stays.
    pub(crate) fn derive(fill: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
        let mut s = Self([0; KEY_LEN]);
        fill(&mut s.0);
        s
    }

    /// The bytes, to derive from or to MAC with.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0, 0);
    }
}

/// An X25519 private key: random, clamped (RFC 7748 section 5).
pub(crate) struct X25519Secret(Secret);

impl X25519Secret {
    /// A fresh private key from the kernel's CRNG, made where it stays.
    pub(crate) fn generate() -> Self {
        let mut s = Secret([0; KEY_LEN]);
        random_bytes(&mut s.0);
        Self::clamped(s)
    }

    /// The private key with the bytes `b` (a test vector), clamped.
    #[cfg(CONFIG_KUNIT)]
    fn from_bytes(b: [u8; KEY_LEN]) -> Self {
        Self::clamped(Secret(b))
    }

    fn clamped(mut s: Secret) -> Self {
        s.0[0] &= 248;
        s.0[31] = (s.0[31] & 127) | 64;
        Self(s)
    }

    /// The public key, `X25519(secret, 9)`.
    pub(crate) fn public(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        // SAFETY: All three buffers are valid for 32 bytes. The result is
        // false only for a zero secret, which clamping rules out (bit 254
        // is set), so it says nothing here.
        let _ = unsafe { vnat_shim_x25519_public(out.as_mut_ptr(), self.0 .0.as_ptr()) };
        out
    }

    /// The secret shared with the holder of `peer`'s private key, or `None`
    /// if `peer` is a low-order point (the result would be zero: a peer
    /// choosing such a point would fix the "shared" secret).
    pub(crate) fn agree(&self, peer: &[u8; KEY_LEN]) -> Option<Secret> {
        let mut s = Secret([0; KEY_LEN]);
        // SAFETY: All three buffers are valid for 32 bytes.
        let ok = unsafe { vnat_shim_x25519(s.0.as_mut_ptr(), self.0 .0.as_ptr(), peer.as_ptr()) };
        ok.then_some(s)
    }
}

/// HMAC-SHA256 from lib/crypto, computed incrementally.
#[repr(C, align(8))]
pub(crate) struct HmacSha256 {
    ctx: [MaybeUninit<u8>; HMAC_CTX_SIZE],
}

impl Mac for HmacSha256 {
    fn new(key: &[u8]) -> Self {
        let mut m = Self {
            ctx: [MaybeUninit::uninit(); HMAC_CTX_SIZE],
        };
        // SAFETY: `ctx` has the size and alignment of `struct
        // hmac_sha256_ctx` (asserted in the shim), which `init` fills in;
        // `key` is valid for `key.len()` bytes. The context holds no
        // pointer into itself, so it may move with `m`.
        unsafe { vnat_shim_hmac_init(m.ctx.as_mut_ptr().cast(), key.as_ptr(), key.len()) };
        m
    }

    fn update(&mut self, data: &[u8]) {
        // SAFETY: `ctx` was initialized by `new`; `data` is valid for
        // `data.len()` bytes.
        unsafe { vnat_shim_hmac_update(self.ctx.as_mut_ptr().cast(), data.as_ptr(), data.len()) }
    }

    fn finish(mut self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        // SAFETY: `ctx` was initialized by `new`; `out` is valid for 32
        // bytes. `final` wipes the context.
        unsafe { vnat_shim_hmac_final(self.ctx.as_mut_ptr().cast(), out.as_mut_ptr()) };
        out
    }

    fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        ct_eq(a, b)
    }
}

impl Clone for HmacSha256 {
    /// The context is plain data (hash states, a byte count, a buffer):
    /// a copy is a MAC in the same state.
    fn clone(&self) -> Self {
        Self { ctx: self.ctx }
    }
}

impl Drop for HmacSha256 {
    fn drop(&mut self) {
        // The context holds the key's inner and outer states (`finish`
        // has wiped them already; a MAC dropped unfinished has not).
        wipe(&mut self.ctx, MaybeUninit::new(0));
    }
}

#[kunit_tests(vnat_crypto)]
mod tests {
    use super::*;
    use crate::key;

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut b = [0u8; N];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        b
    }

    /// RFC 7748 section 5.2, the two single-step vectors.
    #[test]
    fn x25519_rfc7748_vectors() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (scalar, point, want) in cases {
            let s = X25519Secret::from_bytes(hex(scalar));
            let got = s.agree(&hex(point));
            assert!(got.is_some());
            if let Some(got) = got {
                assert_eq!(got.bytes(), &hex::<32>(want));
            }
        }
    }

    /// RFC 7748 section 6.1: Alice and Bob agree.
    #[test]
    fn x25519_rfc7748_agreement() {
        let a = X25519Secret::from_bytes(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let b = X25519Secret::from_bytes(hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            a.public(),
            hex::<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            b.public(),
            hex::<32>("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        let (ab, ba) = (a.agree(&b.public()), b.agree(&a.public()));
        assert!(ab.is_some() && ba.is_some());
        if let (Some(ab), Some(ba)) = (ab, ba) {
            assert_eq!(ab.bytes(), &hex::<32>(k));
            assert_eq!(ba.bytes(), &hex::<32>(k));
        }
    }

    /// A low-order point (here the point of order one, and one of order
    /// eight) gives no shared secret.
    #[test]
    fn x25519_low_order_points_refused() {
        let s = X25519Secret::generate();
        assert!(s.agree(&[0u8; 32]).is_none());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(s.agree(&one).is_none());
        let order8 = hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
        assert!(s.agree(&order8).is_none());
    }

    /// RFC 4231 test cases 1, 2, 3, 6 (a key longer than a block) and 7.
    #[test]
    fn hmac_sha256_rfc4231_vectors() {
        let k1 = [0x0bu8; 20];
        let k3 = [0xaau8; 20];
        let d3 = [0xddu8; 50];
        let k6 = [0xaau8; 131];
        let cases: [(&[u8], &[u8], &str); 5] = [
            (&k1, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (&k3, &d3, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                &k6,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &k6,
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (k, d, want) in cases {
            assert_eq!(HmacSha256::mac(k, &[d]), hex::<32>(want));
            // The same in pieces.
            let (a, b) = d.split_at(d.len() / 3);
            assert_eq!(HmacSha256::mac(k, &[a, &[], b]), hex::<32>(want));
        }
    }

    /// RFC 5869 test case 1, through lib/crypto's HMAC.
    #[test]
    fn hkdf_rfc5869_vector() {
        let ikm = [0x0bu8; 22];
        let salt = hex::<13>("000102030405060708090a0b0c");
        let info = hex::<10>("f0f1f2f3f4f5f6f7f8f9");
        let prk = key::extract::<HmacSha256>(&salt, &[&ikm]);
        assert_eq!(
            prk,
            hex::<32>("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        );
        let mut okm = [0u8; 42];
        assert_eq!(key::expand::<HmacSha256>(&prk, &[&info], &mut okm), Ok(()));
        assert_eq!(
            okm,
            hex::<42>("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"vnat", b"vnat"));
        assert!(!ct_eq(b"vnat", b"vnaT"));
        assert!(!ct_eq(b"vnat", b"vna"));
    }
}
