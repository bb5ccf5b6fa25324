// SPDX-License-Identifier: GPL-2.0

//! Connection translation (paper sections 3.2 and 4.2).
//!
//! VNAT translates migrated connections with four IPv4 netfilter hooks,
//! registered per namespace by the shim at the points the paper gives:
//!
//! | hook        | priority             | translation (once migrated)          |
//! |-------------|----------------------|--------------------------------------|
//! | LOCAL_OUT   | `NF_IP_PRI_NAT_DST`  | DNAT: remote virtual -> physical     |
//! | POSTROUTING | `NF_IP_PRI_NAT_SRC`  | SNAT: local virtual -> physical      |
//! | PREROUTING  | `NF_IP_PRI_NAT_DST`  | DNAT: local physical -> virtual      |
//! | LOCAL_IN    | `NF_IP_PRI_NAT_SRC`  | SNAT: remote physical -> virtual     |
//!
//! The rules of all migrated connections of a namespace live in one
//! open-addressing table (`mapping.rs`), published with RCU: hooks read it
//! without a lock, in O(1); vnatd, the only writer, builds a new table when
//! a mapping changes, publishes it and frees the old one after a grace
//! period. A namespace without migrated connections has no table, and its
//! hooks return after one load.
//!
//! Two routing details make translation work once the old address is gone:
//! - PREROUTING routes the packet by its physical (local) destination before
//!   rewriting it to the virtual one, so it is delivered locally although
//!   the virtual address is no longer the host's;
//! - LOCAL_OUT routes the packet again after rewriting its destination, and
//!   the sockets of connections whose local address moved are marked
//!   `IP_TRANSPARENT`, so that their route lookups accept a source address
//!   the host no longer has (POSTROUTING then puts the physical one on the
//!   wire). The old address is configured nowhere.

use crate::{
    checksum::{self, Summed},
    ffi::{self, RawPkt},
    mapping::{self, Hook, Slot, Tuple, PROTO_UDP},
    netns::{self, Counter, NetState},
    vcmp::Endpoint,
    virtualization::{HookHits, Key, State, VirtualConnection},
};
use core::ptr;
use kernel::{
    bindings,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        rcu,
    },
};

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
    /// Called from vnatd only (one writer); sleeps for a grace period.
    pub(crate) fn rebuild(&self, state: &NetState) -> Result {
        // Allocate outside the lock for the connections that have rules (at
        // most four each), fill under it; retry if more came meanwhile.
        let new = loop {
            let n = 4 * state.connections.translated();
            if n == 0 {
                break None;
            }
            let cap = mapping::capacity_for(n);
            // Large tables (many migrated connections) may need vmalloc.
            let mut slots = KVVec::with_capacity(cap, GFP_KERNEL)?;
            slots.extend_with(cap, Slot::default(), GFP_KERNEL)?;
            let mut owners = KVVec::with_capacity(cap, GFP_KERNEL)?;
            owners.extend_with(cap, Key::from_raw(0, 0, 0), GFP_KERNEL)?;
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
            // SAFETY: `get_random_u32` has no preconditions.
            let seed = unsafe { bindings::get_random_u32() };
            let mut overflow = false;
            let mut conflicts = 0;
            state.connections.for_each(|k, c| {
                let rules = c.mapping.rules();
                let rules = match c.state {
                    State::Native => return,
                    // Incoming only until the peer confirmed.
                    State::Resuming => [rules[0], rules[1], None, None],
                    State::Migrated => rules,
                };
                for r in rules.iter().flatten() {
                    match mapping::insert(&mut slots, seed, r) {
                        Ok(i) => owners[i] = k,
                        Err(mapping::InsertError::Conflict) => conflicts += 1,
                        Err(mapping::InsertError::Full) => overflow = true,
                    }
                }
            });
            if overflow {
                continue;
            }
            if conflicts > 0 {
                state.count(Counter::RuleConflicts, conflicts);
            }
            break Some(KBox::new(
                Rules {
                    seed,
                    slots,
                    owners,
                    hits,
                },
                GFP_KERNEL,
            )?);
        };
        let new = new.map_or(ptr::null_mut(), KBox::into_raw);
        let old = self.table.xchg(new, Release);
        if !old.is_null() {
            rcu::synchronize_rcu();
            // SAFETY: `old` came from `KBox::into_raw` (type invariant) and no
            // reader can hold it after the grace period.
            let old = unsafe { KBox::from_raw(old) };
            // No hook counts into it any more: what it counted goes to the
            // records (one short lock each; idle connections cost nothing).
            for (i, h) in old.hits.iter().enumerate() {
                let packets = h.packets.load(Relaxed);
                if packets == 0 {
                    continue;
                }
                let hook = usize::from(old.slots[i].hook);
                let bytes = h.bytes.load(Relaxed);
                state.connections.with(old.owners[i], |c| {
                    c.hits.packets[hook] += packets;
                    c.hits.bytes[hook] += bytes;
                });
            }
        }
        Ok(())
    }

    /// What the rules of connection `k` matched in the published table,
    /// per hook: (packets, bytes). Takes the RCU read lock itself.
    pub(crate) fn live_hits(&self, k: Key, c: &VirtualConnection) -> HookHits {
        let mut out = HookHits::default();
        let _guard = rcu::read_lock();
        let table = self.table.load(Acquire);
        if table.is_null() {
            return out;
        }
        // SAFETY: Non-null tables are valid until a grace period after they
        // are replaced, and we are in an RCU read section.
        let rules = unsafe { &*table };
        for r in c.mapping.rules().iter().flatten() {
            let Some(i) = mapping::lookup_index(&rules.slots, rules.seed, r.hook, &r.matches)
            else {
                continue;
            };
            if rules.owners[i] == k {
                let hook = r.hook as usize;
                out.packets[hook] += rules.hits[i].packets.load(Relaxed);
                out.bytes[hook] += rules.hits[i].bytes.load(Relaxed);
            }
        }
        out
    }

    /// Looks up the rule for a packet. Hooks run under RCU, which keeps the
    /// table alive while the returned slot is used.
    /// The packet, of `len` bytes, is counted to the rule it matched.
    fn lookup(&self, hook: Hook, t: &Tuple, len: u32) -> Option<Slot> {
        let table = self.table.load(Acquire);
        if table.is_null() {
            return None;
        }
        // SAFETY: Non-null tables are valid until a grace period after they
        // are replaced, and the caller (a hook) is in an RCU read section.
        let rules = unsafe { &*table };
        let i = mapping::lookup_index(&rules.slots, rules.seed, hook, t)?;
        rules.hits[i].packets.add(1u64, Relaxed);
        rules.hits[i].bytes.add(u64::from(len), Relaxed);
        Some(rules.slots[i])
    }

    fn is_empty(&self) -> bool {
        self.table.load(Relaxed).is_null()
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

const fn hook_counter(h: Hook) -> Counter {
    match h {
        Hook::PreRouting => Counter::HookPreRouting,
        Hook::LocalIn => Counter::HookLocalIn,
        Hook::LocalOut => Counter::HookLocalOut,
        Hook::PostRouting => Counter::HookPostRouting,
    }
}

const fn translated_counter(h: Hook) -> Counter {
    match h {
        Hook::PreRouting => Counter::TranslatedPreRouting,
        Hook::LocalIn => Counter::TranslatedLocalIn,
        Hook::LocalOut => Counter::TranslatedLocalOut,
        Hook::PostRouting => Counter::TranslatedPostRouting,
    }
}

/// Called by the shim's hook function for every IPv4 packet at each hook.
#[no_mangle]
extern "C" fn vnat_rs_hook(
    state: *mut c_void,
    hook: c_uint,
    skb: *mut bindings::sk_buff,
) -> c_uint {
    // SAFETY: The shim passes the live state of the packet's namespace; the
    // hooks are unregistered (waiting for running ones) before it is freed.
    let state = unsafe { netns::borrow(state) };
    let Some(hook) = Hook::from_raw(hook) else {
        return bindings::NF_ACCEPT;
    };
    state.count(hook_counter(hook), 1);
    if state.rules.is_empty() {
        return bindings::NF_ACCEPT;
    }
    match translate(state, hook, skb) {
        Ok(true) => {
            state.count(translated_counter(hook), 1);
            bindings::NF_ACCEPT
        }
        Ok(false) => bindings::NF_ACCEPT,
        Err(_) => {
            state.count(Counter::TranslationDropped, 1);
            bindings::NF_DROP
        }
    }
}

/// A writable view of a packet's headers.
struct Packet {
    raw: RawPkt,
}

impl Packet {
    fn read_be16(p: *const u8) -> u16 {
        // SAFETY: Callers pass pointers into headers the shim made available.
        u16::from_be_bytes(unsafe { [*p, *p.add(1)] })
    }

    fn read_be32(p: *const u8) -> u32 {
        // SAFETY: As above.
        u32::from_be_bytes(unsafe { [*p, *p.add(1), *p.add(2), *p.add(3)] })
    }

    fn write(p: *mut u8, bytes: &[u8]) {
        // SAFETY: Callers pass pointers into headers the shim made writable.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }

    fn tuple(&self) -> Tuple {
        let ip = self.raw.iph;
        let l4 = self.raw.l4;
        Tuple {
            proto: self.raw.proto,
            // SAFETY: The shim checked that IP (20+ bytes) and transport
            // headers (8+ bytes) are present.
            src: Endpoint::new(Self::read_be32(unsafe { ip.add(12) }), Self::read_be16(l4)),
            // SAFETY: As above.
            dst: Endpoint::new(
                Self::read_be32(unsafe { ip.add(16) }),
                Self::read_be16(unsafe { l4.add(2) }),
            ),
        }
    }

    /// The transport checksum field.
    fn check_ptr(&self) -> *mut u8 {
        let off = if self.raw.proto == PROTO_UDP { 6 } else { 16 };
        // SAFETY: Within the transport header the shim made writable (TCP:
        // 20 bytes, UDP: 8 bytes).
        unsafe { self.raw.l4.add(off) }
    }

    /// Rewrites one endpoint (`dst` or source) with all checksums.
    fn rewrite(&mut self, skb: *mut bindings::sk_buff, dst: bool, from: Endpoint, to: Endpoint) {
        let ip = self.raw.iph;
        // SAFETY: Address fields of the IP header, ports of the transport
        // header, all within what the shim made writable.
        let (addr_p, port_p) = unsafe {
            if dst {
                (ip.add(16), self.raw.l4.add(2))
            } else {
                (ip.add(12), self.raw.l4)
            }
        };
        let summed = if self.raw.partial {
            Summed::Partial
        } else {
            Summed::Full
        };
        if from.addr != to.addr {
            // SAFETY: Bytes 10-11 of the IP header.
            let ipc = unsafe { ip.add(10) };
            let c = checksum::replace32(
                Self::read_be16(ipc),
                from.addr,
                to.addr,
                Summed::Full,
                false,
            );
            Self::write(ipc, &c.to_be_bytes());
            Self::write(addr_p, &to.addr.to_be_bytes());
        }
        let cp = self.check_ptr();
        let old = Self::read_be16(cp);
        // A UDP checksum of zero means "none": leave it so.
        if self.raw.proto == PROTO_UDP && old == 0 && !self.raw.partial {
            Self::write(port_p, &to.port.to_be_bytes());
            return;
        }
        let mut c = checksum::replace32(old, from.addr, to.addr, summed, true);
        c = checksum::replace16(c, from.port, to.port, summed);
        if self.raw.proto == PROTO_UDP && c == 0 && !self.raw.partial {
            c = 0xffff;
        }
        Self::write(port_p, &to.port.to_be_bytes());
        Self::write(cp, &c.to_be_bytes());
        if self.raw.complete && from.addr != to.addr {
            // SAFETY: `skb` is the packet being translated.
            unsafe { ffi::vnat_shim_pkt_csum_field_changed(skb, old.to_be(), c.to_be()) };
        }
    }
}

/// Translates one packet; `Ok(true)` if it was rewritten.
fn translate(state: &NetState, hook: Hook, skb: *mut bindings::sk_buff) -> Result<bool> {
    let mut raw = RawPkt {
        iph: ptr::null_mut(),
        l4: ptr::null_mut(),
        proto: 0,
        partial: false,
        complete: false,
    };
    // SAFETY: `skb` is the hook's packet; the shim only reads it.
    if unsafe { ffi::vnat_shim_pkt_parse(skb, &mut raw, false) } != 0 {
        return Ok(false);
    }
    let pkt = Packet { raw };
    let t = pkt.tuple();
    // SAFETY: `skb` is the hook's packet, valid during the hook.
    let len = unsafe { (*skb).len };
    let Some(rule) = state.rules.lookup(hook, &t, len) else {
        return Ok(false);
    };
    // SAFETY: As above; now the headers are made writable, which may move
    // them, so they are found again.
    if unsafe { ffi::vnat_shim_pkt_parse(skb, &mut raw, true) } != 0 {
        return Err(ENOMEM);
    }
    let mut pkt = Packet { raw };
    if hook == Hook::PreRouting && t.dst.addr != rule.rewrite.dst.addr {
        // Route by the physical (local) destination before it becomes the
        // virtual one.
        // SAFETY: Hooks run under RCU, as routing needs.
        if unsafe { ffi::vnat_shim_route_local(skb, t.dst.addr.to_be()) } != 0 {
            return Err(EHOSTUNREACH);
        }
    }
    if t.src != rule.rewrite.src {
        pkt.rewrite(skb, false, t.src, rule.rewrite.src);
    }
    if t.dst != rule.rewrite.dst {
        pkt.rewrite(skb, true, t.dst, rule.rewrite.dst);
    }
    if hook == Hook::LocalOut && t.dst.addr != rule.rewrite.dst.addr {
        // SAFETY: The namespace is alive; `skb` is the hook's packet.
        if unsafe { ffi::vnat_shim_reroute(state.net().as_ptr(), skb) } != 0 {
            return Err(EHOSTUNREACH);
        }
    }
    Ok(true)
}

#[kunit_tests(vnat_translation)]
mod tests {
    use super::*;
    use crate::mapping::PROTO_TCP;

    /// An IPv4 + TCP header with valid checksums over a small payload.
    fn packet(src: Endpoint, dst: Endpoint) -> [u8; 44] {
        let mut b = [0u8; 44];
        b[0] = 0x45;
        b[2..4].copy_from_slice(&44u16.to_be_bytes());
        b[8] = 64;
        b[9] = PROTO_TCP;
        b[12..16].copy_from_slice(&src.addr.to_be_bytes());
        b[16..20].copy_from_slice(&dst.addr.to_be_bytes());
        b[20..22].copy_from_slice(&src.port.to_be_bytes());
        b[22..24].copy_from_slice(&dst.port.to_be_bytes());
        b[32] = 0x50;
        b[40..44].copy_from_slice(b"vnat");
        let c = checksum::checksum(0, &b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let c = tcp_checksum(&b);
        b[36..38].copy_from_slice(&c.to_be_bytes());
        b
    }

    fn tcp_checksum(b: &[u8; 44]) -> u16 {
        let mut seg = [0u8; 24];
        seg.copy_from_slice(&b[20..]);
        seg[16] = 0;
        seg[17] = 0;
        let mut s = 0;
        for w in [
            u16::from_be_bytes([b[12], b[13]]),
            u16::from_be_bytes([b[14], b[15]]),
            u16::from_be_bytes([b[16], b[17]]),
            u16::from_be_bytes([b[18], b[19]]),
            u16::from(PROTO_TCP),
            24,
        ] {
            s = checksum::add(s, w);
        }
        checksum::checksum(s, &seg)
    }

    #[test]
    fn rewrite_keeps_checksums_valid() {
        let (a, b, c) = (
            Endpoint::new(0x0a00_0102, 40000),
            Endpoint::new(0x0a00_0902, 5000),
            Endpoint::new(0x0a00_0202, 40001),
        );
        let mut buf = packet(a, b);
        let mut pkt = Packet {
            raw: RawPkt {
                iph: buf.as_mut_ptr(),
                // SAFETY: The TCP header starts at byte 20 of the buffer.
                l4: unsafe { buf.as_mut_ptr().add(20) },
                proto: PROTO_TCP,
                partial: false,
                complete: false,
            },
        };
        pkt.rewrite(ptr::null_mut(), false, a, c);
        assert_eq!(
            pkt.tuple(),
            Tuple {
                proto: PROTO_TCP,
                src: c,
                dst: b
            }
        );
        let want = packet(c, b);
        assert_eq!(buf, want);
    }
}
