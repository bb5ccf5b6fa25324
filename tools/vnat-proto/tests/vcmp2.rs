// SPDX-License-Identifier: GPL-2.0

//! VCMP version 2: the documented layout, round trips, MACs that catch any
//! change, and a stream of both versions split anywhere.

use proptest::prelude::*;
use std::net::{IpAddr, Ipv6Addr};
use vnat_proto::key::Mac;
use vnat_proto::vcmp::{self, Endpoint, PROTO_TCP, PROTO_UDP};
use vnat_proto::vcmp2::*;
use vnat_proto::HmacSha256;

fn addr() -> impl Strategy<Value = Addr> {
    prop_oneof![
        (1u32.., 1u16..).prop_map(|(a, p)| Addr::from_endpoint(Endpoint::new(a, p))),
        (any::<[u8; 16]>(), 1u16..)
            .prop_filter("specified", |(ip, _)| *ip != [0; 16])
            .prop_map(|(ip, port)| Addr { ip, port }),
    ]
    .prop_filter("specified", |a| a.is_specified())
}

fn proto() -> impl Strategy<Value = u8> {
    prop_oneof![Just(PROTO_TCP), Just(PROTO_UDP)]
}

fn update() -> impl Strategy<Value = Update> {
    (proto(), any::<u32>(), any::<u64>(), addr(), addr(), addr()).prop_map(
        |(proto, key_id, counter, r, l, p)| Update {
            proto,
            key_id,
            counter,
            remote_virtual: r,
            local_virtual: l,
            local_physical: p,
        },
    )
}

fn reply(helpers: u8) -> impl Strategy<Value = Reply> {
    (0u8..=helpers, any::<u32>(), any::<u64>(), addr(), addr()).prop_map(
        |(helper, key_id, counter, p, o)| Reply {
            status: STATUS_OK,
            helper,
            key_id,
            counter,
            local_physical: p,
            observed: o,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    let hello = (2u8.., any::<[u8; 32]>()).prop_map(|(version, public)| Hello { version, public });
    prop_oneof![
        hello.clone().prop_map(Message::Hello),
        hello.prop_map(Message::HelloReply),
        (proto(), addr(), addr(), any::<u32>()).prop_map(|(proto, r, l, isn)| Message::Key(
            KeyRequest {
                proto,
                remote_virtual: r,
                local_virtual: l,
                isn
            }
        )),
        (any::<u32>(), addr()).prop_map(|(key_id, named)| Message::KeyReply(KeyReply {
            status: STATUS_OK,
            key_id,
            named
        })),
        update().prop_map(Message::Update),
        update().prop_map(Message::Suspend),
        reply(0).prop_map(Message::UpdateReply),
        reply(vcmp::HELPER_STOP).prop_map(Message::SuspendReply),
    ]
}

fn encode(m: &Message, key: &[u8; 32]) -> Vec<u8> {
    let mut b = [0u8; MAX_LEN];
    let n = m.encode::<HmacSha256>(Some(key), &mut b);
    b[..n].to_vec()
}

#[test]
fn update_layout_is_as_documented() {
    let u = Update {
        proto: PROTO_TCP,
        key_id: 0x0102_0304,
        counter: 5,
        remote_virtual: Addr::from_endpoint(Endpoint::new(0x1414_1414, 80)),
        local_virtual: Addr::from_endpoint(Endpoint::new(0x0a0a_0a0a, 40000)),
        local_physical: Addr::from_endpoint(Endpoint::new(0x1e1e_1e1e, 40001)),
    };
    let b = encode(&Message::Update(u), &[9; 32]);
    let v4 = |a: [u8; 4], p: u16| {
        let mut v = vec![0u8; 10];
        v.extend([0xff, 0xff]);
        v.extend(a);
        v.extend(p.to_be_bytes());
        v
    };
    let mut want = vec![
        2, CMD_UPD, 0, 90, PROTO_TCP, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5,
    ];
    want.extend(v4([20; 4], 80));
    want.extend(v4([10; 4], 40000));
    want.extend(v4([30; 4], 40001));
    assert_eq!(&b[..74], &want[..]);
    assert_eq!(b.len(), 90);
    assert_eq!(&b[74..], &tag::<HmacSha256>(&[9; 32], &b[..74])[..]);
    assert_eq!((CMD_UPD, vcmp::VERSION, VERSION), (20, 1, 2));
}

#[test]
fn every_length_is_the_documented_one() {
    let lens: Vec<_> = (CMD_HELLO..=CMD_SUS_R)
        .map(|c| length_of(c).unwrap())
        .collect();
    assert_eq!(lens, [40, 40, 64, 46, 90, 72, 90, 72]);
    assert_eq!(lens.iter().max(), Some(&MAX_LEN));
    assert_eq!(length_of(CMD_HELLO - 1), None);
    assert_eq!(length_of(CMD_SUS_R + 1), None);
}

#[test]
fn a_version_1_peer_refuses_version_2() {
    // What the paper's decoder makes of the first 20 bytes of a HELLO.
    let h = Message::Hello(Hello {
        version: 2,
        public: [7; 32],
    });
    let b = encode(&h, &[0; 32]);
    assert_eq!(
        vcmp::Message::decode(&b[..20]),
        Err(vcmp::DecodeError::Version(2))
    );
}

#[test]
fn mapped_addresses() {
    let e = Endpoint::new(0x0a00_0102, 2031);
    let a = Addr::from_endpoint(e);
    assert_eq!(a.ip[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    assert_eq!(a.endpoint(), e);
    assert_eq!(a.endpoint().v4(), Some(0x0a00_0102));
    let v6 = Addr {
        ip: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        port: 1,
    };
    assert!(v6.endpoint().is_v6());
    assert_eq!(v6.endpoint().v4(), None);
    assert_eq!(v6.endpoint().to_string(), "[2001:db8::1]:1");
    assert_eq!(Addr::from_endpoint(v6.endpoint()), v6);
    assert!(v6.is_specified());
    assert!(!Addr::from_endpoint(Endpoint::new(0, 80)).is_specified());
    assert!(!Addr::ZERO.is_specified());
    assert!(!Addr {
        ip: [0; 16],
        port: 80
    }
    .is_specified());
    assert!(!Addr { port: 0, ..v6 }.is_specified());
}

/// An IPv6 endpoint (not IPv4-mapped).
fn v6_endpoint() -> impl Strategy<Value = Endpoint> {
    (any::<[u8; 16]>(), 1u16..)
        .prop_map(|(ip, port)| Endpoint::from_ip(IpAddr::V6(Ipv6Addr::from(ip)), port))
        .prop_filter("IPv6, specified", |e| e.is_v6() && e.is_specified())
}

fn v4_endpoint() -> impl Strategy<Value = Endpoint> {
    (1u32.., 1u16..).prop_map(|(a, p)| Endpoint::new(a, p))
}

fn any_endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![v4_endpoint(), v6_endpoint()]
}

proptest! {
    /// An endpoint of either family goes onto the wire and back unchanged,
    /// and any 16 wire bytes come back as they were.
    #[test]
    fn endpoints_round_trip_through_addr(e in any_endpoint(), ip in any::<[u8; 16]>(), port in any::<u16>()) {
        let a = Addr::from_endpoint(e);
        prop_assert_eq!(a.endpoint(), e);
        prop_assert_eq!(a.endpoint().is_v6(), e.is_v6());
        prop_assert_eq!(a.ip, e.octets16());
        prop_assert_eq!(a.port, e.port);
        let wire = Addr { ip, port };
        prop_assert_eq!(Addr::from_endpoint(wire.endpoint()), wire);
    }

    /// UPD and SUS with IPv6 endpoints: encoded, decoded, verified, and
    /// read back as the paper's fields, with IPv6 endpoints.
    #[test]
    fn v6_update_round_trips(udp in any::<bool>(), sus in any::<bool>(), r in v6_endpoint(), l in v6_endpoint(), p in v6_endpoint(),
                             id in any::<u32>(), counter in any::<u64>(), key in any::<[u8; 32]>()) {
        let u = vcmp::Update { proto: if udp { PROTO_UDP } else { PROTO_TCP }, remote_virtual: r, local_virtual: l, local_physical: p };
        let v2 = Update::from_v1(&u, id, counter);
        let m = if sus { Message::Suspend(v2) } else { Message::Update(v2) };
        let b = encode(&m, &key);
        prop_assert_eq!(b.len(), 90);
        prop_assert_eq!(&b[20..36], &r.octets16()[..]);
        prop_assert_eq!(&b[38..54], &l.octets16()[..]);
        prop_assert_eq!(&b[56..72], &p.octets16()[..]);
        prop_assert_eq!(Message::decode(&b), Ok(m));
        prop_assert!(verify::<HmacSha256>(&b, &key));
        prop_assert_eq!(v2.to_v1(), Some(u));
    }

    /// A connection keeps its family: an update naming endpoints of both
    /// has no paper's form (whatever the family of each of the three).
    #[test]
    fn mixed_families_have_no_v1_form(proto in proto(), r in any_endpoint(), l in any_endpoint(), p in any_endpoint()) {
        let u = vcmp::Update { proto, remote_virtual: r, local_virtual: l, local_physical: p };
        let v2 = Update::from_v1(&u, 1, 1);
        let one_family = r.is_v6() == l.is_v6() && l.is_v6() == p.is_v6();
        prop_assert_eq!(v2.to_v1(), one_family.then_some(u));
        // It still goes onto the wire and back as it is.
        let b = encode(&Message::Update(v2), &[3; 32]);
        prop_assert_eq!(Message::decode(&b), Ok(Message::Update(v2)));
    }
}

#[test]
fn one_v6_endpoint_is_enough_to_refuse_the_v1_form() {
    let v4 = Endpoint::new(0x0a00_0102, 40000);
    let v6 = Endpoint::from_v6(
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        40000,
    );
    let all = vcmp::Update {
        proto: PROTO_TCP,
        remote_virtual: v4,
        local_virtual: v4,
        local_physical: v4,
    };
    assert!(Update::from_v1(&all, 1, 1).to_v1().is_some());
    for i in 0..3 {
        let mut u = all;
        *[
            &mut u.remote_virtual,
            &mut u.local_virtual,
            &mut u.local_physical,
        ][i] = v6;
        assert_eq!(Update::from_v1(&u, 1, 1).to_v1(), None, "IPv6 at {i}");
    }
    // An IPv4-mapped IPv6 address is IPv4.
    let mapped = Endpoint::from_v6(
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 2],
        40000,
    );
    assert_eq!(mapped, v4);
    let u = vcmp::Update {
        local_physical: mapped,
        ..all
    };
    assert_eq!(Update::from_v1(&u, 1, 1).to_v1(), Some(all));
}

#[test]
fn replay_only_accepts_greater_counters() {
    let mut r = Replay::new();
    assert!(!r.fresh(0));
    assert!(r.fresh(1));
    r.commit(5);
    assert!(!r.fresh(5) && !r.fresh(4) && r.fresh(6));
    r.commit(3);
    assert_eq!(r.last(), 5);
}

proptest! {
    #[test]
    fn round_trip_and_mac(m in message(), key in any::<[u8; 32]>(), other in any::<[u8; 32]>()) {
        let b = encode(&m, &key);
        prop_assert_eq!(b.len(), length_of(m.command()).unwrap());
        prop_assert_eq!(Message::decode(&b), Ok(m));
        if m.has_mac() {
            prop_assert!(verify::<HmacSha256>(&b, &key));
            prop_assert_eq!(verify::<HmacSha256>(&b, &other), key == other);
        }
        // Under the key prepared once (the module keeps a connection's so),
        // twice over: the same bytes, the same verdicts.
        let prepared = HmacSha256::new(&key);
        for _ in 0..2 {
            let mut p = [0u8; MAX_LEN];
            let n = m.encode_prepared(Some(&prepared), &mut p);
            prop_assert_eq!(&p[..n], &b[..]);
            if m.has_mac() {
                prop_assert!(verify_prepared(&b, &prepared));
                prop_assert_eq!(verify_prepared(&b, &HmacSha256::new(&other)), key == other);
            }
        }
    }

    /// Any one bit changed: the message no longer decodes, or no longer
    /// verifies (a MAC covers every byte but itself, and itself).
    #[test]
    fn any_bit_flip_is_caught(m in message().prop_filter("MAC", |m| m.has_mac()), key in any::<[u8; 32]>(), bit in any::<prop::sample::Index>()) {
        let mut b = encode(&m, &key);
        let i = bit.index(b.len() * 8);
        b[i / 8] ^= 1 << (i % 8);
        prop_assert!(Message::decode(&b).is_err() || !verify::<HmacSha256>(&b, &key));
    }

    /// Whatever the bytes, decoding does not panic, and what decodes
    /// encodes back to the same bytes (but the MAC, which decode ignores).
    #[test]
    fn decode_is_total_and_canonical(b in proptest::collection::vec(any::<u8>(), 0..100), cmd in CMD_HELLO..=CMD_SUS_R + 2) {
        let mut b = b;
        if b.len() >= 4 {
            b[0] = VERSION;
            b[1] = cmd;
            let l = (b.len() as u16).to_be_bytes();
            b[2..4].copy_from_slice(&l);
        }
        if let Ok(m) = Message::decode(&b) {
            let mut e = [0u8; MAX_LEN];
            let n = m.encode::<HmacSha256>(None, &mut e);
            let t = if m.has_mac() { TAG_LEN } else { 0 };
            prop_assert_eq!(&e[..n - t], &b[..n - t]);
        }
    }

    /// Messages of both versions, split anywhere, come out whole and in order.
    #[test]
    fn stream_of_both_versions(ms in proptest::collection::vec(prop_oneof![
            message().prop_map(|m| encode(&m, &[1; 32])),
            any::<[u8; 19]>().prop_map(|b| { let mut v = vec![vcmp::VERSION]; v.extend(b); v }),
        ], 0..12), cuts in proptest::collection::vec(1usize..50, 0..40)) {
        let all: Vec<u8> = ms.concat();
        let mut r = StreamReader::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut at: usize = 0;
        for c in cuts.into_iter().chain(core::iter::once(usize::MAX)) {
            let end = all.len().min(at.saturating_add(c));
            let n = r.feed(&all[at..end], |f| got.push(match f { Frame::V1(b) | Frame::V2(b) => b.to_vec() }));
            prop_assert!(n.is_ok());
            at = end;
            if at == all.len() { break; }
        }
        prop_assert_eq!(got, ms);
        prop_assert_eq!(r.pending(), 0);
    }

    /// An unknown version, or a length outside 4..=MAX_LEN, stops the reader.
    #[test]
    fn unframed_streams_stop(v in 3u8.., len in prop_oneof![0u16..4, (MAX_LEN as u16 + 1)..]) {
        let mut r = StreamReader::new();
        prop_assert_eq!(r.feed(&[v, 0, 0, 0], |_| ()), Err(Unframed));
        let mut r = StreamReader::new();
        let l = len.to_be_bytes();
        prop_assert_eq!(r.feed(&[VERSION, CMD_UPD, l[0], l[1]], |_| ()), Err(Unframed));
        prop_assert_eq!(r.feed(&[1; 20], |_| ()), Err(Unframed));
    }
}

/// KEY's naming bytes are the message's, between header and MAC: both ends
/// read them off the same wire bytes.
#[test]
fn key_request_names_the_connection_as_on_the_wire() {
    let k = KeyRequest {
        proto: PROTO_TCP,
        remote_virtual: Addr::from_endpoint(Endpoint::new(0x0a00_0902, 5000)),
        local_virtual: Addr::from_endpoint(Endpoint::new(0x0a00_0102, 40000)),
        isn: 0x1234_5678,
    };
    let wire = encode(&Message::Key(k), &[1; 32]);
    assert_eq!(&k.named()[..], &wire[HDR_LEN..wire.len() - TAG_LEN]);
    for other in [
        KeyRequest {
            proto: PROTO_UDP,
            ..k
        },
        KeyRequest { isn: 1, ..k },
    ] {
        assert_ne!(k.named(), other.named());
    }
}

/// A version-2 header with an unknown command, or a length that is not its
/// command's, ends the stream at once: the reader does not wait for bytes
/// that the header promised.
#[test]
fn reader_refuses_a_header_it_cannot_trust() {
    for header in [
        [2u8, 1, 0, 80],
        [2, CMD_UPD, 0, 91],
        [2, CMD_KEY, 0, 40],
        [3, 0, 0, 0],
    ] {
        let mut r = StreamReader::new();
        assert_eq!(
            r.feed(&header, |_| panic!("no message")),
            Err(Unframed),
            "{header:?}"
        );
    }
}

proptest! {
    /// The paper's fields go into version 2 and come back unchanged.
    #[test]
    fn v1_fields_round_trip(proto in proto(), a in any::<(u32, u16, u32, u16, u32, u16)>(),
                            id in any::<u32>(), counter in any::<u64>()) {
        let u = vcmp::Update {
            proto,
            remote_virtual: Endpoint::new(a.0, a.1),
            local_virtual: Endpoint::new(a.2, a.3),
            local_physical: Endpoint::new(a.4, a.5),
        };
        let v2 = Update::from_v1(&u, id, counter);
        prop_assert_eq!((v2.key_id, v2.counter), (id, counter));
        prop_assert_eq!(v2.to_v1(), Some(u));
    }
}

/// A version-2 reply reads as the paper's: accepted with its endpoint (of
/// either family: the caller checks it is the connection's), or refused.
#[test]
fn replies_read_as_the_papers() {
    let e = Endpoint::new(0x0a00_0202, 40000);
    let ok = Reply {
        status: STATUS_OK,
        helper: vcmp::HELPER_STOP,
        key_id: 1,
        counter: 2,
        local_physical: Addr::from_endpoint(e),
        observed: Addr::from_endpoint(e),
    };
    assert_eq!(ok.to_v1_update(), vcmp::UpdateReply { local_physical: e });
    assert_eq!(
        ok.to_v1_suspend(),
        vcmp::SuspendReply {
            local_physical: e,
            helper: vcmp::HELPER_STOP
        }
    );
    let refused = Reply {
        status: STATUS_REFUSED,
        ..ok
    };
    assert_eq!(refused.to_v1_update(), vcmp::UpdateReply::REFUSED);
    assert_eq!(refused.to_v1_suspend(), vcmp::SuspendReply::REFUSED);
    let v6 = Endpoint::from_v6([1; 16], 1);
    assert!(v6.is_v6());
    let ok6 = Reply {
        local_physical: Addr::from_endpoint(v6),
        ..ok
    };
    assert_eq!(ok6.to_v1_update(), vcmp::UpdateReply { local_physical: v6 });
    assert!(!ok6.to_v1_update().is_refused());
    assert_eq!(
        ok6.to_v1_suspend(),
        vcmp::SuspendReply {
            local_physical: v6,
            helper: vcmp::HELPER_STOP
        }
    );
    let refused6 = Reply {
        status: STATUS_REFUSED,
        ..ok6
    };
    assert_eq!(refused6.to_v1_update(), vcmp::UpdateReply::REFUSED);
    assert_eq!(refused6.to_v1_suspend(), vcmp::SuspendReply::REFUSED);
}

/// A refusal without a key (zero key id) of the request with that counter is
/// unkeyed; a keyed refusal, an acceptance or another request's is not.
#[test]
fn unkeyed_refusals() {
    let unkeyed = Reply {
        status: STATUS_REFUSED,
        helper: 0,
        key_id: 0,
        counter: 7,
        local_physical: Addr::ZERO,
        observed: Addr::ZERO,
    };
    assert!(unkeyed.is_unkeyed_refusal(7));
    assert!(!unkeyed.is_unkeyed_refusal(8));
    assert!(!Reply {
        key_id: 3,
        ..unkeyed
    }
    .is_unkeyed_refusal(7));
    assert!(!Reply {
        status: STATUS_OK,
        ..unkeyed
    }
    .is_unkeyed_refusal(7));
}
