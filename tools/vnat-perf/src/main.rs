// SPDX-License-Identifier: GPL-2.0

//! `vnat-perf`: the three netperf tests the paper measures (section 5), with
//! nothing but the standard library, so that `make bench` needs no package
//! from outside Debian's main suites.
//!
//! ```text
//! vnat-perf serve ADDR:PORT             # the other end, runs until killed
//! vnat-perf stream ADDR:PORT SECONDS    # TCP_STREAM: bytes per second
//! vnat-perf rr ADDR:PORT SECONDS        # TCP_RR: transactions per second
//! vnat-perf crr ADDR:PORT SECONDS       # TCP_CRR: connect, transaction, close, per second
//! ```
//!
//! Options after SECONDS: `--size N`, the message size in bytes (what each
//! `write()` of `stream` sends; the request and the response of `rr` and
//! `crr`), 1 by default for `rr` and `crr` and 131072 for `stream`, as
//! netperf's `-m` and `-r`; `--wait`: `stream` and `rr` connect, print
//! `connected` and start measuring only once a line arrives on stdin, so
//! that the connection can be migrated first.
//!
//! Each client prints two numbers: the rate, and the CPU time the whole
//! system was busy per second of the run (from `/proc/stat`: user, system,
//! interrupts; with one vCPU, 1.0 is a saturated CPU), so that the CPU cost
//! of a transaction or a byte is the second divided by the first. Time is
//! the guest's `CLOCK_MONOTONIC`; under QEMU `-icount` it counts
//! instructions, so results repeat.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const STREAM: u8 = b'S';
const RR: u8 = b'R';
const CRR: u8 = b'C';

/// The largest message size.
const SIZE_MAX: usize = 1 << 20;

/// A connection's first bytes: its test and message size.
fn hello(s: &mut TcpStream) -> std::io::Result<(u8, usize)> {
    s.set_nodelay(true)?;
    let mut hello = [0u8; 5];
    s.read_exact(&mut hello)?;
    let size = u32::from_be_bytes([hello[1], hello[2], hello[3], hello[4]]) as usize;
    if size == 0 || size > SIZE_MAX {
        return Err(std::io::Error::other("bad message size"));
    }
    Ok((hello[0], size))
}

/// Serves a connection of test `mode` after its hello, with `buf` (at
/// least `size` bytes).
fn serve_one(s: &mut TcpStream, mode: u8, size: usize, buf: &mut [u8]) -> std::io::Result<()> {
    match mode {
        STREAM => while s.read(buf)? > 0 {},
        RR | CRR => loop {
            match s.read_exact(&mut buf[..size]) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                r => r?,
            }
            s.write_all(&buf[..size])?;
            if mode == CRR {
                break;
            }
        },
        _ => {}
    }
    Ok(())
}

/// Accepts connections until killed. A TCP_CRR connection is served by
/// the accepting thread, one after another, with one buffer, as netperf's
/// netserver serves them: a thread and a fresh 128 KiB buffer for each
/// cost more than the connection itself (a profile of TCP_CRR showed the
/// zeroing of the buffers and the thread creation at over 40 % of the
/// guest's CPU). A connection of the other tests, which lasts, gets its own
/// thread.
fn serve(addr: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(addr)?;
    let mut crr_buf = Vec::new();
    for s in l.incoming() {
        let mut s = s?;
        let Ok((mode, size)) = hello(&mut s) else {
            continue;
        };
        if mode == CRR {
            if crr_buf.len() < size {
                crr_buf.resize(size, 0);
            }
            let _ = serve_one(&mut s, mode, size, &mut crr_buf);
            continue;
        }
        std::thread::spawn(move || {
            let mut buf = vec![0u8; size.max(128 * 1024)];
            serve_one(&mut s, mode, size, &mut buf)
        });
    }
    Ok(())
}

fn open(addr: &str, mode: u8, size: usize) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let n = (size as u32).to_be_bytes();
    s.write_all(&[mode, n[0], n[1], n[2], n[3]])?;
    Ok(s)
}

fn transaction(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    s.write_all(buf)?;
    s.read_exact(buf)
}

/// The jiffies the system was busy and all jiffies so far (`/proc/stat`'s
/// first line: busy is everything but idle and iowait).
fn cpu_jiffies() -> std::io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let all: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((all - idle, all))
}

/// Prints `connected` and waits for a line on stdin, if asked to.
fn ready(wait: bool) -> std::io::Result<Instant> {
    if wait {
        println!("connected");
        std::io::stdout().flush()?;
        std::io::stdin().read_line(&mut String::new())?;
    }
    Ok(Instant::now())
}

/// Runs `test` for `secs`; returns its rate and the fraction of the time
/// the system was busy.
fn run(
    test: &str,
    addr: &str,
    secs: f64,
    size: Option<usize>,
    wait: bool,
) -> std::io::Result<(f64, f64)> {
    let span = Duration::from_secs_f64(secs);
    let mut t0 = Instant::now();
    let mut cpu0 = cpu_jiffies()?;
    let mut n: u64 = 0;
    match test {
        "stream" => {
            let size = size.unwrap_or(128 * 1024);
            let mut s = open(addr, STREAM, size)?;
            t0 = ready(wait)?;
            cpu0 = cpu_jiffies()?;
            let buf = vec![0x5au8; size];
            while t0.elapsed() < span {
                s.write_all(&buf)?;
                n += buf.len() as u64;
            }
            s.shutdown(Shutdown::Write)?;
            // Wait until the receiver has read everything and closed.
            if s.read(&mut [0u8; 1])? != 0 {
                return Err(std::io::Error::other("the server sent data"));
            }
        }
        "rr" => {
            let mut buf = vec![b'x'; size.unwrap_or(1)];
            let mut s = open(addr, RR, buf.len())?;
            t0 = ready(wait)?;
            cpu0 = cpu_jiffies()?;
            while t0.elapsed() < span {
                transaction(&mut s, &mut buf)?;
                n += 1;
            }
        }
        "crr" => {
            let mut buf = vec![b'x'; size.unwrap_or(1)];
            while t0.elapsed() < span {
                let mut s = open(addr, CRR, buf.len())?;
                transaction(&mut s, &mut buf)?;
                n += 1;
            }
        }
        _ => return Err(std::io::Error::other(format!("unknown test {test}"))),
    }
    let took = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_jiffies()?;
    let busy = (cpu1.0 - cpu0.0) as f64 / ((cpu1.1 - cpu0.1).max(1)) as f64;
    Ok((n as f64 / took, busy))
}

/// The options after SECONDS: `--size N` and `--wait`.
fn options(rest: &[String]) -> Option<(Option<usize>, bool)> {
    let (mut size, mut wait) = (None, false);
    let mut it = rest.iter();
    while let Some(o) = it.next() {
        match o.as_str() {
            "--wait" => wait = true,
            "--size" => {
                let n: usize = it.next()?.parse().ok()?;
                if n == 0 || n > SIZE_MAX {
                    return None;
                }
                size = Some(n);
            }
            _ => return None,
        }
    }
    Some((size, wait))
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: vnat-perf serve ADDR:PORT | vnat-perf stream|rr|crr ADDR:PORT SECONDS [--size N] [--wait]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.as_slice() {
        [cmd, addr] if cmd == "serve" => serve(addr),
        [test, addr, secs, rest @ ..] => match (options(rest), secs.parse::<f64>()) {
            (None, _) => return usage(),
            (Some((size, wait)), Ok(secs)) if secs > 0.0 => run(test, addr, secs, size, wait)
                .map(|(rate, busy)| println!("{rate:.3} {busy:.4}")),
            _ => Err(std::io::Error::other("SECONDS must be a positive number")),
        },
        _ => return usage(),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vnat-perf: {e}");
            ExitCode::FAILURE
        }
    }
}
