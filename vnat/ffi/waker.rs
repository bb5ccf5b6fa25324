// SPDX-License-Identifier: GPL-2.0

//! The wake-up source of a namespace's vnatd thread (`struct vnat_waker`,
//! `vnat/shim/kthread.c`): requests kick it from any context, and the
//! callbacks of the sockets it watches wake it.

use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

/// Opaque `struct vnat_waker` of the shim.
#[repr(C)]
pub(crate) struct RawWaker {
    _private: [u8; 0],
}

// Pointers to bindgen's kernel structures are fine to pass: C only sees
// pointers, whatever Rust makes of the zero-sized members inside them.
#[expect(improper_ctypes)]
extern "C" {
    fn vnat_shim_waker_new() -> *mut RawWaker;
    fn vnat_shim_waker_set_task(w: *mut RawWaker, task: *mut bindings::task_struct);
    fn vnat_shim_waker_free(w: *mut RawWaker);
    fn vnat_shim_waker_kick(w: *mut RawWaker);
    fn vnat_shim_waker_kick_soon(w: *mut RawWaker);
    fn vnat_shim_waker_wait(w: *mut RawWaker, timeout: c_long) -> bool;
}

/// The wake-up source of a vnatd thread: the callbacks of the sockets it
/// watches wake it.
///
/// # Invariants
///
/// `w` is a waker allocated by the shim, on which this value owns one
/// reference (each socket watching it owns another), given back by `Drop`.
pub(crate) struct Waker {
    w: NonNull<RawWaker>,
}

// SAFETY: The shim's waker is used from any CPU under its own locking.
unsafe impl Send for Waker {}
// SAFETY: As above.
unsafe impl Sync for Waker {}

impl Waker {
    /// A waker that wakes no thread yet.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Plain allocation in the shim.
        let w = unsafe { vnat_shim_waker_new() };
        Ok(Self {
            w: NonNull::new(w).ok_or(ENOMEM)?,
        })
    }

    /// Sets the thread to wake, once: later calls change nothing. The
    /// waker takes a reference on the task, so that a kick after the thread
    /// ended wakes nothing rather than freed memory.
    ///
    /// # Safety
    ///
    /// `task` must be a live task during the call.
    pub(crate) unsafe fn set_task(&self, task: NonNull<bindings::task_struct>) {
        // SAFETY: The waker is valid (type invariant); the task is live by
        // the function's requirements, and the shim takes its own reference.
        unsafe { vnat_shim_waker_set_task(self.w.as_ptr(), task.as_ptr()) };
    }

    /// Wakes the thread, from any context.
    pub(crate) fn kick(&self) {
        // SAFETY: The waker is valid (type invariant).
        unsafe { vnat_shim_waker_kick(self.w.as_ptr()) };
    }

    /// Wakes the thread at the next tick (within a jiffy), from any
    /// context but NMI: many kicks within a tick wake it once.
    pub(crate) fn kick_soon(&self) {
        // SAFETY: The waker is valid (type invariant).
        unsafe { vnat_shim_waker_kick_soon(self.w.as_ptr()) };
    }

    /// Sleeps until a watched socket has work, `timeout` jiffies have passed,
    /// or the thread is asked to stop. Returns whether there is work.
    pub(crate) fn wait(&self, timeout: c_long) -> bool {
        // SAFETY: The waker is valid (type invariant); called by its thread.
        unsafe { vnat_shim_waker_wait(self.w.as_ptr(), timeout) }
    }

    /// The shim's waker, for the thin layer of vnatd's sockets.
    pub(crate) fn as_raw(&self) -> *mut RawWaker {
        self.w.as_ptr()
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        // SAFETY: The waker is valid and this value owns one reference; the
        // shim frees it with the last one, which a socket still watched
        // (a leaked watch) holds.
        unsafe { vnat_shim_waker_free(self.w.as_ptr()) };
    }
}
