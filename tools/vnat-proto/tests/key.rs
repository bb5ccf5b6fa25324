// SPDX-License-Identifier: GPL-2.0

//! HKDF (key.rs) over RustCrypto's HMAC-SHA256: the RFC 5869 vectors, and
//! what RFC 5869 promises of any output length.

use proptest::prelude::*;
use vnat_proto::key::{self, TooLong, EXPAND_MAX, KEY_LEN};
use vnat_proto::HmacSha256;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 5869 appendix A, test cases 1 to 3 (SHA-256).
#[test]
fn rfc5869_vectors() {
    let long = |from: u8| (from..=from.wrapping_add(0x4f)).collect::<Vec<u8>>();
    let cases = [
        (
            vec![0x0b; 22],
            unhex("000102030405060708090a0b0c"),
            unhex("f0f1f2f3f4f5f6f7f8f9"),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            long(0x00),
            long(0x60),
            long(0xb0),
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            vec![0x0b; 22],
            vec![],
            vec![],
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ];
    for (ikm, salt, info, prk_hex, okm_hex) in cases {
        let prk = key::extract::<HmacSha256>(&salt, &[&ikm]);
        assert_eq!(prk.to_vec(), unhex(prk_hex));
        let want = unhex(okm_hex);
        let mut okm = vec![0; want.len()];
        key::expand::<HmacSha256>(&prk, &[&info], &mut okm).unwrap();
        assert_eq!(okm, want);
        // info in pieces is the same info.
        let (a, b) = info.split_at(info.len() / 2);
        let mut okm2 = vec![0; want.len()];
        key::expand::<HmacSha256>(&prk, &[a, b], &mut okm2).unwrap();
        assert_eq!(okm2, want);
    }
}

#[test]
fn expand_refuses_more_than_255_blocks() {
    let prk = [7u8; KEY_LEN];
    let mut out = vec![0; EXPAND_MAX + 1];
    assert_eq!(
        key::expand::<HmacSha256>(&prk, &[b"x"], &mut out),
        Err(TooLong)
    );
    assert_eq!(
        key::expand::<HmacSha256>(&prk, &[b"x"], &mut out[..EXPAND_MAX]),
        Ok(())
    );
}

proptest! {
    /// A shorter output is a prefix of a longer one (RFC 5869's T(1) | T(2) ...).
    #[test]
    fn shorter_is_prefix(prk in any::<[u8; 32]>(), info in proptest::collection::vec(any::<u8>(), 0..64),
                         a in 0usize..300, b in 0usize..300) {
        let (n, m) = (a.min(b), a.max(b));
        let (mut x, mut y) = (vec![0; n], vec![0; m]);
        key::expand::<HmacSha256>(&prk, &[&info], &mut x).unwrap();
        key::expand::<HmacSha256>(&prk, &[&info], &mut y).unwrap();
        prop_assert_eq!(&x[..], &y[..n]);
    }
}

/// Both ends of a stream derive the same stream key from their own secret
/// and the other's public key, and from it the same connection keys; the
/// two directions, two key ids and two connections all differ.
#[test]
fn both_ends_derive_the_same_keys() {
    use key::Direction::{FromInitiator, FromResponder};
    let shared = [7u8; KEY_LEN];
    let (pi, pr) = ([1u8; KEY_LEN], [2u8; KEY_LEN]);
    let (mut si, mut sr) = ([0; KEY_LEN], [0; KEY_LEN]);
    key::stream_key::<HmacSha256>(&shared, &pi, &pr, &mut si);
    key::stream_key::<HmacSha256>(&shared, &pi, &pr, &mut sr);
    assert_eq!(si, sr);
    let mut swapped = [0; KEY_LEN];
    key::stream_key::<HmacSha256>(&shared, &pr, &pi, &mut swapped);
    assert_ne!(si, swapped, "the key binds who sent which public key");
    let k = |id, named: &[u8], d| {
        let mut out = [0; KEY_LEN];
        key::connection_key::<HmacSha256>(&si, id, named, d, &mut out);
        out
    };
    let a = k(5, b"conn a", FromInitiator);
    assert_eq!(a, k(5, b"conn a", FromInitiator));
    for other in [
        k(5, b"conn a", FromResponder),
        k(6, b"conn a", FromInitiator),
        k(5, b"conn b", FromInitiator),
    ] {
        assert_ne!(a, other);
    }
}

/// A key's id is the stream's, the KEY's place on it and the request's:
/// the same for both ends, another for another stream, another place (the
/// same connection asked again) or another connection, never 0.
#[test]
fn key_ids_are_derived() {
    let (s, t) = ([3u8; KEY_LEN], [4u8; KEY_LEN]);
    let id = key::key_id::<HmacSha256>(&s, 0, b"conn a");
    assert_eq!(id, key::key_id::<HmacSha256>(&s, 0, b"conn a"));
    assert_ne!(id, key::key_id::<HmacSha256>(&t, 0, b"conn a"));
    assert_ne!(id, key::key_id::<HmacSha256>(&s, 1, b"conn a"));
    assert_ne!(id, key::key_id::<HmacSha256>(&s, 0, b"conn b"));
    assert_ne!(id, 0);
}
