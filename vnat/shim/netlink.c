// SPDX-License-Identifier: GPL-2.0
/*
 * The generic netlink family "vnat" (spec: vnat/vnat.yaml): the doit and
 * dumpit callbacks that the ops of vnat/generated/netlink.c (generated from
 * the spec by the kernel's YNL generator) name, and the framing of replies
 * and events. The shim frames messages; Rust (vnat/netlink.rs, vnat/events.rs)
 * decides what goes in them (vnat/ffi/genl.rs). Commands need CAP_NET_ADMIN
 * in the user namespace of the network namespace (uns-admin-perm in the
 * spec), and so does the events group; the dump shows a caller without it
 * only the connections of its own sockets, as `ss -p` shows processes;
 * the counters are for anyone. Addresses are struct in6_addr, IPv4 ones
 * v4-mapped, as Rust passes them; on the wire an IPv4 address is its u32
 * attribute (local-addr, ...), as it always was, an IPv6 one its *-addr6
 * form, and a request may give either form (not both).
 */

#include <linux/module.h>
#include <net/genetlink.h>
#include <net/ipv6.h>

#include "shim.h"
#include "../generated/netlink.h"

/* Address @addr: attribute @v4 if it is IPv4 (v4-mapped), else @v6. */
static int vnat_nl_put_addr(struct sk_buff *skb, int v4, int v6, const struct in6_addr *addr)
{
	if (ipv6_addr_v4mapped(addr))
		return nla_put_in_addr(skb, v4, addr->s6_addr32[3]);
	return nla_put_in6_addr(skb, v6, addr);
}

/* The virtual five-tuple of @c. */
static int vnat_nl_put_tuple(struct sk_buff *skb, const struct vnat_nl_conn *c)
{
	if (nla_put_u8(skb, VNAT_A_CONN_PROTO, c->proto) ||
	    vnat_nl_put_addr(skb, VNAT_A_CONN_LOCAL_ADDR, VNAT_A_CONN_LOCAL_ADDR6,
			     &c->local_addr) ||
	    nla_put_be16(skb, VNAT_A_CONN_LOCAL_PORT, c->local_port) ||
	    vnat_nl_put_addr(skb, VNAT_A_CONN_REMOTE_ADDR, VNAT_A_CONN_REMOTE_ADDR6,
			     &c->remote_addr) ||
	    nla_put_be16(skb, VNAT_A_CONN_REMOTE_PORT, c->remote_port))
		return -EMSGSIZE;
	return 0;
}

static int vnat_nl_fill(struct sk_buff *skb, const struct vnat_nl_conn *c)
{
	if (vnat_nl_put_tuple(skb, c) ||
	    vnat_nl_put_addr(skb, VNAT_A_CONN_LOCAL_PHYS_ADDR, VNAT_A_CONN_LOCAL_PHYS_ADDR6,
			     &c->local_phys_addr) ||
	    nla_put_be16(skb, VNAT_A_CONN_LOCAL_PHYS_PORT, c->local_phys_port) ||
	    vnat_nl_put_addr(skb, VNAT_A_CONN_REMOTE_PHYS_ADDR, VNAT_A_CONN_REMOTE_PHYS_ADDR6,
			     &c->remote_phys_addr) ||
	    nla_put_be16(skb, VNAT_A_CONN_REMOTE_PHYS_PORT, c->remote_phys_port) ||
	    nla_put_u8(skb, VNAT_A_CONN_STATE, c->state) ||
	    nla_put_u8(skb, VNAT_A_CONN_ORIGIN, c->origin) ||
	    nla_put_u32(skb, VNAT_A_CONN_PID, c->pid) ||
	    nla_put_u8(skb, VNAT_A_CONN_POLICY, c->policy) ||
	    (c->update_age_ms != U32_MAX &&
	     nla_put_u32(skb, VNAT_A_CONN_UPDATE_AGE_MS, c->update_age_ms)) ||
	    nla_put_u64_64bit(skb, VNAT_A_CONN_PACKETS_OUT, c->packets_out, VNAT_A_CONN_PAD) ||
	    nla_put_u64_64bit(skb, VNAT_A_CONN_PACKETS_IN, c->packets_in, VNAT_A_CONN_PAD) ||
	    nla_put_u64_64bit(skb, VNAT_A_CONN_BYTES_OUT, c->bytes_out, VNAT_A_CONN_PAD) ||
	    nla_put_u64_64bit(skb, VNAT_A_CONN_BYTES_IN, c->bytes_in, VNAT_A_CONN_PAD) ||
	    nla_put_u8(skb, VNAT_A_CONN_VCMP_STATE, c->vcmp_state) ||
	    nla_put_u8(skb, VNAT_A_CONN_VCMP_ATTEMPTS, c->vcmp_attempts) ||
	    nla_put_u8(skb, VNAT_A_CONN_HELPER, c->helper) ||
	    nla_put_u8(skb, VNAT_A_CONN_PEER_SUSPENDED, c->peer_suspended) ||
	    nla_put_u8(skb, VNAT_A_CONN_AUTH, c->auth) ||
	    (c->vcmp_next_ms != U32_MAX &&
	     nla_put_u32(skb, VNAT_A_CONN_VCMP_NEXT_MS, c->vcmp_next_ms)))
		return -EMSGSIZE;
	return 0;
}

/*
 * Adds one connection to a dump of command @cmd: all of @c, or with @saved
 * (conn-export) its virtual endpoints, owner and @len bytes of saved state.
 * -EMSGSIZE when the skb is full.
 */
static int vnat_nl_dump_put(struct sk_buff *skb, struct netlink_callback *cb, u8 cmd,
			    const struct vnat_nl_conn *c, const u8 *saved, u32 len)
{
	void *hdr;
	int err;

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &vnat_nl_family, NLM_F_MULTI, cmd);
	if (!hdr)
		return -EMSGSIZE;
	if (saved)
		err = vnat_nl_put_tuple(skb, c) || nla_put_u32(skb, VNAT_A_CONN_PID, c->pid) ||
		      nla_put(skb, VNAT_A_CONN_SAVED, len, saved);
	else
		err = vnat_nl_fill(skb, c);
	if (err) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

int vnat_shim_nl_put_conn(void *skb, void *cb, const struct vnat_nl_conn *c)
{
	return vnat_nl_dump_put(skb, cb, VNAT_CMD_CONN_GET, c, NULL, 0);
}

/* conn-export: @c's virtual endpoints and owner, and its saved state. */
int vnat_shim_nl_put_saved(void *skb, void *cb, const struct vnat_nl_conn *c, const u8 *saved,
			   u32 len)
{
	return vnat_nl_dump_put(skb, cb, VNAT_CMD_CONN_EXPORT, c, saved, len);
}

/*
 * Tells the events group of @net what happened to connection @c (Rust asks
 * vnat_shim_nl_listening() first). Any context (atomic allocation); a
 * message that cannot be built is dropped, and listeners that fall behind
 * see ENOBUFS.
 */
void vnat_shim_nl_event(struct net *net, u8 event, const struct vnat_nl_conn *c,
			const char *reason)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_ATOMIC);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &vnat_nl_family, 0, VNAT_CMD_CONN_EVENT);
	if (!hdr || nla_put_u8(skb, VNAT_A_CONN_EVENT, event) || vnat_nl_fill(skb, c) ||
	    (reason && nla_put_string(skb, VNAT_A_CONN_REASON, reason))) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	genlmsg_multicast_netns(&vnat_nl_family, net, skb, 0, VNAT_NLGRP_EVENTS, GFP_ATOMIC);
}

/* Whether anyone in @net listens to the events group. Any context. */
bool vnat_shim_nl_listening(struct net *net)
{
	return genl_has_listeners(&vnat_nl_family, net, VNAT_NLGRP_EVENTS);
}

int vnat_nl_conn_get_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	const void *state = vnat_state(sock_net(skb->sk));
	/* The opener of the caller's socket, as for any netlink permission. */
	bool all = netlink_net_capable(cb->skb, CAP_NET_ADMIN);
	u32 uid = __kuid_val(sk_uid(NETLINK_CB(cb->skb).sk));

	if (!state)
		return 0;
	/* cb->args[0..5]: where the previous part of the dump stopped. */
	BUILD_BUG_ON(ARRAY_SIZE(cb->args) < 6);
	vnat_rs_nl_dump(state, skb, cb, cb->args, all, uid);
	return skb->len;
}

static int vnat_nl_refused(const struct genl_info *info, int err, const char *why);

/*
 * conn-import: a connection that conn-export saved on another host is
 * expected here (vnat/process_migration.rs).
 */
int vnat_nl_conn_import_doit(struct sk_buff *skb, struct genl_info *info)
{
	const void *state = vnat_state(genl_info_net(info));
	const struct nlattr *saved = info->attrs[VNAT_A_CONN_SAVED];
	const char *why = NULL;
	int err;

	if (!state)
		return -ENODEV;
	if (GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_SAVED))
		return -EINVAL;
	err = vnat_rs_nl_import(state, nla_data(saved), nla_len(saved), &why);
	if (why && info->extack)
		NL_SET_BAD_ATTR(info->extack, saved);
	return vnat_nl_refused(info, err, why);
}

/*
 * An address of a request, given as attribute @v4 (IPv4) or @v6 (its IPv6
 * form), into @out (IPv4 v4-mapped). 1 if one was given, 0 if neither
 * (@out untouched), -EINVAL with an extack message if both.
 */
static int vnat_nl_get_addr(const struct genl_info *info, int v4, int v6, struct in6_addr *out)
{
	struct nlattr **a = info->attrs;

	if (a[v4] && a[v6]) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[v6],
				    "an address given in both forms: give the IPv4 one or the IPv6 one");
		return -EINVAL;
	}
	if (a[v4])
		ipv6_addr_set_v4mapped(nla_get_in_addr(a[v4]), out);
	else if (a[v6])
		*out = nla_get_in6_addr(a[v6]);
	else
		return 0;
	return 1;
}

/* Whether the request has attribute @v4 or its IPv6 form @v6. */
static bool vnat_nl_has_addr(const struct genl_info *info, int v4, int v6)
{
	return info->attrs[v4] || info->attrs[v6];
}

/*
 * A connection's virtual five-tuple from a request; -EINVAL if incomplete
 * (an address missing in both forms is reported as its IPv4 attribute) or
 * an address is given in both forms. Two families (an IPv4 local address
 * with an IPv6 remote one) are Rust's to refuse.
 */
static int vnat_nl_get_tuple(const struct genl_info *info, struct vnat_nl_resume *r)
{
	struct nlattr **a = info->attrs;

	if (GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_PROTO) ||
	    (!a[VNAT_A_CONN_LOCAL_ADDR6] && GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_LOCAL_ADDR)) ||
	    GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_LOCAL_PORT) ||
	    (!a[VNAT_A_CONN_REMOTE_ADDR6] && GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_REMOTE_ADDR)) ||
	    GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_REMOTE_PORT))
		return -EINVAL;
	if (vnat_nl_get_addr(info, VNAT_A_CONN_LOCAL_ADDR, VNAT_A_CONN_LOCAL_ADDR6,
			     &r->local_addr) < 0 ||
	    vnat_nl_get_addr(info, VNAT_A_CONN_REMOTE_ADDR, VNAT_A_CONN_REMOTE_ADDR6,
			     &r->remote_addr) < 0)
		return -EINVAL;
	r->by = VNAT_NL_BY_CONN;
	r->proto = nla_get_u8(a[VNAT_A_CONN_PROTO]);
	r->local_port = nla_get_be16(a[VNAT_A_CONN_LOCAL_PORT]);
	r->remote_port = nla_get_be16(a[VNAT_A_CONN_REMOTE_PORT]);
	return 0;
}

/*
 * conn-resume and conn-suspend select by pid, by a connection's virtual
 * five-tuple (when local-port is given) or by local physical address (a
 * host's move); conn-export by either of the first two.
 */
static int vnat_nl_get_selector(const struct genl_info *info, struct vnat_nl_resume *r)
{
	struct nlattr **a = info->attrs;

	if (a[VNAT_A_CONN_PID]) {
		if (vnat_nl_has_addr(info, VNAT_A_CONN_LOCAL_ADDR, VNAT_A_CONN_LOCAL_ADDR6) ||
		    a[VNAT_A_CONN_LOCAL_PORT]) {
			NL_SET_ERR_MSG(info->extack,
				       "select by pid, by connection or by local-addr, not several");
			return -EINVAL;
		}
		r->by = VNAT_NL_BY_PID;
		r->pid = nla_get_u32(a[VNAT_A_CONN_PID]);
	} else if (a[VNAT_A_CONN_LOCAL_PORT]) {
		if (vnat_nl_get_tuple(info, r))
			return -EINVAL;
	} else {
		if (!vnat_nl_has_addr(info, VNAT_A_CONN_LOCAL_ADDR, VNAT_A_CONN_LOCAL_ADDR6) &&
		    GENL_REQ_ATTR_CHECK(info, VNAT_A_CONN_LOCAL_ADDR))
			return -EINVAL;
		if (vnat_nl_get_addr(info, VNAT_A_CONN_LOCAL_ADDR, VNAT_A_CONN_LOCAL_ADDR6,
				     &r->local_addr) < 0)
			return -EINVAL;
		r->by = VNAT_NL_BY_ADDR;
	}
	return 0;
}

/*
 * Which connections a conn-export request selects, into @r: by pid, or
 * one connection by its virtual five-tuple, as conn-resume selects them
 * (Rust refuses the rest). 0 if @r selects, 1 if the request has no
 * selector (all), else -EINVAL with an extack message.
 */
static int vnat_nl_get_export_selector(const struct genl_info *info, struct vnat_nl_resume *r)
{
	struct nlattr **a = info->attrs;
	bool conn;

	if (!a)
		return 1;
	conn = a[VNAT_A_CONN_PROTO] || a[VNAT_A_CONN_LOCAL_PORT] || a[VNAT_A_CONN_REMOTE_PORT] ||
	       vnat_nl_has_addr(info, VNAT_A_CONN_LOCAL_ADDR, VNAT_A_CONN_LOCAL_ADDR6) ||
	       vnat_nl_has_addr(info, VNAT_A_CONN_REMOTE_ADDR, VNAT_A_CONN_REMOTE_ADDR6);
	if (!a[VNAT_A_CONN_PID] && !conn)
		return 1;
	if (a[VNAT_A_CONN_PID] && conn) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VNAT_A_CONN_PID],
				    "select by pid or by connection, not both");
		return -EINVAL;
	}
	return vnat_nl_get_selector(info, r) ? -EINVAL : 0;
}

/*
 * conn-export (CAP_NET_ADMIN in the namespace's user namespace, checked by
 * genetlink: uns-admin-perm): the saved state, keys included, of the
 * connections of the process the request names, or of the one connection
 * it names, or of all. A bad request ends the dump with its errno.
 */
int vnat_nl_conn_export_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	const void *state = vnat_state(sock_net(skb->sk));
	const struct genl_info *info = genl_info_dump(cb);
	struct vnat_nl_resume r = {};
	const char *why = NULL;
	int err;

	err = vnat_nl_get_export_selector(info, &r);
	if (err < 0)
		return err;
	if (!state)
		return 0;
	err = vnat_rs_nl_export(state, skb, cb, cb->args, err ? NULL : &r, &why);
	if (err < 0)
		return vnat_nl_refused(info, err, why);
	return skb->len;
}

/*
 * A refusal from Rust: @why is its reason (a static string), or NULL. As
 * NL_SET_ERR_MSG(), which only takes literals.
 */
static int vnat_nl_refused(const struct genl_info *info, int err, const char *why)
{
	if (why) {
		do_trace_netlink_extack(why);
		if (info->extack)
			info->extack->_msg = why;
	}
	return err;
}

/*
 * Answers a command with the number of connections it covers, and the
 * address they resume at unless @new_addr is NULL (as new-addr if it is
 * IPv4, else as new-addr6).
 */
static int vnat_nl_reply_count(struct genl_info *info, int n, const struct in6_addr *new_addr)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(nla_total_size(sizeof(u32)) + nla_total_size(sizeof(struct in6_addr)),
			  GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_iput(msg, info);
	if (!hdr || nla_put_u32(msg, VNAT_A_CONN_COUNT, n) ||
	    (new_addr && vnat_nl_put_addr(msg, VNAT_A_CONN_NEW_ADDR, VNAT_A_CONN_NEW_ADDR6,
					  new_addr))) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

int vnat_nl_conn_resume_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct net *net = genl_info_net(info);
	const void *state = vnat_state(net);
	struct nlattr **a = info->attrs;
	struct vnat_nl_resume r = {};
	const char *why = NULL;
	int n;

	if (!state)
		return -ENODEV;
	/*
	 * Without new-addr (or with 0.0.0.0 or ::): the address the host
	 * would send to the peer from, which Rust writes to r.new_addr.
	 */
	if (vnat_nl_get_addr(info, VNAT_A_CONN_NEW_ADDR, VNAT_A_CONN_NEW_ADDR6, &r.new_addr) < 0)
		return -EINVAL;
	if (ipv6_addr_v4mapped(&r.new_addr) && !r.new_addr.s6_addr32[3])
		r.new_addr = (struct in6_addr){};
	if (vnat_nl_get_selector(info, &r))
		return -EINVAL;
	/* Updates would name an address the peer cannot reach us at. */
	if (!ipv6_addr_any(&r.new_addr) &&
	    vnat_shim_addr_kind(net, &r.new_addr) != VNAT_ADDR_LOCAL) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    a[VNAT_A_CONN_NEW_ADDR] ?: a[VNAT_A_CONN_NEW_ADDR6],
				    "new-addr is not an address of this host");
		return -EADDRNOTAVAIL;
	}
	n = vnat_rs_nl_resume(state, &r, &why);
	if (n < 0)
		return vnat_nl_refused(info, n, why);
	return vnat_nl_reply_count(info, n, ipv6_addr_any(&r.new_addr) ? NULL : &r.new_addr);
}

/*
 * conn-suspend: the selected connections' ends here are suspended (paper
 * 3.3.1); vnatd asks each peer to keep its end alive with a helper.
 */
int vnat_nl_conn_suspend_doit(struct sk_buff *skb, struct genl_info *info)
{
	const void *state = vnat_state(genl_info_net(info));
	struct nlattr **a = info->attrs;
	struct vnat_nl_resume r = {};
	const char *why = NULL;
	int n;

	if (!state)
		return -ENODEV;
	if (vnat_nl_has_addr(info, VNAT_A_CONN_NEW_ADDR, VNAT_A_CONN_NEW_ADDR6)) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    a[VNAT_A_CONN_NEW_ADDR] ?: a[VNAT_A_CONN_NEW_ADDR6],
				    "a suspended connection moves nowhere: give new-addr to conn-resume");
		return -EINVAL;
	}
	if (vnat_nl_get_selector(info, &r))
		return -EINVAL;
	n = vnat_rs_nl_suspend(state, &r, &why);
	if (n < 0)
		return vnat_nl_refused(info, n, why);
	return vnat_nl_reply_count(info, n, NULL);
}

int vnat_nl_conn_set_doit(struct sk_buff *skb, struct genl_info *info)
{
	const void *state = vnat_state(genl_info_net(info));
	struct nlattr **a = info->attrs;
	struct vnat_nl_resume r = {};
	const char *why = NULL;
	int err;

	if (!state)
		return -ENODEV;
	if (vnat_nl_get_tuple(info, &r))
		return -EINVAL;
	if (!a[VNAT_A_CONN_POLICY] && !a[VNAT_A_CONN_HELPER]) {
		NL_SET_ERR_MSG(info->extack, "nothing to set: give policy or helper");
		return -EINVAL;
	}
	err = vnat_rs_nl_set(state, &r,
			     a[VNAT_A_CONN_POLICY] ? nla_get_u8(a[VNAT_A_CONN_POLICY]) : U8_MAX,
			     a[VNAT_A_CONN_HELPER] ? nla_get_u8(a[VNAT_A_CONN_HELPER]) : U8_MAX,
			     &why);
	return vnat_nl_refused(info, err, why);
}

/*
 * stats-get: the namespace's counters, each its own attribute. The counters
 * are the u64 attributes of the set "stats" (the Rust generator makes
 * Counter of them); the others (connections, vcmp-listening,
 * hooks-registered) are how things are now.
 */
int vnat_nl_stats_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	const void *state = vnat_state(genl_info_net(info));
	u64 v[VNAT_A_STATS_MAX + 1] = {};
	struct sk_buff *msg;
	void *hdr;
	int a;

	if (!state)
		return -ENODEV;
	vnat_rs_nl_stats(state, v, ARRAY_SIZE(v));
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_iput(msg, info);
	if (!hdr)
		goto nospace;
	for (a = 1; a <= VNAT_A_STATS_MAX; a++) {
		if (a == VNAT_A_STATS_CONNECTIONS || a == VNAT_A_STATS_VCMP_LISTENING ||
		    a == VNAT_A_STATS_HOOKS_REGISTERED || a == VNAT_A_STATS_PAD)
			continue;
		if (nla_put_u64_64bit(msg, a, v[a], VNAT_A_STATS_PAD))
			goto nospace;
	}
	if (nla_put_u32(msg, VNAT_A_STATS_CONNECTIONS, v[VNAT_A_STATS_CONNECTIONS]) ||
	    nla_put_u8(msg, VNAT_A_STATS_VCMP_LISTENING, v[VNAT_A_STATS_VCMP_LISTENING]) ||
	    nla_put_u8(msg, VNAT_A_STATS_HOOKS_REGISTERED, v[VNAT_A_STATS_HOOKS_REGISTERED]))
		goto nospace;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
nospace:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

/*
 * The spec's multicast groups with their flags, which the YNL generator of
 * this kernel leaves out of vnat/generated/netlink.c: the events group
 * needs CAP_NET_ADMIN in the namespace's user namespace (uns-admin-perm),
 * as events show every connection with its owner.
 */
static const struct genl_multicast_group vnat_nl_mcgrps_with_flags[] = {
	[VNAT_NLGRP_EVENTS] = { "events", .flags = GENL_MCAST_CAP_NET_ADMIN },
};

int vnat_shim_genl_register(void)
{
	BUILD_BUG_ON(ARRAY_SIZE(vnat_nl_mcgrps_with_flags) != VNAT_NLGRP_EVENTS + 1);
	vnat_nl_family.mcgrps = vnat_nl_mcgrps_with_flags;
	return genl_register_family(&vnat_nl_family);
}

void vnat_shim_genl_unregister(void)
{
	genl_unregister_family(&vnat_nl_family);
}
