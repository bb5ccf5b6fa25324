// SPDX-License-Identifier: GPL-2.0

//! Connection translation (paper sections 3.2 and 4.2).
//!
//! VNAT translates migrated connections with four netfilter hooks per
//! family (IPv4 and IPv6), registered per namespace by the shim at the
//! points the paper gives (`NF_IP6_PRI_*` alike for IPv6):
//!
//! | hook        | priority             | translation (once migrated)          |
//! |-------------|----------------------|--------------------------------------|
//! | LOCAL_OUT   | `NF_IP_PRI_NAT_DST`  | DNAT: remote virtual -> physical     |
//! | POSTROUTING | `NF_IP_PRI_NAT_SRC`  | SNAT: local virtual -> physical      |
//! | PREROUTING  | `NF_IP_PRI_NAT_DST`  | DNAT: local physical -> virtual      |
//! | LOCAL_IN    | `NF_IP_PRI_NAT_SRC`  | SNAT: remote physical -> virtual     |
//!
//! The rules of all migrated connections of a namespace are one table,
//! published with RCU (`rules.rs`): hooks read it without a lock, in O(1).
//! A namespace without migrated connections has no table, and its hooks
//! return after one load; one without translated connections has no hooks
//! at all (vnatd registers them on demand). The bytes are rewritten by
//! `packet.rs`; this file finds the packet's rule and does the routing.
//!
//! A packet that no rule matches may still get other addresses from
//! location hiding (`location_hiding.rs`), when its knob is on.
//!
//! Two routing details make translation work once the old address is gone:
//! - PREROUTING gives an incoming TCP segment its socket, found by the
//!   endpoints it will have after the rewrites, and the input route that
//!   socket keeps, as the stack's early demux does for an untranslated
//!   one; failing that, it routes the packet by its physical (local)
//!   destination before rewriting it to the virtual one, so it is
//!   delivered locally although the virtual address is no longer the
//!   host's;
//! - LOCAL_OUT routes the packet again after rewriting its destination, and
//!   the sockets of connections whose local address moved are marked
//!   `IP_TRANSPARENT`, so that their route lookups accept a source address
//!   the host no longer has (POSTROUTING then puts the physical one on the
//!   wire). The old address is configured nowhere.

use crate::{
    checksum,
    counters::Counter,
    ffi::{Read, Skb, TcpFound, Unreadable},
    knobs::{LOCATION_HIDING, VCMP_PORT},
    mapping::{Action, Edit, Hook, Tuple, WireKey, PROTO_TCP},
    netns::NetState,
    packet::{self, IcmpError, Packet},
    rules::hook_bit,
};
use kernel::{bindings, prelude::*};

const fn hook_counter(h: Hook) -> Counter {
    match h {
        Hook::PreRouting => Counter::HookPreroutingPackets,
        Hook::LocalIn => Counter::HookLocalInPackets,
        Hook::LocalOut => Counter::HookLocalOutPackets,
        Hook::PostRouting => Counter::HookPostroutingPackets,
    }
}

const fn translated_counter(h: Hook) -> Counter {
    match h {
        Hook::PreRouting => Counter::TranslatedPreroutingPackets,
        Hook::LocalIn => Counter::TranslatedLocalInPackets,
        Hook::LocalOut => Counter::TranslatedLocalOutPackets,
        Hook::PostRouting => Counter::TranslatedPostroutingPackets,
    }
}

/// Called by the shim's hook function for every IPv4 and IPv6 packet at
/// each hook.
#[no_mangle]
extern "C" fn vnat_rs_hook(
    state: *const c_void,
    hook: c_uint,
    skb: *mut bindings::sk_buff,
) -> c_uint {
    // SAFETY: The shim passes the state of the packet's namespace; the
    // hooks are unregistered (waiting for running ones) before it is freed.
    let state = unsafe { NetState::borrow(state) };
    let Ok(hook) = Hook::try_from(hook) else {
        return bindings::NF_ACCEPT;
    };
    state.count(hook_counter(hook), 1);
    // Without location hiding, only the rules of this hook can change the
    // packet (at PREROUTING, LOCAL_IN's as well: those of the packet an
    // ICMP error quotes); with it, any table's addresses.
    let idle = if LOCATION_HIDING.get_bool() {
        state.rules.is_empty()
    } else {
        let wanted = match hook {
            Hook::PreRouting => hook_bit(Hook::PreRouting) | hook_bit(Hook::LocalIn),
            h => hook_bit(h),
        };
        // SAFETY: A netfilter hook runs in an RCU read section.
        !unsafe { state.rules.any_at(wanted) }
    };
    if idle {
        return bindings::NF_ACCEPT;
    }
    // SAFETY: The hook's packet, which the hook owns until its verdict.
    let skb = unsafe { Skb::from_raw(skb) };
    match translate(state, hook, skb) {
        Ok(Outcome::Rewritten) => {
            state.count(translated_counter(hook), 1);
            bindings::NF_ACCEPT
        }
        Ok(Outcome::Untouched) => bindings::NF_ACCEPT,
        Ok(Outcome::Untranslated) => {
            state.count(Counter::UntranslatedPackets, 1);
            bindings::NF_ACCEPT
        }
        Ok(Outcome::Held) => {
            state.count(Counter::ResumingDroppedPackets, 1);
            NF_DROP_NOBUFS
        }
        Err(_) => {
            state.count(Counter::TranslationDroppedPackets, 1);
            bindings::NF_DROP
        }
    }
}

/// The verdict for a held packet: dropped, and its sender told `ENOBUFS`,
/// the error of a full queue, which a UDP socket does not pass on to its
/// application (unless it asked, with `IP_RECVERR`); a plain `NF_DROP`
/// would fail a UDP `send()` with `EPERM`. TCP takes both alike: the data
/// stays queued for its timers, and the move's kick sends it at once.
const NF_DROP_NOBUFS: c_uint = (bindings::ENOBUFS << 16) | bindings::NF_DROP;

/// What became of a packet.
enum Outcome {
    /// No rule changed it.
    Untouched,
    /// A TCP or UDP packet that translation cannot read: it passes as it
    /// is, counted.
    Untranslated,
    /// Its rule rewrote it.
    Rewritten,
    /// Its rule holds it back: it is dropped.
    Held,
}

/// Location hiding (`location_hiding.rs`): what packet `key`, which no
/// rule matched, becomes, and what that changes, if the knob is on and the
/// hosts' connections moved. `opens`: it is a SYN without ACK.
fn hide(
    state: &NetState,
    hook: Hook,
    skb: &mut Skb,
    key: &WireKey,
    opens: bool,
) -> Option<(Tuple, Edit)> {
    if !LOCATION_HIDING.get_bool() {
        return None;
    }
    let vcmp_port = VCMP_PORT.get() as u16;
    let t = key.tuple();
    // SAFETY: `skb` is borrowed from a running netfilter hook (the contract
    // of `Skb::from_raw`), so this runs in the hook's RCU read section.
    let out = unsafe {
        state.rules.hidden(hook, &t, vcmp_port, |t, listener| {
            skb.tcp_lookup(t.src, t.dst, listener && opens) != TcpFound::Nothing
        })
    }?;
    state.count(Counter::HiddenPackets, 1);
    Some((out, Edit::new(&t, &out)))
}

/// PREROUTING: an ICMP or ICMPv6 error about a packet of a moved
/// connection quotes it as it left, with its physical endpoints; the
/// socket it is about (TCP's path MTU, a UDP socket's error queue) is found
/// by its virtual ones. The quote is the connection's outgoing packet: its
/// endpoints, swapped, are what an incoming packet of the connection
/// carries, and the incoming rules (PREROUTING's, then LOCAL_IN's) give
/// their virtual ones. `bytes`: all of the error; the caller tells the
/// packet when they changed ([`Outcome::Rewritten`]).
fn icmp_error(state: &NetState, bytes: &mut [u8], len: u32) -> Result<Outcome> {
    let Some(mut err) = IcmpError::new(bytes) else {
        return Ok(Outcome::Untouched);
    };
    let q = err.quoted();
    let incoming = Tuple {
        proto: q.proto,
        src: q.dst,
        dst: q.src,
    };
    let mut t = incoming;
    for hook in [Hook::PreRouting, Hook::LocalIn] {
        // SAFETY: Called from a running netfilter hook (`translate`), so
        // this runs in the hook's RCU read section.
        if let Some(rule) = unsafe { state.rules.lookup(hook, &WireKey::from(&t), len) } {
            t = rule.rewrite;
        }
    }
    if t == incoming {
        return Ok(Outcome::Untouched);
    }
    err.rewrite_quoted(Tuple {
        proto: q.proto,
        src: t.dst,
        dst: t.src,
    })
    .map_err(|_| EINVAL)?;
    state.count(Counter::IcmpErrorsTranslated, 1);
    Ok(Outcome::Rewritten)
}

/// PREROUTING, for an incoming TCP segment that will have endpoints `key`
/// after PREROUTING (`rewritten`: it rewrote them to these), and after
/// LOCAL_IN's rule if one matches: gives it its socket and the socket's
/// input route now, as the stack's early demux would after the rewrites
/// ([`Skb::demux`]); whether it did. A segment of a translated connection
/// is otherwise routed here by its physical destination, and at a peer of
/// a moved end, whose LOCAL_IN rewrites the source, the stack's early demux
/// looks it up by endpoints that are not its socket's and finds nothing.
/// Not with location hiding, whose rewrites at LOCAL_IN depend on which
/// sockets exist; nor, unless PREROUTING rewrote it, where a local end
/// moved: such a segment may be addressed to a virtual address the host
/// gave up, which the stack's routing does not deliver.
fn demux(state: &NetState, skb: &mut Skb, key: &WireKey, rewritten: bool) -> bool {
    if key.proto() != PROTO_TCP || LOCATION_HIDING.get_bool() {
        return false;
    }
    // SAFETY: `skb` is borrowed from a running netfilter hook (the contract
    // of `Skb::from_raw`), so this runs in the hook's RCU read section.
    if !rewritten && unsafe { state.rules.any_at(hook_bit(Hook::PreRouting)) } {
        return false;
    }
    // SAFETY: As above.
    match unsafe { state.rules.rewrite_at(Hook::LocalIn, key) } {
        Some(end) => skb.demux(&end),
        None if rewritten => skb.demux(key),
        None => false,
    }
}

/// Translates one packet.
fn translate(state: &NetState, hook: Hook, skb: &mut Skb) -> Result<Outcome> {
    let len = skb.len();
    let read = match skb.read(hook == Hook::PreRouting) {
        Ok(Read::Transport(h)) => match packet::read_key(h) {
            Some(read) => read,
            // TCP or UDP behind a header `packet.rs` does not skip.
            None => return Ok(Outcome::Untranslated),
        },
        Ok(Read::IcmpError(bytes)) => {
            let outcome = icmp_error(state, bytes, len)?;
            if matches!(outcome, Outcome::Rewritten) {
                skb.sum_changed();
            }
            return Ok(outcome);
        }
        Err(Unreadable::TcpOrUdp) => return Ok(Outcome::Untranslated),
        Err(Unreadable::Other) => return Ok(Outcome::Untouched),
    };
    let key = read.key;
    // SAFETY: `skb` is borrowed from a running netfilter hook (the contract
    // of `Skb::from_raw`), so this runs in the hook's RCU read section.
    let (rewrite, edit) = match unsafe { state.rules.lookup(hook, &key, len) } {
        Some(rule) => {
            match rule.action {
                Action::Rewrite | Action::UntilArrival(_) => {}
                Action::Arrival => state.path_arrived(),
                Action::Hold => return Ok(Outcome::Held),
                Action::HoldIfGone if !state.net().is_local(key.tuple().src.addr) => {
                    return Ok(Outcome::Held)
                }
                Action::HoldIfGone => {}
            }
            (rule.rewrite, rule.edit)
        }
        None => match hide(state, hook, skb, &key, read.opens) {
            Some(hidden) => hidden,
            None => {
                if hook == Hook::PreRouting {
                    demux(state, skb, &key, false);
                }
                return Ok(Outcome::Untouched);
            }
        },
    };
    // A rule may change nothing (the arrival rule of a peer back at its
    // virtual endpoint): the packet stays as it is.
    if edit.is_noop() {
        return Ok(Outcome::Untouched);
    }
    if hook == Hook::PreRouting
        && !demux(state, skb, &WireKey::from(&rewrite), true)
        && edit.moves_dst()
    {
        // Route by the physical (local) destination before it becomes the
        // virtual one.
        skb.route_local().map_err(|_| EHOSTUNREACH)?;
    }
    // Making the headers writable may move them: they are found again.
    let h = skb.headers_mut(read.len)?;
    let mut pkt = Packet::new(h.bytes, h.partial).ok_or(EINVAL)?;
    let changes = pkt.apply(&key, &rewrite, &edit).map_err(|_| EINVAL)?;
    if let Some(csum) = h.csum {
        // `skb->csum` sums the words as the CPU loads them: give it the
        // fields in that order.
        for c in changes.iter().flatten() {
            *csum = checksum::complete_adjust(*csum, c.old.to_be(), c.new.to_be());
        }
    }
    if hook == Hook::LocalOut && edit.moves_dst() {
        skb.reroute(state.net())?;
    }
    Ok(Outcome::Rewritten)
}

#[kunit_tests(vnat_translation)]
mod tests {
    use super::*;
    use crate::{mapping::PROTO_TCP, vcmp::Endpoint};

    /// An IPv4 + TCP header with valid checksums over a small payload.
    fn packet(src: Endpoint, dst: Endpoint) -> [u8; 44] {
        let mut b = [0u8; 44];
        b[0] = 0x45;
        b[2..4].copy_from_slice(&44u16.to_be_bytes());
        b[8] = 64;
        b[9] = PROTO_TCP;
        b[12..16].copy_from_slice(&src.octets16()[12..]);
        b[16..20].copy_from_slice(&dst.octets16()[12..]);
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
        let mut pkt = Packet::new(&mut buf[..40], false).unwrap();
        assert!(pkt.rewrite(false, a, c).is_ok());
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

    /// An IPv6 + TCP header with a valid checksum (RFC 8200 8.1 pseudo
    /// header) over a small payload.
    fn packet6(src: Endpoint, dst: Endpoint) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&24u16.to_be_bytes());
        b[6] = PROTO_TCP;
        b[7] = 64;
        b[8..24].copy_from_slice(&src.octets16());
        b[24..40].copy_from_slice(&dst.octets16());
        b[40..42].copy_from_slice(&src.port.to_be_bytes());
        b[42..44].copy_from_slice(&dst.port.to_be_bytes());
        b[52] = 0x50;
        b[60..64].copy_from_slice(b"vnat");
        let mut s = 0;
        for w in b[8..40].chunks(2) {
            s = checksum::add(s, u16::from_be_bytes([w[0], w[1]]));
        }
        s = checksum::add(s, 24);
        s = checksum::add(s, u16::from(PROTO_TCP));
        let c = checksum::checksum(s, &b[40..]);
        b[56..58].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn ipv6_rewrite_keeps_the_checksum_valid() {
        let v6 = |last: u8, port| {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0xfd, 0, 0, 1]);
            a[15] = last;
            Endpoint::from_v6(a, port)
        };
        let (a, b, c) = (v6(2, 40000), v6(9, 5000), v6(0x22, 40001));
        let mut buf = packet6(a, b);
        let mut pkt = Packet::new(&mut buf[..60], false).unwrap();
        assert!(pkt.rewrite(false, a, c).is_ok());
        // An IPv4 endpoint is never written into an IPv6 packet.
        assert!(pkt
            .rewrite(true, b, Endpoint::new(0x0a00_0902, 5000))
            .is_err());
        assert_eq!(
            pkt.tuple(),
            Tuple {
                proto: PROTO_TCP,
                src: c,
                dst: b
            }
        );
        assert_eq!(buf, packet6(c, b));
    }
}
