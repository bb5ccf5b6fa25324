// SPDX-License-Identifier: GPL-2.0

//! The commands of `/proc/net/vnat/control`, parsed without the kernel.
//!
//! ```text
//! migrate OLD_ADDR NEW_ADDR
//! ```
//!
//! moves every connection whose local physical address is `OLD_ADDR` to
//! `NEW_ADDR` (dotted-quad IPv4, ports unchanged) and updates the peers:
//! the "resume" of paper 3.3.2, for a host that has `NEW_ADDR` now. One
//! trailing newline is allowed; anything else is refused.
//!
//! Plain `no_std` Rust, shared with `tools/vnat-proto`.

/// A parsed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `migrate OLD NEW`, addresses in host byte order.
    Migrate {
        /// The old local address.
        from: u32,
        /// The new local address.
        to: u32,
    },
}

/// Parses a dotted-quad IPv4 address into host byte order; refuses leading
/// zeros, empty parts and values over 255.
pub fn parse_ipv4(s: &[u8]) -> Option<u32> {
    let mut out = 0u32;
    let mut parts = 0;
    for part in s.split(|&b| b == b'.') {
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        let mut v = 0u32;
        for &b in part {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        }
        if v > 255 {
            return None;
        }
        out = out << 8 | v;
        parts += 1;
    }
    (parts == 4).then_some(out)
}

/// Parses one command.
pub fn parse(input: &[u8]) -> Option<Command> {
    let s = input.strip_suffix(b"\n").unwrap_or(input);
    let mut words = s.split(|&b| b == b' ');
    let cmd = words.next()?;
    let a = words.next()?;
    let b = words.next()?;
    if words.next().is_some() || cmd != b"migrate" {
        return None;
    }
    let (from, to) = (parse_ipv4(a)?, parse_ipv4(b)?);
    if from == 0 || to == 0 {
        return None;
    }
    Some(Command::Migrate { from, to })
}
