// SPDX-License-Identifier: GPL-2.0
/*
 * The host's addresses and routes as vnatd asks about them, for IPv4 and
 * IPv6 alike: an address is a struct in6_addr, an IPv4 one v4-mapped
 * (::ffff:a.b.c.d), as Rust passes it (vnat/ffi.rs, `RawAddr`).
 */

#include <linux/inetdevice.h>
#include <net/addrconf.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>
#include <net/route.h>

#include "shim.h"

/*
 * IPv4: where the host now sends to @daddr from, if the route there no
 * longer leaves through the interface that has @saddr (or @saddr is gone):
 * the address it would use on the route's interface. The route is looked up
 * from @saddr while the host has it, so that rules that route by source
 * keep their connections where they are. 0 if there is no route, the route
 * still leaves through @saddr's interface, or @saddr is on a loopback
 * interface (a service address, sent from through whatever interface the
 * route says, on purpose).
 */
static __be32 vnat_route_moved4(struct net *net, __be32 saddr, __be32 daddr)
{
	struct flowi4 fl4 = { .daddr = daddr };
	struct net_device *dev;
	struct rtable *rt;
	__be32 src = 0;

	rcu_read_lock();
	dev = __ip_dev_find(net, saddr, false);
	if (dev && (dev->flags & IFF_LOOPBACK))
		goto out;
	if (dev)
		fl4.saddr = saddr;
	rt = ip_route_output_key(net, &fl4);
	if (IS_ERR(rt))
		goto out;
	if (rt->dst.dev != dev)
		src = dev ? inet_select_addr(rt->dst.dev, rt_nexthop(rt, daddr), RT_SCOPE_UNIVERSE) :
			    fl4.saddr;
	ip_rt_put(rt);
out:
	rcu_read_unlock();
	return src;
}

/* IPv6: as vnat_route_moved4(); false for "0". */
static bool vnat_route_moved6(struct net *net, const struct in6_addr *saddr,
			      const struct in6_addr *daddr, struct in6_addr *out)
{
	struct flowi6 fl6 = { .daddr = *daddr };
	struct net_device *dev;
	struct dst_entry *dst;
	bool moved = false;

	rcu_read_lock();
	dev = ipv6_dev_find(net, saddr, NULL);
	if (dev && (dev->flags & IFF_LOOPBACK))
		goto out;
	if (dev)
		fl6.saddr = *saddr;
	dst = ip6_route_output(net, NULL, &fl6);
	if (dst->error)
		goto put;
	if (dst_dev_rcu(dst) != dev)
		moved = !ipv6_dev_get_saddr(net, dst_dev_rcu(dst), daddr, 0, out);
put:
	dst_release(dst);
out:
	rcu_read_unlock();
	return moved;
}

/* Whether @a is v4-mapped: an IPv4 address. */
static bool vnat_is_v4(const struct in6_addr *a)
{
	return ipv6_addr_v4mapped(a);
}

bool vnat_shim_route_moved(struct net *net, const struct in6_addr *saddr,
			   const struct in6_addr *daddr, struct in6_addr *out)
{
	__be32 src;

	if (vnat_is_v4(saddr) != vnat_is_v4(daddr))
		return false;
	if (!vnat_is_v4(daddr))
		return vnat_route_moved6(net, saddr, daddr, out);
	src = vnat_route_moved4(net, saddr->s6_addr32[3], daddr->s6_addr32[3]);
	if (src)
		ipv6_addr_set_v4mapped(src, out);
	return src;
}

/*
 * The source address the host would use now to send to @daddr, in @out;
 * false if there is no route (or, over IPv6, no usable source: a tentative
 * address is not one until its duplicate address detection is done).
 */
bool vnat_shim_route_source(struct net *net, const struct in6_addr *daddr, struct in6_addr *out)
{
	if (vnat_is_v4(daddr)) {
		struct flowi4 fl4 = { .daddr = daddr->s6_addr32[3] };
		struct rtable *rt = ip_route_output_key(net, &fl4);

		if (IS_ERR(rt))
			return false;
		ip_rt_put(rt);
		ipv6_addr_set_v4mapped(fl4.saddr, out);
		return fl4.saddr;
	} else {
		struct flowi6 fl6 = { .daddr = *daddr };
		struct dst_entry *dst;
		bool ok;

		rcu_read_lock();
		dst = ip6_route_output(net, NULL, &fl6);
		ok = !dst->error && !ipv6_dev_get_saddr(net, dst_dev_rcu(dst), daddr, 0, out);
		dst_release(dst);
		rcu_read_unlock();
		return ok;
	}
}

/*
 * What @a is to @net: VNAT_ADDR_LOCAL (one of its own; over IPv6, also a
 * tentative one, not one whose duplicate address detection failed), VNAT_ADDR_REMOTE (the unicast address of another host:
 * not a broadcast, also of one of its subnets, nor multicast, loopback or
 * unspecified), or VNAT_ADDR_OTHER. Any context.
 */
int vnat_shim_addr_kind(struct net *net, const struct in6_addr *a)
{
	int type;

	if (vnat_is_v4(a)) {
		switch (inet_addr_type(net, a->s6_addr32[3])) {
		case RTN_LOCAL:
			return VNAT_ADDR_LOCAL;
		case RTN_UNICAST:
			return VNAT_ADDR_REMOTE;
		default:
			return VNAT_ADDR_OTHER;
		}
	}
	if (ipv6_chk_addr_and_flags(net, a, NULL, true, 0, IFA_F_DADFAILED))
		return VNAT_ADDR_LOCAL;
	type = ipv6_addr_type(a);
	if (!(type & IPV6_ADDR_UNICAST) || (type & (IPV6_ADDR_LOOPBACK | IPV6_ADDR_MAPPED)))
		return VNAT_ADDR_OTHER;
	return VNAT_ADDR_REMOTE;
}
