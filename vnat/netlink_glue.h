/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between vnat/netlink.c (the generic netlink family "vnat":
 * framing) and vnat/netlink.rs (what the messages say). Rust declares the
 * vnat_shim_nl_* and vnat_shim_genl_* prototypes in vnat/ffi.rs and mirrors
 * the two structs there (NlConn, NlResume); keep them in sync.
 */
#ifndef VNAT_NETLINK_GLUE_H
#define VNAT_NETLINK_GLUE_H

#include <linux/types.h>

struct net;

/* One virtual connection as a netlink dump shows it (network byte order). */
struct vnat_nl_conn {
	u64 packets_out, packets_in, bytes_out, bytes_in;
	__be32 local_addr, remote_addr, local_phys_addr, remote_phys_addr;
	__be16 local_port, remote_port, local_phys_port, remote_phys_port;
	u32 pid;
	u32 update_age_ms;	/* U32_MAX: never updated */
	u8 proto, state, origin, policy, vcmp_state, vcmp_attempts;
	u8 helper, peer_suspended;
};

/* Which connections a conn-resume request moves, and where. */
enum vnat_nl_by { VNAT_NL_BY_ADDR, VNAT_NL_BY_PID, VNAT_NL_BY_CONN };
struct vnat_nl_resume {
	__be32 local_addr, remote_addr, new_addr;
	__be16 local_port, remote_port;
	u32 pid;
	u8 proto, by;
};

/* Implemented in Rust (vnat/netlink.rs). */
int vnat_rs_nl_dump(void *state, void *skb, void *cb, long *args);
int vnat_rs_nl_resume(void *state, struct vnat_nl_resume *r);
int vnat_rs_nl_suspend(void *state, const struct vnat_nl_resume *r);
/* policy, helper: U8_MAX leaves it as it is. */
int vnat_rs_nl_set(void *state, const struct vnat_nl_resume *r, u8 policy, u8 helper);
/* values[a]: attribute a of the set "stats", for 0 < a < n. */
void vnat_rs_nl_stats(void *state, u64 *values, unsigned int n);

/* Implemented in vnat/netlink.c, called from Rust. */
int vnat_shim_nl_put_conn(void *skb, void *cb, const struct vnat_nl_conn *c);
void vnat_shim_nl_event(struct net *net, u8 event, const struct vnat_nl_conn *c,
			const char *reason);
bool vnat_shim_nl_listening(struct net *net);
int vnat_shim_genl_register(void);
void vnat_shim_genl_unregister(void);

#endif /* VNAT_NETLINK_GLUE_H */
