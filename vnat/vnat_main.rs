// SPDX-License-Identifier: GPL-2.0

//! VNAT: Virtual Network Address Translation (Su and Nieh, Columbia
//! University technical report CUCS-003-02, 2002), as a Rust kernel module.
//!
//! Live TCP and UDP connections survive when a host, or a process, moves to
//! another network address, without changing applications, protocols or the
//! network. Each file holds one concept of the paper:
//!
//! | file                        | paper    | concept                              |
//! |-----------------------------|----------|--------------------------------------|
//! | `virtualization.rs`         | 3.1      | virtual connections, one table per namespace |
//! | `translation.rs`            | 3.2, 4.2 | the four netfilter hooks             |
//! | `mapping.rs`                | 3.2      | mappings, their rules, the rule table (shared with `tools/`) |
//! | `checksum.rs`               | 4.2      | incremental checksum updates (shared with `tools/`) |
//! | `migration.rs`              | 3.3      | suspend, resume, update: what they do to mappings |
//! | `helper.rs`                 | 3.3.1    | connection migration helpers: keepalive, stop the peer |
//! | `command.rs`                |          | `/proc/net/vnat/control` commands (shared with `tools/`) |
//! | `interception.rs`           | 4.1      | socket tracking: connect, accept, close |
//! | `vcmp.rs`                   | 3.3.2.2  | VCMP wire format (shared with `tools/`) |
//! | `vnatd_kthread/vnatd.rs`    | 4.3      | the per-namespace daemon on port 2031 |
//! | `netns.rs`                  |          | per-namespace state and counters     |
//! | `config.rs`                 |          | configfs knobs                       |
//! | `netlink.rs`, `vnat.yaml`   | 3.3      | generic netlink family `vnat`: list, suspend, resume, stats |
//! | `generated/`                |          | generated from `vnat.yaml`: the family's numbers, enums, counters, C policies and ops |
//! | `ffi.rs`, `shim.c`          |          | the thin layer to C                  |
//!
//! Module load registers, in this order, the configfs subsystem, the kprobes,
//! the pernet operations (which set up every namespace: hooks, procfs files,
//! vnatd, and the record of connections open already), the generic netlink
//! family and the address notifier; unload undoes them in reverse.

use kernel::prelude::*;

pub mod checksum;
pub mod command;
mod config;
mod ffi;
mod helper;
mod interception;
pub mod mapping;
mod migration;
mod netlink;
mod netns;
#[path = "generated/netlink.rs"]
mod nl_gen;
mod translation;
pub mod vcmp;
mod virtualization;
#[path = "../vnatd_kthread/vnatd.rs"]
mod vnatd;

module! {
    type: Vnat,
    name: "vnat",
    authors: ["The VNAT developers"],
    description: "Virtual Network Address Translation: live connection migration",
    license: "GPL",
    params: {
        vcmp_port: u16 {
            default: 2031,
            description: "TCP port of vnatd in every network namespace (load time, 1-65535)",
        },
    },
}

/// The VCMP port, from the module parameter.
pub(crate) fn vcmp_port() -> u16 {
    module_parameters::vcmp_port.value()
}

/// The module: its registrations, dropped in field order (the reverse of
/// the order in which `init` makes them).
#[pin_data]
struct Vnat {
    _inetaddr: ffi::InetaddrRegistration,
    _genl: ffi::GenlRegistration,
    _pernet: ffi::PernetRegistration,
    _kprobes: ffi::KprobeRegistration,
    #[pin]
    _config: config::Config,
}

impl kernel::InPlaceModule for Vnat {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(|| {
            let port = vcmp_port();
            if port == 0 {
                pr_err!("vcmp_port=0 is not a port; use 1-65535\n");
                return Err(EINVAL);
            }
            Ok(try_pin_init!(Self {
                _config <- config::Config::new(port),
                // Probes first: with the per-namespace walk of existing
                // sockets that follows, no connection slips through.
                _kprobes: ffi::KprobeRegistration::new()?,
                _pernet: ffi::PernetRegistration::new()?,
                _genl: ffi::GenlRegistration::new()?,
                _inetaddr: ffi::InetaddrRegistration::new()?,
            }))
        })
    }
}
