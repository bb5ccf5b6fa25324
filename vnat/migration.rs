// SPDX-License-Identifier: GPL-2.0

//! Connection migration (paper section 3.3): what suspending, resuming and
//! updating a connection do to its mapping. The VCMP conversations that
//! carry the updates are vnatd's (`vnatd_kthread/vnatd.rs`).
//!
//! Suspending needs nothing (3.3.1): a host may vanish from a network
//! without notice. Resuming (3.3.2) starts when the host has a new address:
//!
//! 1. [`begin`]: every connection whose local physical address was the old
//!    one gets the new one and the state `Resuming`; its incoming rules go
//!    live at once, so that the peer's packets are understood as soon as the
//!    peer knows the new address; its outgoing packets keep their old form
//!    until then, since the peer would answer the new one with a reset.
//! 2. vnatd sends `VNAT_UPD` to each peer's vnatd, one TCP stream per peer,
//!    batched.
//! 3. The peer, in [`accept_update`], points the connection's remote
//!    physical endpoint at the new one, publishes its rules, and only then
//!    answers `VNAT_UPD_R` with its own current physical endpoint.
//! 4. [`finish`] records that endpoint and translates both ways; if the peer
//!    refuses, or does not answer after the retries, [`abort`] puts the
//!    connection back as it was.

use crate::{
    command::Command,
    ffi::{self, NlConn},
    netlink::{self, Event},
    netns::{Counter, NetState},
    vcmp::{Endpoint, Update, UpdateReply, PROTO_UDP},
    virtualization::{Key, Origin, Policy, State, VcmpState, VirtualConnection},
};
use kernel::{new_spinlock_irq, prelude::*, sync::SpinLockIrq};

/// Which connections a request moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selector {
    /// Those whose local physical address is this one (host byte order):
    /// a host's move.
    Address(u32),
    /// Those opened by this process (thread group id): a process's move.
    Pid(i32),
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
        let quad = |f: &mut core::fmt::Formatter<'_>, a: u32| {
            let [a, b, c, d] = a.to_be_bytes();
            write!(f, "{a}.{b}.{c}.{d}")
        };
        match self {
            Selector::Address(a) => {
                f.write_str("from ")?;
                quad(f, *a)
            }
            Selector::Pid(p) => write!(f, "of pid {p}"),
            Selector::Connection { local, remote, .. } => {
                quad(f, local.addr)?;
                write!(f, ":{} -> ", local.port)?;
                quad(f, remote.addr)?;
                write!(f, ":{}", remote.port)
            }
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
        to: u32,
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

struct RequestsInner {
    queue: KVec<Request>,
    lost: KVec<u32>,
}

impl Requests {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock_irq!(RequestsInner { queue: KVec::new(), lost: KVec::new() }, "vnat_requests"),
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
}

/// The address notifier saw `addr` (host byte order) appear or go away.
/// Returns whether vnatd has a new request.
pub(crate) fn address_event(state: &NetState, up: bool, addr: u32) -> bool {
    if !crate::config::AUTO_MIGRATE.get_bool() {
        return false;
    }
    if !up {
        let mut used = false;
        state
            .connections
            .for_each(|_, c| used |= c.mapping.local_physical.addr == addr);
        if used {
            let mut inner = state.requests.inner.lock();
            if !inner.lost.contains(&addr) && inner.lost.push(addr, GFP_ATOMIC).is_err() {
                state.count(Counter::MigrationsFailed, 1);
            }
        }
        return false;
    }
    let mut inner = state.requests.inner.lock();
    let lost = core::mem::take(&mut inner.lost);
    let mut queued = false;
    for from in lost {
        if from != addr
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
    queued
}

/// An update to send: which connection, and the message.
pub(crate) struct Outgoing {
    /// The connection.
    pub(crate) key: Key,
    /// The peer's vnatd address (the connection's remote physical address).
    pub(crate) peer: u32,
    /// The `VNAT_UPD` for it.
    pub(crate) update: Update,
    /// The connection as the `resuming` event shows it.
    pub(crate) event: NlConn,
}

/// Keeps a socket's `IP_TRANSPARENT` in step with its mapping: needed while
/// its local virtual address is not where it sends from. An unconnected UDP
/// socket chooses its source per datagram and serves other peers too: it is
/// left alone.
fn sync_transparency(k: Key, c: &VirtualConnection) {
    if c.origin.owns_socket() {
        ffi::sock_set_transparent(k.sk, c.mapping.local_physical != c.mapping.local_virtual);
    }
}

/// Step 1: moves the connections `which` selects to local address `to` and
/// says which updates to send. The caller publishes the rules, sends the
/// updates and tells the events group.
pub(crate) fn begin(
    state: &NetState,
    which: Selector,
    to: u32,
    out: &mut KVec<Outgoing>,
) -> Result {
    let mut err = Ok(());
    state.connections.update(|key, c| {
        if !which.matches(c) || c.mapping.local_physical.addr == to || err.is_err() {
            return false;
        }
        let update = Update {
            proto: c.mapping.proto,
            remote_virtual: c.mapping.remote_virtual,
            local_virtual: c.mapping.local_virtual,
            local_physical: Endpoint::new(to, c.mapping.local_physical.port),
        };
        let peer = c.mapping.remote_physical.addr;
        let previous = c.mapping.local_physical;
        c.mapping.local_physical = update.local_physical;
        let event = NlConn::from(&*c);
        c.mapping.local_physical = previous;
        // Allocation under the table lock: atomic.
        if let Err(e) = out.push(
            Outgoing {
                key,
                peer,
                update,
                event,
            },
            GFP_ATOMIC,
        ) {
            err = Err(e.into());
            return false;
        }
        if c.state != State::Resuming {
            c.previous_local = c.mapping.local_physical;
        }
        c.mapping.local_physical = update.local_physical;
        c.state = State::Resuming;
        c.vcmp = VcmpState::Idle;
        c.vcmp_attempts = 0;
        sync_transparency(key, c);
        true
    });
    err
}

/// Step 3, on the peer: applies a received `VNAT_UPD`; returns the reply and
/// the connection, if known. The caller publishes the rules before it sends
/// the reply.
pub(crate) fn accept_update(state: &NetState, u: &Update) -> (UpdateReply, Option<Key>) {
    // The sender's virtual endpoint is our remote one, and the other way round.
    let found = state
        .connections
        .find(u.proto, u.remote_virtual, u.local_virtual)
        .map(|(k, _)| k)
        .or_else(|| udp_flow(state, u));
    let Some(key) = found else {
        state.count(Counter::UpdatesRefused, 1);
        state.count(Counter::VcmpUnknownConnection, 1);
        // The connection the peer named, from our side.
        let asked = VirtualConnection::new(
            u.proto,
            u.remote_virtual,
            u.local_virtual,
            0,
            Origin::Update,
        );
        let mut asked = NlConn::from(&asked);
        asked.remote_phys_addr = u.local_physical.addr.to_be();
        asked.remote_phys_port = u.local_physical.port.to_be();
        netlink::event_raw(
            state,
            Event::Refused,
            &asked,
            Some(c"no such virtual connection"),
        );
        return (UpdateReply::REFUSED, None);
    };
    if let Some(refusal) = resolve_conflict(state, key, u) {
        return refusal;
    }
    let reply = state.connections.with(key, |c| {
        c.mapping.remote_physical = u.local_physical;
        c.updated_ns = ffi::now_ns();
        if c.state != State::Resuming {
            c.settle();
        }
        let reply = UpdateReply {
            local_physical: c.mapping.local_physical,
        };
        (reply, NlConn::from(&*c))
    });
    match reply {
        Some((r, now)) => {
            state.count(Counter::UpdatesAccepted, 1);
            netlink::event_raw(state, Event::PeerMoved, &now, None);
            (r, Some(key))
        }
        None => {
            state.count(Counter::UpdatesRefused, 1);
            (UpdateReply::REFUSED, None)
        }
    }
}

/// Paper 3.4.3: if the physical endpoints connection `key` would have after
/// update `u` are those of another live connection here, the two cannot
/// coexist. The connection's policy decides: `abort` refuses the update
/// (returned, to be sent), `preempt` aborts the other connection (as `ss
/// --kill` does) and lets the update through.
fn resolve_conflict(state: &NetState, key: Key, u: &Update) -> Option<(UpdateReply, Option<Key>)> {
    let (local, policy) = state
        .connections
        .with(key, |c| (c.mapping.local_physical, c.policy()))?;
    let (other, c) = state
        .connections
        .conflict(key, u.proto, local, u.local_physical)?;
    let reply = match policy {
        Policy::Abort => {
            state.count(Counter::ConflictsAborted, 1);
            state.count(Counter::UpdatesRefused, 1);
            netlink::event(
                state,
                Event::Conflict,
                &c,
                Some(c"in the way of a migrating connection, which was refused (policy abort)"),
            );
            Some((UpdateReply::REFUSED, None))
        }
        Policy::Preempt => {
            state.count(Counter::ConflictsPreempted, 1);
            netlink::event(
                state,
                Event::Conflict,
                &c,
                Some(c"aborted to make way for a migrating connection (policy preempt)"),
            );
            ffi::sock_destroy(other.sk);
            None
        }
    };
    ffi::sock_put(other.sk);
    reply
}

/// A UDP "connection" is often served by an unconnected socket, which has no
/// record until its peer moves (paper 3.5): if the update names a local UDP
/// socket that would receive the peer's datagrams, the flow is recorded now.
fn udp_flow(state: &NetState, u: &Update) -> Option<Key> {
    if u.proto != PROTO_UDP {
        return None;
    }
    // Our end is the one the sender calls remote.
    let sk = ffi::udp_lookup(&state.net(), u.remote_virtual, u.local_virtual)?;
    let conn = VirtualConnection::new(
        PROTO_UDP,
        u.remote_virtual,
        u.local_virtual,
        0,
        Origin::Update,
    );
    let key = state.connections.insert(sk.key(), conn);
    if key.is_err() {
        state.count(Counter::ConnectionsUntracked, 1);
    }
    key.ok()
}

/// Step 4: the peer answered the update of connection `key`.
pub(crate) fn finish(state: &NetState, key: Key, reply: &UpdateReply) {
    if reply.is_refused() {
        state.count(Counter::UpdatesRefused, 1);
        abort(
            state,
            key,
            c"the peer refused the update (no such virtual connection there, or a conflict its policy aborted)",
        );
        return;
    }
    let done = state.connections.with(key, |c| {
        c.mapping.remote_physical = reply.local_physical;
        c.updated_ns = ffi::now_ns();
        c.vcmp = VcmpState::Idle;
        c.settle();
        sync_transparency(key, c);
        NlConn::from(&*c)
    });
    if let Some(now) = done {
        state.count(Counter::MigrationsCompleted, 1);
        netlink::event_raw(state, Event::Resumed, &now, None);
    }
}

/// The update of connection `key` failed for `reason`: the connection is
/// left as it was before the move.
pub(crate) fn abort(state: &NetState, key: Key, reason: &CStr) {
    state.count(Counter::MigrationsFailed, 1);
    let back = state.connections.with(key, |c| {
        c.vcmp = VcmpState::Failed;
        c.mapping.local_physical = c.previous_local;
        c.settle();
        sync_transparency(key, c);
        NlConn::from(&*c)
    });
    if let Some(back) = back {
        netlink::event_raw(state, Event::Failed, &back, Some(reason));
    }
}

/// Once the rules of a migration are live, makes the connection retry what
/// it could not deliver during the move now, not after its backoff.
pub(crate) fn kick(state: &NetState, key: Key) {
    // The kick takes the socket's lock, under which the close probe takes
    // the table lock: hold a reference, not the table lock, while kicking.
    if state
        .connections
        .with(key, |_| ffi::sock_hold(key.sk))
        .is_some()
    {
        ffi::sock_kick_retransmit(key.sk);
        ffi::sock_put(key.sk);
    }
}

/// Parses a line written to `/proc/net/vnat/control`.
pub(crate) fn parse_command(input: &[u8]) -> Result<Request> {
    match crate::command::parse(input) {
        Some(Command::Migrate { from, to }) => Ok(Request::Migrate {
            which: Selector::Address(from),
            to,
        }),
        None => Err(EINVAL),
    }
}
