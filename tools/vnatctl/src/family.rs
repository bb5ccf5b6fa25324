// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `vnat` as messages: attributes, and the
//! records a dump, an event or `stats-get` carries. The numbers and names
//! are generated from the spec `vnat/vnat.yaml` (`generated.rs`).
//!
//! An IPv4 address is its u32 attribute (`local-addr`, ...), an IPv6 one
//! its `*-addr6` form (16 bytes): a connection has one or the other.

use crate::generated;
pub use crate::generated::{cmd, conn as attr, FAMILY_NAME, FAMILY_VERSION, MCGRP_EVENTS};
use netlink_packet_core::{
    emit_u16_be, emit_u32, emit_u32_be, emit_u64, parse_string, parse_u16_be, parse_u32,
    parse_u32_be, parse_u64, parse_u8, DecodeError, DefaultNla, Emitable, Nla, NlaBuffer,
    NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

/// Names of an enum of the spec, by value.
pub const STATES: &[&str] = generated::state::NAMES;
const ORIGINS: &[&str] = generated::origin::NAMES;
const VCMP_STATES: &[&str] = generated::vcmp_state::NAMES;
pub const POLICIES: &[&str] = generated::policy::NAMES;
pub const HELPERS: &[&str] = generated::helper::NAMES;
const AUTHS: &[&str] = generated::auth::NAMES;
pub const EVENTS: &[&str] = generated::event::NAMES;

/// The name of value `v` of an enum, or the number if this vnatctl is older
/// than the module.
pub fn enum_name(names: &[&str], v: u8) -> String {
    names
        .get(usize::from(v))
        .map_or_else(|| format!("unknown-{v}"), |s| (*s).to_string())
}

/// One attribute of the `conn` set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr {
    Proto(u8),
    LocalAddr(Ipv4Addr),
    LocalPort(u16),
    RemoteAddr(Ipv4Addr),
    RemotePort(u16),
    LocalPhysAddr(Ipv4Addr),
    LocalPhysPort(u16),
    RemotePhysAddr(Ipv4Addr),
    RemotePhysPort(u16),
    State(u8),
    Origin(u8),
    Pid(u32),
    NewAddr(Ipv4Addr),
    Count(u32),
    Event(u8),
    Reason(String),
    Policy(u8),
    UpdateAgeMs(u32),
    PacketsOut(u64),
    PacketsIn(u64),
    BytesOut(u64),
    BytesIn(u64),
    VcmpState(u8),
    VcmpAttempts(u8),
    Helper(u8),
    PeerSuspended(u8),
    Auth(u8),
    VcmpNextMs(u32),
    /// The IPv6 forms of `LocalAddr`, `RemoteAddr`, `LocalPhysAddr`,
    /// `RemotePhysAddr` and `NewAddr`.
    LocalAddr6(Ipv6Addr),
    RemoteAddr6(Ipv6Addr),
    LocalPhysAddr6(Ipv6Addr),
    RemotePhysAddr6(Ipv6Addr),
    NewAddr6(Ipv6Addr),
    /// A connection's saved state (`conn-export`, `conn-import`).
    Saved(Record),
    /// An attribute of the set `stats` (a `stats-get` reply): its number
    /// and value, whatever its width.
    Stat(u16, u64),
    /// An attribute this vnatctl does not know (a newer module).
    Other(DefaultNla),
}

/// The wire form of an attribute's value.
enum Value<'a> {
    U8(u8),
    U16Be(u16),
    U32(u32),
    U64(u64),
    Addr(Ipv4Addr),
    Addr6(Ipv6Addr),
    Str(&'a str),
    Bytes(&'a [u8]),
}

impl Attr {
    /// Address `a` as the attribute of its family: `v4` (the u32 form) for
    /// IPv4, also for an IPv4-mapped IPv6 address, else `v6`.
    pub fn addr(a: IpAddr, v4: fn(Ipv4Addr) -> Attr, v6: fn(Ipv6Addr) -> Attr) -> Attr {
        match a.to_canonical() {
            IpAddr::V4(a) => v4(a),
            IpAddr::V6(a) => v6(a),
        }
    }

    /// The address of `local-addr`, `new-addr` and the like, in either
    /// form.
    pub fn ip(&self) -> Option<IpAddr> {
        use Attr::*;
        match self {
            LocalAddr(a) | RemoteAddr(a) | LocalPhysAddr(a) | RemotePhysAddr(a) | NewAddr(a) => {
                Some((*a).into())
            }
            LocalAddr6(a) | RemoteAddr6(a) | LocalPhysAddr6(a) | RemotePhysAddr6(a)
            | NewAddr6(a) => Some((*a).into()),
            _ => None,
        }
    }

    fn value(&self) -> Option<Value<'_>> {
        use Attr::*;
        Some(match self {
            Proto(v) | State(v) | Origin(v) | Event(v) | Policy(v) | VcmpState(v)
            | VcmpAttempts(v) | Helper(v) | PeerSuspended(v) | Auth(v) => Value::U8(*v),
            LocalPort(v) | RemotePort(v) | LocalPhysPort(v) | RemotePhysPort(v) => Value::U16Be(*v),
            Pid(v) | Count(v) | UpdateAgeMs(v) | VcmpNextMs(v) => Value::U32(*v),
            PacketsOut(v) | PacketsIn(v) | BytesOut(v) | BytesIn(v) | Stat(_, v) => Value::U64(*v),
            LocalAddr(a) | RemoteAddr(a) | LocalPhysAddr(a) | RemotePhysAddr(a) | NewAddr(a) => {
                Value::Addr(*a)
            }
            LocalAddr6(a) | RemoteAddr6(a) | LocalPhysAddr6(a) | RemotePhysAddr6(a)
            | NewAddr6(a) => Value::Addr6(*a),
            Reason(s) => Value::Str(s),
            Saved(r) => Value::Bytes(r.bytes()),
            Other(_) => return None,
        })
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self.value() {
            Some(Value::U8(_)) => 1,
            Some(Value::U16Be(_)) => 2,
            Some(Value::U32(_) | Value::Addr(_)) => 4,
            Some(Value::U64(_)) => 8,
            Some(Value::Addr6(_)) => 16,
            Some(Value::Str(s)) => s.len() + 1,
            Some(Value::Bytes(b)) => b.len(),
            None => match self {
                Attr::Other(n) => n.value_len(),
                _ => 0,
            },
        }
    }

    fn kind(&self) -> u16 {
        use Attr::*;
        match self {
            Proto(_) => attr::PROTO,
            LocalAddr(_) => attr::LOCAL_ADDR,
            LocalPort(_) => attr::LOCAL_PORT,
            RemoteAddr(_) => attr::REMOTE_ADDR,
            RemotePort(_) => attr::REMOTE_PORT,
            LocalPhysAddr(_) => attr::LOCAL_PHYS_ADDR,
            LocalPhysPort(_) => attr::LOCAL_PHYS_PORT,
            RemotePhysAddr(_) => attr::REMOTE_PHYS_ADDR,
            RemotePhysPort(_) => attr::REMOTE_PHYS_PORT,
            State(_) => attr::STATE,
            Origin(_) => attr::ORIGIN,
            Pid(_) => attr::PID,
            NewAddr(_) => attr::NEW_ADDR,
            Count(_) => attr::COUNT,
            Event(_) => attr::EVENT,
            Reason(_) => attr::REASON,
            Policy(_) => attr::POLICY,
            UpdateAgeMs(_) => attr::UPDATE_AGE_MS,
            PacketsOut(_) => attr::PACKETS_OUT,
            PacketsIn(_) => attr::PACKETS_IN,
            BytesOut(_) => attr::BYTES_OUT,
            BytesIn(_) => attr::BYTES_IN,
            VcmpState(_) => attr::VCMP_STATE,
            VcmpAttempts(_) => attr::VCMP_ATTEMPTS,
            Helper(_) => attr::HELPER,
            PeerSuspended(_) => attr::PEER_SUSPENDED,
            Auth(_) => attr::AUTH,
            VcmpNextMs(_) => attr::VCMP_NEXT_MS,
            LocalAddr6(_) => attr::LOCAL_ADDR6,
            RemoteAddr6(_) => attr::REMOTE_ADDR6,
            LocalPhysAddr6(_) => attr::LOCAL_PHYS_ADDR6,
            RemotePhysAddr6(_) => attr::REMOTE_PHYS_ADDR6,
            NewAddr6(_) => attr::NEW_ADDR6,
            Saved(_) => attr::SAVED,
            Stat(k, _) => *k,
            Other(n) => n.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self.value() {
            Some(Value::U8(v)) => buf[0] = v,
            Some(Value::U16Be(v)) => emit_u16_be(buf, v).expect("2 bytes"),
            Some(Value::U32(v)) => emit_u32(buf, v).expect("4 bytes"),
            Some(Value::U64(v)) => emit_u64(buf, v).expect("8 bytes"),
            Some(Value::Addr(a)) => emit_u32_be(buf, a.into()).expect("4 bytes"),
            Some(Value::Addr6(a)) => buf[..16].copy_from_slice(&a.octets()),
            Some(Value::Str(s)) => {
                buf[..s.len()].copy_from_slice(s.as_bytes());
                buf[s.len()] = 0;
            }
            Some(Value::Bytes(b)) => buf[..b.len()].copy_from_slice(b),
            None => {
                if let Attr::Other(n) = self {
                    n.emit_value(buf);
                }
            }
        }
    }
}

impl<T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&T>> for Attr {
    fn parse(buf: &NlaBuffer<&T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        let addr = |v: &[u8]| parse_u32_be(v).map(Ipv4Addr::from);
        let addr6 = |v: &[u8]| {
            <[u8; 16]>::try_from(v)
                .map(Ipv6Addr::from)
                .map_err(|_| DecodeError::from(format!("an IPv6 address of {} bytes", v.len())))
        };
        Ok(match buf.kind() {
            attr::PROTO => Attr::Proto(parse_u8(v)?),
            attr::LOCAL_ADDR => Attr::LocalAddr(addr(v)?),
            attr::LOCAL_PORT => Attr::LocalPort(parse_u16_be(v)?),
            attr::REMOTE_ADDR => Attr::RemoteAddr(addr(v)?),
            attr::REMOTE_PORT => Attr::RemotePort(parse_u16_be(v)?),
            attr::LOCAL_PHYS_ADDR => Attr::LocalPhysAddr(addr(v)?),
            attr::LOCAL_PHYS_PORT => Attr::LocalPhysPort(parse_u16_be(v)?),
            attr::REMOTE_PHYS_ADDR => Attr::RemotePhysAddr(addr(v)?),
            attr::REMOTE_PHYS_PORT => Attr::RemotePhysPort(parse_u16_be(v)?),
            attr::STATE => Attr::State(parse_u8(v)?),
            attr::ORIGIN => Attr::Origin(parse_u8(v)?),
            attr::PID => Attr::Pid(parse_u32(v)?),
            attr::NEW_ADDR => Attr::NewAddr(addr(v)?),
            attr::COUNT => Attr::Count(parse_u32(v)?),
            attr::EVENT => Attr::Event(parse_u8(v)?),
            attr::REASON => Attr::Reason(parse_string(v)?),
            attr::POLICY => Attr::Policy(parse_u8(v)?),
            attr::UPDATE_AGE_MS => Attr::UpdateAgeMs(parse_u32(v)?),
            attr::PACKETS_OUT => Attr::PacketsOut(parse_u64(v)?),
            attr::PACKETS_IN => Attr::PacketsIn(parse_u64(v)?),
            attr::BYTES_OUT => Attr::BytesOut(parse_u64(v)?),
            attr::BYTES_IN => Attr::BytesIn(parse_u64(v)?),
            attr::VCMP_STATE => Attr::VcmpState(parse_u8(v)?),
            attr::VCMP_ATTEMPTS => Attr::VcmpAttempts(parse_u8(v)?),
            attr::HELPER => Attr::Helper(parse_u8(v)?),
            attr::PEER_SUSPENDED => Attr::PeerSuspended(parse_u8(v)?),
            attr::AUTH => Attr::Auth(parse_u8(v)?),
            attr::VCMP_NEXT_MS => Attr::VcmpNextMs(parse_u32(v)?),
            attr::LOCAL_ADDR6 => Attr::LocalAddr6(addr6(v)?),
            attr::REMOTE_ADDR6 => Attr::RemoteAddr6(addr6(v)?),
            attr::LOCAL_PHYS_ADDR6 => Attr::LocalPhysAddr6(addr6(v)?),
            attr::REMOTE_PHYS_ADDR6 => Attr::RemotePhysAddr6(addr6(v)?),
            attr::NEW_ADDR6 => Attr::NewAddr6(addr6(v)?),
            attr::SAVED => Attr::Saved(Record::new(v.to_vec())),
            _ => Attr::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// A connection's saved state as the kernel gave it (`saved`, the format
/// of `vnat/export.rs`). It carries the connection's keys: it is never
/// printed, and wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Record(Vec<u8>);

impl Record {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Record({} bytes)", self.0.len())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned `&mut u8`.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// A message of the family: a command and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub cmd: u8,
    pub attrs: Vec<Attr>,
}

impl GenlFamily for Message {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for Message {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buf: &mut [u8]) {
        self.attrs.as_slice().emit(buf)
    }
}

/// An attribute of the set `stats`: an unsigned number of 1, 2, 4 or 8
/// bytes (only the counters need 8).
fn parse_stat<T: AsRef<[u8]> + ?Sized>(buf: &NlaBuffer<&T>) -> Result<Attr, DecodeError> {
    let v = buf.value();
    let n = match v.len() {
        1 => u64::from(v[0]),
        2 => u64::from(u16::from_ne_bytes([v[0], v[1]])),
        4 => u64::from(parse_u32(v)?),
        8 => parse_u64(v)?,
        l => return Err(format!("stats attribute {} of {l} bytes", buf.kind()).into()),
    };
    Ok(Attr::Stat(buf.kind(), n))
}

impl ParseableParametrized<[u8], GenlHeader> for Message {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let stats = header.cmd == cmd::STATS_GET;
        let pad = if stats {
            generated::stats::PAD
        } else {
            attr::PAD
        };
        let attrs = NlasIterator::new(buf)
            // Padding that aligns the u64 attributes says nothing.
            .filter(|nla| nla.as_ref().map_or(true, |n| n.kind() != pad))
            .map(|nla| {
                nla.and_then(|nla| {
                    if stats {
                        parse_stat(&nla)
                    } else {
                        Attr::parse(&nla)
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// A virtual connection as a dump or an event describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// IP protocol number.
    pub proto: u8,
    /// Virtual endpoints: what the sockets see, for the connection's life.
    /// All four endpoints are of one family; an IPv6 one shows as
    /// `[addr]:port`.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Physical endpoints: what the wire carries now.
    pub local_phys: SocketAddr,
    pub remote_phys: SocketAddr,
    /// `STATES` index.
    pub state: u8,
    /// `ORIGINS` index.
    pub origin: u8,
    /// Owner's thread group id; 0 if unknown.
    pub pid: u32,
    /// `POLICIES` index; "default" if the kernel did not say.
    pub policy: u8,
    /// Milliseconds since the mapping was last updated; `None`: never.
    pub update_age_ms: Option<u32>,
    /// Translated packets and bytes, each way.
    pub packets_out: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// `VCMP_STATES` index: the peer's side of the last move.
    pub vcmp_state: u8,
    /// Attempts to reach the peer's vnatd in the last move.
    pub vcmp_attempts: u8,
    /// A retrying move: milliseconds until its next attempt may begin.
    pub vcmp_next_ms: Option<u32>,
    /// `HELPERS` index: on a suspended end, the helper the peer runs; on
    /// an end whose peer is suspended, the one at work here.
    pub helper: u8,
    /// The peer suspended its end and has not resumed.
    pub peer_suspended: bool,
    /// `AUTHS` index: where its security key is.
    pub auth: u8,
}

impl Conn {
    /// "tcp" or "udp".
    pub fn proto_name(&self) -> String {
        match self.proto {
            6 => "tcp".into(),
            17 => "udp".into(),
            p => format!("proto-{p}"),
        }
    }

    pub fn state_name(&self) -> String {
        enum_name(STATES, self.state)
    }

    pub fn origin_name(&self) -> String {
        enum_name(ORIGINS, self.origin)
    }

    pub fn policy_name(&self) -> String {
        enum_name(POLICIES, self.policy)
    }

    pub fn vcmp_state_name(&self) -> String {
        enum_name(VCMP_STATES, self.vcmp_state)
    }

    pub fn helper_name(&self) -> String {
        enum_name(HELPERS, self.helper)
    }

    pub fn auth_name(&self) -> String {
        enum_name(AUTHS, self.auth)
    }

    /// The record in `attrs`; `Err` names the first attribute missing.
    pub fn from_attrs(attrs: &[Attr]) -> Result<Self, String> {
        let none = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
        let mut c = Self {
            proto: 0,
            local: none,
            remote: none,
            local_phys: none,
            remote_phys: none,
            state: 0,
            origin: 0,
            pid: 0,
            policy: 2,
            update_age_ms: None,
            packets_out: 0,
            packets_in: 0,
            bytes_out: 0,
            bytes_in: 0,
            vcmp_state: 0,
            vcmp_attempts: 0,
            vcmp_next_ms: None,
            helper: 0,
            peer_suspended: false,
            auth: 0,
        };
        let mut seen = 0u64;
        for a in attrs {
            seen |= 1 << a.kind().min(63);
            match a {
                Attr::Proto(v) => c.proto = *v,
                Attr::LocalAddr(v) => c.local.set_ip((*v).into()),
                Attr::LocalAddr6(v) => c.local.set_ip((*v).into()),
                Attr::LocalPort(v) => c.local.set_port(*v),
                Attr::RemoteAddr(v) => c.remote.set_ip((*v).into()),
                Attr::RemoteAddr6(v) => c.remote.set_ip((*v).into()),
                Attr::RemotePort(v) => c.remote.set_port(*v),
                Attr::LocalPhysAddr(v) => c.local_phys.set_ip((*v).into()),
                Attr::LocalPhysAddr6(v) => c.local_phys.set_ip((*v).into()),
                Attr::LocalPhysPort(v) => c.local_phys.set_port(*v),
                Attr::RemotePhysAddr(v) => c.remote_phys.set_ip((*v).into()),
                Attr::RemotePhysAddr6(v) => c.remote_phys.set_ip((*v).into()),
                Attr::RemotePhysPort(v) => c.remote_phys.set_port(*v),
                Attr::State(v) => c.state = *v,
                Attr::Origin(v) => c.origin = *v,
                Attr::Pid(v) => c.pid = *v,
                Attr::Policy(v) => c.policy = *v,
                Attr::UpdateAgeMs(v) => c.update_age_ms = Some(*v),
                Attr::PacketsOut(v) => c.packets_out = *v,
                Attr::PacketsIn(v) => c.packets_in = *v,
                Attr::BytesOut(v) => c.bytes_out = *v,
                Attr::BytesIn(v) => c.bytes_in = *v,
                Attr::VcmpState(v) => c.vcmp_state = *v,
                Attr::VcmpAttempts(v) => c.vcmp_attempts = *v,
                Attr::VcmpNextMs(v) => c.vcmp_next_ms = Some(*v),
                Attr::Helper(v) => c.helper = *v,
                Attr::PeerSuspended(v) => c.peer_suspended = *v != 0,
                Attr::Auth(v) => c.auth = *v,
                _ => {}
            }
        }
        // An address in either form; a missing one is named by its IPv4
        // form, as the kernel names it.
        for (k, k6, name) in [
            (attr::PROTO, attr::PROTO, "proto"),
            (attr::LOCAL_ADDR, attr::LOCAL_ADDR6, "local-addr"),
            (attr::LOCAL_PORT, attr::LOCAL_PORT, "local-port"),
            (attr::REMOTE_ADDR, attr::REMOTE_ADDR6, "remote-addr"),
            (attr::REMOTE_PORT, attr::REMOTE_PORT, "remote-port"),
        ] {
            if seen & (1 << k | 1 << k6) == 0 {
                return Err(format!("the kernel sent a connection without {name}"));
            }
        }
        Ok(c)
    }

    /// The attributes the kernel would send for this record.
    #[cfg(test)]
    pub fn to_attrs(&self) -> Vec<Attr> {
        vec![
            Attr::Proto(self.proto),
            Attr::addr(self.local.ip(), Attr::LocalAddr, Attr::LocalAddr6),
            Attr::LocalPort(self.local.port()),
            Attr::addr(self.remote.ip(), Attr::RemoteAddr, Attr::RemoteAddr6),
            Attr::RemotePort(self.remote.port()),
            Attr::addr(
                self.local_phys.ip(),
                Attr::LocalPhysAddr,
                Attr::LocalPhysAddr6,
            ),
            Attr::LocalPhysPort(self.local_phys.port()),
            Attr::addr(
                self.remote_phys.ip(),
                Attr::RemotePhysAddr,
                Attr::RemotePhysAddr6,
            ),
            Attr::RemotePhysPort(self.remote_phys.port()),
            Attr::State(self.state),
            Attr::Origin(self.origin),
            Attr::Pid(self.pid),
            Attr::Policy(self.policy),
            Attr::PacketsOut(self.packets_out),
            Attr::PacketsIn(self.packets_in),
            Attr::BytesOut(self.bytes_out),
            Attr::BytesIn(self.bytes_in),
            Attr::VcmpState(self.vcmp_state),
            Attr::VcmpAttempts(self.vcmp_attempts),
            Attr::Helper(self.helper),
            Attr::PeerSuspended(self.peer_suspended.into()),
            Attr::Auth(self.auth),
        ]
        .into_iter()
        .chain(self.update_age_ms.map(Attr::UpdateAgeMs))
        .chain(self.vcmp_next_ms.map(Attr::VcmpNextMs))
        .collect()
    }
}

/// A connection as a `conn-export` dump gives it: its virtual endpoints
/// and owner (in `conn`, the rest of it unset), and its saved state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub conn: Conn,
    pub saved: Record,
}

impl Exported {
    pub fn from_attrs(attrs: &[Attr]) -> Result<Self, String> {
        let saved = attrs
            .iter()
            .find_map(|a| match a {
                Attr::Saved(r) => Some(r.clone()),
                _ => None,
            })
            .ok_or("the kernel exported a connection without its saved state")?;
        Ok(Self {
            conn: Conn::from_attrs(attrs)?,
            saved,
        })
    }
}

/// A message of the `events` group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `EVENTS` index.
    pub event: u8,
    pub conn: Conn,
    /// Why, for `failed` and `refused`.
    pub reason: Option<String>,
}

impl Event {
    pub fn name(&self) -> String {
        enum_name(EVENTS, self.event)
    }

    pub fn from_attrs(attrs: &[Attr]) -> Result<Self, String> {
        let event = attrs
            .iter()
            .find_map(|a| match a {
                Attr::Event(e) => Some(*e),
                _ => None,
            })
            .ok_or("the kernel sent an event without its kind")?;
        let reason = attrs.iter().find_map(|a| match a {
            Attr::Reason(r) => Some(r.clone()),
            _ => None,
        });
        Ok(Self {
            event,
            conn: Conn::from_attrs(attrs)?,
            reason,
        })
    }
}

/// The counters of a `stats-get` reply, by name (the spec's, with `_` for
/// `-`, as configfs spells them), in the spec's order; an attribute this
/// vnatctl does not know (a newer module) is named by its number.
pub fn stats_from_attrs(attrs: &[Attr]) -> Vec<(String, u64)> {
    let name = |k: u16| {
        generated::stats::NAMES
            .iter()
            .find(|(n, _)| *n == k)
            .map_or_else(|| format!("stats-{k}"), |(_, s)| s.replace('-', "_"))
    };
    attrs
        .iter()
        .filter_map(|a| match a {
            Attr::Stat(k, v) => Some((name(*k), *v)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
    use netlink_packet_generic::GenlMessage;

    pub(crate) fn sample() -> Conn {
        Conn {
            proto: 6,
            local: "10.0.1.2:40000".parse().unwrap(),
            remote: "10.0.0.2:5000".parse().unwrap(),
            local_phys: "10.0.2.2:40000".parse().unwrap(),
            remote_phys: "10.0.0.2:5000".parse().unwrap(),
            state: 2,
            origin: 0,
            pid: 4242,
            policy: 2,
            update_age_ms: Some(1500),
            packets_out: 10,
            packets_in: 12,
            bytes_out: 15_000,
            bytes_in: 624,
            vcmp_state: 0,
            vcmp_attempts: 1,
            vcmp_next_ms: None,
            helper: 0,
            peer_suspended: false,
            auth: 1,
        }
    }

    /// An IPv6 connection: `sample()` with IPv6 endpoints.
    pub(crate) fn sample6() -> Conn {
        Conn {
            local: "[2001:db8:1::2]:40000".parse().unwrap(),
            remote: "[2001:db8::2]:5000".parse().unwrap(),
            local_phys: "[2001:db8:2::2]:40000".parse().unwrap(),
            remote_phys: "[2001:db8::2]:5000".parse().unwrap(),
            ..sample()
        }
    }

    /// Serializes a message as the kernel would frame it, then parses it.
    fn round_trip(m: Message) -> Message {
        let mut g = GenlMessage::from_payload(m);
        g.set_resolved_family_id(0x20);
        let mut nl = NetlinkMessage::from(g);
        nl.header.flags = NLM_F_REQUEST;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        let back = NetlinkMessage::<GenlMessage<Message>>::deserialize(&buf).unwrap();
        match back.payload {
            NetlinkPayload::InnerMessage(g) => g.payload,
            p => panic!("not a family message: {p:?}"),
        }
    }

    #[test]
    fn connection_round_trips() {
        let c = sample();
        let m = round_trip(Message {
            cmd: cmd::CONN_GET,
            attrs: c.to_attrs(),
        });
        assert_eq!(m.cmd, cmd::CONN_GET);
        assert_eq!(Conn::from_attrs(&m.attrs).unwrap(), c);
    }

    #[test]
    fn event_round_trips_with_reason() {
        let mut attrs = sample().to_attrs();
        attrs.push(Attr::Event(6));
        attrs.push(Attr::Reason("no such virtual connection".into()));
        let m = round_trip(Message {
            cmd: cmd::CONN_EVENT,
            attrs,
        });
        let e = Event::from_attrs(&m.attrs).unwrap();
        assert_eq!(e.name(), "refused");
        assert_eq!(e.reason.as_deref(), Some("no such virtual connection"));
        assert_eq!(e.conn, sample());
    }

    #[test]
    fn addresses_and_ports_are_big_endian_on_the_wire() {
        let mut buf = vec![0u8; 8];
        Attr::LocalAddr(Ipv4Addr::new(10, 0, 1, 2)).emit(&mut buf);
        assert_eq!(&buf[4..8], &[10, 0, 1, 2]);
        Attr::LocalPort(0x1234).emit(&mut buf);
        assert_eq!(&buf[4..6], &[0x12, 0x34]);
    }

    #[test]
    fn ipv4_connections_have_only_the_u32_addresses() {
        let kinds: Vec<u16> = sample().to_attrs().iter().map(Nla::kind).collect();
        for k in [
            attr::LOCAL_ADDR,
            attr::REMOTE_ADDR,
            attr::LOCAL_PHYS_ADDR,
            attr::REMOTE_PHYS_ADDR,
        ] {
            assert!(kinds.contains(&k), "{k}");
        }
        assert!(kinds.iter().all(|k| *k < attr::LOCAL_ADDR6), "{kinds:?}");
    }

    #[test]
    fn ipv6_connection_round_trips_as_addr6() {
        let c = sample6();
        let attrs = c.to_attrs();
        let kinds: Vec<u16> = attrs.iter().map(Nla::kind).collect();
        for (k4, k6) in [
            (attr::LOCAL_ADDR, attr::LOCAL_ADDR6),
            (attr::REMOTE_ADDR, attr::REMOTE_ADDR6),
            (attr::LOCAL_PHYS_ADDR, attr::LOCAL_PHYS_ADDR6),
            (attr::REMOTE_PHYS_ADDR, attr::REMOTE_PHYS_ADDR6),
        ] {
            assert!(!kinds.contains(&k4) && kinds.contains(&k6), "{kinds:?}");
        }
        let m = round_trip(Message {
            cmd: cmd::CONN_GET,
            attrs,
        });
        assert_eq!(Conn::from_attrs(&m.attrs).unwrap(), c);
        assert_eq!(c.local.to_string(), "[2001:db8:1::2]:40000");
    }

    #[test]
    fn ipv6_addresses_are_16_bytes_on_the_wire() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut buf = vec![0u8; 20];
        Attr::NewAddr6(a).emit(&mut buf);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 20);
        assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), attr::NEW_ADDR6);
        assert_eq!(&buf[4..], &a.octets());
        assert_eq!(
            Attr::parse(&NlaBuffer::new(&buf[..])).unwrap(),
            Attr::NewAddr6(a)
        );
        // The kernel's policy takes 16 bytes only; so does vnatctl.
        let mut short = buf[..8].to_vec();
        short[..2].copy_from_slice(&8u16.to_ne_bytes());
        assert!(Attr::parse(&NlaBuffer::new(&short[..])).is_err());
    }

    #[test]
    fn addresses_take_the_attribute_of_their_family() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let a = |ip| Attr::addr(ip, Attr::NewAddr, Attr::NewAddr6);
        assert_eq!(a(v4), Attr::NewAddr(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a(mapped), Attr::NewAddr(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a(v6), Attr::NewAddr6("2001:db8::1".parse().unwrap()));
        assert_eq!(a(v6).ip(), Some(v6));
        assert_eq!(a(v4).ip(), Some(v4));
        assert_eq!(Attr::Pid(1).ip(), None);
    }

    #[test]
    fn a_record_with_its_tuple_in_ipv6_form_is_whole() {
        let attrs: Vec<Attr> = sample6()
            .to_attrs()
            .into_iter()
            .filter(|a| a.kind() != attr::REMOTE_ADDR6)
            .collect();
        assert_eq!(
            Conn::from_attrs(&attrs).unwrap_err(),
            "the kernel sent a connection without remote-addr"
        );
    }

    #[test]
    fn an_exported_connection_has_its_saved_state() {
        let record = Record::new((0..186).map(|i| i as u8).collect());
        let mut attrs = vec![
            Attr::Proto(6),
            Attr::LocalAddr(Ipv4Addr::new(10, 0, 1, 2)),
            Attr::LocalPort(40000),
            Attr::RemoteAddr(Ipv4Addr::new(10, 0, 0, 2)),
            Attr::RemotePort(5000),
            Attr::Pid(4242),
            Attr::Saved(record.clone()),
        ];
        let m = round_trip(Message {
            cmd: cmd::CONN_EXPORT,
            attrs: attrs.clone(),
        });
        assert_eq!(m.attrs, attrs);
        let e = Exported::from_attrs(&m.attrs).unwrap();
        assert_eq!(e.saved.bytes(), record.bytes());
        assert_eq!(e.conn.pid, 4242);
        assert_eq!(e.conn.local.to_string(), "10.0.1.2:40000");
        // Never the keys in a debug print.
        assert!(format!("{e:?}").contains("saved: Record(186 bytes)"));
        attrs.pop();
        assert_eq!(
            Exported::from_attrs(&attrs).unwrap_err(),
            "the kernel exported a connection without its saved state"
        );
    }

    #[test]
    fn unknown_attributes_are_kept_not_fatal() {
        let mut attrs = sample().to_attrs();
        attrs.push(Attr::Other(DefaultNla::new(99, vec![1, 2, 3, 4])));
        let m = round_trip(Message {
            cmd: cmd::CONN_GET,
            attrs: attrs.clone(),
        });
        assert_eq!(m.attrs, attrs);
        assert_eq!(enum_name(STATES, 7), "unknown-7");
    }

    #[test]
    fn a_record_without_its_tuple_is_an_error() {
        let attrs: Vec<Attr> = sample()
            .to_attrs()
            .into_iter()
            .filter(|a| a.kind() != attr::REMOTE_PORT)
            .collect();
        assert_eq!(
            Conn::from_attrs(&attrs).unwrap_err(),
            "the kernel sent a connection without remote-port"
        );
    }

    #[test]
    fn stats_round_trip_by_name() {
        use generated::stats;
        let m = round_trip(Message {
            cmd: cmd::STATS_GET,
            attrs: vec![
                Attr::Stat(stats::MIGRATIONS_COMPLETED, 206),
                Attr::Stat(stats::CONNECTIONS, 3),
                Attr::Stat(99, 1),
            ],
        });
        assert_eq!(
            stats_from_attrs(&m.attrs),
            [
                ("migrations_completed".to_string(), 206),
                ("connections".to_string(), 3),
                ("stats-99".to_string(), 1)
            ]
        );
    }

    #[test]
    fn stats_attributes_of_any_width_and_no_padding() {
        // What the kernel sends: a pad attribute before a u64 to align it,
        // then the u64, a u32 and a u8.
        let mut buf = Vec::new();
        let mut put = |kind: u16, v: &[u8]| {
            buf.extend_from_slice(&(4 + v.len() as u16).to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.extend_from_slice(v);
            buf.resize(buf.len().next_multiple_of(4), 0);
        };
        put(generated::stats::PAD, &[]);
        put(generated::stats::UPDATES_SENT, &7u64.to_ne_bytes());
        put(generated::stats::CONNECTIONS, &5u32.to_ne_bytes());
        put(generated::stats::VCMP_LISTENING, &[1]);
        let header = GenlHeader {
            cmd: cmd::STATS_GET,
            version: FAMILY_VERSION,
        };
        let m = Message::parse_with_param(&buf, header).unwrap();
        assert_eq!(
            stats_from_attrs(&m.attrs),
            [
                ("updates_sent".to_string(), 7),
                ("connections".to_string(), 5),
                ("vcmp_listening".to_string(), 1)
            ]
        );
    }
}
