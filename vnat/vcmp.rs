// SPDX-License-Identifier: GPL-2.0

//! VCMP, the VNAT Connection Migration Protocol: wire format.
//!
//! Paper section 3.3.2.2, figures 3-4 (`VNAT_UPD`) and 3-5 (`VNAT_UPD_R`).
//! Every message is five 32-bit words (20 bytes), in network byte order:
//!
//! ```text
//!  0       8       16                31
//! +-------+-------+-------------------+
//! |Version|Command|    R_Vir_Port     |   word 0
//! +-------+-------+-------------------+
//! |            R_Vir_Addr             |   word 1
//! +-----------------------------------+
//! |            L_Vir_Addr             |   word 2
//! +-----------------------------------+
//! |            L_Phy_Addr             |   word 3
//! +-------------------+---------------+
//! |    L_Vir_Port     |  L_Phy_Port   |   word 4
//! +-------------------+---------------+
//! ```
//!
//! `VNAT_UPD_R` uses only `L_Phy_Addr` and `L_Phy_Port`; the other fields are
//! "Not Used": sent as zero and ignored on receipt. A `VNAT_UPD_R` whose
//! `L_Phy_Addr` and `L_Phy_Port` are both zero refuses the update (the paper
//! says the reply carries the mapping "if any"): the replier has no such
//! virtual connection, or its conflict policy kept the one it has.
//!
//! Replies come in the order of the updates on the same TCP connection, so
//! many updates to one peer travel as one batch.
//!
//! Numeric codes chosen by this implementation (the paper names them but does
//! not give numbers): [`VERSION`] is 1, [`CMD_UPD`] is 1, [`CMD_UPD_R`] is 2.
//! The figure has no field for the transport protocol, yet a TCP and a UDP
//! connection may share their four endpoints; so a `VNAT_UPD` for a UDP
//! "connection" (paper 3.5) carries the command code [`CMD_UPD_UDP`], 3, in
//! the same layout. A peer that knows only TCP rejects it as an unknown
//! command, and the migration of that one connection fails cleanly.
//!
//! Suspending (paper 3.3.1 and 4.3: vnatd "contacts the vnatd on the other
//! end of the connection" to activate a migration helper there) has no
//! layout in the paper. `VNAT_SUS` ([`CMD_SUS`], 4; [`CMD_SUS_UDP`], 5 for
//! UDP) uses figure 3-4's: the sender's virtual endpoint, the receiver's,
//! and the sender's physical endpoint as it is now (suspending moves
//! nothing). `VNAT_SUS_R` ([`CMD_SUS_R`], 6) uses figure 3-5's: the
//! replier's physical endpoint (all zero: no such virtual connection), and
//! in the 16 bits the figure leaves unused in word 0, the helper the replier
//! activated ([`HELPER_NONE`], [`HELPER_KEEPALIVE`], [`HELPER_STOP`]). The
//! receiver of a `VNAT_SUS` chooses the helper by its own policy: a peer
//! cannot make this host stop its processes. A peer that does not know
//! these codes rejects them as unknown commands; the suspension stands
//! (suspending needs nothing), without a helper. Anything else is rejected.
//!
//! This file is plain `no_std` Rust without allocation: the kernel module
//! includes it, and so does the host crate `tools/vnat-proto`, whose tests and
//! fuzz targets exercise it.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The VCMP version this implementation speaks.
pub const VERSION: u8 = 1;
/// Command code of `VNAT_UPD` (figure 3-4).
pub const CMD_UPD: u8 = 1;
/// Command code of `VNAT_UPD_R` (figure 3-5).
pub const CMD_UPD_R: u8 = 2;
/// Command code of `VNAT_UPD` for a UDP connection (figure 3-4's layout).
pub const CMD_UPD_UDP: u8 = 3;
/// Command code of `VNAT_SUS` (figure 3-4's layout).
pub const CMD_SUS: u8 = 4;
/// Command code of `VNAT_SUS` for a UDP connection.
pub const CMD_SUS_UDP: u8 = 5;
/// Command code of `VNAT_SUS_R` (figure 3-5's layout).
pub const CMD_SUS_R: u8 = 6;
/// `VNAT_SUS_R`: no helper keeps the connection.
pub const HELPER_NONE: u8 = 0;
/// `VNAT_SUS_R`: the replier turned its TCP keepalive off for the connection.
pub const HELPER_KEEPALIVE: u8 = 1;
/// `VNAT_SUS_R`: the replier also stopped the processes that hold it.
pub const HELPER_STOP: u8 = 2;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// Length of every VCMP message, in bytes.
pub const MSG_LEN: usize = 20;
/// The well-known TCP port of `vnatd` (paper section 4.3).
pub const DEFAULT_PORT: u16 = 2031;

/// An endpoint: an IPv4 or IPv6 address and a port in host byte order.
///
/// An IPv4 connection of a dual-stack socket (an `AF_INET6` socket with
/// `::ffff:a.b.c.d` addresses) has IPv4 endpoints: it is IPv4 on the wire.
/// A connection keeps its family: both its endpoints, virtual and
/// physical, are of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address.
    pub addr: IpAddr,
    /// Port, host byte order.
    pub port: u16,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

/// The 16 bytes of IPv4 address `a` mapped (`::ffff:a.b.c.d`, RFC 4291
/// 2.5.5.2), as `Ipv4Addr::to_ipv6_mapped` gives them, written as one
/// array (which the compiler stores as words; the library's way goes
/// through a `u128` and stores byte by byte, on every translated packet).
pub const fn mapped(a: Ipv4Addr) -> [u8; 16] {
    let [a, b, c, d] = a.octets();
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}

impl Endpoint {
    /// The first endpoint in the order of endpoints (`0.0.0.0:0`: IPv4
    /// comes before IPv6).
    pub const MIN: Self = Self::new(0, 0);

    /// An IPv4 endpoint from an address and a port in host byte order
    /// (`10.0.0.1` is `0x0a00_0001`).
    pub const fn new(addr: u32, port: u16) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::from_bits(addr)),
            port,
        }
    }

    /// An endpoint of `addr`, which is IPv4 if it is IPv4-mapped.
    pub const fn from_ip(addr: IpAddr, port: u16) -> Self {
        let addr = match addr {
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => addr,
            },
            IpAddr::V4(_) => addr,
        };
        Self { addr, port }
    }

    /// An IPv6 endpoint from the address's 16 bytes, as on the wire
    /// (IPv4-mapped ones make an IPv4 endpoint).
    pub const fn from_v6(addr: [u8; 16], port: u16) -> Self {
        Self::from_ip(
            IpAddr::V6(Ipv6Addr::from_bits(u128::from_be_bytes(addr))),
            port,
        )
    }

    /// The IPv4 address in host byte order, if the endpoint is IPv4.
    pub const fn v4(&self) -> Option<u32> {
        match self.addr {
            IpAddr::V4(a) => Some(a.to_bits()),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether the endpoint is IPv6 (and not IPv4-mapped).
    pub const fn is_v6(&self) -> bool {
        matches!(self.addr, IpAddr::V6(_))
    }

    /// Whether `other` is of the same family.
    pub const fn same_family(&self, other: &Endpoint) -> bool {
        self.is_v6() == other.is_v6()
    }

    /// The address's 16 bytes as on the wire: IPv6, or IPv4 as
    /// `::ffff:a.b.c.d` (RFC 4291 2.5.5.2).
    pub const fn octets16(&self) -> [u8; 16] {
        match self.addr {
            IpAddr::V4(a) => mapped(a),
            IpAddr::V6(a) => a.octets(),
        }
    }

    /// The same endpoint with another port.
    pub const fn with_port(&self, port: u16) -> Self {
        Self {
            addr: self.addr,
            port,
        }
    }

    /// Whether address and port are both non-zero, as every endpoint of an
    /// established connection is.
    pub const fn is_specified(&self) -> bool {
        let unspecified = match self.addr {
            IpAddr::V4(a) => a.to_bits() == 0,
            IpAddr::V6(a) => a.to_bits() == 0,
        };
        !unspecified && self.port != 0
    }

    /// Whether the address can never be another host's physical address
    /// (a "martian"). IPv4: "this network" 0.0.0.0/8, loopback
    /// 127.0.0.0/8, multicast 224.0.0.0/4, and 240.0.0.0/4 with the limited
    /// broadcast 255.255.255.255. IPv6: the unspecified address, loopback,
    /// multicast ff00::/8, and the IPv4-compatible ::/96 (deprecated). A
    /// VCMP message naming one is refused; whether an address is one of the
    /// receiving host's own, or a broadcast address of its subnets, only
    /// that host can tell.
    pub const fn is_martian(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => {
                let first = a.octets()[0];
                first == 0 || first == 127 || first >= 224
            }
            IpAddr::V6(a) => {
                let o = a.octets();
                o[0] == 0xff || a.to_bits() >> 32 == 0
            }
        }
    }

    /// Whether the address is an IPv6 link-local one (fe80::/10), which
    /// means nothing without its interface: not an address to move to.
    pub const fn is_link_local(&self) -> bool {
        match self.addr {
            IpAddr::V4(_) => false,
            IpAddr::V6(a) => a.octets()[0] == 0xfe && a.octets()[1] & 0xc0 == 0x80,
        }
    }
}

impl core::fmt::Display for Endpoint {
    /// `a.b.c.d:port` or `[v6]:port`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{}:{}", a, self.port),
            IpAddr::V6(a) => write!(f, "[{}]:{}", a, self.port),
        }
    }
}

/// `VNAT_UPD`: the sender's endpoint of a virtual connection moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// The connection's transport: [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// The receiver's virtual endpoint (`R_Vir_Addr:R_Vir_Port`).
    pub remote_virtual: Endpoint,
    /// The sender's virtual endpoint (`L_Vir_Addr:L_Vir_Port`).
    pub local_virtual: Endpoint,
    /// The sender's new physical endpoint (`L_Phy_Addr:L_Phy_Port`).
    pub local_physical: Endpoint,
}

/// `VNAT_UPD_R`: the answer to a `VNAT_UPD`, carrying the answering side's
/// current physical endpoint of the same virtual connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateReply {
    /// The replier's physical endpoint (`L_Phy_Addr:L_Phy_Port`), or all
    /// zero to refuse.
    pub local_physical: Endpoint,
}

impl UpdateReply {
    /// The reply that refuses an update.
    pub const REFUSED: Self = Self {
        local_physical: Endpoint::new(0, 0),
    };

    /// Whether the reply refuses the update.
    pub const fn is_refused(&self) -> bool {
        self.local_physical.addr.is_unspecified() && self.local_physical.port == 0
    }
}

/// `VNAT_SUS_R`: the answer to a `VNAT_SUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspendReply {
    /// The replier's physical endpoint, or all zero: no such connection.
    pub local_physical: Endpoint,
    /// The helper the replier activated (`HELPER_*`).
    pub helper: u8,
}

impl SuspendReply {
    /// The reply of a peer that has no such virtual connection.
    pub const REFUSED: Self = Self {
        local_physical: Endpoint::new(0, 0),
        helper: HELPER_NONE,
    };

    /// Whether the peer had no such connection.
    pub const fn is_refused(&self) -> bool {
        self.local_physical.addr.is_unspecified() && self.local_physical.port == 0
    }
}

/// A decoded VCMP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// `VNAT_UPD`.
    Update(Update),
    /// `VNAT_UPD_R`.
    UpdateReply(UpdateReply),
    /// `VNAT_SUS`: the sender's end of a connection is suspended, and will
    /// move or come back later. Fields as in `VNAT_UPD`; `local_physical`
    /// is where the sender is now.
    Suspend(Update),
    /// `VNAT_SUS_R`.
    SuspendReply(SuspendReply),
}

/// Why bytes are not a valid VCMP message, of either version (`vcmp2.rs`
/// decodes into the same errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not the length the version (and in version 2 the header and the
    /// command) gives: [`MSG_LEN`] bytes in version 1.
    Length(usize),
    /// A version the decoder does not speak.
    Version(u8),
    /// A command code other than those above.
    Command(u8),
    /// A `VNAT_SUS_R` naming a helper this implementation does not know.
    Helper(u16),
    /// An address or port that must be non-zero is zero (in a `VNAT_UPD_R`,
    /// only one of address and port).
    Unspecified,
    /// Version 2: a byte that must be zero is not, or a field is out of its
    /// range (version, protocol, status).
    Field,
}

impl DecodeError {
    /// A short, stable name for logs and counters.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Length(_) => "bad length",
            Self::Version(_) => "unknown version",
            Self::Command(_) => "unknown command",
            Self::Unspecified => "zero address or port",
            Self::Helper(_) => "unknown helper",
            Self::Field => "bad field",
        }
    }
}

fn be16(b: &[u8; MSG_LEN], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8; MSG_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An endpoint's IPv4 address as version 1 carries it; an IPv6 one, which
/// version 1 cannot carry, as 0.0.0.0, which the receiver refuses (the
/// module sends IPv6 connections' messages only in version 2).
const fn v4_bytes(e: &Endpoint) -> [u8; 4] {
    match e.v4() {
        Some(a) => a.to_be_bytes(),
        None => [0; 4],
    }
}

impl Message {
    /// Encodes the message into its 20-byte wire form.
    pub fn encode(&self) -> [u8; MSG_LEN] {
        let mut b = [0u8; MSG_LEN];
        b[0] = VERSION;
        match self {
            Self::Update(u) | Self::Suspend(u) => {
                b[1] = match (self, u.proto == PROTO_UDP) {
                    (Self::Update(_), false) => CMD_UPD,
                    (Self::Update(_), true) => CMD_UPD_UDP,
                    (_, false) => CMD_SUS,
                    (_, true) => CMD_SUS_UDP,
                };
                b[2..4].copy_from_slice(&u.remote_virtual.port.to_be_bytes());
                b[4..8].copy_from_slice(&v4_bytes(&u.remote_virtual));
                b[8..12].copy_from_slice(&v4_bytes(&u.local_virtual));
                b[12..16].copy_from_slice(&v4_bytes(&u.local_physical));
                b[16..18].copy_from_slice(&u.local_virtual.port.to_be_bytes());
                b[18..20].copy_from_slice(&u.local_physical.port.to_be_bytes());
            }
            Self::UpdateReply(r) => {
                b[1] = CMD_UPD_R;
                b[12..16].copy_from_slice(&v4_bytes(&r.local_physical));
                b[18..20].copy_from_slice(&r.local_physical.port.to_be_bytes());
            }
            Self::SuspendReply(r) => {
                b[1] = CMD_SUS_R;
                b[2..4].copy_from_slice(&u16::from(r.helper).to_be_bytes());
                b[12..16].copy_from_slice(&v4_bytes(&r.local_physical));
                b[18..20].copy_from_slice(&r.local_physical.port.to_be_bytes());
            }
        }
        b
    }

    /// Decodes exactly one message; `bytes` must be [`MSG_LEN`] long.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; MSG_LEN] = bytes
            .try_into()
            .map_err(|_| DecodeError::Length(bytes.len()))?;
        if b[0] != VERSION {
            return Err(DecodeError::Version(b[0]));
        }
        let phys = Endpoint::new(be32(b, 12), be16(b, 18));
        let msg = match b[1] {
            cmd @ (CMD_UPD | CMD_UPD_UDP | CMD_SUS | CMD_SUS_UDP) => {
                let u = Update {
                    proto: if cmd == CMD_UPD || cmd == CMD_SUS {
                        PROTO_TCP
                    } else {
                        PROTO_UDP
                    },
                    remote_virtual: Endpoint::new(be32(b, 4), be16(b, 2)),
                    local_virtual: Endpoint::new(be32(b, 8), be16(b, 16)),
                    local_physical: phys,
                };
                if !(u.remote_virtual.is_specified() && u.local_virtual.is_specified()) {
                    return Err(DecodeError::Unspecified);
                }
                if cmd == CMD_UPD || cmd == CMD_UPD_UDP {
                    Self::Update(u)
                } else {
                    Self::Suspend(u)
                }
            }
            CMD_SUS_R => {
                let helper = be16(b, 2);
                let r = SuspendReply {
                    local_physical: phys,
                    helper: match u8::try_from(helper) {
                        Ok(h @ (HELPER_NONE | HELPER_KEEPALIVE | HELPER_STOP)) => h,
                        _ => return Err(DecodeError::Helper(helper)),
                    },
                };
                if !(phys.is_specified() || (r.is_refused() && r.helper == HELPER_NONE)) {
                    return Err(DecodeError::Unspecified);
                }
                return Ok(Self::SuspendReply(r));
            }
            CMD_UPD_R => {
                let r = UpdateReply {
                    local_physical: phys,
                };
                if !(phys.is_specified() || r.is_refused()) {
                    return Err(DecodeError::Unspecified);
                }
                return Ok(Self::UpdateReply(r));
            }
            c => return Err(DecodeError::Command(c)),
        };
        if !phys.is_specified() {
            return Err(DecodeError::Unspecified);
        }
        Ok(msg)
    }
}

/// Splits a TCP byte stream into VCMP messages.
///
/// VCMP runs over TCP, so a message may arrive in pieces; the reader keeps the
/// partial message between calls, without allocating.
#[derive(Default)]
pub struct StreamReader {
    buf: [u8; MSG_LEN],
    len: usize,
}

impl StreamReader {
    /// Creates an empty reader.
    pub const fn new() -> Self {
        Self {
            buf: [0; MSG_LEN],
            len: 0,
        }
    }

    /// Bytes of an incomplete message held back so far.
    pub const fn pending(&self) -> usize {
        self.len
    }

    /// Feeds `input`; calls `f` once per complete message, in order, with the
    /// decoding result. Returns how many complete messages were seen.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut f: impl FnMut(Result<Message, DecodeError>),
    ) -> usize {
        let mut n = 0;
        while !input.is_empty() {
            let take = core::cmp::min(MSG_LEN - self.len, input.len());
            self.buf[self.len..self.len + take].copy_from_slice(&input[..take]);
            self.len += take;
            input = &input[take..];
            if self.len == MSG_LEN {
                f(Message::decode(&self.buf));
                self.len = 0;
                n += 1;
            }
        }
        n
    }
}
