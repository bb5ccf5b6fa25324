// SPDX-License-Identifier: GPL-2.0

//! `vnatd`, the VNAT daemon (paper section 4.3): one kernel thread per
//! network namespace, listening on TCP port 2031 (module parameter
//! `vcmp_port`) and speaking VCMP.
//!
//! The thread sleeps until one of its sockets has work (their callbacks wake
//! it) or a second passes. It then accepts pending connections, up to
//! `vcmp_max_clients`, refusing and counting the rest, reads what each client
//! sent, decodes it with the shared wire-format code (`vnat/vcmp.rs`), and
//! closes connections that send malformed bytes, that the peer closed, or
//! that stayed silent for `vcmp_idle_timeout_ms`. Nothing it cannot parse is
//! answered; everything is counted in `/proc/net/vnat/stats`.
//!
//! As the peer of a migration, it applies each `VNAT_UPD` (paper 3.3.2.2)
//! to the namespace's virtual connections, publishes the new translation
//! rules and then answers `VNAT_UPD_R`, in order, on the same stream.
//!
//! As the side that moved, it takes requests (`/proc/net/vnat/control`, or
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

#[path = "socket.rs"]
mod socket;

use crate::{
    counters::Counter,
    events::{self, Event},
    ffi::{HookRegistration, KprobeRegistration, Waker},
    interception,
    knobs::{
        HELPER_TIMEOUT_S, VCMP_IDLE_TIMEOUT_MS, VCMP_MAX_CLIENTS, VCMP_PEER_PORT, VCMP_PORT,
        VCMP_RETRIES, VCMP_TIMEOUT_MS,
    },
    migration::{self, Outgoing},
    netns::{Ipv4, NetState},
    requests::Request,
    vcmp::{Message, StreamReader, MSG_LEN},
    virtualization::{Key, VcmpState},
};
use core::ptr::NonNull;
use kernel::{
    bindings,
    prelude::*,
    sync::{
        atomic::{Acquire, Relaxed},
        Arc,
    },
    time::{msecs_to_jiffies, Delta, Instant, Monotonic},
};
use socket::{Received, Socket, Watch};

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
    Daemon::new(state, state.waker()).run();
    0
}

/// How long the thread sleeps at most, and how often it retries to listen.
const TICK_MS: u32 = 1000;
/// How soon a connect that failed at once is tried again.
const QUICK_MS: u32 = 20;
/// Listen backlog of the VCMP socket.
const BACKLOG: i32 = 128;

/// A VCMP client connection.
struct Client<'a> {
    sock: Watch<'a>,
    reader: StreamReader,
    last_heard: Instant<Monotonic>,
    /// Replies not sent yet.
    out: KVec<u8>,
}

/// What a message of a session asks the peer, so what answers it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `VNAT_UPD`, answered by `VNAT_UPD_R`.
    Update,
    /// `VNAT_SUS`, answered by `VNAT_SUS_R`.
    Suspend,
}

/// An outgoing VCMP conversation: the updates (and suspensions) of the
/// connections shared with one peer, sent as one batch, answered in order.
struct Session<'a> {
    peer: u32,
    sock: Option<Watch<'a>>,
    keys: KVec<Key>,
    /// What each message of `msgs` is, in the order of `keys`.
    kinds: KVec<Kind>,
    msgs: KVec<u8>,
    /// Updates answered so far (also across attempts).
    answered: usize,
    /// Bytes of `msgs` sent in this attempt.
    sent: usize,
    reader: StreamReader,
    attempts: u32,
    started: Instant<Monotonic>,
    created: Instant<Monotonic>,
    /// No earlier conversation with the same peer is left: this one began
    /// (at `created`).
    begun: bool,
    /// The last connect failed at once.
    no_route: bool,
    /// The attempt whose updates all went out (their records say
    /// `waiting`); 0: none yet.
    sent_in: u32,
}

/// Records where the updates of connections `keys` are, for the dump.
fn mark(state: &NetState, keys: &[Key], vcmp: VcmpState, attempt: u32) {
    for &k in keys {
        state.connections.with(k, |c| {
            c.vcmp = vcmp;
            c.vcmp_attempts = attempt.min(255) as u8;
        });
    }
}

/// What `msg` asks the peer.
fn kind_of(msg: &Message) -> Kind {
    match msg {
        Message::Suspend(_) => Kind::Suspend,
        _ => Kind::Update,
    }
}

/// How a session step ended.
enum Step {
    Pending,
    Done,
    Failed,
}

/// The thread's own state: its sockets live and die with it.
struct Daemon<'a> {
    state: &'a NetState,
    waker: &'a Waker,
    listener: Option<Watch<'a>>,
    listen_error_logged: bool,
    clients: KVec<Client<'a>>,
    sessions: KVec<Session<'a>>,
    /// The rules must be published again before replies go out.
    rules_changed: bool,
    /// Connections to kick once the rules are published.
    to_kick: KVec<Key>,
    /// The namespace's hooks, while it has rules.
    hooks: Option<HookRegistration>,
    hooks_error_logged: bool,
    /// The kprobes' missed count when the table was last swept.
    missed_seen: u64,
    /// Sweeps still to do for the last growth of that count.
    sweeps_due: u8,
}

/// Why a client connection is closed.
enum Close {
    Eof,
    Malformed,
    Error,
}

impl<'a> Daemon<'a> {
    fn new(state: &'a NetState, waker: &'a Waker) -> Self {
        Self {
            state,
            waker,
            listener: None,
            listen_error_logged: false,
            clients: KVec::new(),
            sessions: KVec::new(),
            rules_changed: false,
            to_kick: KVec::new(),
            hooks: None,
            hooks_error_logged: false,
            missed_seen: 0,
            sweeps_due: 0,
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
            self.forget_destroyed();
            self.requests();
            self.accept();
            self.serve();
            self.run_sessions();
            if self.state.rules_stale.xchg(false, Acquire) {
                self.rules_changed = true;
            }
            self.publish();
            let nap = if self.sessions.iter().any(|s| s.no_route) {
                QUICK_MS
            } else {
                TICK_MS
            };
            self.waker.wait(msecs_to_jiffies(nap) as c_long);
        }
        // Nobody will be there to undo the helpers.
        migration::release_helpers(self.state, None);
        self.hooks = None;
        self.state.hooked.store(false, Relaxed);
        // Clients first: the listener's release disposes of connections that
        // were never accepted. Then the waker may go.
        self.sessions.clear();
        self.clients.clear();
        self.listener = None;
        self.state.listening.store(false, Relaxed);
    }

    fn listen(&mut self) {
        let net = self.state.net();
        let port = VCMP_PORT.get() as u16;
        match Socket::listen(net, port, BACKLOG) {
            Ok(sock) => {
                self.listener = Some(sock.watch(self.waker));
                self.state.listening.store(true, Relaxed);
                pr_info!(
                    "netns {}: vnatd listening on port {}\n",
                    net.inum(),
                    port
                );
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

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok(Some(sock)) = listener.socket().accept() {
            // Watch at once: children inherit the listener's callbacks, which
            // must be detached before any of them is released.
            let sock = sock.watch(self.waker);
            if self.clients.len() >= VCMP_MAX_CLIENTS.get() as usize {
                self.state.count(Counter::VcmpClientsRefused, 1);
                continue;
            }
            let client = Client {
                sock,
                reader: StreamReader::new(),
                last_heard: Instant::now(),
                out: KVec::new(),
            };
            match self.clients.push(client, GFP_KERNEL) {
                Ok(()) => self.state.count(Counter::VcmpClientsAccepted, 1),
                Err(_) => self.state.count(Counter::VcmpClientsRefused, 1),
            }
        }
    }

    /// Undoes the helpers older than `helper_timeout_s`.
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

    fn expire_helpers(&self) {
        let timeout = i64::from(HELPER_TIMEOUT_S.get());
        if timeout > 0 && self.state.connections.helpers() > 0 {
            migration::release_helpers(self.state, Some(timeout * 1_000_000_000));
        }
    }

    /// Publishes the rules if they changed.
    fn publish(&mut self) {
        if !self.rules_changed {
            return;
        }
        self.rules_changed = false;
        match self.state.rules.rebuild(&self.state.connections) {
            Ok(0) => {}
            Ok(conflicts) => self.state.count(Counter::RuleConflicts, conflicts),
            Err(e) => {
                // Try again on the next round.
                self.rules_changed = true;
                pr_warn!(
                    "netns {}: cannot publish rules: {:?}\n",
                    self.state.net().inum(),
                    e
                );
                return;
            }
        }
        if !self.sync_hooks() {
            // Try again on the next round.
            self.rules_changed = true;
            return;
        }
        for sk in self.to_kick.drain_all() {
            migration::kick(self.state, sk);
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

    fn serve(&mut self) {
        let idle = Delta::from_millis(i64::from(VCMP_IDLE_TIMEOUT_MS.get()));
        let mut verdicts = KVec::new();
        for i in 0..self.clients.len() {
            let v = self.serve_one(i);
            if verdicts.push(v, GFP_KERNEL).is_err() {
                return;
            }
        }
        // The peer may send from its new address as soon as it reads our
        // reply: our rules must be live before the reply leaves.
        self.publish();
        let mut i = 0;
        let mut verdicts = verdicts.into_iter();
        while i < self.clients.len() {
            let mut verdict = verdicts.next().unwrap_or(Ok(()));
            // A client that sent its last update and closed still gets the
            // replies.
            if matches!(verdict, Ok(()) | Err(Close::Eof)) {
                if let Err(e) = self.flush(i) {
                    verdict = Err(e);
                }
            }
            let idle_out = self.clients[i].last_heard.elapsed() > idle;
            match verdict {
                Ok(()) if !idle_out => i += 1,
                r => {
                    if let Err(why) = r {
                        if let Close::Malformed = why {
                            self.state.count(Counter::VcmpMalformed, 1);
                        }
                    } else {
                        self.state.count(Counter::VcmpClientsIdleClosed, 1);
                    }
                    // Detaches and releases the socket.
                    drop(self.clients.remove(i));
                }
            }
        }
    }

    /// Sends what client `i` has not been sent yet; `Err` means close it.
    fn flush(&mut self, i: usize) -> core::result::Result<(), Close> {
        let client = &mut self.clients[i];
        if client.out.is_empty() {
            return Ok(());
        }
        let n = client
            .sock
            .socket()
            .send(&client.out)
            .map_err(|_| Close::Error)?;
        let left = client.out.len() - n;
        client.out.copy_within(n.., 0);
        client.out.truncate(left);
        Ok(())
    }

    /// Reads everything client `i` sent; `Err` means close it.
    fn serve_one(&mut self, i: usize) -> core::result::Result<(), Close> {
        let state = self.state;
        let mut buf = [0u8; 4 * MSG_LEN];
        let mut looked_again = false;
        loop {
            let client = &mut self.clients[i];
            let n = match client.sock.socket().recv(&mut buf) {
                Ok(Received::Data(n)) => n,
                Ok(Received::WouldBlock) => {
                    if !client.sock.socket().is_dead() {
                        return Ok(());
                    }
                    // Bytes and FIN may have arrived between the two looks:
                    // read once more, or they would be lost uncounted.
                    if looked_again {
                        return Err(Close::Eof);
                    }
                    looked_again = true;
                    continue;
                }
                Ok(Received::Eof) => return Err(Close::Eof),
                Err(_) => return Err(Close::Error),
            };
            client.last_heard = Instant::now();
            let mut malformed = false;
            let mut changed = false;
            let mut kicks = KVec::new();
            let out = &mut client.out;
            client.reader.feed(&buf[..n], |m| match m {
                Ok(Message::Update(u)) if !malformed => {
                    state.count(Counter::VcmpMessages, 1);
                    let (reply, sk) = migration::accept_update(state, &u);
                    changed |= !reply.is_refused();
                    if let Some(sk) = sk {
                        kicks.push(sk, GFP_KERNEL).ok();
                    }
                    let bytes = Message::UpdateReply(reply).encode();
                    if out.extend_from_slice(&bytes, GFP_KERNEL).is_err() {
                        malformed = true;
                    }
                }
                Ok(Message::Suspend(u)) if !malformed => {
                    state.count(Counter::VcmpMessages, 1);
                    let reply = migration::accept_suspend(state, &u);
                    let bytes = Message::SuspendReply(reply).encode();
                    if out.extend_from_slice(&bytes, GFP_KERNEL).is_err() {
                        malformed = true;
                    }
                }
                // Replies answer updates; nobody asked this peer for one.
                _ => malformed = true,
            });
            self.rules_changed |= changed;
            for sk in kicks {
                self.to_kick.push(sk, GFP_KERNEL).ok();
            }
            if malformed {
                return Err(Close::Malformed);
            }
        }
    }

    /// Takes the requests queued for the daemon and starts their sessions.
    fn requests(&mut self) {
        for r in self.state.requests.take() {
            let (which, to) = match r {
                Request::Migrate { which, to } => (which, to),
                Request::Suspend { which } => {
                    let mut out = KVec::new();
                    if migration::begin_suspend(self.state, which, &mut out).is_err() {
                        pr_warn!(
                            "netns {}: out of memory suspending connections\n",
                            self.state.net().inum()
                        );
                    }
                    if !out.is_empty() {
                        pr_info!(
                            "netns {}: suspending {} connection(s) {}\n",
                            self.state.net().inum(),
                            out.len(),
                            which
                        );
                    }
                    self.add_sessions(&out);
                    continue;
                }
            };
            let mut out = KVec::new();
            if migration::begin(self.state, which, to, &mut out).is_err() {
                pr_warn!(
                    "netns {}: out of memory resuming connections\n",
                    self.state.net().inum()
                );
            }
            if out.is_empty() {
                continue;
            }
            pr_info!(
                "netns {}: resuming {} connection(s) {} at {}\n",
                self.state.net().inum(),
                out.len(),
                which,
                Ipv4(to)
            );
            // Incoming rules go live before any update leaves.
            self.rules_changed = true;
            self.publish();
            for o in &out {
                events::event_raw(self.state, Event::Resuming, &o.event, None);
            }
            self.add_sessions(&out);
        }
    }

    /// Groups updates by peer into sessions.
    fn add_sessions(&mut self, out: &[Outgoing]) {
        for o in out {
            let i = match self
                .sessions
                .iter()
                .position(|s| s.peer == o.peer && s.attempts == 0)
            {
                Some(i) => i,
                None => {
                    let now = Instant::now();
                    let s = Session {
                        peer: o.peer,
                        sock: None,
                        keys: KVec::new(),
                        kinds: KVec::new(),
                        msgs: KVec::new(),
                        answered: 0,
                        sent: 0,
                        reader: StreamReader::new(),
                        attempts: 0,
                        started: now,
                        created: now,
                        begun: false,
                        no_route: false,
                        sent_in: 0,
                    };
                    if self.sessions.push(s, GFP_KERNEL).is_err() {
                        self.unanswered(o.key, kind_of(&o.msg), c"out of memory");
                        continue;
                    }
                    self.sessions.len() - 1
                }
            };
            let s = &mut self.sessions[i];
            let kind = kind_of(&o.msg);
            let bytes = o.msg.encode();
            if s.keys.push(o.key, GFP_KERNEL).is_err()
                || s.kinds.push(kind, GFP_KERNEL).is_err()
                || s.msgs.extend_from_slice(&bytes, GFP_KERNEL).is_err()
            {
                let n = s.msgs.len() / MSG_LEN;
                s.keys.truncate(n);
                s.kinds.truncate(n);
                self.unanswered(o.key, kind, c"out of memory");
            }
        }
    }

    /// The message of kind `kind` about connection `key` got no answer.
    fn unanswered(&mut self, key: Key, kind: Kind, reason: &CStr) {
        match kind {
            Kind::Update => {
                migration::abort(self.state, key, reason);
                self.rules_changed = true;
            }
            Kind::Suspend => migration::suspend_answered(self.state, key, None),
        }
    }

    fn run_sessions(&mut self) {
        let mut i = 0;
        while i < self.sessions.len() {
            match self.step(i) {
                Step::Pending => i += 1,
                Step::Done => drop(self.sessions.remove(i)),
                Step::Failed => {
                    let s = &self.sessions[i];
                    pr_warn!(
                        "netns {}: vnatd of {} did not answer after {} attempt(s); {} connection(s) left as they were\n",
                        self.state.net().inum(),
                        Ipv4(s.peer),
                        s.attempts,
                        s.keys.len() - s.answered
                    );
                    let Ok(s) = self.sessions.remove(i) else {
                        break;
                    };
                    for (&k, &kind) in s.keys[s.answered..].iter().zip(&s.kinds[s.answered..]) {
                        self.unanswered(k, kind, c"the peer's vnatd did not answer");
                    }
                }
            }
        }
    }

    /// Advances session `i`.
    fn step(&mut self, i: usize) -> Step {
        let state = self.state;
        let waker = self.waker;
        let port = match VCMP_PEER_PORT.get() {
            0 => VCMP_PORT.get() as u16,
            p => p as u16,
        };
        let timeout = Delta::from_millis(i64::from(VCMP_TIMEOUT_MS.get()));
        // One conversation per peer at a time, in the order they were
        // asked for: a resume must not overtake the suspension before it,
        // or the peer would activate a helper after the connection resumed.
        let peer = self.sessions[i].peer;
        let behind = self.sessions[..i].iter().any(|o| o.peer == peer);
        let s = &mut self.sessions[i];
        let now = Instant::now();
        if !s.begun {
            if behind {
                return Step::Pending;
            }
            s.begun = true;
            s.created = now;
        }
        if s.sock.is_none() {
            // Attempts start at least a tick apart; a connect that failed at
            // once (no route yet: the new address's event comes before its
            // route) is tried again sooner and, within the first
            // `vcmp_timeout_ms`, does not count as an attempt.
            let spacing = if s.no_route { QUICK_MS } else { TICK_MS };
            if s.attempts > 0 && s.started.elapsed() < Delta::from_millis(spacing.into()) {
                return Step::Pending;
            }
            if s.attempts > VCMP_RETRIES.get() {
                return Step::Failed;
            }
            s.attempts += 1;
            s.started = now;
            s.sent = s.answered * MSG_LEN;
            s.reader = StreamReader::new();
            match Socket::connect(state.net(), s.peer, port) {
                Ok(sock) => {
                    s.no_route = false;
                    s.sock = Some(sock.watch(waker));
                    mark(
                        state,
                        &s.keys[s.answered..],
                        VcmpState::Connecting,
                        s.attempts,
                    );
                }
                Err(_) => {
                    s.no_route = true;
                    if s.created.elapsed() < timeout {
                        s.attempts -= 1;
                    }
                    return Step::Pending;
                }
            }
        }
        let Some(sock) = &s.sock else {
            return Step::Pending;
        };
        let sock = sock.socket();
        let mut failed = false;
        if sock.is_established() {
            while s.sent < s.msgs.len() {
                match sock.send(&s.msgs[s.sent..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        let before = s.sent / MSG_LEN;
                        s.sent += n;
                        for &kind in &s.kinds[before..s.sent / MSG_LEN] {
                            state.count(
                                match kind {
                                    Kind::Update => Counter::UpdatesSent,
                                    Kind::Suspend => Counter::SuspendsSent,
                                },
                                1,
                            );
                        }
                    }
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if s.sent == s.msgs.len() && s.sent_in != s.attempts {
                s.sent_in = s.attempts;
                mark(state, &s.keys[s.answered..], VcmpState::Waiting, s.attempts);
            }
            let mut buf = [0u8; 8 * MSG_LEN];
            let mut looked_again = false;
            while !failed {
                match sock.recv(&mut buf) {
                    Ok(Received::Data(n)) => {
                        let (keys, kinds, answered) = (&s.keys, &s.kinds, &mut s.answered);
                        let to_kick = &mut self.to_kick;
                        s.reader.feed(&buf[..n], |m| match m {
                            Ok(Message::UpdateReply(r))
                                if kinds.get(*answered) == Some(&Kind::Update) =>
                            {
                                state.count(Counter::VcmpMessages, 1);
                                migration::finish(state, keys[*answered], &r);
                                to_kick.push(keys[*answered], GFP_KERNEL).ok();
                                *answered += 1;
                            }
                            Ok(Message::SuspendReply(r))
                                if kinds.get(*answered) == Some(&Kind::Suspend) =>
                            {
                                state.count(Counter::VcmpMessages, 1);
                                migration::suspend_answered(state, keys[*answered], Some(&r));
                                *answered += 1;
                            }
                            _ => {
                                state.count(Counter::VcmpMalformed, 1);
                                failed = true;
                            }
                        });
                        self.rules_changed = true;
                    }
                    // Replies and FIN may have arrived since the recv: one
                    // more look before the socket is judged dead below.
                    Ok(Received::WouldBlock) if sock.is_dead() && !looked_again => {
                        looked_again = true;
                    }
                    Ok(Received::WouldBlock) => break,
                    Ok(Received::Eof) | Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
        if s.answered == s.keys.len() {
            return Step::Done;
        }
        if failed || sock.is_dead() || s.started.elapsed() > timeout {
            // Drop the socket; the next attempt starts a tick after this one.
            s.sock = None;
            if s.attempts > VCMP_RETRIES.get() {
                return Step::Failed;
            }
        }
        Step::Pending
    }
}
