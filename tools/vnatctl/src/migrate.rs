// SPDX-License-Identifier: GPL-2.0

//! Moving a process to another host with its connections: `vnatctl export`
//! and `vnatctl import`, the file they share, and the process tree a
//! checkpoint takes.
//!
//! The file: the 8 bytes `VNATCONN`, then the connections' saved states
//! back to back, each exactly as `conn-export` gave it (the self-delimiting
//! records of `vnat/export.rs`, 186 bytes in version 1). It carries the
//! connections' keys: it is created mode 0600, and its records are wiped
//! from memory once used.

use crate::{
    family::{Attr, Exported, Record},
    nl::{Client, Error},
    Fail,
};
use std::{
    fs,
    io::{self, IsTerminal, Read, Write},
    net::SocketAddr,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};
use vnat_proto::export::Saved;

/// The first bytes of the file.
pub const MAGIC: &[u8; 8] = b"VNATCONN";

/// "tcp 10.0.1.2:40000 -> 10.0.0.2:5000": the connection of a saved state,
/// by its virtual endpoints.
pub fn describe(s: &Saved) -> String {
    let proto = match s.proto {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        p => format!("proto-{p}"),
    };
    let ep = |e: &vnat_proto::vcmp::Endpoint| SocketAddr::new(e.addr, e.port);
    format!(
        "{proto} {} -> {}",
        ep(&s.local_virtual),
        ep(&s.remote_virtual)
    )
}

/// Decodes `e`'s record as an import will: `Err` says why this
/// vnatctl cannot read what the kernel saved.
pub fn decode_exported(e: &Exported) -> Result<Saved, Fail> {
    let c = &e.conn;
    match Saved::decode(e.saved.bytes()) {
        Ok((s, n)) if n == e.saved.bytes().len() => Ok(s),
        Ok(_) => Err(Fail(
            1,
            format!(
                "the kernel saved {} {} -> {} as {} bytes, not one record: is this \
                 vnatctl older than the module?",
                c.proto_name(),
                c.local,
                c.remote,
                e.saved.bytes().len()
            ),
        )),
        Err(r) => Err(Fail(
            1,
            format!(
                "the kernel saved {} {} -> {} as a record this vnatctl cannot read ({}): \
                 is it older than the module?",
                c.proto_name(),
                c.local,
                c.remote,
                r.why().to_string_lossy()
            ),
        )),
    }
}

/// The file's bytes: the magic, then the records.
pub fn image(records: &[&Record]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for r in records {
        out.extend_from_slice(r.bytes());
    }
    out
}

/// The records of a file, each checked as the kernel will; `Err` names
/// the first bad one (from 1) and why, and nothing is to be sent then.
pub fn read_image(b: &[u8]) -> Result<Vec<(Record, Saved)>, String> {
    let Some(mut rest) = b.strip_prefix(MAGIC) else {
        return Err(if b.is_empty() {
            "the file is empty: not a file of vnatctl export".into()
        } else if b.len() < MAGIC.len() && MAGIC.starts_with(b) {
            "the file is truncated: it ends inside its VNATCONN header".into()
        } else {
            "not a file of vnatctl export: it does not begin with VNATCONN".into()
        });
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let at = b.len() - rest.len();
        let (s, n) = Saved::decode(rest).map_err(|r| {
            format!(
                "record {} (at byte {at}) is refused: {}; nothing was imported",
                out.len() + 1,
                r.why().to_string_lossy()
            )
        })?;
        out.push((Record::new(rest[..n].to_vec()), s));
        rest = &rest[n..];
    }
    Ok(out)
}

/// Creates (or truncates) `path` for secrets: mode 0600, also if it was
/// there with another.
pub fn create_secret(path: &Path) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let m = f.metadata()?;
    if m.is_file() && m.permissions().mode() & 0o7777 != 0o600 {
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Writes `data` to a new secret file `path`; a file half written is
/// removed.
pub fn write_secret(path: &Path, data: &[u8]) -> Result<(), Fail> {
    let fail = |e: io::Error| Fail(1, format!("{}: {e}", path.display()));
    let mut f = create_secret(path).map_err(fail)?;
    if let Err(e) = f.write_all(data).and_then(|()| f.sync_all()) {
        if f.metadata().is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(path);
        }
        return Err(fail(e));
    }
    Ok(())
}

/// `conn-export` with selector `sel` (every connection if empty), each
/// record checked.
fn export_selected(c: &mut Client, sel: Vec<Attr>) -> Result<Vec<(Exported, Saved)>, Fail> {
    c.export(sel)?
        .into_iter()
        .map(|e| decode_exported(&e).map(|s| (e, s)))
        .collect()
}

/// `conn-export` of each of `pids` (every connection if empty), each
/// record checked; a pid given twice is asked once.
pub fn export_pids(c: &mut Client, pids: &[u32]) -> Result<Vec<(Exported, Saved)>, Fail> {
    if pids.is_empty() {
        return export_selected(c, vec![]);
    }
    let mut asked = Vec::new();
    let mut out = Vec::new();
    for &p in pids {
        if asked.contains(&p) {
            continue;
        }
        asked.push(p);
        out.extend(export_selected(c, vec![Attr::Pid(p)])?);
    }
    Ok(out)
}

/// `vnatctl export`: the connections of `pids` (every connection if
/// empty), or the one connection `conn` (its five-tuple attributes) if
/// given.
pub fn export(pids: &[u32], conn: Option<Vec<Attr>>, output: Option<&Path>) -> Result<(), Fail> {
    if output.is_none() && io::stdout().is_terminal() {
        return Err(Fail(
            2,
            "the saved connections are binary, and carry their keys: write them to a file \
             (-o FILE) or a pipe, not a terminal"
                .into(),
        ));
    }
    let mut c = Client::open()?;
    let saved = match conn {
        Some(sel) => export_selected(&mut c, sel)?,
        None => export_pids(&mut c, pids)?,
    };
    let data = image(&saved.iter().map(|(e, _)| &e.saved).collect::<Vec<_>>());
    match output {
        Some(p) => write_secret(p, &data)?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&data)
                .and_then(|()| out.flush())
                .map_err(|e| Fail(1, format!("standard output: {e}")))?;
        }
    }
    wipe(data);
    let v6 = saved
        .iter()
        .filter(|(_, s)| s.local_virtual.is_v6())
        .count();
    let to = output.map_or_else(String::new, |p| format!(" to {}", p.display()));
    eprintln!("vnatctl: saved {} connection(s){to}", saved.len());
    if v6 > 0 {
        eprintln!(
            "vnatctl: {v6} of them IPv6: importing a process's IPv6 connections is not \
             supported yet"
        );
    }
    Ok(())
}

/// Imports the records of a file (already checked: `read_image`); `Err`
/// names the record the kernel refused.
pub fn import_records(c: &mut Client, records: &[(Record, Saved)]) -> Result<(), Fail> {
    for (i, (r, s)) in records.iter().enumerate() {
        c.import(r.bytes()).map_err(|e| {
            let done = match i {
                0 => String::new(),
                1 => "; record 1 was imported (the kernel forgets it in 300 s)".into(),
                n => format!("; records 1 to {n} were imported (the kernel forgets them in 300 s)"),
            };
            let Fail(code, msg) = Fail::from(e);
            Fail(
                code,
                format!("record {} ({}): {msg}{done}", i + 1, describe(s)),
            )
        })?;
    }
    Ok(())
}

/// Reads file `path` (standard input if none), checked whole.
pub fn load(path: Option<&Path>) -> Result<Vec<(Record, Saved)>, Fail> {
    let mut data = Vec::new();
    let (name, r) = match path {
        Some(p) => (p.display().to_string(), fs::read(p).map(|d| data = d)),
        None => {
            if io::stdin().is_terminal() {
                return Err(Fail(
                    2,
                    "import reads the file of 'vnatctl export': give it (import FILE) or \
                     redirect it (import < FILE)"
                        .into(),
                ));
            }
            (
                "standard input".into(),
                io::stdin().lock().read_to_end(&mut data).map(drop),
            )
        }
    };
    r.map_err(|e| Fail(1, format!("{name}: {e}")))?;
    let records = read_image(&data).map_err(|m| Fail(1, format!("{name}: {m}")));
    wipe(data);
    records
}

/// `vnatctl import`.
pub fn import(path: Option<&Path>) -> Result<(), Fail> {
    let records = load(path)?;
    if !records.is_empty() {
        import_records(&mut Client::open()?, &records)?;
    }
    eprintln!(
        "vnatctl: imported {} connection(s): each waits (300 s at most) for its process \
         to be restored here",
        records.len()
    );
    Ok(())
}

/// Zeroes a buffer that held records.
pub(crate) fn wipe(b: Vec<u8>) {
    drop(Record::new(b));
}

/// The pids of the process tree rooted at `root` (itself first, then the
/// others in order), as the
/// `children` files of `proc` (`/proc`) tell: each of its threads'
/// children, and theirs. A process that ended meanwhile is left out; the
/// root must be there.
pub fn process_tree(proc: &Path, root: u32) -> Result<Vec<u32>, String> {
    let children = |pid: u32| -> io::Result<Vec<u32>> {
        let mut out = Vec::new();
        for t in fs::read_dir(proc.join(pid.to_string()).join("task"))? {
            let t = t?.path().join("children");
            let s = match fs::read_to_string(&t) {
                Ok(s) => s,
                // The thread ended.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", t.display()))),
            };
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
        Ok(out)
    };
    let mut tree = vec![root];
    let mut gone = Vec::new();
    let mut i = 0;
    while let Some(&pid) = tree.get(i) {
        match children(pid) {
            Ok(c) => {
                for c in c {
                    if !tree.contains(&c) {
                        tree.push(c);
                    }
                }
            }
            Err(e) if i == 0 => {
                return Err(format!(
                    "cannot read the children of process {root} ({}/{root}/task): {e}",
                    proc.display()
                ))
            }
            Err(e)
                if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                gone.push(pid)
            }
            Err(e) => return Err(format!("process {pid}: {e}")),
        }
        i += 1;
    }
    tree.retain(|p| !gone.contains(p));
    tree[1..].sort_unstable();
    Ok(tree)
}

/// Whether `e` says there is nothing to act on (`ENOENT`: no connection)
/// or it is done already (`EALREADY`).
pub fn nothing_to_do(e: &Error) -> bool {
    matches!(e, Error::Kernel { errno, .. } if *errno == libc::ENOENT || *errno == libc::EALREADY)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vnat_proto::{export, vcmp::Endpoint};

    /// A keyed TCP connection 10.0.1.2:PORT -> 10.0.0.2:5000.
    pub(crate) fn saved(port: u16) -> Saved {
        Saved {
            proto: 6,
            local_virtual: Endpoint::new(0x0a00_0102, port),
            remote_virtual: Endpoint::new(0x0a00_0002, 5000),
            local_physical: Endpoint::new(0x0a00_0202, port),
            remote_physical: Endpoint::new(0x0a00_0002, 5000),
            origin: 0,
            policy: 2,
            helper: 3,
            flags: export::FLAG_KEYED,
            auth: 1,
            asks: false,
            refusals: 0,
            key_id: 7,
            named: Endpoint::new(0x0a00_0202, port),
            sent: 3,
            accepted: 4,
            send_key: [1; export::KEY_LEN],
            recv_key: [2; export::KEY_LEN],
        }
    }

    fn file(records: &[&[u8]]) -> Vec<u8> {
        let rs: Vec<Record> = records.iter().map(|r| Record::new(r.to_vec())).collect();
        image(&rs.iter().collect::<Vec<_>>())
    }

    #[test]
    fn two_good_records_are_read_back() {
        let (a, b) = (saved(40000).encode(), saved(40001).encode());
        let f = file(&[&a, &b]);
        assert_eq!(&f[..8], b"VNATCONN");
        assert_eq!(f.len(), 8 + 2 * export::LEN);
        let r = read_image(&f).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0.bytes(), &a[..]);
        assert_eq!(r[1].0.bytes(), &b[..]);
        assert_eq!(r[1].1, saved(40001));
        assert_eq!(describe(&r[0].1), "tcp 10.0.1.2:40000 -> 10.0.0.2:5000");
        assert!(read_image(b"VNATCONN").unwrap().is_empty());
    }

    #[test]
    fn a_bad_magic_is_refused() {
        let a = saved(40000).encode();
        let mut f = file(&[&a]);
        f[0] = b'X';
        assert!(read_image(&f).unwrap_err().contains("VNATCONN"));
        assert!(read_image(b"VNAT")
            .unwrap_err()
            .contains("ends inside its VNATCONN header"));
        assert!(read_image(b"").unwrap_err().contains("empty"));
        // A bare record is no file.
        assert!(read_image(&a).is_err());
    }

    #[test]
    fn a_truncated_or_bad_record_is_named() {
        let (a, b) = (saved(40000).encode(), saved(40001).encode());
        let f = file(&[&a, &b]);
        let e = read_image(&f[..f.len() - 1]).unwrap_err();
        assert_eq!(
            e,
            format!(
                "record 2 (at byte {}) is refused: {}; nothing was imported",
                8 + export::LEN,
                export::Refused::Truncated.why().to_string_lossy()
            )
        );
        let e = read_image(&f[..10]).unwrap_err();
        assert!(e.starts_with("record 1 (at byte 8) is refused: "), "{e}");
        let mut bad = f.clone();
        bad[8 + export::LEN] = 9;
        let e = read_image(&bad).unwrap_err();
        assert!(
            e.contains("record 2")
                && e.contains(&*export::Refused::Version.why().to_string_lossy()),
            "{e}"
        );
        let mut bad = f;
        bad[8 + 1] = 1;
        let e = read_image(&bad).unwrap_err();
        assert!(
            e.contains("record 1")
                && e.contains(&*export::Refused::Protocol.why().to_string_lossy()),
            "{e}"
        );
    }

    #[test]
    fn records_are_secret_when_printed() {
        let r = Record::new(saved(1).encode().to_vec());
        assert_eq!(format!("{r:?}"), "Record(186 bytes)");
    }

    /// A fake /proc: `tree` lists (pid, thread, children).
    fn fake_proc(name: &str, tree: &[(u32, u32, &str)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("vnatctl-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (pid, tid, children) in tree {
            let d = root.join(format!("{pid}/task/{tid}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("children"), children).unwrap();
        }
        root
    }

    #[test]
    fn the_process_tree_has_every_threads_children() {
        let p = fake_proc(
            "tree",
            &[
                (10, 10, "11 12 "),
                (10, 13, "14"),
                (11, 11, "15 "),
                (12, 12, ""),
                (14, 14, ""),
                (15, 15, "16"),
                (99, 99, "100"),
            ],
        );
        // 16 ended: it is left out, not an error.
        assert_eq!(process_tree(&p, 10).unwrap(), [10, 11, 12, 14, 15]);
        assert_eq!(process_tree(&p, 12).unwrap(), [12]);
        let e = process_tree(&p, 7).unwrap_err();
        assert!(e.contains("process 7"), "{e}");
        fs::remove_dir_all(&p).unwrap();
    }

    #[test]
    fn the_process_tree_of_this_test_has_it() {
        let me = std::process::id();
        let t = process_tree(Path::new("/proc"), me).unwrap();
        assert_eq!(t[0], me);
    }

    #[test]
    fn secret_files_are_0600() {
        let p = std::env::temp_dir().join(format!("vnatctl-test-{}-secret", std::process::id()));
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let Ok(()) = write_secret(&p, b"VNATCONN") else {
            panic!("cannot write {}", p.display());
        };
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&p).unwrap(), b"VNATCONN");
        fs::remove_file(&p).unwrap();
    }
}
