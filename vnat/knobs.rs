// SPDX-License-Identifier: GPL-2.0

//! Run-time knobs: what an administrator may tune while VNAT runs, each
//! with its valid range or its named values. The configfs attributes that
//! show and set them are in `configfs.rs`.
//!
//! A value out of range or not a number is refused with `EINVAL` and one line
//! in the kernel log; the old value stays.

use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    str::{parse_int::ParseInt, BStr},
    sync::atomic::{Atomic, Relaxed},
};

/// A numeric knob with its valid range, or a knob with named values (the
/// value is the index of the name).
pub(crate) struct Knob {
    name: &'static str,
    value: Atomic<u32>,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Knob {
    pub(crate) const fn new(name: &'static str, default: u32, min: u32, max: u32) -> Self {
        Self {
            name,
            value: Atomic::new(default),
            min,
            max,
            names: &[],
        }
    }

    pub(crate) const fn named(
        name: &'static str,
        default: u32,
        names: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            value: Atomic::new(default),
            min: 0,
            max: names.len() as u32 - 1,
            names,
        }
    }

    /// What `show` prints: the number, or the name.
    pub(crate) fn show(&self, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let v = self.get();
        match self.names.get(v as usize) {
            Some(n) => show(page, format_args!("{n}\n")),
            None => show(page, format_args!("{v}\n")),
        }
    }

    /// Sets the value of a knob that no one writes (`vcmp_port`).
    pub(crate) fn set(&self, v: u32) {
        self.value.store(v.clamp(self.min, self.max), Relaxed);
    }

    /// The current value.
    pub(crate) fn get(&self) -> u32 {
        self.value.load(Relaxed)
    }

    /// The current value of a 0/1 knob.
    pub(crate) fn get_bool(&self) -> bool {
        self.get() != 0
    }

    /// Parses and sets a value written by user space (trailing newline
    /// allowed); a bad value is refused and the old one kept.
    pub(crate) fn set_from(&self, input: &[u8]) -> Result {
        if !self.names.is_empty() {
            let word = input.strip_suffix(b"\n").unwrap_or(input);
            return match self.names.iter().position(|n| n.as_bytes() == word) {
                Some(i) => {
                    self.value.store(i as u32, Relaxed);
                    Ok(())
                }
                None => {
                    pr_warn!(
                        "{}: refused '{}': expected one of: {}\n",
                        self.name,
                        Printable(input),
                        Names(self.names)
                    );
                    Err(EINVAL)
                }
            };
        }
        match parse_u32(input) {
            Some(v) if (self.min..=self.max).contains(&v) => {
                self.value.store(v, Relaxed);
                Ok(())
            }
            _ => {
                pr_warn!(
                    "{}: refused '{}': expected an integer from {} to {}\n",
                    self.name,
                    Printable(input),
                    self.min,
                    self.max
                );
                Err(EINVAL)
            }
        }
    }
}

/// Parses a `u32` as the kernel's `kstrtou32(s, 0)` does (decimal, or with
/// `0x`/`0o`/`0b`), allowing one trailing newline.
fn parse_u32(input: &[u8]) -> Option<u32> {
    let s = input.strip_suffix(b"\n").unwrap_or(input);
    u32::from_str(BStr::from_bytes(s)).ok()
}

/// Names, comma separated.
struct Names(&'static [&'static str]);

impl kernel::fmt::Display for Names {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

/// Shows user input in a log line without control characters, cut short.
pub(crate) struct Printable<'a>(pub(crate) &'a [u8]);

impl kernel::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.0.strip_suffix(b"\n").unwrap_or(self.0);
        for &b in s.iter().take(32) {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        if s.len() > 32 {
            write!(f, "...")?;
        }
        Ok(())
    }
}

/// The TCP port vnatd listens on in every namespace: the module parameter
/// `vcmp_port`, set at load time, read-only afterwards.
pub(crate) static VCMP_PORT: Knob = Knob::new("vcmp_port", 2031, 1, 65535);

/// VCMP connections one vnatd serves at once; more are refused and counted.
pub(crate) static VCMP_MAX_CLIENTS: Knob = Knob::new("vcmp_max_clients", 64, 1, 1024);
/// VCMP connections one vnatd serves at once from one address (IPv6: one
/// /64); more are refused and counted, so that one host cannot take every
/// place.
pub(crate) static VCMP_MAX_CLIENTS_PER_SOURCE: Knob =
    Knob::new("vcmp_max_clients_per_source", 4, 1, 1024);
/// A VCMP connection that completes no message for this long is closed and
/// counted (bytes that do not complete a message do not count).
pub(crate) static VCMP_IDLE_TIMEOUT_MS: Knob =
    Knob::new("vcmp_idle_timeout_ms", 30_000, 100, 3_600_000);
/// A VCMP connection with more than this many messages refused for reasons
/// that guessing gives (no such connection, not from the address named, a
/// martian address; not refusals by policy) is closed and counted: one
/// stream cannot sweep a port range for a connection to take over.
pub(crate) static VCMP_MAX_REFUSALS: Knob = Knob::new("vcmp_max_refusals", 8, 1, 65535);
/// Whether a UDP update may create the record of a flow that an unconnected
/// socket serves (paper 3.5), 0 or 1. Off by default: the update is not
/// authenticated, and the record makes datagrams from the sender look as if
/// they came from whatever peer the update names.
pub(crate) static VCMP_UDP_FLOWS: Knob = Knob::new("vcmp_udp_flows", 0, 0, 1);
/// Which VCMP this host speaks and believes (`README.md`, "The security
/// key"): `off` speaks only the paper's version 1 and makes no keys (a
/// connection that has one still moves only by version 2); `opportunistic`
/// makes a key for every connection whose peer speaks version 2, and
/// believes version 1 only for connections without one; `required` believes
/// version 1 never. Values: [`VcmpAuth`] as numbers.
pub(crate) static VCMP_AUTH: Knob = Knob::named(
    "vcmp_auth",
    VcmpAuth::Required as u32,
    &["off", "opportunistic", "required"],
);

/// The values of [`VCMP_AUTH`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum VcmpAuth {
    /// Version 1 only, no keys.
    Off = 0,
    /// Keys where the peer speaks version 2; version 1 for the others.
    Opportunistic = 1,
    /// Keys, and never version 1.
    Required = 2,
}

impl VcmpAuth {
    /// What the knob says now.
    pub(crate) fn get() -> Self {
        match VCMP_AUTH.get() {
            0 => Self::Off,
            1 => Self::Opportunistic,
            _ => Self::Required,
        }
    }
}

/// Whether losing an address and gaining another resumes the connections of
/// the lost one from the new one (paper 3.3.1), 0 or 1.
pub(crate) static AUTO_MIGRATE: Knob = Knob::new("auto_migrate", 1, 0, 1);
/// When the automatic resume moves a connection (with `auto_migrate`):
/// `on-loss` once its local address went away (to the address the host now
/// reaches the peer from, at once if it has one, else to the next address
/// that comes up); `on-route-change` also when the route to its peer
/// changed to leave from another local address while the old one stays
/// (make-before-break: a second network came up and took the default
/// route). Values: [`MigrateOn`] as numbers.
pub(crate) static MIGRATE_ON: Knob = Knob::named(
    "migrate_on",
    MigrateOn::Loss as u32,
    &["on-loss", "on-route-change"],
);

/// The values of [`MIGRATE_ON`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum MigrateOn {
    /// When the address goes.
    Loss = 0,
    /// Also when the route to the peer changes.
    RouteChange = 1,
}

impl MigrateOn {
    /// What the knob says now.
    pub(crate) fn get() -> Self {
        match MIGRATE_ON.get() {
            0 => Self::Loss,
            _ => Self::RouteChange,
        }
    }
}

/// Whether system sleep (suspend, hibernation) suspends every connection
/// whose peer is another host, with `VNAT_SUS` to its peer (whose helper
/// keeps it meanwhile), before the system sleeps, and resumes them on wake
/// from wherever the host is then (at once if it has a route to the peer,
/// else once an address or route comes), 0 or 1.
pub(crate) static SLEEP_SUSPEND: Knob = Knob::new("sleep_suspend", 1, 0, 1);

/// How long vnatd waits for a peer to answer its updates, per attempt: the
/// time the peer may send nothing (a batch is answered in parts).
pub(crate) static VCMP_TIMEOUT_MS: Knob = Knob::new("vcmp_timeout_ms", 2000, 100, 60_000);
/// How many times vnatd tries again before a migration fails (or, for a
/// move, starts retrying until `resume_deadline_s`).
pub(crate) static VCMP_RETRIES: Knob = Knob::new("vcmp_retries", 2, 0, 10);
/// How long after a move began vnatd keeps retrying its updates, in
/// seconds, with backoff (`vnatd_kthread/conversation.rs`); 0: it gives up
/// after `vcmp_retries`, as the paper's did. Also how long the connections
/// of an address that went away wait for an address of their family
/// before they are told failed (an IPv6 one on an IPv4-only network;
/// 0: never).
pub(crate) static RESUME_DEADLINE_S: Knob = Knob::new("resume_deadline_s", 120, 0, 86_400);
/// The port of the peers' vnatd that updates go to; 0: `vcmp_port`, the
/// port we listen on (peers are configured alike).
pub(crate) static VCMP_PEER_PORT: Knob = Knob::new("vcmp_peer_port", 0, 0, 65535);

/// The port of the peers' vnatd: `vcmp_peer_port`, or ours.
pub(crate) fn peer_vcmp_port() -> u16 {
    match VCMP_PEER_PORT.get() {
        0 => VCMP_PORT.get() as u16,
        p => p as u16,
    }
}
/// What an update does when the connection's new physical endpoints are a
/// live connection's here (paper 3.4.3), unless the connection has its own
/// policy: `abort` refuses the update, `preempt` aborts the other
/// connection. Values: [`crate::virtualization::Policy`] as numbers.
pub(crate) static CONFLICT_POLICY: Knob = Knob::named("conflict_policy", 0, &["abort", "preempt"]);

/// What keeps a connection alive here while its peer is suspended, unless
/// the connection has its own (paper 3.3.1): `none`, `keepalive` (TCP
/// keepalive off until the peer resumes) or `stop` (also stop the processes
/// that hold the socket). Values: [`crate::helper::Helper`] as numbers.
pub(crate) static SUSPEND_HELPER: Knob =
    Knob::named("suspend_helper", 1, &["none", "keepalive", "stop"]);
/// A helper still at work this many seconds after the peer suspended is
/// undone (the peer may never come back); 0: only when the peer resumes.
pub(crate) static HELPER_TIMEOUT_S: Knob = Knob::new("helper_timeout_s", 3600, 0, 604_800);

/// Location hiding (paper 3.4.1, 4.1; `location_hiding.rs`), 0 or 1: new
/// TCP connections between two hosts whose connections moved get the
/// addresses those connections have, for applications that compare or
/// exchange addresses (FTP). Off by default: applications are told where
/// their new connections really are. The paper's option was per
/// application; this one is per host, all namespaces.
pub(crate) static LOCATION_HIDING: Knob = Knob::new("location_hiding", 0, 0, 1);

/// Writes `args` into a configfs page, returning the length written.
pub(crate) fn show(page: &mut [u8; PAGE_SIZE], args: core::fmt::Arguments<'_>) -> Result<usize> {
    let mut w = kernel::str::Formatter::new(&mut page[..]);
    core::fmt::write(&mut w, args).map_err(|_| EINVAL)?;
    Ok(w.bytes_written())
}

#[kunit_tests(vnat_knobs)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(parse_u32(b"64\n"), Some(64));
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"\n"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b" 12"), None);
        assert_eq!(parse_u32(b"12\n\n"), None);
        assert_eq!(parse_u32(b"0x10"), Some(16));
    }

    #[test]
    fn bad_values_keep_the_old_one() {
        let k = Knob::new("test_knob", 5, 1, 10);
        assert!(k.set_from(b"11").is_err());
        assert!(k.set_from(b"0").is_err());
        assert!(k.set_from(b"x").is_err());
        assert_eq!(k.get(), 5);
        assert!(k.set_from(b"10\n").is_ok());
        assert_eq!(k.get(), 10);
    }

    #[test]
    fn named_values() {
        let k = Knob::named("test_policy", 0, &["abort", "preempt"]);
        assert!(k.set_from(b"preempt\n").is_ok());
        assert_eq!(k.get(), 1);
        assert!(k.set_from(b"1").is_err());
        assert!(k.set_from(b"Abort").is_err());
        assert!(k.set_from(b"").is_err());
        assert_eq!(k.get(), 1);
        assert!(k.set_from(b"abort").is_ok());
        assert_eq!(k.get(), 0);
    }
}
