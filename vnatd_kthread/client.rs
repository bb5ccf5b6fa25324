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
//! bounded: the replies it has not read fill at most [`OUT_CAP`] bytes, and
//! while they do its messages are not read (TCP flow control then stops
//! it); one round reads at most [`ROUND_BUDGET`] bytes of it, so one fast
//! client cannot starve the others; only a complete message counts as
//! hearing from it (an idle client that dribbles bytes is still closed);
//! and a stream with more than `vcmp_max_refusals` messages refused for
//! reasons that guessing gives (no such connection, wrong source, martian
//! address; not refusals by policy) is closed, its replies so far sent, so
//! that one stream cannot sweep a port range for a connection to take.

use super::socket::{Received, Watch};
use crate::{
    counters::Counter,
    knobs::VCMP_MAX_REFUSALS,
    migration::{self, Source},
    netns::NetState,
    vcmp::{Message, StreamReader, MSG_LEN},
    virtualization::Key,
};
use kernel::{
    prelude::*,
    time::{Delta, Instant, Monotonic},
};

/// Bytes read from a socket at once: four messages.
const CHUNK: usize = 4 * MSG_LEN;
/// The replies a client has not read yet fill at most this many bytes; while
/// they do, nothing more is read from it.
pub(super) const OUT_CAP: usize = 256 * MSG_LEN;
/// Bytes read from one client in one round of the daemon, at most: 64
/// messages, whose replies go out (after the rules they change) before more
/// is read, so that a large batch is answered in parts that each show the
/// peer progress.
pub(super) const ROUND_BUDGET: usize = 16 * CHUNK;

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
    reader: StreamReader,
    last_heard: Instant<Monotonic>,
    /// Replies not sent yet, at most [`OUT_CAP`] bytes.
    out: KVec<u8>,
    /// Messages refused so far for reasons that guessing gives (see
    /// `migration::Verdict`).
    refused: u32,
    /// The last round stopped reading at [`OUT_CAP`] (counted once each time).
    paused: bool,
}

impl<'a> Client<'a> {
    /// A client just accepted on `sock`, connected from `from`.
    pub(super) fn new(sock: Watch<'a>, from: Source) -> Result<Self> {
        Ok(Self {
            sock,
            from,
            reader: StreamReader::new(),
            last_heard: Instant::now(),
            out: KVec::with_capacity(OUT_CAP, GFP_KERNEL)?,
            refused: 0,
            paused: false,
        })
    }

    /// The address the client connects from.
    pub(super) fn from(&self) -> u32 {
        self.from.addr()
    }

    /// Whether a round of reading would read something: its unread replies
    /// leave room for those of another chunk.
    pub(super) fn has_room(&self) -> bool {
        self.out.len() + CHUNK <= OUT_CAP
    }

    /// Whether the client has been silent for longer than `idle`.
    pub(super) fn idle(&self, idle: Delta) -> bool {
        self.last_heard.elapsed() > idle
    }

    /// Sends what the client has not been sent yet; `Err` means close it.
    pub(super) fn flush(&mut self) -> core::result::Result<(), Close> {
        if self.out.is_empty() {
            return Ok(());
        }
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
        let mut budget = ROUND_BUDGET;
        loop {
            // Every message of a chunk may need its reply.
            if !self.has_room() {
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
        let from = self.from;
        let out = &mut self.out;
        let refused = &mut self.refused;
        let complete = self.reader.feed(bytes, |m| {
            if close.is_some() {
                return;
            }
            let (reply, suspicious) = match m {
                Ok(Message::Update(u)) => {
                    state.count(Counter::VcmpMessages, 1);
                    let v = migration::accept_update(state, &u, from);
                    if let Some(key) = v.changed {
                        *rules_changed = true;
                        to_kick.push(key, GFP_KERNEL).ok();
                    }
                    (Message::UpdateReply(v.reply), v.suspicious)
                }
                Ok(Message::Suspend(u)) => {
                    state.count(Counter::VcmpMessages, 1);
                    let v = migration::accept_suspend(state, &u, from);
                    (Message::SuspendReply(v.reply), v.suspicious)
                }
                // Replies answer updates; nobody asked this peer for one.
                _ => {
                    close = Some(Close::Malformed);
                    return;
                }
            };
            // Room for it was made before the chunk was read.
            if out.extend_from_slice(&reply.encode(), GFP_KERNEL).is_err() {
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
        if complete > 0 {
            self.last_heard = Instant::now();
        }
        close.map_or(Ok(()), Err)
    }
}
