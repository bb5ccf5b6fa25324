// SPDX-License-Identifier: GPL-2.0
// Do not edit directly, auto-generated from: vnat/vnat.yaml
// by tools/ynl-gen-rust.py --mode vnatctl. To regenerate run:
// tools/check-netlink.py KSRC --write

//! The generic netlink family `vnat` (spec `vnat/vnat.yaml`): its numbers and
//! the names of its enums and attributes.

#![allow(dead_code)]

/// The family's name.
pub const FAMILY_NAME: &str = "vnat";
/// The family's version.
pub const FAMILY_VERSION: u8 = 1;
/// Multicast group `events`.
pub const MCGRP_EVENTS: &str = "events";

/// Command numbers.
pub mod cmd {
    /// `conn-get`.
    pub const CONN_GET: u8 = 1;
    /// `conn-resume`.
    pub const CONN_RESUME: u8 = 2;
    /// `conn-event`.
    pub const CONN_EVENT: u8 = 3;
    /// `conn-set`.
    pub const CONN_SET: u8 = 4;
    /// `conn-suspend`.
    pub const CONN_SUSPEND: u8 = 5;
    /// `conn-export`.
    pub const CONN_EXPORT: u8 = 6;
    /// `conn-import`.
    pub const CONN_IMPORT: u8 = 7;
    /// `stats-get`.
    pub const STATS_GET: u8 = 8;
}

/// Attribute set `conn`.
pub mod conn {
    pub const PROTO: u16 = 1;
    pub const LOCAL_ADDR: u16 = 2;
    pub const LOCAL_PORT: u16 = 3;
    pub const REMOTE_ADDR: u16 = 4;
    pub const REMOTE_PORT: u16 = 5;
    pub const LOCAL_PHYS_ADDR: u16 = 6;
    pub const LOCAL_PHYS_PORT: u16 = 7;
    pub const REMOTE_PHYS_ADDR: u16 = 8;
    pub const REMOTE_PHYS_PORT: u16 = 9;
    pub const STATE: u16 = 10;
    pub const ORIGIN: u16 = 11;
    pub const PID: u16 = 12;
    pub const NEW_ADDR: u16 = 13;
    pub const COUNT: u16 = 14;
    pub const EVENT: u16 = 15;
    pub const REASON: u16 = 16;
    pub const POLICY: u16 = 17;
    pub const UPDATE_AGE_MS: u16 = 18;
    pub const PAD: u16 = 19;
    pub const PACKETS_OUT: u16 = 20;
    pub const PACKETS_IN: u16 = 21;
    pub const BYTES_OUT: u16 = 22;
    pub const BYTES_IN: u16 = 23;
    pub const VCMP_STATE: u16 = 24;
    pub const VCMP_ATTEMPTS: u16 = 25;
    pub const HELPER: u16 = 26;
    pub const PEER_SUSPENDED: u16 = 27;
    pub const AUTH: u16 = 28;
    pub const VCMP_NEXT_MS: u16 = 29;
    pub const LOCAL_ADDR6: u16 = 30;
    pub const REMOTE_ADDR6: u16 = 31;
    pub const LOCAL_PHYS_ADDR6: u16 = 32;
    pub const REMOTE_PHYS_ADDR6: u16 = 33;
    pub const NEW_ADDR6: u16 = 34;
    pub const SAVED: u16 = 35;

    /// Number and name of each attribute but padding.
    pub const NAMES: &[(u16, &str)] = &[
        (1, "proto"),
        (2, "local-addr"),
        (3, "local-port"),
        (4, "remote-addr"),
        (5, "remote-port"),
        (6, "local-phys-addr"),
        (7, "local-phys-port"),
        (8, "remote-phys-addr"),
        (9, "remote-phys-port"),
        (10, "state"),
        (11, "origin"),
        (12, "pid"),
        (13, "new-addr"),
        (14, "count"),
        (15, "event"),
        (16, "reason"),
        (17, "policy"),
        (18, "update-age-ms"),
        (20, "packets-out"),
        (21, "packets-in"),
        (22, "bytes-out"),
        (23, "bytes-in"),
        (24, "vcmp-state"),
        (25, "vcmp-attempts"),
        (26, "helper"),
        (27, "peer-suspended"),
        (28, "auth"),
        (29, "vcmp-next-ms"),
        (30, "local-addr6"),
        (31, "remote-addr6"),
        (32, "local-phys-addr6"),
        (33, "remote-phys-addr6"),
        (34, "new-addr6"),
        (35, "saved"),
    ];
}

/// Attribute set `stats`.
pub mod stats {
    pub const HOOK_PREROUTING_PACKETS: u16 = 1;
    pub const HOOK_LOCAL_IN_PACKETS: u16 = 2;
    pub const HOOK_LOCAL_OUT_PACKETS: u16 = 3;
    pub const HOOK_POSTROUTING_PACKETS: u16 = 4;
    pub const CONNECTIONS_TRACKED: u16 = 5;
    pub const CONNECTIONS_FORGOTTEN: u16 = 6;
    pub const CONNECTIONS_REAPED: u16 = 7;
    pub const CONNECTIONS_UNTRACKED_NOMEM: u16 = 8;
    pub const VCMP_CLIENTS_ACCEPTED: u16 = 9;
    pub const VCMP_CLIENTS_REFUSED: u16 = 10;
    pub const VCMP_CLIENTS_IDLE_CLOSED: u16 = 11;
    pub const VCMP_MESSAGES: u16 = 12;
    pub const VCMP_MALFORMED: u16 = 13;
    pub const VCMP_UNKNOWN_CONNECTION: u16 = 14;
    pub const VCMP_LISTEN_FAILED: u16 = 15;
    pub const TRANSLATED_PREROUTING_PACKETS: u16 = 16;
    pub const TRANSLATED_LOCAL_IN_PACKETS: u16 = 17;
    pub const TRANSLATED_LOCAL_OUT_PACKETS: u16 = 18;
    pub const TRANSLATED_POSTROUTING_PACKETS: u16 = 19;
    pub const TRANSLATION_DROPPED_PACKETS: u16 = 20;
    pub const RULE_CONFLICTS: u16 = 21;
    pub const UPDATES_SENT: u16 = 22;
    pub const UPDATES_ACCEPTED: u16 = 23;
    pub const UPDATES_REFUSED: u16 = 24;
    pub const MIGRATIONS_COMPLETED: u16 = 25;
    pub const MIGRATIONS_FAILED: u16 = 26;
    pub const CONFLICTS_ABORTED: u16 = 27;
    pub const CONFLICTS_PREEMPTED: u16 = 28;
    pub const SUSPENDS_SENT: u16 = 29;
    pub const SUSPENDS_ACCEPTED: u16 = 30;
    pub const SUSPENDS_REFUSED: u16 = 31;
    pub const HELPERS_RELEASED: u16 = 32;
    pub const HELPERS_EXPIRED: u16 = 33;
    pub const VCMP_WRONG_SOURCE: u16 = 34;
    pub const VCMP_MARTIAN: u16 = 35;
    pub const VCMP_UDP_FLOWS_REFUSED: u16 = 36;
    pub const VCMP_REFUSALS_CLOSED: u16 = 37;
    pub const VCMP_READS_PAUSED: u16 = 38;
    pub const KEYS_ESTABLISHED: u16 = 39;
    pub const KEYS_REFUSED: u16 = 40;
    pub const KEYS_FAILED: u16 = 41;
    pub const VCMP_AUTH_FAILED: u16 = 42;
    pub const VCMP_REPLAYED: u16 = 43;
    pub const VCMP_V1_REFUSED: u16 = 44;
    pub const PATHS_VALIDATED: u16 = 45;
    pub const RESUMING_DROPPED_PACKETS: u16 = 46;
    pub const HIDDEN_CONNECTIONS: u16 = 47;
    pub const HIDDEN_PACKETS: u16 = 48;
    pub const ROUTE_CHECKS: u16 = 49;
    pub const CONNECTIONS: u16 = 50;
    pub const VCMP_LISTENING: u16 = 51;
    pub const HOOKS_REGISTERED: u16 = 52;
    pub const PAD: u16 = 53;
    pub const UNTRANSLATED_PACKETS: u16 = 54;
    pub const ICMP_ERRORS_TRANSLATED: u16 = 55;
    pub const CONNECTIONS_IMPORTED: u16 = 56;
    pub const IMPORTS_EXPIRED: u16 = 57;
    pub const KEYS_REGRANTED: u16 = 58;
    pub const KEYS_ASSUMED: u16 = 59;

    /// Number and name of each attribute but padding.
    pub const NAMES: &[(u16, &str)] = &[
        (1, "hook-prerouting-packets"),
        (2, "hook-local-in-packets"),
        (3, "hook-local-out-packets"),
        (4, "hook-postrouting-packets"),
        (5, "connections-tracked"),
        (6, "connections-forgotten"),
        (7, "connections-reaped"),
        (8, "connections-untracked-nomem"),
        (9, "vcmp-clients-accepted"),
        (10, "vcmp-clients-refused"),
        (11, "vcmp-clients-idle-closed"),
        (12, "vcmp-messages"),
        (13, "vcmp-malformed"),
        (14, "vcmp-unknown-connection"),
        (15, "vcmp-listen-failed"),
        (16, "translated-prerouting-packets"),
        (17, "translated-local-in-packets"),
        (18, "translated-local-out-packets"),
        (19, "translated-postrouting-packets"),
        (20, "translation-dropped-packets"),
        (21, "rule-conflicts"),
        (22, "updates-sent"),
        (23, "updates-accepted"),
        (24, "updates-refused"),
        (25, "migrations-completed"),
        (26, "migrations-failed"),
        (27, "conflicts-aborted"),
        (28, "conflicts-preempted"),
        (29, "suspends-sent"),
        (30, "suspends-accepted"),
        (31, "suspends-refused"),
        (32, "helpers-released"),
        (33, "helpers-expired"),
        (34, "vcmp-wrong-source"),
        (35, "vcmp-martian"),
        (36, "vcmp-udp-flows-refused"),
        (37, "vcmp-refusals-closed"),
        (38, "vcmp-reads-paused"),
        (39, "keys-established"),
        (40, "keys-refused"),
        (41, "keys-failed"),
        (42, "vcmp-auth-failed"),
        (43, "vcmp-replayed"),
        (44, "vcmp-v1-refused"),
        (45, "paths-validated"),
        (46, "resuming-dropped-packets"),
        (47, "hidden-connections"),
        (48, "hidden-packets"),
        (49, "route-checks"),
        (50, "connections"),
        (51, "vcmp-listening"),
        (52, "hooks-registered"),
        (54, "untranslated-packets"),
        (55, "icmp-errors-translated"),
        (56, "connections-imported"),
        (57, "imports-expired"),
        (58, "keys-regranted"),
        (59, "keys-assumed"),
    ];
}

/// Enum `state`.
pub mod state {
    pub const NATIVE: u8 = 0;
    pub const RESUMING: u8 = 1;
    pub const MIGRATED: u8 = 2;
    pub const SUSPENDED: u8 = 3;
    pub const VALIDATING: u8 = 4;

    /// The names, by value.
    pub const NAMES: &[&str] = &["native", "resuming", "migrated", "suspended", "validating"];
}

/// Enum `origin`.
pub mod origin {
    pub const CONNECT: u8 = 0;
    pub const ACCEPT: u8 = 1;
    pub const EXISTING: u8 = 2;
    pub const UPDATE: u8 = 3;

    /// The names, by value.
    pub const NAMES: &[&str] = &["connect", "accept", "existing", "update"];
}

/// Enum `policy`.
pub mod policy {
    pub const ABORT: u8 = 0;
    pub const PREEMPT: u8 = 1;
    pub const DEFAULT: u8 = 2;

    /// The names, by value.
    pub const NAMES: &[&str] = &["abort", "preempt", "default"];
}

/// Enum `helper`.
pub mod helper {
    pub const NONE: u8 = 0;
    pub const KEEPALIVE: u8 = 1;
    pub const STOP: u8 = 2;
    pub const DEFAULT: u8 = 3;

    /// The names, by value.
    pub const NAMES: &[&str] = &["none", "keepalive", "stop", "default"];
}

/// Enum `vcmp-state`.
pub mod vcmp_state {
    pub const IDLE: u8 = 0;
    pub const CONNECTING: u8 = 1;
    pub const WAITING: u8 = 2;
    pub const FAILED: u8 = 3;
    pub const RETRYING: u8 = 4;

    /// The names, by value.
    pub const NAMES: &[&str] = &["idle", "connecting", "waiting", "failed", "retrying"];
}

/// Enum `auth`.
pub mod auth {
    pub const PENDING: u8 = 0;
    pub const KEYED: u8 = 1;
    pub const UNKEYED: u8 = 2;

    /// The names, by value.
    pub const NAMES: &[&str] = &["pending", "keyed", "unkeyed"];
}

/// Enum `event`.
pub mod event {
    pub const VIRTUALIZED: u8 = 0;
    pub const CLOSED: u8 = 1;
    pub const RESUMING: u8 = 2;
    pub const RESUMED: u8 = 3;
    pub const FAILED: u8 = 4;
    pub const PEER_MOVED: u8 = 5;
    pub const REFUSED: u8 = 6;
    pub const CONFLICT: u8 = 7;
    pub const SUSPENDED: u8 = 8;
    pub const PEER_SUSPENDED: u8 = 9;
    pub const HELPER_RELEASED: u8 = 10;
    pub const RETRYING: u8 = 11;

    /// The names, by value.
    pub const NAMES: &[&str] = &[
        "virtualized",
        "closed",
        "resuming",
        "resumed",
        "failed",
        "peer-moved",
        "refused",
        "conflict",
        "suspended",
        "peer-suspended",
        "helper-released",
        "retrying",
    ];
}
