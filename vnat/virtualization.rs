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
    ffi::{self, HmacSha256, Secret, Sock, SockKey},
    helper::{Active, Helper},
    key::Mac,
    knobs::{VcmpAuth, CONFLICT_POLICY},
    mapping::Mapping,
    vcmp::Endpoint,
    vcmp2::Replay,
};
use core::net::IpAddr;
use kernel::{
    alloc::flags::GFP_ATOMIC,
    new_spinlock_irq,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{aref::ARef, SpinLockIrq},
};

/// How a connection came to be (the spec's `origin`): `connect()`,
/// `accept()`, open before VNAT (`Existing`), or a UDP flow an unconnected
/// socket serves with `recvfrom()`/`sendto()`, recorded when its peer's
/// `VNAT_UPD` came (`Update`, paper 3.4.1).
pub(crate) use crate::nl_gen::Origin;

impl Origin {
    /// Whether the record is the socket's own connection, rather than one
    /// of the flows an unconnected UDP socket serves.
    pub(crate) const fn owns_socket(self) -> bool {
        !matches!(self, Self::Update)
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
    /// The peer moved to a physical endpoint it was not seen at: behind a
    /// NAT, its packets come from an address the update did not name, and
    /// the NAT forwards ours only once the peer's have opened its mapping.
    /// Until a packet of the connection comes from there, ours keep going
    /// to the previous endpoint (`previous_remote`), whose packets are still
    /// understood too: nothing is sent where the peer has not been seen.
    /// From that packet on, the hook sends ours the new way (the answer to
    /// it must not take the old path, whose NAT never saw what it
    /// acknowledges), and vnatd makes the connection [`State::Migrated`].
    Validating,
    /// Translated both ways.
    Migrated,
}

/// What resolves a virtual address conflict (paper 3.4.3), the spec's
/// `policy`: the migration that would cause it is refused (`abort`), or the
/// connection in the way is aborted (`preempt`); `default`: what the
/// `conflict_policy` knob says.
pub(crate) use crate::nl_gen::Policy;

/// Where a connection's security key is (paper 3.3.1.1; the spec's `auth`).
pub(crate) use crate::nl_gen::Auth;

/// How far this end has got in asking for a connection's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asking {
    /// The peer asks (this end accepted the connection), or nobody does.
    No,
    /// This end asks; vnatd has not taken the request yet.
    Due,
    /// vnatd is asking.
    Asked,
}

/// The public part of a connection's security key: the secrets are in the
/// table's record ([`ConnectionKeys`]), never in a copy of this.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyState {
    /// Where the key is.
    pub(crate) auth: Auth,
    /// When the connection was recorded, for how long it may be pending;
    /// on the end that asks, when it may ask (again); once keyed, when.
    pub(crate) since_ns: i64,
    /// Whether this end asks for it.
    pub(crate) asking: Asking,
    /// Requests that the peer refused so far.
    pub(crate) refusals: u8,
    /// Its id, chosen by the end that granted it (0: none).
    pub(crate) id: u32,
    /// This end's virtual endpoint as the peer names it (KEY_R): behind a
    /// NAT, the NAT's. This end's UPD and SUS name it.
    pub(crate) named: Endpoint,
    /// The counter of the last message sent under it.
    pub(crate) sent: u64,
    /// The counters accepted from the peer.
    pub(crate) replay: Replay,
}

/// How long after its grant a key that nothing went under yet may be
/// granted again (see `authentication::may_grant_again`): the asker gives a
/// silent stream up after 30 s and asks again, refused at most 12 times in
/// about 8 s, on the way.
pub(crate) const REGRANT_NS: i64 = 60_000_000_000;

impl KeyState {
    /// Whether the key, keyed at `since_ns`, may be granted again at
    /// `now_ns`: nothing went under it yet either way, and it is at most
    /// [`REGRANT_NS`] old.
    pub(crate) fn regrantable(&self, now_ns: i64) -> bool {
        self.sent == 0 && self.replay.last() == 0 && now_ns - self.since_ns < REGRANT_NS
    }
}

/// A connection's two keys (one per direction), wiped when dropped.
pub(crate) struct ConnectionKeys {
    /// What this end sends under.
    pub(crate) send: Secret,
    /// What the peer sends under.
    pub(crate) recv: Secret,
    /// `send` and `recv` prepared for HMAC ([`Mac`]): a message's MAC
    /// then hashes the message, not the key's padded blocks again.
    pub(crate) send_mac: HmacSha256,
    pub(crate) recv_mac: HmacSha256,
}

impl ConnectionKeys {
    pub(crate) fn new(send: Secret, recv: Secret) -> Self {
        Self {
            send_mac: HmacSha256::new(send.bytes()),
            recv_mac: HmacSha256::new(recv.bytes()),
            send,
            recv,
        }
    }
}

/// The record of one virtual connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VirtualConnection {
    /// Protocol, virtual and physical endpoints.
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
    /// The local physical endpoint its last completed move left: what the
    /// peer sent there before it heard of the move may still arrive, while
    /// the host has that address (make-before-break), and is taken as the
    /// connection's ([`crate::mapping::Mapping::arrival_at`]).
    pub(crate) left: Endpoint,
    /// The remote physical endpoint last seen to work: where a
    /// [`State::Validating`] connection still sends.
    pub(crate) previous_remote: Endpoint,
    /// The remote physical endpoint came from an update that came from
    /// elsewhere (behind a NAT), and no packet has come from it yet: the
    /// connection settles as [`State::Validating`], whatever else happens
    /// to it meanwhile (its own move, or that move's failure).
    pub(crate) unvalidated: bool,
    /// Its own conflict policy (`Default`: the knob's).
    pub(crate) policy: Policy,
    /// When the mapping was last updated ([`crate::ffi::now_ns`]); 0: never.
    pub(crate) updated_ns: i64,
    /// What its rules matched in rule tables that were since replaced.
    pub(crate) hits: HookHits,
    /// Where the update of its last move is, toward the peer's vnatd.
    pub(crate) vcmp: VcmpState,
    /// The attempt that `vcmp` is about.
    pub(crate) vcmp_attempts: u8,
    /// While `vcmp` is [`VcmpState::Retrying`]: when the next attempt may
    /// begin ([`crate::ffi::now_ns`]); 0: not known.
    pub(crate) vcmp_next_ns: i64,
    /// This end was suspended (`conn-suspend`) and has not resumed yet.
    pub(crate) suspended: bool,
    /// System sleep suspended it: it resumes on wake.
    pub(crate) slept: bool,
    /// On a suspended end: the helper the peer said it activated.
    pub(crate) peer_helper: Helper,
    /// The peer suspended its end: what keeps ours alive meanwhile.
    pub(crate) helper: Option<Active>,
    /// The helper to use when the peer suspends (`Default`: the knob's).
    pub(crate) helper_choice: Helper,
    /// Its security key.
    pub(crate) key: KeyState,
}

impl KeyState {
    /// The key state of a new connection: pending, unless `vcmp_auth` is
    /// off. Who asks for the key is the end that connected; of a connection
    /// open before VNAT, whose ends cannot tell who connected, the end with
    /// the lower virtual endpoint. A UDP flow's record (origin `update`)
    /// never asks.
    fn new(origin: Origin, local: Endpoint, remote: Endpoint) -> Self {
        let off = VcmpAuth::get() == VcmpAuth::Off;
        let asks = match origin {
            Origin::Connect => true,
            Origin::Existing => (local.addr, local.port) < (remote.addr, remote.port),
            _ => false,
        };
        Self {
            auth: if off { Auth::Unkeyed } else { Auth::Pending },
            since_ns: ffi::now_ns(),
            asking: if asks && !off {
                Asking::Due
            } else {
                Asking::No
            },
            refusals: 0,
            id: 0,
            named: local,
            sent: 0,
            replay: Replay::new(),
        }
    }
}

/// Where the update of a connection's move is, toward the peer's vnatd
/// (the spec's `vcmp-state`).
pub(crate) use crate::nl_gen::VcmpState;

/// Packets and bytes per hook (indexed by `Hook as usize`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HookHits {
    /// Packets.
    pub(crate) packets: [u64; 4],
    /// Their bytes.
    pub(crate) bytes: [u64; 4],
}

impl HookHits {
    /// Adds `o`.
    pub(crate) fn add(&mut self, o: &HookHits) {
        for h in 0..4 {
            self.packets[h] += o.packets[h];
            self.bytes[h] += o.bytes[h];
        }
    }
}

impl VirtualConnection {
    /// A new, not migrated connection.
    pub(crate) fn new(
        proto: u8,
        local: Endpoint,
        remote: Endpoint,
        pid: i32,
        origin: Origin,
    ) -> Self {
        Self {
            mapping: Mapping::native(proto, local, remote),
            pid,
            origin,
            state: State::Native,
            previous_local: local,
            left: local,
            previous_remote: remote,
            unvalidated: false,
            policy: Policy::Default,
            updated_ns: 0,
            hits: HookHits {
                packets: [0; 4],
                bytes: [0; 4],
            },
            vcmp: VcmpState::Idle,
            vcmp_attempts: 0,
            vcmp_next_ns: 0,
            suspended: false,
            slept: false,
            peer_helper: Helper::None,
            helper: None,
            helper_choice: Helper::Default,
            key: KeyState::new(origin, local, remote),
        }
    }

    /// Whether a conflict of this connection's preempts the connection in
    /// the way (its policy, or the `conflict_policy` knob's), rather than
    /// aborting the migration.
    pub(crate) fn preempts(&self) -> bool {
        match self.policy {
            Policy::Default => CONFLICT_POLICY.get() == Policy::Preempt as u32,
            p => p == Policy::Preempt,
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

    /// Gives the connection, opened after a move, the moved addresses of
    /// its two hosts (location hiding): migrated from birth.
    pub(crate) fn hide(&mut self, mapping: Mapping) {
        self.mapping = mapping;
        self.state = State::Migrated;
        self.previous_local = mapping.local_physical;
        self.left = mapping.local_physical;
        self.previous_remote = mapping.remote_physical;
    }

    /// Whether a move to local address `to` moves it: it is elsewhere, or
    /// suspended (it resumes also where it is: its peer must hear of it, to
    /// undo its helper); never to an address of the other family (a
    /// connection keeps its family).
    pub(crate) fn moves_to(&self, to: IpAddr) -> bool {
        let at = self.mapping.local_physical.addr;
        at.is_ipv6() == to.is_ipv6() && (at != to || self.suspended)
    }

    /// Sets the state that fits the mapping once the peer agreed: while
    /// the remote endpoint is unvalidated, [`State::Validating`] (and the
    /// previous remote endpoint is kept).
    pub(crate) fn settle(&mut self) {
        if self.previous_local != self.mapping.local_physical {
            self.left = self.previous_local;
        }
        self.previous_local = self.mapping.local_physical;
        if self.unvalidated {
            self.state = State::Validating;
            return;
        }
        self.state = if self.mapping.is_native() {
            State::Native
        } else {
            State::Migrated
        };
        self.previous_remote = self.mapping.remote_physical;
    }
}

/// Identity of a record: its socket and its remote virtual endpoint. A TCP
/// socket or a connected UDP socket has one record; an unconnected UDP
/// socket has one per peer whose update it accepted. Every record holds a
/// reference on its socket ([`Record`]), dropped when the record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    /// The socket.
    pub(crate) sk: SockKey,
    remote: Endpoint,
}

impl Key {
    fn of(sk: SockKey, c: &VirtualConnection) -> Self {
        Self {
            sk,
            remote: c.remote(),
        }
    }

    /// The first key of socket `sk`, in key order.
    fn first(sk: SockKey) -> Self {
        Self {
            sk,
            remote: Endpoint::MIN,
        }
    }

    /// The key as numbers, to be kept outside the table (a netlink dump's
    /// position): the socket, the remote address's 16 bytes (IPv4
    /// v4-mapped) as two halves, and the port.
    pub(crate) fn to_raw(self) -> (usize, [u64; 2], u16) {
        let b = u128::from_be_bytes(self.remote.octets16());
        (self.sk, [(b >> 64) as u64, b as u64], self.remote.port)
    }

    /// The key [`Key::to_raw`] gave; it may no longer be in the table.
    pub(crate) fn from_raw(sk: usize, addr: [u64; 2], port: u16) -> Self {
        let b = (u128::from(addr[0]) << 64) | u128::from(addr[1]);
        Self {
            sk,
            remote: Endpoint::from_v6(b.to_be_bytes(), port),
        }
    }
}

/// A virtual 5-tuple: protocol, local address and port, remote address and
/// port.
type TupleKey = (u8, Endpoint, Endpoint);

fn tuple_key(proto: u8, l: Endpoint, r: Endpoint) -> TupleKey {
    (proto, l, r)
}

fn tuple_key_of(c: &VirtualConnection) -> TupleKey {
    tuple_key(c.mapping.proto, c.local(), c.remote())
}

/// Most records of UDP flows (origin [`Origin::Update`]) one namespace
/// keeps: each costs memory that a peer's update, not a local program,
/// asked for.
pub(crate) const MAX_FLOWS: usize = 16384;

/// What [`ConnectionTable::remove`] took away.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Removed {
    /// Records removed.
    pub(crate) records: usize,
    /// Whether any of them was translated (so rules must be rebuilt).
    pub(crate) translated: bool,
}

/// A record in the table: the connection, a reference on its socket, and
/// its keys once it has them (boxed: most records are moved, into the
/// table and out, before they have keys, and a move copies the whole
/// record).
struct Record {
    conn: VirtualConnection,
    sock: ARef<Sock>,
    keys: Option<KBox<ConnectionKeys>>,
    /// Its change is in the log ([`Tables::changes`]) already.
    logged: bool,
}

/// What a connection's translation rules are made of: `rules.rs` makes
/// them from this alone, so that whatever else of a record changes (its
/// counters, its keys, where its update is) leaves its rules alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RuleInputs {
    pub(crate) state: State,
    pub(crate) mapping: Mapping,
    pub(crate) left: Endpoint,
    pub(crate) previous_local: Endpoint,
    pub(crate) previous_remote: Endpoint,
    /// The local physical endpoint the peer knows this end by
    /// ([`KeyState::named`]).
    pub(crate) named: Endpoint,
}

impl RuleInputs {
    /// Whether they make rules: the connection is not native, or the peer
    /// may still send to where its last move left
    /// ([`VirtualConnection::left`]).
    pub(crate) fn translated(&self) -> bool {
        self.state != State::Native || self.mapping.arrival_at(self.left).is_some()
    }
}

/// A record whose rules may have changed since the rules were last built
/// ([`ConnectionTable::take_changes`]): its key, and what its rules were
/// made of then (`None`: it did not exist).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Change {
    pub(crate) key: Key,
    pub(crate) was: Option<RuleInputs>,
}

/// A log of changes: the table's, and what [`ConnectionTable::take_changes`]
/// took of it.
pub(crate) struct Changes {
    pub(crate) log: KVVec<Change>,
    /// Every change is in `log`: none was left out for want of room.
    pub(crate) complete: bool,
    /// The changes left out for want of room: how much room the next log
    /// wants.
    pub(crate) left_out: usize,
}

impl Changes {
    /// An empty log with `room` (reserved, so that logging never allocates).
    pub(crate) fn new(room: KVVec<Change>) -> Self {
        Self {
            log: room,
            complete: true,
            left_out: 0,
        }
    }

    /// Logs that record `key` (`logged`: whether it is logged already), made
    /// of `was` when the rules were last built, changed; or notes that a
    /// change was left out, if the log has no room (it never allocates: the
    /// table's lock keeps interrupts off).
    fn note(&mut self, logged: &mut bool, key: Key, was: Option<RuleInputs>) {
        if *logged {
            return;
        }
        *logged = true;
        if self.log.push_within_capacity(Change { key, was }).is_err() {
            self.complete = false;
            self.left_out += 1;
        }
    }
}

/// The records, by key, and an index by virtual 5-tuple (virtual endpoints
/// never change, so the index stays valid as mappings change).
///
/// A record's socket reference may be dropped under the lock only while the
/// caller holds the socket too (a `&Sock`), so that it is never the last one:
/// freeing a socket with interrupts off is not for a spinlock's holder.
struct Tables {
    conns: RBTree<Key, Record>,
    by_tuple: RBTree<TupleKey, Key>,
    /// Number of records in `conns`.
    len: usize,
    /// Number of them with origin [`Origin::Update`].
    flows: usize,
    /// Those not [`State::Native`], whose rules the hooks need.
    translated: Translated,
    /// Number of them with a helper at work.
    helpers: usize,
    /// The records whose rules may have changed since the rules were last
    /// built, each once, with what their rules were made of then; at most
    /// as many as the room the rules' builder left (it takes them). Not
    /// complete: the next rules are built from all records.
    changes: Changes,
}

impl VirtualConnection {
    /// What its translation rules are made of.
    pub(crate) fn rule_inputs(&self) -> RuleInputs {
        RuleInputs {
            state: self.state,
            mapping: self.mapping,
            left: self.left,
            previous_local: self.previous_local,
            previous_remote: self.previous_remote,
            named: self.key.named,
        }
    }

    /// Whether it has rules.
    fn is_translated(&self) -> bool {
        self.rule_inputs().translated()
    }
}

/// The number of translated records of a namespace. While there is one,
/// the namespace holds the module: their packets need its rules for as
/// long as the connections live, and an `rmmod` would break them without a
/// word, so it is refused ("Module vnat is in use") until they end.
#[derive(Default)]
struct Translated {
    n: usize,
    _held: Option<ffi::ModuleRef>,
}

impl Translated {
    fn add(&mut self) {
        if self.n == 0 {
            self._held = Some(ffi::ModuleRef::new());
        }
        self.n += 1;
    }

    fn sub(&mut self) {
        self.n -= 1;
        if self.n == 0 {
            self._held = None;
        }
    }
}

/// Keeps [`Tables::translated`] and [`Tables::helpers`] right while `f`
/// changes record `key` (`c`, `logged`), and logs a change of what its rules
/// are made of.
fn counting<R>(
    (translated, helpers, changes): (&mut Translated, &mut usize, &mut Changes),
    (key, c, logged): (Key, &mut VirtualConnection, &mut bool),
    f: impl FnOnce(&mut VirtualConnection) -> R,
) -> R {
    let inputs = c.rule_inputs();
    let before = (inputs.translated(), c.helper.is_some());
    let r = f(c);
    let after = c.rule_inputs();
    if after != inputs {
        changes.note(logged, key, Some(inputs));
    }
    match (before.0, after.translated()) {
        (false, true) => translated.add(),
        (true, false) => translated.sub(),
        _ => {}
    }
    match (before.1, c.helper.is_some()) {
        (false, true) => *helpers += 1,
        (true, false) => *helpers -= 1,
        _ => {}
    }
    r
}

impl Tables {
    /// Removes the records of socket `sk` that `f` selects. The caller
    /// holds the socket (see [`Tables`]).
    fn remove_where(
        &mut self,
        sk: &Sock,
        mut f: impl FnMut(&VirtualConnection) -> bool,
    ) -> Removed {
        let Tables {
            conns,
            by_tuple,
            len,
            flows,
            translated,
            helpers,
            changes,
        } = self;
        let sk = sk.key();
        let mut gone = Removed::default();
        let mut cursor = conns.cursor_lower_bound_mut(&Key::first(sk));
        while let Some(cur) = cursor {
            let (k, r) = cur.current();
            if k.sk != sk {
                break;
            }
            if !f(&r.conn) {
                cursor = cur.move_next();
                continue;
            }
            // What goes with the record is settled while it is in place;
            // its node is then taken out and freed, the record unmoved.
            let mut cur = cur;
            let (&k, r) = cur.current_mut();
            if r.conn.is_translated() {
                // Its rules go.
                let was = Some(r.conn.rule_inputs());
                changes.note(&mut r.logged, k, was);
            }
            let c = &r.conn;
            let t = tuple_key_of(c);
            if by_tuple.get(&t) == Some(&k) {
                by_tuple.remove(&t);
            }
            *len -= 1;
            if !c.origin.owns_socket() {
                *flows -= 1;
            }
            gone.records += 1;
            if c.is_translated() {
                translated.sub();
                gone.translated = true;
            }
            if c.helper.is_some() {
                *helpers -= 1;
            }
            let (next, node) = cur.remove_current();
            drop(node);
            cursor = next;
        }
        gone
    }
}

/// The records, as [`ConnectionTable::take_changes`] shows them.
pub(crate) struct Records<'a>(&'a Tables);

impl Records<'_> {
    /// Record `k`, if it exists.
    pub(crate) fn get(&self, k: Key) -> Option<&VirtualConnection> {
        self.0.conns.get(&k).map(|r| &r.conn)
    }

    /// Calls `f` on every record.
    pub(crate) fn for_each(&self, mut f: impl FnMut(Key, &VirtualConnection)) {
        for (k, r) in self.0.conns.iter() {
            f(*k, &r.conn);
        }
    }

    /// Number of records that have rules.
    pub(crate) fn translated(&self) -> usize {
        self.0.translated.n
    }
}

/// Records [`ConnectionTable::destroyed`] looks at per call.
pub(crate) const SCAN_BATCH: usize = 256;

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
                    len: 0,
                    flows: 0,
                    translated: Translated::default(),
                    helpers: 0,
                    // No room: what changes before the first rules are built
                    // needs no log.
                    changes: Changes::new(KVVec::new()),
                },
                "vnat_connections"
            ),
        })
    }

    /// Records a connection of socket `sk`, with a reference on the socket.
    /// A socket that connects again replaces its own old record; a UDP flow
    /// (origin [`Origin::Update`]) is added next to the others of its
    /// socket, at most [`MAX_FLOWS`] of them. Fails when memory is short
    /// (probes cannot sleep) or the flows are at their limit, in which case
    /// the connection stays untracked.
    pub(crate) fn insert(&self, sk: &Sock, conn: &VirtualConnection) -> Result<Key> {
        self.insert_keyed(sk, conn, None)
    }

    /// As [`Self::insert`], for a connection that has its keys already (a
    /// process brought it from another host: `process_migration.rs`).
    pub(crate) fn insert_keyed(
        &self,
        sk: &Sock,
        conn: &VirtualConnection,
        keys: Option<KBox<ConnectionKeys>>,
    ) -> Result<Key> {
        let key = Key::of(sk.key(), conn);
        let index = RBTreeNode::new(tuple_key_of(conn), key, GFP_ATOMIC)?;
        let record = Record {
            conn: *conn,
            sock: sk.into(),
            keys,
            logged: false,
        };
        let node = RBTreeNode::new(key, record, GFP_ATOMIC)?;
        let mut t = self.tables.lock();
        let flow = !conn.origin.owns_socket();
        if flow && (t.flows >= MAX_FLOWS || t.conns.get(&key).is_some()) {
            return Err(ENOSPC);
        }
        // A socket that connects again: its own earlier connection goes, and
        // so does a flow it served for the same peer.
        if !flow {
            t.remove_where(sk, |c| c.origin.owns_socket() || Key::of(key.sk, c) == key);
        }
        t.conns.insert(node);
        t.by_tuple.insert(index);
        t.len += 1;
        if flow {
            t.flows += 1;
        }
        if conn.is_translated() {
            t.translated.add();
            let Tables { conns, changes, .. } = &mut *t;
            if let Some(r) = conns.get_mut(&key) {
                changes.note(&mut r.logged, key, None);
            }
        }
        Ok(key)
    }

    /// Forgets every record of a socket that closed or disconnected;
    /// `gone` sees each record, under the table lock.
    pub(crate) fn remove(&self, sk: &Sock, mut gone: impl FnMut(&VirtualConnection)) -> Removed {
        self.tables.lock().remove_where(sk, |c| {
            gone(c);
            true
        })
    }

    /// Number of recorded connections.
    pub(crate) fn len(&self) -> usize {
        self.tables.lock().len
    }

    /// Number of recorded connections that are not native (those that have
    /// translation rules).
    pub(crate) fn translated(&self) -> usize {
        self.tables.lock().translated.n
    }

    /// The changes noted since the rules were last built: the number of
    /// records that changed what their rules are made of, logged or not.
    pub(crate) fn changes_noted(&self) -> usize {
        let t = self.tables.lock();
        t.changes.log.len() + t.changes.left_out
    }

    /// Number of recorded connections with a helper at work.
    pub(crate) fn helpers(&self) -> usize {
        self.tables.lock().helpers
    }

    /// Calls `f` on every recorded connection, under the table lock with
    /// interrupts off: `f` must be short and must not sleep.
    pub(crate) fn for_each(&self, mut f: impl FnMut(Key, &VirtualConnection)) {
        for (k, r) in self.tables.lock().conns.iter() {
            f(*k, &r.conn);
        }
    }

    /// For the rules' builder: under the table's lock, takes the changes
    /// logged since the last call (a record that changes again is logged
    /// anew), leaves `room` (empty, with room for the next ones) to log
    /// them in, and calls `f` with them and the records. Interrupts are off
    /// meanwhile: `f` must be short, must not sleep nor free vmalloc'd
    /// memory.
    pub(crate) fn take_changes<R>(
        &self,
        room: KVVec<Change>,
        f: impl FnOnce(&Changes, &Records<'_>) -> R,
    ) -> (Changes, R) {
        let mut guard = self.tables.lock();
        let t = &mut *guard;
        let changes = core::mem::replace(&mut t.changes, Changes::new(room));
        if changes.complete {
            for c in changes.log.iter() {
                if let Some(r) = t.conns.get_mut(&c.key) {
                    r.logged = false;
                }
            }
        } else {
            for (_, r) in t.conns.iter_mut() {
                r.logged = false;
            }
        }
        let r = f(&changes, &Records(t));
        (changes, r)
    }

    /// Fills `out` with the sockets, recorded after `after` (all if `None`),
    /// that were destroyed while their records lived on (see
    /// [`crate::interception::forget_destroyed`]), in key order, looking at
    /// [`SCAN_BATCH`] records at most (the lock keeps interrupts off).
    /// Returns how many it found, and the key to go on after unless it got
    /// to the end.
    pub(crate) fn destroyed(
        &self,
        after: Option<Key>,
        out: &mut [Option<ARef<Sock>>],
    ) -> (usize, Option<Key>) {
        let mut found = 0;
        let mut seen = 0;
        let mut last = None;
        self.for_each_record_after(after, |k, r| {
            seen += 1;
            // A socket's records are next to each other (keys sort by socket).
            let same = found > 0 && out[found - 1].as_ref().map(|s| s.key()) == Some(k.sk);
            if !same && r.sock.is_destroyed() {
                out[found] = Some(r.sock.clone());
                found += 1;
            }
            let more = found < out.len() && seen < SCAN_BATCH;
            if !more {
                last = Some(k);
            }
            more
        });
        (found, last)
    }

    /// Calls `f` on the records after `after` (all if `None`), in key order,
    /// until it returns `false`; under the table lock, as [`Self::for_each`].
    pub(crate) fn for_each_after(
        &self,
        after: Option<Key>,
        mut f: impl FnMut(Key, &Sock, &VirtualConnection) -> bool,
    ) {
        self.for_each_record_after(after, |k, r| f(k, &r.sock, &r.conn));
    }

    /// As [`Self::for_each_after`], and `f` also sees each record's keys
    /// (`conn-export` saves them).
    pub(crate) fn for_each_keyed_after(
        &self,
        after: Option<Key>,
        mut f: impl FnMut(Key, &VirtualConnection, Option<&ConnectionKeys>) -> bool,
    ) {
        self.for_each_record_after(after, |k, r| f(k, &r.conn, r.keys.as_deref()));
    }

    fn for_each_record_after(&self, after: Option<Key>, mut f: impl FnMut(Key, &Record) -> bool) {
        // The read-only cursor cannot move; the mutable one can.
        let mut t = self.tables.lock();
        let mut cursor = match after {
            None => t.conns.cursor_front_mut(),
            Some(k) => t.conns.cursor_lower_bound_mut(&k),
        };
        while let Some(cur) = cursor {
            let (k, r) = cur.current();
            if Some(*k) != after && !f(*k, r) {
                return;
            }
            cursor = cur.move_next();
        }
    }

    /// Changes the records `f` selects (returning `true`), under the lock;
    /// `f` also sees each record's socket. Returns how many changed.
    pub(crate) fn update(
        &self,
        mut f: impl FnMut(Key, &Sock, &mut VirtualConnection) -> bool,
    ) -> usize {
        let mut guard = self.tables.lock();
        let Tables {
            conns,
            translated,
            helpers,
            changes,
            ..
        } = &mut *guard;
        let mut n = 0;
        for (k, r) in conns.iter_mut() {
            let Record {
                conn, sock, logged, ..
            } = r;
            if counting((translated, helpers, changes), (*k, conn, logged), |c| {
                f(*k, sock, c)
            }) {
                n += 1;
            }
        }
        n
    }

    /// The key and record of the connection with these virtual endpoints,
    /// in O(log n) (the paper's prototype searched linearly).
    pub(crate) fn find(
        &self,
        proto: u8,
        local: Endpoint,
        remote: Endpoint,
    ) -> Option<(Key, VirtualConnection)> {
        let t = self.tables.lock();
        let k = *t.by_tuple.get(&tuple_key(proto, local, remote))?;
        t.conns.get(&k).map(|r| (k, r.conn))
    }

    /// A connection other than `k` whose packets are those of physical
    /// endpoints `local` and `remote`: a native connection with these
    /// endpoints (a migrated one's rules collide instead, and are counted
    /// as `rule_conflicts` when the rules are built), with its socket.
    pub(crate) fn conflict(
        &self,
        k: Key,
        proto: u8,
        local: Endpoint,
        remote: Endpoint,
    ) -> Option<(ARef<Sock>, VirtualConnection)> {
        let t = self.tables.lock();
        let other = *t.by_tuple.get(&tuple_key(proto, local, remote))?;
        let r = t.conns.get(&other)?;
        if other.sk == k.sk || !r.conn.mapping.is_native() {
            return None;
        }
        Some((r.sock.clone(), r.conn))
    }

    /// The socket of record `k`, if the record still exists.
    pub(crate) fn sock(&self, k: Key) -> Option<ARef<Sock>> {
        self.tables.lock().conns.get(&k).map(|r| r.sock.clone())
    }

    /// Changes the record `k`, if it still exists.
    pub(crate) fn with<R>(&self, k: Key, f: impl FnOnce(&mut VirtualConnection) -> R) -> Option<R> {
        self.with_sock(k, |_, c| f(c))
    }

    /// Gives record `k` its keys, under key id `id`, unless it has keys
    /// already: a connection is keyed once, but for a key granted again
    /// (`replacing`: the id of the key it replaces) that is still the
    /// record's and [`KeyState::regrantable`]. Returns whether it took
    /// them; `None` if the record is gone.
    pub(crate) fn set_keys(
        &self,
        k: Key,
        id: u32,
        named: Endpoint,
        keys: KBox<ConnectionKeys>,
        replacing: Option<u32>,
    ) -> Option<bool> {
        let mut t = self.tables.lock();
        let Tables { conns, changes, .. } = &mut *t;
        let r = conns.get_mut(&k)?;
        let now = ffi::now_ns();
        if r.keys.is_some() && (replacing != Some(r.conn.key.id) || !r.conn.key.regrantable(now)) {
            return Some(false);
        }
        if r.conn.key.named != named {
            // A resuming connection's rules depend on it.
            let was = Some(r.conn.rule_inputs());
            changes.note(&mut r.logged, k, was);
        }
        r.keys = Some(keys);
        r.conn.key.auth = Auth::Keyed;
        r.conn.key.id = id;
        r.conn.key.named = named;
        r.conn.key.asking = Asking::No;
        r.conn.key.since_ns = now;
        Some(true)
    }

    /// As [`Self::with`], and `f` also sees the record's keys: it seals or
    /// opens a message under them, under the lock (the secrets never leave
    /// the record).
    pub(crate) fn with_keys<R>(
        &self,
        k: Key,
        f: impl FnOnce(&mut VirtualConnection, Option<&ConnectionKeys>) -> R,
    ) -> Option<R> {
        self.with_record(k, |_, c, keys| f(c, keys))
    }

    /// As [`Self::with`], and `f` also sees the record's socket.
    pub(crate) fn with_sock<R>(
        &self,
        k: Key,
        f: impl FnOnce(&Sock, &mut VirtualConnection) -> R,
    ) -> Option<R> {
        self.with_record(k, |sock, c, _| f(sock, c))
    }

    /// Changes the record `k`, if it still exists; `f` sees all of it.
    fn with_record<R>(
        &self,
        k: Key,
        f: impl FnOnce(&Sock, &mut VirtualConnection, Option<&ConnectionKeys>) -> R,
    ) -> Option<R> {
        let mut guard = self.tables.lock();
        let Tables {
            conns,
            translated,
            helpers,
            changes,
            ..
        } = &mut *guard;
        conns.get_mut(&k).map(|r| {
            let Record {
                conn,
                sock,
                keys,
                logged,
            } = r;
            counting((translated, helpers, changes), (k, conn, logged), |c| {
                f(sock, c, keys.as_deref())
            })
        })
    }
}

#[pinned_drop]
impl PinnedDrop for ConnectionTable {
    fn drop(self: Pin<&mut Self>) {
        // Namespace exit or module unload: give moved sockets back their
        // ordinary routing; the socket references go with the records, out
        // of the lock.
        let conns = {
            let mut guard = self.tables.lock();
            guard.by_tuple = RBTree::new();
            guard.len = 0;
            guard.flows = 0;
            guard.translated = Translated::default();
            guard.helpers = 0;
            core::mem::replace(&mut guard.conns, RBTree::new())
        };
        for (_, r) in conns.iter() {
            let c = &r.conn;
            if c.origin.owns_socket() && c.mapping.local_physical != c.mapping.local_virtual {
                r.sock.set_transparent(false);
            }
        }
    }
}

#[kunit_tests(vnat_virtualization)]
mod tests {
    use super::*;
    use crate::mapping::PROTO_TCP;

    fn conn(lport: u16, pid: i32) -> VirtualConnection {
        VirtualConnection::new(
            PROTO_TCP,
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
