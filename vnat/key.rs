// SPDX-License-Identifier: GPL-2.0

//! The security protection key (paper 3.3.1.1 and 3.3.2.1): what is derived
//! from an X25519 shared secret, and how.
//!
//! The paper protects every virtual-physical mapping with a secret shared by
//! the connection's two endpoints, agreed by Diffie-Hellman, and has each
//! update prove that its sender knows it. Today that is X25519 (RFC 7748)
//! for the agreement and HKDF-SHA256 (RFC 5869) to turn the shared secret
//! into keys, with HMAC-SHA256 (RFC 2104) as the message authentication
//! code. This file holds HKDF over any HMAC-SHA256: the kernel module's
//! comes from lib/crypto (`ffi/crypto.rs`), the host crate's tests use
//! RustCrypto's, and both run this very code.
//!
//! Plain `no_std` Rust without allocation, shared with `tools/vnat-proto`.

/// Bytes of a key, of a shared secret and of an HMAC-SHA256 output.
pub const KEY_LEN: usize = 32;

/// The most HKDF-Expand can produce from one pseudorandom key
/// (RFC 5869 section 2.3: 255 blocks of the hash's length).
pub const EXPAND_MAX: usize = 255 * KEY_LEN;

/// HMAC-SHA256, computed incrementally. A clone of a MAC that has seen only
/// its key is that key prepared: each message MAC'd from it saves hashing
/// the key's two padded blocks again.
pub trait Mac: Sized + Clone {
    /// Starts a MAC under `key` (of any length, as RFC 2104 allows).
    fn new(key: &[u8]) -> Self;
    /// Adds `data` to the message.
    fn update(&mut self, data: &[u8]);
    /// The MAC of everything added.
    fn finish(self) -> [u8; KEY_LEN];

    /// Whether `a` and `b` are equal, in a time that depends only on their
    /// lengths: MACs are compared so. The kernel's implementation uses
    /// `crypto_memneq()`; this one folds the differences, without branching
    /// on them.
    fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }

    /// The MAC under `key` of the concatenation of `parts`.
    fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
        let mut m = Self::new(key);
        for p in parts {
            m.update(p);
        }
        m.finish()
    }
}

/// Asked for more than [`EXPAND_MAX`] bytes from one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong;

/// HKDF-Extract (RFC 5869 section 2.2): a pseudorandom key from input
/// keying material and a salt (an empty salt means a zero-filled one, which
/// HMAC treats the same).
pub fn extract<M: Mac>(salt: &[u8], ikm: &[&[u8]]) -> [u8; KEY_LEN] {
    M::mac(salt, ikm)
}

/// HKDF-Expand (RFC 5869 section 2.3): fills `out` with keying material
/// from the pseudorandom key `prk`, bound to the concatenation of `info`.
pub fn expand<M: Mac>(prk: &[u8; KEY_LEN], info: &[&[u8]], out: &mut [u8]) -> Result<(), TooLong> {
    if out.len() > EXPAND_MAX {
        return Err(TooLong);
    }
    let mut t = [0u8; KEY_LEN];
    for (i, chunk) in out.chunks_mut(KEY_LEN).enumerate() {
        let mut m = M::new(prk);
        if i > 0 {
            m.update(&t);
        }
        for p in info {
            m.update(p);
        }
        // At most 255 chunks (checked above): `i + 1` fits in a byte.
        m.update(&[(i + 1) as u8]);
        t = m.finish();
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
    Ok(())
}

/// HKDF salt of a VCMP stream's key.
const STREAM_SALT: &[u8] = b"vnat vcmp2 stream";
/// HKDF info label of a connection's keys.
const CONNECTION_LABEL: &[u8] = b"vnat vcmp2 connection";
/// HKDF info label of a connection key's id.
const KEY_ID_LABEL: &[u8] = b"vnat vcmp2 key id";

/// The key of a VCMP version-2 stream, from the X25519 shared secret of its
/// HELLO and HELLO_R and both public keys (the initiator's, who sent HELLO,
/// first), so that it binds the exchange that made it. Written into
/// `out`, which the kernel wipes after use.
pub fn stream_key<M: Mac>(
    shared: &[u8; KEY_LEN],
    initiator: &[u8; KEY_LEN],
    responder: &[u8; KEY_LEN],
    out: &mut [u8; KEY_LEN],
) {
    *out = extract::<M>(STREAM_SALT, &[shared, initiator, responder]);
}

/// Which of a connection's two keys a message is sent under: each
/// direction has its own, so that no message can be reflected to its
/// sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the end that asked for the key (KEY).
    FromInitiator,
    /// Sent by the end that granted it (KEY_R).
    FromResponder,
}

/// The id of the key that the `index`-th KEY on the stream whose key is
/// `stream` (0 for the first), naming `named` (as in [`connection_key`]),
/// is granted; never 0. Both ends derive it, so the end that asked knows
/// which key the other granted even when the answer cannot reach it (the
/// address it asked from went away); no one without the stream key can
/// tell it in advance; and no two KEYs of a stream get the same, even for
/// the same connection (a UDP flow closed and opened again with the same
/// ports: a message under the first key is no good under the second).
pub fn key_id<M: Mac>(stream: &[u8; KEY_LEN], index: u32, named: &[u8]) -> u32 {
    let mut id = [0u8; 4];
    // Four bytes never exceed EXPAND_MAX.
    let _ = expand::<M>(
        stream,
        &[KEY_ID_LABEL, &index.to_be_bytes(), named],
        &mut id,
    );
    u32::from_be_bytes(id).max(1)
}

/// One of the keys of a connection, from the stream key `stream` of the
/// stream that agreed them, its key id ([`key_id`]) and `named`:
/// the bytes of the KEY message that name the connection (protocol and
/// both virtual endpoints, as the initiator sent them), which both ends see
/// alike. Written into `out`.
pub fn connection_key<M: Mac>(
    stream: &[u8; KEY_LEN],
    key_id: u32,
    named: &[u8],
    direction: Direction,
    out: &mut [u8; KEY_LEN],
) {
    let which: &[u8] = match direction {
        Direction::FromInitiator => b"i",
        Direction::FromResponder => b"r",
    };
    // One block per key: 32 bytes never exceed EXPAND_MAX.
    let _ = expand::<M>(
        stream,
        &[CONNECTION_LABEL, which, &key_id.to_be_bytes(), named],
        out,
    );
}
