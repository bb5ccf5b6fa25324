// SPDX-License-Identifier: GPL-2.0
/*
 * Each network namespace's entry (pernet operations): the Rust state the
 * callbacks of every other file find through vnat_state(). vnat/pernet.rs
 * says what an entry holds.
 */

#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "shim.h"

static unsigned int vnat_net_id __read_mostly;

struct vnat_net {
	const void *state;	/* Rust's NetState, or NULL outside init..exit. */
	void *entry;		/* What owns it (vnat/pernet.rs). */
	struct vnat_route_notifier *routes;	/* notifier.c; NULL if none */
};

/* The state of @net for a callback, or NULL while it is set up or torn down. */
const void *vnat_state(const struct net *net)
{
	struct vnat_net *vn = net_generic(net, vnat_net_id);

	return READ_ONCE(vn->state);
}

static int __net_init vnat_net_init(struct net *net)
{
	struct vnat_net *vn = net_generic(net, vnat_net_id);
	const void *state = NULL;
	void *entry = vnat_rs_net_init(net, &state);

	if (IS_ERR(entry))
		return PTR_ERR(entry);
	vn->entry = entry;
	WRITE_ONCE(vn->state, state);
	vn->routes = vnat_route_notifier_register(net);
	/* Connections opened before insmod are virtual connections too (paper 4). */
	vnat_track_existing(net);
	return 0;
}

static void __net_exit vnat_net_exit(struct net *net)
{
	struct vnat_net *vn = net_generic(net, vnat_net_id);

	WRITE_ONCE(vn->state, NULL);
	vnat_route_notifier_unregister(vn->routes);
	vnat_rs_net_exit(vn->entry);
}

static struct pernet_operations vnat_net_ops = {
	.init = vnat_net_init,
	.exit = vnat_net_exit,
	.id = &vnat_net_id,
	.size = sizeof(struct vnat_net),
};

int vnat_shim_pernet_register(void)
{
	return register_pernet_subsys(&vnat_net_ops);
}

void vnat_shim_pernet_unregister(void)
{
	unregister_pernet_subsys(&vnat_net_ops);
}
