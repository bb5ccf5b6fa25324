// SPDX-License-Identifier: GPL-2.0

//! Location hiding: a connection opened after a move, between two hosts
//! whose connections moved, reaches the socket at the other end with the
//! endpoints that socket has, while the wire carries only physical
//! addresses; and once it is recorded, its own rules do what the fallback
//! did.

use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use vnat_proto::location_hiding::*;
use vnat_proto::mapping::*;
use vnat_proto::vcmp::Endpoint;

mod common;
use common::mirror;

const VCMP: u16 = 2031;

/// A host: its moves and the sockets it has (each as the tuple of the
/// packets it receives; a listener as its bound address and port).
struct Host {
    moves: Moves,
    sockets: Vec<Tuple>,
    listeners: Vec<Endpoint>,
}

impl Host {
    fn taken(&self, t: &Tuple, opens: bool) -> bool {
        self.sockets.contains(t) || (opens && self.listeners.contains(&t.dst))
    }

    fn pass(&self, hook: Hook, t: Tuple) -> Tuple {
        self.moves
            .rewrite(hook, &t, VCMP, |t, opens| self.taken(t, opens))
            .unwrap_or(t)
    }

    /// A packet this host sends: LOCAL_OUT, then POSTROUTING.
    fn send(&self, t: Tuple) -> Tuple {
        let t = self.pass(Hook::LocalOut, t);
        self.pass(Hook::PostRouting, t)
    }

    /// A packet this host receives: PREROUTING, then LOCAL_IN.
    fn receive(&self, t: Tuple) -> Tuple {
        let t = self.pass(Hook::PreRouting, t);
        self.pass(Hook::LocalIn, t)
    }
}

/// The IPv4 address `a` (host byte order).
fn ip(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn tcp(src: Endpoint, dst: Endpoint) -> Tuple {
    Tuple {
        proto: PROTO_TCP,
        src,
        dst,
    }
}

/// An address of the first host (`0`) or of the second (`1`): the two
/// never share one.
fn addr(host: u32) -> impl Strategy<Value = u32> {
    (1u32..4).prop_map(move |a| 0x0a00_0000 + host * 16 + a)
}

/// A port of an application.
fn app_port() -> impl Strategy<Value = u16> {
    prop_oneof![20u16..25, 40000u16..40003]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(VCMP), app_port()]
}

/// The control connection of two hosts, as the first (the client) has it,
/// after one or both moved.
fn moved() -> impl Strategy<Value = Mapping> {
    (addr(0), addr(0), addr(1), addr(1), 1u16..3, 1u16..3)
        .prop_filter("something moved", |(lv, lp, rv, rp, _, _)| {
            lv != lp || rv != rp
        })
        .prop_map(|(lv, lp, rv, rp, a, b)| Mapping {
            proto: PROTO_TCP,
            local_virtual: Endpoint::new(lv, 50000 + a),
            local_physical: Endpoint::new(lp, 50000 + a),
            remote_virtual: Endpoint::new(rv, 21 + b),
            remote_physical: Endpoint::new(rp, 21 + b),
        })
}

fn hosts(m: &Mapping) -> (Host, Host) {
    let (mut a, mut b) = (Moves::new(), Moves::new());
    assert!(a.add(m));
    assert!(b.add(&mirror(m)));
    let host = |moves| Host {
        moves,
        sockets: Vec::new(),
        listeners: Vec::new(),
    };
    (host(a), host(b))
}

proptest! {
    /// A connection between the two hosts' virtual addresses, opened after
    /// the move by either: every packet, either way, reaches the other
    /// socket as that socket knows its connection, the wire carries the
    /// physical addresses, and the recorded mapping rewrites as the
    /// fallback did.
    #[test]
    fn new_connection_between_virtual_addresses(m in moved(), p in app_port(), q in app_port(), a_opens in any::<bool>()) {
        let (mut a, mut b) = hosts(&m);
        let a_end = m.local_virtual.with_port(p);
        let b_end = m.remote_virtual.with_port(q);
        // The end that listens, at its virtual address.
        if a_opens {
            b.listeners.push(b_end);
        } else {
            a.listeners.push(a_end);
        }
        let wire_a = m.local_physical.with_port(p);
        let wire_b = m.remote_physical.with_port(q);
        // The SYN, then the socket exists at the listening end.
        let (from, to, sender, receiver) = if a_opens {
            (a_end, b_end, &a, &b)
        } else {
            (b_end, a_end, &b, &a)
        };
        let on_wire = sender.send(tcp(from, to));
        let wire = |t: &Tuple| [t.src.addr, t.dst.addr];
        let physical = [wire_a.addr, wire_b.addr];
        prop_assert!(physical.contains(&on_wire.src.addr) && physical.contains(&on_wire.dst.addr), "{:?}", wire(&on_wire));
        prop_assert_eq!(receiver.receive(on_wire), tcp(from, to));
        a.sockets.push(tcp(b_end, a_end));
        b.sockets.push(tcp(a_end, b_end));
        for t in [tcp(a_end, b_end), tcp(b_end, a_end)] {
            let (s, r) = if t.src == a_end { (&a, &b) } else { (&b, &a) };
            let on_wire = s.send(t);
            prop_assert!(physical.contains(&on_wire.src.addr) && physical.contains(&on_wire.dst.addr));
            prop_assert_eq!(r.receive(on_wire), t);
        }
        // Recorded, it is migrated from birth with the same addresses.
        let rec = a.moves.mapping(PROTO_TCP, a_end, b_end).unwrap();
        prop_assert_eq!(rec.local_physical, wire_a);
        prop_assert_eq!(rec.remote_physical, wire_b);
        prop_assert_eq!(b.moves.mapping(PROTO_TCP, b_end, a_end), Some(mirror(&rec)));
    }

    /// A connection that one end opens from its physical address (the
    /// kernel chose it: a moved client's passive FTP data connection)
    /// reaches the other end from the opener's virtual address if the
    /// opener moved, and the opener's socket gets the answers unchanged.
    #[test]
    fn new_connection_from_a_physical_address(m in moved(), p in app_port(), q in app_port()) {
        let m = Mapping { remote_physical: m.remote_virtual, ..m };
        prop_assume!(m.local_physical != m.local_virtual);
        let (mut a, mut b) = hosts(&m);
        let a_end = m.local_physical.with_port(p);
        let b_end = m.remote_virtual.with_port(q);
        b.listeners.push(b_end);
        let seen_by_b = m.local_virtual.with_port(p);
        a.sockets.push(tcp(b_end, a_end));
        let syn = a.send(tcp(a_end, b_end));
        prop_assert_eq!(syn, tcp(a_end, b_end));
        prop_assert_eq!(b.receive(syn), tcp(seen_by_b, b_end));
        b.sockets.push(tcp(seen_by_b, b_end));
        let answer = b.send(tcp(b_end, seen_by_b));
        prop_assert_eq!(answer, tcp(b_end, a_end));
        prop_assert_eq!(a.receive(answer), tcp(b_end, a_end));
    }

    /// Nothing to or from VCMP's port, nothing but TCP, and nothing that a
    /// socket takes as it is, gets other addresses.
    #[test]
    fn leaves_alone(m in moved(), t in (any::<bool>(), port(), port()), hook in 0u32..4) {
        let (a, _) = hosts(&m);
        let hook = Hook::try_from(hook).unwrap();
        let (udp, p, q) = t;
        let mut t = tcp(m.local_virtual.with_port(p), m.remote_virtual.with_port(q));
        if matches!(hook, Hook::PreRouting | Hook::LocalIn) {
            t = tcp(m.remote_physical.with_port(q), m.local_physical.with_port(p));
        }
        if udp {
            t.proto = PROTO_UDP;
        }
        let out = a.moves.rewrite(hook, &t, VCMP, |_, _| true);
        if udp || p == VCMP || q == VCMP {
            prop_assert_eq!(out, None);
        }
        if matches!(hook, Hook::PreRouting | Hook::LocalIn) {
            prop_assert_eq!(out, None);
        }
    }
}

#[test]
fn moves_are_distinct_and_bounded() {
    let mut moves = Moves::new();
    let native = Mapping::native(PROTO_TCP, Endpoint::new(1, 1), Endpoint::new(2, 2));
    assert!(moves.add(&native));
    assert!(moves.is_empty());
    for i in 0..MAX_MOVES as u32 {
        let m = Mapping {
            local_physical: Endpoint::new(100 + i, 1),
            ..native
        };
        assert!(moves.add(&m));
        assert!(moves.add(&m));
    }
    assert_eq!(moves.as_slice().len(), MAX_MOVES);
    let one_more = Mapping {
        local_physical: Endpoint::new(99, 1),
        ..native
    };
    assert!(!moves.add(&one_more));
    assert_eq!(moves.remote_virtual_of(ip(2)), None);
}

#[test]
fn a_move_goes_with_its_last_connection() {
    let native = Mapping::native(PROTO_TCP, Endpoint::new(1, 1), Endpoint::new(2, 2));
    let moved = |i: u32| Mapping {
        local_physical: Endpoint::new(100 + i, 1),
        ..native
    };
    let mut moves = Moves::new();
    // Two connections of the first move, one of each other.
    assert!(moves.add(&moved(0)));
    assert!(moves.add(&moved(0)));
    assert!(moves.add(&moved(1)));
    assert!(moves.add(&moved(2)));
    moves.remove(&native);
    moves.remove(&moved(0));
    assert_eq!(moves.as_slice().len(), 3);
    moves.remove(&moved(0));
    // The others keep their order.
    let left: Vec<_> = moves.as_slice().iter().map(|m| m.local_physical).collect();
    assert_eq!(left, [ip(101), ip(102)]);
    // Room again for one more.
    for i in 3..=MAX_MOVES as u32 {
        assert!(moves.add(&moved(i)));
    }
    assert!(!moves.add(&moved(99)));
    moves.remove(&moved(99));
    assert_eq!(moves.as_slice().len(), MAX_MOVES);
}

#[test]
fn ftp_after_a_client_move() {
    // The client was at 10.0.1.2 and is at 10.0.2.2; the server at 10.0.9.2.
    let (old, new, server) = (0x0a00_0102, 0x0a00_0202, 0x0a00_0902);
    let control = Mapping {
        proto: PROTO_TCP,
        local_virtual: Endpoint::new(old, 40000),
        local_physical: Endpoint::new(new, 40000),
        remote_virtual: Endpoint::new(server, 21),
        remote_physical: Endpoint::new(server, 21),
    };
    let (client, server_host) = hosts(&control);
    assert_eq!(server_host.moves.remote_virtual_of(ip(new)), Some(ip(old)));
    // curl may bind its old address, and only that one.
    assert!(client.moves.is_local_virtual(ip(old)));
    assert!(!client.moves.is_local_virtual(ip(new)));
    assert!(!server_host.moves.is_local_virtual(ip(server)));
    // Passive: the client connects from its new address; vsftpd sees the
    // control connection's peer.
    let data = tcp(Endpoint::new(new, 40001), Endpoint::new(server, 30000));
    assert_eq!(client.send(data), data);
    assert_eq!(
        server_host.receive(data),
        tcp(Endpoint::new(old, 40001), Endpoint::new(server, 30000))
    );
    // Active: vsftpd connects from port 20 to the address of PORT, the
    // client's old one, where curl listens.
    let mut client = client;
    client.listeners.push(Endpoint::new(old, 40002));
    let syn = server_host.send(tcp(Endpoint::new(server, 20), Endpoint::new(old, 40002)));
    assert_eq!(
        syn,
        tcp(Endpoint::new(server, 20), Endpoint::new(new, 40002))
    );
    assert_eq!(
        client.receive(syn),
        tcp(Endpoint::new(server, 20), Endpoint::new(old, 40002))
    );
    let syn_ack = client.send(tcp(Endpoint::new(old, 40002), Endpoint::new(server, 20)));
    assert_eq!(
        syn_ack,
        tcp(Endpoint::new(new, 40002), Endpoint::new(server, 20))
    );
}
