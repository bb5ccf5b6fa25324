// SPDX-License-Identifier: GPL-2.0

//! `vnatctl` as CRIU's action script (`criu dump|restore --action-script
//! vnatctl`): CRIU runs it with no arguments and the action in
//! `CRTOOLS_SCRIPT_ACTION`, its image directory in `CRTOOLS_IMAGE_DIR` and
//! the root task's pid in `CRTOOLS_INIT_PID`.
//!
//! - `post-dump`: saves the connections of the dumped process tree to
//!   `vnat-connections.img` in the image directory (the file of `vnatctl
//!   export`), after suspending them if `VNAT_CRIU_SUSPEND=1`. A failure
//!   makes CRIU abort the dump: the processes keep running here.
//! - `pre-restore`: imports that file, before CRIU restores the sockets. A
//!   failure makes CRIU abort the restore.
//! - `post-restore`: resumes the restored processes' connections at the
//!   address the route chooses, and waits for them (`VNAT_CRIU_WAIT_MS`).
//! - anything else: nothing.

use crate::{
    family::{Attr, Exported},
    generated::event,
    migrate::{self, describe, export_pids, image, nothing_to_do, process_tree, write_secret},
    nl::{Client, Error},
    render, Fail,
};
use std::{
    collections::HashMap,
    env, fs, io,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use vnat_proto::export::Saved;

/// The file in CRIU's image directory.
pub const IMAGE: &str = "vnat-connections.img";

/// How long `post-restore` waits for the connections by default.
const WAIT_MS: u64 = 5000;

/// Whether this run is CRIU's: no arguments, and `CRTOOLS_SCRIPT_ACTION`
/// set.
pub fn is_action_script() -> bool {
    env::args_os().len() == 1 && env::var_os("CRTOOLS_SCRIPT_ACTION").is_some()
}

/// Does what CRIU's action (`CRTOOLS_SCRIPT_ACTION`) asks.
pub fn action_script() -> Result<(), Fail> {
    act(&env::var("CRTOOLS_SCRIPT_ACTION").unwrap_or_default())
}

fn act(action: &str) -> Result<(), Fail> {
    match action {
        "post-dump" => post_dump(),
        "pre-restore" => pre_restore(),
        "post-restore" => post_restore(),
        _ => Ok(()),
    }
}

fn var(name: &str) -> Result<String, Fail> {
    env::var(name).map_err(|_| {
        Fail(
            2,
            format!("{name} is not set: is this run CRIU's action script (criu --action-script)?"),
        )
    })
}

/// `$CRTOOLS_IMAGE_DIR/vnat-connections.img`.
fn image_path() -> Result<PathBuf, Fail> {
    Ok(Path::new(&var("CRTOOLS_IMAGE_DIR")?).join(IMAGE))
}

/// The pids of the process tree CRIU dumps or restored.
fn tree() -> Result<Vec<u32>, Fail> {
    let v = var("CRTOOLS_INIT_PID")?;
    let root = v
        .parse()
        .map_err(|_| Fail(2, format!("CRTOOLS_INIT_PID={v} is not a pid")))?;
    process_tree(Path::new("/proc"), root).map_err(|m| Fail(1, m))
}

/// Whether the image file is there.
fn exists(path: &Path) -> Result<bool, Fail> {
    match fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Fail(1, format!("{}: {e}", path.display()))),
    }
}

/// `VNAT_CRIU_SUSPEND`: 1 suspends the connections before the dump saves
/// them; unset, empty or 0 does not.
fn suspend_wanted(v: Option<&str>) -> Result<bool, Fail> {
    match v {
        Some("1") => Ok(true),
        None | Some("" | "0") => Ok(false),
        Some(v) => Err(Fail(
            2,
            format!(
                "VNAT_CRIU_SUSPEND={v}: 1 suspends the connections before the dump, 0 or \
                 nothing does not"
            ),
        )),
    }
}

/// `VNAT_CRIU_WAIT_MS`, or the default (said so if the value is bad: a
/// typo is no reason to kill restored processes).
fn wait_ms(v: Option<&str>) -> u64 {
    match v.map(str::parse) {
        None => WAIT_MS,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            eprintln!(
                "vnatctl: VNAT_CRIU_WAIT_MS={} is not a number of milliseconds: waiting \
                 {WAIT_MS}",
                v.unwrap_or_default()
            );
            WAIT_MS
        }
    }
}

/// Refuses a dump with an IPv6 connection: `conn-import` takes IPv4 ones
/// only for now.
fn refuse_ipv6(saved: &[(Exported, Saved)]) -> Result<(), Fail> {
    match saved.iter().find(|(_, s)| s.local_virtual.is_v6()) {
        Some((_, s)) => Err(Fail(
            1,
            format!(
                "moving a process's IPv6 connections is not supported yet ({}): the dump is \
                 aborted, the processes keep running here",
                describe(s)
            ),
        )),
        None => Ok(()),
    }
}

/// Saves the connections of `pids` to `path`; how many.
fn save(c: &mut Client, pids: &[u32], path: &Path) -> Result<usize, Fail> {
    let saved = export_pids(c, pids)?;
    refuse_ipv6(&saved)?;
    let data = image(&saved.iter().map(|(e, _)| &e.saved).collect::<Vec<_>>());
    let r = write_secret(path, &data);
    migrate::wipe(data);
    r.map(|()| saved.len())
}

/// `conn-suspend` of each of `pids`; the pids that had connections to
/// suspend. On an error, those are resumed.
fn suspend(c: &mut Client, pids: &[u32]) -> Result<Vec<u32>, Fail> {
    let mut done = Vec::new();
    for &p in pids {
        match c.suspend(vec![Attr::Pid(p)]) {
            Ok(0) => {}
            Ok(_) => done.push(p),
            Err(e) if nothing_to_do(&e) => {}
            Err(e) => {
                undo_suspend(c, &done);
                let Fail(code, msg) = e.into();
                return Err(Fail(code, format!("suspending process {p}: {msg}")));
            }
        }
    }
    Ok(done)
}

/// Resumes where they are the connections a failed dump suspended.
fn undo_suspend(c: &mut Client, pids: &[u32]) {
    for &p in pids {
        if let Err(e) = c.resume(vec![Attr::Pid(p)]) {
            if !nothing_to_do(&e) {
                eprintln!(
                    "vnatctl: the connections of process {p} stay suspended ({e}): \
                     'vnatctl resume --pid {p}' resumes them"
                );
            }
        }
    }
}

fn post_dump() -> Result<(), Fail> {
    let path = image_path()?;
    let suspend_first = suspend_wanted(env::var("VNAT_CRIU_SUSPEND").ok().as_deref())?;
    let pids = tree()?;
    let mut c = Client::open()?;
    let n = if suspend_first {
        // An IPv6 connection aborts the dump before anything is suspended.
        refuse_ipv6(&export_pids(&mut c, &pids)?)?;
        let suspended = suspend(&mut c, &pids)?;
        save(&mut c, &pids, &path).inspect_err(|_| undo_suspend(&mut c, &suspended))?
    } else {
        save(&mut c, &pids, &path)?
    };
    eprintln!("vnatctl: saved {n} connections of {} processes", pids.len());
    Ok(())
}

fn pre_restore() -> Result<(), Fail> {
    let path = image_path()?;
    if !exists(&path)? {
        return Ok(());
    }
    let records = migrate::load(Some(&path))?;
    if !records.is_empty() {
        migrate::import_records(&mut Client::open()?, &records)?;
    }
    eprintln!(
        "vnatctl: imported {} connections from {}",
        records.len(),
        path.display()
    );
    Ok(())
}

/// How the connections a resume covered ended, by virtual endpoints:
/// true resumed, false failed (the last event of each wins).
type Outcomes = HashMap<(u8, SocketAddr, SocketAddr), bool>;

/// Counts the `resumed` and `failed` events of the processes `pids` until
/// `total` connections have one, or `deadline`.
fn wait_resumed(
    events: &mut Client,
    pids: &[u32],
    total: usize,
    deadline: Instant,
) -> Result<Outcomes, Fail> {
    let mut seen = Outcomes::new();
    while seen.len() < total && events.wait_events(deadline)? {
        let batch = match events.events() {
            Ok(b) => b,
            Err(Error::Io(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                eprintln!("vnatctl: events were lost: some connections may be counted as pending");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for e in batch {
            let ok = match e.event {
                event::RESUMED => true,
                event::FAILED => false,
                _ => continue,
            };
            if pids.contains(&e.conn.pid) {
                if !ok {
                    eprintln!("vnatctl: {}", render::event_line(&e));
                }
                seen.insert((e.conn.proto, e.conn.local, e.conn.remote), ok);
            }
        }
    }
    Ok(seen)
}

/// The summary line of `post-restore`.
fn summary(resumed: usize, failed: usize, pending: usize, at: &[IpAddr]) -> String {
    let at = if at.is_empty() {
        "the address the route chose".to_string()
    } else {
        at.iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("vnatctl: {resumed} connections resumed at {at}, {failed} failed, {pending} pending")
}

fn post_restore() -> Result<(), Fail> {
    // Nothing imported, nothing to resume.
    let path = image_path()?;
    if !exists(&path)? || migrate::load(Some(&path))?.is_empty() {
        return Ok(());
    }
    let wait = Duration::from_millis(wait_ms(env::var("VNAT_CRIU_WAIT_MS").ok().as_deref()));
    let pids = tree()?;
    // The events of the resumes, from before the first: a socket of its
    // own, which the requests' replies do not go through.
    let mut events = Client::open()?;
    events.subscribe()?;
    let mut c = Client::open()?;
    let mut total = 0usize;
    let mut at = Vec::new();
    for &p in &pids {
        match c.resume(vec![Attr::Pid(p)]) {
            Ok((n, a)) => {
                total += n as usize;
                if let Some(a) = a.filter(|a| n > 0 && !at.contains(a)) {
                    at.push(a);
                }
            }
            Err(e) if nothing_to_do(&e) => {}
            Err(e) => {
                let Fail(code, msg) = e.into();
                return Err(Fail(code, format!("resuming process {p}: {msg}")));
            }
        }
    }
    let seen = wait_resumed(&mut events, &pids, total, Instant::now() + wait)?;
    let resumed = seen.values().filter(|ok| **ok).count();
    let failed = seen.len() - resumed;
    let pending = total.saturating_sub(seen.len());
    eprintln!("{}", summary(resumed, failed, pending, &at));
    if failed + pending > 0 {
        eprintln!(
            "vnatctl: the restored processes run meanwhile; VNAT keeps trying to resume the \
             others ('vnatctl list --pid PID' and 'vnatctl monitor' show how it goes)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspend_is_asked_with_1() {
        assert!(matches!(suspend_wanted(Some("1")), Ok(true)));
        for off in [None, Some(""), Some("0")] {
            assert!(matches!(suspend_wanted(off), Ok(false)));
        }
        let Err(Fail(code, msg)) = suspend_wanted(Some("yes")) else {
            panic!("VNAT_CRIU_SUSPEND=yes accepted");
        };
        assert_eq!(code, 2);
        assert!(msg.starts_with("VNAT_CRIU_SUSPEND=yes"), "{msg}");
    }

    #[test]
    fn the_wait_has_a_default() {
        assert_eq!(wait_ms(None), 5000);
        assert_eq!(wait_ms(Some("250")), 250);
        assert_eq!(wait_ms(Some("soon")), 5000);
    }

    #[test]
    fn the_summary_names_the_address() {
        assert_eq!(
            summary(3, 1, 0, &["10.0.2.2".parse().unwrap()]),
            "vnatctl: 3 connections resumed at 10.0.2.2, 1 failed, 0 pending"
        );
        assert!(summary(0, 0, 2, &[]).contains("at the address the route chose, 0 failed"));
    }

    #[test]
    fn other_actions_do_nothing() {
        // Nothing read, nothing asked of the kernel: nothing to fail on.
        for a in [
            "pre-dump",
            "network-lock",
            "setup-namespaces",
            "pre-resume",
            "",
        ] {
            assert!(act(a).is_ok(), "{a}");
        }
    }

    #[test]
    fn an_ipv6_connection_aborts_the_dump() {
        use crate::{family::tests::sample, family::Record, migrate::tests::saved};
        use vnat_proto::vcmp::Endpoint;
        let v4 = saved(40000);
        let ex = |s: &Saved| Exported {
            conn: sample(),
            saved: Record::new(s.encode().to_vec()),
        };
        let mut all = vec![(ex(&v4), v4)];
        assert!(refuse_ipv6(&all).is_ok());
        let v6: IpAddr = "2001:db8:1::2".parse().unwrap();
        let peer: IpAddr = "2001:db8::2".parse().unwrap();
        let s = Saved {
            local_virtual: Endpoint::from_ip(v6, 40000),
            remote_virtual: Endpoint::from_ip(peer, 5000),
            local_physical: Endpoint::from_ip(v6, 40000),
            remote_physical: Endpoint::from_ip(peer, 5000),
            ..saved(40000)
        };
        all.push((ex(&s), s));
        let Err(Fail(code, msg)) = refuse_ipv6(&all) else {
            panic!("an IPv6 connection saved");
        };
        assert_eq!(code, 1);
        assert!(
            msg.starts_with(
                "moving a process's IPv6 connections is not supported yet \
                 (tcp [2001:db8:1::2]:40000 -> [2001:db8::2]:5000)"
            ),
            "{msg}"
        );
    }
}
