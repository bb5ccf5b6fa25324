// SPDX-License-Identifier: GPL-2.0

//! A connection's saved state (export.rs): the documented layout, round
//! trips, and a reader that refuses every malformed record with its reason,
//! never panics, and leaves what follows a record alone.

use proptest::prelude::*;
use vnat_proto::export::*;
use vnat_proto::vcmp::{Endpoint, PROTO_TCP, PROTO_UDP};

const MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Where the four endpoints that must be specified and of one family are.
const ENDPOINTS: [usize; 4] = [4, 22, 40, 58];

fn v4(addr: u32, port: u16) -> Endpoint {
    Endpoint::new(addr, port)
}

fn v6(addr: [u8; 16], port: u16) -> Endpoint {
    Endpoint::from_v6(addr, port)
}

fn endpoint4() -> impl Strategy<Value = Endpoint> {
    (1u32.., 1u16..).prop_map(|(a, p)| v4(a, p))
}

/// An IPv6 endpoint: any specified address but IPv4-mapped ones (which are
/// IPv4).
fn endpoint6() -> impl Strategy<Value = Endpoint> {
    (any::<[u8; 16]>(), 1u16..)
        .prop_filter("specified, not IPv4-mapped", |(a, _)| {
            *a != [0; 16] && a[..12] != MAPPED
        })
        .prop_map(|(a, p)| v6(a, p))
}

fn endpoint(is_v6: bool) -> BoxedStrategy<Endpoint> {
    if is_v6 {
        endpoint6().boxed()
    } else {
        endpoint4().boxed()
    }
}

fn proto() -> impl Strategy<Value = u8> {
    prop_oneof![Just(PROTO_TCP), Just(PROTO_UDP)]
}

fn key() -> impl Strategy<Value = [u8; KEY_LEN]> {
    any::<[u8; KEY_LEN]>().prop_filter("nonzero", |k| *k != [0; KEY_LEN])
}

/// Any valid saved state: four specified endpoints of one family, the
/// keyed flag if and only if there are (nonzero) keys. The endpoint the
/// peer names is not checked (it is `0.0.0.0:0` until the peer named one).
fn saved() -> impl Strategy<Value = Saved> {
    any::<bool>()
        .prop_flat_map(|is_v6| {
            (
                (
                    proto(),
                    endpoint(is_v6),
                    endpoint(is_v6),
                    endpoint(is_v6),
                    endpoint(is_v6),
                ),
                (
                    any::<[u8; 5]>(),
                    any::<bool>(),
                    0u8..4,
                    any::<u32>(),
                    prop_oneof![
                        Just(Endpoint::default()),
                        endpoint(is_v6),
                        endpoint(!is_v6),
                        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| v6(a, p)),
                    ],
                    any::<u64>(),
                    any::<u64>(),
                ),
                proptest::option::of((key(), key())),
            )
        })
        .prop_map(
            |(
                (proto, lv, rv, lp, rp),
                (e, asks, low_flags, key_id, named, sent, accepted),
                keys,
            )| {
                let (send_key, recv_key) = keys.unwrap_or(([0; KEY_LEN], [0; KEY_LEN]));
                Saved {
                    proto,
                    local_virtual: lv,
                    remote_virtual: rv,
                    local_physical: lp,
                    remote_physical: rp,
                    origin: e[0],
                    policy: e[1],
                    helper: e[2],
                    flags: low_flags | if keys.is_some() { FLAG_KEYED } else { 0 },
                    auth: e[3],
                    asks,
                    refusals: e[4],
                    key_id,
                    named,
                    sent,
                    accepted,
                    send_key,
                    recv_key,
                }
            },
        )
}

/// A valid record, keyed or not.
fn record() -> impl Strategy<Value = [u8; LEN]> {
    saved().prop_map(|s| s.encode())
}

fn keyed_record() -> impl Strategy<Value = [u8; LEN]> {
    saved()
        .prop_filter("keyed", |s| s.flags & FLAG_KEYED != 0)
        .prop_map(|s| s.encode())
}

fn unkeyed_record() -> impl Strategy<Value = [u8; LEN]> {
    saved()
        .prop_filter("not keyed", |s| s.flags & FLAG_KEYED == 0)
        .prop_map(|s| s.encode())
}

fn refused(b: &[u8]) -> Option<Refused> {
    Saved::decode(b).err()
}

/// Decodes a whole record: what is refused is refused whatever follows it,
/// and what is accepted is the same value with or without what follows.
fn decode_with_tail(b: &[u8]) -> Result<(Saved, usize), Refused> {
    assert_eq!(b.len(), LEN);
    let r = Saved::decode(b);
    let mut long = b.to_vec();
    long.extend([0xee; 7]);
    let t = Saved::decode(&long);
    match (&r, &t) {
        (Ok((x, n)), Ok((y, m))) => assert!(x == y && n == m),
        (Err(x), Err(y)) => assert_eq!(x, y),
        _ => panic!("a tail changed the verdict: {r:?} vs {t:?}"),
    }
    r
}

/// A sample state, keyed with 0xab keys.
fn sample() -> Saved {
    Saved {
        proto: PROTO_TCP,
        local_virtual: v4(0x0a00_0001, 40000),
        remote_virtual: v4(0x0a00_0002, 80),
        local_physical: v4(0xc0a8_0001, 40001),
        remote_physical: v4(0xc0a8_0002, 8080),
        origin: 1,
        policy: 2,
        helper: 3,
        flags: FLAG_SUSPENDED | FLAG_KEYED,
        auth: 4,
        asks: true,
        refusals: 5,
        key_id: 0x0102_0304,
        named: v4(0xc633_6401, 1234),
        sent: 0x1112_1314_1516_1718,
        accepted: 0x2122_2324_2526_2728,
        send_key: [0xab; KEY_LEN],
        recv_key: [0xab; KEY_LEN],
    }
}

#[test]
fn layout_is_as_documented() {
    let b = sample().encode();
    let mapped = |a: [u8; 4], p: u16| {
        let mut v = MAPPED.to_vec();
        v.extend(a);
        v.extend(p.to_be_bytes());
        v
    };
    let mut want = vec![1, PROTO_TCP, 0, 186];
    want.extend(mapped([10, 0, 0, 1], 40000));
    want.extend(mapped([10, 0, 0, 2], 80));
    want.extend(mapped([192, 168, 0, 1], 40001));
    want.extend(mapped([192, 168, 0, 2], 8080));
    want.extend([1, 2, 3, 1 | 4, 4, 1, 5, 0, 1, 2, 3, 4]);
    want.extend(mapped([198, 51, 100, 1], 1234));
    want.extend([0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
    want.extend([0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28]);
    want.extend([0xab; 64]);
    assert_eq!(b.to_vec(), want);
    assert_eq!((VERSION, LEN, KEY_LEN), (1, 186, 32));
    assert_eq!((FLAG_SUSPENDED, FLAG_UNVALIDATED, FLAG_KEYED), (1, 2, 4));
    assert_eq!(Saved::decode(&b), Ok((sample(), LEN)));
}

#[test]
fn v6_layout_is_as_documented() {
    let a = |last: u8| {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = last;
        a
    };
    let s = Saved {
        proto: PROTO_UDP,
        local_virtual: v6(a(1), 1),
        remote_virtual: v6(a(2), 2),
        local_physical: v6(a(3), 3),
        remote_physical: v6(a(4), 4),
        flags: 0,
        send_key: [0; KEY_LEN],
        recv_key: [0; KEY_LEN],
        ..sample()
    };
    assert!(s.local_virtual.is_v6());
    let b = s.encode();
    assert_eq!(b[1], PROTO_UDP);
    for (i, at) in ENDPOINTS.into_iter().enumerate() {
        assert_eq!(b[at..at + 16], a(i as u8 + 1));
        assert_eq!(b[at + 16..at + 18], [0, i as u8 + 1]);
    }
    assert_eq!(b[79], 0);
    assert_eq!(b[122..], [0; 64]);
    assert_eq!(Saved::decode(&b), Ok((s, LEN)));
}

/// The keys are secret: they never show in a log line.
#[test]
fn debug_shows_no_key() {
    let s = sample();
    let text = format!("{s:?}");
    let pretty = format!("{s:#?}");
    for t in [&text, &pretty] {
        assert!(t.contains("Saved"), "{t}");
        for needle in ["171", "ab", "AB", "0xab", "[171"] {
            assert!(!t.contains(needle), "{needle} in {t}");
        }
    }
    // The same state under other keys (and counters) prints the same.
    let other = Saved {
        send_key: [1; KEY_LEN],
        recv_key: [2; KEY_LEN],
        sent: 0,
        accepted: 0,
        ..sample()
    };
    assert_eq!(format!("{other:?}"), text);
}

#[test]
fn short_records_are_truncated() {
    let b = sample().encode();
    for n in 0..LEN {
        assert_eq!(refused(&b[..n]), Some(Refused::Truncated), "{n} bytes");
    }
    // A header too short to say anything is truncated, whatever it holds.
    for h in [&[][..], &[0], &[2, 6], &[1, 6, 0xff]] {
        assert_eq!(refused(h), Some(Refused::Truncated));
    }
}

/// One key without the keyed flag is a key without the flag (the module's
/// doc: a reader refuses "a key without the keyed flag"), as much as two.
#[test]
fn one_key_without_keyed_flag() {
    let s = Saved {
        flags: 0,
        send_key: [0; KEY_LEN],
        recv_key: [0; KEY_LEN],
        ..sample()
    };
    let b = s.encode();
    assert!(Saved::decode(&b).is_ok());
    for at in [122, 153, 154, 185] {
        let mut c = b;
        c[at] = 1;
        assert_eq!(refused(&c), Some(Refused::Flags), "byte {at} = 1");
    }
}

/// [`wipe`] zeroes any bytes.
#[test]
fn wipe_zeroes() {
    let mut b = sample().encode();
    wipe(&mut b);
    assert_eq!(b, [0; LEN]);
    let mut e: [u8; 0] = [];
    wipe(&mut e);
}

/// The fuzz target's seeds (tools/fuzz/seeds/export/) are what their names
/// say.
#[test]
fn fuzz_seeds() {
    macro_rules! seed {
        ($name:literal) => {
            &include_bytes!(concat!("../../fuzz/seeds/export/", $name))[..]
        };
    }
    let keyed = seed!("keyed-v4");
    let (s, n) = Saved::decode(keyed).unwrap();
    assert_eq!(
        (n, s.flags & FLAG_KEYED, s.local_virtual.is_v6()),
        (LEN, FLAG_KEYED, false)
    );
    let unkeyed = seed!("unkeyed-v6");
    let (t, n) = Saved::decode(unkeyed).unwrap();
    assert_eq!(
        (n, t.flags & FLAG_KEYED, t.local_virtual.is_v6()),
        (LEN, 0, true)
    );
    for (name, b) in [
        ("two-records", seed!("two-records")),
        ("trailing", seed!("trailing")),
    ] {
        assert!(b.len() > LEN, "{name}");
        assert_eq!(Saved::decode(b).unwrap().1, LEN, "{name}");
    }
    assert_eq!(Saved::decode(&seed!("two-records")[LEN..]).unwrap().0, t);
    assert_eq!(refused(seed!("truncated")), Some(Refused::Truncated));
    assert_eq!(refused(seed!("header-only")), Some(Refused::Truncated));
    assert_eq!(refused(seed!("version-2")), Some(Refused::Version));
    assert_eq!(refused(seed!("length-187")), Some(Refused::Length));
}

#[test]
fn why_is_said_for_every_refusal() {
    let all = [
        Refused::Truncated,
        Refused::Version,
        Refused::Length,
        Refused::Protocol,
        Refused::Endpoint,
        Refused::Flags,
    ];
    for (i, a) in all.iter().enumerate() {
        assert!(a.why().to_bytes().starts_with(b"saved state "));
        for b in &all[i + 1..] {
            assert_ne!(a.why(), b.why());
        }
    }
}

proptest! {
    /// Any valid state encodes to a record that decodes to it, [`LEN`]
    /// bytes long, with the documented header.
    #[test]
    fn round_trip(s in saved()) {
        let b = s.encode();
        prop_assert_eq!(b[0], VERSION);
        prop_assert_eq!(b[1], s.proto);
        prop_assert_eq!(&b[2..4], &[0u8, 186][..]);
        prop_assert_eq!(b[79], s.flags);
        prop_assert_eq!(b[83], 0);
        prop_assert_eq!(&b[122..154], &s.send_key[..]);
        prop_assert_eq!(&b[154..186], &s.recv_key[..]);
        let (d, n) = decode_with_tail(&b).unwrap();
        prop_assert_eq!(n, LEN);
        prop_assert!(d == s, "decoded {:?} != {:?}", d, s);
        prop_assert_eq!(d.encode(), b);
    }

    /// Every prefix of a record is truncated, or refused for its header
    /// once it is long enough to have one.
    #[test]
    fn prefixes(mut b in record(), header in any::<[u8; 4]>(), keep in any::<[bool; 4]>()) {
        for i in 0..4 {
            if !keep[i] {
                b[i] = header[i];
            }
        }
        let want = if b[0] != VERSION {
            Refused::Version
        } else if b[2..4] != [0, 186] {
            Refused::Length
        } else {
            Refused::Truncated
        };
        for n in 0..LEN {
            let got = refused(&b[..n]);
            if n < 4 {
                prop_assert_eq!(got, Some(Refused::Truncated));
            } else {
                prop_assert_eq!(got, Some(want), "{} bytes", n);
            }
        }
    }

    /// Every change of the version or the length is refused for it, even
    /// with enough bytes after the record to make up the length it says;
    /// every change of the protocol is refused but the other one's.
    #[test]
    fn header_changes(b in record()) {
        let mut long = b.to_vec();
        long.extend([0u8; 512]);
        for (at, want) in [(0, Refused::Version), (2, Refused::Length), (3, Refused::Length)] {
            for v in 0..=255u8 {
                if v == b[at] {
                    continue;
                }
                let mut c = long.clone();
                c[at] = v;
                prop_assert_eq!(refused(&c[..LEN]), Some(want), "byte {} = {}", at, v);
                prop_assert_eq!(refused(&c), Some(want), "byte {} = {}", at, v);
            }
        }
        for v in 0..=255u8 {
            let mut c = b;
            c[1] = v;
            let got = decode_with_tail(&c);
            if v == PROTO_TCP || v == PROTO_UDP {
                let (s, n) = got.unwrap();
                prop_assert_eq!((s.proto, n), (v, LEN));
            } else {
                prop_assert_eq!(got.err(), Some(Refused::Protocol), "protocol {}", v);
            }
        }
    }

    /// Flags the format does not know, a nonzero byte 83, and a byte 81
    /// other than 0 and 1 are refused; 0 and 1 are `asks`.
    #[test]
    fn unknown_flags(b in record()) {
        for bit in 3..8 {
            let mut c = b;
            c[79] |= 1 << bit;
            prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Flags), "bit {}", bit);
        }
        for v in 1..=255u8 {
            let mut c = b;
            c[83] = v;
            prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Flags), "byte 83 = {}", v);
        }
        for v in 0..=255u8 {
            let mut c = b;
            c[81] = v;
            let got = decode_with_tail(&c);
            if v <= 1 {
                prop_assert_eq!(got.unwrap().0.asks, v == 1);
            } else {
                prop_assert_eq!(got.err(), Some(Refused::Flags), "byte 81 = {}", v);
            }
        }
        // The known flags are each free, but for the keyed one.
        for f in [FLAG_SUSPENDED, FLAG_UNVALIDATED] {
            let mut c = b;
            c[79] ^= f;
            prop_assert_eq!(decode_with_tail(&c).unwrap().0.flags, b[79] ^ f);
        }
    }

    /// The keyed flag without keys is refused.
    #[test]
    fn keyed_flag_without_keys(b in unkeyed_record()) {
        let mut c = b;
        c[79] |= FLAG_KEYED;
        prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Flags));
    }

    /// Keys without the keyed flag are refused, and so is the keyed flag
    /// with one of its two keys zero.
    #[test]
    fn keys_without_keyed_flag(b in keyed_record()) {
        let mut c = b;
        c[79] &= !FLAG_KEYED;
        prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Flags));
        for at in [122, 154] {
            let mut c = b;
            c[at..at + KEY_LEN].fill(0);
            prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Flags), "key at {} zero", at);
        }
    }

    /// A protocol other than TCP and UDP is refused.
    #[test]
    fn other_protocols(b in record(), p in any::<u8>()) {
        prop_assume!(p != PROTO_TCP && p != PROTO_UDP);
        let mut c = b;
        c[1] = p;
        prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Protocol));
    }

    /// An unspecified address (`0.0.0.0`, `::ffff:0.0.0.0` or `::`) or a
    /// zero port in any of the four endpoints is refused.
    #[test]
    fn unspecified_endpoints(b in record()) {
        let v4 = b[4..16] == MAPPED;
        for at in ENDPOINTS {
            let mut c = b;
            c[at + 16..at + 18].fill(0);
            prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Endpoint), "port at {}", at);
            let mut c = b;
            c[at..at + 16].fill(0);
            prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Endpoint), ":: at {}", at);
            if v4 {
                let mut c = b;
                c[at + 12..at + 16].fill(0);
                prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Endpoint), "0.0.0.0 at {}", at);
            }
        }
    }

    /// An endpoint of the other family than the others is refused, in any
    /// of the four places.
    #[test]
    fn mixed_families(s in saved(), e4 in endpoint4(), e6 in endpoint6()) {
        let b = s.encode();
        let other = if s.local_virtual.is_v6() { e4 } else { e6 };
        for at in ENDPOINTS {
            let mut c = b;
            c[at..at + 16].copy_from_slice(&other.octets16());
            c[at + 16..at + 18].copy_from_slice(&other.port.to_be_bytes());
            prop_assert_eq!(decode_with_tail(&c).err(), Some(Refused::Endpoint), "at {}", at);
        }
    }

    /// What follows a record is left to the caller: a file of records reads
    /// back one record at a time.
    #[test]
    fn bytes_after_a_record_are_left(a in saved(), b in saved(), tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut file = a.encode().to_vec();
        file.extend(b.encode());
        file.extend(&tail);
        let (x, n) = Saved::decode(&file).unwrap();
        prop_assert_eq!(n, LEN);
        prop_assert!(x == a);
        let (y, m) = Saved::decode(&file[n..]).unwrap();
        prop_assert_eq!(m, LEN);
        prop_assert!(y == b);
        let rest = &file[n + m..];
        prop_assert_eq!(rest, &tail[..]);
        match Saved::decode(rest) {
            Ok((_, k)) => prop_assert_eq!(k, LEN),
            Err(e) => prop_assert!(rest.len() < LEN || e != Refused::Truncated),
        }
    }

    /// Any bytes decode without a panic; what decodes is the record's first
    /// [`LEN`] bytes exactly.
    #[test]
    fn any_bytes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok((s, n)) = Saved::decode(&b) {
            prop_assert_eq!(n, LEN);
            prop_assert_eq!(&s.encode()[..], &b[..LEN]);
        }
    }

    /// Bytes behind a good header (most of which get past it), and single
    /// byte changes of a valid record: the same.
    #[test]
    fn any_body(proto in prop_oneof![proto(), any::<u8>()], body in proptest::collection::vec(any::<u8>(), 0..300),
                b in record(), at in 0..LEN, v in any::<u8>()) {
        let mut r = vec![VERSION, proto, 0, 186];
        r.extend(body);
        let mut c = b;
        c[at] = v;
        for x in [&r[..], &c[..]] {
            match Saved::decode(x) {
                Ok((s, n)) => {
                    prop_assert_eq!(n, LEN);
                    prop_assert_eq!(&s.encode()[..], &x[..LEN]);
                }
                Err(Refused::Truncated) => prop_assert!(x.len() < LEN),
                Err(_) => {}
            }
        }
    }
}
