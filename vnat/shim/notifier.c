// SPDX-License-Identifier: GPL-2.0
/*
 * Automatic resume (paper 3.3.1): the address notifier.
 * vnat/ffi.rs (registration), vnat/migration.rs (vnat_rs_addr_event).
 */

#include <linux/inetdevice.h>
#include <linux/netdevice.h>

#include "shim.h"

static int vnat_inetaddr_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct in_ifaddr *ifa = ptr;
	struct net_device *dev = ifa->ifa_dev->dev;
	const void *state;

	if (event != NETDEV_UP && event != NETDEV_DOWN)
		return NOTIFY_DONE;
	if (dev->flags & IFF_LOOPBACK)
		return NOTIFY_DONE;
	state = vnat_state(dev_net(dev));
	if (state)
		vnat_rs_addr_event(state, event == NETDEV_UP, ifa->ifa_local);
	return NOTIFY_DONE;
}

static struct notifier_block vnat_inetaddr_nb = {
	.notifier_call = vnat_inetaddr_event,
};

int vnat_shim_inetaddr_register(void)
{
	return register_inetaddr_notifier(&vnat_inetaddr_nb);
}

void vnat_shim_inetaddr_unregister(void)
{
	unregister_inetaddr_notifier(&vnat_inetaddr_nb);
}
