// SPDX-License-Identifier: GPL-2.0

//! VNAT's kernel-independent logic, compiled for the host.
//!
//! The sources live in the kernel module's tree (`vnat/`) and are included
//! here unchanged, so `cargo test`, property tests and fuzzing exercise the
//! very code the module runs.

#![no_std]

#[path = "../../../vnat/vcmp.rs"]
pub mod vcmp;

#[path = "../../../vnat/checksum.rs"]
pub mod checksum;

#[path = "../../../vnat/mapping.rs"]
pub mod mapping;

#[path = "../../../vnat/packet.rs"]
pub mod packet;

#[path = "../../../vnat/key.rs"]
pub mod key;

#[path = "../../../vnat/vcmp2.rs"]
pub mod vcmp2;
