// SPDX-License-Identifier: GPL-2.0

//! `vnatctl`: see, move and watch VNAT's virtual connections, and change its
//! knobs. It speaks the generic netlink family `vnat` (spec:
//! `vnat/vnat.yaml`) of the network namespace it runs in (`-n NAME` or
//! `ip netns exec NAME`), and reads and writes the configfs knobs under
//! `/sys/kernel/config/vnat/`. Run with no arguments by CRIU, it is CRIU's
//! action script (`criu.rs`): a process moves to another host with its
//! connections.

mod criu;
mod family;
mod generated;
mod migrate;
mod nl;
mod render;

use clap::{builder::PossibleValuesParser, CommandFactory, Parser, Subcommand};
use family::Attr;
use nl::{Client, Error};
use render::Filter;
use std::{
    fs,
    io::Write,
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    process::ExitCode,
};

const EXAMPLES: &str = "\
Examples:
  vnatctl -n laptop list                      every virtual connection, like ss -tn
  vnatctl list --state migrated --json        the migrated ones, for jq
  vnatctl monitor                             watch migrations happen, like ip monitor
  vnatctl resume 10.0.1.2 10.0.2.2            the host moved: resume what used 10.0.1.2
  vnatctl resume --pid 4242 10.0.2.2          one process's connections
  vnatctl resume --pid 4242                   ... at the address the host would use now
  vnatctl resume --conn tcp 10.0.1.2:40000 10.0.0.2:5000 10.0.2.2
  vnatctl resume 2001:db8:1::2 2001:db8:2::2  IPv6 as IPv4
  vnatctl resume --conn tcp [2001:db8:1::2]:40000 [2001:db8::2]:5000
  vnatctl suspend 10.0.1.2                    the host is about to go: peers keep its connections
  vnatctl suspend --pid 4242                  one process is about to be checkpointed
  vnatctl resume 10.0.1.2 10.0.1.2            ... it came back where it was
  vnatctl policy tcp 10.0.0.2:5000 10.0.1.2:40000 preempt
  vnatctl helper tcp 10.0.0.2:21 10.0.1.2:40000 stop
  vnatctl config set vcmp_timeout_ms 5000
  vnatctl export --pid 4242 -o conns.img      save a process's connections, keys included
  vnatctl export --conn tcp 10.0.1.2:40000 10.0.0.2:5000 -o conn.img
  vnatctl import conns.img                    ... on the host it moves to, before restoring it
  criu dump -t 4242 -D img --tcp-established --action-script \"$(command -v vnatctl)\"
  vnatctl completions bash > /etc/bash_completion.d/vnatctl

Exit status: 0 done; 1 the kernel refused (the reason is printed); 2 bad
usage; 3 the vnat module is not loaded; 4 permission denied (commands and
knobs need CAP_NET_ADMIN / root).";

const ABOUT: &str = "See, move and watch VNAT's virtual connections";

const LONG_ABOUT: &str = "\
See, move and watch VNAT's virtual connections

Moving a process to another host with CRIU: vnatctl is also CRIU's action
script. Run with no arguments and CRTOOLS_SCRIPT_ACTION set, as CRIU runs
its --action-script, it does on
  post-dump     save the connections of the dumped process tree, keys
                included, to vnat-connections.img (mode 0600) in the image
                directory; with VNAT_CRIU_SUSPEND=1 it suspends them first,
                so that the peers keep them alive while the process is
                away. An IPv6 connection aborts the dump (not supported
                yet): the process keeps running here
  pre-restore   import that file (if there), so that the restored sockets
                get their connections; an error aborts the restore
  post-restore  resume the restored processes' connections at the address
                the route chooses, and wait for them, VNAT_CRIU_WAIT_MS
                milliseconds at most (5000); the ones still pending go on
                resuming while the processes run
and nothing on the other actions:

  old# criu dump -t PID -D IMG --tcp-established --action-script \"$(command -v vnatctl)\"
  ... copy IMG to the new host (it holds the connections' keys) ...
  new# criu restore -D IMG --tcp-established --action-script \"$(command -v vnatctl)\"

The file (vnatctl export, import): the 8 bytes VNATCONN, then each
connection's saved state as conn-export gives it.";

#[derive(Parser, Debug)]
#[command(
    name = "vnatctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
struct Cli {
    /// Act in network namespace NAME (/run/netns/NAME), like `ip -n NAME`
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    netns: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List virtual connections: virtual endpoints (what applications see)
    /// and physical ones (on the wire now)
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
        /// Only connections in this state
        #[arg(long, value_parser = PossibleValuesParser::new(generated::state::NAMES))]
        state: Option<String>,
        /// Only this protocol
        #[arg(long, value_parser = ["tcp", "udp"])]
        proto: Option<String>,
        /// Only connections with this address (IPv4 or IPv6) at any endpoint
        #[arg(long, value_parser = parse_addr)]
        addr: Option<IpAddr>,
        /// Only connections with this port at any endpoint
        #[arg(long)]
        port: Option<u16>,
        /// Only connections opened by this process
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Print events (virtualized, resuming, resumed, failed, peer-moved,
    /// refused, conflict, suspended, peer-suspended, helper-released,
    /// closed) as they happen
    Monitor {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// Exit after this many events
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Resume connections at a new local address: those of a whole host
    /// (FROM [TO]), of one process (--pid PID [TO]) or one connection
    /// (--conn PROTO LOCAL REMOTE [TO], virtual endpoints as `list` shows
    /// them: ADDRESS:PORT, [IPV6-ADDRESS]:PORT). Addresses IPv4 or IPv6; a
    /// connection keeps its family. Without TO: the address the host would
    /// use now to reach the peer
    Resume {
        /// Resume this process's connections
        #[arg(long, conflicts_with = "conn")]
        pid: Option<u32>,
        /// Resume this one connection
        #[arg(long, num_args = 3, value_names = ["PROTO", "LOCAL", "REMOTE"])]
        conn: Option<Vec<String>>,
        /// FROM [TO], or [TO] with --pid/--conn
        #[arg(value_parser = parse_addr, num_args = 0..=2, value_name = "ADDR")]
        addrs: Vec<IpAddr>,
    },
    /// Set the virtual address conflict policy of one connection (paper
    /// 3.4.3): when a migration would give it the endpoints of another live
    /// connection here, abort refuses the migration, preempt aborts the other
    /// connection, default follows the conflict_policy knob
    Policy {
        /// tcp or udp
        proto: String,
        /// Local virtual endpoint, ADDRESS:PORT or [IPV6-ADDRESS]:PORT, as
        /// `list` shows it
        local: String,
        /// Remote virtual endpoint
        remote: String,
        #[arg(value_parser = PossibleValuesParser::new(generated::policy::NAMES))]
        policy: String,
    },
    /// Suspend connections before their host or process moves (paper
    /// 3.3.1): those of a local address (ADDR), of a process (--pid) or one
    /// connection (--conn). Nothing moves; each peer's vnatd keeps its end
    /// alive with a helper (keepalive off, or its processes stopped, as the
    /// peer's suspend_helper says) until `resume`, or an address change,
    /// brings them back. Not needed for a move without notice
    Suspend {
        /// Suspend this process's connections
        #[arg(long, conflicts_with = "conn")]
        pid: Option<u32>,
        /// Suspend this one connection
        #[arg(long, num_args = 3, value_names = ["PROTO", "LOCAL", "REMOTE"])]
        conn: Option<Vec<String>>,
        /// The local address whose connections are suspended (without
        /// --pid/--conn)
        #[arg(value_parser = parse_addr, value_name = "ADDR")]
        addr: Option<IpAddr>,
    },
    /// Set the helper that keeps one connection alive here while its peer
    /// is suspended (paper 3.3.1): none, keepalive (TCP keepalive off),
    /// stop (also stop the processes that have the socket open), default
    /// (the suspend_helper knob)
    Helper {
        /// tcp or udp
        proto: String,
        /// Local virtual endpoint, ADDRESS:PORT or [IPV6-ADDRESS]:PORT, as
        /// `list` shows it
        local: String,
        /// Remote virtual endpoint
        remote: String,
        #[arg(value_parser = PossibleValuesParser::new(generated::helper::NAMES))]
        helper: String,
    },
    /// Save connections, keys included, for a process that moves to
    /// another host (netlink conn-export): the 8 bytes VNATCONN, then each
    /// connection's saved state. Those of each --pid, or one connection
    /// (--conn PROTO LOCAL REMOTE, virtual endpoints as `list` shows them:
    /// ADDRESS:PORT, [IPV6-ADDRESS]:PORT), or all. To standard output, or
    /// FILE (created mode 0600)
    Export {
        /// Only this process's connections (again for more processes)
        #[arg(long, value_name = "PID", conflicts_with = "conn")]
        pid: Vec<u32>,
        /// Only this one connection
        #[arg(long, num_args = 3, value_names = ["PROTO", "LOCAL", "REMOTE"])]
        conn: Option<Vec<String>>,
        /// Write to FILE (mode 0600) rather than standard output
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Make the connections of a file of `export` expected here (netlink
    /// conn-import), before the process is restored: its sockets take them
    /// back. The whole file is checked before the kernel sees any of it
    Import {
        /// The file; standard input if none
        file: Option<PathBuf>,
    },
    /// Counters of this network namespace (netlink stats-get)
    Stats {
        /// One JSON object
        #[arg(long)]
        json: bool,
    },
    /// Read or change the run-time knobs (/sys/kernel/config/vnat/)
    Config {
        #[command(subcommand)]
        op: ConfigOp,
    },
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
enum ConfigOp {
    /// Every knob, or one
    Get { knob: Option<String> },
    /// Set a knob; a bad value is refused and the old one kept
    Set {
        knob: String,
        /// The new value (a negative number too: the kernel refuses it)
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

/// An IPv4 or IPv6 address (this one also in brackets, as in an
/// endpoint); an IPv4-mapped IPv6 one (`::ffff:a.b.c.d`) is the IPv4
/// address, as the kernel takes it.
fn parse_addr(s: &str) -> Result<IpAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .map(|a| a.parse::<Ipv6Addr>().map(IpAddr::V6));
    bare.unwrap_or_else(|| s.parse())
        .map(|a| a.to_canonical())
        .map_err(|_| format!("'{s}' is not an IPv4 address, nor an IPv6 one"))
}

/// ADDRESS:PORT, an IPv6 address in brackets ([ADDRESS]:PORT), as `list`
/// shows endpoints.
fn parse_endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    let bad = || format!("'{s}' is not ADDRESS:PORT (an IPv6 address in brackets: [ADDRESS]:PORT)");
    let (a, p) = s.rsplit_once(':').ok_or_else(bad)?;
    // Without brackets, the last colon of an IPv6 address is no port's.
    if a.contains(':') && !a.starts_with('[') {
        return Err(bad());
    }
    Ok((parse_addr(a)?, p.parse().map_err(|_| bad())?))
}

const CONFIGFS: &str = "/sys/kernel/config/vnat";

/// A failure and the exit status it gets.
struct Fail(u8, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotLoaded => 3,
            Error::Kernel { errno, .. } if *errno == libc::EPERM => 4,
            _ => 1,
        };
        Fail(code, e.to_string())
    }
}

fn usage(msg: String) -> Fail {
    Fail(2, msg)
}

/// Moves this process into network namespace `name`.
fn enter_netns(name: &str) -> Result<(), Fail> {
    let path = format!("/run/netns/{name}");
    let f = fs::File::open(&path)
        .map_err(|e| Fail(2, format!("no network namespace '{name}' ({path}: {e})")))?;
    // SAFETY: setns() on a file descriptor we own for the call's duration.
    let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Fail(
            4,
            format!("cannot enter network namespace '{name}': {e}"),
        ));
    }
    Ok(())
}

fn list(f: &Filter, json: bool) -> Result<(), Fail> {
    let conns: Vec<_> = Client::open()?
        .connections()?
        .into_iter()
        .filter(|c| f.matches(c))
        .collect();
    if json {
        let v: Vec<_> = conns.iter().map(render::conn_json).collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        print!("{}", render::conn_table(&conns));
    }
    Ok(())
}

fn monitor(json: bool, count: Option<u64>) -> Result<(), Fail> {
    let mut c = Client::open()?;
    c.subscribe()?;
    let mut seen = 0;
    let mut out = std::io::stdout();
    loop {
        let events = match c.events() {
            Ok(ev) => ev,
            // The socket's buffer overflowed: say so, and go on.
            Err(Error::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                eprintln!("vnatctl: events were lost (the kernel had more than this monitor read)");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for e in events {
            let line = if json {
                render::event_json(&e).to_string()
            } else {
                render::event_line(&e)
            };
            // A closed pipe (| head) ends the monitor quietly.
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(());
            }
        }
    }
}

/// The five-tuple attributes of one connection (IPv4 addresses as the u32
/// attributes, IPv6 ones as their *-addr6 forms).
fn conn_selector(proto: &str, local: &str, remote: &str) -> Result<Vec<Attr>, Fail> {
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        p => return Err(usage(format!("'{p}' is not tcp or udp"))),
    };
    let (la, lp) = parse_endpoint(local).map_err(usage)?;
    let (ra, rp) = parse_endpoint(remote).map_err(usage)?;
    if la.is_ipv6() != ra.is_ipv6() {
        return Err(usage(format!(
            "{local} and {remote} are of two families: a connection has one"
        )));
    }
    Ok(vec![
        Attr::Proto(proto),
        Attr::addr(la, Attr::LocalAddr, Attr::LocalAddr6),
        Attr::LocalPort(lp),
        Attr::addr(ra, Attr::RemoteAddr, Attr::RemoteAddr6),
        Attr::RemotePort(rp),
    ])
}

fn policy(proto: &str, local: &str, remote: &str, policy: &str) -> Result<(), Fail> {
    let mut sel = conn_selector(proto, local, remote)?;
    let p = family::POLICIES
        .iter()
        .position(|n| *n == policy)
        .ok_or_else(|| usage(format!("'{policy}' is not abort, preempt or default")))?;
    sel.push(Attr::Policy(p as u8));
    Client::open()?.set(sel)?;
    println!("{proto} {local} -> {remote}: conflict policy {policy}");
    Ok(())
}

fn helper(proto: &str, local: &str, remote: &str, helper: &str) -> Result<(), Fail> {
    let mut sel = conn_selector(proto, local, remote)?;
    let h = family::HELPERS
        .iter()
        .position(|n| *n == helper)
        .ok_or_else(|| {
            usage(format!(
                "'{helper}' is not none, keepalive, stop or default"
            ))
        })?;
    sel.push(Attr::Helper(h as u8));
    Client::open()?.set(sel)?;
    println!("{proto} {local} -> {remote}: helper {helper} while the peer is suspended");
    Ok(())
}

fn suspend(pid: Option<u32>, conn: Option<Vec<String>>, addr: Option<IpAddr>) -> Result<(), Fail> {
    let (sel, what) = match (pid, conn, addr) {
        (Some(p), None, None) => (vec![Attr::Pid(p)], format!("of process {p}")),
        (None, Some(c), None) => (
            conn_selector(&c[0], &c[1], &c[2])?,
            format!("{} {} -> {}", c[0], c[1], c[2]),
        ),
        (None, None, Some(a)) => (
            vec![Attr::addr(a, Attr::LocalAddr, Attr::LocalAddr6)],
            format!("of {a}"),
        ),
        _ => {
            return Err(usage(
                "suspend ADDR, suspend --pid PID or suspend --conn PROTO LOCAL REMOTE".into(),
            ))
        }
    };
    let n = Client::open()?.suspend(sel)?;
    println!(
        "suspending {n} connection(s) {what}; 'vnatctl monitor' shows what each peer does, \
         'vnatctl resume' brings them back"
    );
    Ok(())
}

fn resume(pid: Option<u32>, conn: Option<Vec<String>>, addrs: &[IpAddr]) -> Result<(), Fail> {
    let (sel, to, what) = match (pid, conn, addrs) {
        (None, None, [from, to @ ..]) if to.len() <= 1 => (
            vec![Attr::addr(*from, Attr::LocalAddr, Attr::LocalAddr6)],
            to.first(),
            format!("of {from}"),
        ),
        (Some(p), None, to) if to.len() <= 1 => {
            (vec![Attr::Pid(p)], to.first(), format!("of process {p}"))
        }
        (None, Some(c), to) if to.len() <= 1 => (
            conn_selector(&c[0], &c[1], &c[2])?,
            to.first(),
            format!("{} {} -> {}", c[0], c[1], c[2]),
        ),
        (None, None, _) => return Err(usage("resume FROM [TO]: one or two addresses".into())),
        _ => {
            return Err(usage(
                "with --pid or --conn, give at most the new address".into(),
            ))
        }
    };
    let mut all = sel;
    all.extend(to.map(|a| Attr::addr(*a, Attr::NewAddr, Attr::NewAddr6)));
    let (n, at) = Client::open()?.resume(all)?;
    let at = at
        .or(to.copied())
        .map_or_else(|| "the new address".into(), |a| a.to_string());
    println!("resuming {n} connection(s) {what} at {at}; 'vnatctl monitor' shows them resume");
    Ok(())
}

fn stats(json: bool) -> Result<(), Fail> {
    let stats = Client::open()?.stats()?;
    if json {
        let m: serde_json::Map<String, serde_json::Value> =
            stats.into_iter().map(|(k, v)| (k, v.into())).collect();
        println!("{}", serde_json::Value::Object(m));
    } else {
        let rows: Vec<Vec<String>> = stats
            .into_iter()
            .map(|(k, v)| vec![k, v.to_string()])
            .collect();
        print!("{}", render::table(&rows));
    }
    Ok(())
}

fn knob_path(knob: &str) -> Result<String, Fail> {
    if knob.is_empty() || knob.contains('/') || knob.starts_with('.') {
        return Err(usage(format!("'{knob}' is not a knob name")));
    }
    let p = format!("{CONFIGFS}/{knob}");
    if fs::metadata(CONFIGFS).is_err() {
        let root = "/sys/kernel/config";
        let mounted = fs::read_dir(root).is_ok_and(|mut d| d.next().is_some());
        return Err(if mounted {
            Fail(
                3,
                format!("{CONFIGFS} not found: the vnat module is not loaded (insmod vnat.ko)"),
            )
        } else {
            Fail(
                3,
                format!(
                    "configfs is not mounted at {root}: mount it (mount -t configfs none {root}); \
                     under 'ip netns exec', which mounts its own /sys, run 'vnatctl config' \
                     outside it: the knobs are global"
                ),
            )
        });
    }
    if fs::metadata(&p).is_err() {
        return Err(usage(format!(
            "no knob '{knob}'; 'vnatctl config get' lists them"
        )));
    }
    Ok(p)
}

fn config(op: ConfigOp) -> Result<(), Fail> {
    match op {
        ConfigOp::Get { knob: Some(k) } => {
            let v = fs::read_to_string(knob_path(&k)?).map_err(|e| Fail(1, e.to_string()))?;
            print!("{v}");
        }
        ConfigOp::Get { knob: None } => {
            knob_path("vcmp_port")?;
            let mut names: Vec<String> = fs::read_dir(CONFIGFS)
                .map_err(|e| Fail(1, e.to_string()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n != "counters")
                .collect();
            names.sort();
            let rows: Vec<Vec<String>> = names
                .into_iter()
                .map(|n| {
                    let v = fs::read_to_string(format!("{CONFIGFS}/{n}")).unwrap_or_default();
                    vec![n, v.trim().to_string()]
                })
                .collect();
            print!("{}", render::table(&rows));
        }
        ConfigOp::Set { knob, value } => {
            let p = knob_path(&knob)?;
            let old = fs::read_to_string(&p).unwrap_or_default();
            if let Err(e) = fs::write(&p, &value) {
                let code = match e.raw_os_error() {
                    Some(libc::EPERM | libc::EACCES) => 4,
                    _ => 1,
                };
                return Err(Fail(
                    code,
                    format!(
                        "{knob}: '{value}' refused: {e}; the value stays {} (the kernel log says why)",
                        old.trim()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Fail> {
    if let Some(ns) = &cli.netns {
        enter_netns(ns)?;
    }
    match cli.cmd {
        Cmd::List {
            json,
            state,
            proto,
            addr,
            port,
            pid,
        } => list(
            &Filter {
                state,
                proto,
                addr,
                port,
                pid,
            },
            json,
        ),
        Cmd::Monitor { json, count } => monitor(json, count),
        Cmd::Resume { pid, conn, addrs } => resume(pid, conn, &addrs),
        Cmd::Policy {
            proto,
            local,
            remote,
            policy: p,
        } => policy(&proto, &local, &remote, &p),
        Cmd::Suspend { pid, conn, addr } => suspend(pid, conn, addr),
        Cmd::Helper {
            proto,
            local,
            remote,
            helper: h,
        } => helper(&proto, &local, &remote, &h),
        Cmd::Export { pid, conn, output } => {
            let conn = conn
                .map(|c| conn_selector(&c[0], &c[1], &c[2]))
                .transpose()?;
            migrate::export(&pid, conn, output.as_deref())
        }
        Cmd::Import { file } => migrate::import(file.as_deref()),
        Cmd::Stats { json } => stats(json),
        Cmd::Config { op } => config(op),
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "vnatctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let r = if criu::is_action_script() {
        criu::action_script()
    } else {
        run(Cli::parse())
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("vnatctl: {msg}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vnatctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn resume_forms() {
        let c = parse(&["-n", "cli", "resume", "10.0.1.2", "10.0.2.2"]).unwrap();
        assert_eq!(c.netns.as_deref(), Some("cli"));
        assert!(
            matches!(c.cmd, Cmd::Resume { pid: None, conn: None, ref addrs } if addrs.len() == 2)
        );
        let c = parse(&["resume", "--pid", "42", "10.0.2.2"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Resume { pid: Some(42), .. }));
        let c = parse(&[
            "resume",
            "--conn",
            "tcp",
            "10.0.1.2:1",
            "10.0.0.2:2",
            "10.0.2.2",
        ])
        .unwrap();
        assert!(
            matches!(c.cmd, Cmd::Resume { conn: Some(ref v), ref addrs, .. } if v.len() == 3 && addrs.len() == 1)
        );
        assert!(parse(&["resume", "--pid", "1", "--conn", "tcp", "a", "b", "10.0.0.1"]).is_err());
        let c = parse(&["resume", "--pid", "42"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Resume { pid: Some(42), ref addrs, .. } if addrs.is_empty()));
    }

    #[test]
    fn suspend_forms() {
        let c = parse(&["suspend", "10.0.1.2"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Suspend {
                pid: None,
                conn: None,
                addr: Some(_)
            }
        ));
        let c = parse(&["suspend", "--pid", "7"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Suspend {
                pid: Some(7),
                addr: None,
                ..
            }
        ));
        let c = parse(&["suspend", "--conn", "udp", "10.0.1.2:1", "10.0.0.2:2"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Suspend { conn: Some(ref v), .. } if v.len() == 3));
        assert!(parse(&["suspend", "10.0.1.2", "10.0.2.2"]).is_err());
        for bad in [
            suspend(None, None, None),
            suspend(Some(1), None, Some("10.0.0.1".parse().unwrap())),
        ] {
            let Err(Fail(code, msg)) = bad else {
                panic!("accepted a bad selector");
            };
            assert_eq!(code, 2);
            assert!(msg.starts_with("suspend ADDR"), "{msg}");
        }
        let c = parse(&["config", "set", "helper_timeout_s", "-1"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::Config { op: ConfigOp::Set { ref value, .. } } if value == "-1")
        );
        let c = parse(&["helper", "tcp", "10.0.0.2:21", "10.0.1.2:4", "stop"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Helper { ref helper, .. } if helper == "stop"));
        assert!(parse(&["helper", "tcp", "10.0.0.2:21", "10.0.1.2:4", "pause"]).is_err());
    }

    #[test]
    fn bad_addresses_are_usage_errors() {
        let e = parse(&["resume", "10.0.1", "10.0.2.2"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("'10.0.1' is not an IPv4 address"),
            "{e}"
        );
        assert!(parse(&["list", "--state", "sleeping"]).is_err());
        assert_eq!(
            parse_endpoint("10.0.0.1:80"),
            Ok(("10.0.0.1".parse().unwrap(), 80))
        );
        assert!(parse_endpoint("10.0.0.1").is_err());
        assert!(parse_endpoint("10.0.0.1:99999").is_err());
    }

    #[test]
    fn ipv6_addresses_and_endpoints() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_addr("2001:db8::1"), Ok(v6));
        assert_eq!(parse_addr("[2001:db8::1]"), Ok(v6));
        // IPv4-mapped: the IPv4 address, sent as such.
        assert_eq!(
            parse_addr("::ffff:10.0.0.1"),
            Ok("10.0.0.1".parse().unwrap())
        );
        assert!(parse_addr("2001:db8::g")
            .unwrap_err()
            .contains("is not an IPv4 address, nor an IPv6 one"));
        assert_eq!(parse_endpoint("[2001:db8::1]:80"), Ok((v6, 80)));
        // The last group is no port without brackets.
        assert!(parse_endpoint("2001:db8::1:80").is_err());
        assert!(parse_endpoint("[2001:db8::1]").is_err());
        assert!(parse_endpoint("[10.0.0.1]:80").is_err());
        let c = parse(&["resume", "2001:db8:1::2", "2001:db8:2::2"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::Resume { ref addrs, .. } if addrs.iter().all(IpAddr::is_ipv6))
        );
        let c = parse(&["suspend", "2001:db8:1::2"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Suspend { addr: Some(a), .. } if a.is_ipv6()));
        let c = parse(&["list", "--addr", "2001:db8:1::2"]).unwrap();
        assert!(matches!(c.cmd, Cmd::List { addr: Some(a), .. } if a.is_ipv6()));
    }

    #[test]
    fn conn_selectors_of_either_family() {
        let Ok(v4) = conn_selector("tcp", "10.0.1.2:1", "10.0.0.2:2") else {
            panic!("an IPv4 five-tuple refused");
        };
        assert_eq!(
            v4,
            [
                Attr::Proto(6),
                Attr::LocalAddr("10.0.1.2".parse().unwrap()),
                Attr::LocalPort(1),
                Attr::RemoteAddr("10.0.0.2".parse().unwrap()),
                Attr::RemotePort(2),
            ]
        );
        let Ok(v6) = conn_selector("udp", "[2001:db8:1::2]:1", "[2001:db8::2]:2") else {
            panic!("an IPv6 five-tuple refused");
        };
        assert_eq!(
            v6,
            [
                Attr::Proto(17),
                Attr::LocalAddr6("2001:db8:1::2".parse().unwrap()),
                Attr::LocalPort(1),
                Attr::RemoteAddr6("2001:db8::2".parse().unwrap()),
                Attr::RemotePort(2),
            ]
        );
        let Err(Fail(code, msg)) = conn_selector("tcp", "10.0.1.2:1", "[2001:db8::2]:2") else {
            panic!("a five-tuple of two families accepted");
        };
        assert_eq!(code, 2);
        assert!(msg.contains("two families"), "{msg}");
    }

    #[test]
    fn resume_needs_the_right_number_of_addresses() {
        let Err(Fail(code, msg)) = resume(None, None, &[]) else {
            panic!("accepted no address without a selector");
        };
        assert_eq!(
            (code, msg.as_str()),
            (2, "resume FROM [TO]: one or two addresses")
        );
        let two = ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let Err(Fail(code, _)) = resume(Some(1), None, &two) else {
            panic!("accepted FROM with --pid");
        };
        assert_eq!(code, 2);
    }

    #[test]
    fn knob_names_stay_in_configfs() {
        for bad in ["../x", "", ".hidden", "a/b"] {
            let Err(Fail(code, _)) = knob_path(bad) else {
                panic!("{bad} accepted");
            };
            assert_eq!(code, 2);
        }
    }

    #[test]
    fn help_has_examples_and_exit_codes() {
        let h = Cli::command().render_long_help().to_string();
        assert!(h.contains("vnatctl resume 10.0.1.2 10.0.2.2"));
        assert!(h.contains("Exit status"));
        assert!(
            h.contains("--action-script \"$(command -v vnatctl)\""),
            "{h}"
        );
        assert!(h.contains("CRTOOLS_SCRIPT_ACTION"));
    }

    #[test]
    fn export_and_import_forms() {
        let c = parse(&["export"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::Export { ref pid, conn: None, output: None } if pid.is_empty())
        );
        let c = parse(&["export", "--pid", "7", "--pid", "8", "-o", "x.img"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::Export { ref pid, conn: None, output: Some(ref o) } if pid == &[7, 8] && o.to_str() == Some("x.img"))
        );
        assert!(parse(&["export", "--pid", "me"]).is_err());
        assert!(parse(&["export", "x.img"]).is_err());
        let c = parse(&[
            "export",
            "--conn",
            "tcp",
            "10.0.1.2:40000",
            "10.0.0.2:5000",
            "-o",
            "c.img",
        ])
        .unwrap();
        assert!(
            matches!(c.cmd, Cmd::Export { ref pid, conn: Some(ref v), output: Some(_) } if pid.is_empty() && v == &["tcp", "10.0.1.2:40000", "10.0.0.2:5000"])
        );
        let c = parse(&[
            "export",
            "--conn",
            "udp",
            "[2001:db8:1::2]:1",
            "[2001:db8::2]:2",
        ])
        .unwrap();
        assert!(
            matches!(c.cmd, Cmd::Export { conn: Some(ref v), output: None, .. } if v.len() == 3)
        );
        // One connection or processes, not both, in either order; --conn
        // takes all three.
        let conn = ["--conn", "tcp", "10.0.1.2:1", "10.0.0.2:2"];
        for args in [
            [&["export", "--pid", "7"][..], &conn[..]].concat(),
            [&["export"][..], &conn[..], &["--pid", "7"][..]].concat(),
        ] {
            let e = parse(&args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        }
        assert!(parse(&["export", "--conn", "tcp", "10.0.1.2:1"]).is_err());
        assert!(parse(&[
            "export",
            "--conn",
            "tcp",
            "10.0.1.2:1",
            "10.0.0.2:2",
            "x.img"
        ])
        .is_err());
        let c = parse(&["import", "x.img"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Import { file: Some(ref f) } if f.to_str() == Some("x.img")));
        let c = parse(&["-n", "new", "import"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Import { file: None }));
        assert!(parse(&["import", "a", "b"]).is_err());
    }
}
