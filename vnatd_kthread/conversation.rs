// SPDX-License-Identifier: GPL-2.0

//! One outgoing VCMP conversation (paper 3.3.2.2): this host tells the vnatd
//! of one peer about the connections they share, after a move (`VNAT_UPD`)
//! or before a suspension (`VNAT_SUS`).
//!
//! A conversation holds the messages for its peer in the order they were
//! asked for and sends them as one batch on one VCMP connection from the
//! address they name (the peer believes them only from there); the peer
//! answers them in order on the same stream. An attempt whose socket fails
//! or dies, or in which the peer sends nothing for `vcmp_timeout_ms` (a
//! large batch is answered in parts, each of which counts), is followed a
//! tick after it began by another on
//! a new connection, which sends again only what was not answered yet; after
//! `vcmp_retries` more attempts the conversation gives up.
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
    counters::Counter,
    knobs::{VCMP_PEER_PORT, VCMP_RETRIES, VCMP_TIMEOUT_MS},
    migration::Source,
    netns::{Ipv4, NetState},
    vcmp::{Message, StreamReader, SuspendReply, UpdateReply, MSG_LEN},
    virtualization::{Key, VcmpState},
};
use kernel::{
    prelude::*,
    time::{Delta, Instant, Monotonic},
};

/// What a message of a conversation asks the peer, so what answers it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `VNAT_UPD`, answered by `VNAT_UPD_R`.
    Update,
    /// `VNAT_SUS`, answered by `VNAT_SUS_R`.
    Suspend,
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
    fn sent(self) -> Counter {
        match self {
            Self::Update => Counter::UpdatesSent,
            Self::Suspend => Counter::SuspendsSent,
        }
    }
}

/// What a conversation tells the daemon about its connections, as it
/// happens.
pub(super) enum Report {
    /// Bytes came from the peer. What they answered may have changed the
    /// rules, so the daemon publishes them again.
    Heard,
    /// The peer, reached there, answered the update of this connection.
    Updated(Key, UpdateReply, Source),
    /// The peer answered the suspension of this connection.
    Suspended(Key, SuspendReply),
    /// The conversation gave up: the message of this kind about this
    /// connection got no answer.
    Unanswered(Key, Kind),
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

/// An outgoing VCMP conversation: the updates (and suspensions) of the
/// connections shared with one peer, sent as one batch, answered in order.
pub(super) struct Conversation<'a> {
    state: &'a NetState,
    /// Wakes the daemon when the conversation's socket has news.
    /// The daemon's own port: where the peer's vnatd listens too, unless
    /// `vcmp_peer_port` says otherwise.
    port: u16,
    /// The peer's vnatd, judged once for what its replies may say.
    peer: Source,
    /// The local address the messages name, which the peer believes them
    /// only from: the conversation's connections go from it.
    from: u32,
    sock: Option<Watch<'a>>,
    keys: KVec<Key>,
    /// What each message of `msgs` is, in the order of `keys`.
    kinds: KVec<Kind>,
    msgs: KVec<u8>,
    /// Messages answered so far (also across attempts).
    answered: usize,
    /// Bytes of `msgs` sent in this attempt.
    sent: usize,
    reader: StreamReader,
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
    /// The attempt whose messages all went out (their records say
    /// `waiting`); 0: none yet.
    sent_in: u32,
}

impl<'a> Conversation<'a> {
    /// A conversation with the vnatd of `peer`, from local address `from`,
    /// with nothing queued yet; the daemon listens on `port`.
    pub(super) fn new(state: &'a NetState, port: u16, peer: u32, from: u32) -> Self {
        let now = Instant::now();
        Self {
            state,
            port,
            peer: Source::new(state, peer),
            from,
            sock: None,
            keys: KVec::new(),
            kinds: KVec::new(),
            msgs: KVec::new(),
            answered: 0,
            sent: 0,
            reader: StreamReader::new(),
            attempts: 0,
            started: now,
            heard: now,
            created: now,
            begun: false,
            no_route: false,
            sent_in: 0,
        }
    }

    /// The address of the peer's vnatd.
    pub(super) fn peer(&self) -> u32 {
        self.peer.addr()
    }

    /// Whether a message for `peer`, to go from local address `from`, may
    /// join this conversation's batch: it is with `peer` from `from` and no
    /// attempt counts yet, so nothing of it went out.
    pub(super) fn takes(&self, peer: u32, from: u32) -> bool {
        self.peer.addr() == peer && self.from == from && self.attempts == 0
    }

    /// Whether the last connect failed at once (no route yet): it is tried
    /// again sooner than a tick.
    pub(super) fn no_route(&self) -> bool {
        self.no_route
    }

    /// Queues `msg`, about connection `key`, behind the messages queued
    /// before; when that fails, nothing of it is queued.
    pub(super) fn queue(&mut self, key: Key, msg: &Message) -> Result {
        let bytes = msg.encode();
        if self.keys.push(key, GFP_KERNEL).is_err()
            || self.kinds.push(Kind::of(msg), GFP_KERNEL).is_err()
            || self.msgs.extend_from_slice(&bytes, GFP_KERNEL).is_err()
        {
            let n = self.msgs.len() / MSG_LEN;
            self.keys.truncate(n);
            self.kinds.truncate(n);
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Advances the conversation as far as it goes without waiting, and
    /// reports what happens to its connections on the way. `behind`: an
    /// earlier conversation with the same peer is not over yet.
    pub(super) fn step(&mut self, behind: bool, report: &mut impl FnMut(Report)) -> Step {
        let now = Instant::now();
        let timeout = Delta::from_millis(i64::from(VCMP_TIMEOUT_MS.get()));
        if !self.begin(behind, now) {
            return Step::Pending;
        }
        if self.sock.is_none() {
            if !self.due() {
                return Step::Pending;
            }
            if self.attempts > VCMP_RETRIES.get() {
                return self.give_up(report);
            }
            if !self.connect(now, timeout) {
                return Step::Pending;
            }
        }
        // Out of `self` while the attempt uses it; `end_or_keep` puts it
        // back unless the attempt is over.
        let Some(sock) = self.sock.take() else {
            return Step::Pending;
        };
        let mut failed = false;
        if sock.socket().is_established() {
            failed = !self.send_queued(sock.socket()) || !self.read_replies(sock.socket(), report);
        }
        if self.answered == self.keys.len() {
            // All answered: the socket is closed here.
            return Step::Done;
        }
        self.end_or_keep(sock, failed, timeout, report)
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
    /// apart; a connect that failed at once (no route yet: the new address's
    /// event comes before its route) is tried again sooner.
    fn due(&self) -> bool {
        let spacing = if self.no_route { QUICK_MS } else { TICK_MS };
        self.attempts == 0 || self.started.elapsed() >= Delta::from_millis(spacing.into())
    }

    /// Starts an attempt: a new VCMP connection from the address the
    /// messages name, on which everything not answered yet goes again. False if
    /// the connect failed at once; within the first `vcmp_timeout_ms` that
    /// does not count as an attempt.
    fn connect(&mut self, now: Instant<Monotonic>, timeout: Delta) -> bool {
        let port = match VCMP_PEER_PORT.get() {
            0 => self.port,
            p => p as u16,
        };
        self.attempts += 1;
        self.started = now;
        self.heard = now;
        self.sent = self.answered * MSG_LEN;
        self.reader = StreamReader::new();
        match Socket::connect(self.state.net(), self.from, self.peer.addr(), port) {
            Ok(sock) => {
                self.no_route = false;
                self.sock = Some(sock.watch(self.state.waker()));
                self.mark(VcmpState::Connecting);
                true
            }
            Err(_) => {
                self.no_route = true;
                if self.created.elapsed() < timeout {
                    self.attempts -= 1;
                }
                false
            }
        }
    }

    /// Sends as much of what this attempt has not sent yet as `sock` takes,
    /// counting each message once its last byte went out; false if the
    /// socket failed. Once all went out, the records say `waiting`.
    fn send_queued(&mut self, sock: &Socket) -> bool {
        let mut ok = true;
        while self.sent < self.msgs.len() {
            match sock.send(&self.msgs[self.sent..]) {
                Ok(0) => break,
                Ok(n) => {
                    let before = self.sent / MSG_LEN;
                    self.sent += n;
                    for &kind in &self.kinds[before..self.sent / MSG_LEN] {
                        self.state.count(kind.sent(), 1);
                    }
                }
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if self.sent == self.msgs.len() && self.sent_in != self.attempts {
            self.sent_in = self.attempts;
            self.mark(VcmpState::Waiting);
        }
        ok
    }

    /// Reads what the peer sent and reports its replies; false if it sent
    /// something that answers nothing asked, closed, or the socket failed.
    fn read_replies(&mut self, sock: &Socket, report: &mut impl FnMut(Report)) -> bool {
        let mut buf = [0u8; 8 * MSG_LEN];
        let mut looked_again = false;
        loop {
            match sock.recv(&mut buf) {
                Ok(Received::Data(n)) => {
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

    /// Takes the replies in `bytes`: each answers the oldest message not
    /// answered yet, and must be of its kind. False if one is not.
    fn take_replies(&mut self, bytes: &[u8], report: &mut impl FnMut(Report)) -> bool {
        let Self {
            state,
            peer,
            keys,
            kinds,
            answered,
            reader,
            ..
        } = self;
        let mut ok = true;
        reader.feed(bytes, |m| match m {
            Ok(Message::UpdateReply(r)) if kinds.get(*answered) == Some(&Kind::Update) => {
                state.count(Counter::VcmpMessages, 1);
                report(Report::Updated(keys[*answered], r, *peer));
                *answered += 1;
            }
            Ok(Message::SuspendReply(r)) if kinds.get(*answered) == Some(&Kind::Suspend) => {
                state.count(Counter::VcmpMessages, 1);
                report(Report::Suspended(keys[*answered], r));
                *answered += 1;
            }
            _ => {
                state.count(Counter::VcmpMalformed, 1);
                ok = false;
            }
        });
        ok
    }

    /// Ends the attempt on `sock` if it failed, its socket died or the peer
    /// sent nothing for `timeout`, and gives up after the last attempt;
    /// otherwise the attempt goes on.
    fn end_or_keep(
        &mut self,
        sock: Watch<'a>,
        failed: bool,
        timeout: Delta,
        report: &mut impl FnMut(Report),
    ) -> Step {
        if failed || sock.socket().is_dead() || self.heard.elapsed() > timeout {
            // Drop the socket; the next attempt starts a tick after this one.
            drop(sock);
            if self.attempts > VCMP_RETRIES.get() {
                return self.give_up(report);
            }
        } else {
            self.sock = Some(sock);
        }
        Step::Pending
    }

    /// Gives up on the messages not answered yet: their connections are left
    /// as they were, logged once for all of them.
    fn give_up(&self, report: &mut impl FnMut(Report)) -> Step {
        pr_warn!(
            "netns {}: vnatd of {} did not answer after {} attempt(s); {} connection(s) left as they were\n",
            self.state.net().inum(),
            Ipv4(self.peer.addr()),
            self.attempts,
            self.keys.len() - self.answered
        );
        let left = self.keys[self.answered..]
            .iter()
            .zip(&self.kinds[self.answered..]);
        for (&key, &kind) in left {
            report(Report::Unanswered(key, kind));
        }
        Step::Failed
    }

    /// Records where the messages not answered yet are, for the dump.
    fn mark(&self, vcmp: VcmpState) {
        let attempts = self.attempts.min(255) as u8;
        for &k in &self.keys[self.answered..] {
            self.state.connections.with(k, |c| {
                c.vcmp = vcmp;
                c.vcmp_attempts = attempts;
            });
        }
    }
}
