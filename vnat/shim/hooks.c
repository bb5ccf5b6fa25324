// SPDX-License-Identifier: GPL-2.0
/*
 * The four IPv4 netfilter hooks of a namespace (paper 4.2) and what
 * translation needs of their packets: the headers, and routing.
 * vnat/translation.rs, vnat/ffi/skb.rs.
 */

#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <net/ip.h>
#include <net/route.h>

#include "shim.h"

/* Hook numbers as Rust knows them (vnat/mapping.rs, enum Hook). */
enum vnat_hook {
	VNAT_HOOK_PRE_ROUTING,	/* incoming DNAT */
	VNAT_HOOK_LOCAL_IN,	/* incoming SNAT */
	VNAT_HOOK_LOCAL_OUT,	/* outgoing DNAT */
	VNAT_HOOK_POST_ROUTING,	/* outgoing SNAT */
};

static unsigned int vnat_nf_hook(void *priv, struct sk_buff *skb,
				 const struct nf_hook_state *hs)
{
	const void *state = vnat_state(hs->net);

	if (unlikely(!state))
		return NF_ACCEPT;
	return vnat_rs_hook(state, (unsigned long)priv, skb);
}

/* DNAT runs where conntrack's DNAT would (before routing), SNAT where SNAT would. */
static const struct nf_hook_ops vnat_nf_ops[] = {
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_PRE_ROUTING,
	  .priority = NF_IP_PRI_NAT_DST, .priv = (void *)VNAT_HOOK_PRE_ROUTING },
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP_PRI_NAT_SRC, .priv = (void *)VNAT_HOOK_LOCAL_IN },
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP_PRI_NAT_DST, .priv = (void *)VNAT_HOOK_LOCAL_OUT },
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_POST_ROUTING,
	  .priority = NF_IP_PRI_NAT_SRC, .priv = (void *)VNAT_HOOK_POST_ROUTING },
};

int vnat_shim_hooks_register(struct net *net)
{
	return nf_register_net_hooks(net, vnat_nf_ops, ARRAY_SIZE(vnat_nf_ops));
}

void vnat_shim_hooks_unregister(struct net *net)
{
	nf_unregister_net_hooks(net, vnat_nf_ops, ARRAY_SIZE(vnat_nf_ops));
}

/*
 * Finds the TCP or UDP header of an IPv4 packet that is not a fragment and
 * makes the IP and transport headers linear (and, if @writable, writable).
 * Returns 0 and fills @p, or -ENOENT for a packet VNAT does not translate,
 * or -ENOMEM.
 */
int vnat_shim_pkt_parse(struct sk_buff *skb, struct vnat_pkt *p, bool writable)
{
	const struct iphdr *iph = ip_hdr(skb);
	unsigned int len = iph->ihl * 4;

	if (iph->protocol == IPPROTO_TCP)
		len += sizeof(struct tcphdr);
	else if (iph->protocol == IPPROTO_UDP)
		len += sizeof(struct udphdr);
	else
		return -ENOENT;
	if (ip_is_fragment(iph))
		return -ENOENT;
	if (writable) {
		if (skb_ensure_writable(skb, skb_network_offset(skb) + len))
			return -ENOMEM;
	} else if (!pskb_may_pull(skb, skb_network_offset(skb) + len)) {
		return -ENOENT;
	}
	p->hdr = skb_network_header(skb);
	p->len = len;
	p->partial = skb->ip_summed == CHECKSUM_PARTIAL;
	p->csum = skb->ip_summed == CHECKSUM_COMPLETE ? (u32 *)&skb->csum : NULL;
	return 0;
}

/*
 * PREROUTING: routes the packet as addressed to @daddr (its physical, local
 * destination), so that it is delivered locally after its destination has
 * been rewritten to the virtual one, which need not be local any more.
 * Called under RCU, as hooks are.
 */
int vnat_shim_route_local(struct sk_buff *skb, __be32 daddr)
{
	const struct iphdr *iph = ip_hdr(skb);

	if (skb_dst(skb))
		return 0;
	return ip_route_input_noref(skb, daddr, iph->saddr, ip4h_dscp(iph),
				    skb->dev) ? -EHOSTUNREACH : 0;
}

/* LOCAL_OUT: routes the packet again after its destination changed. */
int vnat_shim_reroute(struct net *net, struct sk_buff *skb)
{
	return ip_route_me_harder(net, skb->sk, skb, RTN_UNSPEC);
}
