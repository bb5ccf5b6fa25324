// SPDX-License-Identifier: GPL-2.0

//! Mapping rules: a packet translated by one end's rules and then by the
//! other end's arrives with the virtual tuple it left with, and the wire
//! carries only physical endpoints; the open-addressing table finds exactly
//! the rules put in it.

use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use vnat_proto::mapping::*;
use vnat_proto::vcmp::Endpoint;

mod common;
use common::mirror;

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (1u32..5, 1u16..4).prop_map(|(a, p)| Endpoint::new(0x0a00_0000 + a, p))
}

/// Runs a packet through the rules of `hooks`, in order, like the stack.
fn through(m: &Mapping, hooks: &[Hook], mut t: Tuple) -> Tuple {
    for &h in hooks {
        for r in m.rules().into_iter().flatten() {
            if r.hook == h && r.matches == t {
                t = r.rewrite;
            }
        }
    }
    t
}

proptest! {
    #[test]
    fn end_to_end_both_directions(lv in endpoint(), lp in endpoint(), rv in endpoint(), rp in endpoint(), udp in any::<bool>()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let a = Mapping { proto, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let b = mirror(&a);
        let sent = Tuple { proto, src: lv, dst: rv };
        let wire = through(&a, &[Hook::LocalOut, Hook::PostRouting], sent);
        prop_assert_eq!(wire, Tuple { proto, src: lp, dst: rp }, "the wire carries physical endpoints");
        let got = through(&b, &[Hook::PreRouting, Hook::LocalIn], wire);
        prop_assert_eq!(got, sent, "the peer's transport sees the virtual tuple");
        // And back.
        let reply = Tuple { proto, src: rv, dst: lv };
        let wire = through(&b, &[Hook::LocalOut, Hook::PostRouting], reply);
        prop_assert_eq!(wire, Tuple { proto, src: rp, dst: lp });
        prop_assert_eq!(through(&a, &[Hook::PreRouting, Hook::LocalIn], wire), reply);
    }

    /// An unconnected UDP socket (a server on a wildcard address answering
    /// with `sendto()`) sends from its host's physical address once that
    /// moved: the twin of the LOCAL_OUT rule sends such a datagram to the
    /// peer's physical endpoint, POSTROUTING leaves it, and the peer's
    /// rules make it come from this end's virtual endpoint. TCP has none.
    #[test]
    fn unconnected_udp_reply_after_a_move(lv in endpoint(), lp in endpoint(), rv in endpoint(), rp in endpoint()) {
        prop_assume!(lv != lp && rv != rp);
        let a = Mapping { proto: PROTO_UDP, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let out = a.rules()[2].expect("a LOCAL_OUT rule: the peer moved");
        let twin = a.unconnected_twin(&out).expect("a twin: the local end moved");
        let sent = Tuple { proto: PROTO_UDP, src: lp, dst: rv };
        prop_assert_eq!((twin.hook, twin.matches, twin.action), (Hook::LocalOut, sent, Action::Rewrite));
        let wire = through(&a, &[Hook::PostRouting], twin.rewrite);
        prop_assert_eq!(wire, Tuple { proto: PROTO_UDP, src: lp, dst: rp }, "the wire carries physical endpoints");
        prop_assert_eq!(through(&mirror(&a), &[Hook::PreRouting, Hook::LocalIn], wire),
                        Tuple { proto: PROTO_UDP, src: lv, dst: rv }, "the peer sees the virtual endpoints");
        let native = Mapping { local_physical: lv, ..a };
        prop_assert!(native.unconnected_twin(&native.rules()[2].unwrap()).is_none(), "none before the local end moved");
        let tcp = Mapping { proto: PROTO_TCP, ..a };
        prop_assert!(tcp.unconnected_twin(&tcp.rules()[2].unwrap()).is_none(), "none for TCP");
    }

    /// What the peer sent to a local physical endpoint this end moved away
    /// from (and the host still has) reaches the socket as the peer's
    /// packets to the virtual endpoint do; nothing is taken at the
    /// endpoint the connection is at, or at its virtual one.
    #[test]
    fn packets_to_the_endpoint_left_reach_the_socket(lv in endpoint(), lp in endpoint(), left in endpoint(), rv in endpoint(), rp in endpoint()) {
        let m = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        prop_assert!(m.arrival_at(lp).is_none() && m.arrival_at(lv).is_none());
        prop_assume!(left != lp && left != lv);
        let r = m.arrival_at(left).expect("a rule for the endpoint left");
        prop_assert_eq!((r.hook, r.action), (Hook::PreRouting, Action::Rewrite));
        prop_assert_eq!(r.matches, Tuple { proto: PROTO_TCP, src: rp, dst: left });
        let now = through(&m, &[Hook::PreRouting], Tuple { proto: PROTO_TCP, src: rp, dst: lp });
        prop_assert_eq!(r.rewrite, now, "as what comes to where the connection is");
    }

    /// While a move waits for the peer, what the connection sends keeps its
    /// untranslated source and goes to the peer's physical endpoint (which
    /// the peer may have changed meanwhile): held always behind a NAT, else
    /// only if the host lost the source address.
    #[test]
    fn a_resuming_connection_sends_to_where_the_peer_is(lv in endpoint(), lp in endpoint(), rv in endpoint(), rp in endpoint(), nat in any::<bool>()) {
        let m = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let h = m.hold(nat);
        prop_assert_eq!(h.hook, Hook::LocalOut);
        prop_assert_eq!(h.matches, Tuple { proto: PROTO_TCP, src: lv, dst: rv });
        prop_assert_eq!(h.rewrite, Tuple { proto: PROTO_TCP, src: lv, dst: rp });
        prop_assert_eq!(h.action, if nat { Action::Hold } else { Action::HoldIfGone });
    }

    /// What a peer in the middle of its own move sends (its hold rule: its
    /// virtual endpoint as the source, to where this end is) reaches this
    /// end's socket as the peer's translated packets do, once this end
    /// moved away from its virtual endpoint and knows the peer elsewhere;
    /// where this end's own rules take it already, there is no such rule.
    #[test]
    fn a_moving_peers_packets_reach_the_socket(lv in endpoint(), lp in endpoint(), rv in endpoint(), rp in endpoint()) {
        let a = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let hold = mirror(&a).hold(false);
        let wire = hold.rewrite;
        prop_assert_eq!(wire, Tuple { proto: PROTO_TCP, src: rv, dst: lp });
        let sees = Tuple { proto: PROTO_TCP, src: rv, dst: lv };
        match a.from_moving_peer() {
            Some(r) => {
                prop_assert!(lp != lv && rp != rv);
                prop_assert_eq!((r.hook, r.action), (Hook::PreRouting, Action::Rewrite));
                prop_assert_eq!((r.matches, r.rewrite), (wire, sees));
                prop_assert!(a.rules().iter().flatten().all(|o| (o.hook, o.matches) != (r.hook, r.matches)),
                             "it collides with none of the connection's own rules");
            }
            None => prop_assert_eq!(through(&a, &[Hook::PreRouting, Hook::LocalIn], wire), sees,
                                    "the connection's own rules take it"),
        }
    }

    /// The rule a validating connection waits on sees the peer's packets as
    /// LOCAL_IN gets them from the new physical endpoint (after PREROUTING),
    /// translates them as the mapping's own rule does (or not at all, for a
    /// peer back at its virtual endpoint), and is the one rule that tells.
    #[test]
    fn arrival_sees_the_peer_at_its_physical_endpoint(lv in endpoint(), lp in endpoint(), rv in endpoint(), rp in endpoint()) {
        let m = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let a = m.arrival();
        prop_assert_eq!(a.hook, Hook::LocalIn);
        prop_assert_eq!(a.action, Action::Arrival);
        let wire = Tuple { proto: PROTO_TCP, src: rp, dst: lp };
        prop_assert_eq!(a.matches, through(&m, &[Hook::PreRouting], wire));
        prop_assert_eq!(a.rewrite, through(&m, &[Hook::PreRouting, Hook::LocalIn], wire));
        prop_assert!(m.rules().iter().flatten().all(|r| r.action == Action::Rewrite));
    }

    /// A validating connection's rules, in a table: the peer's packets are
    /// understood from the old and the new physical endpoint; what the
    /// connection sends goes to the old one until the arrival rule matched
    /// a packet, and from then on to the new one, with the same local
    /// endpoint on the wire (`old` may be the new endpoint itself: then
    /// the rules do not collide either).
    #[test]
    fn validating_sends_the_new_way_once_the_new_path_brought_a_packet(
        lv in endpoint(), lp in endpoint(), rv in endpoint(), rp in endpoint(), old in endpoint(), seed in any::<u32>())
    {
        let m = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let mut slots = vec![Slot::default(); capacity_for(7)];
        for r in m.validating(old).into_iter().flatten() {
            prop_assert!(insert(&mut slots, seed, &r).is_ok(), "no rule of one connection conflicts with another: {:?}", r);
        }
        // Whether the arrival rule matched a packet (the flag the hook sets).
        let mut hit = false;
        let run = |hit: &mut bool, hooks: &[Hook], mut t: Tuple| {
            for &h in hooks {
                if let Some(s) = lookup(&slots, seed, h, &t) {
                    *hit |= s.action == Action::Arrival;
                    t = s.resolved(*hit);
                }
            }
            t
        };
        let sent = Tuple { proto: PROTO_TCP, src: lv, dst: rv };
        let (outgoing, incoming) = ([Hook::LocalOut, Hook::PostRouting], [Hook::PreRouting, Hook::LocalIn]);
        prop_assert_eq!(run(&mut hit, &outgoing, sent), Tuple { proto: PROTO_TCP, src: lp, dst: old }, "the old way first");
        let reply = Tuple { proto: PROTO_TCP, src: rv, dst: lv };
        prop_assert_eq!(run(&mut hit, &incoming, Tuple { proto: PROTO_TCP, src: old, dst: lp }), reply, "understood from the old endpoint");
        prop_assert_eq!(run(&mut hit, &outgoing, sent), Tuple { proto: PROTO_TCP, src: lp, dst: old }, "still the old way");
        prop_assert_eq!(run(&mut hit, &incoming, Tuple { proto: PROTO_TCP, src: rp, dst: lp }), reply, "understood from the new one");
        prop_assert_eq!(run(&mut hit, &outgoing, sent), Tuple { proto: PROTO_TCP, src: lp, dst: rp }, "the new way from then on");
    }

    #[test]
    fn native_mappings_have_no_rules(l in endpoint(), r in endpoint()) {
        let m = Mapping::native(PROTO_TCP, l, r);
        prop_assert!(m.is_native());
        prop_assert!(m.rules().iter().all(Option::is_none));
    }

    #[test]
    fn table_finds_exactly_its_rules(conns in proptest::collection::vec((1u32.., 1u16.., 1u32.., 1u16.., 1u32..), 1..300), seed in any::<u32>()) {
        let mut rules = Vec::new();
        for (i, (a, p, b, q, n)) in conns.iter().enumerate() {
            // Distinct local ports make distinct connections.
            let lv = Endpoint::new(*a, 1 + i as u16);
            let m = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: Endpoint::new(n.wrapping_add(1).max(1), *p),
                              remote_virtual: Endpoint::new(*b, *q), remote_physical: Endpoint::new(*b ^ 1, *q) };
            rules.extend(m.rules().into_iter().flatten());
        }
        let mut slots = vec![Slot::default(); capacity_for(rules.len())];
        let mut inserted = Vec::new();
        for r in &rules {
            if insert(&mut slots, seed, r).is_ok() {
                inserted.push(*r);
            }
        }
        for r in &inserted {
            let s = lookup(&slots, seed, r.hook, &r.matches);
            prop_assert_eq!(s.map(|s| s.rewrite), Some(r.rewrite));
        }
        // A tuple with a port no rule uses is not found at any hook.
        let absent = Tuple { proto: PROTO_TCP, src: Endpoint::new(1, 0), dst: Endpoint::new(1, 0) };
        for h in Hook::ALL {
            prop_assert!(lookup(&slots, seed, h, &absent).is_none());
        }
    }
}

/// One rule of `proto` for each port, at the four hooks in turn, each
/// matching its own packets.
fn rules_for(proto: u8, ports: &[(u16, bool)]) -> Vec<Rule> {
    ports
        .iter()
        .enumerate()
        .map(|(i, (p, _))| Rule {
            hook: Hook::ALL[i % 4],
            matches: Tuple {
                proto,
                src: Endpoint::new(1 + i as u32, *p),
                dst: Endpoint::new(2, 2),
            },
            rewrite: Tuple {
                proto,
                src: Endpoint::new(3, *p),
                dst: Endpoint::new(4, i as u16),
            },
            action: Action::Rewrite,
        })
        .collect()
}

proptest! {
    /// Rules removed from a table are no longer found, wherever they were on
    /// the others' probes; the others still are, and the removed ones can
    /// go in again.
    #[test]
    fn removed_rules_are_gone_and_the_others_stay(ports in proptest::collection::vec((1u16.., any::<bool>()), 1..400), seed in any::<u32>()) {
        let rules = rules_for(PROTO_UDP, &ports);
        // Small, so that probes run into each other.
        let mut slots = vec![Slot::default(); capacity_for(rules.len())];
        let at: Vec<usize> = rules.iter().map(|r| insert(&mut slots, seed, r).unwrap()).collect();
        for (i, (_, gone)) in ports.iter().enumerate() {
            if *gone {
                remove(&mut slots, at[i]);
                prop_assert!(!slots[at[i]].is_rule());
            }
        }
        for (r, (_, gone)) in rules.iter().zip(&ports) {
            let found = lookup(&slots, seed, r.hook, &r.matches).map(|s| s.rewrite);
            prop_assert_eq!(found, (!*gone).then_some(r.rewrite));
        }
        // In again, into removed rules' slots: as many slots used as
        // before, and every rule found.
        let used = slots.iter().filter(|s| s.used).count();
        for (r, (_, gone)) in rules.iter().zip(&ports) {
            if *gone {
                let (i, reused) = insert_reusing(&mut slots, seed, r).unwrap();
                prop_assert!(reused);
                prop_assert!(slots[i].is_rule());
            }
            prop_assert_eq!(insert_reusing(&mut slots, seed, r), Err(InsertError::Conflict));
        }
        prop_assert_eq!(slots.iter().filter(|s| s.used).count(), used);
        for r in &rules {
            prop_assert_eq!(lookup(&slots, seed, r.hook, &r.matches).map(|s| s.rewrite), Some(r.rewrite));
        }
    }
}

proptest! {
    /// A table's rules put into a larger (or as large) table of another
    /// seed (`insert_slot`, what a table that grows does): every rule is
    /// found there with what it rewrites to, the removed ones are not, and
    /// the slots of removed rules are left behind.
    #[test]
    fn rules_rehashed_into_another_table_are_all_found(ports in proptest::collection::vec((1u16.., any::<bool>()), 1..400),
                                                      seeds in (any::<u32>(), any::<u32>()), larger in 0u32..3) {
        let rules = rules_for(PROTO_TCP, &ports);
        let mut slots = vec![Slot::default(); capacity_for(rules.len())];
        let at: Vec<usize> = rules.iter().map(|r| insert(&mut slots, seeds.0, r).unwrap()).collect();
        for (i, (_, gone)) in ports.iter().enumerate() {
            if *gone {
                remove(&mut slots, at[i]);
            }
        }
        let mut grown = vec![Slot::default(); slots.len() << larger];
        for s in slots.iter().filter(|s| s.is_rule()) {
            let i = insert_slot(&mut grown, seeds.1, s).unwrap();
            prop_assert!(grown[i].is_rule());
            prop_assert_eq!(insert_slot(&mut grown, seeds.1, s), Err(InsertError::Conflict));
        }
        let kept = ports.iter().filter(|(_, gone)| !gone).count();
        prop_assert_eq!(grown.iter().filter(|s| s.used).count(), kept);
        for (r, (_, gone)) in rules.iter().zip(&ports) {
            let found = lookup(&grown, seeds.1, r.hook, &r.matches).map(|s| s.rewrite);
            prop_assert_eq!(found, (!*gone).then_some(r.rewrite));
        }
    }
}

#[test]
fn duplicate_match_is_a_conflict() {
    let m = Mapping {
        proto: PROTO_TCP,
        local_virtual: Endpoint::new(1, 1),
        local_physical: Endpoint::new(2, 1),
        remote_virtual: Endpoint::new(3, 3),
        remote_physical: Endpoint::new(4, 3),
    };
    let mut slots = vec![Slot::default(); capacity_for(8)];
    for r in m.rules().into_iter().flatten() {
        let i = insert(&mut slots, 7, &r).unwrap();
        assert_eq!(lookup_index(&slots, 7, r.hook, &r.matches), Some(i));
    }
    let r = m.rules()[0].unwrap();
    assert_eq!(insert(&mut slots, 7, &r), Err(InsertError::Conflict));
}

#[test]
fn full_table_is_refused() {
    let mut slots = vec![Slot::default(); 8];
    for i in 0..8u16 {
        let r = Rule {
            hook: Hook::LocalIn,
            matches: Tuple {
                proto: PROTO_UDP,
                src: Endpoint::new(1, i + 1),
                dst: Endpoint::new(2, 2),
            },
            rewrite: Tuple::default(),
            action: Action::Rewrite,
        };
        assert!(insert(&mut slots, 0, &r).is_ok());
    }
    let r = Rule {
        hook: Hook::LocalIn,
        matches: Tuple {
            proto: PROTO_UDP,
            src: Endpoint::new(1, 100),
            dst: Endpoint::new(2, 2),
        },
        rewrite: Tuple::default(),
        action: Action::Rewrite,
    };
    assert_eq!(insert(&mut slots, 0, &r), Err(InsertError::Full));
}

/// An IPv6 endpoint of a few addresses and ports, so that they collide.
fn endpoint6() -> impl Strategy<Value = Endpoint> {
    (1u16..5, 1u16..4).prop_map(|(a, p)| {
        Endpoint::from_ip(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a)),
            p,
        )
    })
}

/// `e`'s IPv4 address as an IPv6 one: IPv4-compatible (`::a.b.c.d`), or
/// IPv4-mapped (`::ffff:a.b.c.d`) set directly, as `Endpoint::from_v6`
/// never makes it.
fn as_v6(e: Endpoint, mapped: bool) -> Endpoint {
    let a = Ipv4Addr::from(e.v4().unwrap());
    let ip = if mapped {
        a.to_ipv6_mapped()
    } else {
        a.to_ipv6_compatible()
    };
    Endpoint {
        addr: IpAddr::V6(ip),
        port: e.port,
    }
}

proptest! {
    /// As `end_to_end_both_directions`, over IPv6.
    #[test]
    fn end_to_end_v6(lv in endpoint6(), lp in endpoint6(), rv in endpoint6(), rp in endpoint6(), udp in any::<bool>()) {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let a = Mapping { proto, local_virtual: lv, local_physical: lp, remote_virtual: rv, remote_physical: rp };
        let b = mirror(&a);
        let sent = Tuple { proto, src: lv, dst: rv };
        let wire = through(&a, &[Hook::LocalOut, Hook::PostRouting], sent);
        prop_assert_eq!(wire, Tuple { proto, src: lp, dst: rp });
        prop_assert_eq!(through(&b, &[Hook::PreRouting, Hook::LocalIn], wire), sent);
        let reply = Tuple { proto, src: rv, dst: lv };
        let wire = through(&b, &[Hook::LocalOut, Hook::PostRouting], reply);
        prop_assert_eq!(wire, Tuple { proto, src: rp, dst: lp });
        prop_assert_eq!(through(&a, &[Hook::PreRouting, Hook::LocalIn], wire), reply);
    }

    /// IPv6 rules in a table are found by lookup, each with its rewrite,
    /// also among IPv4 ones; a tuple of no rule is not found.
    #[test]
    fn table_finds_v6_rules(conns in proptest::collection::vec((any::<u128>(), 1u16.., any::<u128>(), 1u16.., any::<u128>(), any::<u32>()), 1..200),
                            seed in any::<u32>()) {
        let v6 = |a: u128, p: u16| Endpoint::from_ip(IpAddr::V6(Ipv6Addr::from(a | 1 << 120)), p);
        let mut rules = Vec::new();
        for (i, (a, p, b, q, n, four)) in conns.iter().enumerate() {
            let lv = v6(*a, 1 + i as u16);
            let m = Mapping { proto: PROTO_TCP, local_virtual: lv, local_physical: v6(*n, *p),
                              remote_virtual: v6(*b, *q), remote_physical: v6(*b ^ 1, *q) };
            prop_assert!(m.rules().iter().flatten().all(|r| r.matches.src.is_v6() && r.matches.dst.is_v6()));
            rules.extend(m.rules().into_iter().flatten());
            // An IPv4 connection beside it.
            let m4 = Mapping { proto: PROTO_TCP, local_virtual: Endpoint::new(*four, 1 + i as u16),
                               local_physical: Endpoint::new(*four ^ 2, *p),
                               remote_virtual: Endpoint::new(*four ^ 4, *q), remote_physical: Endpoint::new(*four ^ 8, *q) };
            rules.extend(m4.rules().into_iter().flatten());
        }
        let mut slots = vec![Slot::default(); capacity_for(rules.len())];
        let mut inserted = Vec::new();
        for r in &rules {
            if insert(&mut slots, seed, r).is_ok() {
                inserted.push(*r);
            }
        }
        prop_assert!(inserted.iter().any(|r| r.matches.src.is_v6()));
        for r in &inserted {
            let s = lookup(&slots, seed, r.hook, &r.matches);
            prop_assert_eq!(s.map(|s| (s.matches(), s.rewrite)), Some((r.matches, r.rewrite)));
        }
        let absent = Tuple { proto: PROTO_TCP, src: v6(0, 0), dst: v6(0, 0) };
        for h in Hook::ALL {
            prop_assert!(lookup(&slots, seed, h, &absent).is_none());
        }
    }

    /// An IPv4 tuple and an IPv6 one never match each other, not even with
    /// the IPv4 addresses written as IPv6 ones (IPv4-compatible or
    /// IPv4-mapped): their rules share a table without conflict, and each
    /// lookup finds the rule of its family.
    #[test]
    fn v4_and_v6_tuples_never_match(lv in (1u32..5, 1u16..4), lp in (5u32..9, 1u16..4), rv in (9u32..13, 1u16..4), rp in (13u32..17, 1u16..4),
                                    mapped in any::<bool>(), seed in any::<u32>(), udp in any::<bool>()) {
        let e = |(a, p): (u32, u16)| Endpoint::new(0x0a00_0000 + a, p);
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        let m4 = Mapping { proto, local_virtual: e(lv), local_physical: e(lp), remote_virtual: e(rv), remote_physical: e(rp) };
        let six = |x: Endpoint| as_v6(x, mapped);
        let m6 = Mapping { proto, local_virtual: six(m4.local_virtual), local_physical: six(m4.local_physical),
                           remote_virtual: six(m4.remote_virtual), remote_physical: six(m4.remote_physical) };
        let r4: Vec<Rule> = m4.rules().into_iter().flatten().collect();
        let r6: Vec<Rule> = m6.rules().into_iter().flatten().collect();
        prop_assert_eq!(r4.len(), r6.len());
        let mut slots = vec![Slot::default(); capacity_for(r4.len() + r6.len())];
        for r in r4.iter().chain(&r6) {
            prop_assert!(insert(&mut slots, seed, r).is_ok(), "no conflict across families: {:?}", r);
        }
        for (a, b) in r4.iter().zip(&r6) {
            prop_assert_ne!(a.matches, b.matches);
            prop_assert_eq!(lookup(&slots, seed, a.hook, &a.matches).map(|s| s.rewrite), Some(a.rewrite));
            prop_assert_eq!(lookup(&slots, seed, b.hook, &b.matches).map(|s| s.rewrite), Some(b.rewrite));
        }
        // With only one family's rules, the other's tuples find nothing.
        for (mine, other) in [(&r4, &r6), (&r6, &r4)] {
            let mut slots = vec![Slot::default(); capacity_for(mine.len())];
            for r in mine.iter() {
                insert(&mut slots, seed, r).unwrap();
            }
            for r in other.iter() {
                for h in Hook::ALL {
                    prop_assert!(lookup(&slots, seed, h, &r.matches).is_none());
                }
            }
        }
    }
}
