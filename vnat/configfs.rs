// SPDX-License-Identifier: GPL-2.0

//! The configfs subsystem `vnat`, at `/sys/kernel/config/vnat/`: the knobs
//! of `knobs.rs`, and the totals of the counters over all namespaces.
//!
//! | attribute              | access | meaning                                  |
//! |------------------------|--------|------------------------------------------|
//! | `vcmp_max_clients`     | rw     | VCMP connections one vnatd serves at once |
//! | `vcmp_idle_timeout_ms` | rw     | a VCMP connection silent this long is closed |
//! | `counters`             | ro     | totals over all namespaces, `name value` |
//! | `vcmp_port`            | ro     | the port vnatd listens on (module parameter) |
//! | `auto_migrate`, `vcmp_timeout_ms`, `vcmp_retries` | rw | see `knobs.rs` |
//! | `conflict_policy`      | rw     | `abort` or `preempt` (paper 3.4.3)       |
//! | `vcmp_peer_port`       | rw     | peers' vnatd port for updates; 0: ours   |
//! | `suspend_helper`       | rw     | `none`, `keepalive` or `stop` (paper 3.3.1) |
//! | `helper_timeout_s`     | rw     | a helper is undone after this long; 0: never |
//! | `vcmp_max_clients_per_source` | rw | VCMP connections served at once from one address |
//! | `vcmp_max_refusals`    | rw     | suspicious refusals that close a VCMP connection |
//! | `vcmp_udp_flows`       | rw     | 1: a UDP update may record a flow (unauthenticated) |
//! | `vcmp_auth`            | rw     | `off`, `opportunistic` or `required`: the security key |
//! | `location_hiding`      | rw     | 1: new TCP connections between moved hosts get the moved addresses (paper 3.4.1) |
//! | `resume_deadline_s`    | rw     | how long a move's updates are retried, with backoff; 0: `vcmp_retries` only |
//! | `migrate_on`           | rw     | `on-loss` or `on-route-change`: what moves connections automatically |
//! | `sleep_suspend`        | rw     | 1: system sleep suspends the connections, wake resumes them |

use crate::{
    counters::{self, Counter},
    ffi::KprobeRegistration,
    knobs::{
        show, AUTO_MIGRATE, CONFLICT_POLICY, HELPER_TIMEOUT_S, LOCATION_HIDING, MIGRATE_ON,
        RESUME_DEADLINE_S, SLEEP_SUSPEND, SUSPEND_HELPER, VCMP_AUTH, VCMP_IDLE_TIMEOUT_MS,
        VCMP_MAX_CLIENTS, VCMP_MAX_CLIENTS_PER_SOURCE, VCMP_MAX_REFUSALS, VCMP_PEER_PORT,
        VCMP_RETRIES, VCMP_TIMEOUT_MS, VCMP_UDP_FLOWS,
    },
};
use kernel::{
    configfs::{self, configfs_attrs},
    page::PAGE_SIZE,
    prelude::*,
};

/// The configfs subsystem `vnat`.
#[pin_data]
pub(crate) struct Config {
    #[pin]
    subsystem: configfs::Subsystem<Knobs>,
}

/// The data behind the subsystem's attributes: the knobs are statics, so it
/// holds only the load-time VCMP port.
#[pin_data]
pub(crate) struct Knobs {
    vcmp_port: u16,
}

impl Config {
    pub(crate) fn new(vcmp_port: u16) -> impl PinInit<Self, Error> {
        let item_type = configfs_attrs! {
            container: configfs::Subsystem<Knobs>,
            data: Knobs,
            attributes: [
                vcmp_max_clients: 0,
                vcmp_idle_timeout_ms: 1,
                counters: 2,
                vcmp_port: 3,
                auto_migrate: 4,
                vcmp_timeout_ms: 5,
                vcmp_retries: 6,
                conflict_policy: 7,
                vcmp_peer_port: 8,
                suspend_helper: 9,
                helper_timeout_s: 10,
                vcmp_max_clients_per_source: 11,
                vcmp_max_refusals: 12,
                vcmp_udp_flows: 13,
                vcmp_auth: 14,
                location_hiding: 15,
                resume_deadline_s: 16,
                migrate_on: 17,
                sleep_suspend: 18,
            ],
        };
        try_pin_init!(Self {
            subsystem <- configfs::Subsystem::new(
                c"vnat",
                item_type,
                try_pin_init!(Knobs { vcmp_port }),
            ),
        })
    }
}

macro_rules! knob_attribute {
    ($id:literal, $knob:ident) => {
        #[vtable]
        impl configfs::AttributeOperations<$id> for Knobs {
            type Data = Knobs;

            fn show(_: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                $knob.show(page)
            }

            fn store(_: &Knobs, page: &[u8]) -> Result {
                $knob.set_from(page)
            }
        }
    };
}

knob_attribute!(0, VCMP_MAX_CLIENTS);
knob_attribute!(1, VCMP_IDLE_TIMEOUT_MS);

#[vtable]
impl configfs::AttributeOperations<2> for Knobs {
    type Data = Knobs;

    fn show(_: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(&mut page[..]);
        for &c in Counter::ALL {
            core::fmt::write(
                &mut w,
                format_args!("{} {}\n", c.name(), counters::total(c)),
            )
            .map_err(|_| EINVAL)?;
        }
        core::fmt::write(
            &mut w,
            format_args!("kprobes_missed {}\n", KprobeRegistration::missed()),
        )
        .map_err(|_| EINVAL)?;
        Ok(w.bytes_written())
    }
}

#[vtable]
impl configfs::AttributeOperations<3> for Knobs {
    type Data = Knobs;

    fn show(k: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        show(page, format_args!("{}\n", k.vcmp_port))
    }
}

knob_attribute!(4, AUTO_MIGRATE);
knob_attribute!(5, VCMP_TIMEOUT_MS);
knob_attribute!(6, VCMP_RETRIES);
knob_attribute!(7, CONFLICT_POLICY);
knob_attribute!(8, VCMP_PEER_PORT);
knob_attribute!(9, SUSPEND_HELPER);
knob_attribute!(10, HELPER_TIMEOUT_S);
knob_attribute!(11, VCMP_MAX_CLIENTS_PER_SOURCE);
knob_attribute!(12, VCMP_MAX_REFUSALS);
knob_attribute!(13, VCMP_UDP_FLOWS);
knob_attribute!(14, VCMP_AUTH);
knob_attribute!(15, LOCATION_HIDING);
knob_attribute!(16, RESUME_DEADLINE_S);
knob_attribute!(17, MIGRATE_ON);
knob_attribute!(18, SLEEP_SUSPEND);
