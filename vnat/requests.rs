// SPDX-License-Identifier: GPL-2.0

//! Work for vnatd: requests to move or suspend connections (from netlink or
//! from the address notifier), which connections each one selects, and the
//! addresses that went away while connections used them (automatic resume,
//! paper 3.3.1). Queued in any context, taken by vnatd.

use crate::{
    ffi,
    vcmp::Endpoint,
    virtualization::{State, VirtualConnection},
};
use core::net::IpAddr;
use kernel::{new_spinlock_irq, prelude::*, sync::SpinLockIrq};

/// Which connections a request moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selector {
    /// Those whose local physical address is this one:
    /// a host's move.
    Address(IpAddr),
    /// Those opened by this process (thread group id): a process's move.
    Pid(i32),
    /// Those whose local physical address is `from` and whose peer's
    /// (remote physical) is `peer`, and that are neither in the middle of
    /// a move nor suspended: the connections whose route changed.
    Path {
        /// Local physical address.
        from: IpAddr,
        /// Remote physical address.
        peer: IpAddr,
    },
    /// Every connection: the host goes to sleep.
    All,
    /// Those that system sleep suspended, on this path (as
    /// [`Selector::Path`]): the host woke up.
    Slept {
        /// Local physical address.
        from: IpAddr,
        /// Remote physical address.
        peer: IpAddr,
    },
    /// The one with these virtual endpoints.
    Connection {
        /// IP protocol number.
        proto: u8,
        /// Local virtual endpoint.
        local: Endpoint,
        /// Remote virtual endpoint.
        remote: Endpoint,
    },
}

impl Selector {
    /// Whether `c` is one of the selected connections.
    pub(crate) fn matches(&self, c: &VirtualConnection) -> bool {
        let m = &c.mapping;
        match *self {
            Selector::Address(a) => m.local_physical.addr == a,
            Selector::Pid(p) => c.pid == p,
            Selector::Path { from, peer } => {
                m.local_physical.addr == from
                    && m.remote_physical.addr == peer
                    && c.state != State::Resuming
                    && !c.suspended
            }
            Selector::All => true,
            Selector::Slept { from, peer } => {
                m.local_physical.addr == from && m.remote_physical.addr == peer && c.slept
            }
            Selector::Connection {
                proto,
                local,
                remote,
            } => m.proto == proto && m.local_virtual == local && m.remote_virtual == remote,
        }
    }
}

impl kernel::fmt::Display for Selector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Selector::Address(a) => write!(f, "from {a}"),
            Selector::Pid(p) => write!(f, "of pid {p}"),
            Selector::Path { from, peer } => write!(f, "from {from} to {peer}"),
            Selector::All => write!(f, "of the host"),
            Selector::Slept { from, peer } => write!(f, "from {from} to {peer}, asleep"),
            Selector::Connection { local, remote, .. } => write!(f, "{local} -> {remote}"),
        }
    }
}

/// A request to vnatd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// The selected connections move to local address `to` (host byte
    /// order).
    Migrate {
        /// Which connections.
        which: Selector,
        /// The address they use from now on.
        to: IpAddr,
    },
    /// The selected connections are suspended here (paper 3.3.1).
    Suspend {
        /// Which connections.
        which: Selector,
        /// By system sleep: only those whose peer is another host, marked
        /// to resume on wake.
        sleep: bool,
    },
}

/// Pending work of one namespace's vnatd: requests, and addresses that went
/// away while connections used them (automatic resume, paper 3.3.1).
#[pin_data]
pub(crate) struct Requests {
    /// Taken by the address notifier and the control file (process context)
    /// and by vnatd.
    #[pin]
    inner: SpinLockIrq<RequestsInner>,
}

/// An address that went away while connections used it.
#[derive(Clone, Copy)]
struct Lost {
    addr: IpAddr,
    /// When (`ffi::now_ns()`).
    since_ns: i64,
    /// Whether its connections were told stranded ([`Requests::stranded`]).
    reported: bool,
}

struct RequestsInner {
    queue: KVec<Request>,
    lost: KVec<Lost>,
    reroute: bool,
}

impl Requests {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock_irq!(RequestsInner { queue: KVec::new(), lost: KVec::new(), reroute: false }, "vnat_requests"),
        })
    }

    /// Queues a request; vnatd must be woken afterwards.
    pub(crate) fn push(&self, r: Request) -> Result {
        self.inner.lock().queue.push(r, GFP_ATOMIC)?;
        Ok(())
    }

    /// Takes every queued request.
    pub(crate) fn take(&self) -> KVec<Request> {
        core::mem::take(&mut self.inner.lock().queue)
    }

    /// Remembers that `addr` went away while connections used it; `false`
    /// if memory was short.
    pub(crate) fn address_lost(&self, addr: IpAddr) -> bool {
        let lost = Lost {
            addr,
            since_ns: ffi::now_ns(),
            reported: false,
        };
        let mut inner = self.inner.lock();
        inner.lost.iter().any(|l| l.addr == addr) || inner.lost.push(lost, GFP_ATOMIC).is_ok()
    }

    /// The lost addresses that no address of their family replaced for
    /// `after_ns`, each once: their connections are stranded (a move from
    /// a dual-stack network to an IPv4-only one strands the IPv6 ones).
    /// They stay lost: an address of their family that comes later still
    /// takes their connections.
    pub(crate) fn stranded(&self, after_ns: i64, out: &mut KVec<IpAddr>) {
        let now = ffi::now_ns();
        let mut inner = self.inner.lock();
        for l in inner.lost.iter_mut() {
            if !l.reported && now - l.since_ns >= after_ns && out.push(l.addr, GFP_ATOMIC).is_ok() {
                l.reported = true;
            }
        }
    }

    /// The addresses lost now (none if memory is short).
    pub(crate) fn lost_addrs(&self) -> KVec<IpAddr> {
        let mut out = KVec::new();
        let inner = self.inner.lock();
        if out.reserve(inner.lost.len(), GFP_ATOMIC).is_ok() {
            for l in inner.lost.iter() {
                let _ = out.push_within_capacity(l.addr);
            }
        }
        out
    }

    /// Forgets the lost addresses `gone` says are no longer lost (no
    /// connection uses them, or the host has them again).
    pub(crate) fn forget_lost(&self, mut gone: impl FnMut(IpAddr) -> bool) {
        self.inner.lock().lost.retain(|l| !gone(l.addr));
    }

    /// Whether an address went away while connections used it, and no
    /// move took them from it yet.
    pub(crate) fn has_lost(&self) -> bool {
        !self.inner.lock().lost.is_empty()
    }

    /// Asks vnatd to look at where its connections' routes now leave from
    /// ([`crate::migration::reroute`]); returns whether it was not asked
    /// yet.
    pub(crate) fn reroute(&self) -> bool {
        !core::mem::replace(&mut self.inner.lock().reroute, true)
    }

    /// Whether vnatd was asked to look at the routes; it is looking now.
    pub(crate) fn take_reroute(&self) -> bool {
        core::mem::take(&mut self.inner.lock().reroute)
    }

    /// `addr` appeared: queues a move to it of what used each lost address
    /// of its family (a connection keeps its family; the lost addresses of
    /// the other wait for an address of theirs). Returns whether a request
    /// was queued.
    pub(crate) fn address_found(&self, addr: IpAddr) -> bool {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let mut queued = false;
        for &Lost { addr: from, .. } in inner.lost.iter() {
            if from.is_ipv6() == addr.is_ipv6()
                && from != addr
                && inner
                    .queue
                    .push(
                        Request::Migrate {
                            which: Selector::Address(from),
                            to: addr,
                        },
                        GFP_ATOMIC,
                    )
                    .is_ok()
            {
                queued = true;
            }
        }
        inner.lost.retain(|l| l.addr.is_ipv6() != addr.is_ipv6());
        queued
    }
}
