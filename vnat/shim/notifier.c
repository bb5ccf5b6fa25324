// SPDX-License-Identifier: GPL-2.0
/*
 * Automatic suspend and resume (paper 3.3.1): the address notifier, each
 * namespace's route notifier, and the system sleep notifier.
 * vnat/ffi.rs (registration), vnat/migration.rs (vnat_rs_addr_event,
 * vnat_rs_route_event, vnat_rs_sleep), pernet.c (the route notifier's life).
 */

#include <linux/delay.h>
#include <linux/inetdevice.h>
#include <linux/netdevice.h>
#include <linux/slab.h>
#include <linux/suspend.h>
#include <net/addrconf.h>
#include <net/fib_notifier.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>

#include "shim.h"
#include "trace.h"

static int vnat_inetaddr_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct in_ifaddr *ifa = ptr;
	struct net_device *dev = ifa->ifa_dev->dev;
	struct in6_addr addr;
	const void *state;

	if (event != NETDEV_UP && event != NETDEV_DOWN)
		return NOTIFY_DONE;
	if (dev->flags & IFF_LOOPBACK)
		return NOTIFY_DONE;
	state = vnat_state(dev_net(dev));
	if (!state)
		return NOTIFY_DONE;
	ipv6_addr_set_v4mapped(ifa->ifa_local, &addr);
	trace_vnat_address(dev_net(dev)->ns.inum, event == NETDEV_UP, &addr);
	vnat_rs_addr_event(state, event == NETDEV_UP, &addr);
	return NOTIFY_DONE;
}

static struct notifier_block vnat_inetaddr_nb = {
	.notifier_call = vnat_inetaddr_event,
};

/*
 * The same for IPv6 addresses (under RTNL, from the DAD worker, or in
 * softirq for an address a router advertisement made: atomic).
 * Link-local addresses are not where a connection moves, nor used by
 * connections VNAT moves (their peers are on the link). A new
 * address that is tentative (duplicate address detection, as for every
 * SLAAC address) is not usable yet: not reported. Its local route comes
 * once the detection is over, and the route notifier moves the lost
 * addresses' connections then (vnat_rs_route_event()).
 */
static int vnat_inet6addr_event(struct notifier_block *nb, unsigned long event,
				void *ptr)
{
	struct inet6_ifaddr *ifa = ptr;
	struct net_device *dev = ifa->idev->dev;
	const void *state;

	if (event != NETDEV_UP && event != NETDEV_DOWN)
		return NOTIFY_DONE;
	if ((dev->flags & IFF_LOOPBACK) || (ipv6_addr_type(&ifa->addr) & IPV6_ADDR_LINKLOCAL))
		return NOTIFY_DONE;
	if (event == NETDEV_UP && (ifa->flags & IFA_F_TENTATIVE) && !(ifa->flags & IFA_F_OPTIMISTIC))
		return NOTIFY_DONE;
	state = vnat_state(dev_net(dev));
	if (state) {
		trace_vnat_address(dev_net(dev)->ns.inum, event == NETDEV_UP, &ifa->addr);
		vnat_rs_addr_event(state, event == NETDEV_UP, &ifa->addr);
	}
	return NOTIFY_DONE;
}

static struct notifier_block vnat_inet6addr_nb = {
	.notifier_call = vnat_inet6addr_event,
};

int vnat_shim_inetaddr_register(void)
{
	int err = register_inetaddr_notifier(&vnat_inetaddr_nb);

	if (err)
		return err;
	err = register_inet6addr_notifier(&vnat_inet6addr_nb);
	if (err)
		unregister_inetaddr_notifier(&vnat_inetaddr_nb);
	return err;
}

void vnat_shim_inetaddr_unregister(void)
{
	unregister_inet6addr_notifier(&vnat_inet6addr_nb);
	unregister_inetaddr_notifier(&vnat_inetaddr_nb);
}

/* The FIB notifier chain is per namespace: one of these in each. */
struct vnat_route_notifier {
	struct notifier_block nb;
	struct net *net;
};

/* Atomic context (the chain is an atomic notifier chain, under RCU). */
static int vnat_route_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct vnat_route_notifier *rn = container_of(nb, struct vnat_route_notifier, nb);
	struct fib_notifier_info *info = ptr;
	const void *state;

	if (info->family != AF_INET && info->family != AF_INET6)
		return NOTIFY_DONE;
	switch (event) {
	case FIB_EVENT_ENTRY_REPLACE:
	case FIB_EVENT_ENTRY_APPEND:
	case FIB_EVENT_ENTRY_ADD:
	case FIB_EVENT_ENTRY_DEL:
	case FIB_EVENT_RULE_ADD:
	case FIB_EVENT_RULE_DEL:
	case FIB_EVENT_NH_ADD:
	case FIB_EVENT_NH_DEL:
		break;
	default:
		return NOTIFY_DONE;
	}
	state = vnat_state(rn->net);
	if (state) {
		trace_vnat_route(rn->net->ns.inum);
		vnat_rs_route_event(state);
	}
	return NOTIFY_DONE;
}

/*
 * Registers @net's route notifier; NULL if it could not be (the routes
 * kept changing while the kernel replayed them to it, or no memory): the
 * namespace then moves connections on address changes only.
 */
struct vnat_route_notifier *vnat_route_notifier_register(struct net *net)
{
	struct vnat_route_notifier *rn = kzalloc(sizeof(*rn), GFP_KERNEL);
	int err;

	if (!rn)
		return NULL;
	rn->nb.notifier_call = vnat_route_event;
	rn->net = net;
	err = register_fib_notifier(net, &rn->nb, NULL, NULL);
	if (err) {
		pr_warn("vnat: netns %u: no route notifier (%d): connections move on address changes only\n",
			net->ns.inum, err);
		kfree(rn);
		return NULL;
	}
	return rn;
}

/* Unregisters it (waiting for running callbacks) and frees it. */
void vnat_route_notifier_unregister(struct vnat_route_notifier *rn)
{
	if (!rn)
		return;
	unregister_fib_notifier(rn->net, &rn->nb);
	kfree(rn);
}

/* What vnat_rs_sleep() is asked (vnat/migration.rs, SleepAsk). */
enum { VNAT_SLEEP, VNAT_WAKE, VNAT_SETTLED };

/* How long the sleep notifier waits for the peers to answer the suspensions. */
#define VNAT_SLEEP_WAIT_MS 3000

/* Asks every namespace; true if any said yes (settled: all did). */
static bool vnat_sleep_each(unsigned int ask)
{
	bool any = false, all = true;
	struct net *net;

	rcu_read_lock();
	for_each_net_rcu(net) {
		const void *state = vnat_state(net);
		bool yes;

		if (!state)
			continue;
		yes = vnat_rs_sleep(state, ask);
		any |= yes;
		all &= yes;
	}
	rcu_read_unlock();
	return ask == VNAT_SETTLED ? all : any;
}

/*
 * Before the system sleeps, every namespace's connections are suspended
 * (VNAT_SUS to their peers), and the notifier waits, boundedly, for the
 * answers: the network may be gone once tasks are frozen. On wake (or a
 * sleep that failed), they resume.
 */
static int vnat_pm_event(struct notifier_block *nb, unsigned long event, void *unused)
{
	unsigned long end;

	switch (event) {
	case PM_SUSPEND_PREPARE:
	case PM_HIBERNATION_PREPARE:
		if (!vnat_sleep_each(VNAT_SLEEP))
			return NOTIFY_DONE;
		end = jiffies + msecs_to_jiffies(VNAT_SLEEP_WAIT_MS);
		while (!vnat_sleep_each(VNAT_SETTLED) && time_before(jiffies, end))
			msleep(20);
		return NOTIFY_DONE;
	case PM_POST_SUSPEND:
	case PM_POST_HIBERNATION:
		vnat_sleep_each(VNAT_WAKE);
		return NOTIFY_DONE;
	default:
		return NOTIFY_DONE;
	}
}

static struct notifier_block vnat_pm_nb = {
	.notifier_call = vnat_pm_event,
};

int vnat_shim_pm_register(void)
{
	return register_pm_notifier(&vnat_pm_nb);
}

void vnat_shim_pm_unregister(void)
{
	unregister_pm_notifier(&vnat_pm_nb);
}
