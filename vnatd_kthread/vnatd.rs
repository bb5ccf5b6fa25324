// SPDX-License-Identifier: GPL-2.0

//! `vnatd`, the VNAT daemon (paper section 4.3): one kernel thread per
//! network namespace, listening on TCP port 2031 (module parameter
//! `vcmp_port`) and speaking VCMP.
//!
//! The thread sleeps until one of its sockets has work (their callbacks wake
//! it) or a second passes. It then accepts pending connections, up to
//! `vcmp_max_clients` and `vcmp_max_clients_per_source` from one address,
//! refusing and counting the rest, reads what each client sent (within the
//! bounds of `client.rs`), decodes it with the shared wire-format code
//! (`vnat/vcmp.rs`), and closes connections that send malformed bytes, that
//! the peer closed, that had too many refusals, or that completed no message
//! for `vcmp_idle_timeout_ms`. Nothing it cannot parse is answered;
//! everything is counted (`vnatctl stats`).
//!
//! As the peer of a migration, it applies each `VNAT_UPD` (paper 3.3.2.2)
//! to the namespace's virtual connections, publishes the new translation
//! rules and then answers `VNAT_UPD_R`, in order, on the same stream.
//!
//! As the side that moved, it takes requests (netlink `conn-resume`, or
//! the address notifier), and for each peer opens one VCMP connection from
//! the new address and sends the updates of all the connections it shares
//! with that peer as one batch. Each attempt has `vcmp_timeout_ms`; after
//! `vcmp_retries` more attempts the remaining connections are left as they
//! were, counted and logged once.
//!
//! It owns the namespace's four netfilter hooks: they are registered when
//! the first rules are published and unregistered when the last go, so a
//! namespace without translated connections has no hook to run at all.
//!
//! Suspending (paper 3.3.1) goes the same way: `VNAT_SUS` out, batched per
//! peer, `VNAT_SUS_R` back; as the peer, vnatd activates a helper before it
//! answers, and undoes helpers that outlive `helper_timeout_s`, and all of
//! them when it stops.
//!
//! The two sides of VCMP have their own files: `client.rs` serves one peer
//! that talks to us, `conversation.rs` talks to one peer's vnatd. This file
//! is the thread and what both need from it: the listener, the requests, and
//! the rules and hooks, published before any reply or kick depends on them.

#[path = "client.rs"]
mod client;
#[path = "conversation.rs"]
mod conversation;
#[path = "socket.rs"]
mod socket;

use crate::{
    authentication::{self, Source, Wanted},
    counters::Counter,
    events::{self, Event},
    ffi::{self, trace, HookRegistration, KprobeRegistration},
    interception,
    knobs::{
        HELPER_TIMEOUT_S, RESUME_DEADLINE_S, VCMP_IDLE_TIMEOUT_MS, VCMP_MAX_CLIENTS,
        VCMP_MAX_CLIENTS_PER_SOURCE, VCMP_PORT,
    },
    migration::{self, Outgoing},
    netns::{NetState, Show},
    requests::Request,
    rules::Retired,
    vcmp::Endpoint,
    virtualization::Key,
};
use client::{Client, Close, Progress};
use conversation::{Conversation, Kind, Report, Step};
use core::net::IpAddr;
use core::ptr::NonNull;
use kernel::{
    bindings,
    prelude::*,
    sync::{
        atomic::{Acquire, Relaxed, Release},
        Arc,
    },
    time::{delay::fsleep, msecs_to_jiffies, Delta},
};
use socket::{Socket, Watch};

/// What the thread is given: the namespace's state, which it holds.
struct Shared {
    state: Arc<NetState>,
}

/// A running vnatd thread; dropping it stops the thread, which closes all of
/// its sockets first.
///
/// # Invariants
///
/// `task` is a kthread created by `kthread_create_on_node()` and not yet
/// stopped; it runs [`vnatd_thread`] with `shared`, which it uses until it
/// returns.
pub(crate) struct Vnatd {
    task: NonNull<bindings::task_struct>,
    _shared: KBox<Shared>,
}

// SAFETY: The handle only stops the thread, which may be done from any
// thread.
unsafe impl Send for Vnatd {}
// SAFETY: As above; `&self` offers nothing.
unsafe impl Sync for Vnatd {}

/// Whether two clients come from one source, as `vcmp_max_clients_per_source`
/// counts them: one IPv4 address, or one IPv6 /64 (a host has a whole /64
/// to pick addresses from).
fn same_source(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..8] == b.octets()[..8],
        _ => a == b,
    }
}

impl Vnatd {
    /// Starts the daemon of the namespace of `state`.
    pub(crate) fn start(state: Arc<NetState>) -> Result<Self> {
        let shared = KBox::new(Shared { state }, GFP_KERNEL)?;
        let data: *const Shared = &*shared;
        // SAFETY: `vnatd_thread` matches the kthread signature; `data` stays
        // valid until the thread is stopped, since `Drop` stops it before the
        // box is freed. The format takes one `unsigned int`.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(vnatd_thread),
                data.cast_mut().cast(),
                bindings::NUMA_NO_NODE,
                c"vnatd/%u".as_char_ptr(),
                shared.state.net().inum(),
            )
        };
        let task = NonNull::new(kernel::error::from_err_ptr(task)?).ok_or(ENOMEM)?;
        // From now on requests and its socket callbacks wake the thread.
        // SAFETY: `task` is a live, newly created kthread.
        unsafe { shared.state.waker().set_task(task) };
        // SAFETY: As above.
        unsafe { bindings::wake_up_process(task.as_ptr()) };
        // INVARIANT: `task` runs `vnatd_thread` with `shared` until stopped.
        Ok(Self {
            task,
            _shared: shared,
        })
    }
}

impl Drop for Vnatd {
    fn drop(&mut self) {
        // SAFETY: `task` is a kthread that was not stopped yet (type
        // invariant). `kthread_stop()` wakes it and waits until it returned,
        // also when it never ran.
        unsafe { bindings::kthread_stop(self.task.as_ptr()) };
    }
}

/// The kthread function.
///
/// # Safety
///
/// `data` must point to the `Shared` of the [`Vnatd`] that created the
/// thread (see the type invariant there).
unsafe extern "C" fn vnatd_thread(data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `Shared` of the `Vnatd` that created the thread,
    // valid until `kthread_stop()` returns, i.e. after this function.
    let shared = unsafe { &*data.cast::<Shared>() };
    let state = &*shared.state;
    Daemon::new(state).run();
    0
}

/// Closes the client from the source of `from` that has been silent
/// longest, if it has been for [`SPENT_MS`] with nothing read or unread
/// and every reply sent and acknowledged ([`Client::spent`]): a new
/// stream from that source takes its place. A host whose address went
/// away cannot close its streams from there (its FIN has no source to
/// go from), so each stays until `vcmp_idle_timeout_ms` (30 s); a
/// laptop that leaves a network and comes back a few times within that
/// filled `vcmp_max_clients_per_source` with them, and its next
/// connection's KEY stream was refused: the connection got no key, and
/// could not move. Returns whether it closed one.
fn evict_spent(clients: &mut KVec<Client<'_>>, state: &NetState, from: IpAddr) -> bool {
    let spent = Delta::from_millis(SPENT_MS);
    let oldest = clients
        .iter()
        .enumerate()
        .filter(|(_, c)| same_source(c.from(), from) && c.spent(spent))
        .max_by_key(|(_, c)| c.silent().as_nanos())
        .map(|(i, _)| i);
    let Some(i) = oldest else {
        return false;
    };
    drop(clients.remove(i));
    state.count(Counter::VcmpClientsIdleClosed, 1);
    true
}

/// How long a VCMP client from a source at `vcmp_max_clients_per_source`
/// must have been silent, every reply sent, for a new one from there to
/// take its place ([`evict_spent`]): longer than a peer keeps a stream of
/// keys open for the next ones (2 s).
const SPENT_MS: i64 = 3000;

/// How long the thread sleeps at most, and how often it retries to listen.
const TICK_MS: u32 = 1000;
/// How soon a connect that failed at once is tried again.
const QUICK_MS: u32 = 20;
/// How often the thread looks for key requests to try again while some
/// wait (`authentication::wanted`).
const KEY_RETRY_MS: u32 = 100;
/// How long the thread yields between rounds while a client has more to
/// read than a round reads.
const BUSY_NAP_US: i64 = 200;
/// Send and receive buffer of a VCMP client's socket, in bytes (as
/// `SO_SNDBUF`: the kernel counts twice that): a few thousand messages.
const CLIENT_SOCKET_BUFFER: i32 = 64 * 1024;
/// Listen backlog of the VCMP socket.
const BACKLOG: i32 = 128;

/// The parts of a round, timed one after the other for the trace, in the
/// thread's CPU time: with both ends of a move on one CPU (the
/// benchmarks' guest), the time another thread ran is not this one's.
struct Laps {
    at: i64,
    published: i64,
    began: i64,
}

impl Laps {
    fn start() -> Self {
        Self {
            at: trace::thread_cpu_ns(),
            published: 0,
            began: ffi::now_ns(),
        }
    }

    /// The CPU nanoseconds since the last lap, but for what publishing
    /// took in them (`round`: [`Daemon::round`], which counts it apart).
    fn lap(&mut self, round: [i64; 2]) -> i64 {
        let now = trace::thread_cpu_ns();
        let published = round[0] + round[1];
        let part = now - self.at - (published - self.published);
        self.at = now;
        self.published = published;
        part
    }

    /// The nanoseconds on the clock since the round began.
    fn wall(&self) -> i64 {
        ffi::now_ns() - self.began
    }
}

/// The thread's own state: its sockets live and die with it.
struct Daemon<'a> {
    state: &'a NetState,
    listener: Option<Watch<'a>>,
    listen_error_logged: bool,
    /// When [`Vnatd::strand`] looks at the lost addresses next
    /// (`ffi::now_ns()`): once a tick, not every round.
    strand_at_ns: i64,
    clients: KVec<Client<'a>>,
    /// The outgoing VCMP conversations, in the order they were asked for.
    conversations: KVec<Conversation<'a>>,
    /// The rules must be published again before replies go out.
    rules_changed: bool,
    /// CPU nanoseconds this round spent publishing rules, and kicking.
    round: [i64; 2],
    /// Connections to kick once the rules are published.
    to_kick: KVec<Key>,
    /// Tables the rules replaced this round, freed after a grace period
    /// at its end, once what the new rules allow went out.
    retired: KVec<Retired<'a>>,
    /// Connections moved behind a NAT, to kick again ([`Nudges`]).
    nudges: Nudges,
    /// The namespace's hooks, while it has rules.
    hooks: Option<HookRegistration>,
    hooks_error_logged: bool,
    /// The kprobes' missed count when the table was last swept.
    missed_seen: u64,
    /// Sweeps still to do for the last growth of that count.
    sweeps_due: u8,
    /// Connections whose key this end asks for are left to take (now or
    /// after a refusal's pause).
    keys_left: bool,
    /// The last look at the routes left connections that were in the
    /// middle of a move: look again once a conversation is over.
    reroute_again: bool,
}

impl<'a> Daemon<'a> {
    fn new(state: &'a NetState) -> Self {
        Self {
            state,
            listener: None,
            listen_error_logged: false,
            strand_at_ns: 0,
            clients: KVec::new(),
            conversations: KVec::new(),
            rules_changed: false,
            round: [0; 2],
            to_kick: KVec::new(),
            retired: KVec::new(),
            nudges: Nudges(KVec::new()),
            hooks: None,
            hooks_error_logged: false,
            missed_seen: 0,
            sweeps_due: 0,
            keys_left: false,
            reroute_again: false,
        }
    }

    fn should_stop() -> bool {
        // SAFETY: Called from a kthread.
        unsafe { bindings::kthread_should_stop() }
    }

    fn run(mut self) {
        while !Self::should_stop() {
            if self.listener.is_none() {
                self.listen();
            }
            self.expire_helpers();
            self.strand();
            self.forget_destroyed();
            self.validate_paths();
            self.nudges.kick_due(self.state);
            self.keys();
            // What each part of the round took, for the trace: publishing
            // (rules and kicks) wherever it happened, the rest by part.
            self.round = [0; 2];
            let mut laps = Laps::start();
            self.requests();
            let requests = laps.lap(self.round);
            let more = self.accept() | self.serve();
            let serve = laps.lap(self.round);
            self.converse();
            let converse = laps.lap(self.round);
            if self.state.rules_stale.xchg(false, Acquire) {
                self.rules_changed = true;
            }
            self.publish();
            laps.lap(self.round);
            // The answers and kicks of this round are out: the tables they
            // replaced may go (each waits for a grace period).
            self.retired.clear();
            let retire = laps.lap(self.round);
            let [rules, kicks] = self.round;
            let parts = [requests, serve, converse, rules, kicks, retire, laps.wall()];
            trace::round(self.state.net().inum(), parts);
            if more {
                // A client sent more than a round reads, or more connections
                // wait: the next round comes at once, after others had the
                // CPU.
                fsleep(Delta::from_micros(BUSY_NAP_US));
                continue;
            }
            let awaiting = self.conversations.iter().any(|c| c.no_route());
            self.state.want_route(awaiting);
            if self.conversations.iter().any(|c| c.route_came()) {
                // The route came while this round ran: try again now.
                continue;
            }
            // A conversation whose connection is slow to be established
            // starts a second one at its time.
            let second = self
                .conversations
                .iter()
                .filter_map(|c| c.second_due_ms())
                .min()
                .unwrap_or(u32::MAX);
            let nap = if awaiting {
                QUICK_MS
            } else if self.keys_left
                || self.state.keys_wanted.load(Relaxed)
                || !self.nudges.0.is_empty()
            {
                // Key requests to take or to try again soon (a connect
                // that finds the flag set does not wake us).
                KEY_RETRY_MS
            } else {
                TICK_MS
            }
            .min(second);
            let woken = self.state.waker().wait(msecs_to_jiffies(nap) as c_long);
            trace::wake(self.state.net().inum(), woken);
            if !woken {
                // Nothing to do for a while: the rules' spare table goes.
                self.state.rules.trim();
            }
        }
        // Nobody will be there to undo the helpers.
        migration::release_helpers(self.state, None);
        self.hooks = None;
        self.state.hooked.store(false, Relaxed);
        // Clients first: the listener's release disposes of connections that
        // were never accepted. Then the waker may go.
        self.conversations.clear();
        self.clients.clear();
        self.listener = None;
        self.state.listening.store(false, Relaxed);
    }

    fn listen(&mut self) {
        let net = self.state.net();
        let port = VCMP_PORT.get() as u16;
        // What a client that does not read, or sends faster than we read,
        // holds of this host's memory.
        match Socket::listen(net, port, BACKLOG, CLIENT_SOCKET_BUFFER) {
            Ok(sock) => {
                self.listener = Some(sock.watch(self.state.waker()));
                self.state.listening.store(true, Relaxed);
                pr_info!("netns {}: vnatd listening on port {}\n", net.inum(), port);
            }
            Err(e) => {
                self.state.count(Counter::VcmpListenFailed, 1);
                if !self.listen_error_logged {
                    self.listen_error_logged = true;
                    pr_warn!(
                        "netns {}: vnatd cannot listen on port {}: {:?}; retrying every second\n",
                        net.inum(),
                        port,
                        e
                    );
                }
            }
        }
    }

    /// Accepts at most a backlog's worth of pending connections; returns
    /// whether more may be pending.
    fn accept(&mut self) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        for _ in 0..BACKLOG {
            let Ok(Some(sock)) = listener.socket().accept() else {
                return false;
            };
            // Watch at once: children inherit the listener's callbacks, which
            // must be detached before any of them is released.
            let sock = sock.watch(self.state.waker());
            let Ok(Endpoint { addr: from, port }) = sock.socket().peer() else {
                // Reset before we got to it.
                continue;
            };
            let mut same_source = self
                .clients
                .iter()
                .filter(|c| same_source(c.from(), from))
                .count();
            // At the limit exactly (a lowered knob leaves more, which go
            // as they end): one that is spent makes room for it.
            if same_source == VCMP_MAX_CLIENTS_PER_SOURCE.get() as usize
                && evict_spent(&mut self.clients, self.state, from)
            {
                same_source -= 1;
            }
            if self.clients.len() >= VCMP_MAX_CLIENTS.get() as usize
                || same_source >= VCMP_MAX_CLIENTS_PER_SOURCE.get() as usize
            {
                self.state.count(Counter::VcmpClientsRefused, 1);
                continue;
            }
            let pushed = Client::new(sock, Source::new(self.state, from), port)
                .and_then(|c| self.clients.push(c, GFP_KERNEL).map_err(Into::into));
            match pushed {
                Ok(()) => self.state.count(Counter::VcmpClientsAccepted, 1),
                Err(_) => self.state.count(Counter::VcmpClientsRefused, 1),
            }
        }
        true
    }

    /// When a probe hit was missed (anywhere), forgets the records of sockets
    /// that were destroyed unseen, now and once more on the next round: a UDP
    /// socket is marked dead a moment after the destroy its probe missed.
    fn forget_destroyed(&mut self) {
        let missed = KprobeRegistration::missed();
        if missed != self.missed_seen {
            self.missed_seen = missed;
            self.sweeps_due = 2;
        }
        if self.sweeps_due > 0 {
            self.sweeps_due -= 1;
            let n = interception::forget_destroyed(self.state);
            if n > 0 {
                pr_info!(
                    "netns {}: forgot {} connection(s) whose close the probe missed\n",
                    self.state.net().inum(),
                    n
                );
            }
        }
    }

    /// Settles the validating connections whose peer's packets arrived on
    /// the new path (the hooks said so): their rules send there from now on.
    fn validate_paths(&mut self) {
        if self.state.paths_arrived.xchg(false, Acquire)
            && migration::paths_validated(self.state, &mut self.to_kick)
        {
            self.rules_changed = true;
        }
    }

    /// Tells the connections of lost addresses that no address of their
    /// family replaced within `resume_deadline_s` that they are stranded
    /// (0: never); once a tick.
    fn strand(&mut self) {
        let now = ffi::now_ns();
        if now < self.strand_at_ns || !self.state.requests.has_lost() {
            return;
        }
        self.strand_at_ns = now + i64::from(TICK_MS) * 1_000_000;
        // Forgotten: the addresses whose connections a route moved away
        // meanwhile, and those the host has again (its connections are
        // home). One look at the connections for all of them (they are
        // few).
        let lost = self.state.requests.lost_addrs();
        let mut used = KVec::new();
        if used.extend_with(lost.len(), false, GFP_KERNEL).is_err() {
            return;
        }
        self.state.connections.for_each(|_, c| {
            if let Some(i) = lost
                .iter()
                .position(|&a| a == c.mapping.local_physical.addr)
            {
                used[i] = true;
            }
        });
        let mut gone = KVec::new();
        for (&a, &u) in lost.iter().zip(used.iter()) {
            if !u || self.state.net().is_local(a) {
                // On failure, forgotten next tick.
                let _ = gone.push(a, GFP_KERNEL);
            }
        }
        self.state.requests.forget_lost(|a| gone.contains(&a));
        let deadline = i64::from(RESUME_DEADLINE_S.get());
        if deadline == 0 {
            return;
        }
        let mut addrs = KVec::new();
        self.state
            .requests
            .stranded(deadline * 1_000_000_000, &mut addrs);
        for addr in addrs {
            migration::stranded(self.state, addr);
        }
    }

    /// Undoes the helpers older than `helper_timeout_s`.
    fn expire_helpers(&self) {
        let timeout = i64::from(HELPER_TIMEOUT_S.get());
        if timeout > 0 && self.state.connections.helpers() > 0 {
            migration::release_helpers(self.state, Some(timeout * 1_000_000_000));
        }
    }

    /// Publishes the rules if they changed, and kicks the connections they
    /// made live (the time each took goes to [`Daemon::round`]).
    fn publish(&mut self) {
        let start = trace::thread_cpu_ns();
        let live = self.publish_rules();
        let published = trace::thread_cpu_ns();
        if live {
            self.kick();
        }
        self.round[0] += published - start;
        self.round[1] += trace::thread_cpu_ns() - published;
    }

    /// Publishes the rules if they changed; returns whether it did.
    fn publish_rules(&mut self) -> bool {
        if !self.rules_changed {
            return false;
        }
        self.rules_changed = false;
        match self.state.rules.rebuild(&self.state.connections) {
            Ok((built, retired)) => {
                trace::rules(
                    self.state.net().inum(),
                    self.state.connections.translated(),
                    built.whole,
                    built.copied,
                    built.changes,
                );
                if built.conflicts > 0 {
                    self.state.count(Counter::RuleConflicts, built.conflicts);
                }
                // Without memory to keep it, it goes now (after a grace
                // period).
                if let Some(r) = retired {
                    let _ = self.retired.push(r, GFP_KERNEL);
                }
            }
            Err(e) => {
                // Try again on the next round.
                self.rules_changed = true;
                pr_warn!(
                    "netns {}: cannot publish rules: {:?}\n",
                    self.state.net().inum(),
                    e
                );
                return false;
            }
        }
        if !self.sync_hooks() {
            // Try again on the next round.
            self.rules_changed = true;
            return false;
        }
        true
    }

    /// Kicks the connections whose rules went live, once the hooks are in.
    fn kick(&mut self) {
        if !self.to_kick.is_empty() {
            trace::kick(self.state.net().inum(), self.to_kick.len());
        }
        for key in self.to_kick.drain_all() {
            migration::kick(self.state, key);
        }
    }

    /// Registers the hooks when there are rules for them, unregisters them
    /// when there are none; returns whether the hooks are as they should be.
    /// A namespace without translated connections then has no hook at all.
    fn sync_hooks(&mut self) -> bool {
        let want = self.state.connections.translated() > 0;
        if want == self.hooks.is_some() {
            return true;
        }
        if !want {
            // Waits for hooks that are running.
            self.hooks = None;
            self.state.hooked.store(false, Relaxed);
            return true;
        }
        // SAFETY: The registration is this thread's; the namespace outlives
        // the thread, whose state holds the namespace.
        match unsafe { HookRegistration::new(self.state.net()) } {
            Ok(h) => {
                self.hooks = Some(h);
                self.state.hooked.store(true, Relaxed);
                true
            }
            Err(e) => {
                if !self.hooks_error_logged {
                    self.hooks_error_logged = true;
                    pr_warn!(
                        "netns {}: cannot register hooks: {:?}; retrying\n",
                        self.state.net().inum(),
                        e
                    );
                }
                false
            }
        }
    }

    /// Reads and answers the clients; returns whether one of them has more
    /// to read than a round read.
    fn serve(&mut self) -> bool {
        let idle = Delta::from_millis(i64::from(VCMP_IDLE_TIMEOUT_MS.get()));
        let mut verdicts = KVec::new();
        let mut more = false;
        for i in 0..self.clients.len() {
            let changed_from = self.to_kick.len();
            let v = self.clients[i].read(self.state, &mut self.rules_changed, &mut self.to_kick);
            more |= matches!(v, Ok(Progress::Budget));
            // A peer that moved while our own move's update was on its way
            // to its old address gets it again, at the new one.
            for k in changed_from..self.to_kick.len() {
                let key = self.to_kick[k];
                if let Some(o) = migration::resend(self.state, key) {
                    if !self.conversations.iter().any(|c| {
                        !c.keying() && c.peer() == o.peer && c.from() == o.from && c.carries(key)
                    }) {
                        self.add_conversations(core::slice::from_ref(&o));
                    }
                }
            }
            if verdicts.push(v, GFP_KERNEL).is_err() {
                // Out of memory: the next round tries again.
                return false;
            }
        }
        // The peer may send from its new address as soon as it reads our
        // reply: our rules must be live before the reply leaves.
        self.publish();
        let mut i = 0;
        let mut verdicts = verdicts.into_iter();
        while i < self.clients.len() {
            let mut verdict = verdicts.next().unwrap_or(Ok(Progress::Drained));
            // A client that sent its last update and closed, or had too many
            // refusals, still gets the replies it is owed.
            if matches!(verdict, Ok(_) | Err(Close::Eof | Close::Refused)) {
                if let Err(e) = self.clients[i].flush(self.state) {
                    if !matches!(verdict, Err(Close::Refused)) {
                        verdict = Err(e);
                    }
                }
            }
            // Paused for replies that have now gone out: what it sent while
            // paused waits in its socket, without a wake-up to come.
            if matches!(verdict, Ok(Progress::Paused)) && self.clients[i].has_room(self.state) {
                more = true;
            }
            let idle_out = self.clients[i].idle(idle);
            match verdict {
                Ok(_) if !idle_out => i += 1,
                r => {
                    match r {
                        Err(Close::Malformed) => self.state.count(Counter::VcmpMalformed, 1),
                        Err(Close::Refused) => self.state.count(Counter::VcmpRefusalsClosed, 1),
                        Err(_) => {}
                        Ok(_) => self.state.count(Counter::VcmpClientsIdleClosed, 1),
                    }
                    // Detaches and releases the socket.
                    drop(self.clients.remove(i));
                }
            }
        }
        more
    }

    /// Takes the requests queued for the daemon and starts their conversations,
    /// until none is left (looking at the routes or waking up queues more).
    fn requests(&mut self) {
        let rerouted = self.state.requests.take_reroute();
        if rerouted {
            self.reroute_again = migration::reroute(self.state);
            // Cleared only once every connection that sleep suspended found
            // a route: an address or route that comes meanwhile asks again.
            if self.state.wake_pending.load(Relaxed) && !migration::wake(self.state) {
                self.state.wake_pending.store(false, Relaxed);
            }
        }
        loop {
            let queued = self.state.requests.take();
            if queued.is_empty() {
                break;
            }
            for r in queued {
                self.request(r);
            }
        }
        if rerouted {
            // Counted once its moves began: a test that sees the count sees
            // them.
            self.state.count(Counter::RouteChecks, 1);
        }
    }

    /// Starts what request `r` asks for.
    fn request(&mut self, r: Request) {
        let (which, to) = match r {
            Request::Migrate { which, to } => (which, to),
            Request::Suspend { which, sleep } => {
                let mut out = KVVec::new();
                if migration::begin_suspend(self.state, which, sleep, &mut out).is_err() {
                    pr_warn!(
                        "netns {}: out of memory suspending connections\n",
                        self.state.net().inum()
                    );
                }
                if !out.is_empty() {
                    pr_info!(
                        "netns {}: suspending {} connection(s) {}{}\n",
                        self.state.net().inum(),
                        out.len(),
                        which,
                        if sleep {
                            ": the host goes to sleep"
                        } else {
                            ""
                        }
                    );
                }
                self.add_conversations(&out);
                if sleep {
                    // The sleep notifier waits for this (and the answers).
                    self.state.sleeps_begun.fetch_add(1, Release);
                }
                return;
            }
        };
        let mut out = KVVec::new();
        if migration::begin(self.state, which, to, &mut out).is_err() {
            pr_warn!(
                "netns {}: out of memory resuming connections\n",
                self.state.net().inum()
            );
        }
        if out.is_empty() {
            return;
        }
        trace::moved(self.state.net().inum(), out.len());
        pr_info!(
            "netns {}: resuming {} connection(s) {} at {}\n",
            self.state.net().inum(),
            out.len(),
            which,
            Show(to)
        );
        // Incoming rules go live before any update leaves.
        self.rules_changed = true;
        self.publish();
        for o in &out {
            events::event_raw(self.state, Event::Resuming, &o.event, None);
        }
        self.add_conversations(&out);
    }

    /// Asks the peers for the keys of the connections that want one, batched
    /// per peer, before any move of this round (a move waits for its
    /// connection's key).
    fn keys(&mut self) {
        if !(self.state.keys_wanted.xchg(false, Acquire) || self.keys_left) {
            return;
        }
        let mut wanted = KVec::new();
        self.keys_left = authentication::wanted(self.state, &mut wanted);
        for Wanted {
            key,
            peer,
            from,
            request,
            ..
        } in wanted
        {
            let queued = self
                .conversation(peer, from, true)
                .and_then(|c| c.queue_key(key, request));
            if queued.is_err() {
                authentication::no_key(self.state, key);
            }
        }
    }

    /// The conversation with `peer` from `from`, asking for keys or not,
    /// that nothing went out of yet, or a new one behind the others.
    fn conversation(
        &mut self,
        peer: IpAddr,
        from: IpAddr,
        keying: bool,
    ) -> Result<&mut Conversation<'a>> {
        let i = match self
            .conversations
            .iter()
            .position(|c| c.takes(peer, from, keying))
        {
            Some(i) => i,
            None => {
                let c = Conversation::new(self.state, peer, from, keying);
                self.conversations.push(c, GFP_KERNEL)?;
                self.conversations.len() - 1
            }
        };
        Ok(&mut self.conversations[i])
    }

    /// Queues each message for its peer: on the conversation with that peer
    /// that nothing went out of yet, or on a new one behind the others.
    fn add_conversations(&mut self, out: &[Outgoing]) {
        for o in out {
            let queued = self
                .conversation(o.peer, o.from, false)
                .and_then(|c| c.queue(o.key, &o.msg));
            if queued.is_err() {
                let kind = Kind::of(&o.msg);
                self.rules_changed |= unanswered(self.state, o.key, kind, c"out of memory");
            }
        }
    }

    /// Advances each conversation; those that are over go.
    fn converse(&mut self) {
        let mut i = 0;
        while i < self.conversations.len() {
            // One conversation per peer at a time, in the order they were
            // asked for: a resume must not overtake the suspension before it,
            // or the peer would activate a helper after the connection resumed.
            // Key requests go beside them: a move may wait for a key.
            let (peer, keying) = (self.conversations[i].peer(), self.conversations[i].keying());
            // A stream of keys kept open for the next ones holds no one up.
            let behind = self.conversations[..i]
                .iter()
                .any(|c| c.peer() == peer && c.keying() == keying && !c.idle());
            let state = self.state;
            let rules_changed = &mut self.rules_changed;
            let (to_kick, nudges) = (&mut self.to_kick, &mut self.nudges);
            let step = self.conversations[i].step(behind, &mut |r| {
                settle(state, rules_changed, to_kick, nudges, r)
            });
            match step {
                Step::Pending => i += 1,
                Step::Done | Step::Failed => {
                    drop(self.conversations.remove(i));
                    if core::mem::take(&mut self.reroute_again) {
                        self.state.requests.reroute();
                    }
                }
            }
        }
    }
}

/// Connections that moved behind a NAT, kicked again a few times after
/// their move (each kick sends an ACK): the peer validates the new path and
/// sends nothing there until one of their packets arrives, and the first
/// ACK may be lost, leaving a connection with nothing in flight waiting for
/// its application to write. The connection, when, and how many more.
struct Nudges(KVec<(Key, i64, u8)>);

/// First nudge after the move's kick; each next one four times later
/// (0.3, 1.5 and 6.3 s after the move).
const NUDGE_FIRST_NS: i64 = 300_000_000;
/// Nudges after the move's kick.
const NUDGES: u8 = 3;

impl Nudges {
    fn add(&mut self, key: Key) {
        let at = ffi::now_ns() + NUDGE_FIRST_NS;
        self.0.push((key, at, NUDGES), GFP_KERNEL).ok();
    }

    fn kick_due(&mut self, state: &NetState) {
        let now = ffi::now_ns();
        let mut i = 0;
        while i < self.0.len() {
            let (key, at, left) = &mut self.0[i];
            if *at > now {
                i += 1;
                continue;
            }
            migration::kick(state, *key);
            *left -= 1;
            if *left == 0 {
                drop(self.0.remove(i));
            } else {
                *at = now + (NUDGE_FIRST_NS << (2 * (NUDGES - *left)));
                i += 1;
            }
        }
    }
}

/// Acts on what a conversation reports about a connection: applies the
/// peer's answers, leaves the connections it got none for as they were.
fn settle(
    state: &NetState,
    rules_changed: &mut bool,
    to_kick: &mut KVec<Key>,
    nudges: &mut Nudges,
    report: Report,
) {
    match report {
        Report::Heard => *rules_changed = true,
        Report::Updated(key, reply, peer, seen) => {
            if migration::finish(state, key, &reply, peer, seen) {
                nudges.add(key);
            }
            // Kicked once the rules are live: it retries what it could not
            // deliver during the move now, not after its backoff.
            to_kick.push(key, GFP_KERNEL).ok();
        }
        Report::Suspended(key, reply) => migration::suspend_answered(state, key, Some(&reply)),
        Report::Retrying(key) => migration::retrying(state, key),
        Report::Unanswered(key, kind) => {
            *rules_changed |= unanswered(state, key, kind, c"the peer's vnatd did not answer");
        }
        Report::Unsendable(key, kind) => {
            *rules_changed |= unanswered(
                state,
                key,
                kind,
                c"the connection has no key, and vcmp_auth is required",
            );
        }
    }
}

/// The message of kind `kind` about connection `key` got no answer; returns
/// whether the rules changed (an aborted move takes its rules back).
fn unanswered(state: &NetState, key: Key, kind: Kind, reason: &CStr) -> bool {
    match kind {
        Kind::Update => {
            migration::abort(state, key, reason);
            true
        }
        Kind::Suspend => {
            migration::suspend_answered(state, key, None);
            false
        }
        Kind::Key => {
            authentication::no_key(state, key);
            false
        }
    }
}
