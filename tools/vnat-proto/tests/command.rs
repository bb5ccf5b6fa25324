// SPDX-License-Identifier: GPL-2.0

//! Control commands: the one valid form is taken, everything else refused.

use proptest::prelude::*;
use vnat_proto::command::*;

#[test]
fn migrate() {
    assert_eq!(
        parse(b"migrate 10.0.1.2 10.0.3.2\n"),
        Some(Command::Migrate {
            from: 0x0a00_0102,
            to: 0x0a00_0302
        })
    );
    assert_eq!(
        parse(b"migrate 1.2.3.4 5.6.7.8"),
        Some(Command::Migrate {
            from: 0x0102_0304,
            to: 0x0506_0708
        })
    );
}

#[test]
fn refused() {
    for bad in [
        &b""[..],
        b"\n",
        b"migrate",
        b"migrate 1.2.3.4",
        b"migrate 1.2.3.4 5.6.7.8 9",
        b"migrate  1.2.3.4 5.6.7.8",
        b"Migrate 1.2.3.4 5.6.7.8",
        b"migrate 1.2.3 5.6.7.8",
        b"migrate 1.2.3.4.5 5.6.7.8",
        b"migrate 1.2.3.256 5.6.7.8",
        b"migrate 01.2.3.4 5.6.7.8",
        b"migrate 1..3.4 5.6.7.8",
        b"migrate 0.0.0.0 5.6.7.8",
        b"migrate 1.2.3.4 0.0.0.0",
        b"migrate 1.2.3.4 5.6.7.8\n\n",
        b"migrate 1.2.3.4 5.6.7.x",
    ] {
        assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

proptest! {
    #[test]
    fn every_address_round_trips(a in any::<u32>()) {
        let s = format!("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        prop_assert_eq!(parse_ipv4(s.as_bytes()), Some(a));
    }

    #[test]
    fn arbitrary_input_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(&b);
    }
}
