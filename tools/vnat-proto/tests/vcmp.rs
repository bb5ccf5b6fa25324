// SPDX-License-Identifier: GPL-2.0

//! VCMP wire-format tests: the paper's layout, round trips, and rejection of
//! every malformed length, version and command.

use proptest::prelude::*;
use vnat_proto::vcmp::*;

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (1u32.., 1u16..).prop_map(|(a, p)| Endpoint::new(a, p))
}

/// The body of a `VNAT_UPD` or `VNAT_SUS`.
fn update() -> impl Strategy<Value = Update> {
    (
        prop_oneof![Just(PROTO_TCP), Just(PROTO_UDP)],
        endpoint(),
        endpoint(),
        endpoint(),
    )
        .prop_map(|(proto, r, l, p)| Update {
            proto,
            remote_virtual: r,
            local_virtual: l,
            local_physical: p,
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        update().prop_map(Message::Update),
        endpoint().prop_map(|p| Message::UpdateReply(UpdateReply { local_physical: p })),
        update().prop_map(Message::Suspend),
        (endpoint(), 0u8..=2).prop_map(|(p, helper)| Message::SuspendReply(SuspendReply {
            local_physical: p,
            helper
        })),
    ]
}

#[test]
fn update_layout_matches_figure_3_4() {
    let m = Message::Update(Update {
        proto: PROTO_TCP,
        remote_virtual: Endpoint::new(0x1414_1414, 80),
        local_virtual: Endpoint::new(0x0a0a_0a0a, 40000),
        local_physical: Endpoint::new(0x1e1e_1e1e, 40001),
    });
    let b = m.encode();
    assert_eq!(
        b,
        [
            1, 1, 0, 80, // Version, VNAT_UPD, R_Vir_Port
            20, 20, 20, 20, // R_Vir_Addr
            10, 10, 10, 10, // L_Vir_Addr
            30, 30, 30, 30, // L_Phy_Addr
            0x9c, 0x40, 0x9c, 0x41, // L_Vir_Port, L_Phy_Port
        ]
    );
}

#[test]
fn udp_update_differs_only_in_its_command_code() {
    let tcp = Update {
        proto: PROTO_TCP,
        remote_virtual: Endpoint::new(0x1414_1414, 53),
        local_virtual: Endpoint::new(0x0a0a_0a0a, 40000),
        local_physical: Endpoint::new(0x1e1e_1e1e, 40000),
    };
    let udp = Update {
        proto: PROTO_UDP,
        ..tcp
    };
    let (bt, bu) = (Message::Update(tcp).encode(), Message::Update(udp).encode());
    assert_eq!((bt[1], bu[1]), (CMD_UPD, CMD_UPD_UDP));
    assert_eq!((bu[1], bt[0]), (3, bu[0]));
    assert_eq!(bt[2..], bu[2..]);
    assert_eq!(Message::decode(&bu), Ok(Message::Update(udp)));
    assert_eq!(Message::decode(&bt), Ok(Message::Update(tcp)));
}

#[test]
fn update_reply_layout_matches_figure_3_5() {
    let m = Message::UpdateReply(UpdateReply {
        local_physical: Endpoint::new(0xc0a8_0102, 2031),
    });
    let b = m.encode();
    assert_eq!(
        b,
        [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 168, 1, 2, 0, 0, 0x07, 0xef]
    );
}

#[test]
fn refusal_is_an_all_zero_reply() {
    let b = Message::UpdateReply(UpdateReply::REFUSED).encode();
    assert_eq!(
        b,
        [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        Message::decode(&b),
        Ok(Message::UpdateReply(UpdateReply::REFUSED))
    );
    // Half a refusal is malformed.
    for (addr, port) in [(0, 5), (5, 0)] {
        let r = UpdateReply {
            local_physical: Endpoint::new(addr, port),
        };
        assert_eq!(
            Message::decode(&Message::UpdateReply(r).encode()),
            Err(DecodeError::Unspecified)
        );
    }
}

#[test]
fn unused_fields_of_reply_are_ignored() {
    let mut b = Message::UpdateReply(UpdateReply {
        local_physical: Endpoint::new(7, 7),
    })
    .encode();
    b[2] = 0xff;
    b[5] = 0xff;
    b[16] = 0xff;
    assert_eq!(
        Message::decode(&b),
        Ok(Message::UpdateReply(UpdateReply {
            local_physical: Endpoint::new(7, 7)
        }))
    );
}

#[test]
fn suspend_uses_figure_3_4_and_its_reply_figure_3_5() {
    let u = Update {
        proto: PROTO_TCP,
        remote_virtual: Endpoint::new(0x1414_1414, 80),
        local_virtual: Endpoint::new(0x0a0a_0a0a, 40000),
        local_physical: Endpoint::new(0x0a0a_0a0a, 40000),
    };
    let (upd, sus) = (Message::Update(u).encode(), Message::Suspend(u).encode());
    assert_eq!((upd[1], sus[1]), (CMD_UPD, 4));
    assert_eq!(upd[2..], sus[2..]);
    let udp = Message::Suspend(Update {
        proto: PROTO_UDP,
        ..u
    });
    assert_eq!(udp.encode()[1], 5);
    assert_eq!(Message::decode(&udp.encode()), Ok(udp));
    let r = Message::SuspendReply(SuspendReply {
        local_physical: Endpoint::new(0xc0a8_0102, 80),
        helper: HELPER_STOP,
    });
    assert_eq!(
        r.encode(),
        [1, 6, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 192, 168, 1, 2, 0, 0, 0, 80]
    );
    let refused = Message::SuspendReply(SuspendReply::REFUSED);
    assert_eq!(refused.encode(), {
        let mut b = [0u8; MSG_LEN];
        b[0] = 1;
        b[1] = 6;
        b
    });
    assert_eq!(Message::decode(&refused.encode()), Ok(refused));
}

#[test]
fn suspend_reply_with_unknown_helper_or_half_endpoint_is_rejected() {
    let mut b = Message::SuspendReply(SuspendReply {
        local_physical: Endpoint::new(7, 7),
        helper: HELPER_KEEPALIVE,
    })
    .encode();
    for h in [3u16, 0x0100, 0xffff] {
        b[2..4].copy_from_slice(&h.to_be_bytes());
        assert_eq!(Message::decode(&b), Err(DecodeError::Helper(h)));
    }
    // A refusal names no helper; an endpoint is all there or all zero.
    let mut r = Message::SuspendReply(SuspendReply::REFUSED).encode();
    r[3] = HELPER_KEEPALIVE;
    assert_eq!(Message::decode(&r), Err(DecodeError::Unspecified));
    let mut half = Message::SuspendReply(SuspendReply::REFUSED).encode();
    half[15] = 1;
    assert_eq!(Message::decode(&half), Err(DecodeError::Unspecified));
}

#[test]
fn zero_endpoints_are_refused() {
    let ok = Update {
        proto: PROTO_TCP,
        remote_virtual: Endpoint::new(1, 1),
        local_virtual: Endpoint::new(2, 2),
        local_physical: Endpoint::new(3, 3),
    };
    for field in 0..6 {
        let mut u = ok;
        match field {
            0 => u.remote_virtual = Endpoint::new(0, u.remote_virtual.port),
            1 => u.remote_virtual.port = 0,
            2 => u.local_virtual = Endpoint::new(0, u.local_virtual.port),
            3 => u.local_virtual.port = 0,
            4 => u.local_physical = Endpoint::new(0, u.local_physical.port),
            _ => u.local_physical.port = 0,
        }
        assert_eq!(
            Message::decode(&Message::Update(u).encode()),
            Err(DecodeError::Unspecified),
            "field {field}"
        );
    }
}

proptest! {
    #[test]
    fn round_trip(m in message()) {
        prop_assert_eq!(Message::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn every_other_length_is_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(bytes.len() != MSG_LEN);
        prop_assert_eq!(Message::decode(&bytes), Err(DecodeError::Length(bytes.len())));
    }

    #[test]
    fn every_other_version_is_rejected(m in message(), v in any::<u8>()) {
        prop_assume!(v != VERSION);
        let mut b = m.encode();
        b[0] = v;
        prop_assert_eq!(Message::decode(&b), Err(DecodeError::Version(v)));
    }

    #[test]
    fn every_other_command_is_rejected(m in message(), c in any::<u8>()) {
        prop_assume!(!(CMD_UPD..=CMD_SUS_R).contains(&c));
        let mut b = m.encode();
        b[1] = c;
        prop_assert_eq!(Message::decode(&b), Err(DecodeError::Command(c)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Message::decode(&bytes);
    }

    /// However a stream of messages is cut into reads, the reader yields the
    /// same messages in the same order and holds back only the incomplete tail.
    #[test]
    fn stream_reader_reassembles(msgs in proptest::collection::vec(message(), 0..20),
                                 cuts in proptest::collection::vec(0usize..64, 0..40),
                                 tail in 0usize..MSG_LEN) {
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend_from_slice(&m.encode());
        }
        wire.extend(core::iter::repeat_n(1u8, tail));
        let mut r = StreamReader::new();
        let mut got = Vec::new();
        let mut rest = &wire[..];
        for c in cuts {
            let c = c.min(rest.len());
            r.feed(&rest[..c], |m| got.push(m));
            rest = &rest[c..];
        }
        r.feed(rest, |m| got.push(m));
        let want: Vec<_> = msgs.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(r.pending(), tail);
    }
}

#[test]
fn martian_addresses_are_those_no_host_has() {
    let a = |s: &str| Endpoint::new(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()), 1);
    for m in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.0.9",
        "224.0.0.1",
        "239.1.1.1",
        "240.0.0.1",
        "255.255.255.255",
    ] {
        assert!(a(m).is_martian(), "{m}");
    }
    for ok in [
        "10.0.1.2",
        "1.0.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "192.168.0.255",
        "223.255.255.254",
        "203.0.113.99",
    ] {
        assert!(!a(ok).is_martian(), "{ok}");
    }
}

proptest! {
    /// The classification is the one of the standard library for what it
    /// knows (unspecified, loopback, multicast, broadcast, reserved 240/4).
    #[test]
    fn martian_agrees_with_std(addr in any::<u32>()) {
        let ip = std::net::Ipv4Addr::from(addr);
        let std_martian = ip.octets()[0] == 0 || ip.is_loopback() || ip.is_multicast()
            || ip.is_broadcast() || ip.octets()[0] >= 240;
        prop_assert_eq!(Endpoint::new(addr, 1).is_martian(), std_martian);
    }
}

proptest! {
    /// An IPv4 address mapped into IPv6 (what the hooks hand the kernel's
    /// socket lookups) has the bytes the library's `to_ipv6_mapped` gives.
    #[test]
    fn mapped_is_the_library_mapping(a in any::<u32>()) {
        let a = core::net::Ipv4Addr::from_bits(a);
        prop_assert_eq!(mapped(a), a.to_ipv6_mapped().octets());
        prop_assert_eq!(Endpoint::new(a.to_bits(), 1).octets16(), a.to_ipv6_mapped().octets());
    }
}
