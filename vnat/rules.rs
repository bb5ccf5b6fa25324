// SPDX-License-Identifier: GPL-2.0

//! The translation rules of a namespace (paper 3.2), as the hooks of
//! `translation.rs` read them.
//!
//! The rules of all migrated connections live in one open-addressing table
//! (`mapping.rs`), published with RCU: hooks read it without a lock, in
//! O(1); vnatd, the only writer, makes a new table when a mapping changes,
//! publishes it and lets the old one go after a grace period. A namespace
//! without migrated connections has no table, and its hooks return after
//! one load. Each rule counts what it matched; when a table is replaced,
//! its counts go to the connections' records.
//!
//! A new table costs what changed, not what there is: the connection table
//! logs which records changed what their rules are made of, and what they
//! were made of before ([`crate::virtualization::Change`]). The table
//! replaced two publications ago comes back after its grace period as the
//! spare; it is brought up to date by the changes of the last two
//! publications (each connection's old rules taken out, its new ones put
//! in), or, when it cannot be, the published table is copied into it (its
//! rules rehashed into a larger one, when it has too little room left) and
//! the last changes applied; a table rehashed so sheds the slots of rules
//! taken out. A table is built whole from every record only when there is
//! no table yet, a change was not logged (the log was full), a rule
//! conflicted (paper 3.4.3: which rule wins is then decided afresh), a
//! move found no room for location hiding, or memory was short. A move of 10,000 connections answered in 16 rounds so costs
//! each end one whole table and patches, the peer's table rehashed each
//! time it outgrows one, not 16 tables of 10,000 built whole.
//!
//! A validating connection's arrival rule and outgoing rule share a flag
//! that says a packet came from the new path: the first sets it, the second
//! sends the new way from then on, and vnatd settles the connection on it.
//! The flag passes from table to table while the connection has the same
//! arrival rule, so that a new table before vnatd settles it (another
//! connection's move, one that closes) cannot send it the old way again.

use crate::{
    ffi::random_u32,
    location_hiding::Moves,
    mapping::{self, Action, Edit, Hook, Mapping, Rule, Slot, Tuple, WireKey},
    vcmp::Endpoint,
    virtualization::{
        Change, Changes, ConnectionTable, HookHits, Key, Records, RuleInputs, State,
        VirtualConnection,
    },
};
use core::{
    net::IpAddr,
    ptr::{self, NonNull},
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Full, Relaxed, Release},
        rcu, Arc,
    },
};

/// At most how many rules a connection has: a validating connection's
/// seven, and the twin of its LOCAL_OUT rule.
const RULES_MAX: usize = 8;

/// How many rules a translated TCP connection has, for sizing a table: a
/// migrated or resuming one's rewrite (or hold) each way, the arrival at
/// the address it left and what a moving peer sends. At twice this many
/// slots per connection, a table of connections that all have
/// [`RULES_MAX`] is full, not more: [`Rules::fill`] then asks for one
/// twice as large.
const RULES_TYPICAL: usize = RULES_MAX / 2;

/// Room for changes the connection table keeps while a table is published,
/// at least and at most (a change beyond has the next table built whole).
const CHANGES_ROOM: (usize, usize) = (256, 8192);

/// The rules of a connection made of `c`, by its state; each LOCAL_OUT
/// rule of a UDP flow whose local end moved with its twin for unconnected
/// sockets ([`mapping::Mapping::unconnected_twin`]).
fn rules_of(c: &RuleInputs) -> [Option<Rule>; RULES_MAX] {
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
            let nat = c.named != c.mapping.local_virtual;
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

/// Whether a connection made of `c` counts in the moves location hiding
/// knows (IPv4 connections only).
fn hides(c: &RuleInputs) -> bool {
    c.state == State::Migrated && !c.mapping.local_virtual.is_v6()
}

/// Whether a packet came from the new path of a validating connection.
type Arrived = Arc<Atomic<bool>>;

/// The arrival flag that validating connection `k` (made of `c`) has in
/// `old`, the table published now, if it has the same arrival rule there.
fn arrival_flag(old: Option<&Rules>, k: Key, c: &RuleInputs) -> Option<Arrived> {
    let old = old?;
    old.arrived[old.slot_of(k, &c.mapping.arrival())?].clone()
}

/// What one rule matched: packets and their bytes.
struct Hits {
    packets: Atomic<u64>,
    bytes: Atomic<u64>,
}

/// The rules of a namespace, as one table, with whose each rule is and
/// what it matched. Immutable while published.
struct Rules {
    seed: u32,
    slots: KVVec<Slot>,
    /// The connection of each used slot.
    owners: KVVec<Key>,
    /// What each slot matched while this table was published; folded into
    /// the connections' records (and zeroed) when it is replaced.
    hits: KVVec<Hits>,
    /// The arrival flag of each slot of a validating connection's arrival
    /// and outgoing rules.
    arrived: KVVec<Option<Arrived>>,
    /// The address pairs of the migrated connections, for location hiding.
    moves: Moves,
    /// A migrated connection's move found no room in `moves`.
    moves_full: bool,
    /// The hooks that have rules, a bit each ([`hook_bit`]): a packet at
    /// another needs no lookup.
    hooks: u8,
    /// The rules at each hook.
    per_hook: [usize; 4],
    /// The rules it holds, and the slots of rules taken out.
    len: usize,
    removed: usize,
    /// The translated connections it was made for.
    translated: usize,
    /// Rules left out because another connection's matched the same
    /// packets: the next table is built whole.
    conflicts: u64,
    /// Its place in the order in which tables were published.
    number: u64,
    /// It was built from every record.
    whole: bool,
    /// What changed between the table it replaced and it: what brings that
    /// table (the spare, after a grace period) up to it.
    changes: Changes,
}

/// What [`RuleTable::lookup`] found for a packet: its rule's action, and
/// what the packet becomes and what that changes in it.
pub(crate) struct Found {
    pub(crate) action: Action,
    pub(crate) rewrite: Tuple,
    pub(crate) edit: Edit,
}

/// The bit of `hook` in [`Rules::hooks`] and [`RuleTable::any_at`].
pub(crate) const fn hook_bit(hook: Hook) -> u8 {
    1 << hook as u8
}

/// What [`RuleTable::rebuild`] published.
pub(crate) struct Built {
    /// Rules left out because another connection's matched the same
    /// packets (virtual address conflict, paper 3.4.3).
    pub(crate) conflicts: u64,
    /// It was built from every record, not patched.
    pub(crate) whole: bool,
    /// It was patched from a copy of the table before, not from the spare.
    pub(crate) copied: bool,
    /// The records' changes it took.
    pub(crate) changes: usize,
}

/// Why a table could not be made as tried.
enum Retry {
    /// Not as a patch: build it whole.
    Whole,
    /// Whole, with room for this many rules.
    Room(usize),
    /// As tried (a patch of a copy of the published table, or whole), with
    /// this many more arrival flags at hand.
    Flags(usize),
    /// As a patch of the published table rehashed into one with room for
    /// this many rules.
    Grow(usize),
}

impl Rules {
    /// An empty table of `cap` slots (a power of two).
    fn new(cap: usize) -> Result<KBox<Self>> {
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
        Ok(KBox::new(
            Self {
                seed: random_u32(),
                slots,
                owners,
                hits,
                arrived,
                moves: Moves::new(),
                moves_full: false,
                hooks: 0,
                per_hook: [0; 4],
                len: 0,
                removed: 0,
                translated: 0,
                conflicts: 0,
                number: 0,
                whole: false,
                changes: Changes {
                    complete: false,
                    ..Changes::new(KVVec::new())
                },
            },
            GFP_KERNEL,
        )?)
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Empties it, with a new seed. Its hits are zero (a table comes back
    /// from being published with its hits folded).
    fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.arrived.fill(None);
        self.seed = random_u32();
        self.moves = Moves::new();
        self.moves_full = false;
        self.per_hook = [0; 4];
        self.len = 0;
        self.removed = 0;
        self.conflicts = 0;
    }

    /// Makes it a copy of `from`, of the same capacity, but for the hits
    /// (zero in both) and the changes.
    fn copy_from(&mut self, from: &Rules) {
        self.slots.copy_from_slice(&from.slots);
        self.owners.copy_from_slice(&from.owners);
        self.arrived.clone_from_slice(&from.arrived);
        self.seed = from.seed;
        self.take_counts(from);
        self.removed = from.removed;
    }

    /// What `from` says of the rules it holds, but for where they are.
    fn take_counts(&mut self, from: &Rules) {
        self.moves = from.moves;
        self.moves_full = from.moves_full;
        self.per_hook = from.per_hook;
        self.len = from.len;
        self.conflicts = from.conflicts;
        self.number = from.number;
    }

    /// Makes it, empty (just allocated or cleared), hold what `from` holds but for the
    /// hits (zero in both) and the changes, whatever the two capacities:
    /// each rule goes to its place here, the slots of rules taken out stay
    /// behind. What a table that must grow costs instead of a whole build
    /// from every record: no rule is made again.
    fn rehash_from(&mut self, from: &Rules) -> Result<(), Retry> {
        for (i, s) in from.slots.iter().enumerate() {
            if !s.is_rule() {
                continue;
            }
            let at =
                mapping::insert_slot(&mut self.slots, self.seed, s).map_err(|_| Retry::Whole)?;
            self.owners[at] = from.owners[i];
            self.arrived[at] = from.arrived[i].clone();
        }
        self.take_counts(from);
        self.removed = 0;
        Ok(())
    }

    /// Whether the next table may be made from it by applying changes:
    /// nothing in it depends on the order in which connections came (a
    /// conflict, a move left out). The table before it may catch up with it
    /// only if its [`Rules::changes`] are complete as well.
    fn patchable(&self) -> bool {
        self.conflicts == 0 && !self.moves_full
    }

    /// The slot where connection `k` has a rule matching what `r` matches.
    fn slot_of(&self, k: Key, r: &Rule) -> Option<usize> {
        mapping::lookup_index(&self.slots, self.seed, r.hook, &r.matches)
            .filter(|&i| self.owners[i] == k)
    }

    /// Puts in `rules`, those of connection `k` made of `c`, with `flag` on
    /// its arrival rules; counts those that conflict. Returns whether its
    /// move (if it has one) found room in [`Rules::moves`].
    fn put(
        &mut self,
        k: Key,
        c: &RuleInputs,
        rules: &[Option<Rule>; RULES_MAX],
        flag: Option<&Arrived>,
    ) -> Result<bool, Retry> {
        for r in rules.iter().flatten() {
            match mapping::insert_reusing(&mut self.slots, self.seed, r) {
                Ok((i, reused)) => {
                    self.removed -= usize::from(reused);
                    self.owners[i] = k;
                    self.per_hook[r.hook as usize] += 1;
                    self.len += 1;
                    if matches!(r.action, Action::Arrival | Action::UntilArrival(_)) {
                        self.arrived[i] = flag.cloned();
                    }
                }
                Err(mapping::InsertError::Conflict) => self.conflicts += 1,
                // A patch may try again in a larger table (a fill asks
                // for one itself).
                Err(mapping::InsertError::Full) => {
                    return Err(Retry::Grow(self.len + self.removed + 1))
                }
            }
        }
        // Past the limit, new connections of other moves keep their
        // addresses.
        Ok(!hides(c) || self.moves.add(&c.mapping))
    }

    /// Takes out the rules of connection `k` that it holds, made of `was`,
    /// and its move; if it holds none, it holds nothing of `was`.
    fn take_out(&mut self, k: Key, was: &RuleInputs) -> usize {
        let mut found = 0;
        for r in rules_of(was).iter().flatten() {
            if let Some(i) = self.slot_of(k, r) {
                mapping::remove(&mut self.slots, i);
                self.arrived[i] = None;
                self.per_hook[r.hook as usize] -= 1;
                self.len -= 1;
                self.removed += 1;
                found += 1;
            }
        }
        if found > 0 && hides(was) {
            self.moves.remove(&was.mapping);
        }
        found
    }

    /// Whether connection `k`, whose rules are `rules`, has them in already.
    fn holds(&self, k: Key, rules: &[Option<Rule>; RULES_MAX]) -> bool {
        rules
            .iter()
            .flatten()
            .next()
            .is_some_and(|r| self.slot_of(k, r).is_some())
    }

    /// Fills it, empty, with the rules of every record. `old` is the
    /// published table, whose arrival flags pass on; `spare` has flags for
    /// the connections that start validating.
    fn fill(
        &mut self,
        records: &Records<'_>,
        old: Option<&Rules>,
        spare: &mut KVec<Arrived>,
    ) -> Result<(), Retry> {
        let mut flags_missing = 0;
        let mut full = false;
        records.for_each(|k, c| {
            if full {
                return;
            }
            let c = c.rule_inputs();
            let flag = if c.state == State::Validating {
                let flag = arrival_flag(old, k, &c).or_else(|| spare.pop());
                flags_missing += usize::from(flag.is_none());
                flag
            } else {
                None
            };
            match self.put(k, &c, &rules_of(&c), flag.as_ref()) {
                Ok(room) => self.moves_full |= !room,
                Err(_) => full = true,
            }
        });
        if full {
            // At least twice the slots: native connections' rules (an
            // arrival at the address they left) are not counted in
            // `translated`.
            return Err(Retry::Room(
                (RULES_MAX * records.translated()).max(self.capacity()),
            ));
        }
        if 2 * self.len > self.capacity() {
            return Err(Retry::Room(self.len));
        }
        if flags_missing > 0 {
            return Err(Retry::Flags(flags_missing));
        }
        Ok(())
    }

    /// Applies `changes` (each connection's old rules out, its new ones in).
    /// `old` is the published table, whose arrival flags pass on; `spare`
    /// has flags for the connections that start validating (too few: it
    /// fails saying how many more). Fails on what only a whole build
    /// decides: a conflict, a move without room, no room for the rules.
    fn patch(
        &mut self,
        changes: [&[Change]; 3],
        records: &Records<'_>,
        old: Option<&Rules>,
        spare: &mut KVec<Arrived>,
    ) -> Result<(), Retry> {
        let mut flags_missing = 0;
        let mut taken_out = 0;
        for c in changes.iter().copied().flatten() {
            if let Some(was) = &c.was {
                taken_out += self.take_out(c.key, was);
            }
        }
        for c in changes.iter().copied().flatten() {
            let Some(now) = records.get(c.key).map(VirtualConnection::rule_inputs) else {
                continue;
            };
            // A connection changed twice is in twice.
            let rules = rules_of(&now);
            if self.holds(c.key, &rules) {
                continue;
            }
            let flag = if now.state == State::Validating {
                let flag = arrival_flag(old, c.key, &now).or_else(|| spare.pop());
                if flag.is_none() {
                    flags_missing += 1;
                    continue;
                }
                flag
            } else {
                None
            };
            if !self.put(c.key, &now, &rules, flag.as_ref())? || self.conflicts > 0 {
                return Err(Retry::Whole);
            }
        }
        if flags_missing > 0 {
            return Err(Retry::Flags(flags_missing));
        }
        // Slots of rules taken out count: probes run over them.
        if 2 * (self.len + self.removed) > self.capacity() {
            // Rehashed, the table before this patch holds its rules
            // without the slots of rules taken out: this patch makes at
            // most as many such slots as it takes rules out.
            return Err(Retry::Grow(self.len + taken_out));
        }
        Ok(())
    }

    /// Sets what follows from the rules it holds.
    fn finish(&mut self, translated: usize, number: u64, whole: bool, changes: Changes) {
        self.hooks = Hook::ALL
            .iter()
            .filter(|&&h| self.per_hook[h as usize] > 0)
            .fold(0, |b, &h| b | hook_bit(h));
        self.translated = translated;
        self.number = number;
        self.whole = whole;
        self.changes = changes;
    }
}

/// The published table of a namespace, and the spare.
///
/// # Invariants
///
/// `table` and `spare` are null or come from `KBox::into_raw` of a `Rules`.
/// A published `table` is freed or reused only after a grace period
/// following its replacement; `spare` is not published.
pub(crate) struct RuleTable {
    table: Atomic<*mut Rules>,
    spare: Atomic<*mut Rules>,
    /// Tables published so far.
    published: Atomic<u64>,
    /// A build failed (memory) after it took changes from the connection
    /// table: the next is built whole.
    lost: Atomic<bool>,
}

// SAFETY: The pointers are published and read with acquire/release
// ordering, a table is immutable while published, and the spare is owned
// by whoever takes it with an exchange.
unsafe impl Send for RuleTable {}
// SAFETY: As above.
unsafe impl Sync for RuleTable {}

/// The rules a whole table for `translated` connections is sized for: those
/// the published table `old` holds, and [`RULES_TYPICAL`] for each
/// connection translated since.
fn rules_wanted(old: Option<&Rules>, translated: usize) -> usize {
    old.map_or(RULES_TYPICAL * translated, |o| {
        o.len + RULES_TYPICAL * translated.saturating_sub(o.translated)
    })
}

/// The capacity of a patched table, made from the published one (`len`
/// rules, `removed` slots of rules taken out, `capacity` slots) for
/// `added` more connections translated since, each with up to
/// [`RULES_MAX`] rules (a peer's batch of moves: each connection validates
/// first), and whether the published table's rules are rehashed into it
/// rather than the table copied or caught up with: the published
/// table's capacity if that stays at most half full with the slots of
/// rules taken out (probes run over them), else one sized for its rules
/// alone and half as many again (so that slots of rules taken out may
/// gather a while before the next), which may be smaller, and, after a try
/// that found too little room, for the `grow` rules it asked for. A table
/// rehashed so sheds the slots of rules taken out, so that a host whose
/// connections come and go keeps a table sized for those it has.
fn patch_capacity(
    len: usize,
    removed: usize,
    capacity: usize,
    added: usize,
    grow: Option<usize>,
) -> (usize, bool) {
    let more = RULES_MAX * added;
    match grow {
        None if 2 * (len + removed + more) <= capacity => (capacity, false),
        _ => {
            let rules = grow.unwrap_or(0).max(len + len / 2 + more).max(1);
            (mapping::capacity_for(rules), true)
        }
    }
}

/// Appends `more` to `to` (lost if memory is short: `to` is then
/// incomplete).
fn append(to: &mut Changes, more: Changes) {
    if to.log.is_empty() {
        to.complete &= more.complete;
        to.log = more.log;
    } else {
        to.complete &= more.complete && to.log.extend_from_slice(&more.log, GFP_KERNEL).is_ok();
    }
}

impl RuleTable {
    pub(crate) const fn new() -> Self {
        Self {
            table: Atomic::new(ptr::null_mut()),
            spare: Atomic::new(ptr::null_mut()),
            published: Atomic::new(0),
            lost: Atomic::new(false),
        }
    }

    /// Takes the spare.
    fn take_spare(&self) -> Option<KBox<Rules>> {
        let spare = self.spare.xchg(ptr::null_mut(), Full);
        // SAFETY: A non-null spare came from `KBox::into_raw` and is not
        // published (type invariant); the exchange made it ours alone.
        (!spare.is_null()).then(|| unsafe { KBox::from_raw(spare) })
    }

    /// Keeps `rules`, no longer published, as the spare (the one before, if
    /// any, goes).
    fn put_spare(&self, rules: KBox<Rules>) {
        // INVARIANT: `rules` is no longer published.
        drop(self.take_spare());
        let before = self.spare.xchg(KBox::into_raw(rules), Full);
        if !before.is_null() {
            // SAFETY: As in `take_spare`.
            drop(unsafe { KBox::from_raw(before) });
        }
    }

    /// Frees the spare: vnatd calls it when idle, so that a namespace
    /// whose rules do not change keeps one table.
    pub(crate) fn trim(&self) {
        drop(self.take_spare());
    }

    /// Replaces the table by one made from the namespace's connections.
    /// Called from vnatd only (one writer). Returns what it built, and the
    /// table replaced: the new one is live at once, and what the caller
    /// sends because of it (an answer to an update, a retransmission) need
    /// not wait for the grace period after which the old one goes
    /// ([`Retired`]).
    pub(crate) fn rebuild<'a>(
        &'a self,
        connections: &'a ConnectionTable,
    ) -> Result<(Built, Option<Retired<'a>>)> {
        let mut spare_table = self.take_spare();
        // What changed since the published table, as taken so far: all of
        // it, unless a build that took changes failed.
        let mut taken = Changes {
            complete: !self.lost.load(Relaxed),
            ..Changes::new(KVVec::new())
        };
        // The table tried last was patched in part: the next try copies.
        let mut recopy = false;
        // The last try patched a copy of the published table.
        let mut copied = false;
        // Flags for the connections that start validating, allocated here
        // as well: one, or as many as the last try found missing.
        let mut flags_wanted = 1;
        // `None` while a patch may be tried; otherwise the rules a whole
        // table is sized for. Slots, at most half full, for the rules the
        // published table holds and `RULES_TYPICAL` for each connection
        // translated since; if the new table fills more than half, again for
        // as many as it took (if it filled, at least twice the slots). A
        // table sized for `RULES_MAX` per connection had two to four times
        // the slots, each allocated, cleared or copied, and walked when
        // the table is retired: 262,144 slots of 108 bytes for the 10,000
        // connections of a move, which took 71 ms to allocate and copy
        // (benchmark guest) before the move's first patch.
        let mut whole: Option<usize> = None;
        // The rules a grown patched table is sized for, once a patch found
        // too little room.
        let mut grow: Option<usize> = None;
        // Tables are numbered in the order they are published (a
        // namespace without one included), so that the spare is known to be
        // the one before the published one only if it is.
        let number = self.published.fetch_add(1, Relaxed) + 1;
        // Room for twice the changes this table takes (those the log had
        // no room for counted: a peer's first batch of updates comes while
        // there is no table, whose log has none), and for a quarter of the
        // translated connections (a batch answered in 16 rounds changes a
        // sixteenth per round).
        let room = 2 * connections.changes_noted();
        let new = loop {
            let translated = connections.translated();
            if translated == 0 {
                // What changes while there is no table needs no log: the
                // next table is built whole.
                let (changes, ()) = connections.take_changes(KVVec::new(), |_, _| ());
                append(&mut taken, changes);
                self.lost.store(false, Relaxed);
                break None;
            }
            let room = room
                .max(translated / 4)
                .clamp(CHANGES_ROOM.0, CHANGES_ROOM.1);
            let room = KVVec::with_capacity(room, GFP_KERNEL)?;
            let mut spare = KVec::with_capacity(flags_wanted, GFP_KERNEL)?;
            for _ in 0..flags_wanted {
                spare.push(Arc::new(Atomic::new(false), GFP_KERNEL)?, GFP_KERNEL)?;
            }
            // The table to make: the published one's size if the changes
            // can be applied to it (the spare, if it is the table before the
            // published one, catches up with the published one's changes
            // first; otherwise the published one is copied into it), or a
            // whole one. Allocated, and freed, out of any lock.
            let (cap, patch_from) = self.read(|old| {
                match old.filter(|o| whole.is_none() && taken.complete && o.patchable()) {
                    Some(o) => {
                        let added = translated.saturating_sub(o.translated);
                        let (cap, rehash) =
                            patch_capacity(o.len, o.removed, o.capacity(), added, grow);
                        (cap, Some((o.number, o.changes.complete, rehash)))
                    }
                    None => {
                        let rules = whole.unwrap_or_else(|| rules_wanted(old, translated));
                        (mapping::capacity_for(rules.max(1)), None)
                    }
                }
            });
            let (mut t, fresh) = match spare_table.take() {
                Some(t) if t.capacity() == cap => (t, false),
                other => {
                    drop(other);
                    (Rules::new(cap)?, true)
                }
            };
            let catch_up = match patch_from {
                Some((n, complete, false))
                    if complete && !recopy && !fresh && t.number + 1 == n && t.patchable() =>
                {
                    true
                }
                Some((_, _, rehash)) => {
                    // A table just allocated is empty already: its rules
                    // are put in one by one (a 131,072-slot table copied
                    // whole, 108 bytes a slot, is 14 MB).
                    let rehash = rehash || fresh;
                    if rehash && !fresh {
                        t.clear();
                    }
                    let made = self.read(|old| match old {
                        Some(o) if !rehash => {
                            t.copy_from(o);
                            Ok(())
                        }
                        Some(o) => t.rehash_from(o),
                        None => Ok(()),
                    });
                    if made.is_err() {
                        spare_table = Some(t);
                        recopy = true;
                        whole = Some(self.read(|old| rules_wanted(old, translated)));
                        continue;
                    }
                    false
                }
                None => {
                    if !fresh {
                        t.clear();
                    }
                    false
                }
            };
            let patching = patch_from.is_some();
            copied = patching && !catch_up;
            let (changes, (result, translated)) = connections.take_changes(room, |now, records| {
                let result = self.read(|old| {
                    if !patching {
                        return t.fill(records, old, &mut spare);
                    }
                    if !now.complete {
                        return Err(Retry::Whole);
                    }
                    let before: &[Change] = match old {
                        Some(o) if catch_up => &o.changes.log,
                        _ => &[],
                    };
                    t.patch([before, &taken.log, &now.log], records, old, &mut spare)
                });
                (result, records.translated())
            });
            // Lost, should this build fail.
            self.lost.store(true, Relaxed);
            append(&mut taken, changes);
            match result {
                Ok(()) => {
                    self.lost.store(false, Relaxed);
                    t.finish(translated, number, !patching, taken);
                    break Some(t);
                }
                Err(retry) => {
                    // What it held goes, or is reused.
                    spare_table = Some(t);
                    recopy = true;
                    match retry {
                        Retry::Whole => {
                            let rules = self.read(|old| rules_wanted(old, translated));
                            whole = Some(whole.unwrap_or(0).max(rules));
                        }
                        Retry::Room(n) => whole = Some(n),
                        Retry::Flags(n) => flags_wanted += n,
                        Retry::Grow(n) => grow = Some(n),
                    }
                }
            }
        };
        drop(spare_table);
        let built = Built {
            conflicts: new.as_ref().map_or(0, |t| t.conflicts),
            whole: new.as_ref().is_some_and(|t| t.whole),
            copied,
            changes: new.as_ref().map_or(0, |t| t.changes.log.len()),
        };
        let new = new.map_or(ptr::null_mut(), KBox::into_raw);
        let old = NonNull::new(self.table.xchg(new, Release));
        // INVARIANT: `old` came from `KBox::into_raw` (type invariant of
        // `RuleTable`) and is no longer published.
        Ok((
            built,
            old.map(|old| Retired {
                old,
                connections,
                rules: self,
            }),
        ))
    }

    /// Calls `f` with the published table, if there is one, in an RCU read
    /// section of its own.
    fn read<R>(&self, f: impl FnOnce(Option<&Rules>) -> R) -> R {
        let _guard = rcu::read_lock();
        // SAFETY: In the read section just taken, which outlasts `f`.
        f(unsafe { self.published() })
    }

    /// The published table, if there is one.
    ///
    /// # Safety
    ///
    /// The caller is in an RCU read section, and uses the table only within
    /// it.
    unsafe fn published(&self) -> Option<&Rules> {
        let table = self.table.load(Acquire);
        // SAFETY: Non-null tables are valid until a grace period after they
        // are replaced, and the caller uses it only in its read section.
        (!table.is_null()).then(|| unsafe { &*table })
    }

    /// What the rules of connection `k` matched in the published table,
    /// per hook: (packets, bytes). Takes the RCU read lock itself.
    pub(crate) fn live_hits(&self, k: Key, c: &VirtualConnection) -> HookHits {
        self.read(|rules| {
            let Some(rules) = rules else {
                return HookHits::default();
            };
            let mut out = HookHits::default();
            for r in rules_of(&c.rule_inputs()).iter().flatten() {
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
        let c = c.rule_inputs();
        self.read(|rules| arrival_flag(rules, k, &c).is_some_and(|f| f.load(Relaxed)))
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
    pub(crate) unsafe fn lookup(&self, hook: Hook, key: &WireKey, len: u32) -> Option<Found> {
        // SAFETY: The caller is in an RCU read section, which outlasts this.
        let rules = unsafe { self.published() }?;
        let i = mapping::lookup_key(&rules.slots, rules.seed, hook, key)?;
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
        let (rewrite, edit) = match slot.action {
            // Sent the new way: what that changes is worked out now (only
            // a validating connection's packets, until vnatd settles it).
            Action::UntilArrival(_) if arrived => {
                let to = slot.resolved(true);
                (to, Edit::new(&slot.matches(), &to))
            }
            _ => (slot.rewrite, slot.edit),
        };
        Some(Found {
            action: slot.action,
            rewrite,
            edit,
        })
    }

    /// What the rule of `hook` that matches packet `t` would rewrite it to,
    /// without counting the packet or marking an arrival; `None` if no rule
    /// matches. For the incoming hooks, whose rewrites depend on nothing
    /// else: the endpoints a packet will have after them, unless another
    /// table is published meanwhile (the shim's LOCAL_IN hook checks).
    ///
    /// # Safety
    ///
    /// As for [`RuleTable::lookup`]: the caller is in an RCU read section.
    pub(crate) unsafe fn rewrite_at(&self, hook: Hook, key: &WireKey) -> Option<WireKey> {
        // SAFETY: The caller is in an RCU read section, which outlasts this.
        let rules = unsafe { self.published() }?;
        if rules.hooks & hook_bit(hook) == 0 {
            return None;
        }
        let i = mapping::lookup_key(&rules.slots, rules.seed, hook, key)?;
        Some(WireKey::from(&rules.slots[i].rewrite))
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
        // SAFETY: The caller is in an RCU read section, which outlasts this.
        let rules = unsafe { self.published() }?;
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
        // SAFETY: The caller is in an RCU read section, which outlasts this.
        unsafe { self.published() }.is_some_and(|r| r.hooks & hooks != 0)
    }
}

/// A table that was replaced: readers may still use it until a grace
/// period has passed. Dropping it waits for one (it sleeps), then folds what
/// the table's rules counted into the connections' records and keeps it as
/// the spare of its [`RuleTable`].
///
/// # Invariants
///
/// `old` comes from `KBox::into_raw` of a `Rules` that is no longer
/// published; nothing else frees it.
#[must_use = "dropping it waits for a grace period: do so once what the new table allows is done"]
pub(crate) struct Retired<'a> {
    old: NonNull<Rules>,
    connections: &'a ConnectionTable,
    rules: &'a RuleTable,
}

impl Drop for Retired<'_> {
    fn drop(&mut self) {
        rcu::synchronize_rcu();
        // SAFETY: `old` came from `KBox::into_raw` and is ours alone (type
        // invariant); no reader can hold it after the grace period.
        let old = unsafe { KBox::from_raw(self.old.as_ptr()) };
        // No hook counts into it any more: what it counted goes to the
        // records (one short lock each; idle connections cost nothing), and
        // it starts from zero as the spare.
        for (i, h) in old.hits.iter().enumerate() {
            // Only a rule counts: the hits first, not to load every slot
            // of a large table (108 bytes each) for the few that counted.
            let packets = h.packets.load(Relaxed);
            if packets == 0 || !old.slots[i].is_rule() {
                continue;
            }
            let hook = usize::from(old.slots[i].hook);
            let bytes = h.bytes.load(Relaxed);
            h.packets.store(0, Relaxed);
            h.bytes.store(0, Relaxed);
            self.connections.with(old.owners[i], |c| {
                c.hits.packets[hook] += packets;
                c.hits.bytes[hook] += bytes;
            });
        }
        self.rules.put_spare(old);
    }
}

impl Drop for RuleTable {
    fn drop(&mut self) {
        self.trim();
        let old = self.table.xchg(ptr::null_mut(), Relaxed);
        if !old.is_null() {
            // The hooks are unregistered (waiting for running ones) before
            // the table goes, so no reader is left.
            // SAFETY: As in `rebuild`.
            drop(unsafe { KBox::from_raw(old) });
        }
    }
}

#[kunit_tests(vnat_rules)]
mod tests {
    use super::*;

    /// A host whose connections come and go: 400 rules, and every round 4
    /// taken out and 4 put into free slots (the worst case: no slot of a
    /// rule taken out reused). The table stays the size of its rules
    /// (a table grown from the rules and the slots of rules taken out
    /// doubled every few hundred rounds: 131,072 slots after 20,000).
    #[test]
    fn churn_keeps_the_capacity() {
        let len = 400;
        let (mut cap, mut removed) = (mapping::capacity_for(len), 0);
        for _ in 0..20_000 {
            let (c, rehash) = patch_capacity(len, removed, cap, 0, None);
            if rehash {
                (cap, removed) = (c, 0);
            }
            removed += 4;
            // The patch's own check, and its try again.
            if 2 * (len + removed) > cap {
                (cap, _) = patch_capacity(len, removed - 4, cap, 0, Some(len + 4));
                removed = 4;
            }
            assert!(cap <= mapping::capacity_for(len + len / 2));
            assert!(2 * (len + removed) <= cap);
        }
    }

    /// A try that found too little room asks for a table that holds what it
    /// asked at most half full; connections translated since count with
    /// RULES_MAX rules each.
    #[test]
    fn growth_is_enough() {
        for (len, removed, cap, added, grow) in [
            (2_500, 0, 8_192, 628, None),
            (40_000, 30_000, 131_072, 0, Some(40_010)),
            (1, 7, 16, 0, Some(12)),
        ] {
            let (c, rehash) = patch_capacity(len, removed, cap, added, grow);
            assert!(rehash);
            assert!(2 * (len + RULES_MAX * added) <= c);
            assert!(2 * grow.unwrap_or(0) <= c);
        }
        // Room enough: the table as it is.
        assert_eq!(patch_capacity(100, 100, 1_024, 10, None), (1_024, false));
    }
}
