// SPDX-License-Identifier: GPL-2.0

//! One incoming VCMP client (paper 3.3.2.2): the vnatd of a peer that moved,
//! or is about to be suspended, telling this host about connections they
//! share.
//!
//! What a client sends is applied as it arrives, and its replies are queued
//! in order; the daemon sends them only after it has published the rules
//! they announce (see `Daemon::serve`).

use super::socket::{Received, Watch};
use crate::{
    counters::Counter,
    migration,
    netns::NetState,
    vcmp::{Message, StreamReader, MSG_LEN},
    virtualization::Key,
};
use kernel::{
    prelude::*,
    time::{Delta, Instant, Monotonic},
};

/// Why a client connection is closed.
pub(super) enum Close {
    Eof,
    Malformed,
    Error,
}

/// A VCMP client connection.
pub(super) struct Client<'a> {
    sock: Watch<'a>,
    reader: StreamReader,
    last_heard: Instant<Monotonic>,
    /// Replies not sent yet.
    out: KVec<u8>,
}

impl<'a> Client<'a> {
    /// A client just accepted on `sock`.
    pub(super) fn new(sock: Watch<'a>) -> Self {
        Self {
            sock,
            reader: StreamReader::new(),
            last_heard: Instant::now(),
            out: KVec::new(),
        }
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

    /// Reads everything the client sent and applies it; `Err` means close
    /// it. Sets `rules_changed` when an update was accepted, and adds the
    /// connections to kick once the rules are published to `to_kick`.
    pub(super) fn read(
        &mut self,
        state: &NetState,
        rules_changed: &mut bool,
        to_kick: &mut KVec<Key>,
    ) -> core::result::Result<(), Close> {
        let mut buf = [0u8; 4 * MSG_LEN];
        let mut looked_again = false;
        loop {
            let n = match self.sock.socket().recv(&mut buf) {
                Ok(Received::Data(n)) => n,
                Ok(Received::WouldBlock) => {
                    if !self.sock.socket().is_dead() {
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
            self.last_heard = Instant::now();
            if !self.apply(&buf[..n], state, rules_changed, to_kick) {
                return Err(Close::Malformed);
            }
        }
    }

    /// Applies the messages in `bytes` and queues a reply to each, in order;
    /// false if one is not a request (or its reply cannot be queued): the
    /// rest is ignored then.
    fn apply(
        &mut self,
        bytes: &[u8],
        state: &NetState,
        rules_changed: &mut bool,
        to_kick: &mut KVec<Key>,
    ) -> bool {
        let mut malformed = false;
        let mut changed = false;
        let mut kicks = KVec::new();
        let out = &mut self.out;
        self.reader.feed(bytes, |m| match m {
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
        *rules_changed |= changed;
        for sk in kicks {
            to_kick.push(sk, GFP_KERNEL).ok();
        }
        !malformed
    }
}
