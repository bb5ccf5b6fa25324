// SPDX-License-Identifier: GPL-2.0

//! One incoming VCMP client (paper 3.3.2.2): the vnatd of a peer that moved,
//! or is about to be suspended, telling this host about connections they
//! share.
//!
//! What a client sends is applied as it arrives, and its replies are queued
//! in order; the daemon sends them only after it has published the rules
//! they announce (see `Daemon::serve`).
//!
//! A client is hostile until shown otherwise, so what it can cost is
//! bounded: the replies it has not read fill at most [`out_cap`] bytes (5
//! KiB, up to [`OUT_MAX`] with a large table; its buffer, which grows by
//! doubling, at most 80 KiB), and while they do its
//! messages are not read (TCP flow control then stops it); one round reads
//! at most [`round_budget`] bytes of it, so one fast client cannot starve
//! the others; only a complete message counts as
//! hearing from it (an idle client that dribbles bytes is still closed);
//! and a stream with more than `vcmp_max_refusals` messages refused for
//! reasons that guessing gives (no such connection, but for a TCP
//! connection of the asker's address that the kernel has and VNAT has not
//! recorded, such as one not accepted yet; wrong source, martian
//! address; not refusals by policy) is closed, its replies so far sent, so
//! that one stream cannot sweep a port range for a connection to take.
//!
//! A client speaks either version (both may share a stream): version 1 as
//! the paper has it, version 2 (`vcmp2.rs`) to agree connection keys (HELLO
//! once, then KEYs) and to move and suspend connections under them. With
//! `vcmp_auth` `off` this end speaks only version 1 and closes a stream
//! that sends version 2, as a paper-only vnatd would.

use super::socket::{Received, Watch};
use crate::{
    authentication::{self, Handshake, ReplyFields, Source},
    counters::Counter,
    ffi::{
        trace::{self, Vcmp},
        Secret,
    },
    knobs::{VcmpAuth, VCMP_MAX_REFUSALS},
    migration,
    netns::NetState,
    vcmp::{Endpoint, Message, MSG_LEN},
    vcmp2::{self, Frame, StreamReader, MAX_LEN},
    virtualization::Key,
};
use core::net::IpAddr;
use kernel::{
    prelude::*,
    time::{Delta, Instant, Monotonic},
};

/// Bytes read from a socket at once: four of the longest messages.
const CHUNK: usize = 4 * MAX_LEN;
/// Bytes read from one client in one round of the daemon, at least: 64
/// version-1 messages, whose replies go out (after the rules they change)
/// before more is read, so that a large batch is answered in parts that
/// each show the peer progress.
const ROUND_MIN: usize = 64 * MSG_LEN;
/// The replies a client has not read yet fill at most [`out_cap`] bytes,
/// and never more than this, however large the table; while they do,
/// nothing more is read from it.
const OUT_MAX: usize = 64 << 10;

/// Bytes read from one client in one round of a namespace with
/// `connections` records, at most. A round ends with the rules rebuilt
/// (`Daemon::publish`), which visits every record: a round reads at least
/// the longest message's bytes per 16 records, so that rebuilding stays a
/// bounded share of the work, whatever the table's size (a move of 10,000
/// connections is answered in tens of rounds, not hundreds, each of which
/// visited all 10,000). At least [`ROUND_MIN`].
fn round_budget(connections: usize) -> usize {
    (connections / 16 * MAX_LEN).clamp(ROUND_MIN, OUT_MAX - CHUNK - MAX_LEN)
}

/// The bytes of replies that a client has not read yet may fill: a round's
/// ([`round_budget`]). No reply is longer than its request, so a chunk's
/// replies (and that of a message begun before it) need at most `CHUNK +
/// MAX_LEN` bytes beyond. At least 256 version-1 replies, at most
/// [`OUT_MAX`].
fn out_cap(connections: usize) -> usize {
    (round_budget(connections) + CHUNK + MAX_LEN).max(256 * MSG_LEN)
}

/// Why a client connection is closed.
pub(super) enum Close {
    Eof,
    Malformed,
    Error,
    /// More suspicious refusals than `vcmp_max_refusals` (its replies so
    /// far still go out).
    Refused,
}

/// Where a round of reading left a client.
#[derive(PartialEq, Eq)]
pub(super) enum Progress {
    /// Everything it sent was read.
    Drained,
    /// Its unread replies fill their buffer: reading waits until it reads.
    Paused,
    /// It has sent more than one round reads: the daemon comes back soon.
    Budget,
}

/// A VCMP client connection.
pub(super) struct Client<'a> {
    sock: Watch<'a>,
    /// Where the client connects from.
    from: Source,
    /// Its address and port, as an UPD_R reports them.
    observed: Endpoint,
    reader: StreamReader,
    /// The stream's key, once HELLO came.
    stream: Option<Secret>,
    /// HELLO came (at most one per stream).
    hello: bool,
    /// KEYs that came on the stream so far: each one's place goes into its
    /// key's id ([`crate::key::key_id`]).
    keys: u32,
    last_heard: Instant<Monotonic>,
    /// Replies not sent yet, at most [`out_cap`] bytes.
    out: KVVec<u8>,
    /// Messages refused so far for reasons that guessing gives (see
    /// `migration::Verdict`).
    refused: u32,
    /// The last round stopped reading at [`out_cap`] (counted once each time).
    paused: bool,
}

impl<'a> Client<'a> {
    /// A client just accepted on `sock`, connected from `from`, port
    /// `port`.
    pub(super) fn new(sock: Watch<'a>, from: Source, port: u16) -> Result<Self> {
        Ok(Self {
            sock,
            from,
            observed: Endpoint::from_ip(from.addr(), port),
            reader: StreamReader::new(),
            stream: None,
            hello: false,
            keys: 0,
            last_heard: Instant::now(),
            out: KVVec::with_capacity(out_cap(0), GFP_KERNEL)?,
            refused: 0,
            paused: false,
        })
    }

    /// The address the client connects from.
    pub(super) fn from(&self) -> IpAddr {
        self.from.addr()
    }

    /// Whether a round of reading in `state` would read something: its
    /// unread replies leave room for those of another chunk.
    pub(super) fn has_room(&self, state: &NetState) -> bool {
        self.out.len() + CHUNK + MAX_LEN <= out_cap(state.connections.len())
    }

    /// Whether it has been silent for longer than `idle`, with nothing
    /// of a message read and nothing unread, and every reply sent and
    /// acknowledged: nothing is lost if it goes. Sleeps.
    pub(super) fn spent(&self, idle: Delta) -> bool {
        self.idle(idle)
            && self.out.is_empty()
            && self.reader.pending() == 0
            && self.sock.socket().is_quiet()
    }

    /// How long it has been silent.
    pub(super) fn silent(&self) -> Delta {
        self.last_heard.elapsed()
    }

    /// Whether the client has been silent for longer than `idle`.
    pub(super) fn idle(&self, idle: Delta) -> bool {
        self.silent() > idle
    }

    /// Sends what the client has not been sent yet; `Err` means close it.
    pub(super) fn flush(&mut self, state: &NetState) -> core::result::Result<(), Close> {
        if self.out.is_empty() {
            return Ok(());
        }
        // Traced before: the peer may read the bytes before the call returns.
        trace::vcmp(
            state.net().inum(),
            self.from(),
            self.out.len(),
            Vcmp::Answer,
            true,
        );
        let n = self
            .sock
            .socket()
            .send(&self.out)
            .map_err(|_| Close::Error)?;
        let left = self.out.len() - n;
        self.out.copy_within(n.., 0);
        self.out.truncate(left);
        Ok(())
    }

    /// Reads what the client sent, within the round's budget, and applies
    /// it; `Err` means close it. Sets `rules_changed` when an update was
    /// accepted, and adds the connections to kick once the rules are
    /// published to `to_kick`.
    pub(super) fn read(
        &mut self,
        state: &NetState,
        rules_changed: &mut bool,
        to_kick: &mut KVec<Key>,
    ) -> core::result::Result<Progress, Close> {
        let mut buf = [0u8; CHUNK];
        let mut looked_again = false;
        let mut budget = round_budget(state.connections.len());
        loop {
            // Every message of a chunk may need its reply.
            if !self.has_room(state) {
                if !self.paused {
                    self.paused = true;
                    state.count(Counter::VcmpReadsPaused, 1);
                }
                return Ok(Progress::Paused);
            }
            self.paused = false;
            if budget == 0 {
                return Ok(Progress::Budget);
            }
            let n = match self.sock.socket().recv(&mut buf) {
                Ok(Received::Data(n)) => n,
                Ok(Received::WouldBlock) => {
                    if !self.sock.socket().is_dead() {
                        return Ok(Progress::Drained);
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
            budget = budget.saturating_sub(n);
            trace::vcmp(state.net().inum(), self.from(), n, Vcmp::Answer, false);
            self.apply(&buf[..n], state, rules_changed, to_kick)?;
        }
    }

    /// Applies the messages in `bytes` and queues a reply to each, in order;
    /// `Err` if one is not a request, or the stream has had too many
    /// refusals: the rest is ignored then.
    fn apply(
        &mut self,
        bytes: &[u8],
        state: &NetState,
        rules_changed: &mut bool,
        to_kick: &mut KVec<Key>,
    ) -> core::result::Result<(), Close> {
        let mut close = None;
        let Self {
            from,
            observed,
            reader,
            stream,
            hello,
            keys,
            out,
            refused,
            ..
        } = self;
        let fed = reader.feed(bytes, |frame| {
            if close.is_some() {
                return;
            }
            let mut buf = [0u8; MAX_LEN];
            let mut changed = None;
            let answer = match frame {
                Frame::V1(b) => v1(state, b, *from, &mut buf, &mut changed),
                // A paper-only vnatd knows no version 2.
                Frame::V2(_) if VcmpAuth::get() == VcmpAuth::Off => None,
                Frame::V2(b) => match vcmp2::Message::decode(b) {
                    Ok(vcmp2::Message::Hello(h)) if !*hello => {
                        *hello = true;
                        let mine = Handshake::new();
                        let len = mine.hello(true, &mut buf);
                        *stream = mine.finish(&h.public, false);
                        if stream.is_none() {
                            // A low-order point: no key can come of it.
                            state.count(Counter::VcmpAuthFailed, 1);
                            None
                        } else {
                            Some((len, false))
                        }
                    }
                    Ok(vcmp2::Message::Key(req)) => stream.as_ref().map(|s| {
                        let index = *keys;
                        *keys = keys.wrapping_add(1);
                        let g = authentication::grant(state, b, &req, index, *from, s, &mut buf);
                        (g.len, g.suspicious)
                    }),
                    Ok(vcmp2::Message::Update(u)) => Some(v2(
                        state,
                        b,
                        &u,
                        false,
                        *from,
                        *observed,
                        &mut buf,
                        &mut changed,
                    )),
                    Ok(vcmp2::Message::Suspend(u)) => Some(v2(
                        state,
                        b,
                        &u,
                        true,
                        *from,
                        *observed,
                        &mut buf,
                        &mut changed,
                    )),
                    // Replies answer requests; nobody asked this peer.
                    _ => None,
                },
            };
            let Some((len, suspicious)) = answer else {
                close = Some(Close::Malformed);
                return;
            };
            state.count(Counter::VcmpMessages, 1);
            if let Some(key) = changed {
                *rules_changed = true;
                to_kick.push(key, GFP_KERNEL).ok();
            }
            // Room for it was checked before the chunk was read; the buffer
            // grows to it (a client is closed when memory is short).
            if out.extend_from_slice(&buf[..len], GFP_KERNEL).is_err() {
                close = Some(Close::Error);
                return;
            }
            if suspicious {
                *refused += 1;
                if *refused > VCMP_MAX_REFUSALS.get() {
                    close = Some(Close::Refused);
                }
            }
        });
        match fed {
            Ok(n) if n > 0 => self.last_heard = Instant::now(),
            Ok(_) => {}
            Err(_) => return Err(Close::Malformed),
        }
        close.map_or(Ok(()), Err)
    }
}

/// A version-1 request (the whole message: `b`) from `from`: applied, its
/// reply written into `out`. Returns the reply's length and whether the
/// refusal was suspicious, or `None` if it is not a request; sets `changed`
/// when a mapping changed.
fn v1(
    state: &NetState,
    b: &[u8],
    from: Source,
    out: &mut [u8; MAX_LEN],
    changed: &mut Option<Key>,
) -> Option<(usize, bool)> {
    let (reply, suspicious) = match Message::decode(b) {
        Ok(Message::Update(u)) => {
            let v = migration::accept_update(state, &u, from, None);
            *changed = v.changed;
            (Message::UpdateReply(v.reply), v.suspicious)
        }
        Ok(Message::Suspend(u)) => {
            let v = migration::accept_suspend(state, &u, from, None);
            (Message::SuspendReply(v.reply), v.suspicious)
        }
        _ => return None,
    };
    out[..MSG_LEN].copy_from_slice(&reply.encode());
    Some((MSG_LEN, suspicious))
}

/// A version-2 UPD (or SUS, `suspend`) `u` (the whole message: `b`) from
/// `from`, seen at `observed`: opened under its connection's key, applied,
/// and answered under it (or refused unauthenticated) into `out`. Returns
/// the reply's length and whether the refusal was suspicious; sets
/// `changed` when a mapping changed.
#[expect(clippy::too_many_arguments)]
fn v2(
    state: &NetState,
    b: &[u8],
    u: &vcmp2::Update,
    suspend: bool,
    from: Source,
    observed: Endpoint,
    out: &mut [u8; MAX_LEN],
    changed: &mut Option<Key>,
) -> (usize, bool) {
    let mut f = ReplyFields {
        suspend,
        ok: false,
        helper: 0,
        local_physical: Endpoint::new(0, 0),
        observed,
    };
    let (key, suspicious) = match authentication::open(state, b, u) {
        Err(why) => {
            state.count(why, 1);
            state.count(
                if suspend {
                    Counter::SuspendsRefused
                } else {
                    Counter::UpdatesRefused
                },
                1,
            );
            (None, true)
        }
        Ok((key, fields)) if suspend => {
            let v = migration::accept_suspend(state, &fields, from, Some(key));
            f.ok = !v.reply.is_refused();
            f.helper = v.reply.helper;
            f.local_physical = v.reply.local_physical;
            (Some(key), v.suspicious)
        }
        Ok((key, fields)) => {
            let v = migration::accept_update(state, &fields, from, Some(key));
            *changed = v.changed;
            f.ok = !v.reply.is_refused();
            f.local_physical = v.reply.local_physical;
            (Some(key), v.suspicious)
        }
    };
    (
        authentication::seal_reply(state, key, u, &f, out),
        suspicious,
    )
}
