// SPDX-License-Identifier: GPL-2.0

//! Who a VCMP message is believed from: the security key (paper 3.3.1.1 and
//! 3.3.2.1) at work, and what is believed without one.
//!
//! Without a key, a message says something about a peer's physical address
//! only if it came from that address, and that address is another host's
//! ([`Source`]).
//!
//! With one: right after a connection is recorded, the end that connected
//! asks the peer's vnatd for a key ([`wanted`]): on a VCMP stream it opens
//! with HELLO (an ephemeral X25519 key each way, [`Handshake`]), it sends a
//! KEY per connection, MAC'd under the stream's key. The peer grants it
//! ([`grant`]) only from the connection's current remote physical address,
//! only once per connection, and chooses the key id; both ends derive the
//! connection's two keys (one per direction, `key.rs`) and the initiator
//! checks the grant's MAC ([`granted`]). From then on the connection moves
//! and suspends only by version-2 messages under its key with a counter
//! that only grows ([`seal`], [`open`], [`seal_reply`], [`open_reply`]);
//! version 1 is refused ([`v1_refused`]). While the key is being agreed,
//! nothing moves the connection; a connection left without a key (the peer
//! speaks only version 1, or did not answer) moves by version 1 unless
//! `vcmp_auth` is `required`.
//!
//! The secrets never leave the connection table's record: messages are
//! sealed and opened under its lock.

use crate::{
    counters::Counter,
    ffi::{self, HmacSha256, Secret, Sock, X25519Secret},
    key::{self, Direction, KEY_LEN},
    knobs::{peer_vcmp_port, VcmpAuth, LOCATION_HIDING},
    netns::NetState,
    vcmp::{self, Endpoint, PROTO_TCP, PROTO_UDP},
    vcmp2::{self, Addr, Hello, KeyReply, KeyRequest, Reply, MAX_LEN, STATUS_OK, STATUS_REFUSED},
    virtualization::{Asking, Auth, ConnectionKeys, Key, Origin, VirtualConnection},
};
use core::net::IpAddr;
use kernel::{prelude::*, sync::atomic::Release};

/// Whether `addr` may be another host's physical address: not a martian,
/// nor this host's own, nor a broadcast address.
pub(crate) fn is_peer_address(state: &NetState, addr: IpAddr) -> bool {
    let e = Endpoint::from_ip(addr, 0);
    !e.is_martian() && !e.is_link_local() && state.net().is_remote_unicast(e.addr)
}

/// The address at the other end of a VCMP stream, judged once per stream.
/// Without authentication, what a message says of a peer's physical
/// address is believed only if the message came from that address, and
/// that address is another host's: nobody can point a connection at a third
/// host, at a broadcast address or back at this host.
#[derive(Clone, Copy)]
pub(crate) struct Source {
    addr: IpAddr,
    is_peer: bool,
}

impl Source {
    /// The stream's other end is at `addr`.
    pub(crate) fn new(state: &NetState, addr: IpAddr) -> Self {
        // A dual-stack listener sees IPv4 peers v4-mapped: they are IPv4.
        let addr = Endpoint::from_ip(addr, 0).addr;
        Self {
            addr,
            is_peer: is_peer_address(state, addr),
        }
    }

    /// The address.
    pub(crate) fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Why a message from here is not believed about physical address
    /// `named`, if it is not: the counter and the reason.
    pub(crate) fn refuses(&self, named: IpAddr) -> Option<(Counter, &'static CStr)> {
        if named != self.addr {
            Some((
                Counter::VcmpWrongSource,
                c"not from the physical address it is about",
            ))
        } else if !self.is_peer {
            Some((
                Counter::VcmpMartian,
                c"from a martian, broadcast or local address",
            ))
        } else {
            None
        }
    }

    /// Where an update from here that names physical endpoint `named` puts
    /// the peer, and whether the peer has not been seen there; or why it is
    /// not believed. Version 1 (`authenticated` false) is believed only as
    /// [`Source::refuses`] says. An authenticated one puts the peer at this
    /// address with the named port: behind a NAT the update names the
    /// address the peer has, and comes from the NAT's, which is where its
    /// packets will come from (a NAT that keeps ports keeps the
    /// connection's); since they have not opened the NAT's mapping for the
    /// connection yet, that path is validated before anything goes there.
    /// Never a martian, broadcast or local address.
    pub(crate) fn believe(
        &self,
        named: Endpoint,
        authenticated: bool,
    ) -> Result<(Endpoint, bool), (Counter, &'static CStr)> {
        // A connection keeps its family: an update over a stream of the
        // other family is believed only about an address of the stream's.
        if named.addr.is_ipv6() != self.addr.is_ipv6() {
            return Err((
                Counter::VcmpWrongSource,
                c"not from the physical address it is about",
            ));
        }
        let checked = if authenticated { self.addr } else { named.addr };
        match self.refuses(checked) {
            Some(refusal) => Err(refusal),
            None => Ok((
                Endpoint::from_ip(self.addr, named.port),
                named.addr != self.addr,
            )),
        }
    }
}

/// How long the end that did not connect waits for the peer to ask for a
/// connection's key before it takes the peer for one without keys.
const PENDING_NS: i64 = 10_000_000_000;
/// How often the end that connected asks for a key that the peer refused
/// (its end may not be accepted yet) before it gives up: about eight
/// seconds' worth of [`retry_ns`].
const KEY_TRIES: u8 = 12;

/// How long after its `n`-th refusal a key is asked for again: 100 ms,
/// doubling up to a second.
fn retry_ns(n: u8) -> i64 {
    100_000_000i64 << n.saturating_sub(1).min(4)
}

/// Whether connection `c` is still waiting for its key: being asked for,
/// or (on the end that does not ask) for at most [`PENDING_NS`].
fn pending(c: &VirtualConnection) -> bool {
    c.key.auth == Auth::Pending
        && (c.key.asking != Asking::No || ffi::now_ns() - c.key.since_ns < PENDING_NS)
}

/// Why a version-1 `VNAT_UPD` or `VNAT_SUS` about connection `c` is not
/// believed, if it is not: `vcmp_auth` is `required`, or the connection has
/// a key (no downgrade), or is getting one.
pub(crate) fn v1_refused(c: &VirtualConnection) -> Option<&'static CStr> {
    if VcmpAuth::get() == VcmpAuth::Required {
        Some(c"version 1 is not believed (vcmp_auth is required)")
    } else if c.key.auth == Auth::Keyed {
        Some(c"the connection has a key: version 1 is not believed")
    } else if pending(c) {
        Some(c"the connection's key is being agreed")
    } else {
        None
    }
}

/// Whether the move or suspension of connection `key` may be sent now:
/// its key is not being agreed. A connection that is gone is settled.
pub(crate) fn settled(state: &NetState, key: Key) -> bool {
    state.connections.with(key, |c| !pending(c)).unwrap_or(true)
}

/// Whether a version-1 message may go out about connection `key`: it has
/// no key, and `vcmp_auth` is not `required` (the mover would have to
/// believe an unauthenticated answer).
pub(crate) fn may_send_v1(state: &NetState, key: Key) -> bool {
    // Version 1 carries IPv4 addresses only: an IPv6 connection moves by
    // version 2 or not at all.
    VcmpAuth::get() != VcmpAuth::Required
        && state
            .connections
            .with(key, |c| {
                c.key.auth != Auth::Keyed && !c.mapping.local_virtual.is_v6()
            })
            .unwrap_or(false)
}

/// The key request of a connection, as its end that asks names it.
/// Its ISN is filled in out of the table's lock ([`wanted`]).
fn request(c: &VirtualConnection) -> KeyRequest {
    KeyRequest {
        proto: c.mapping.proto,
        remote_virtual: Addr::from_endpoint(c.mapping.remote_virtual),
        local_virtual: Addr::from_endpoint(c.mapping.local_virtual),
        isn: 0,
    }
}

/// A connection whose key this end asks for, and where.
pub(crate) struct Wanted {
    /// The connection.
    pub(crate) key: Key,
    /// The peer's vnatd: the connection's remote physical address.
    pub(crate) peer: IpAddr,
    /// The local physical address it is asked from.
    pub(crate) from: IpAddr,
    /// The KEY message's fields.
    pub(crate) request: KeyRequest,
    /// This end opened it (TCP): the KEY carries its ISN.
    opened: bool,
}

/// Key requests taken per call of [`wanted`].
const WANTED_BATCH: usize = 256;

/// Takes the connections whose key this end asks for and that are due
/// (new ones, and those the peer refused a second ago), at most
/// [`WANTED_BATCH`]; returns whether any is left to take now or later.
///
/// No key is asked for a connection whose peer is not another host (a
/// connection of this host with itself never moves between hosts, and no
/// peer address would be believed), nor for one to the peers' VCMP port: it
/// is VCMP itself (a program speaking it), and asking would only talk to
/// the same vnatd about its own stream.
pub(crate) fn wanted(state: &NetState, out: &mut KVec<Wanted>) -> bool {
    let now = ffi::now_ns();
    let vcmp_port = peer_vcmp_port();
    let mut left = false;
    state.connections.update(|key, _, c| {
        if c.key.asking != Asking::Due || c.key.auth != Auth::Pending {
            return false;
        }
        let peer = c.mapping.remote_physical.addr;
        if c.mapping.remote_virtual.port == vcmp_port || !is_peer_address(state, peer) {
            c.key.auth = Auth::Unkeyed;
            c.key.asking = Asking::No;
            return true;
        }
        if now < c.key.since_ns || out.len() >= WANTED_BATCH {
            left = true;
            return false;
        }
        let w = Wanted {
            key,
            peer,
            from: c.mapping.local_physical.addr,
            request: request(c),
            opened: c.origin == Origin::Connect && c.mapping.proto == PROTO_TCP,
        };
        // Allocation under the table lock: atomic; on failure, next time.
        if out.push(w, GFP_ATOMIC).is_err() {
            left = true;
            return false;
        }
        c.key.asking = Asking::Asked;
        true
    });
    // The ISNs, under each socket's own lock (which is taken before the
    // table's, never under it).
    for w in out.iter_mut().filter(|w| w.opened && w.request.isn == 0) {
        if let Some(isn) = state.connections.sock(w.key).and_then(|s| s.tcp_isn(true)) {
            w.request.isn = isn;
        }
    }
    left
}

/// This end's half of a stream's key agreement: an ephemeral X25519 key.
pub(crate) struct Handshake {
    secret: X25519Secret,
    public: [u8; KEY_LEN],
}

impl Handshake {
    /// A fresh ephemeral key.
    pub(crate) fn new() -> Self {
        let secret = X25519Secret::generate();
        let public = secret.public();
        Self { secret, public }
    }

    /// HELLO (`reply` false, from the end that opens the stream) or HELLO_R
    /// with this end's public key, encoded into `out`; returns its length.
    pub(crate) fn hello(&self, reply: bool, out: &mut [u8; MAX_LEN]) -> usize {
        let h = Hello {
            version: vcmp2::VERSION,
            public: self.public,
        };
        let m = if reply {
            vcmp2::Message::HelloReply(h)
        } else {
            vcmp2::Message::Hello(h)
        };
        m.encode::<HmacSha256>(None, out)
    }

    /// The stream's key, with the other end's public key `peer`; `opened`:
    /// this end sent HELLO. `None` if `peer` is a low-order point.
    pub(crate) fn finish(self, peer: &[u8; KEY_LEN], opened: bool) -> Option<Secret> {
        let shared = self.secret.agree(peer)?;
        let (i, r) = if opened {
            (&self.public, peer)
        } else {
            (peer, &self.public)
        };
        Some(Secret::derive(|out| {
            key::stream_key::<HmacSha256>(shared.bytes(), i, r, out)
        }))
    }
}

/// The connection keys of the stream key `stream`, key id `id` and the
/// request whose naming bytes are `named` ([`KeyRequest::named`]), for the
/// end that asked (`initiator`) or the other.
fn connection_keys(stream: &Secret, id: u32, named: &[u8], initiator: bool) -> ConnectionKeys {
    let derive = |d| {
        Secret::derive(|out| key::connection_key::<HmacSha256>(stream.bytes(), id, named, d, out))
    };
    let (i, r) = (
        derive(Direction::FromInitiator),
        derive(Direction::FromResponder),
    );
    if initiator {
        ConnectionKeys::new(i, r)
    } else {
        ConnectionKeys::new(r, i)
    }
}

/// The id and keys that the `index`-th KEY `req` on the stream whose key
/// is `stream` is granted, for the end that asked (`initiator`) or the
/// other: the grant's, which the asker derives alike without the answer
/// ([`key::key_id`]).
fn granted_keys(
    stream: &Secret,
    index: u32,
    req: &KeyRequest,
    initiator: bool,
) -> (u32, ConnectionKeys) {
    let named = req.named();
    let id = key::key_id::<HmacSha256>(stream.bytes(), index, &named);
    (id, connection_keys(stream, id, &named, initiator))
}

/// What the end that grants keys answers a KEY with.
pub(crate) struct Grant {
    /// KEY_R's length in the caller's buffer.
    pub(crate) len: usize,
    /// Refused for a reason that guessing or forging gives (see
    /// `migration::Verdict`).
    pub(crate) suspicious: bool,
}

/// The UDP flow that an unconnected socket here serves for the peer
/// endpoint `theirs`, to our endpoint `ours`, recorded now (paper 3.5): if
/// there is such a socket and `theirs` is another host's address. Its key,
/// or `None`.
pub(crate) fn record_udp_flow(state: &NetState, ours: Endpoint, theirs: Endpoint) -> Option<Key> {
    let sk = Sock::udp_lookup(state.net(), ours, theirs)?;
    if !is_peer_address(state, theirs.addr) {
        return None;
    }
    let conn = VirtualConnection::new(PROTO_UDP, ours, theirs, 0, Origin::Update);
    let key = state.connections.insert(&sk, &conn);
    if key.is_err() {
        state.count(Counter::ConnectionsUntrackedNomem, 1);
    }
    key.ok()
}

/// On the end that grants keys: a KEY `req` (the whole message: `bytes`),
/// the `index`-th on its stream, came on a stream from `from` whose key is
/// `stream`. Gives the connection its keys, and writes the KEY_R into
/// `out`: under the new key if granted, an unauthenticated refusal
/// otherwise.
pub(crate) fn grant(
    state: &NetState,
    bytes: &[u8],
    req: &KeyRequest,
    index: u32,
    from: Source,
    stream: &Secret,
    out: &mut [u8; MAX_LEN],
) -> Grant {
    // A refusal is suspicious, but for the request of a peer that asks
    // second (see `asks_first`).
    let refuse_as = |why: Option<Counter>, suspicious: bool, out: &mut [u8; MAX_LEN]| {
        if let Some(why) = why {
            state.count(why, 1);
        }
        state.count(Counter::KeysRefused, 1);
        let r = vcmp2::Message::KeyReply(KeyReply {
            status: STATUS_REFUSED,
            key_id: 0,
            named: Addr::ZERO,
        });
        Grant {
            len: r.encode::<HmacSha256>(None, out),
            suspicious,
        }
    };
    let refuse = |why, out: &mut [u8; MAX_LEN]| refuse_as(why, true, out);
    if !vcmp2::verify::<HmacSha256>(bytes, stream.bytes()) {
        return refuse(Some(Counter::VcmpAuthFailed), out);
    }
    let (ours, named) = (req.remote_virtual.endpoint(), req.local_virtual.endpoint());
    // A connection is of one family, and its vnatds talk over it.
    if !ours.same_family(&named) || named.addr.is_ipv6() != from.addr().is_ipv6() {
        return refuse(Some(Counter::VcmpUnknownConnection), out);
    }
    // The asker names its end as it has it; behind a NAT, we know it by
    // the NAT's address (the stream's), with the same port if the NAT keeps
    // ports. Hosts behind one NAT share its address: a connection found so
    // is the asker's only if it has the ISN the asker opened it with (a
    // neighbour's with the same port has another). An unconnected UDP
    // socket's flow has no record until now: the request comes from the
    // address its end is known by (checked below), so the flow is the
    // peer's. Each connection found is believed only from its remote
    // physical address.
    let mut why = Counter::VcmpUnknownConnection;
    // A TCP connection that this host has, but has not recorded: its
    // application has not accepted it yet (the asker asks as soon as it
    // connects), it ended here, or VNAT does not record it. Not a guess:
    // the refusal is not suspicious, and the asker tries again. Only for
    // the endpoint the asker names, not one behind a NAT, whose neighbours
    // could learn so which of the NAT's ports has a connection here.
    let mut not_recorded = false;
    let nat = Endpoint::from_ip(from.addr(), named.port);
    // A connection that the asker opened from its new address after a move
    // and that location hiding gave its old one here: we know its end by
    // that (and check its ISN as behind a NAT).
    let hidden = LOCATION_HIDING
        .get_bool()
        .then(|| state.rules.hidden_peer(from.addr()))
        .flatten()
        .map(|addr| Endpoint::from_ip(addr, named.port))
        .filter(|&h| h != named && h != nat);
    let found = [
        Some((named, false)),
        (nat != named).then_some((nat, true)),
        hidden.map(|h| (h, true)),
    ]
    .into_iter()
    .flatten()
    .find_map(|(theirs, behind_nat)| {
        let Some((k, c)) = state.connections.find(req.proto, ours, theirs).or_else(|| {
            (req.proto == PROTO_UDP && from.addr() == theirs.addr)
                .then(|| record_udp_flow(state, ours, theirs))
                .flatten()
                .and_then(|k| state.connections.with(k, |c| (k, *c)))
        }) else {
            not_recorded |= req.proto == PROTO_TCP
                && !behind_nat
                && from.refuses(theirs.addr).is_none()
                && Sock::tcp_exists(state.net(), ours, theirs);
            return None;
        };
        if let Some((w, _)) = from.refuses(c.mapping.remote_physical.addr) {
            why = w;
            return None;
        }
        if behind_nat && req.proto == PROTO_TCP {
            let isn = state.connections.sock(k).and_then(|s| s.tcp_isn(false));
            if req.isn == 0 || isn != Some(req.isn) {
                why = Counter::VcmpAuthFailed;
                return None;
            }
        }
        Some((k, c))
    });
    let Some((k, c)) = found else {
        if not_recorded {
            return refuse_as(None, false, out);
        }
        return refuse(Some(why), out);
    };
    if VcmpAuth::get() == VcmpAuth::Off {
        return refuse(None, out);
    }
    let replacing = match c.key.auth {
        Auth::Keyed if may_grant_again(state, k, &c, req) => Some(c.key.id),
        Auth::Keyed => return refuse(None, out),
        _ => None,
    };
    if asks_first(&c) {
        // Both ends of this UDP flow connected, so both ask: this end's
        // request is the one to grant; the peer stops asking once keyed.
        return refuse_as(None, false, out);
    }
    // Derived, not drawn: the asker can tell it without our answer
    // (`assume_granted`).
    let (id, keys) = granted_keys(stream, index, req, false);
    // Memory short: refused, and asked again a second later.
    let Ok(keys) = KBox::new(keys, GFP_KERNEL) else {
        return refuse_as(None, false, out);
    };
    let r = vcmp2::Message::KeyReply(KeyReply {
        status: STATUS_OK,
        key_id: id,
        named: Addr::from_endpoint(c.mapping.remote_virtual),
    });
    let len = r.encode_prepared(Some(&keys.send_mac), out);
    match state
        .connections
        .set_keys(k, id, c.mapping.local_virtual, keys, replacing)
    {
        Some(true) => {
            state.count(
                if replacing.is_some() {
                    Counter::KeysRegranted
                } else {
                    Counter::KeysEstablished
                },
                1,
            );
            Grant {
                len,
                suspicious: false,
            }
        }
        _ => refuse(None, out),
    }
}

/// Whether a KEY `req` for connection `c` (record `k`), which has its key
/// already, is granted again, the new key replacing the old: the answer to
/// the asker's first request may have been lost with its stream (a reset,
/// or a stream given up as silent), leaving this end keyed and the asker
/// not, whose moves would then be refused. Only for TCP, with the ISN the
/// asker opened the connection with (which only its ends and its path
/// saw), only while nothing went under the key either way (a key once used
/// is never replaced), and only within [`crate::virtualization::REGRANT_NS`]
/// of the grant: the asker asks again within that if its answer was lost;
/// a connection that lives on keeps its key.
fn may_grant_again(state: &NetState, k: Key, c: &VirtualConnection, req: &KeyRequest) -> bool {
    req.proto == PROTO_TCP
        && req.isn != 0
        && c.key.regrantable(ffi::now_ns())
        && state.connections.sock(k).and_then(|s| s.tcp_isn(false)) == Some(req.isn)
}

/// Whether this end's request for `c`'s key goes first when the peer asks
/// too: both ends of a UDP flow whose sockets both connected ask (each
/// connected); the end with the lower virtual endpoint keeps asking and
/// the other grants, as for a connection open before VNAT. Granting both
/// would leave each end with the key it granted, not the same one.
fn asks_first(c: &VirtualConnection) -> bool {
    c.mapping.proto == PROTO_UDP
        && c.key.asking != Asking::No
        && goes_first(c.mapping.local_virtual, c.mapping.remote_virtual)
}

/// Of two ends that both ask for a connection's key, whether the one whose
/// virtual endpoint is `ours` (the other's `theirs`) goes first: the lower.
fn goes_first(ours: Endpoint, theirs: Endpoint) -> bool {
    ours < theirs
}

/// On the end that asks: the peer answered the KEY `req` for connection
/// `key`, sent on a stream whose key is `stream`, with `reply` (the whole
/// message: `bytes`). Returns whether the answer checks: a grant whose MAC
/// is not the peer's proves nothing (the stream is then broken). A refusal
/// is tried again a second later (the peer may not have accepted its end
/// yet), at most [`KEY_TRIES`] times.
pub(crate) fn granted(
    state: &NetState,
    key: Key,
    req: &KeyRequest,
    stream: &Secret,
    bytes: &[u8],
    reply: &KeyReply,
) -> bool {
    if reply.status != STATUS_OK {
        state.count(Counter::KeysRefused, 1);
        ask_again(state, key);
        return true;
    }
    let keys = connection_keys(stream, reply.key_id, &req.named(), true);
    if !vcmp2::verify_prepared(bytes, &keys.recv_mac) {
        state.count(Counter::VcmpAuthFailed, 1);
        return false;
    }
    // How the peer knows our end: the connection's port, behind a NAT at
    // the NAT's address, of the connection's family.
    let (named, ours) = (reply.named.endpoint(), req.local_virtual.endpoint());
    let named = match named {
        n if n.port == ours.port && n.same_family(&ours) => n,
        _ => {
            state.count(Counter::VcmpAuthFailed, 1);
            return false;
        }
    };
    // Memory short: asked again, as after a refusal. The peer has the key
    // already, as when its answer is lost: it grants it again only within
    // the bounds of `may_grant_again` (TCP that this end opened, soon,
    // nothing sent under the key); otherwise the connection stays unkeyed
    // here and keyed there, and its moves are refused. A small allocation
    // of a kernel thread fails only when memory is all but gone.
    let Ok(keys) = KBox::new(keys, GFP_KERNEL) else {
        ask_again(state, key);
        return true;
    };
    if state
        .connections
        .set_keys(key, reply.key_id, named, keys, None)
        == Some(true)
    {
        state.count(Counter::KeysEstablished, 1);
    }
    true
}

/// On the end that asks: the KEY `req` for connection `key`, the
/// `index`-th on a stream whose key is `stream`, went out on the wire, and
/// its answer cannot come any more: the address the stream is from went
/// away (the host moved) first. Asking again from another address cannot
/// help, since the peer grants a key only to the connection's remote
/// physical address, the one that went. The peer granted the key that both
/// ends derive from the stream key, the KEY's place and the request
/// ([`key::key_id`]), if the KEY reached it and it did not refuse: the
/// connection takes that key, so that its move goes under it (a move under
/// a key the peer does not have is refused). Not for a UDP flow whose peer
/// asks too and goes first (it refuses this end's KEY: see
/// [`asks_first`]). Our end is named as we know it: behind a NAT, which
/// KEY_R would have told, the move is refused too. Returns whether the
/// connection took the key.
pub(crate) fn assume_granted(
    state: &NetState,
    key: Key,
    req: &KeyRequest,
    index: u32,
    stream: &Secret,
) -> bool {
    if req.proto == PROTO_UDP
        && !goes_first(req.local_virtual.endpoint(), req.remote_virtual.endpoint())
    {
        return false;
    }
    let (id, keys) = granted_keys(stream, index, req, true);
    let Ok(keys) = KBox::new(keys, GFP_KERNEL) else {
        return false;
    };
    let named = req.local_virtual.endpoint();
    let took = state.connections.set_keys(key, id, named, keys, None) == Some(true);
    if took {
        state.count(Counter::KeysAssumed, 1);
    }
    took
}

/// On the end that asks: connection `key` did not get its key this time;
/// it asks again a second later, at most [`KEY_TRIES`] times.
pub(crate) fn ask_again(state: &NetState, key: Key) {
    let given_up = state.connections.with(key, |c| {
        if c.key.auth == Auth::Keyed {
            // Keyed meanwhile by the peer's request (see asks_first).
            return false;
        }
        c.key.refusals = c.key.refusals.saturating_add(1);
        if c.key.refusals >= KEY_TRIES {
            c.key.auth = Auth::Unkeyed;
            c.key.asking = Asking::No;
            return true;
        }
        c.key.asking = Asking::Due;
        c.key.since_ns = ffi::now_ns() + retry_ns(c.key.refusals).min(1_000_000_000);
        false
    });
    state.keys_wanted.store(true, Release);
    if given_up == Some(true) {
        state.count(Counter::KeysFailed, 1);
    }
}

/// On the end that asks: connection `key` gets no key (the peer speaks
/// only version 1, or its vnatd did not answer).
pub(crate) fn no_key(state: &NetState, key: Key) {
    let left = state.connections.with(key, |c| {
        if c.key.auth != Auth::Pending {
            return false;
        }
        c.key.auth = Auth::Unkeyed;
        c.key.asking = Asking::No;
        true
    });
    if left == Some(true) {
        state.count(Counter::KeysFailed, 1);
    }
}

/// The version-2 form of `msg` (the `VNAT_UPD` or `VNAT_SUS` of connection
/// `key`) under the connection's key with its next counter, encoded into
/// `out`: its length and counter; `None` if the connection has no key.
pub(crate) fn seal(
    state: &NetState,
    key: Key,
    msg: &vcmp::Message,
    out: &mut [u8; MAX_LEN],
) -> Option<(usize, u64)> {
    state
        .connections
        .with_keys(key, |c, keys| {
            let keys = keys?;
            let (u, wrap): (_, fn(_) -> _) = match msg {
                vcmp::Message::Update(u) => (u, vcmp2::Message::Update),
                vcmp::Message::Suspend(u) => (u, vcmp2::Message::Suspend),
                _ => return None,
            };
            c.key.sent += 1;
            // Our end as the peer knows it (KEY_R).
            let u = vcmp::Update {
                local_virtual: c.key.named,
                ..*u
            };
            let m = wrap(vcmp2::Update::from_v1(&u, c.key.id, c.key.sent));
            Some((m.encode_prepared(Some(&keys.send_mac), out), c.key.sent))
        })
        .flatten()
}

/// A version-2 `VNAT_UPD` or `VNAT_SUS` `u` (the whole message: `bytes`):
/// the connection it is about and its fields, if the connection has the key
/// `u` names and the MAC and counter check (the counter is then spent);
/// otherwise the counter of why not.
pub(crate) fn open(
    state: &NetState,
    bytes: &[u8],
    u: &vcmp2::Update,
) -> Result<(Key, vcmp::Update), Counter> {
    let v1 = u.to_v1().ok_or(Counter::VcmpUnknownConnection)?;
    let (key, _) = state
        .connections
        .find(v1.proto, v1.remote_virtual, v1.local_virtual)
        .ok_or(Counter::VcmpUnknownConnection)?;
    state
        .connections
        .with_keys(key, |c, keys| {
            let keys = match keys {
                Some(k) if c.key.id == u.key_id => k,
                _ => return Err(Counter::VcmpAuthFailed),
            };
            if !vcmp2::verify_prepared(bytes, &keys.recv_mac) {
                return Err(Counter::VcmpAuthFailed);
            }
            if !c.key.replay.fresh(u.counter) {
                return Err(Counter::VcmpReplayed);
            }
            c.key.replay.commit(u.counter);
            Ok(())
        })
        .unwrap_or(Err(Counter::VcmpUnknownConnection))?;
    Ok((key, v1))
}

/// What a version-2 reply says, before it is sealed.
pub(crate) struct ReplyFields {
    /// SUS_R rather than UPD_R.
    pub(crate) suspend: bool,
    /// Accepted.
    pub(crate) ok: bool,
    /// SUS_R: the helper activated.
    pub(crate) helper: u8,
    /// The replier's physical endpoint.
    pub(crate) local_physical: Endpoint,
    /// Where the request came from, as the replier saw it.
    pub(crate) observed: Endpoint,
}

/// The UPD_R or SUS_R `f` to the version-2 request `u`, encoded into `out`:
/// under the key of connection `key` if the request was opened
/// ([`open`]), else an unauthenticated refusal (zero key id and MAC, which
/// proves nothing but that the move is refused: `vcmp2.rs`). Returns its
/// length.
pub(crate) fn seal_reply(
    state: &NetState,
    key: Option<Key>,
    u: &vcmp2::Update,
    f: &ReplyFields,
    out: &mut [u8; MAX_LEN],
) -> usize {
    let ok = f.ok && key.is_some();
    let mut r = Reply {
        status: if ok { STATUS_OK } else { STATUS_REFUSED },
        helper: if f.suspend && ok { f.helper } else { 0 },
        key_id: 0,
        counter: u.counter,
        local_physical: if ok {
            Addr::from_endpoint(f.local_physical)
        } else {
            Addr::ZERO
        },
        observed: if ok {
            Addr::from_endpoint(f.observed)
        } else {
            Addr::ZERO
        },
    };
    let wrap = |r: Reply| {
        if f.suspend {
            vcmp2::Message::SuspendReply(r)
        } else {
            vcmp2::Message::UpdateReply(r)
        }
    };
    let sealed = key.and_then(|k| {
        state
            .connections
            .with_keys(k, |c, keys| {
                let keys = keys?;
                r.key_id = c.key.id;
                Some(wrap(r).encode_prepared(Some(&keys.send_mac), out))
            })
            .flatten()
    });
    sealed.unwrap_or_else(|| {
        r.key_id = 0;
        wrap(r).encode::<HmacSha256>(None, out)
    })
}

/// On the mover: whether the version-2 UPD_R or SUS_R `r` (the whole
/// message: `bytes`) is the peer's answer to the request with counter
/// `counter` about connection `key`: its key id, MAC and counter check.
pub(crate) fn open_reply(
    state: &NetState,
    key: Key,
    bytes: &[u8],
    r: &Reply,
    counter: u64,
) -> bool {
    let ok = state
        .connections
        .with_keys(key, |c, keys| {
            keys.is_some_and(|k| {
                r.key_id == c.key.id
                    && r.counter == counter
                    && vcmp2::verify_prepared(bytes, &k.recv_mac)
            })
        })
        .unwrap_or(false);
    if !ok {
        state.count(Counter::VcmpAuthFailed, 1);
    }
    ok
}

#[kunit_tests(vnat_authentication)]
mod tests {
    use super::*;

    /// Two ends of a stream agree its key from each other's HELLO, and from
    /// it the connection's keys: what one sends under, the other receives
    /// under, and the two directions differ; both derive the key's id alike.
    #[test]
    fn both_ends_derive_matching_keys() {
        let (a, b) = (Handshake::new(), Handshake::new());
        let (pa, pb) = (a.public, b.public);
        let (Some(sa), Some(sb)) = (a.finish(&pb, true), b.finish(&pa, false)) else {
            panic!("no stream key from two fresh X25519 keys");
        };
        assert_eq!(sa.bytes(), sb.bytes());
        let req = KeyRequest {
            proto: vcmp::PROTO_TCP,
            remote_virtual: Addr::from_endpoint(Endpoint::new(0x0a00_0902, 5000)),
            local_virtual: Addr::from_endpoint(Endpoint::new(0x0a00_0102, 40000)),
            isn: 1,
        };
        let named = req.named();
        let asked = connection_keys(&sa, 7, &named, true);
        let granted = connection_keys(&sb, 7, &named, false);
        assert_eq!(asked.send.bytes(), granted.recv.bytes());
        assert_eq!(asked.recv.bytes(), granted.send.bytes());
        assert_ne!(asked.send.bytes(), asked.recv.bytes());
        let other = connection_keys(&sa, 8, &named, true);
        assert_ne!(asked.send.bytes(), other.send.bytes());
        // The key's id and keys too, without the grant's answer
        // (`assume_granted`).
        let ((ia, ka), (ib, kb)) = (
            granted_keys(&sa, 3, &req, true),
            granted_keys(&sb, 3, &req, false),
        );
        assert_eq!(ia, ib);
        assert_ne!(ia, 0);
        assert_eq!(ka.send.bytes(), kb.recv.bytes());
        assert_ne!(ia, granted_keys(&sa, 4, &req, true).0);
    }

    /// An authenticated update puts the peer at the stream's address with
    /// the port it names, to be validated if that is not the address it
    /// names (a NAT is between); never at a martian or local one.
    #[test]
    fn an_update_is_believed_from_where_it_comes() {
        let nat = Source {
            addr: Endpoint::new(0xcb00_7102, 0).addr,
            is_peer: true,
        };
        let named = Endpoint::new(0xc0a8_0202, 40000);
        assert_eq!(
            nat.believe(named, true).ok(),
            Some((Endpoint::new(0xcb00_7102, 40000), true))
        );
        assert!(nat.believe(named, false).is_err());
        let direct = Endpoint::new(0xcb00_7102, 40000);
        for authenticated in [true, false] {
            assert_eq!(
                nat.believe(direct, authenticated).ok(),
                Some((direct, false))
            );
        }
        let local = Source {
            is_peer: false,
            ..nat
        };
        assert!(local.believe(direct, true).is_err());
    }

    /// When both ends of a UDP flow connected, both ask for its key, and
    /// exactly one of them goes first (the other grants); ends that do not
    /// ask, and TCP connections, never refuse a request that way.
    #[test]
    fn of_two_udp_ends_that_ask_one_goes_first() {
        let (a, b) = (
            Endpoint::new(0x0a00_0102, 40000),
            Endpoint::new(0x0a00_0902, 5300),
        );
        let end =
            |proto, ours, theirs, origin| VirtualConnection::new(proto, ours, theirs, 0, origin);
        let (at_a, at_b) = (
            end(PROTO_UDP, a, b, Origin::Connect),
            end(PROTO_UDP, b, a, Origin::Connect),
        );
        assert!(asks_first(&at_a) != asks_first(&at_b));
        assert!(!asks_first(&end(PROTO_UDP, a, b, Origin::Update)));
        assert!(!asks_first(&end(PROTO_TCP, a, b, Origin::Connect)));
    }

    /// A HELLO_R with a low-order point makes no stream key.
    #[test]
    fn a_low_order_point_makes_no_key() {
        assert!(Handshake::new().finish(&[0; KEY_LEN], true).is_none());
    }

    /// A refused key request is tried again after 100 ms, then 200, 400,
    /// 800 ms, and a second from then on.
    #[test]
    fn refusals_back_off_to_a_second() {
        let ms = |n| retry_ns(n).min(1_000_000_000) / 1_000_000;
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5), ms(12)],
            [100, 200, 400, 800, 1000, 1000]
        );
    }
}
