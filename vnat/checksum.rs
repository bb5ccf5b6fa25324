// SPDX-License-Identifier: GPL-2.0

//! Incremental Internet checksum updates for address and port translation
//! (RFC 1071, RFC 1624 equation 3), as NAT does them.
//!
//! Checksums and 16-bit words are the values read big-endian from the
//! packet. Plain `no_std` Rust, shared with `tools/vnat-proto`, whose tests
//! compare every update with a checksum computed from scratch.

/// One's complement sum of 16-bit words, not yet folded.
pub const fn add(sum: u32, word: u16) -> u32 {
    let s = sum as u64 + word as u64;
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// Folds a 32-bit one's complement sum to 16 bits (not complemented).
pub const fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The two big-endian 16-bit halves of a 32-bit value.
const fn halves(v: u32) -> [u16; 2] {
    [(v >> 16) as u16, v as u16]
}

/// How the transport checksum field of a packet is to be treated, after
/// the kernel's `skb->ip_summed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summed {
    /// The field holds the full checksum (`CHECKSUM_NONE`, `_UNNECESSARY`,
    /// `_COMPLETE`).
    Full,
    /// The field holds the folded pseudo-header sum and the device or the
    /// stack completes it later (`CHECKSUM_PARTIAL`, as with TSO/GSO).
    Partial,
}

/// Returns the checksum field after 32-bit word `old` became `new`.
///
/// `pseudo` says whether the word is part of the pseudo header (an address);
/// with [`Summed::Partial`], only pseudo-header words change the field.
pub const fn replace32(check: u16, old: u32, new: u32, summed: Summed, pseudo: bool) -> u16 {
    let [o1, o2] = halves(old);
    let [n1, n2] = halves(new);
    replace(check, [o1, o2], [n1, n2], summed, pseudo)
}

/// Returns the checksum field after 16-bit word `old` became `new` (a port:
/// not part of the pseudo header).
pub const fn replace16(check: u16, old: u16, new: u16, summed: Summed) -> u16 {
    replace(check, [old, 0], [new, 0], summed, false)
}

const fn replace(check: u16, old: [u16; 2], new: [u16; 2], summed: Summed, pseudo: bool) -> u16 {
    match summed {
        // RFC 1624 eqn 3: HC' = ~(~HC + ~m + m').
        Summed::Full => {
            let mut s = add(0, !check);
            s = add(s, !old[0]);
            s = add(s, !old[1]);
            s = add(s, new[0]);
            s = add(s, new[1]);
            !fold(s)
        }
        // The field holds the uncomplemented pseudo-header sum.
        Summed::Partial if pseudo => {
            let mut s = add(0, check);
            s = add(s, !old[0]);
            s = add(s, !old[1]);
            s = add(s, new[0]);
            s = add(s, new[1]);
            fold(s)
        }
        Summed::Partial => check,
    }
}

/// The adjustment of a `CHECKSUM_COMPLETE` packet's `skb->csum` (a 32-bit
/// unfolded sum over the transport header and payload) when its checksum
/// field changes from `old` to `new` because of a pseudo-header change.
pub const fn complete_adjust(csum: u32, old_check: u16, new_check: u16) -> u32 {
    add(add(csum, !old_check), new_check)
}

/// The full checksum of `data` (RFC 1071), with `initial` folded in: used by
/// tests and for the IPv4 header.
pub fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut s = initial;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s = add(s, u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        s = add(s, u16::from_be_bytes([*last, 0]));
    }
    !fold(s)
}
