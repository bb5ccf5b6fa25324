// SPDX-License-Identifier: GPL-2.0

//! Talking to the `vnat` generic netlink family of the current network
//! namespace: resolving it, dumps, requests with their extended-ack reason,
//! and the events group.

use crate::family::{self, cmd, Attr, Conn, Event, Exported, Message, Record};
use netlink_packet_core::{
    DoneMessage, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NlasIterator, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_generic::{
    ctrl::{
        nlas::{GenlCtrlAttrs, McastGrpAttrs},
        GenlCtrl, GenlCtrlCmd,
    },
    GenlFamily, GenlMessage,
};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use std::{
    fmt, io,
    net::IpAddr,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

/// Why a request did not work, in the terms the user acts on.
#[derive(Debug)]
pub enum Error {
    /// The family is not registered: the module is not loaded.
    NotLoaded,
    /// The kernel refused: errno and its extended-ack message, if any.
    Kernel { errno: i32, msg: Option<String> },
    /// The socket failed.
    Io(io::Error),
    /// The kernel sent something this vnatctl cannot read.
    Decode(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotLoaded => write!(
                f,
                "the vnat module is not loaded (no generic netlink family \"vnat\" in this \
                 network namespace): load it with 'insmod vnat.ko'"
            ),
            Error::Kernel { errno, msg } => {
                let e = io::Error::from_raw_os_error(*errno);
                let what = match msg {
                    Some(m) => format!("{m} ({e})"),
                    None => e.to_string(),
                };
                match *errno {
                    libc::EPERM => write!(
                        f,
                        "{what}: changing VNAT, or watching its events, needs \
                         CAP_NET_ADMIN in the network namespace's user namespace (run as root)"
                    ),
                    _ => write!(f, "the kernel refused: {what}"),
                }
            }
            Error::Io(e) => write!(f, "netlink socket: {e}"),
            Error::Decode(e) => write!(f, "unexpected message from the kernel: {e}"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// The reason of an error or ack message: the `NLMSGERR_ATTR_MSG` TLV that
/// follows the echoed request header (`NLM_F_CAPPED`: header only).
pub fn extack_message(flags: u16, echoed: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || echoed.len() < 16 {
        return None;
    }
    let orig_len = u32::from_ne_bytes(echoed[..4].try_into().ok()?) as usize;
    let skip = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        (orig_len + 3) & !3
    };
    tlv_message(echoed.get(skip..)?)
}

/// The `NLMSGERR_ATTR_MSG` of extended-ack TLVs.
fn tlv_message(tlvs: &[u8]) -> Option<String> {
    NlasIterator::new(tlvs).find_map(|nla| {
        let nla = nla.ok()?;
        // NLMSGERR_ATTR_MSG
        (nla.kind() == 1).then(|| {
            let v = nla.value();
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })
    })
}

/// The refusal that ends a dump, if it ended with one (`NLMSG_DONE` with
/// a negative errno, and the extended-ack TLVs right after it): a dumpit
/// that refuses its request (`conn-export`) answers so.
fn dump_error(flags: u16, d: &DoneMessage) -> Option<Error> {
    (d.code < 0).then(|| Error::Kernel {
        errno: -d.code,
        msg: (flags & NLM_F_ACK_TLVS != 0)
            .then(|| tlv_message(&d.extended_ack))
            .flatten(),
    })
}

/// A socket on the family.
pub struct Client {
    sock: Socket,
    family: u16,
    events_group: Option<u32>,
    seq: u32,
}

impl Client {
    /// Opens a socket and resolves the family; `Error::NotLoaded` when the
    /// module is not loaded.
    pub fn open() -> Result<Self, Error> {
        let mut sock = Socket::new(NETLINK_GENERIC)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Errors carry the kernel's reason, without the echoed request.
        sock.set_ext_ack(true)?;
        sock.set_cap_ack(true)?;
        let mut c = Client {
            sock,
            family: 0,
            events_group: None,
            seq: 0,
        };
        let mut req = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(family::FAMILY_NAME.into())],
        });
        req.finalize();
        let replies = match c.transact(req, NLM_F_REQUEST | NLM_F_ACK) {
            Err(Error::Kernel { errno, .. }) if errno == libc::ENOENT => {
                return Err(Error::NotLoaded)
            }
            r => r?,
        };
        for r in replies {
            for a in r.nlas {
                match a {
                    GenlCtrlAttrs::FamilyId(id) => c.family = id,
                    GenlCtrlAttrs::McastGroups(groups) => {
                        for g in groups {
                            let name = g.iter().any(|a| {
                                matches!(a, McastGrpAttrs::Name(n) if n == family::MCGRP_EVENTS)
                            });
                            let id = g.iter().find_map(|a| match a {
                                McastGrpAttrs::Id(id) => Some(*id),
                                _ => None,
                            });
                            if name {
                                c.events_group = id;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if c.family == 0 {
            return Err(Error::Decode(
                "the controller did not name the family's id".into(),
            ));
        }
        Ok(c)
    }

    /// Sends `msg` and collects the replies until the ack or the end of
    /// the dump.
    fn transact<F>(&mut self, msg: GenlMessage<F>, flags: u16) -> Result<Vec<F>, Error>
    where
        F: GenlFamily + netlink_packet_core::Emitable + fmt::Debug,
        GenlMessage<F>: NetlinkSerializable + NetlinkDeserializable,
    {
        self.seq += 1;
        let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        nl.header.flags = flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let m = NetlinkMessage::<GenlMessage<F>>::deserialize(&data[off..])
                    .map_err(|e| Error::Decode(e.to_string()))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(Error::Decode("zero-length message".into()));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::InnerMessage(g) => out.push(g.payload),
                    NetlinkPayload::Done(d) => {
                        return match dump_error(m.header.flags, &d) {
                            None => Ok(out),
                            Some(e) => Err(e),
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(Error::Kernel {
                                errno: -code.get(),
                                msg: extack_message(m.header.flags, &e.header),
                            }),
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn request(&mut self, cmd: u8, attrs: Vec<Attr>, flags: u16) -> Result<Vec<Message>, Error> {
        let mut g = GenlMessage::from_payload(Message { cmd, attrs });
        g.set_resolved_family_id(self.family);
        g.finalize();
        self.transact(g, flags)
    }

    /// Every virtual connection of the namespace.
    pub fn connections(&mut self) -> Result<Vec<Conn>, Error> {
        self.request(cmd::CONN_GET, vec![], NLM_F_REQUEST | NLM_F_DUMP)?
            .iter()
            .map(|m| Conn::from_attrs(&m.attrs).map_err(Error::Decode))
            .collect()
    }

    /// `conn-export` with selector `sel` (see `vnat.yaml`: a pid, or one
    /// connection's five-tuple): the saved state of the connections it
    /// selects, or of every connection of the namespace if `sel` is empty.
    pub fn export(&mut self, sel: Vec<Attr>) -> Result<Vec<Exported>, Error> {
        self.request(cmd::CONN_EXPORT, sel, NLM_F_REQUEST | NLM_F_DUMP)?
            .iter()
            .map(|m| Exported::from_attrs(&m.attrs).map_err(Error::Decode))
            .collect()
    }

    /// `conn-import` of one saved state (`record`, as `conn-export` gave
    /// it): the kernel expects the connection's socket.
    pub fn import(&mut self, record: &[u8]) -> Result<(), Error> {
        let saved = Attr::Saved(Record::new(record.to_vec()));
        self.request(cmd::CONN_IMPORT, vec![saved], NLM_F_REQUEST | NLM_F_ACK)?;
        Ok(())
    }

    /// `conn-resume` with selector `sel` (see `vnat.yaml`); returns how
    /// many connections it covers and the address they resume at.
    pub fn resume(&mut self, sel: Vec<Attr>) -> Result<(u32, Option<IpAddr>), Error> {
        self.counted(cmd::CONN_RESUME, sel)
    }

    /// `conn-suspend` with selector `sel`; returns how many connections it
    /// covers.
    pub fn suspend(&mut self, sel: Vec<Attr>) -> Result<u32, Error> {
        Ok(self.counted(cmd::CONN_SUSPEND, sel)?.0)
    }

    /// A command answered with a count (and maybe an address, new-addr or
    /// new-addr6).
    fn counted(&mut self, cmd: u8, sel: Vec<Attr>) -> Result<(u32, Option<IpAddr>), Error> {
        let r = self.request(cmd, sel, NLM_F_REQUEST | NLM_F_ACK)?;
        let attrs = || r.iter().flat_map(|m| m.attrs.iter());
        let count = attrs()
            .find_map(|a| match a {
                Attr::Count(n) => Some(*n),
                _ => None,
            })
            .ok_or_else(|| Error::Decode("the kernel answered without a count".into()))?;
        let at = attrs().find_map(|a| match a {
            Attr::NewAddr(_) | Attr::NewAddr6(_) => a.ip(),
            _ => None,
        });
        Ok((count, at))
    }

    /// `stats-get`: the namespace's counters, by name, in the spec's order.
    pub fn stats(&mut self) -> Result<Vec<(String, u64)>, Error> {
        let r = self.request(cmd::STATS_GET, vec![], NLM_F_REQUEST | NLM_F_ACK)?;
        let attrs: Vec<Attr> = r.into_iter().flat_map(|m| m.attrs).collect();
        if attrs.is_empty() {
            return Err(Error::Decode(
                "the kernel answered stats-get without counters".into(),
            ));
        }
        Ok(family::stats_from_attrs(&attrs))
    }

    /// `conn-set`: the conflict policy or helper of one connection.
    pub fn set(&mut self, sel: Vec<Attr>) -> Result<(), Error> {
        self.request(cmd::CONN_SET, sel, NLM_F_REQUEST | NLM_F_ACK)?;
        Ok(())
    }

    /// Joins the events group.
    pub fn subscribe(&mut self) -> Result<(), Error> {
        let g = self
            .events_group
            .ok_or_else(|| Error::Decode("the family has no events group".into()))?;
        self.sock
            .add_membership(g)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM) => Error::Kernel {
                    errno: libc::EPERM,
                    msg: Some("the events group shows every connection with its owner".into()),
                },
                _ => Error::from(e),
            })?;
        // Room for the events of a host's move of thousands of connections.
        self.sock.set_rx_buf_sz(4 << 20)?;
        Ok(())
    }

    /// Waits until an event is there to read, at most until `deadline`;
    /// false if none came.
    pub fn wait_events(&self, deadline: Instant) -> Result<bool, Error> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut p = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Whole milliseconds, rounded up: no busy loop in the last one.
            let ms = left
                .max(Duration::from_millis(1))
                .as_micros()
                .div_ceil(1000);
            let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd, for the call's duration.
            match unsafe { libc::poll(&mut p, 1, ms) } {
                0 => continue,
                n if n > 0 => return Ok(true),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e.into());
                    }
                }
            }
        }
    }

    /// Waits for the next batch of events.
    pub fn events(&mut self) -> Result<Vec<Event>, Error> {
        let (data, _) = self.sock.recv_from_full()?;
        let mut out = Vec::new();
        let mut off = 0;
        while off < data.len() {
            let m = NetlinkMessage::<GenlMessage<Message>>::deserialize(&data[off..])
                .map_err(|e| Error::Decode(e.to_string()))?;
            let len = m.header.length as usize;
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
            if let NetlinkPayload::InnerMessage(g) = m.payload {
                if g.payload.cmd == cmd::CONN_EVENT {
                    out.push(Event::from_attrs(&g.payload.attrs).map_err(Error::Decode)?);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extack_reason_after_a_capped_header() {
        // nlmsghdr of the request (16 bytes, length 36: not echoed since
        // capped), then NLMSGERR_ATTR_MSG "no way\0", padded.
        let mut echoed = Vec::new();
        echoed.extend_from_slice(&36u32.to_ne_bytes());
        echoed.extend_from_slice(&[0; 12]);
        echoed.extend_from_slice(&11u16.to_ne_bytes());
        echoed.extend_from_slice(&1u16.to_ne_bytes());
        echoed.extend_from_slice(b"no way\0\0");
        assert_eq!(
            extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &echoed).as_deref(),
            Some("no way")
        );
        assert_eq!(extack_message(NLM_F_CAPPED, &echoed), None);
    }

    #[test]
    fn extack_reason_after_a_full_echo() {
        let mut echoed = Vec::new();
        echoed.extend_from_slice(&20u32.to_ne_bytes());
        echoed.extend_from_slice(&[0; 16]);
        echoed.extend_from_slice(&8u16.to_ne_bytes());
        echoed.extend_from_slice(&1u16.to_ne_bytes());
        echoed.extend_from_slice(b"why\0");
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &echoed).as_deref(),
            Some("why")
        );
    }

    #[test]
    fn a_dump_that_ends_refused_is_an_error() {
        let mut d = DoneMessage::default();
        assert!(dump_error(NLM_F_ACK_TLVS, &d).is_none());
        d.code = -libc::EINVAL;
        d.extended_ack.extend_from_slice(&8u16.to_ne_bytes());
        d.extended_ack.extend_from_slice(&1u16.to_ne_bytes());
        d.extended_ack.extend_from_slice(b"bad\0");
        let Some(Error::Kernel { errno, msg }) = dump_error(NLM_F_ACK_TLVS, &d) else {
            panic!("a refused dump taken for a done one");
        };
        assert_eq!((errno, msg.as_deref()), (libc::EINVAL, Some("bad")));
        let Some(Error::Kernel { msg: None, .. }) = dump_error(0, &d) else {
            panic!("a reason read without NLM_F_ACK_TLVS");
        };
    }

    #[test]
    fn errors_say_what_to_do() {
        assert!(Error::NotLoaded.to_string().contains("insmod vnat.ko"));
        let e = Error::Kernel {
            errno: libc::EPERM,
            msg: None,
        };
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        let e = Error::Kernel {
            errno: libc::ENOENT,
            msg: Some("no virtual connection is at this address".into()),
        };
        assert!(
            e.to_string()
                .starts_with("the kernel refused: no virtual connection is at this address ("),
            "{e}"
        );
    }
}
