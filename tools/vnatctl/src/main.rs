// SPDX-License-Identifier: GPL-2.0

//! `vnatctl`: a minimal control tool for VNAT, run in the network namespace
//! (host) it acts on (`ip netns exec HOST vnatctl ...`).
//!
//! ```text
//! vnatctl list                 virtual connections (/proc/net/vnat/connections)
//! vnatctl stats                counters (/proc/net/vnat/stats)
//! vnatctl resume FROM TO       resume the connections of address FROM at TO
//! vnatctl suspend ADDR         nothing to do: VNAT needs no notice (paper 3.3.1)
//! ```
//!
//! Exit codes: 0 success, 1 the kernel refused (errno shown), 2 bad usage,
//! 3 the module is not loaded. The full control plane (generic netlink,
//! events) is its own piece of work; this tool drives the procfs interface.

use std::{fs, io::Write, process::ExitCode};
use vnat_proto::command::parse_ipv4;

const PROC: &str = "/proc/net/vnat";

fn usage() -> ExitCode {
    eprintln!(
        "usage: vnatctl list | stats | resume FROM_ADDR TO_ADDR | suspend ADDR\n\
         examples:\n  ip netns exec laptop vnatctl resume 10.0.1.2 10.0.2.2\n  vnatctl list"
    );
    ExitCode::from(2)
}

fn not_loaded() -> ExitCode {
    eprintln!("vnatctl: {PROC} not found: is the vnat module loaded (insmod vnat.ko)?");
    ExitCode::from(3)
}

fn show(file: &str) -> ExitCode {
    match fs::read_to_string(format!("{PROC}/{file}")) {
        Ok(s) => {
            print!("{}", render_table(&s));
            ExitCode::SUCCESS
        }
        Err(_) => not_loaded(),
    }
}

/// Aligns whitespace-separated columns, like `ss`.
fn render_table(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn resume(from: &str, to: &str) -> ExitCode {
    for a in [from, to] {
        if parse_ipv4(a.as_bytes()).is_none() {
            eprintln!("vnatctl: '{a}' is not an IPv4 address");
            return ExitCode::from(2);
        }
    }
    let path = format!("{PROC}/control");
    let mut f = match fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return not_loaded(),
        Err(e) => {
            eprintln!(
                "vnatctl: cannot open {path}: {e} (CAP_NET_ADMIN in the namespace is needed)"
            );
            return ExitCode::from(1);
        }
    };
    match f.write_all(format!("migrate {from} {to}\n").as_bytes()) {
        Ok(()) => {
            println!("resuming the connections of {from} at {to}; see 'vnatctl stats' (migrations_completed)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vnatctl: the kernel refused: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => show("connections"),
        ["stats"] => show("stats"),
        ["resume", from, to] => resume(from, to),
        ["suspend", _addr] => {
            println!("nothing to do: VNAT needs no notice before a move (paper 3.3.1); run 'vnatctl resume' after it");
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned() {
        let t = render_table("proto local pid\ntcp 10.0.0.1:1 7\ntcp 1.2.3.4:56789 12345\n");
        assert_eq!(
            t,
            "proto  local          pid\ntcp    10.0.0.1:1     7\ntcp    1.2.3.4:56789  12345\n"
        );
    }
}
