// SPDX-License-Identifier: GPL-2.0

//! `vnat-perf`: the three netperf tests the paper measures (section 5), with
//! nothing but the standard library, so that `make bench` needs no package
//! from outside Debian's main suites.
//!
//! ```text
//! vnat-perf serve ADDR:PORT             # the other end, runs until killed
//! vnat-perf stream ADDR:PORT SECONDS    # TCP_STREAM: bytes per second
//! vnat-perf rr ADDR:PORT SECONDS        # TCP_RR: 1-byte transactions per second
//! vnat-perf crr ADDR:PORT SECONDS       # TCP_CRR: connect, transaction, close, per second
//! ```
//!
//! With `--wait` after SECONDS, `stream` and `rr` connect, print
//! `connected` and start measuring only once a line arrives on stdin, so
//! that the connection can be migrated first.
//!
//! Each client prints one number. Time is the guest's `CLOCK_MONOTONIC`;
//! under QEMU `-icount` it counts instructions, so results repeat.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const STREAM: u8 = b'S';
const RR: u8 = b'R';
const CRR: u8 = b'C';

fn serve_one(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode)?;
    let mut buf = vec![0u8; 128 * 1024];
    match mode[0] {
        STREAM => while s.read(&mut buf)? > 0 {},
        RR | CRR => loop {
            if s.read(&mut buf[..1])? == 0 {
                break;
            }
            s.write_all(&buf[..1])?;
            if mode[0] == CRR {
                break;
            }
        },
        _ => {}
    }
    Ok(())
}

fn serve(addr: &str) -> std::io::Result<()> {
    let l = TcpListener::bind(addr)?;
    for s in l.incoming() {
        let s = s?;
        std::thread::spawn(move || serve_one(s));
    }
    Ok(())
}

fn open(addr: &str, mode: u8) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.write_all(&[mode])?;
    Ok(s)
}

fn transaction(s: &mut TcpStream) -> std::io::Result<()> {
    let mut b = [b'x'];
    s.write_all(&b)?;
    s.read_exact(&mut b)
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

fn run(test: &str, addr: &str, secs: f64, wait: bool) -> std::io::Result<f64> {
    let span = Duration::from_secs_f64(secs);
    let mut t0 = Instant::now();
    let mut n: u64 = 0;
    match test {
        "stream" => {
            let mut s = open(addr, STREAM)?;
            t0 = ready(wait)?;
            let buf = vec![0x5au8; 128 * 1024];
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
            let mut s = open(addr, RR)?;
            t0 = ready(wait)?;
            while t0.elapsed() < span {
                transaction(&mut s)?;
                n += 1;
            }
        }
        "crr" => {
            while t0.elapsed() < span {
                let mut s = open(addr, CRR)?;
                transaction(&mut s)?;
                n += 1;
            }
        }
        _ => return Err(std::io::Error::other(format!("unknown test {test}"))),
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.as_slice() {
        [cmd, addr] if cmd == "serve" => serve(addr),
        [test, addr, secs, rest @ ..] if rest.is_empty() || rest == ["--wait"] => {
            match secs.parse::<f64>() {
                Ok(secs) if secs > 0.0 => {
                    run(test, addr, secs, !rest.is_empty()).map(|v| println!("{v:.3}"))
                }
                _ => Err(std::io::Error::other("SECONDS must be a positive number")),
            }
        }
        _ => {
            eprintln!(
                "usage: vnat-perf serve ADDR:PORT | vnat-perf stream|rr|crr ADDR:PORT SECONDS [--wait]"
            );
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vnat-perf: {e}");
            ExitCode::FAILURE
        }
    }
}
