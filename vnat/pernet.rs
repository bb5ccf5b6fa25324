// SPDX-License-Identifier: GPL-2.0

//! The entry of each network namespace (the shim's pernet operations):
//! when a namespace appears (or, at module load, for every one that
//! exists) [`vnat_rs_net_init`] sets up its [`NetState`] and starts its
//! vnatd; when it goes (or at unload) [`vnat_rs_net_exit`] stops vnatd,
//! which unregisters the namespace's hooks, and lets go of the state.

use crate::{ffi::Net, netns::NetState, vnatd::Vnatd};
use kernel::{bindings, prelude::*, sync::Arc, types::ForeignOwnable};

/// What a namespace's entry owns. Field order is teardown order: the
/// daemon stops first (its hooks go with it: unregistering waits for running
/// ones), then the state goes. The callbacks that borrow the state hold no
/// reference: the shim clears its pointer before the entry goes, a probe
/// cannot fire for a namespace that exits (no user socket of it is left;
/// at unload the probes go first), and netlink and the address notifier
/// run while the namespace is alive.
struct Entry {
    _vnatd: Vnatd,
    _state: Arc<NetState>,
}

/// Called by the shim's pernet init for every namespace. Returns the entry
/// as an opaque pointer, or an `ERR_PTR`; writes to `state` the pointer to
/// the namespace's state that the shim hands to the callbacks.
#[no_mangle]
extern "C" fn vnat_rs_net_init(net: *mut bindings::net, state: *mut *const c_void) -> *mut c_void {
    // SAFETY: The pernet init callback gets a live namespace that stays
    // alive until the exit callback, which drops the entry and with it the
    // state that owns this value.
    let net = match unsafe { Net::from_raw(net) } {
        Ok(n) => n,
        Err(e) => return e.to_ptr(),
    };
    let inum = net.inum();
    let shared = match Arc::pin_init(NetState::new(net), GFP_KERNEL) {
        Ok(s) => s,
        Err(e) => return e.to_ptr(),
    };
    let vnatd = match Vnatd::start(shared.clone()) {
        Ok(d) => d,
        Err(e) => {
            pr_warn!("netns {inum}: vnatd did not start: {e:?}\n");
            return e.to_ptr();
        }
    };
    let borrowed: *const NetState = &*shared;
    let entry = match KBox::new(
        Entry {
            _vnatd: vnatd,
            _state: shared,
        },
        GFP_KERNEL,
    ) {
        Ok(e) => e,
        Err(e) => return Error::from(e).to_ptr(),
    };
    // SAFETY: The shim passes a valid place for the pointer.
    unsafe { state.write(borrowed.cast()) };
    entry.into_foreign()
}

/// Called by the shim's pernet exit for every namespace, after it cleared
/// its pointer to the state.
#[no_mangle]
extern "C" fn vnat_rs_net_exit(entry: *mut c_void) {
    // SAFETY: `entry` came from `into_foreign` in `vnat_rs_net_init`, and
    // the shim gives it back once.
    drop(unsafe { KBox::<Entry>::from_foreign(entry) });
}
