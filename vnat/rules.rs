// SPDX-License-Identifier: GPL-2.0

//! The translation rules of a namespace (paper 3.2), as the hooks of
//! `translation.rs` read them.
//!
//! The rules of all migrated connections live in one open-addressing table
//! (`mapping.rs`), published with RCU: hooks read it without a lock, in
//! O(1); vnatd, the only writer, builds a new table when a mapping changes,
//! publishes it and frees the old one after a grace period. A namespace
//! without migrated connections has no table, and its hooks return after
//! one load. Each rule counts what it matched; when a table is replaced,
//! its counts go to the connections' records.
//!
//! A validating connection's arrival rule and outgoing rule share a flag
//! that says a packet came from the new path: the first sets it, the second
//! sends the new way from then on, and vnatd settles the connection on it.
//! The flag passes from table to table while the connection has the same
//! arrival rule, so that a rebuild before vnatd settles it (another
//! connection's move, one that closes) cannot send it the old way again.

use crate::{
    ffi::random_u32,
    location_hiding::Moves,
    mapping::{self, Action, Hook, Mapping, Rule, Slot, Tuple},
    vcmp::Endpoint,
    virtualization::{ConnectionTable, HookHits, Key, State, VirtualConnection},
};
use core::{
    net::IpAddr,
    ptr::{self, NonNull},
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        rcu, Arc,
    },
};

/// At most how many rules a connection has: a validating connection's
/// seven, and the twin of its LOCAL_OUT rule.
const RULES_MAX: usize = 8;

/// The rules of connection `c` in a table, by its state; each LOCAL_OUT
/// rule of a UDP flow whose local end moved with its twin for unconnected
/// sockets ([`mapping::Mapping::unconnected_twin`]).
fn rules_of(c: &VirtualConnection) -> [Option<Rule>; RULES_MAX] {
    let [pre, inp, out, post] = c.mapping.rules();
    let twin = |out: Option<Rule>| out.and_then(|r| c.mapping.unconnected_twin(&r));
    match c.state {
        State::Native => {
            let mut all = [None; RULES_MAX];
            all[0] = c.mapping.arrival_at(c.left);
            all
        }
        // Incoming only until the peer confirmed; what it sends meanwhile
        // keeps its old form, and is dropped where that form cannot go:
        // behind a NAT (the peer knows this end by another address), which
        // would give it the new address, answered by the peer with a reset;
        // and once the host no longer has the old address, which the new
        // network would carry as a spoofed source (and drop, where it
        // filters them). What the peer sends to where the connection was,
        // while the host still has that address, is the connection's too;
        // so is, here and once migrated, what a peer in the middle of its
        // own move sends.
        State::Resuming => {
            let nat = c.key.named != c.mapping.local_virtual;
            let hold = Some(c.mapping.hold(nat));
            let was = c.mapping.arrival_at(c.previous_local);
            let moving = c.mapping.from_moving_peer();
            [pre, inp, hold, twin(hold), was, moving, None, None]
        }
        State::Migrated => {
            let was = c.mapping.arrival_at(c.left);
            let moving = c.mapping.from_moving_peer();
            [pre, inp, out, post, twin(out), was, moving, None]
        }
        State::Validating => {
            let v = c.mapping.validating(c.previous_remote);
            let out = v
                .iter()
                .flatten()
                .find(|r| r.hook == Hook::LocalOut)
                .copied();
            let [a, b, c2, d, e, f, g] = v;
            [a, b, c2, d, e, f, g, twin(out)]
        }
    }
}

/// Whether a packet came from the new path of a validating connection.
type Arrived = Arc<Atomic<bool>>;

/// The arrival flag that validating connection `k` (record `c`) has in
/// `old`, the table published now, if it has the same arrival rule there.
fn arrival_flag(old: Option<&Rules>, k: Key, c: &VirtualConnection) -> Option<Arrived> {
    let old = old?;
    old.arrived[old.slot_of(k, &c.mapping.arrival())?].clone()
}

/// What one rule matched: packets and their bytes.
struct Hits {
    packets: Atomic<u64>,
    bytes: Atomic<u64>,
}

/// The rules of a namespace, as one immutable table, with whose each rule
/// is and what it matched.
struct Rules {
    seed: u32,
    slots: KVVec<Slot>,
    /// The connection of each used slot.
    owners: KVVec<Key>,
    /// What each slot matched while this table was published; folded into
    /// the connections' records when it is replaced.
    hits: KVVec<Hits>,
    /// The arrival flag of each slot of a validating connection's arrival
    /// and outgoing rules.
    arrived: KVVec<Option<Arrived>>,
    /// The address pairs of the migrated connections, for location hiding.
    moves: Moves,
    /// The hooks that have rules, a bit each ([`hook_bit`]): a packet at
    /// another needs no lookup.
    hooks: u8,
    /// The rules it holds, and the translated connections it was built
    /// for: what the next table is sized from.
    len: usize,
    translated: usize,
}

/// The bit of `hook` in [`Rules::hooks`] and [`RuleTable::any_at`].
pub(crate) const fn hook_bit(hook: Hook) -> u8 {
    1 << hook as u8
}

impl Rules {
    /// The slot where connection `k` has a rule matching what `r` matches.
    fn slot_of(&self, k: Key, r: &Rule) -> Option<usize> {
        mapping::lookup_index(&self.slots, self.seed, r.hook, &r.matches)
            .filter(|&i| self.owners[i] == k)
    }
}

/// The published table of a namespace.
///
/// # Invariants
///
/// `table` is null or comes from `KBox::into_raw` of a `Rules`, freed only
/// after a grace period following its replacement.
pub(crate) struct RuleTable {
    table: Atomic<*mut Rules>,
}

// SAFETY: The pointer is published and read with acquire/release ordering
// and the table is immutable once published.
unsafe impl Send for RuleTable {}
// SAFETY: As above.
unsafe impl Sync for RuleTable {}

impl RuleTable {
    pub(crate) const fn new() -> Self {
        Self {
            table: Atomic::new(ptr::null_mut()),
        }
    }

    /// Replaces the table by one built from the namespace's connections.
    /// Called from vnatd only (one writer). Returns how many rules were left
    /// out because another connection's matched the same packets (virtual
    /// address conflict, paper 3.4.3), and the table replaced: the new one
    /// is live at once, and what the caller sends because of it (an answer
    /// to an update, a retransmission) need not wait for the grace period
    /// after which the old one goes ([`Retired`]).
    pub(crate) fn rebuild<'a>(
        &self,
        connections: &'a ConnectionTable,
    ) -> Result<(u64, Option<Retired<'a>>)> {
        // Allocate outside the lock for the connections that have rules,
        // fill under it; retry if more came meanwhile.
        let mut conflicts = 0;
        // Flags for the connections that start validating, allocated here
        // as well: one, or as many as the last try found missing.
        let mut flags_wanted = 1;
        // Slots, at most half full, for the rules the published table
        // holds and `RULES_MAX` for each connection translated since; if
        // the new table fills more than half, again for as many as it
        // took (if it filled, at least twice the slots). A table sized for
        // `RULES_MAX` per connection each time had two to four times the
        // slots, each allocated, filled and walked at every rebuild.
        let translated = connections.translated();
        let mut wanted = self.read(|old| {
            old.map_or(RULES_MAX * translated, |o| {
                o.len + RULES_MAX * translated.saturating_sub(o.translated)
            })
        });
        let new = loop {
            if connections.translated() == 0 {
                break None;
            }
            let cap = mapping::capacity_for(wanted.max(1));
            // Large tables (many migrated connections) may need vmalloc.
            let mut slots = KVVec::with_capacity(cap, GFP_KERNEL)?;
            slots.extend_with(cap, Slot::default(), GFP_KERNEL)?;
            let mut owners = KVVec::with_capacity(cap, GFP_KERNEL)?;
            owners.extend_with(cap, Key::from_raw(0, [0, 0], 0), GFP_KERNEL)?;
            let mut hits = KVVec::with_capacity(cap, GFP_KERNEL)?;
            for _ in 0..cap {
                hits.push(
                    Hits {
                        packets: Atomic::new(0),
                        bytes: Atomic::new(0),
                    },
                    GFP_KERNEL,
                )?;
            }
            let mut arrived = KVVec::with_capacity(cap, GFP_KERNEL)?;
            arrived.extend_with(cap, None, GFP_KERNEL)?;
            let mut spare = KVec::with_capacity(flags_wanted, GFP_KERNEL)?;
            for _ in 0..flags_wanted {
                spare.push(Arc::new(Atomic::new(false), GFP_KERNEL)?, GFP_KERNEL)?;
            }
            let mut flags_missing = 0;
            let seed = random_u32();
            let mut overflow = false;
            let mut moves = Moves::new();
            let mut inserted = 0;
            let mut hooks = 0;
            conflicts = 0;
            // vnatd is the only writer: the published table stays while
            // the new one takes its arrival flags.
            self.read(|old| {
                connections.for_each(|k, c| {
                    let flag = if c.state == State::Validating {
                        let flag = arrival_flag(old, k, c).or_else(|| spare.pop());
                        flags_missing += usize::from(flag.is_none());
                        flag
                    } else {
                        None
                    };
                    // Location hiding is of IPv4 connections only.
                    if c.state == State::Migrated && !c.mapping.local_virtual.is_v6() {
                        // Past the limit, new connections of other moves
                        // keep their addresses.
                        moves.add(&c.mapping);
                    }
                    for r in rules_of(c).iter().flatten() {
                        match mapping::insert(&mut slots, seed, r) {
                            Ok(i) => {
                                inserted += 1;
                                owners[i] = k;
                                hooks |= hook_bit(r.hook);
                                if matches!(r.action, Action::Arrival | Action::UntilArrival(_)) {
                                    arrived[i] = flag.clone();
                                }
                            }
                            Err(mapping::InsertError::Conflict) => conflicts += 1,
                            Err(mapping::InsertError::Full) => overflow = true,
                        }
                    }
                })
            });
            if overflow {
                // At least twice the slots: native connections' rules (an
                // arrival at the address they left) are not counted in
                // `translated`.
                wanted = (RULES_MAX * connections.translated()).max(cap);
                continue;
            }
            if 2 * inserted > cap {
                wanted = inserted;
                continue;
            }
            if flags_missing > 0 {
                flags_wanted += flags_missing;
                continue;
            }
            break Some(KBox::new(
                Rules {
                    seed,
                    slots,
                    owners,
                    hits,
                    arrived,
                    moves,
                    hooks,
                    len: inserted,
                    translated,
                },
                GFP_KERNEL,
            )?);
        };
        let new = new.map_or(ptr::null_mut(), KBox::into_raw);
        let old = NonNull::new(self.table.xchg(new, Release));
        // INVARIANT: `old` came from `KBox::into_raw` (type invariant of
        // `RuleTable`) and is no longer published.
        Ok((conflicts, old.map(|old| Retired { old, connections })))
    }

    /// Calls `f` with the published table, if there is one, in an RCU read
    /// section of its own.
    fn read<R>(&self, f: impl FnOnce(Option<&Rules>) -> R) -> R {
        let _guard = rcu::read_lock();
        let table = self.table.load(Acquire);
        // SAFETY: Non-null tables are valid until a grace period after they
        // are replaced, and we are in an RCU read section.
        f((!table.is_null()).then(|| unsafe { &*table }))
    }

    /// What the rules of connection `k` matched in the published table,
    /// per hook: (packets, bytes). Takes the RCU read lock itself.
    pub(crate) fn live_hits(&self, k: Key, c: &VirtualConnection) -> HookHits {
        self.read(|rules| {
            let Some(rules) = rules else {
                return HookHits::default();
            };
            let mut out = HookHits::default();
            for r in rules_of(c).iter().flatten() {
                if let Some(i) = rules.slot_of(k, r) {
                    let hook = r.hook as usize;
                    out.packets[hook] += rules.hits[i].packets.load(Relaxed);
                    out.bytes[hook] += rules.hits[i].bytes.load(Relaxed);
                }
            }
            out
        })
    }

    /// Whether a packet came from the new remote physical endpoint of
    /// connection `k` (record `c`), which is validating it. Takes the RCU
    /// read lock itself.
    pub(crate) fn path_seen(&self, k: Key, c: &VirtualConnection) -> bool {
        self.read(|rules| arrival_flag(rules, k, c).is_some_and(|f| f.load(Relaxed)))
    }

    /// Looks up the rule for a packet. The packet, of `len` bytes, is
    /// counted to the rule it matched.
    ///
    /// # Safety
    ///
    /// The caller must be in an RCU read section (a netfilter hook is),
    /// which keeps the table alive while it is read. Taking a guard instead
    /// would cost every translated packet two calls for a section it is in
    /// already.
    pub(crate) unsafe fn lookup(&self, hook: Hook, t: &Tuple, len: u32) -> Option<Slot> {
        let table = self.table.load(Acquire);
        if table.is_null() {
            return None;
        }
        // SAFETY: Non-null tables are valid until a grace period after they
        // are replaced, and the caller is in an RCU read section.
        let rules = unsafe { &*table };
        let i = mapping::lookup_index(&rules.slots, rules.seed, hook, t)?;
        rules.hits[i].packets.add(1u64, Relaxed);
        rules.hits[i].bytes.add(u64::from(len), Relaxed);
        let slot = &rules.slots[i];
        // Only a validating connection's arrival rule (which sets it) and
        // outgoing rule (which reads it) have a flag.
        let arrived = rules.arrived[i].as_ref().is_some_and(|f| {
            let set = f.load(Relaxed);
            if !set && slot.action == Action::Arrival {
                f.store(true, Relaxed);
            }
            set
        });
        Some(Slot {
            rewrite: slot.resolved(arrived),
            ..*slot
        })
    }

    /// Location hiding: what TCP packet `t`, which no rule matched, becomes
    /// at `hook` (see [`Moves::rewrite`]).
    ///
    /// # Safety
    ///
    /// As for [`RuleTable::lookup`]: the caller is in an RCU read section.
    pub(crate) unsafe fn hidden(
        &self,
        hook: Hook,
        t: &Tuple,
        vcmp_port: u16,
        taken: impl FnMut(&Tuple, bool) -> bool,
    ) -> Option<Tuple> {
        let table = self.table.load(Acquire);
        if table.is_null() {
            return None;
        }
        // SAFETY: As in `lookup`.
        let rules = unsafe { &*table };
        if rules.moves.is_empty() {
            return None;
        }
        rules.moves.rewrite(hook, t, vcmp_port, taken)
    }

    /// Location hiding: the mapping of a new connection with virtual
    /// endpoints `local` and `remote`, if the two hosts' connections moved.
    /// Takes the RCU read lock itself.
    pub(crate) fn hidden_mapping(
        &self,
        proto: u8,
        local: Endpoint,
        remote: Endpoint,
    ) -> Option<Mapping> {
        self.read(|rules| rules?.moves.mapping(proto, local, remote))
    }

    /// Location hiding: the virtual address of the peer that moved to
    /// `physical`, if one did. Takes the RCU read lock itself.
    pub(crate) fn hidden_peer(&self, physical: IpAddr) -> Option<IpAddr> {
        self.read(|rules| rules?.moves.remote_virtual_of(physical))
    }

    /// Location hiding: whether `addr` is a virtual address this host moved
    /// away from. Takes the RCU read lock itself.
    pub(crate) fn hidden_local(&self, addr: IpAddr) -> bool {
        self.read(|rules| rules.is_some_and(|r| r.moves.is_local_virtual(addr)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.load(Relaxed).is_null()
    }

    /// Whether the table has rules at any of `hooks` (bits of [`hook_bit`]).
    /// A moved connection needs rules at two hooks of its four (the end
    /// that moved: outgoing SNAT, incoming DNAT), so that a packet at the
    /// others costs one load, not a parse and a lookup.
    ///
    /// # Safety
    ///
    /// As [`Self::lookup`]: the caller is in an RCU read section.
    pub(crate) unsafe fn any_at(&self, hooks: u8) -> bool {
        let table = self.table.load(Acquire);
        // SAFETY: Non-null tables are valid until a grace period after they
        // are replaced, and the caller is in an RCU read section.
        !table.is_null() && unsafe { (*table).hooks } & hooks != 0
    }
}

/// A table that was replaced: readers may still use it until a grace
/// period has passed. Dropping it waits for one (it sleeps), then folds what
/// the table's rules counted into the connections' records and frees it.
///
/// # Invariants
///
/// `old` comes from `KBox::into_raw` of a `Rules` that is no longer
/// published; nothing else frees it.
#[must_use = "dropping it waits for a grace period: do so once what the new table allows is done"]
pub(crate) struct Retired<'a> {
    old: NonNull<Rules>,
    connections: &'a ConnectionTable,
}

impl Drop for Retired<'_> {
    fn drop(&mut self) {
        rcu::synchronize_rcu();
        // SAFETY: `old` came from `KBox::into_raw` and is ours alone (type
        // invariant); no reader can hold it after the grace period.
        let old = unsafe { KBox::from_raw(self.old.as_ptr()) };
        // No hook counts into it any more: what it counted goes to the
        // records (one short lock each; idle connections cost nothing).
        for (i, h) in old.hits.iter().enumerate() {
            let packets = h.packets.load(Relaxed);
            if packets == 0 {
                continue;
            }
            let hook = usize::from(old.slots[i].hook);
            let bytes = h.bytes.load(Relaxed);
            self.connections.with(old.owners[i], |c| {
                c.hits.packets[hook] += packets;
                c.hits.bytes[hook] += bytes;
            });
        }
    }
}

impl Drop for RuleTable {
    fn drop(&mut self) {
        let old = self.table.xchg(ptr::null_mut(), Relaxed);
        if !old.is_null() {
            // The hooks are unregistered (waiting for running ones) before
            // the table goes, so no reader is left.
            // SAFETY: As in `rebuild`.
            drop(unsafe { KBox::from_raw(old) });
        }
    }
}
