// SPDX-License-Identifier: GPL-2.0

//! Connection virtualization (paper section 3.1).
//!
//! A connection's virtual endpoints are its initial physical ones, so a
//! connection is virtualized simply by remembering its 4-tuple when it is
//! opened: nothing is translated until it migrates. This file keeps that
//! small per-connection record, one table per network namespace, filled and
//! emptied by the socket-call interception of `interception.rs`.

use crate::vcmp::Endpoint;
use kernel::{
    alloc::flags::GFP_ATOMIC,
    new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::SpinLock,
};

/// How a connection came to be: the side that called `connect()` or
/// `accept()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Actively opened with `connect()`.
    Connect,
    /// Passively opened, returned by `accept()`.
    Accept,
}

impl Origin {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Accept => "accept",
        }
    }
}

/// The record of one virtual connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VirtualConnection {
    /// Local virtual endpoint (the initial local physical one).
    pub(crate) local: Endpoint,
    /// Remote virtual endpoint (the initial remote physical one).
    pub(crate) remote: Endpoint,
    /// Thread group id of the process that opened it.
    pub(crate) pid: i32,
    /// How it was opened.
    pub(crate) origin: Origin,
}

/// Identity of a socket: the address of its `struct sock`, used only as a key
/// and never dereferenced.
pub(crate) type SockKey = usize;

/// The virtual connections of one network namespace.
#[pin_data]
pub(crate) struct ConnectionTable {
    /// Taken by kprobe handlers (process context, preemption disabled) and by
    /// readers in process context; never in interrupt context.
    #[pin]
    conns: SpinLock<RBTree<SockKey, VirtualConnection>>,
}

impl ConnectionTable {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            conns <- new_spinlock!(RBTree::new(), "vnat_connections"),
        })
    }

    /// Records a connection; a socket that connects again replaces its old
    /// record. Fails only when memory is short (the kprobe context cannot
    /// sleep), in which case the connection stays untracked.
    pub(crate) fn insert(&self, sk: SockKey, conn: VirtualConnection) -> Result {
        // Allocate before taking the lock.
        let node = RBTreeNode::new(sk, conn, GFP_ATOMIC)?;
        // Free a replaced node after the lock is released.
        let _old = self.conns.lock().insert(node);
        Ok(())
    }

    /// Forgets the connection of a socket, if it was recorded.
    pub(crate) fn remove(&self, sk: SockKey) -> Option<VirtualConnection> {
        // Free the node after the lock is released.
        let node = self.conns.lock().remove_node(&sk);
        node.map(|n| n.to_key_value().1)
    }

    /// Number of recorded connections.
    pub(crate) fn len(&self) -> usize {
        self.conns.lock().iter().count()
    }

    /// Calls `f` on every recorded connection, under the table lock: `f` must
    /// not sleep.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&VirtualConnection)) {
        for (_, c) in self.conns.lock().iter() {
            f(c);
        }
    }

    /// Whether a connection with these virtual endpoints is recorded.
    pub(crate) fn find(&self, local: Endpoint, remote: Endpoint) -> Option<VirtualConnection> {
        self.conns
            .lock()
            .iter()
            .map(|(_, c)| *c)
            .find(|c| c.local == local && c.remote == remote)
    }
}

#[kunit_tests(vnat_virtualization)]
mod tests {
    use super::*;
    use kernel::{alloc::flags::GFP_KERNEL, sync::Arc};

    fn conn(lport: u16, pid: i32) -> VirtualConnection {
        VirtualConnection {
            local: Endpoint::new(0x0a00_0001, lport),
            remote: Endpoint::new(0x0a00_0002, 80),
            pid,
            origin: Origin::Connect,
        }
    }

    #[test]
    fn insert_replace_remove() -> Result {
        let t = Arc::pin_init(ConnectionTable::new(), GFP_KERNEL)?;
        t.insert(1, conn(1000, 7))?;
        t.insert(2, conn(1001, 8))?;
        assert_eq!(t.len(), 2);
        // The same socket connecting again replaces its record.
        t.insert(1, conn(1002, 9))?;
        assert_eq!(t.len(), 2);
        let found = t.find(
            Endpoint::new(0x0a00_0001, 1002),
            Endpoint::new(0x0a00_0002, 80),
        );
        assert_eq!(found.map(|c| c.pid), Some(9));
        assert!(t
            .find(
                Endpoint::new(0x0a00_0001, 1000),
                Endpoint::new(0x0a00_0002, 80)
            )
            .is_none());
        assert_eq!(t.remove(1).map(|c| c.pid), Some(9));
        assert!(t.remove(1).is_none());
        assert_eq!(t.len(), 1);
        Ok(())
    }
}
