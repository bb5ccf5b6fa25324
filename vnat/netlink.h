/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The generic netlink family "vnat": numbers from the spec vnat/vnat.yaml.
 * Shared by the shim and, through bindgen-free declarations, the Rust side
 * (vnat/netlink.rs), and by tools/vnatctl.
 */
#ifndef VNAT_NETLINK_H
#define VNAT_NETLINK_H

#define VNAT_FAMILY_NAME "vnat"
#define VNAT_FAMILY_VERSION 1
#define VNAT_MCGRP_EVENTS "events"

enum vnat_state {
	VNAT_STATE_NATIVE,
	VNAT_STATE_RESUMING,
	VNAT_STATE_MIGRATED,
};

enum vnat_origin {
	VNAT_ORIGIN_CONNECT,
	VNAT_ORIGIN_ACCEPT,
	VNAT_ORIGIN_EXISTING,
	VNAT_ORIGIN_UPDATE,
};

enum {
	VNAT_A_CONN_PROTO = 1,
	VNAT_A_CONN_LOCAL_ADDR,
	VNAT_A_CONN_LOCAL_PORT,
	VNAT_A_CONN_REMOTE_ADDR,
	VNAT_A_CONN_REMOTE_PORT,
	VNAT_A_CONN_LOCAL_PHYS_ADDR,
	VNAT_A_CONN_LOCAL_PHYS_PORT,
	VNAT_A_CONN_REMOTE_PHYS_ADDR,
	VNAT_A_CONN_REMOTE_PHYS_PORT,
	VNAT_A_CONN_STATE,
	VNAT_A_CONN_ORIGIN,
	VNAT_A_CONN_PID,
	VNAT_A_CONN_NEW_ADDR,
	VNAT_A_CONN_COUNT,

	__VNAT_A_CONN_MAX,
	VNAT_A_CONN_MAX = (__VNAT_A_CONN_MAX - 1)
};

enum {
	VNAT_CMD_CONN_GET = 1,
	VNAT_CMD_CONN_RESUME,

	__VNAT_CMD_MAX,
	VNAT_CMD_MAX = (__VNAT_CMD_MAX - 1)
};

#endif /* VNAT_NETLINK_H */
