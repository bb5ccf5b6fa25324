// SPDX-License-Identifier: GPL-2.0

//! What the host tests of mappings share.

use vnat_proto::mapping::Mapping;

/// The same connection as its peer records it.
pub fn mirror(m: &Mapping) -> Mapping {
    Mapping {
        proto: m.proto,
        local_virtual: m.remote_virtual,
        local_physical: m.remote_physical,
        remote_virtual: m.local_virtual,
        remote_physical: m.local_physical,
    }
}
