// SPDX-License-Identifier: GPL-2.0

//! Connection translation (paper sections 3.2 and 4.2).
//!
//! VNAT translates migrated connections with four IPv4 netfilter hooks,
//! registered per namespace by the shim at the points the paper gives:
//!
//! | hook        | priority             | translation (once migrated)          |
//! |-------------|----------------------|--------------------------------------|
//! | LOCAL_OUT   | `NF_IP_PRI_NAT_DST`  | DNAT: remote virtual -> physical     |
//! | POSTROUTING | `NF_IP_PRI_NAT_SRC`  | SNAT: local virtual -> physical      |
//! | PREROUTING  | `NF_IP_PRI_NAT_DST`  | DNAT: local physical -> virtual      |
//! | LOCAL_IN    | `NF_IP_PRI_NAT_SRC`  | SNAT: remote physical -> virtual     |
//!
//! Until connections migrate there is nothing to translate: the hooks only
//! count the packets they see, per namespace, and accept every one.

use crate::netns::{self, Counter};
use kernel::{bindings, prelude::*};

/// The hooks, numbered as the shim numbers them (`vnat/shim.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Hook {
    /// Incoming DNAT.
    PreRouting = 0,
    /// Incoming SNAT.
    LocalIn = 1,
    /// Outgoing DNAT.
    LocalOut = 2,
    /// Outgoing SNAT.
    PostRouting = 3,
}

impl Hook {
    fn from_raw(raw: c_uint) -> Option<Self> {
        Some(match raw {
            0 => Self::PreRouting,
            1 => Self::LocalIn,
            2 => Self::LocalOut,
            3 => Self::PostRouting,
            _ => return None,
        })
    }

    const fn counter(self) -> Counter {
        match self {
            Self::PreRouting => Counter::HookPreRouting,
            Self::LocalIn => Counter::HookLocalIn,
            Self::LocalOut => Counter::HookLocalOut,
            Self::PostRouting => Counter::HookPostRouting,
        }
    }
}

/// Called by the shim's hook function for every IPv4 packet at each hook.
#[no_mangle]
extern "C" fn vnat_rs_hook(
    state: *mut c_void,
    hook: c_uint,
    _skb: *mut bindings::sk_buff,
) -> c_uint {
    // SAFETY: The shim passes the live state of the packet's namespace; the
    // hooks are unregistered (waiting for running ones) before it is freed.
    let state = unsafe { netns::borrow(state) };
    if let Some(h) = Hook::from_raw(hook) {
        state.count(h.counter(), 1);
    }
    bindings::NF_ACCEPT
}
