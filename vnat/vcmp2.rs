// SPDX-License-Identifier: GPL-2.0

//! VCMP version 2: the paper's messages, authenticated by the security key
//! (paper 3.3.1.1 and 3.3.2.1), with a length field and IPv6-sized
//! endpoints.
//!
//! Version 1 (`vcmp.rs`, the paper's figures 3-4 and 3-5) believes whoever
//! sends it. Version 2 carries, in every message that moves or suspends a
//! connection, the connection's key id, a counter that only grows, and a MAC
//! under the connection's key: only a host that took part in the key's
//! agreement can move the connection, and no message can be played twice.
//!
//! Every message starts with the same four bytes; `Version` is where version
//! 1 has it, so a peer that speaks only version 1 refuses a version-2
//! message as an unknown version (and closes the stream: that is how a
//! version-2 speaker learns to fall back).
//!
//! ```text
//!  0       8       16              31
//! +-------+-------+----------------+
//! |Version|Command|     Length     |   Version 2; Length: the whole message
//! +-------+-------+----------------+
//! ```
//!
//! An endpoint (`Addr`, 18 bytes) is a 16-byte IPv6 address, an IPv4 one
//! as `::ffff:a.b.c.d` (RFC 4291 2.5.5.2), then a 2-byte port. All numbers
//! are in network byte order; every byte marked `0` must be zero. The MAC
//! (16 bytes) is HMAC-SHA256 under the key named, truncated, over every
//! byte before it. The lengths below are exact.
//!
//! | command | code | bytes | after the header                                   | MAC key    |
//! |---------|------|-------|----------------------------------------------------|------------|
//! | HELLO   | 16   | 40    | version, 0, 0 0, X25519 public key (32)             | none       |
//! | HELLO_R | 17   | 40    | version, 0, 0 0, X25519 public key (32)             | none       |
//! | KEY     | 18   | 64    | proto, 0, 0 0, R_Vir, L_Vir, ISN (4), MAC           | stream key |
//! | KEY_R   | 19   | 46    | status, 0, 0 0, key id (4), named, MAC              | new key    |
//! | UPD     | 20   | 90    | proto, 0, 0 0, key id, counter (8), R_Vir, L_Vir, L_Phy, MAC | connection key |
//! | UPD_R   | 21   | 72    | status, helper, 0 0, key id, counter, L_Phy, observed, MAC | connection key |
//! | SUS     | 22   | 90    | as UPD                                              | connection key |
//! | SUS_R   | 23   | 72    | as UPD_R                                            | connection key |
//!
//! HELLO opens a stream: both ends send a fresh X25519 public key, and the
//! stream key is derived from the shared secret and both public keys
//! (`key.rs`). KEY asks for a key for one connection (the two virtual
//! endpoints, as in `VNAT_UPD`, and for a TCP connection the asker opened,
//! its initial sequence number, which a NAT does not change; else 0); KEY_R accepts it, its MAC proving that the
//! replier derived the same key, and says how the replier names the
//! asker's endpoint of the connection (`named`: behind a NAT, the NAT's
//! address, not the one the asker has). UPD and SUS are `VNAT_UPD` and
//! `VNAT_SUS` with the key id and the sender's counter for that key, the
//! sender's virtual endpoint named as KEY_R named it; UPD_R and SUS_R
//! answer them, echoing the counter, with the replier's physical endpoint
//! and the endpoint the update came from as the replier saw it (behind a
//! NAT, not the one named).
//!
//! A refusal (status 1) is the same whatever the reason; one that the
//! replier cannot authenticate (no key) carries a zero key id and MAC, and
//! proves nothing but a refusal: the mover takes it as one, since it can
//! only stop a move, which whoever can put bytes into the stream can do as
//! well by resetting it; a peer that lost the connection so says so at
//! once, and the stream goes on for the others.
//!
//! Plain `no_std` Rust without allocation, shared with `tools/vnat-proto`.

pub use crate::vcmp::DecodeError;
use crate::{
    key::{Mac, KEY_LEN},
    vcmp::{Endpoint, HELPER_STOP, PROTO_TCP, PROTO_UDP},
};

/// The version described here.
pub const VERSION: u8 = 2;
/// Bytes of the common header.
pub const HDR_LEN: usize = 4;
/// The longest message, and the buffer it is built in.
pub const MAX_LEN: usize = 90;
/// Bytes of a MAC on the wire (HMAC-SHA256, truncated).
pub const TAG_LEN: usize = 16;
/// Bytes of an X25519 public key.
pub const PUBLIC_LEN: usize = 32;
/// Bytes of an endpoint on the wire.
pub const ADDR_LEN: usize = 18;

/// Command code of HELLO.
pub const CMD_HELLO: u8 = 16;
/// Command code of HELLO_R.
pub const CMD_HELLO_R: u8 = 17;
/// Command code of KEY.
pub const CMD_KEY: u8 = 18;
/// Command code of KEY_R.
pub const CMD_KEY_R: u8 = 19;
/// Command code of UPD.
pub const CMD_UPD: u8 = 20;
/// Command code of UPD_R.
pub const CMD_UPD_R: u8 = 21;
/// Command code of SUS.
pub const CMD_SUS: u8 = 22;
/// Command code of SUS_R.
pub const CMD_SUS_R: u8 = 23;

/// Status of a reply: accepted.
pub const STATUS_OK: u8 = 0;
/// Status of a reply: refused (for whatever reason).
pub const STATUS_REFUSED: u8 = 1;

/// The length of a message of command `cmd`, or `None` for an unknown one.
pub const fn length_of(cmd: u8) -> Option<usize> {
    match cmd {
        CMD_HELLO | CMD_HELLO_R => Some(HDR_LEN + 4 + PUBLIC_LEN),
        CMD_KEY => Some(HDR_LEN + 4 + 2 * ADDR_LEN + 4 + TAG_LEN),
        CMD_KEY_R => Some(HDR_LEN + 4 + 4 + ADDR_LEN + TAG_LEN),
        CMD_UPD | CMD_SUS => Some(HDR_LEN + 4 + 4 + 8 + 3 * ADDR_LEN + TAG_LEN),
        CMD_UPD_R | CMD_SUS_R => Some(HDR_LEN + 4 + 4 + 8 + 2 * ADDR_LEN + TAG_LEN),
        _ => None,
    }
}

/// An endpoint of version 2: an IPv6 address (IPv4 mapped) and a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Addr {
    /// The address, as on the wire.
    pub ip: [u8; 16],
    /// The port, host byte order.
    pub port: u16,
}

impl Addr {
    /// The unspecified endpoint `[::]:0`.
    pub const ZERO: Self = Self {
        ip: [0; 16],
        port: 0,
    };

    /// `e` on the wire: IPv6, or IPv4 as `::ffff:a.b.c.d`.
    pub const fn from_endpoint(e: Endpoint) -> Self {
        Self {
            ip: e.octets16(),
            port: e.port,
        }
    }

    /// The endpoint: IPv4 if the address is IPv4-mapped, else IPv6.
    pub const fn endpoint(&self) -> Endpoint {
        Endpoint::from_v6(self.ip, self.port)
    }

    /// Whether neither the address nor the port is zero (for an IPv4-mapped
    /// address, the IPv4 address).
    pub const fn is_specified(&self) -> bool {
        self.endpoint().is_specified()
    }
}

/// HELLO and HELLO_R: the version the sender speaks (HELLO: the highest it
/// speaks; HELLO_R: the one chosen) and its ephemeral X25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// A VCMP version, at least 2.
    pub version: u8,
    /// The sender's public key for this stream.
    pub public: [u8; PUBLIC_LEN],
}

/// KEY: asks for a key for one connection, named as in `VNAT_UPD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRequest {
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// The receiver's virtual endpoint.
    pub remote_virtual: Addr,
    /// The sender's virtual endpoint.
    pub local_virtual: Addr,
    /// The sender's initial sequence number of a TCP connection it opened
    /// (0: none): behind a NAT, what tells its connection from a
    /// neighbour's with the same port.
    pub isn: u32,
}

/// Bytes of [`KeyRequest::named`].
pub const NAMED_LEN: usize = 4 + 2 * ADDR_LEN + 4;

impl KeyRequest {
    /// The bytes of the KEY message that name the connection (protocol,
    /// three zero bytes, both virtual endpoints, the ISN), exactly as on the
    /// wire:
    /// both ends derive the connection's keys from them
    /// (`key::connection_key`).
    pub fn named(&self) -> [u8; NAMED_LEN] {
        let mut b = [0u8; MAX_LEN];
        let len = Message::Key(*self).encode::<NoMac>(None, &mut b);
        let mut out = [0u8; NAMED_LEN];
        out.copy_from_slice(&b[HDR_LEN..len - TAG_LEN]);
        out
    }
}

/// Encodes without a MAC (never called: `encode` with no key writes none).
#[derive(Clone)]
struct NoMac;

impl Mac for NoMac {
    fn new(_: &[u8]) -> Self {
        Self
    }
    fn update(&mut self, _: &[u8]) {}
    fn finish(self) -> [u8; KEY_LEN] {
        [0; KEY_LEN]
    }
}

/// KEY_R: the answer to a KEY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyReply {
    /// [`STATUS_OK`] or [`STATUS_REFUSED`].
    pub status: u8,
    /// The new key's id (zero in an unauthenticated refusal).
    pub key_id: u32,
    /// The asker's virtual endpoint of the connection as the replier names
    /// it (`[::]:0` in a refusal): the one the asker's UPD and SUS name.
    pub named: Addr,
}

/// UPD and SUS: `VNAT_UPD` and `VNAT_SUS`, authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// The connection's key.
    pub key_id: u32,
    /// The sender's counter for that key: each message has a greater one.
    pub counter: u64,
    /// The receiver's virtual endpoint.
    pub remote_virtual: Addr,
    /// The sender's virtual endpoint.
    pub local_virtual: Addr,
    /// The sender's physical endpoint: the new one (UPD), the current one
    /// (SUS).
    pub local_physical: Addr,
}

impl Update {
    /// The version-2 form of the paper's `VNAT_UPD` or `VNAT_SUS` fields
    /// `u`, under key `key_id`, with counter `counter`.
    pub const fn from_v1(u: &crate::vcmp::Update, key_id: u32, counter: u64) -> Self {
        Self {
            proto: u.proto,
            key_id,
            counter,
            remote_virtual: Addr::from_endpoint(u.remote_virtual),
            local_virtual: Addr::from_endpoint(u.local_virtual),
            local_physical: Addr::from_endpoint(u.local_physical),
        }
    }

    /// The paper's fields, if every endpoint is of one family (a
    /// connection keeps its family: an update that moves an IPv4 one to an
    /// IPv6 address, or names endpoints of both, is refused).
    pub fn to_v1(&self) -> Option<crate::vcmp::Update> {
        let u = crate::vcmp::Update {
            proto: self.proto,
            remote_virtual: self.remote_virtual.endpoint(),
            local_virtual: self.local_virtual.endpoint(),
            local_physical: self.local_physical.endpoint(),
        };
        (u.remote_virtual.same_family(&u.local_virtual)
            && u.local_virtual.same_family(&u.local_physical))
        .then_some(u)
    }
}

/// UPD_R and SUS_R.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// [`STATUS_OK`] or [`STATUS_REFUSED`].
    pub status: u8,
    /// SUS_R: the helper the replier activated (`vcmp::HELPER_*`); zero in
    /// an UPD_R.
    pub helper: u8,
    /// The key of the request (zero in an unauthenticated refusal).
    pub key_id: u32,
    /// The request's counter.
    pub counter: u64,
    /// The replier's physical endpoint of the connection.
    pub local_physical: Addr,
    /// Where the request came from, as the replier saw it.
    pub observed: Addr,
}

impl Reply {
    /// Whether this is a refusal its sender could not authenticate (zero key
    /// id: it has no key for the request, which a key id never is) of the
    /// request with counter `counter`.
    pub fn is_unkeyed_refusal(&self, counter: u64) -> bool {
        self.status == STATUS_REFUSED && self.key_id == 0 && self.counter == counter
    }

    /// The paper's `VNAT_UPD_R` with what this UPD_R says: the replier's
    /// physical endpoint, or a refusal.
    pub fn to_v1_update(&self) -> crate::vcmp::UpdateReply {
        match self.status {
            STATUS_OK => crate::vcmp::UpdateReply {
                local_physical: self.local_physical.endpoint(),
            },
            _ => crate::vcmp::UpdateReply::REFUSED,
        }
    }

    /// The `VNAT_SUS_R` with what this SUS_R says, as
    /// [`Reply::to_v1_update`] does.
    pub fn to_v1_suspend(&self) -> crate::vcmp::SuspendReply {
        match self.status {
            STATUS_OK => crate::vcmp::SuspendReply {
                local_physical: self.local_physical.endpoint(),
                helper: self.helper,
            },
            _ => crate::vcmp::SuspendReply::REFUSED,
        }
    }
}

/// A decoded version-2 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// HELLO.
    Hello(Hello),
    /// HELLO_R.
    HelloReply(Hello),
    /// KEY.
    Key(KeyRequest),
    /// KEY_R.
    KeyReply(KeyReply),
    /// UPD.
    Update(Update),
    /// UPD_R.
    UpdateReply(Reply),
    /// SUS.
    Suspend(Update),
    /// SUS_R.
    SuspendReply(Reply),
}

/// Writes fields in order into a message buffer.
struct Writer<'a> {
    b: &'a mut [u8; MAX_LEN],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, v: &[u8]) {
        self.b[self.at..self.at + v.len()].copy_from_slice(v);
        self.at += v.len();
    }
    fn addr(&mut self, a: &Addr) {
        self.bytes(&a.ip);
        self.bytes(&a.port.to_be_bytes());
    }
}

/// Reads fields in order from a message of checked length.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut v = [0u8; N];
        if let Some(s) = self.b.get(self.at..self.at + N) {
            v.copy_from_slice(s);
        }
        self.at += N;
        v
    }
    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
    fn addr(&mut self) -> Addr {
        let ip = self.array();
        let port = u16::from_be_bytes(self.array());
        Addr { ip, port }
    }
    fn zero(&mut self, n: usize) -> Result<(), DecodeError> {
        match self.b.get(self.at..self.at + n) {
            Some(s) if s.iter().all(|&x| x == 0) => {
                self.at += n;
                Ok(())
            }
            _ => Err(DecodeError::Field),
        }
    }
}

fn proto_ok(p: u8) -> Result<u8, DecodeError> {
    match p {
        PROTO_TCP | PROTO_UDP => Ok(p),
        _ => Err(DecodeError::Field),
    }
}

fn status_ok(s: u8) -> Result<u8, DecodeError> {
    match s {
        STATUS_OK | STATUS_REFUSED => Ok(s),
        _ => Err(DecodeError::Field),
    }
}

impl Message {
    /// The command code.
    pub const fn command(&self) -> u8 {
        match self {
            Self::Hello(_) => CMD_HELLO,
            Self::HelloReply(_) => CMD_HELLO_R,
            Self::Key(_) => CMD_KEY,
            Self::KeyReply(_) => CMD_KEY_R,
            Self::Update(_) => CMD_UPD,
            Self::UpdateReply(_) => CMD_UPD_R,
            Self::Suspend(_) => CMD_SUS,
            Self::SuspendReply(_) => CMD_SUS_R,
        }
    }

    /// Whether the message carries a MAC (all but HELLO and HELLO_R).
    pub const fn has_mac(&self) -> bool {
        !matches!(self, Self::Hello(_) | Self::HelloReply(_))
    }

    /// Encodes the message into `out` and returns its length. A message
    /// with a MAC gets one under `key`; `None` writes a zero MAC (only an
    /// unauthenticated refusal is sent so, and proves nothing).
    pub fn encode<M: Mac>(&self, key: Option<&[u8; KEY_LEN]>, out: &mut [u8; MAX_LEN]) -> usize {
        self.encode_prepared(key.map(|k| M::new(k)).as_ref(), out)
    }

    /// As [`Message::encode`], under a key prepared as [`Mac`] says.
    pub fn encode_prepared<M: Mac>(&self, key: Option<&M>, out: &mut [u8; MAX_LEN]) -> usize {
        let cmd = self.command();
        // Every command above has a length.
        let len = length_of(cmd).unwrap_or(HDR_LEN);
        *out = [0; MAX_LEN];
        let mut w = Writer { b: out, at: 0 };
        w.bytes(&[VERSION, cmd]);
        // At most MAX_LEN (90): fits in 16 bits.
        w.bytes(&(len as u16).to_be_bytes());
        match self {
            Self::Hello(h) | Self::HelloReply(h) => {
                w.bytes(&[h.version, 0, 0, 0]);
                w.bytes(&h.public);
            }
            Self::Key(k) => {
                w.bytes(&[k.proto, 0, 0, 0]);
                w.addr(&k.remote_virtual);
                w.addr(&k.local_virtual);
                w.bytes(&k.isn.to_be_bytes());
            }
            Self::KeyReply(r) => {
                w.bytes(&[r.status, 0, 0, 0]);
                w.bytes(&r.key_id.to_be_bytes());
                w.addr(&r.named);
            }
            Self::Update(u) | Self::Suspend(u) => {
                w.bytes(&[u.proto, 0, 0, 0]);
                w.bytes(&u.key_id.to_be_bytes());
                w.bytes(&u.counter.to_be_bytes());
                w.addr(&u.remote_virtual);
                w.addr(&u.local_virtual);
                w.addr(&u.local_physical);
            }
            Self::UpdateReply(r) | Self::SuspendReply(r) => {
                w.bytes(&[r.status, r.helper, 0, 0]);
                w.bytes(&r.key_id.to_be_bytes());
                w.bytes(&r.counter.to_be_bytes());
                w.addr(&r.local_physical);
                w.addr(&r.observed);
            }
        }
        if self.has_mac() {
            if let Some(key) = key {
                let t = tag_prepared(key, &out[..len - TAG_LEN]);
                out[len - TAG_LEN..len].copy_from_slice(&t);
            }
        }
        len
    }

    /// Decodes exactly one message. The MAC is not checked here: which key
    /// checks it depends on what the message names ([`verify`]).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < HDR_LEN {
            return Err(DecodeError::Length(b.len()));
        }
        if b[0] != VERSION {
            return Err(DecodeError::Version(b[0]));
        }
        let cmd = b[1];
        let want = length_of(cmd).ok_or(DecodeError::Command(cmd))?;
        if usize::from(u16::from_be_bytes([b[2], b[3]])) != want || b.len() != want {
            return Err(DecodeError::Length(b.len()));
        }
        let mut r = Reader { b, at: HDR_LEN };
        let msg = match cmd {
            CMD_HELLO | CMD_HELLO_R => {
                let version = r.u8();
                r.zero(3)?;
                let h = Hello {
                    version,
                    public: r.array(),
                };
                if version < VERSION {
                    return Err(DecodeError::Field);
                }
                if cmd == CMD_HELLO {
                    Self::Hello(h)
                } else {
                    Self::HelloReply(h)
                }
            }
            CMD_KEY => {
                let proto = proto_ok(r.u8())?;
                r.zero(3)?;
                let k = KeyRequest {
                    proto,
                    remote_virtual: r.addr(),
                    local_virtual: r.addr(),
                    isn: r.u32(),
                };
                if !(k.remote_virtual.is_specified() && k.local_virtual.is_specified()) {
                    return Err(DecodeError::Unspecified);
                }
                Self::Key(k)
            }
            CMD_KEY_R => {
                let status = status_ok(r.u8())?;
                r.zero(3)?;
                let k = KeyReply {
                    status,
                    key_id: r.u32(),
                    named: r.addr(),
                };
                if status == STATUS_OK && !k.named.is_specified() {
                    return Err(DecodeError::Unspecified);
                }
                Self::KeyReply(k)
            }
            CMD_UPD | CMD_SUS => {
                let proto = proto_ok(r.u8())?;
                r.zero(3)?;
                let u = Update {
                    proto,
                    key_id: r.u32(),
                    counter: r.u64(),
                    remote_virtual: r.addr(),
                    local_virtual: r.addr(),
                    local_physical: r.addr(),
                };
                if !(u.remote_virtual.is_specified()
                    && u.local_virtual.is_specified()
                    && u.local_physical.is_specified())
                {
                    return Err(DecodeError::Unspecified);
                }
                if cmd == CMD_UPD {
                    Self::Update(u)
                } else {
                    Self::Suspend(u)
                }
            }
            _ => {
                let status = status_ok(r.u8())?;
                let helper = r.u8();
                r.zero(2)?;
                let rep = Reply {
                    status,
                    helper,
                    key_id: r.u32(),
                    counter: r.u64(),
                    local_physical: r.addr(),
                    observed: r.addr(),
                };
                if helper > HELPER_STOP || (cmd == CMD_UPD_R && helper != 0) {
                    return Err(DecodeError::Helper(helper.into()));
                }
                if status == STATUS_OK
                    && !(rep.local_physical.is_specified() && rep.observed.is_specified())
                {
                    return Err(DecodeError::Unspecified);
                }
                if cmd == CMD_UPD_R {
                    Self::UpdateReply(rep)
                } else {
                    Self::SuspendReply(rep)
                }
            }
        };
        Ok(msg)
    }
}

/// The MAC of `covered` under `key`, truncated to [`TAG_LEN`].
pub fn tag<M: Mac>(key: &[u8; KEY_LEN], covered: &[u8]) -> [u8; TAG_LEN] {
    tag_prepared(&M::new(key), covered)
}

/// As [`tag`], under a key prepared as [`Mac`] says.
pub fn tag_prepared<M: Mac>(key: &M, covered: &[u8]) -> [u8; TAG_LEN] {
    let mut m = key.clone();
    m.update(covered);
    let full = m.finish();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

/// Whether the message `b` (decoded by [`Message::decode`], so of a valid
/// length) carries a valid MAC under `key`, compared in constant time.
pub fn verify<M: Mac>(b: &[u8], key: &[u8; KEY_LEN]) -> bool {
    verify_prepared(b, &M::new(key))
}

/// As [`verify`], under a key prepared as [`Mac`] says.
pub fn verify_prepared<M: Mac>(b: &[u8], key: &M) -> bool {
    if b.len() < HDR_LEN + TAG_LEN {
        return false;
    }
    let (covered, got) = b.split_at(b.len() - TAG_LEN);
    M::ct_eq(&tag_prepared(key, covered), got)
}

/// The highest counter accepted so far under one key in one direction: a
/// message is accepted only with a greater one, so none is accepted twice,
/// nor one older than a message accepted already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    last: u64,
}

impl Replay {
    /// Nothing accepted yet.
    pub const fn new() -> Self {
        Self { last: 0 }
    }

    /// The highest counter accepted.
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// Whether `counter` may be accepted (greater than every one before).
    /// Call [`Replay::commit`] once the message is authenticated and done.
    pub const fn fresh(&self, counter: u64) -> bool {
        counter > self.last
    }

    /// Records `counter` as accepted.
    pub fn commit(&mut self, counter: u64) {
        if counter > self.last {
            self.last = counter;
        }
    }
}

/// What a [`StreamReader`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole version-1 message (`vcmp.rs`): 20 bytes.
    V1(&'a [u8]),
    /// A whole version-2 message, its length as its header says (decode
    /// it to check the rest).
    V2(&'a [u8]),
}

/// The stream cannot be split into messages any more: an unknown version,
/// or a version-2 header with an unknown command or a length other than
/// its command's. The reader stops; the stream is to
/// be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unframed;

/// Splits a TCP byte stream into VCMP messages of either version, telling
/// them apart by their first byte, without allocating.
pub struct StreamReader {
    buf: [u8; MAX_LEN],
    len: usize,
    broken: bool,
}

impl Default for StreamReader {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamReader {
    /// An empty reader.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LEN],
            len: 0,
            broken: false,
        }
    }

    /// Bytes of an incomplete message held so far.
    pub const fn pending(&self) -> usize {
        self.len
    }

    /// The length of the message being read, once its first bytes say.
    fn want(&self) -> Result<Option<usize>, Unframed> {
        match (self.len, self.buf[0]) {
            (0, _) => Ok(None),
            (_, crate::vcmp::VERSION) => Ok(Some(crate::vcmp::MSG_LEN)),
            (n, VERSION) if n < HDR_LEN => Ok(None),
            (_, VERSION) => {
                let l = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                // The length must be the command's: an unknown command, or
                // a wrong length, ends the stream at its header.
                match length_of(self.buf[1]) {
                    Some(want) if want == l => Ok(Some(l)),
                    _ => Err(Unframed),
                }
            }
            _ => Err(Unframed),
        }
    }

    /// Feeds `input`; calls `f` with each whole message, in order. Returns
    /// how many whole messages were found, or [`Unframed`] (after the
    /// messages before the fault) once the stream makes no sense.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut f: impl FnMut(Frame<'_>),
    ) -> Result<usize, Unframed> {
        let mut n = 0;
        while !self.broken && !input.is_empty() {
            // Read the first byte, then the header, then the rest.
            let goal = match self.want() {
                Ok(Some(l)) => l,
                Ok(None) if self.len == 0 => 1,
                Ok(None) => HDR_LEN,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
            let take = core::cmp::min(goal - self.len, input.len());
            self.buf[self.len..self.len + take].copy_from_slice(&input[..take]);
            self.len += take;
            input = &input[take..];
            match self.want() {
                Ok(Some(l)) if self.len == l => {
                    let m = &self.buf[..l];
                    f(if m[0] == VERSION {
                        Frame::V2(m)
                    } else {
                        Frame::V1(m)
                    });
                    self.len = 0;
                    n += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
        if self.broken {
            Err(Unframed)
        } else {
            Ok(n)
        }
    }
}
