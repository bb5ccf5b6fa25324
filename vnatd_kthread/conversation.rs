// SPDX-License-Identifier: GPL-2.0

//! One outgoing VCMP conversation (paper 3.3.2.2): this host tells the vnatd
//! of one peer about the connections they share, after a move (`VNAT_UPD`)
//! or before a suspension (`VNAT_SUS`), or asks it for their keys.
//!
//! A conversation holds the messages for its peer in the order they were
//! asked for and sends them as one batch on one VCMP connection from the
//! address they name (the peer believes them only from there); the peer
//! answers them in order on the same stream. An attempt whose socket fails
//! or dies, or in which the peer sends nothing for `vcmp_timeout_ms` (a
//! large batch is answered in parts, each of which counts), is followed a
//! tick after it began by another on
//! a new connection, which sends again only what was not answered yet; after
//! `vcmp_retries` more attempts the conversation gives up, unless it carries
//! only moves: those go on *retrying* (a slow DHCP, a captive portal, a peer
//! briefly unreachable), with a backoff of 2, 4 and then 8 s between
//! attempts, each jittered by a quarter, until `resume_deadline_s` after the
//! conversation began, and at once when an address of the namespace comes
//! up. A move that a later one replaced (the host moved on, or home) is
//! dropped from it, not failed: the later move owns its connection.
//!
//! Messages are encoded for each attempt: a connection with a key moves by
//! version 2 under it, with a new counter each time (a retry of an update
//! the peer took, whose answer was lost, is then not refused as a replay);
//! one without, by version 1 if `vcmp_auth` allows it. A conversation that
//! asks for keys (`keying`) opens each attempt with HELLO and sends its
//! KEYs once HELLO_R came. A peer that closes the stream on HELLO may speak
//! only version 1 (or had no room for us): when the attempts are over, its
//! connections are left without keys. Once HELLO_R came, an attempt waits
//! for the answers to its KEYs up to [`KEY_SILENCE_MS`], not
//! `vcmp_timeout_ms`: the peer keys a connection when it reads the
//! request, so a stream given up before the answer came leaves the
//! connection keyed at the peer and not here (a busy peer, under load,
//! answered later than `vcmp_timeout_ms`, and its moves failed); the peer
//! grants a TCP connection's key again only if asked within a minute, with
//! its ISN, before anything went under it.
//!
//! A conversation does not act on the answers: it reports each of them, and
//! each connection it gave up on, to the daemon ([`Report`]). The daemon owns
//! the rules, and the list of conversations, so it also decides when one may
//! begin (one per peer at a time, in request order).

use super::{
    socket::{Received, Socket, Watch},
    QUICK_MS, TICK_MS,
};
use crate::{
    authentication::{self, Handshake, Source},
    counters::Counter,
    ffi::{self, random_u32},
    ffi::{
        trace::{self, Vcmp},
        HmacSha256, Secret,
    },
    knobs::{
        peer_vcmp_port, RESUME_DEADLINE_S, VCMP_IDLE_TIMEOUT_MS, VCMP_RETRIES, VCMP_TIMEOUT_MS,
    },
    netns::{NetState, Show},
    vcmp::{self, Endpoint, Message, SuspendReply, UpdateReply, MSG_LEN},
    vcmp2::{self, Frame, KeyRequest, StreamReader, MAX_LEN},
    virtualization::{Key, State, VcmpState},
};
use core::net::IpAddr;
use kernel::{
    prelude::*,
    time::{Delta, Instant, Monotonic},
};

/// What a message of a conversation asks the peer, so what answers it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `VNAT_UPD` (or UPD), answered by `VNAT_UPD_R` (UPD_R).
    Update,
    /// `VNAT_SUS` (or SUS), answered by `VNAT_SUS_R` (SUS_R).
    Suspend,
    /// KEY, answered by KEY_R.
    Key,
}

impl Kind {
    /// What `msg` asks the peer.
    pub(super) fn of(msg: &Message) -> Self {
        match msg {
            Message::Suspend(_) => Self::Suspend,
            _ => Self::Update,
        }
    }

    /// The counter of messages of this kind that went out.
    fn sent(self) -> Option<Counter> {
        match self {
            Self::Update => Some(Counter::UpdatesSent),
            Self::Suspend => Some(Counter::SuspendsSent),
            Self::Key => None,
        }
    }
}

/// What a conversation tells the daemon about its connections, as it
/// happens.
pub(super) enum Report {
    /// Bytes came from the peer. What they answered may have changed the
    /// rules, so the daemon publishes them again.
    Heard,
    /// The peer, reached there, answered the update of this connection;
    /// under its key (version 2), it said where the update came from.
    Updated(Key, UpdateReply, Source, Option<Endpoint>),
    /// The peer answered the suspension of this connection.
    Suspended(Key, SuspendReply),
    /// The conversation gave up: the message of this kind about this
    /// connection got no answer.
    Unanswered(Key, Kind),
    /// The update of this connection got no answer in `vcmp_retries`
    /// more attempts; the conversation goes on retrying it.
    Retrying(Key),
    /// The message of this kind about this connection cannot go out: the
    /// connection has no key and `vcmp_auth` is `required`.
    Unsendable(Key, Kind),
}

/// Where a step left a conversation.
pub(super) enum Step {
    /// It waits: for its turn, for the peer, or for its next attempt.
    Pending,
    /// Every message was answered.
    Done,
    /// It gave up; each message not answered was reported
    /// ([`Report::Unanswered`]).
    Failed,
}

/// What a message asks, before it is encoded for an attempt.
enum Ask {
    /// A `VNAT_UPD` or `VNAT_SUS`, as the paper has it.
    Paper(Message),
    /// A KEY.
    Key(KeyRequest),
}

/// One message of a conversation.
struct Item {
    /// The connection it is about.
    key: Key,
    ask: Ask,
    /// Its counter under the connection's key in this attempt; 0: it went
    /// as version 1 (or is a KEY).
    counter: u64,
    /// Where its bytes end in this attempt's `out`; 0: not encoded yet.
    end: usize,
    /// A KEY: its place among the KEYs of this attempt's stream.
    index: u32,
}

impl Item {
    fn kind(&self) -> Kind {
        match &self.ask {
            Ask::Paper(m) => Kind::of(m),
            Ask::Key(_) => Kind::Key,
        }
    }
}

/// An outgoing VCMP conversation: the updates (and suspensions) of the
/// connections shared with one peer, or their key requests, sent as one
/// batch, answered in order.
pub(super) struct Conversation<'a> {
    state: &'a NetState,
    /// The peer's vnatd, judged once for what its replies may say.
    peer: Source,
    /// The local address the messages name, which the peer believes them
    /// only from: the conversation's connections go from it.
    from: IpAddr,
    /// It asks for keys (and carries nothing else).
    keying: bool,
    sock: Option<Watch<'a>>,
    /// This attempt's second connection, started when the first was not
    /// established [`SYN_AGAIN_MS`] after it began ([`Self::race`]).
    second: Option<Watch<'a>>,
    /// This attempt started its second connection (or tried to).
    second_tried: bool,
    items: KVec<Item>,
    /// This attempt's bytes: HELLO, or the messages not answered yet.
    out: KVec<u8>,
    /// Messages answered so far (also across attempts).
    answered: usize,
    /// Bytes of `out` sent in this attempt.
    sent: usize,
    /// Bytes of this attempt's stream before `out` (a stream of keys kept
    /// open starts `out` anew for each batch).
    base: usize,
    /// KEYs encoded on this attempt's stream.
    keys: u32,
    reader: StreamReader,
    /// This attempt's HELLO went out; HELLO_R has not come yet.
    handshake: Option<Handshake>,
    /// This attempt's stream key, once HELLO_R came.
    stream: Option<Secret>,
    attempts: u32,
    started: Instant<Monotonic>,
    /// When this attempt last had a reply from the peer (or began).
    heard: Instant<Monotonic>,
    created: Instant<Monotonic>,
    /// No earlier conversation with the same peer is left: this one began
    /// (at `created`).
    begun: bool,
    /// The last connect failed at once.
    no_route: bool,
    /// The namespace's route epoch when the last attempt began.
    route_epoch: u32,
    /// The attempt whose messages all went out (their records say
    /// `waiting`); 0: none yet.
    sent_in: u32,
    /// How long after this attempt began the next may begin.
    spacing_ms: u32,
    /// The conversation said that its moves are retrying.
    retry_reported: bool,
    /// The namespace's address epoch when this attempt began.
    epoch: u32,
}

/// How long an attempt's connection may take to be established before a
/// second one starts beside it: RFC 8305's Connection Attempt Delay, which
/// Happy Eyeballs waits before its next attempt.
const SYN_AGAIN_MS: u32 = 250;

/// The longest wait between two attempts of a move that is retrying.
const RETRY_MAX_MS: u32 = 8000;

/// How long an attempt that asks for keys waits for the peer to answer.
const KEY_SILENCE_MS: i64 = 30_000;

/// How long a stream that asks for keys stays open once every KEY on it
/// was answered (at most half of `vcmp_idle_timeout_ms`, so that the peer,
/// which closes streams idle for that long, does not close it first): the
/// KEYs of the connections opened meanwhile go on it, under its stream key,
/// without another connect and X25519 exchange.
const KEY_STREAM_KEEP_MS: i64 = 2_000;

impl<'a> Conversation<'a> {
    /// A conversation with the vnatd of `peer`, from local address `from`,
    /// asking for keys (`keying`) or not, with nothing queued yet.
    pub(super) fn new(state: &'a NetState, peer: IpAddr, from: IpAddr, keying: bool) -> Self {
        let now = Instant::now();
        Self {
            state,
            peer: Source::new(state, peer),
            from,
            keying,
            sock: None,
            second: None,
            second_tried: false,
            items: KVec::new(),
            out: KVec::new(),
            answered: 0,
            sent: 0,
            base: 0,
            keys: 0,
            reader: StreamReader::new(),
            handshake: None,
            stream: None,
            attempts: 0,
            started: now,
            heard: now,
            created: now,
            begun: false,
            no_route: false,
            route_epoch: 0,
            sent_in: 0,
            spacing_ms: TICK_MS,
            retry_reported: false,
            epoch: 0,
        }
    }

    /// The address of the peer's vnatd.
    pub(super) fn peer(&self) -> IpAddr {
        self.peer.addr()
    }

    /// The local address it speaks from.
    pub(super) fn from(&self) -> IpAddr {
        self.from
    }

    /// Whether it carries a message about connection `key` that is not
    /// answered yet.
    pub(super) fn carries(&self, key: Key) -> bool {
        self.items[self.answered..].iter().any(|it| it.key == key)
    }

    /// Whether it asks for keys.
    pub(super) fn keying(&self) -> bool {
        self.keying
    }

    /// Whether a message for `peer`, to go from local address `from`, a key
    /// request (`keying`) or not, may join this conversation's batch: it is
    /// of the same sort, with `peer` from `from`, and no attempt counts
    /// yet, so nothing of it went out; or it asks for keys on a stream
    /// whose key is agreed, where KEYs go as they come ([`Self::open`]).
    pub(super) fn takes(&self, peer: IpAddr, from: IpAddr, keying: bool) -> bool {
        self.peer.addr() == peer
            && self.from == from
            && self.keying == keying
            && (self.attempts == 0 || self.open())
    }

    /// Whether it asks for keys on a stream whose key is agreed (HELLO_R
    /// came): a KEY queued now goes on it at once.
    fn open(&self) -> bool {
        self.keying && self.stream.is_some() && self.sock.is_some()
    }

    /// Whether it is such a stream with every KEY answered, kept for the
    /// next ones ([`KEY_STREAM_KEEP_MS`]): no later conversation with the
    /// peer waits for it.
    pub(super) fn idle(&self) -> bool {
        self.open() && self.answered == self.items.len()
    }

    /// Whether the last connect failed at once (no route yet) within the
    /// first `vcmp_timeout_ms`: it is tried again sooner than a tick.
    pub(super) fn no_route(&self) -> bool {
        self.no_route && self.quick()
    }

    /// Whether the last connect found no route and a route changed since:
    /// the next attempt is due now.
    pub(super) fn route_came(&self) -> bool {
        self.no_route() && self.state.route_epoch() != self.route_epoch
    }

    /// Whether a connect that fails at once (no route) does not count as
    /// an attempt: in the first `vcmp_timeout_ms` of the conversation, or
    /// of an address of the namespace (its route comes after it).
    fn quick(&self) -> bool {
        let window = i64::from(VCMP_TIMEOUT_MS.get()) * 1_000_000;
        self.created.elapsed() < Delta::from_nanos(window)
            || self.state.since_address_came_ns() < window
    }

    /// Whether the update of `it` is still this conversation's to send: its
    /// connection still moves to the address the conversation is from, and
    /// its peer is still where the conversation goes (a peer that moved
    /// meanwhile, and told us, gets the update at its new address in
    /// another conversation: [`crate::migration::resend`]).
    fn current(&self, it: &Item) -> bool {
        it.kind() == Kind::Update
            && self
                .state
                .connections
                .with(it.key, |c| {
                    c.state == State::Resuming
                        && c.mapping.local_physical.addr == self.from
                        && c.mapping.remote_physical.addr == self.peer.addr()
                })
                .unwrap_or(false)
    }

    /// Whether it may try again after `vcmp_retries` more attempts: it
    /// carries only moves, some still its own, and `resume_deadline_s`
    /// has not passed since it began.
    fn may_retry(&self) -> bool {
        let deadline = Delta::from_secs(i64::from(RESUME_DEADLINE_S.get()));
        let left = &self.items[self.answered..];
        !self.keying
            && self.created.elapsed() < deadline
            && left.iter().all(|it| it.kind() == Kind::Update)
            && left.iter().any(|it| self.current(it))
    }

    /// Whether no attempt is left: `vcmp_retries` more than the first were
    /// made, and it may not retry.
    fn out_of_attempts(&self) -> bool {
        self.attempts > VCMP_RETRIES.get() && !self.may_retry()
    }

    /// How long after attempt `self.attempts` begins the next may: a tick
    /// for the first `vcmp_retries`, then 2, 4 and 8 s (at most), each
    /// jittered to between three and five quarters of itself, so that many
    /// hosts behind one captive portal do not retry in step.
    fn spacing(&self) -> u32 {
        let past = self.attempts.saturating_sub(VCMP_RETRIES.get());
        if past == 0 {
            return TICK_MS;
        }
        let base = (TICK_MS << past.min(3)).min(RETRY_MAX_MS);
        base - base / 4 + random_u32() % (base / 2 + 1)
    }

    fn push(&mut self, key: Key, ask: Ask) -> Result {
        let item = Item {
            key,
            ask,
            counter: 0,
            end: 0,
            index: 0,
        };
        self.items.push(item, GFP_KERNEL)?;
        Ok(())
    }

    /// Queues `msg` (a `VNAT_UPD` or `VNAT_SUS`), about connection `key`,
    /// behind the messages queued before.
    pub(super) fn queue(&mut self, key: Key, msg: &Message) -> Result {
        self.push(key, Ask::Paper(*msg))
    }

    /// Queues a KEY for connection `key`, behind those queued before; on
    /// an open stream ([`Self::open`]), encoded to go at once. A KEY that
    /// comes to an idle stream begins a batch: its attempts and its
    /// silence count from now, and what was answered is forgotten.
    pub(super) fn queue_key(&mut self, key: Key, request: KeyRequest) -> Result {
        if !self.open() {
            return self.push(key, Ask::Key(request));
        }
        if self.idle() {
            self.items.clear();
            self.base += self.sent;
            self.out.clear();
            self.sent = 0;
            self.answered = 0;
            self.attempts = 1;
            self.heard = Instant::now();
        }
        self.push(key, Ask::Key(request))?;
        self.encode_keys()
    }

    /// Advances the conversation as far as it goes without waiting, and
    /// reports what happens to its connections on the way. `behind`: an
    /// earlier conversation with the same peer is not over yet.
    pub(super) fn step(&mut self, behind: bool, report: &mut impl FnMut(Report)) -> Step {
        let now = Instant::now();
        if !self.begin(behind, now) {
            return Step::Pending;
        }
        if self.keying && !self.state.net().is_local(self.from) {
            // What came before the address went is still read; then the
            // stream closes.
            let mut out = 0;
            if let Some(sock) = self.sock.take() {
                if !sock.socket().is_connecting() {
                    let _ = self.read_replies(sock.socket(), report);
                    out = usize::try_from(sock.socket().transmitted()).unwrap_or(usize::MAX);
                }
            }
            if self.answered == self.items.len() {
                return Step::Done;
            }
            return self.address_gone(out.saturating_sub(self.base));
        }
        if self.sock.is_none() {
            if self.attempts > VCMP_RETRIES.get()
                && !self.items[self.answered..]
                    .iter()
                    .any(|it| self.current(it))
            {
                // Every move it carries was replaced by a later one.
                return self.give_up(report);
            }
            if !self.due() || !self.ready() {
                return Step::Pending;
            }
            if self.out_of_attempts() {
                return self.give_up(report);
            }
            if !self.connect(now, report) {
                return if self.answered == self.items.len() {
                    Step::Done
                } else {
                    Step::Pending
                };
            }
        }
        // Out of `self` while the attempt uses it; `end_or_keep` puts it
        // back unless the attempt is over.
        let Some(sock) = self.sock.take() else {
            return Step::Pending;
        };
        let sock = self.race(sock);
        // Once connected, read also after the peer closed or reset it: a
        // vnatd that closes a stream for its refusals sends its replies so
        // far, which then come with the FIN.
        let s = sock.socket();
        let failed = !s.is_connecting()
            && ((s.is_established() && !self.send_queued(s)) || !self.read_replies(s, report));
        if self.answered == self.items.len() {
            // All answered: a stream of keys stays open a while for the
            // next ones; else the socket is closed here.
            let keep = KEY_STREAM_KEEP_MS.min(i64::from(VCMP_IDLE_TIMEOUT_MS.get()) / 2);
            if self.keying
                && self.stream.is_some()
                && !failed
                && !sock.socket().is_dead()
                && self.heard.elapsed() < Delta::from_millis(keep)
            {
                self.sock = Some(sock);
                return Step::Pending;
            }
            return Step::Done;
        }
        self.end_or_keep(sock, failed, report)
    }

    /// The connection this attempt goes on with, of `sock` (its first) and
    /// the second. A lost SYN (the first packet on a new network often is:
    /// a link whose queue is not active yet, a neighbour not resolved)
    /// costs TCP's initial retransmission timeout, a second, which a move
    /// would wait through; so an attempt whose connection is not
    /// established [`SYN_AGAIN_MS`] after it began starts a second one
    /// beside it, from another port, and goes on with whichever is
    /// established first, as Happy Eyeballs does (RFC 8305). Once, per
    /// attempt: on a path slower than that, the first one's answer comes.
    fn race(&mut self, sock: Watch<'a>) -> Watch<'a> {
        if sock.socket().is_established() {
            self.second = None;
            self.second_tried = true;
            return sock;
        }
        if let Some(second) = self.second.take() {
            if second.socket().is_established() || sock.socket().is_dead() {
                return second;
            }
            self.second = Some(second);
            return sock;
        }
        // A connection that is dead (reset, closed) ends the attempt
        // (`end_or_keep`).
        if !self.second_tried
            && !sock.socket().is_dead()
            && self.started.elapsed() >= Delta::from_millis(SYN_AGAIN_MS.into())
        {
            self.second_tried = true;
            let port = peer_vcmp_port();
            if let Ok(s) = Socket::connect(self.state.net(), self.from, self.peer.addr(), port) {
                self.second = Some(s.watch(self.state.waker()));
            }
        }
        sock
    }

    /// How long until [`Self::race`] starts this attempt's second
    /// connection, if it will (the daemon wakes for it).
    pub(super) fn second_due_ms(&self) -> Option<u32> {
        let sock = self.sock.as_ref()?;
        if self.second_tried || sock.socket().is_established() || sock.socket().is_dead() {
            return None;
        }
        let left = i64::from(SYN_AGAIN_MS) - self.started.elapsed().as_millis();
        Some(u32::try_from(left.max(1)).unwrap_or(SYN_AGAIN_MS))
    }

    /// Whether the conversation may go on: it begins when no earlier one
    /// with the same peer is left, and its first `vcmp_timeout_ms` count
    /// from then.
    fn begin(&mut self, behind: bool, now: Instant<Monotonic>) -> bool {
        if !self.begun {
            if behind {
                return false;
            }
            self.begun = true;
            self.created = now;
        }
        true
    }

    /// Whether the next attempt may start. Attempts start at least a tick
    /// apart ([`Self::spacing`]); a connect that failed at once (no route
    /// yet: the new address's event comes before its route) is tried again
    /// sooner; a retrying move is tried again at once when an address came
    /// up since its last attempt began.
    fn due(&self) -> bool {
        let spacing = if self.no_route() {
            QUICK_MS
        } else {
            self.spacing_ms
        };
        self.attempts == 0
            || self.started.elapsed() >= Delta::from_millis(spacing.into())
            || self.route_came()
            || (self.attempts > VCMP_RETRIES.get() && self.state.address_epoch() != self.epoch)
    }

    /// Whether the messages may be encoded: no connection of theirs is
    /// still getting its key (which decides the version they go in).
    fn ready(&self) -> bool {
        self.keying
            || self.items[self.answered..]
                .iter()
                .all(|i| authentication::settled(self.state, i.key))
    }

    /// Starts an attempt: a new VCMP connection from the address the
    /// messages name, on which everything not answered yet goes again. False if
    /// the connect failed at once (which, in the first `vcmp_timeout_ms`
    /// of the conversation or of an address, does not count as an
    /// attempt), or nothing is left to send.
    fn connect(&mut self, now: Instant<Monotonic>, report: &mut impl FnMut(Report)) -> bool {
        let port = peer_vcmp_port();
        self.reader = StreamReader::new();
        self.stream = None;
        self.handshake = None;
        self.second = None;
        self.second_tried = false;
        self.base = 0;
        self.keys = 0;
        if !self.encode(report) {
            return false;
        }
        self.attempts += 1;
        self.started = now;
        self.heard = now;
        self.spacing_ms = self.spacing();
        self.epoch = self.state.address_epoch();
        self.route_epoch = self.state.route_epoch();
        let retrying = self.attempts > VCMP_RETRIES.get() + 1;
        if retrying && !self.retry_reported {
            self.retry_reported = true;
            for it in &self.items[self.answered..] {
                if self.current(it) {
                    report(Report::Retrying(it.key));
                }
            }
        }
        match Socket::connect(self.state.net(), self.from, self.peer.addr(), port) {
            Ok(sock) => {
                self.no_route = false;
                self.sock = Some(sock.watch(self.state.waker()));
                self.mark(if retrying {
                    VcmpState::Retrying
                } else {
                    VcmpState::Connecting
                });
                true
            }
            Err(_) => {
                self.no_route = true;
                if self.quick() {
                    self.attempts -= 1;
                } else if retrying {
                    self.mark(VcmpState::Retrying);
                }
                false
            }
        }
    }

    /// Fills `out` with this attempt's bytes: HELLO for a conversation
    /// that asks for keys (its KEYs follow HELLO_R), else every message not
    /// answered yet, each in the version its connection allows. A message
    /// that no version allows is reported ([`Report::Unsendable`]) and
    /// dropped. False if nothing is left to send, or memory is short.
    fn encode(&mut self, report: &mut impl FnMut(Report)) -> bool {
        self.out.clear();
        self.sent = 0;
        if self.keying {
            // Every KEY not answered goes again once the new stream's key
            // is agreed.
            for it in &mut self.items[self.answered..] {
                it.end = 0;
            }
            let h = Handshake::new();
            let mut b = [0u8; MAX_LEN];
            let len = h.hello(false, &mut b);
            self.handshake = Some(h);
            return self.out.extend_from_slice(&b[..len], GFP_KERNEL).is_ok();
        }
        let mut i = self.answered;
        while i < self.items.len() {
            match self.encode_paper(i) {
                Ok(true) => i += 1,
                Ok(false) => {
                    let it = self.items.remove(i);
                    if let Ok(it) = it {
                        report(Report::Unsendable(it.key, it.kind()));
                    }
                }
                Err(_) => return false,
            }
        }
        self.answered < self.items.len()
    }

    /// Appends message `i` (a `VNAT_UPD` or `VNAT_SUS`) to `out`: version 2
    /// under its connection's key, or version 1 if it has none and
    /// `vcmp_auth` allows it. `Ok(false)` if neither.
    fn encode_paper(&mut self, i: usize) -> Result<bool> {
        let Ask::Paper(msg) = self.items[i].ask else {
            return Ok(false);
        };
        let key = self.items[i].key;
        let mut b = [0u8; MAX_LEN];
        let (len, counter) = match authentication::seal(self.state, key, &msg, &mut b) {
            Some(sealed) => sealed,
            None if authentication::may_send_v1(self.state, key) => {
                b[..MSG_LEN].copy_from_slice(&msg.encode());
                (MSG_LEN, 0)
            }
            None => return Ok(false),
        };
        self.out.extend_from_slice(&b[..len], GFP_KERNEL)?;
        self.items[i].counter = counter;
        self.items[i].end = self.out.len();
        Ok(true)
    }

    /// Once HELLO_R came with the stream key, and for each KEY queued on
    /// an open stream after: appends the KEYs not encoded yet to `out`,
    /// under that key.
    fn encode_keys(&mut self) -> Result {
        let Some(stream) = &self.stream else {
            return Err(EINVAL);
        };
        for it in &mut self.items[self.answered..] {
            let Ask::Key(req) = it.ask else {
                continue;
            };
            if it.end != 0 {
                continue;
            }
            let mut b = [0u8; MAX_LEN];
            let len = vcmp2::Message::Key(req).encode::<HmacSha256>(Some(stream.bytes()), &mut b);
            self.out.extend_from_slice(&b[..len], GFP_KERNEL)?;
            it.end = self.out.len();
            it.index = self.keys;
            self.keys = self.keys.wrapping_add(1);
        }
        Ok(())
    }

    /// Sends as much of what this attempt has not sent yet as `sock` takes,
    /// counting each message once its last byte went out; false if the
    /// socket failed. Once all went out, the records say `waiting`.
    fn send_queued(&mut self, sock: &Socket) -> bool {
        let mut ok = true;
        while self.sent < self.out.len() {
            // Traced before: the peer may read the bytes before the call
            // returns.
            let offered = self.out.len() - self.sent;
            trace::vcmp(
                self.state.net().inum(),
                self.peer.addr(),
                offered,
                Vcmp::Request,
                true,
            );
            match sock.send(&self.out[self.sent..]) {
                Ok(0) => break,
                Ok(n) => {
                    let before = self.sent;
                    self.sent += n;
                    for it in &self.items[self.answered..] {
                        if it.end > before && it.end <= self.sent {
                            if let Some(c) = it.kind().sent() {
                                self.state.count(c, 1);
                            }
                        }
                    }
                }
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if self.sent == self.out.len() && self.handshake.is_none() && self.sent_in != self.attempts
        {
            self.sent_in = self.attempts;
            self.mark(VcmpState::Waiting);
        }
        ok
    }

    /// Reads what the peer sent and reports its replies; false if it sent
    /// something that answers nothing asked, closed, or the socket failed.
    fn read_replies(&mut self, sock: &Socket, report: &mut impl FnMut(Report)) -> bool {
        let mut buf = [0u8; 4 * MAX_LEN];
        let mut looked_again = false;
        loop {
            match sock.recv(&mut buf) {
                Ok(Received::Data(n)) => {
                    trace::vcmp(
                        self.state.net().inum(),
                        self.peer.addr(),
                        n,
                        Vcmp::Request,
                        false,
                    );
                    let answered = self.answered;
                    let ok = self.take_replies(&buf[..n], report);
                    // Only a reply counts as hearing from the peer: bytes
                    // that complete none do not keep the attempt alive.
                    if self.answered > answered {
                        self.heard = Instant::now();
                    }
                    report(Report::Heard);
                    if !ok {
                        return false;
                    }
                    // HELLO_R came: the KEYs go at once.
                    if self.sent < self.out.len() && !self.send_queued(sock) {
                        return false;
                    }
                }
                // Replies and FIN may have arrived since the recv: one more
                // look before the socket is judged dead (`end_or_keep`).
                Ok(Received::WouldBlock) if sock.is_dead() && !looked_again => {
                    looked_again = true;
                }
                Ok(Received::WouldBlock) => return true,
                Ok(Received::Eof) | Err(_) => return false,
            }
        }
    }

    /// Takes the replies in `bytes`: HELLO_R first if this attempt sent
    /// HELLO, then each answers the oldest message not answered yet, and
    /// must be of its kind and, for a message under a key, the peer's
    /// answer to it. False if one is not.
    fn take_replies(&mut self, bytes: &[u8], report: &mut impl FnMut(Report)) -> bool {
        let mut ok = true;
        let mut reader = core::mem::take(&mut self.reader);
        let fed = reader.feed(bytes, |frame| {
            if ok {
                ok = self.take_reply(frame, report);
            }
        });
        self.reader = reader;
        ok && fed.is_ok()
    }

    /// Takes one reply; false if it answers nothing asked.
    fn take_reply(&mut self, frame: Frame<'_>, report: &mut impl FnMut(Report)) -> bool {
        let state = self.state;
        if let Some(h) = self.handshake.take() {
            let Frame::V2(b) = frame else {
                state.count(Counter::VcmpMalformed, 1);
                return false;
            };
            let Ok(vcmp2::Message::HelloReply(r)) = vcmp2::Message::decode(b) else {
                state.count(Counter::VcmpMalformed, 1);
                return false;
            };
            self.stream = h.finish(&r.public, true);
            if self.stream.is_none() {
                state.count(Counter::VcmpAuthFailed, 1);
                return false;
            }
            state.count(Counter::VcmpMessages, 1);
            // HELLO_R is the peer's answer: the attempt's silence counts
            // from it, and its KEYs go now.
            self.heard = Instant::now();
            return self.encode_keys().is_ok();
        }
        let Some(it) = self.items.get(self.answered) else {
            state.count(Counter::VcmpMalformed, 1);
            return false;
        };
        let (key, counter) = (it.key, it.counter);
        // An answer to a move that a later one replaced (the host moved on,
        // or the peer moved and we told it again) completes nothing.
        let stale = it.kind() == Kind::Update && !self.current(it);
        let mut report = |r: Report| {
            if !stale {
                report(r)
            }
        };
        let report = &mut report;
        let taken = match (frame, &it.ask) {
            (Frame::V2(b), Ask::Key(req)) => match (vcmp2::Message::decode(b), &self.stream) {
                (Ok(vcmp2::Message::KeyReply(r)), Some(s)) => {
                    authentication::granted(state, key, req, s, b, &r)
                }
                _ => false,
            },
            // A reply under the key is the peer's answer to this request,
            // then read as the paper's; so is a refusal without it (the
            // peer has no key for it: it lost the connection), which can
            // only stop the move (vcmp2.rs).
            (Frame::V2(b), Ask::Paper(m)) if counter > 0 => {
                let paper = match vcmp2::Message::decode(b) {
                    Ok(vcmp2::Message::UpdateReply(r)) if r.is_unkeyed_refusal(counter) => {
                        Some((Message::UpdateReply(UpdateReply::REFUSED), None))
                    }
                    Ok(vcmp2::Message::SuspendReply(r)) if r.is_unkeyed_refusal(counter) => {
                        Some((Message::SuspendReply(SuspendReply::REFUSED), None))
                    }
                    Ok(vcmp2::Message::UpdateReply(r))
                        if authentication::open_reply(state, key, b, &r, counter) =>
                    {
                        Some((
                            Message::UpdateReply(r.to_v1_update()),
                            Some(r.observed.endpoint()),
                        ))
                    }
                    Ok(vcmp2::Message::SuspendReply(r))
                        if authentication::open_reply(state, key, b, &r, counter) =>
                    {
                        Some((Message::SuspendReply(r.to_v1_suspend()), None))
                    }
                    _ => None,
                };
                paper.is_some_and(|(r, seen)| self.paper_reply(key, m, r, seen, report))
            }
            (Frame::V1(b), Ask::Paper(m)) if counter == 0 => {
                vcmp::Message::decode(b).is_ok_and(|r| self.paper_reply(key, m, r, None, report))
            }
            _ => false,
        };
        if taken {
            state.count(Counter::VcmpMessages, 1);
            self.answered += 1;
        } else {
            state.count(Counter::VcmpMalformed, 1);
        }
        taken
    }

    /// Reports `reply`, the paper's form of the answer to `asked` about
    /// connection `key` (`seen`: where the peer saw the request come from,
    /// if it said so under the key); false if it does not answer that.
    fn paper_reply(
        &self,
        key: Key,
        asked: &Message,
        reply: Message,
        seen: Option<Endpoint>,
        report: &mut impl FnMut(Report),
    ) -> bool {
        match (reply, Kind::of(asked)) {
            (Message::UpdateReply(r), Kind::Update) => {
                report(Report::Updated(key, r, self.peer, seen))
            }
            (Message::SuspendReply(r), Kind::Suspend) => report(Report::Suspended(key, r)),
            _ => return false,
        }
        true
    }

    /// Ends the attempt on `sock` if it failed, its socket died or the peer
    /// sent nothing for too long, and gives up after the last attempt;
    /// otherwise the attempt goes on. Too long: `vcmp_timeout_ms`, and once
    /// HELLO_R came (judged now, after this step's reads: its KEYs may have
    /// gone in it), [`KEY_SILENCE_MS`].
    fn end_or_keep(
        &mut self,
        sock: Watch<'a>,
        failed: bool,
        report: &mut impl FnMut(Report),
    ) -> Step {
        let vcmp_timeout_ms = i64::from(VCMP_TIMEOUT_MS.get());
        let timeout = Delta::from_millis(if self.keying && self.stream.is_some() {
            vcmp_timeout_ms.max(KEY_SILENCE_MS)
        } else {
            vcmp_timeout_ms
        });
        if failed || sock.socket().is_dead() || self.heard.elapsed() > timeout {
            // Drop the socket; the next attempt starts a tick after this one.
            drop(sock);
            self.second = None;
            if self.out_of_attempts() {
                return self.give_up(report);
            }
        } else {
            self.sock = Some(sock);
        }
        Step::Pending
    }

    /// Ends a conversation that asks for keys whose address went away (the
    /// host moved) while it waited for answers: none can reach it any more,
    /// and no other address of ours would be granted a key. `out`: the
    /// bytes of `out` that went out on the wire. The peer granted a KEY
    /// among them if it read it, unless it refused: its connection takes
    /// the key the peer granted ([`authentication::assume_granted`]; its
    /// TCP acknowledgment does not tell, as it comes with the answer). The
    /// others are asked for again (the address may come back), as after a
    /// refusal. At once, not after [`KEY_SILENCE_MS`]: the moves of these
    /// connections wait for their keys.
    fn address_gone(&mut self, out: usize) -> Step {
        let mut assumed = 0usize;
        for it in &self.items[self.answered..] {
            let reached = it.end != 0 && it.end <= out.min(self.sent);
            let took = match (&self.stream, &it.ask) {
                (Some(s), Ask::Key(req)) if reached => {
                    authentication::assume_granted(self.state, it.key, req, it.index, s)
                }
                _ => false,
            };
            if took {
                assumed += 1;
            } else {
                authentication::ask_again(self.state, it.key);
            }
        }
        pr_info!(
            "netns {}: {} went away while {} connection(s) waited for their keys from {}; {} take the key it granted, the others ask again\n",
            self.state.net().inum(),
            Show(self.from),
            self.items.len() - self.answered,
            Show(self.peer.addr()),
            assumed
        );
        self.answered = self.items.len();
        Step::Failed
    }

    /// Gives up on the messages not answered yet: their connections are left
    /// as they were, logged once for all of them.
    fn give_up(&self, report: &mut impl FnMut(Report)) -> Step {
        if self.keying {
            pr_info!(
                "netns {}: vnatd of {} gave no keys after {} attempt(s); {} connection(s) left without\n",
                self.state.net().inum(),
                Show(self.peer.addr()),
                self.attempts,
                self.items.len() - self.answered
            );
        } else {
            pr_warn!(
                "netns {}: vnatd of {} did not answer after {} attempt(s); {} connection(s) left as they were\n",
                self.state.net().inum(),
                Show(self.peer.addr()),
                self.attempts,
                self.items.len() - self.answered
            );
        }
        for it in &self.items[self.answered..] {
            if it.kind() == Kind::Update && !self.current(it) {
                // A later move has it.
                continue;
            }
            report(Report::Unanswered(it.key, it.kind()));
        }
        Step::Failed
    }

    /// Records where the moves and suspensions not answered yet are, for
    /// the dump.
    fn mark(&self, vcmp: VcmpState) {
        if self.keying {
            return;
        }
        let attempts = self.attempts.min(255) as u8;
        // When the next attempt may begin, for the dump (`vcmp-next-ms`):
        // a retrying move's spacing after this attempt began.
        let next = if vcmp == VcmpState::Retrying {
            let left = Delta::from_millis(self.spacing_ms.into()) - self.started.elapsed();
            ffi::now_ns() + left.as_nanos().max(0)
        } else {
            0
        };
        for it in &self.items[self.answered..] {
            if it.kind() == Kind::Update && !self.current(it) {
                // A later move has it, and says where it is.
                continue;
            }
            self.state.connections.with(it.key, |c| {
                c.vcmp = vcmp;
                c.vcmp_attempts = attempts;
                c.vcmp_next_ns = next;
            });
        }
    }
}
