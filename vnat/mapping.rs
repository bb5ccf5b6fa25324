// SPDX-License-Identifier: GPL-2.0

//! Virtual-physical mappings and the translation rules they imply (paper
//! sections 3.2 and 4.2), and the open-addressing table the hooks search.
//!
//! A migrated connection has a local and a remote endpoint, each with a
//! virtual (what the transport protocol sees, forever) and a physical (what
//! the wire carries, now) address and port. Its packets are rewritten at
//! four points:
//!
//! | hook        | packet as it arrives | rewritten to |
//! |-------------|----------------------|--------------|
//! | LOCAL_OUT   | LV -> RV             | LV -> RP     |
//! | POSTROUTING | LV -> RP             | LP -> RP     |
//! | PREROUTING  | RP -> LP             | RP -> LV     |
//! | LOCAL_IN    | RP -> LV             | RV -> LV     |
//!
//! A hook with nothing to change gets no rule, so a connection that has not
//! moved (or has moved back) costs nothing. Plain `no_std` Rust without
//! allocation, shared with `tools/vnat-proto`.
//!
//! A rule is kept in the table in the form a packet is read and written
//! in: what it matches as the header's words ([`WireKey`]), so that a hook
//! hashes and compares the words it loads from the packet; and what its
//! rewrite does to the checksums, computed once when the rule is put in
//! ([`Edit`]), so that a hook adds two precomputed sums per endpoint
//! instead of working them out from the addresses of every packet.

pub use crate::vcmp::{PROTO_TCP, PROTO_UDP};
use crate::{
    checksum::{add, fold},
    vcmp::{mapped, Endpoint},
};
use core::net::{IpAddr, Ipv4Addr};

/// The four netfilter hooks, numbered as the shim numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Hook {
    /// Incoming DNAT.
    PreRouting = 0,
    /// Incoming SNAT.
    LocalIn = 1,
    /// Outgoing DNAT.
    LocalOut = 2,
    /// Outgoing SNAT.
    PostRouting = 3,
}

impl Hook {
    /// Every hook, in numbering order.
    pub const ALL: [Hook; 4] = [
        Hook::PreRouting,
        Hook::LocalIn,
        Hook::LocalOut,
        Hook::PostRouting,
    ];
}

/// The hook numbered `raw` (the shim's `enum vnat_hook`).
impl TryFrom<u32> for Hook {
    type Error = u32;

    fn try_from(raw: u32) -> Result<Self, u32> {
        Hook::ALL.get(raw as usize).copied().ok_or(raw)
    }
}

/// A packet's protocol and endpoints, as a rule matches or writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuple {
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// Source address and port.
    pub src: Endpoint,
    /// Destination address and port.
    pub dst: Endpoint,
}

/// One virtual connection's mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// LV: the local endpoint the transport protocol uses.
    pub local_virtual: Endpoint,
    /// LP: the local endpoint on the wire now.
    pub local_physical: Endpoint,
    /// RV: the remote endpoint the transport protocol uses.
    pub remote_virtual: Endpoint,
    /// RP: the remote endpoint on the wire now.
    pub remote_physical: Endpoint,
}

/// A translation: at `hook`, a packet equal to `matches` becomes `rewrite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Where the rule applies.
    pub hook: Hook,
    /// The packet it applies to.
    pub matches: Tuple,
    /// What the packet becomes.
    pub rewrite: Tuple,
    /// What else the hook does with a packet it matches.
    pub action: Action,
}

/// What a rule does with the packets it matches, besides rewriting them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Nothing else.
    #[default]
    Rewrite,
    /// Tells vnatd that the packet came: it shows that a new path works
    /// (the connection is validating it).
    Arrival,
    /// Drops it instead.
    Hold,
    /// Drops it if the host no longer has its source address: sent, it
    /// would carry that address onto a network it does not belong to.
    HoldIfGone,
    /// Sends it the old way (`rewrite`) until the connection's arrival rule
    /// has matched a packet, then to this endpoint ([`Slot::resolved`]):
    /// what a validating connection sends ([`Mapping::validating`]).
    UntilArrival(Endpoint),
}

impl Mapping {
    /// A connection that has not moved: virtual and physical are equal.
    pub const fn native(proto: u8, local: Endpoint, remote: Endpoint) -> Self {
        Self {
            proto,
            local_virtual: local,
            local_physical: local,
            remote_virtual: remote,
            remote_physical: remote,
        }
    }

    /// Whether nothing needs translating.
    pub fn is_native(&self) -> bool {
        self.local_virtual == self.local_physical && self.remote_virtual == self.remote_physical
    }

    fn tuple(&self, src: Endpoint, dst: Endpoint) -> Tuple {
        Tuple {
            proto: self.proto,
            src,
            dst,
        }
    }

    /// The rule that sees the peer's packets arrive from its physical
    /// endpoint (at LOCAL_IN, after PREROUTING gave them the virtual local
    /// endpoint), even if it changes nothing: the one a validating
    /// connection waits to match.
    pub fn arrival(&self) -> Rule {
        let (lv, rp) = (self.local_virtual, self.remote_physical);
        Rule {
            hook: Hook::LocalIn,
            matches: self.tuple(rp, lv),
            rewrite: self.tuple(self.remote_virtual, lv),
            action: Action::Arrival,
        }
    }

    /// The rule that holds back what the connection sends (at LOCAL_OUT)
    /// while the peer has not answered its move: always (`always`: behind a
    /// NAT, which would give those packets the new address, unknown to the
    /// peer yet), or once the host no longer has the address they carry
    /// ([`Action::HoldIfGone`]). What it lets go keeps its untranslated
    /// source (the local virtual endpoint), and goes to where the peer is
    /// now (which the peer may have told us meanwhile, moving too).
    pub fn hold(&self, always: bool) -> Rule {
        let (lv, rv, rp) = (
            self.local_virtual,
            self.remote_virtual,
            self.remote_physical,
        );
        Rule {
            hook: Hook::LocalOut,
            matches: self.tuple(lv, rv),
            rewrite: self.tuple(lv, rp),
            action: if always {
                Action::Hold
            } else {
                Action::HoldIfGone
            },
        }
    }

    /// The rules of a connection validating its remote physical endpoint,
    /// `previous` being the one its packets came from before: the peer's
    /// packets are understood from both, their arrival from the new one is
    /// told ([`Mapping::arrival`]), and what the connection sends goes to
    /// `previous` until then, to the new endpoint from the first packet that
    /// came from it on (the hook decides, [`Slot::resolved`]). An answer to that
    /// packet sent the old way would acknowledge bytes the old path never
    /// carried: a NAT there takes it for invalid and its own stack answers
    /// with a reset, which the connection would accept from there.
    pub fn validating(&self, previous: Endpoint) -> [Option<Rule>; 7] {
        let old = Mapping {
            remote_physical: previous,
            ..*self
        };
        let moved = previous != self.remote_physical;
        let [pre, _, _, post] = self.rules();
        let [opre, oinp, _, opost] = old.rules();
        let out = Rule {
            hook: Hook::LocalOut,
            matches: self.tuple(self.local_virtual, self.remote_virtual),
            rewrite: self.tuple(self.local_virtual, previous),
            action: Action::UntilArrival(self.remote_physical),
        };
        [
            Some(self.arrival()),
            pre.filter(|_| moved),
            opre,
            oinp.filter(|_| moved),
            Some(out),
            opost,
            post.filter(|_| moved),
        ]
    }

    /// The twin of `out`, a LOCAL_OUT rule of this connection, for what an
    /// unconnected UDP socket sends: a server on a wildcard address that
    /// answers with `sendto()` sends from the address its route picks, the
    /// host's own (physical) one, not the virtual one it no longer has. The
    /// twin matches those datagrams and does what `out` does to their
    /// destination, keeping their source (POSTROUTING then has nothing to
    /// change; the peer's rules map it to the virtual one). None for TCP,
    /// whose sockets send from the address they are bound to, or while the
    /// local end has not moved.
    pub fn unconnected_twin(&self, out: &Rule) -> Option<Rule> {
        let lp = self.local_physical;
        (self.proto == PROTO_UDP && lp != self.local_virtual && out.hook == Hook::LocalOut).then(
            || Rule {
                matches: self.tuple(lp, out.matches.dst),
                rewrite: self.tuple(lp, out.rewrite.dst),
                ..*out
            },
        )
    }

    /// The rule that takes what the peer sends to `at`, a local physical
    /// endpoint this end is moving or moved away from while the host still
    /// has it, as sent to the local virtual endpoint (at PREROUTING, as
    /// [`Mapping::rules`]' first): without it, the packets the peer sent
    /// before it heard of the move would find no socket there and be
    /// answered with a reset. `None` where there is nothing to take: `at`
    /// is where the connection is, or its virtual endpoint (its socket's).
    pub fn arrival_at(&self, at: Endpoint) -> Option<Rule> {
        let (lv, lp, rp) = (
            self.local_virtual,
            self.local_physical,
            self.remote_physical,
        );
        (at != lv && at != lp).then(|| Rule {
            hook: Hook::PreRouting,
            matches: self.tuple(rp, at),
            rewrite: self.tuple(rp, lv),
            action: Action::Rewrite,
        })
    }

    /// The rule that takes what a peer in the middle of its own move sends
    /// to this end's physical endpoint: until its move is answered, the
    /// peer's packets keep their untranslated source, our remote virtual
    /// endpoint ([`Mapping::hold`]), and they reach this end's socket as
    /// those sent to its virtual endpoint do (at PREROUTING, as
    /// [`Mapping::rules`]' first). Without it, a peer that moves while this
    /// end is away from its virtual endpoint (or both at once, paper 3.4.2)
    /// has its packets in flight when this end takes its update answered by
    /// a reset. `None` where [`Mapping::rules`] take them already: this end
    /// is at its virtual endpoint, or the peer at its own.
    pub fn from_moving_peer(&self) -> Option<Rule> {
        let (lv, lp, rv, rp) = (
            self.local_virtual,
            self.local_physical,
            self.remote_virtual,
            self.remote_physical,
        );
        (lp != lv && rp != rv).then(|| Rule {
            hook: Hook::PreRouting,
            matches: self.tuple(rv, lp),
            rewrite: self.tuple(rv, lv),
            action: Action::Rewrite,
        })
    }

    /// The rules that translate this connection, at most one per hook.
    pub fn rules(&self) -> [Option<Rule>; 4] {
        let (lv, lp, rv, rp) = (
            self.local_virtual,
            self.local_physical,
            self.remote_virtual,
            self.remote_physical,
        );
        let rule = |hook, changes: bool, matches, rewrite| {
            changes.then_some(Rule {
                hook,
                matches,
                rewrite,
                action: Action::Rewrite,
            })
        };
        [
            rule(
                Hook::PreRouting,
                lp != lv,
                self.tuple(rp, lp),
                self.tuple(rp, lv),
            ),
            rule(
                Hook::LocalIn,
                rp != rv,
                self.tuple(rp, lv),
                self.tuple(rv, lv),
            ),
            rule(
                Hook::LocalOut,
                rp != rv,
                self.tuple(lv, rv),
                self.tuple(lv, rp),
            ),
            rule(
                Hook::PostRouting,
                lp != lv,
                self.tuple(lv, rp),
                self.tuple(lp, rp),
            ),
        ]
    }
}

/// A packet's protocol and endpoints as its headers carry them: each
/// address as 32-bit words in the order of its bytes (an IPv4 address is
/// one word, the others zero), the two ports as one word. What the table
/// hashes and compares: a hook loads it from the packet
/// (`packet::read_key`) without making endpoints of it.
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct WireKey {
    /// The protocol, and 1 << 8 for IPv6.
    meta: u32,
    /// Source port then destination port, big-endian, as one word.
    ports: u32,
    src: [u32; 4],
    dst: [u32; 4],
}

/// Field by field, the words that differ most often first.
impl PartialEq for WireKey {
    fn eq(&self, o: &Self) -> bool {
        self.ports == o.ports && self.src == o.src && self.dst == o.dst && self.meta == o.meta
    }
}

const KEY_V6: u32 = 1 << 8;

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl WireKey {
    /// The key of an IPv4 packet of protocol `proto`: its addresses and
    /// its two ports, as its headers have them.
    pub fn v4(proto: u8, src: &[u8; 4], dst: &[u8; 4], ports: &[u8; 4]) -> Self {
        Self {
            meta: u32::from(proto),
            ports: u32::from_ne_bytes(*ports),
            src: [u32::from_ne_bytes(*src), 0, 0, 0],
            dst: [u32::from_ne_bytes(*dst), 0, 0, 0],
        }
    }

    /// The key of an IPv6 packet, likewise.
    pub fn v6(proto: u8, src: &[u8; 16], dst: &[u8; 16], ports: &[u8; 4]) -> Self {
        let words = |a: &[u8; 16]| [word(a, 0), word(a, 4), word(a, 8), word(a, 12)];
        Self {
            meta: u32::from(proto) | KEY_V6,
            ports: u32::from_ne_bytes(*ports),
            src: words(src),
            dst: words(dst),
        }
    }

    /// The protocol.
    pub fn proto(&self) -> u8 {
        self.meta as u8
    }

    /// The source and destination addresses, 16 bytes each, an IPv4 one
    /// mapped (`::ffff:a.b.c.d`), and the ports as the header has them
    /// (big-endian): what the kernel's socket lookups take.
    pub fn lookup_form(&self) -> ([u8; 16], u16, [u8; 16], u16) {
        let bytes = |w: &[u32; 4]| {
            if !self.is_v6() {
                return mapped(Ipv4Addr::from(w[0].to_ne_bytes()));
            }
            let mut a = [0u8; 16];
            for (i, w) in w.iter().enumerate() {
                a[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
            }
            a
        };
        let p = self.ports.to_ne_bytes();
        (
            bytes(&self.src),
            u16::from_ne_bytes([p[0], p[1]]),
            bytes(&self.dst),
            u16::from_ne_bytes([p[2], p[3]]),
        )
    }

    /// Whether it is an IPv6 packet's.
    pub fn is_v6(&self) -> bool {
        self.meta & KEY_V6 != 0
    }

    /// The tuple it is the key of (a mapped address is IPv4 again, as
    /// [`Endpoint::from_v6`] makes it).
    pub fn tuple(&self) -> Tuple {
        let (src, sport, dst, dport) = self.lookup_form();
        Tuple {
            proto: self.proto(),
            src: Endpoint::from_v6(src, u16::from_be(sport)),
            dst: Endpoint::from_v6(dst, u16::from_be(dport)),
        }
    }
}

impl From<&Tuple> for WireKey {
    fn from(t: &Tuple) -> Self {
        let [s0, s1] = t.src.port.to_be_bytes();
        let [d0, d1] = t.dst.port.to_be_bytes();
        let ports = [s0, s1, d0, d1];
        match (t.src.addr, t.dst.addr) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Self::v4(t.proto, &s.octets(), &d.octets(), &ports),
            // Both IPv6, or (in no packet) one of each: as IPv6, an IPv4
            // address mapped.
            _ => Self::v6(t.proto, &t.src.octets16(), &t.dst.octets16(), &ports),
        }
    }
}

/// What rewriting one endpoint of a packet, from a given address and port
/// to others, does to its checksums: the one's complement sums of the
/// words' changes (RFC 1624 eqn. 3: ~m + m' each), folded. A rule's old
/// and new endpoints are fixed, so these are computed once, when it is put
/// in the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointChange {
    /// The address changes (else only the port may).
    pub moved: bool,
    /// The address words' change: of the IPv4 header checksum, and of the
    /// transport checksum through the pseudo header. Zero unless `moved`.
    pub addr: u16,
    /// The port's change, of the transport checksum.
    pub port: u16,
}

impl EndpointChange {
    /// The change from `from` to `to`, endpoints of one family.
    pub fn new(from: &Endpoint, to: &Endpoint) -> Self {
        let moved = from.addr != to.addr;
        let mut addr = 0;
        if moved {
            let (old, new) = (from.octets16(), to.octets16());
            let first = if from.is_v6() { 0 } else { 12 };
            for i in (first..16).step_by(2) {
                addr = add(addr, !u16::from_be_bytes([old[i], old[i + 1]]));
                addr = add(addr, u16::from_be_bytes([new[i], new[i + 1]]));
            }
        }
        Self {
            moved,
            addr: fold(addr),
            // As `checksum::replace16`, which changes the port's word and a
            // zero one (~0 + 0): the same sum, zero or not.
            port: fold(add(add(add(0, !from.port), 0xffff), to.port)),
        }
    }
}

/// What a rule's rewrite changes in the packets it matches
/// (`packet::Packet::apply`): the change of each endpoint that changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edit {
    /// The source endpoint's change, if it changes.
    pub src: Option<EndpointChange>,
    /// The destination endpoint's.
    pub dst: Option<EndpointChange>,
    /// A rewrite into another family (never made, never done).
    pub cross_family: bool,
}

impl Edit {
    /// What rewriting packet `from` to `to` changes.
    pub fn new(from: &Tuple, to: &Tuple) -> Self {
        let change = |a: &Endpoint, b: &Endpoint| (a != b).then(|| EndpointChange::new(a, b));
        Self {
            src: change(&from.src, &to.src),
            dst: change(&from.dst, &to.dst),
            cross_family: !from.src.same_family(&to.src) || !from.dst.same_family(&to.dst),
        }
    }

    /// Whether it changes nothing (the arrival rule of a peer back at its
    /// virtual endpoint).
    pub fn is_noop(&self) -> bool {
        self.src.is_none() && self.dst.is_none()
    }

    /// Whether it changes the destination address: the packet is routed
    /// again.
    pub fn moves_dst(&self) -> bool {
        self.dst.is_some_and(|d| d.moved)
    }
}

/// A slot of the open-addressing table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// Whether the slot holds a rule.
    pub used: bool,
    /// The rule's hook, as a number.
    pub hook: u8,
    /// The rule's [`Rule::action`].
    pub action: Action,
    /// What the rule matches, as packets carry it.
    pub key: WireKey,
    /// What the packet becomes.
    pub rewrite: Tuple,
    /// What that changes in the packet.
    pub edit: Edit,
}

impl Slot {
    fn new(hook: u8, rule: &Rule) -> Self {
        Self {
            used: true,
            hook,
            action: rule.action,
            key: WireKey::from(&rule.matches),
            rewrite: rule.rewrite,
            edit: Edit::new(&rule.matches, &rule.rewrite),
        }
    }

    /// The tuple the rule matches.
    pub fn matches(&self) -> Tuple {
        self.key.tuple()
    }

    /// Whether it holds a rule (it is neither free nor removed).
    pub fn is_rule(&self) -> bool {
        self.used && self.hook != REMOVED
    }

    /// What the rule rewrites a packet to, `arrived` telling whether a
    /// packet matched its connection's arrival rule: `rewrite`, but the new
    /// destination for an [`Action::UntilArrival`] rule once one did.
    pub fn resolved(&self, arrived: bool) -> Tuple {
        match self.action {
            Action::UntilArrival(then) if arrived => Tuple {
                dst: then,
                ..self.rewrite
            },
            _ => self.rewrite,
        }
    }
}

/// Why a rule could not go into a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// Another rule matches the same packets at the same hook: a virtual
    /// address conflict (paper section 3.4.3).
    Conflict,
    /// No free slot.
    Full,
}

/// Slots needed for `rules` rules: a power of two at most half full.
pub const fn capacity_for(rules: usize) -> usize {
    let mut c = 8;
    while c < 2 * rules {
        c *= 2;
    }
    c
}

fn mix(mut h: u32, v: u32) -> u32 {
    h ^= v
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

fn hash(seed: u32, hook: u8, k: &WireKey) -> u32 {
    let mut h = seed;
    h = mix(h, u32::from(hook) << 16 | k.meta);
    h = mix(h, k.ports);
    h = mix(h, k.src[0]);
    h = mix(h, k.dst[0]);
    if k.is_v6() {
        for w in k.src[1..].iter().chain(&k.dst[1..]) {
            h = mix(h, *w);
        }
    }
    // fmix32 of MurmurHash3.
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The slots to try, in order, for a tuple at `hook` in a table of `len`
/// slots (a power of two): linear probing from its hash, each slot once.
fn probe(len: usize, seed: u32, hook: u8, k: &WireKey) -> impl Iterator<Item = usize> {
    let mask = len.wrapping_sub(1);
    let start = hash(seed, hook, k) as usize;
    (0..len).map(move |k| start.wrapping_add(k) & mask)
}

/// Puts `rule` into `slots`, whose length must be a power of two; returns
/// the slot it went to.
pub fn insert(slots: &mut [Slot], seed: u32, rule: &Rule) -> Result<usize, InsertError> {
    insert_slot(slots, seed, &Slot::new(rule.hook as u8, rule))
}

/// The hook number of a slot whose rule was removed: no packet's, so that
/// lookups pass over it and go on probing.
const REMOVED: u8 = u8::MAX;

/// Removes the rule in slot `i` of `slots` (filled by [`insert`]): the slot
/// stays taken, so that the rules after it on their probe are still found,
/// but it matches nothing; [`insert_reusing`] may take it again.
pub fn remove(slots: &mut [Slot], i: usize) {
    slots[i] = Slot {
        used: true,
        hook: REMOVED,
        ..Slot::default()
    };
}

/// As [`insert`], but into the first slot on the rule's probe whose rule
/// was removed ([`remove`]), if there is one: the probe is still followed
/// to a free slot, for a conflict. Returns the slot and whether it was a
/// removed rule's.
pub fn insert_reusing(
    slots: &mut [Slot],
    seed: u32,
    rule: &Rule,
) -> Result<(usize, bool), InsertError> {
    let hook = rule.hook as u8;
    let mut removed = None;
    let mut free = None;
    let key = WireKey::from(&rule.matches);
    for i in probe(slots.len(), seed, hook, &key) {
        let s = &slots[i];
        if !s.used {
            free = Some(i);
            break;
        }
        if s.hook == REMOVED {
            removed.get_or_insert(i);
        } else if s.hook == hook && s.key == key {
            return Err(InsertError::Conflict);
        }
    }
    let (at, reused) = match (removed, free) {
        (Some(r), _) => (r, true),
        (None, Some(f)) => (f, false),
        (None, None) => return Err(InsertError::Full),
    };
    slots[at] = Slot::new(hook, rule);
    Ok((at, reused))
}

/// Puts `slot`, a rule of another table, into `slots` (whose length must be
/// a power of two), in the first free slot on its probe; returns where.
pub fn insert_slot(slots: &mut [Slot], seed: u32, slot: &Slot) -> Result<usize, InsertError> {
    for i in probe(slots.len(), seed, slot.hook, &slot.key) {
        let s = &mut slots[i];
        if !s.used {
            *s = *slot;
            return Ok(i);
        }
        if s.hook == slot.hook && s.key == slot.key {
            return Err(InsertError::Conflict);
        }
    }
    Err(InsertError::Full)
}

/// Finds the rule for a packet at `hook`, in `slots` filled by [`insert`].
pub fn lookup<'a>(slots: &'a [Slot], seed: u32, hook: Hook, packet: &Tuple) -> Option<&'a Slot> {
    lookup_index(slots, seed, hook, packet).map(|i| &slots[i])
}

/// As [`lookup`], the index of the slot.
pub fn lookup_index(slots: &[Slot], seed: u32, hook: Hook, packet: &Tuple) -> Option<usize> {
    lookup_key(slots, seed, hook, &WireKey::from(packet))
}

/// As [`lookup_index`], by the packet's key: what a hook does.
pub fn lookup_key(slots: &[Slot], seed: u32, hook: Hook, key: &WireKey) -> Option<usize> {
    let hook = hook as u8;
    probe(slots.len(), seed, hook, key)
        .take_while(|&i| slots[i].used)
        .find(|&i| slots[i].hook == hook && slots[i].key == *key)
}
