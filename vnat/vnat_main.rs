// SPDX-License-Identifier: GPL-2.0

//! VNAT: Virtual Network Address Translation (Su and Nieh, Columbia
//! University technical report CUCS-003-02, 2002), as a Rust kernel module.
//!
//! Live TCP and UDP connections survive when a host, or a process, moves to
//! another network address, without changing applications, protocols or the
//! network.
//!
//! Each file holds one concept of the paper, and the files form layers that
//! only point down (`tools/check-layers.py`, run by `make check`, keeps it
//! so): a file uses only files of the layers below it, and of its own layer
//! those listed before it.
//!
//! | layer      | file                 | paper    | concept                                |
//! |------------|----------------------|----------|----------------------------------------|
//! | pure       | `generated/netlink.rs` |        | generated from `vnat.yaml`: the family's numbers, enums, counters |
//! |            | `vcmp.rs`            | 3.3.2.2  | VCMP wire format (shared with `tools/`) |
//! |            | `checksum.rs`        | 4.2      | incremental checksum updates (shared)  |
//! |            | `mapping.rs`         | 3.2      | mappings, their rules, the rule table's slots (shared) |
//! |            | `packet.rs`          | 4.2      | reading and rewriting packet headers (shared) |
//! |            | `location_hiding.rs` | 3.4.1, 4.1 | location hiding: new connections get the moved addresses (shared) |
//! |            | `key.rs`             | 3.3.1.1  | the security key: HKDF over HMAC-SHA256 (shared) |
//! |            | `vcmp2.rs`           | 3.3.2.1  | VCMP version 2: authenticated messages (shared) |
//! | FFI        | `ffi.rs`, `ffi/`     |          | the thin layer to the C shim (`shim/`) |
//! | state      | `knobs.rs`           |          | run-time knobs                         |
//! |            | `counters.rs`        |          | what is counted                        |
//! |            | `helper.rs`          | 3.3.1.2  | connection migration helpers: keepalive off, stop the peer |
//! |            | `virtualization.rs`  | 3.1      | virtual connections, one table per namespace |
//! |            | `rules.rs`           | 3.2      | the published translation rules        |
//! |            | `requests.rs`        | 3.3      | work for vnatd: moves and suspensions  |
//! |            | `netns.rs`           |          | a namespace's state                    |
//! |            | `events.rs`          | 3.3      | what happens to connections, as events |
//! | mechanisms | `authentication.rs`  | 3.3.1.1, 3.3.2.1 | who VCMP is believed from: the security key, sources |
//! |            | `interception.rs`    | 4.1      | socket tracking: connect, accept, close |
//! |            | `translation.rs`     | 4.2      | the four netfilter hooks               |
//! |            | `migration.rs`       | 3.3, 3.4.3 | suspend, resume, update: what they do to mappings; conflicts |
//! |            | `vnatd_kthread/`     | 4.3      | the per-namespace daemon on port 2031  |
//! | interfaces | `pernet.rs`          |          | each namespace's entry: state and vnatd |
//! |            | `netlink.rs`, `vnat.yaml` | 3.3 | generic netlink family `vnat`: list, suspend, resume, stats |
//! |            | `configfs.rs`        |          | configfs knobs and totals              |
//! |            | `vnat_main.rs`       |          | the module                             |
//!
//! Module load registers, in this order, the configfs subsystem, the
//! kprobes, the pernet operations (which set up every namespace: its state,
//! vnatd, and the record of connections open already), the generic netlink
//! family and the address notifier; unload undoes them in reverse, except
//! that the probes go before the namespaces' states.

use kernel::prelude::*;

// Pure.
pub mod checksum;
pub mod export;
pub mod key;
pub mod location_hiding;
pub mod mapping;
#[path = "generated/netlink.rs"]
mod nl_gen;
pub mod packet;
pub mod vcmp;
pub mod vcmp2;
// FFI.
mod ffi;
// State.
mod counters;
mod events;
mod helper;
mod knobs;
mod netns;
mod process_migration;
mod requests;
mod rules;
mod virtualization;
// Mechanisms.
mod authentication;
mod interception;
mod migration;
mod translation;
#[path = "../vnatd_kthread/vnatd.rs"]
mod vnatd;
// Interfaces.
mod configfs;
mod netlink;
mod pernet;

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

/// The module: its registrations, dropped in field order. That is the
/// reverse of the order in which `init` makes them, but for the probes,
/// which go before the namespaces' states: unregistering them waits for
/// running handlers, so none can still be using a state that goes.
#[pin_data]
struct Vnat {
    _pm: ffi::PmRegistration,
    _inetaddr: ffi::InetaddrRegistration,
    _genl: ffi::GenlRegistration,
    _kprobes: ffi::KprobeRegistration,
    _pernet: ffi::PernetRegistration,
    #[pin]
    _config: configfs::Config,
}

impl kernel::InPlaceModule for Vnat {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(|| {
            let port = module_parameters::vcmp_port.value();
            if port == 0 {
                pr_err!("vcmp_port=0 is not a port; use 1-65535\n");
                return Err(EINVAL);
            }
            knobs::VCMP_PORT.set(u32::from(port));
            Ok(try_pin_init!(Self {
                _config <- configfs::Config::new(port),
                // Probes first: with the per-namespace walk of existing
                // sockets that follows, no connection slips through.
                _kprobes: ffi::KprobeRegistration::new()?,
                _pernet: ffi::PernetRegistration::new()?,
                _genl: ffi::GenlRegistration::new()?,
                _inetaddr: ffi::InetaddrRegistration::new()?,
                _pm: ffi::PmRegistration::new()?,
            }))
        })
    }
}
