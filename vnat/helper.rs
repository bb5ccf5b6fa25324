// SPDX-License-Identifier: GPL-2.0

//! Connection migration helpers (paper 3.3.1): what keeps this end of a
//! connection alive while the other end is suspended and on its way.
//!
//! The paper's two application-independent helpers:
//!
//! - [`Helper::Keepalive`] turns TCP keepalive off for the one connection,
//!   so that a peer away for longer than `tcp_keepalive_time` plus the
//!   probes is not declared dead; it is turned back on when the peer
//!   resumes, if it was on.
//! - [`Helper::Stop`] also stops (`SIGSTOP`) the processes that have the
//!   socket open, "to stop the flow of time" for the subprocess that
//!   handles the connection, so that its own timeouts and pings (FTP,
//!   SSH rekeying) do not end the connection; they continue (`SIGCONT`)
//!   when the peer resumes.
//!
//! The helper is this host's choice (knob `suspend_helper`, or the
//! connection's own, `conn-set`), not the peer's: a peer cannot make this
//! host stop its processes. A helper still at work `helper_timeout_s` after
//! the peer suspended is undone (the peer may never come back), and so is
//! every helper when vnatd stops (namespace exit, module unload).

use crate::{
    ffi::{self, Process, Sock, MAX_HOLDERS},
    knobs::SUSPEND_HELPER,
    vcmp::PROTO_TCP,
};
use kernel::bindings;

/// A connection migration helper: the spec's `helper` (`none`, `keepalive`,
/// `stop`, and `default`: what the `suspend_helper` knob says). The numbers
/// are VCMP's `HELPER_*` too, which never carry `default`.
pub(crate) use crate::nl_gen::Helper;

impl Helper {
    /// The helper this one stands for: itself, or for `default`, the
    /// `suspend_helper` knob's (never `default`).
    pub(crate) fn resolve(self) -> Self {
        match self {
            Self::Default => u8::try_from(SUSPEND_HELPER.get())
                .ok()
                .and_then(|n| Self::try_from(n).ok())
                .filter(|h| *h != Self::Default)
                .unwrap_or(Self::None),
            h => h,
        }
    }

    /// Its name, as the knob spells it, for an event's reason.
    pub(crate) const fn as_cstr(self) -> &'static kernel::str::CStr {
        match self {
            Self::None => c"helper none",
            Self::Keepalive => c"helper keepalive",
            Self::Stop => c"helper stop",
            Self::Default => c"helper default",
        }
    }
}

/// A helper at work on one connection: what to undo.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Active {
    /// Which helper.
    pub(crate) helper: Helper,
    /// When the peer suspended ([`ffi::now_ns`]).
    pub(crate) since_ns: i64,
    /// Keepalive was on before, and is off now.
    keepalive_was_on: bool,
    /// The processes stopped.
    stopped: [Process; MAX_HOLDERS],
    /// How many of `stopped` are used.
    n_stopped: u8,
}

/// Activates `want` on the socket `sk` of a connection whose peer was
/// suspended; returns what was done. A UDP socket has no keepalive; one
/// that serves several peers (`shared`) is not stopped for one of them.
/// Sleeps (process context, no spinlock held).
pub(crate) fn activate(sk: &Sock, proto: u8, shared: bool, want: Helper) -> Active {
    let want = want.resolve();
    let mut a = Active {
        helper: Helper::None,
        since_ns: ffi::now_ns(),
        keepalive_was_on: false,
        stopped: [Process::default(); MAX_HOLDERS],
        n_stopped: 0,
    };
    let tcp = proto == PROTO_TCP;
    if want == Helper::None || (!tcp && (shared || want == Helper::Keepalive)) {
        return a;
    }
    if tcp {
        a.keepalive_was_on = sk.set_keepalive(false);
        a.helper = Helper::Keepalive;
    }
    if want == Helper::Stop && !shared {
        a.n_stopped = sk.signal_holders(bindings::SIGSTOP as i32, &mut a.stopped) as u8;
        if a.n_stopped > 0 {
            a.helper = Helper::Stop;
        }
    }
    a
}

/// Undoes `a`: the stopped processes continue, and keepalive is on again if
/// it was. `sk`: the socket, or `None` if it is closing (then only the
/// processes are continued, which may be done under a spinlock). With a
/// socket, sleeps.
pub(crate) fn release(sk: Option<&Sock>, a: &Active) {
    for &p in &a.stopped[..usize::from(a.n_stopped)] {
        p.signal(bindings::SIGCONT as i32);
    }
    if let (Some(sk), true) = (sk, a.keepalive_was_on) {
        sk.set_keepalive(true);
    }
}
