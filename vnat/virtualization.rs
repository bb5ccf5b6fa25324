// SPDX-License-Identifier: GPL-2.0

//! Connection virtualization (paper section 3.1).
//!
//! A connection's virtual endpoints are its initial physical ones, so a
//! connection is virtualized simply by remembering its 4-tuple when it is
//! opened: nothing is translated until it migrates. This file keeps that
//! small per-connection record, one table per network namespace, filled and
//! emptied by the socket-call interception of `interception.rs`, and updated
//! by migration (`migration.rs`).

use crate::{
    ffi,
    mapping::{Mapping, PROTO_TCP},
    vcmp::Endpoint,
};
use kernel::{
    alloc::flags::GFP_ATOMIC,
    new_spinlock_irq,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::SpinLockIrq,
};

/// How a connection came to be: the side that called `connect()` or
/// `accept()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Actively opened with `connect()`.
    Connect,
    /// Passively opened, returned by `accept()`.
    Accept,
    /// Open already when VNAT started.
    Existing,
}

impl Origin {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Accept => "accept",
            Self::Existing => "existing",
        }
    }
}

/// Where a connection is in its migration (paper 3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Physical endpoints equal virtual ones: nothing to translate.
    Native,
    /// This end moved; the peer has not confirmed yet. Only incoming packets
    /// are translated, so that nothing leaves with the new address before
    /// the peer knows it (the peer would answer with a reset).
    Resuming,
    /// Translated both ways.
    Migrated,
}

impl State {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Resuming => "resuming",
            Self::Migrated => "migrated",
        }
    }
}

/// The record of one virtual connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VirtualConnection {
    /// Virtual and physical endpoints.
    pub(crate) mapping: Mapping,
    /// Thread group id of the process that opened it.
    pub(crate) pid: i32,
    /// How it was opened.
    pub(crate) origin: Origin,
    /// Migration state.
    pub(crate) state: State,
    /// The local physical endpoint before the move in progress, to go back
    /// to if the peer cannot be updated.
    pub(crate) previous_local: Endpoint,
}

impl VirtualConnection {
    /// A new, not migrated connection.
    pub(crate) fn new(local: Endpoint, remote: Endpoint, pid: i32, origin: Origin) -> Self {
        Self {
            mapping: Mapping::native(PROTO_TCP, local, remote),
            pid,
            origin,
            state: State::Native,
            previous_local: local,
        }
    }

    /// The local virtual endpoint.
    pub(crate) fn local(&self) -> Endpoint {
        self.mapping.local_virtual
    }

    /// The remote virtual endpoint.
    pub(crate) fn remote(&self) -> Endpoint {
        self.mapping.remote_virtual
    }

    /// Sets the state that fits the mapping once the peer agreed.
    pub(crate) fn settle(&mut self) {
        self.state = if self.mapping.is_native() {
            State::Native
        } else {
            State::Migrated
        };
        self.previous_local = self.mapping.local_physical;
    }
}

/// Identity of a socket: the address of its `struct sock`. The table holds a
/// reference on every socket it records, dropped when the record goes.
pub(crate) type SockKey = usize;

/// A virtual 4-tuple: local address and port, remote address and port.
type TupleKey = (u32, u16, u32, u16);

fn tuple_key(c: &VirtualConnection) -> TupleKey {
    let (l, r) = (c.local(), c.remote());
    (l.addr, l.port, r.addr, r.port)
}

/// The records, by socket, and an index by virtual 4-tuple (virtual
/// endpoints never change, so the index stays valid as mappings change).
struct Tables {
    conns: RBTree<SockKey, VirtualConnection>,
    by_tuple: RBTree<TupleKey, SockKey>,
}

impl Tables {
    /// Drops the index entry of record `c` of socket `sk`, if it is its.
    fn unindex(&mut self, sk: SockKey, c: &VirtualConnection) {
        let k = tuple_key(c);
        if self.by_tuple.get(&k) == Some(&sk) {
            self.by_tuple.remove(&k);
        }
    }
}

/// The virtual connections of one network namespace.
#[pin_data(PinnedDrop)]
pub(crate) struct ConnectionTable {
    /// Taken by kprobe handlers, in process and softirq context, and by
    /// process context: interrupts are disabled while it is held.
    #[pin]
    tables: SpinLockIrq<Tables>,
}

impl ConnectionTable {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            tables <- new_spinlock_irq!(
                Tables {
                    conns: RBTree::new(),
                    by_tuple: RBTree::new(),
                },
                "vnat_connections"
            ),
        })
    }

    /// Records a connection, taking a reference on its socket; a socket that
    /// connects again replaces its old record. Fails only when memory is
    /// short (probes cannot sleep), in which case it stays untracked.
    pub(crate) fn insert(&self, sk: SockKey, conn: VirtualConnection) -> Result {
        let node = RBTreeNode::new(sk, conn, GFP_ATOMIC)?;
        let index = RBTreeNode::new(tuple_key(&conn), sk, GFP_ATOMIC)?;
        let mut t = self.tables.lock();
        let old = t.conns.insert(node).map(|o| o.to_key_value().1);
        if let Some(o) = &old {
            t.unindex(sk, o);
        }
        t.by_tuple.insert(index);
        drop(t);
        if old.is_none() {
            ffi::sock_hold(sk);
        }
        Ok(())
    }

    /// Forgets the connection of a socket, if it was recorded.
    pub(crate) fn remove(&self, sk: SockKey) -> Option<VirtualConnection> {
        let mut t = self.tables.lock();
        let c = t.conns.remove(&sk)?;
        t.unindex(sk, &c);
        drop(t);
        ffi::sock_put(sk);
        Some(c)
    }

    /// Number of recorded connections.
    pub(crate) fn len(&self) -> usize {
        self.tables.lock().conns.iter().count()
    }

    /// Calls `f` on every recorded connection, under the table lock with
    /// interrupts off: `f` must be short and must not sleep.
    pub(crate) fn for_each(&self, mut f: impl FnMut(SockKey, &VirtualConnection)) {
        for (k, c) in self.tables.lock().conns.iter() {
            f(*k, c);
        }
    }

    /// Changes the records `f` selects (returning `true`), under the lock.
    /// Returns how many changed.
    pub(crate) fn update(
        &self,
        mut f: impl FnMut(SockKey, &mut VirtualConnection) -> bool,
    ) -> usize {
        let mut guard = self.tables.lock();
        let mut n = 0;
        for (k, c) in guard.conns.iter_mut() {
            if f(*k, c) {
                n += 1;
            }
        }
        n
    }

    /// The socket and record of the connection with these virtual
    /// endpoints, in O(log n) (the paper's prototype searched linearly).
    pub(crate) fn find(
        &self,
        local: Endpoint,
        remote: Endpoint,
    ) -> Option<(SockKey, VirtualConnection)> {
        let t = self.tables.lock();
        let sk = *t
            .by_tuple
            .get(&(local.addr, local.port, remote.addr, remote.port))?;
        t.conns.get(&sk).map(|c| (sk, *c))
    }

    /// Changes the record of socket `sk`, if it still exists.
    pub(crate) fn with<R>(
        &self,
        sk: SockKey,
        f: impl FnOnce(&mut VirtualConnection) -> R,
    ) -> Option<R> {
        self.tables.lock().conns.get_mut(&sk).map(f)
    }
}

#[pinned_drop]
impl PinnedDrop for ConnectionTable {
    fn drop(self: Pin<&mut Self>) {
        // Namespace exit or module unload: give moved sockets back their
        // ordinary routing and drop the socket references.
        let mut guard = self.tables.lock();
        for (k, c) in guard.conns.iter() {
            if c.mapping.local_physical != c.mapping.local_virtual {
                ffi::sock_set_transparent(*k, false);
            }
            ffi::sock_put(*k);
        }
        guard.conns = RBTree::new();
        guard.by_tuple = RBTree::new();
    }
}

#[kunit_tests(vnat_virtualization)]
mod tests {
    use super::*;

    fn conn(lport: u16, pid: i32) -> VirtualConnection {
        VirtualConnection::new(
            Endpoint::new(0x0a00_0001, lport),
            Endpoint::new(0x0a00_0002, 80),
            pid,
            Origin::Connect,
        )
    }

    #[test]
    fn settle_follows_the_mapping() {
        let mut c = conn(1000, 1);
        c.mapping.local_physical = Endpoint::new(0x0a00_0003, 1000);
        c.state = State::Resuming;
        c.settle();
        assert_eq!(c.state, State::Migrated);
        assert_eq!(c.previous_local, c.mapping.local_physical);
        c.mapping.local_physical = c.mapping.local_virtual;
        c.settle();
        assert_eq!(c.state, State::Native);
    }
}
