// SPDX-License-Identifier: GPL-2.0
//! The stream readers of both versions: bytes fed in any pieces give the
//! same messages, in the same order, as fed at once, and never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vnat_proto::{vcmp, vcmp2};

fuzz_target!(|input: &[u8]| {
    // The first byte chooses where the stream is cut.
    let Some((&cut, b)) = input.split_first() else {
        return;
    };
    let step = usize::from(cut % 31) + 1;

    let mut whole = Vec::new();
    let mut r = vcmp::StreamReader::new();
    r.feed(b, |m| whole.push(m));
    let mut pieces = Vec::new();
    let mut r = vcmp::StreamReader::new();
    for c in b.chunks(step) {
        r.feed(c, |m| pieces.push(m));
    }
    assert_eq!(whole, pieces);
    assert!(r.pending() < vcmp::MSG_LEN);

    let frames = |r: &mut vcmp2::StreamReader, c: &[u8], out: &mut Vec<Vec<u8>>| {
        r.feed(c, |f| {
            out.push(match f {
                vcmp2::Frame::V1(m) | vcmp2::Frame::V2(m) => m.to_vec(),
            })
        })
    };
    let mut whole = Vec::new();
    let mut r = vcmp2::StreamReader::new();
    let all = frames(&mut r, b, &mut whole);
    let mut pieces = Vec::new();
    let mut r = vcmp2::StreamReader::new();
    let mut broken = false;
    for c in b.chunks(step) {
        if frames(&mut r, c, &mut pieces).is_err() {
            broken = true;
            break;
        }
    }
    assert_eq!(whole, pieces);
    assert_eq!(all.is_err(), broken);
    assert!(r.pending() <= vcmp2::MAX_LEN);
});
