// SPDX-License-Identifier: GPL-2.0

//! How vnatctl prints: aligned tables like `ss -tn`, one JSON document (or
//! one JSON object per line for streams), and the filters of `list`.

use crate::family::{Conn, Event};
use serde_json::{json, Value};
use std::net::IpAddr;

/// Aligns columns; the first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
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

/// `vnatctl list`: virtual endpoints first (what the applications see),
/// then where the connection is on the wire now.
pub fn conn_table(conns: &[Conn]) -> String {
    let mut rows = vec![[
        "Proto",
        "State",
        "Local",
        "Remote",
        "Local now",
        "Remote now",
        "Pid",
        "Origin",
        "Updated",
        "Helper",
        "Key",
    ]
    .map(String::from)
    .to_vec()];
    for c in conns {
        rows.push(vec![
            c.proto_name(),
            state(c),
            c.local.to_string(),
            c.remote.to_string(),
            c.local_phys.to_string(),
            c.remote_phys.to_string(),
            c.pid.to_string(),
            c.origin_name(),
            age(c.update_age_ms),
            helper(c),
            c.auth_name(),
        ]);
    }
    table(&rows)
}

/// The state column: the state, and for a retrying move when it tries
/// again ("resuming, retry in 3.2s").
fn state(c: &Conn) -> String {
    match c.vcmp_next_ms {
        Some(ms) => format!(
            "{}, retry in {}.{}s",
            c.state_name(),
            ms / 1000,
            ms % 1000 / 100
        ),
        None => c.state_name(),
    }
}

/// The helper column: "peer:NAME" on a suspended end (what its peer
/// runs), "NAME" on an end whose peer is suspended, "-" otherwise.
fn helper(c: &Conn) -> String {
    if c.peer_suspended {
        c.helper_name()
    } else if c.state_name() == "suspended" {
        format!("peer:{}", c.helper_name())
    } else {
        "-".into()
    }
}

/// "1.5s ago", or "-" for never.
fn age(ms: Option<u32>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 60_000 => format!("{}.{}s ago", ms / 1000, ms % 1000 / 100),
        Some(ms) if ms < 3_600_000 => format!("{}m ago", ms / 60_000),
        Some(ms) => format!("{}h ago", ms / 3_600_000),
    }
}

pub fn conn_json(c: &Conn) -> Value {
    json!({
        "proto": c.proto_name(),
        "state": c.state_name(),
        "local": c.local.to_string(),
        "remote": c.remote.to_string(),
        "local-phys": c.local_phys.to_string(),
        "remote-phys": c.remote_phys.to_string(),
        "pid": c.pid,
        "origin": c.origin_name(),
        "policy": c.policy_name(),
        "update-age-ms": c.update_age_ms,
        "packets-out": c.packets_out,
        "packets-in": c.packets_in,
        "bytes-out": c.bytes_out,
        "bytes-in": c.bytes_in,
        "vcmp-state": c.vcmp_state_name(),
        "vcmp-attempts": c.vcmp_attempts,
        "vcmp-next-ms": c.vcmp_next_ms,
        "helper": c.helper_name(),
        "peer-suspended": c.peer_suspended,
        "auth": c.auth_name(),
    })
}

pub fn event_json(e: &Event) -> Value {
    let mut v = conn_json(&e.conn);
    v["event"] = json!(e.name());
    if let Some(r) = &e.reason {
        v["reason"] = json!(r);
    }
    v
}

/// One line per event, like `ip monitor`.
pub fn event_line(e: &Event) -> String {
    let c = &e.conn;
    let mut s = format!(
        "{} {} {} -> {}",
        e.name(),
        c.proto_name(),
        c.local,
        c.remote
    );
    if c.local_phys != c.local || c.remote_phys != c.remote {
        s += &format!(" via {} -> {}", c.local_phys, c.remote_phys);
    }
    s += &format!(" {} pid {}", c.state_name(), c.pid);
    if let Some(r) = &e.reason {
        s += &format!(": {r}");
    }
    s
}

/// The filters of `vnatctl list`; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub state: Option<String>,
    pub proto: Option<String>,
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub pid: Option<u32>,
}

impl Filter {
    /// An address or port matches if any endpoint, virtual or physical,
    /// local or remote, has it.
    pub fn matches(&self, c: &Conn) -> bool {
        let eps = [c.local, c.remote, c.local_phys, c.remote_phys];
        self.state.as_ref().is_none_or(|s| *s == c.state_name())
            && self.proto.as_ref().is_none_or(|p| *p == c.proto_name())
            && self.addr.is_none_or(|a| eps.iter().any(|e| e.ip() == a))
            && self.port.is_none_or(|p| eps.iter().any(|e| e.port() == p))
            && self.pid.is_none_or(|p| p == c.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::tests::{sample, sample6};

    #[test]
    fn table_is_aligned_like_ss() {
        let mut native = sample();
        native.state = 0;
        native.local_phys = native.local;
        native.update_age_ms = None;
        assert_eq!(
            conn_table(&[sample(), native.clone()]),
            "Proto  State     Local           Remote         Local now       Remote now     Pid   Origin   Updated   Helper  Key\n\
             tcp    migrated  10.0.1.2:40000  10.0.0.2:5000  10.0.2.2:40000  10.0.0.2:5000  4242  connect  1.5s ago  -       keyed\n\
             tcp    native    10.0.1.2:40000  10.0.0.2:5000  10.0.1.2:40000  10.0.0.2:5000  4242  connect  -         -       keyed\n"
        );
        let mut suspended = native.clone();
        suspended.state = 3;
        suspended.helper = 1;
        let mut kept = native;
        kept.peer_suspended = true;
        kept.helper = 2;
        let t = conn_table(&[suspended, kept]);
        let helpers: Vec<&str> = t
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().nth(9).unwrap())
            .collect();
        assert_eq!(helpers, ["peer:keepalive", "stop"], "{t}");
        assert!(t.lines().nth(1).unwrap().contains(" suspended "), "{t}");
        assert_eq!(age(Some(125_000)), "2m ago");
        assert_eq!(age(Some(7_300_000)), "2h ago");
    }

    #[test]
    fn json_names_the_fields() {
        assert_eq!(
            conn_json(&sample()).to_string(),
            r#"{"auth":"keyed","bytes-in":624,"bytes-out":15000,"helper":"none","local":"10.0.1.2:40000","local-phys":"10.0.2.2:40000","origin":"connect","packets-in":12,"packets-out":10,"peer-suspended":false,"pid":4242,"policy":"default","proto":"tcp","remote":"10.0.0.2:5000","remote-phys":"10.0.0.2:5000","state":"migrated","update-age-ms":1500,"vcmp-attempts":1,"vcmp-next-ms":null,"vcmp-state":"idle"}"#
        );
    }

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        let t = conn_table(&[sample(), sample6()]);
        let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            rows[2][2..6],
            [
                "[2001:db8:1::2]:40000",
                "[2001:db8::2]:5000",
                "[2001:db8:2::2]:40000",
                "[2001:db8::2]:5000"
            ],
            "{t}"
        );
        let j = conn_json(&sample6());
        assert_eq!(j["local"], "[2001:db8:1::2]:40000");
        assert_eq!(j["remote-phys"], "[2001:db8::2]:5000");
        let e = Event {
            event: 3,
            conn: sample6(),
            reason: None,
        };
        assert_eq!(
            event_line(&e),
            "resumed tcp [2001:db8:1::2]:40000 -> [2001:db8::2]:5000 via [2001:db8:2::2]:40000 -> [2001:db8::2]:5000 migrated pid 4242"
        );
        assert_eq!(event_json(&e)["local-phys"], "[2001:db8:2::2]:40000");
        let by = |a: &str| Filter {
            addr: Some(a.parse().unwrap()),
            ..Default::default()
        };
        assert!(by("2001:db8:2::2").matches(&sample6()));
        assert!(!by("2001:db8:2::2").matches(&sample()));
        assert!(!by("10.0.2.2").matches(&sample6()));
    }

    #[test]
    fn events_read_like_ip_monitor() {
        let e = Event {
            event: 3,
            conn: sample(),
            reason: None,
        };
        assert_eq!(
            event_line(&e),
            "resumed tcp 10.0.1.2:40000 -> 10.0.0.2:5000 via 10.0.2.2:40000 -> 10.0.0.2:5000 migrated pid 4242"
        );
        let e = Event {
            event: 4,
            reason: Some("the peer's vnatd did not answer".into()),
            ..e
        };
        assert!(event_line(&e).ends_with(": the peer's vnatd did not answer"));
        assert_eq!(event_json(&e)["reason"], "the peer's vnatd did not answer");
        assert_eq!(event_json(&e)["event"], "failed");
    }

    #[test]
    fn filters_match_any_endpoint() {
        let c = sample();
        let f = |f: Filter| f.matches(&c);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            addr: Some("10.0.2.2".parse().unwrap()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            addr: Some("10.0.3.2".parse().unwrap()),
            ..Default::default()
        }));
        assert!(f(Filter {
            port: Some(5000),
            state: Some("migrated".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            pid: Some(1),
            ..Default::default()
        }));
        assert!(!f(Filter {
            proto: Some("udp".into()),
            ..Default::default()
        }));
    }
}
