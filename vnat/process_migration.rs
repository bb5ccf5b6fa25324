// SPDX-License-Identifier: GPL-2.0

//! Process migration (paper 3.3): a process moves to another host with its
//! connections, by a checkpoint/restore mechanism (CRIU), and VNAT's state
//! of each connection goes with it, its key included ("part of the
//! connection state saved and transported by the migration mechanism").
//!
//! On the old host `conn-export` saves each connection ([`save`], the
//! format of `export.rs`). On the new host `conn-import` makes it expected
//! ([`Arrivals`]) before CRIU restores the sockets: the socket that binds
//! its local virtual address is let ([`Arrivals::binds`]: the address is
//! not this host's; the shim makes the socket `IP_TRANSPARENT`, as for a
//! moved connection), and the socket that connects from its local virtual
//! endpoint to its remote one is recorded with the saved state
//! ([`Arrivals::take`], [`restore`]) rather than as a new connection. It
//! then resumes at an address of this host as a host's connections do when
//! the host moves (`conn-resume`): vnatd tells the peer, under the
//! connection's own key.

use crate::{
    export::{Saved, FLAG_KEYED, FLAG_SUSPENDED, FLAG_UNVALIDATED},
    ffi::{self, Secret},
    helper::Helper,
    vcmp::Endpoint,
    vcmp2::Replay,
    virtualization::{
        Asking, Auth, ConnectionKeys, KeyState, Origin, Policy, State, VirtualConnection,
    },
};
use core::net::IpAddr;
use kernel::{
    alloc::flags::GFP_KERNEL,
    new_spinlock_irq,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLockIrq,
    },
};

/// Most connections one namespace expects at a time.
pub(crate) const MAX_ARRIVALS: usize = 1024;

/// How long an expected connection waits for its socket.
const ARRIVAL_TTL_NS: i64 = 300 * 1_000_000_000;

/// The state of connection `c` to save, with its keys. Of a connection in
/// the middle of a move, the endpoint the peer knows (the move's update
/// may not have reached it).
pub(crate) fn save(c: &VirtualConnection, keys: Option<&ConnectionKeys>) -> Saved {
    let local_physical = if c.state == State::Resuming {
        c.previous_local
    } else {
        c.mapping.local_physical
    };
    let mut flags = 0;
    if c.suspended {
        flags |= FLAG_SUSPENDED;
    }
    if c.unvalidated {
        flags |= FLAG_UNVALIDATED;
    }
    let (mut send_key, mut recv_key) = ([0; 32], [0; 32]);
    if let Some(k) = keys {
        flags |= FLAG_KEYED;
        send_key = *k.send.bytes();
        recv_key = *k.recv.bytes();
    }
    Saved {
        proto: c.mapping.proto,
        local_virtual: c.mapping.local_virtual,
        remote_virtual: c.mapping.remote_virtual,
        local_physical,
        remote_physical: c.mapping.remote_physical,
        origin: c.origin as u8,
        policy: c.policy as u8,
        helper: c.helper_choice as u8,
        flags,
        auth: c.key.auth as u8,
        asks: c.key.asking != Asking::No,
        refusals: c.key.refusals,
        key_id: c.key.id,
        named: c.key.named,
        sent: c.key.sent,
        accepted: c.key.replay.last(),
        send_key,
        recv_key,
    }
}

/// How far a restored connection's counter skips ahead of the saved one:
/// past the messages that may have gone out under its key on the host it
/// left after it was saved (the suspension a dump asks for is sealed after
/// the export read the counter, and may be sent again), which the peer
/// would take for replays and refuse. The peer takes any greater counter.
const RESTORED_COUNTER_SKIP: u64 = 1 << 32;

/// The record of a restored connection, from its saved state, for the
/// socket of process `pid` (its keys: [`saved_keys`]). `EINVAL` for a
/// value that is not one of the spec's enums, or an origin that is not a
/// socket's own.
pub(crate) fn restore(s: &Saved, pid: i32) -> Result<VirtualConnection> {
    let origin = Origin::try_from(s.origin)?;
    if !origin.owns_socket() {
        return Err(EINVAL);
    }
    let auth = Auth::try_from(s.auth)?;
    let keyed = s.flags & FLAG_KEYED != 0;
    if keyed != (auth == Auth::Keyed) {
        return Err(EINVAL);
    }
    let mut c = VirtualConnection::new(s.proto, s.local_virtual, s.remote_virtual, pid, origin);
    c.mapping.local_physical = s.local_physical;
    c.mapping.remote_physical = s.remote_physical;
    c.policy = Policy::try_from(s.policy)?;
    c.helper_choice = Helper::try_from(s.helper)?;
    c.suspended = s.flags & FLAG_SUSPENDED != 0;
    c.unvalidated = s.flags & FLAG_UNVALIDATED != 0;
    c.previous_local = s.local_physical;
    c.left = s.local_physical;
    c.previous_remote = s.remote_physical;
    c.state = if c.unvalidated {
        State::Validating
    } else if c.mapping.is_native() {
        State::Native
    } else {
        State::Migrated
    };
    let mut replay = Replay::new();
    replay.commit(s.accepted);
    c.key = KeyState {
        auth,
        since_ns: ffi::now_ns(),
        asking: if s.asks && auth == Auth::Pending {
            Asking::Due
        } else {
            Asking::No
        },
        refusals: s.refusals,
        id: s.key_id,
        named: s.named,
        sent: s.sent.saturating_add(RESTORED_COUNTER_SKIP),
        replay,
    };
    Ok(c)
}

/// The keys of a saved connection, if it had them.
fn saved_keys(s: &Saved) -> Option<ConnectionKeys> {
    (s.flags & FLAG_KEYED != 0).then(|| {
        ConnectionKeys::new(
            Secret::derive(|b| *b = s.send_key),
            Secret::derive(|b| *b = s.recv_key),
        )
    })
}

/// A connection expected here, and until when.
struct Arrival {
    saved: Saved,
    /// Its keys, made (and allocated) when it is expected: the probe that
    /// takes it runs where memory is had only atomically.
    keys: Option<KBox<ConnectionKeys>>,
    until_ns: i64,
}

/// An expected connection that came: its saved state and its keys.
pub(crate) type Arrived = (Saved, Option<KBox<ConnectionKeys>>);

/// An expected connection's virtual 5-tuple.
type Tuple = (u8, Endpoint, Endpoint);

/// Why [`Arrivals::expect`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotExpected {
    /// The same connection is expected already.
    Twice,
    /// [`MAX_ARRIVALS`] are.
    Full,
    /// Memory is short.
    NoMemory,
}

struct List {
    by_tuple: RBTree<Tuple, Arrival>,
    len: usize,
}

impl List {
    /// Forgets the arrivals that expired by `now`; returns how many.
    fn prune(&mut self, now: i64) -> usize {
        let mut n = 0;
        let mut cursor = self.by_tuple.cursor_front_mut();
        while let Some(cur) = cursor {
            if cur.current().1.until_ns > now {
                cursor = cur.move_next();
                continue;
            }
            let (next, _gone) = cur.remove_current();
            n += 1;
            cursor = next;
        }
        self.len -= n;
        n
    }
}

/// The connections one namespace expects (`conn-import`), until a restored
/// socket takes each, or it expires.
#[pin_data]
pub(crate) struct Arrivals {
    /// Taken by the probes (process context with preemption off) and by
    /// netlink: interrupts are off while it is held, as for the table of
    /// connections.
    #[pin]
    list: SpinLockIrq<List>,
    /// How many are expected: the probes look at the list only when some
    /// are.
    len: Atomic<usize>,
}

impl Arrivals {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_spinlock_irq!(
                List {
                    by_tuple: RBTree::new(),
                    len: 0,
                },
                "vnat_arrivals"
            ),
            len: Atomic::new(0),
        })
    }

    /// Expects the connection `saved` describes; returns how many expired
    /// ones were forgotten meanwhile.
    pub(crate) fn expect(&self, saved: Saved) -> core::result::Result<usize, NotExpected> {
        let now = ffi::now_ns();
        let tuple = (saved.proto, saved.local_virtual, saved.remote_virtual);
        let keys = saved_keys(&saved)
            .map(|k| KBox::new(k, GFP_KERNEL))
            .transpose()
            .map_err(|_| NotExpected::NoMemory)?;
        let node = RBTreeNode::new(
            tuple,
            Arrival {
                saved,
                keys,
                until_ns: now.saturating_add(ARRIVAL_TTL_NS),
            },
            GFP_KERNEL,
        )
        .map_err(|_| NotExpected::NoMemory)?;
        let mut list = self.list.lock();
        let expired = list.prune(now);
        let r = if list.by_tuple.get(&tuple).is_some() {
            Err(NotExpected::Twice)
        } else if list.len >= MAX_ARRIVALS {
            Err(NotExpected::Full)
        } else {
            list.by_tuple.insert(node);
            list.len += 1;
            Ok(expired)
        };
        self.len.store(list.len, Relaxed);
        r
    }

    /// Takes the expected connection `proto`, `local` to `remote` (virtual
    /// endpoints), if it is expected, with its keys; also returns how many
    /// expired ones were forgotten. Any context.
    pub(crate) fn take(
        &self,
        proto: u8,
        local: Endpoint,
        remote: Endpoint,
    ) -> (Option<Arrived>, usize) {
        if self.len.load(Relaxed) == 0 {
            return (None, 0);
        }
        let mut list = self.list.lock();
        let expired = list.prune(ffi::now_ns());
        let found = list.by_tuple.remove(&(proto, local, remote));
        if found.is_some() {
            list.len -= 1;
        }
        self.len.store(list.len, Relaxed);
        (found.map(|a| (a.saved, a.keys)), expired)
    }

    /// Whether a connection expected here has local virtual address `addr`
    /// (a restored socket binds it). Any context.
    pub(crate) fn binds(&self, proto: u8, addr: IpAddr) -> bool {
        if self.len.load(Relaxed) == 0 {
            return false;
        }
        let now = ffi::now_ns();
        self.list.lock().by_tuple.values().any(|a| {
            a.until_ns > now && a.saved.proto == proto && a.saved.local_virtual.addr == addr
        })
    }
}

#[kunit_tests(vnat_process_migration)]
mod tests {
    use super::*;
    use crate::mapping::PROTO_TCP;

    /// A keyed, migrated connection saved on one host is restored on
    /// another as it was: endpoints, policy, helper, key and counters (the
    /// one it sends under skipped ahead); and saved there again, it is the
    /// same record but for that counter.
    #[test]
    fn a_saved_connection_restores_as_it_was() {
        let (lv, rv) = (
            Endpoint::new(0x0a01_0002, 40000),
            Endpoint::new(0x0a09_0002, 5000),
        );
        let mut c = VirtualConnection::new(PROTO_TCP, lv, rv, 7, Origin::Accept);
        c.mapping.local_physical = Endpoint::new(0x0a02_0002, 40000);
        c.settle();
        c.policy = Policy::Preempt;
        c.helper_choice = Helper::Stop;
        c.key.auth = Auth::Keyed;
        c.key.id = 99;
        c.key.sent = 12;
        c.key.replay.commit(34);
        let keys = ConnectionKeys::new(
            Secret::derive(|b| *b = [1; 32]),
            Secret::derive(|b| *b = [2; 32]),
        );
        let saved = save(&c, Some(&keys));
        let r = restore(&saved, 8).expect("a saved state restores");
        let rkeys = saved_keys(&saved);
        assert_eq!(r.mapping, c.mapping);
        assert_eq!(r.state, State::Migrated);
        assert_eq!(
            (r.pid, r.origin, r.policy),
            (8, Origin::Accept, Policy::Preempt)
        );
        assert_eq!(r.helper_choice, Helper::Stop);
        assert_eq!(
            (r.key.auth, r.key.id, r.key.sent),
            (Auth::Keyed, 99, 12 + RESTORED_COUNTER_SKIP)
        );
        assert_eq!(r.key.replay.last(), 34);
        assert_eq!(r.key.asking, Asking::No);
        let rkeys = rkeys.expect("keys restore");
        assert_eq!(rkeys.send.bytes(), &[1; 32]);
        assert_eq!(rkeys.recv.bytes(), &[2; 32]);
        let mut again = save(&r, Some(&rkeys));
        assert_eq!(again.sent, 12 + RESTORED_COUNTER_SKIP);
        again.sent = saved.sent;
        assert!(again.encode() == saved.encode());
    }

    /// A UDP flow's record (origin update) is not a socket's own: no socket
    /// could take it.
    #[test]
    fn a_flow_does_not_restore() {
        let (lv, rv) = (
            Endpoint::new(0x0a01_0002, 53),
            Endpoint::new(0x0a09_0002, 5000),
        );
        let c = VirtualConnection::new(17, lv, rv, 7, Origin::Update);
        assert!(restore(&save(&c, None), 8).is_err());
    }
}
