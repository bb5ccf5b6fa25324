// SPDX-License-Identifier: GPL-2.0

//! The counters VNAT keeps, per namespace and in total: what each one
//! counts, and the totals over all namespaces (configfs `counters`). The
//! per-CPU storage is the shim's ([`crate::ffi::PerCpuCounters`]).

use crate::ffi;

macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The counters VNAT keeps, per namespace and in total.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub(crate) enum Counter {
            $($(#[$doc])* $variant,)*
        }

        impl Counter {
            /// Every counter, in display order.
            pub(crate) const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// The counter's name in `vnatctl stats` and configfs.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }
    };
}

counters! {
    /// Packets seen by the PREROUTING hook (incoming DNAT). The hooks are
    /// registered only while the namespace has translated connections.
    HookPreRouting = "hook_prerouting_packets",
    /// Packets seen by the LOCAL_IN hook (incoming SNAT).
    HookLocalIn = "hook_local_in_packets",
    /// Packets seen by the LOCAL_OUT hook (outgoing DNAT).
    HookLocalOut = "hook_local_out_packets",
    /// Packets seen by the POSTROUTING hook (outgoing SNAT).
    HookPostRouting = "hook_postrouting_packets",
    /// Connections recorded at connect or accept.
    ConnectionsTracked = "connections_tracked",
    /// Connections forgotten at close.
    ConnectionsForgotten = "connections_forgotten",
    /// Records of sockets destroyed without the close probe seeing it (a
    /// missed kprobe hit), forgotten by vnatd (also counted as forgotten).
    ConnectionsReaped = "connections_reaped",
    /// Connections left untracked because memory was short.
    ConnectionsUntracked = "connections_untracked_nomem",
    /// VCMP connections accepted by vnatd.
    VcmpClientsAccepted = "vcmp_clients_accepted",
    /// VCMP connections refused because vnatd had `vcmp_max_clients` already.
    VcmpClientsRefused = "vcmp_clients_refused",
    /// VCMP connections closed after `vcmp_idle_timeout_ms` without a message.
    VcmpClientsIdleClosed = "vcmp_clients_idle_closed",
    /// Well-formed VCMP messages received.
    VcmpMessages = "vcmp_messages",
    /// Malformed VCMP messages received (each closes its connection).
    VcmpMalformed = "vcmp_malformed",
    /// `VNAT_UPD` or `VNAT_SUS` messages naming no known virtual connection
    /// (refused).
    VcmpUnknownConnection = "vcmp_unknown_connection",
    /// Attempts to listen on the VCMP port that failed.
    VcmpListenFailed = "vcmp_listen_failed",
    /// Packets rewritten at PREROUTING.
    TranslatedPreRouting = "translated_prerouting_packets",
    /// Packets rewritten at LOCAL_IN.
    TranslatedLocalIn = "translated_local_in_packets",
    /// Packets rewritten at LOCAL_OUT.
    TranslatedLocalOut = "translated_local_out_packets",
    /// Packets rewritten at POSTROUTING.
    TranslatedPostRouting = "translated_postrouting_packets",
    /// Packets dropped because translating them failed (no memory, no route).
    TranslationDropped = "translation_dropped_packets",
    /// Rules not installed because another connection's matched the same
    /// packets (virtual address conflict, paper 3.4.3; policy: abort).
    RuleConflicts = "rule_conflicts",
    /// `VNAT_UPD` messages sent.
    UpdatesSent = "updates_sent",
    /// `VNAT_UPD` messages received and applied.
    UpdatesAccepted = "updates_accepted",
    /// `VNAT_UPD` messages refused, here or by the peer.
    UpdatesRefused = "updates_refused",
    /// Connections whose migration completed.
    MigrationsCompleted = "migrations_completed",
    /// Connections whose migration failed (left as they were).
    MigrationsFailed = "migrations_failed",
    /// Updates refused because a live connection here has the endpoints
    /// they would move to (conflict policy abort, paper 3.4.3).
    ConflictsAborted = "conflicts_aborted",
    /// Connections aborted to make way for a migrating one (policy preempt).
    ConflictsPreempted = "conflicts_preempted",
    /// `VNAT_SUS` messages sent (paper 3.3.1).
    SuspendsSent = "suspends_sent",
    /// `VNAT_SUS` messages received and answered with a helper at work.
    SuspendsAccepted = "suspends_accepted",
    /// `VNAT_SUS` messages refused, here or by the peer (no such connection).
    SuspendsRefused = "suspends_refused",
    /// Helpers undone because the peer resumed.
    HelpersReleased = "helpers_released",
    /// Helpers undone after `helper_timeout_s` without the peer resuming.
    HelpersExpired = "helpers_expired",
}

const NR_COUNTERS: usize = Counter::ALL.len();
const _: () = assert!(NR_COUNTERS <= ffi::MAX_COUNTERS);

/// Counter `c` over all namespaces, past and present (configfs `counters`).
pub(crate) fn total(c: Counter) -> u64 {
    ffi::total_counter(c as usize)
}
