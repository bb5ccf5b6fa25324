// SPDX-License-Identifier: GPL-2.0

//! Location hiding (paper 3.4.1 and 4.1): the option that hides from
//! applications that an end of their connections moved, for the
//! applications that compare or exchange addresses, FTP first of all.
//!
//! A connection that moves keeps its virtual endpoints, so an application
//! never sees the move of a connection it has. A connection it opens after
//! the move is a new, physical one: FTP opens one per transfer, and vsftpd
//! refuses a passive data connection that does not come from its control
//! connection's peer (the peer's virtual address, for vsftpd), while an
//! active one goes to the address the client names in `PORT`, its control
//! connection's local address (its virtual one, for the client). With the
//! option on, the new TCP connections between two hosts whose connections
//! moved are given the addresses of the hosts' moved connections as well:
//!
//! - the peer that moved is known by its virtual address: what comes from
//!   its physical address is rewritten at LOCAL_IN to come from its
//!   virtual one, what goes to its virtual address is sent to its physical
//!   one (LOCAL_OUT);
//! - the host that moved receives, at its virtual address, the new
//!   connections that its own sockets listen for there (PREROUTING, only
//!   for a listener bound to exactly that address, or a connection already
//!   so opened), and what those send leaves from its physical address
//!   (POSTROUTING).
//!
//! An application told that it is still at its virtual address may bind
//! it (active FTP's client listens there): a TCP socket that binds a
//! virtual address of a move is made `IP_TRANSPARENT`, as the sockets of
//! moved connections are.
//!
//! Ports stay as they are. Only packets that no connection's rule matched
//! come here, and only a packet that no socket takes as it is gets another
//! address. Once a new connection is recorded (`connect()`, `accept()`),
//! its record carries the same mapping (it is migrated from birth), so its
//! own rules take over and it moves like any other connection.
//!
//! The moves are the distinct address pairs of a namespace's migrated
//! connections, at most [`MAX_MOVES`], gathered when its rule table is
//! built. Plain `no_std` Rust without allocation, shared with
//! `tools/vnat-proto`.

use crate::{
    mapping::{Hook, Mapping, Tuple, PROTO_TCP},
    vcmp::Endpoint,
};
use core::net::IpAddr;

/// Most distinct moves a namespace hides; the connections of others get
/// their addresses as they are.
pub const MAX_MOVES: usize = 32;

/// The addresses of one pair of hosts whose connections moved: this host
/// (local) and a peer (remote), each virtual and physical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// This host's address as its connections know it.
    pub local_virtual: IpAddr,
    /// This host's address on the wire now.
    pub local_physical: IpAddr,
    /// The peer's address as the connections know it.
    pub remote_virtual: IpAddr,
    /// The peer's address on the wire now.
    pub remote_physical: IpAddr,
}

impl Move {
    fn of(m: &Mapping) -> Self {
        Self {
            local_virtual: m.local_virtual.addr,
            local_physical: m.local_physical.addr,
            remote_virtual: m.remote_virtual.addr,
            remote_physical: m.remote_physical.addr,
        }
    }

    fn local_moved(&self) -> bool {
        self.local_virtual != self.local_physical
    }

    fn remote_moved(&self) -> bool {
        self.remote_virtual != self.remote_physical
    }
}

const UNSPECIFIED: IpAddr = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);

/// The moves of one namespace, each with the number of connections that
/// made it.
#[derive(Clone, Copy, Debug)]
pub struct Moves {
    moves: [Move; MAX_MOVES],
    counts: [u32; MAX_MOVES],
    len: usize,
}

impl Default for Moves {
    fn default() -> Self {
        Self::new()
    }
}

impl Moves {
    /// No moves.
    pub const fn new() -> Self {
        Self {
            moves: [Move {
                local_virtual: UNSPECIFIED,
                local_physical: UNSPECIFIED,
                remote_virtual: UNSPECIFIED,
                remote_physical: UNSPECIFIED,
            }; MAX_MOVES],
            counts: [0; MAX_MOVES],
            len: 0,
        }
    }

    /// The moves.
    pub fn as_slice(&self) -> &[Move] {
        &self.moves[..self.len]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds the addresses of a migrated connection's mapping, unless they
    /// are known already or did not move; false if there was no room.
    pub fn add(&mut self, m: &Mapping) -> bool {
        let mv = Move::of(m);
        if !(mv.local_moved() || mv.remote_moved()) {
            return true;
        }
        if let Some(i) = self.as_slice().iter().position(|x| *x == mv) {
            self.counts[i] += 1;
            return true;
        }
        if self.len == MAX_MOVES {
            return false;
        }
        self.moves[self.len] = mv;
        self.counts[self.len] = 1;
        self.len += 1;
        true
    }

    /// Takes back one [`Moves::add`] of `m` that returned true: the move
    /// goes with the last connection that made it (the others keep their
    /// order).
    pub fn remove(&mut self, m: &Mapping) {
        let mv = Move::of(m);
        let Some(i) = self.as_slice().iter().position(|x| *x == mv) else {
            return;
        };
        self.counts[i] -= 1;
        if self.counts[i] == 0 {
            self.moves.copy_within(i + 1..self.len, i);
            self.counts.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
    }

    /// The mapping a new TCP connection with virtual endpoints `local` and
    /// `remote` gets: that of the move between its two addresses, if any.
    pub fn mapping(&self, proto: u8, local: Endpoint, remote: Endpoint) -> Option<Mapping> {
        if proto != PROTO_TCP {
            return None;
        }
        let mv = self
            .as_slice()
            .iter()
            .find(|mv| mv.local_virtual == local.addr && mv.remote_virtual == remote.addr)?;
        Some(Mapping {
            proto,
            local_virtual: local,
            local_physical: Endpoint::from_ip(mv.local_physical, local.port),
            remote_virtual: remote,
            remote_physical: Endpoint::from_ip(mv.remote_physical, remote.port),
        })
    }

    /// The virtual address of the peer that moved to physical address
    /// `physical`, if one did.
    pub fn remote_virtual_of(&self, physical: IpAddr) -> Option<IpAddr> {
        self.as_slice()
            .iter()
            .find(|mv| mv.remote_moved() && mv.remote_physical == physical)
            .map(|mv| mv.remote_virtual)
    }

    /// Whether `addr` is this host's virtual address of a move: one that
    /// the host no longer has, which its applications may still bind.
    pub fn is_local_virtual(&self, addr: IpAddr) -> bool {
        self.as_slice()
            .iter()
            .any(|mv| mv.local_moved() && mv.local_virtual == addr)
    }

    /// What a TCP packet `t` that no connection's rule matched becomes at
    /// `hook`, if location hiding gives it other addresses. `taken(t,
    /// opens)` says whether a socket takes an incoming packet as `t` is
    /// addressed (with `opens`, also a listener bound to exactly `t.dst`, if
    /// the packet opens a connection). Packets to or from `vcmp_port` (VCMP
    /// itself) are left alone.
    pub fn rewrite(
        &self,
        hook: Hook,
        t: &Tuple,
        vcmp_port: u16,
        mut taken: impl FnMut(&Tuple, bool) -> bool,
    ) -> Option<Tuple> {
        if t.proto != PROTO_TCP || t.src.port == vcmp_port || t.dst.port == vcmp_port {
            return None;
        }
        let moves = self.as_slice().iter();
        let mut out = *t;
        match hook {
            Hook::LocalOut => {
                let mv = moves.clone().find(|mv| {
                    mv.remote_moved()
                        && mv.local_virtual == t.src.addr
                        && mv.remote_virtual == t.dst.addr
                })?;
                out.dst.addr = mv.remote_physical;
            }
            Hook::PostRouting => {
                let mv = moves.clone().find(|mv| {
                    mv.local_moved()
                        && mv.local_virtual == t.src.addr
                        && mv.remote_physical == t.dst.addr
                })?;
                out.src.addr = mv.local_physical;
            }
            Hook::PreRouting => {
                let mv = moves.clone().find(|mv| {
                    mv.local_moved()
                        && mv.local_physical == t.dst.addr
                        && mv.remote_physical == t.src.addr
                })?;
                out.dst.addr = mv.local_virtual;
                // As the socket will see it, once LOCAL_IN has given the
                // source its virtual address too.
                let seen = Tuple {
                    src: Endpoint::from_ip(mv.remote_virtual, t.src.port),
                    ..out
                };
                if taken(t, false) || !taken(&seen, true) {
                    return None;
                }
            }
            Hook::LocalIn => {
                let mv = moves.clone().find(|mv| {
                    mv.remote_moved()
                        && mv.remote_physical == t.src.addr
                        && mv.local_virtual == t.dst.addr
                })?;
                out.src.addr = mv.remote_virtual;
                if taken(t, false) {
                    return None;
                }
            }
        }
        Some(out)
    }
}
