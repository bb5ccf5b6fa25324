// SPDX-License-Identifier: GPL-2.0
/*
 * The four netfilter hooks of a namespace (paper 4.2), for IPv4 and IPv6,
 * and what translation needs of their packets: the headers, and routing.
 * vnat/translation.rs, vnat/ffi/skb.rs.
 */

#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <net/netfilter/ipv4/nf_defrag_ipv4.h>
#include <net/netfilter/ipv6/nf_defrag_ipv6.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/ip.h>
#include <net/ip6_route.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <net/ipv6.h>
#include <net/route.h>

#include "shim.h"

/* Hook numbers as Rust knows them (vnat/mapping.rs, enum Hook). */
enum vnat_hook {
	VNAT_HOOK_PRE_ROUTING,	/* incoming DNAT */
	VNAT_HOOK_LOCAL_IN,	/* incoming SNAT */
	VNAT_HOOK_LOCAL_OUT,	/* outgoing DNAT */
	VNAT_HOOK_POST_ROUTING,	/* outgoing SNAT */
};

/*
 * The packet's family, as the stack set it (__ip_local_out(),
 * __ip6_local_out(), the receive path): the hook's. A raw socket's
 * IP_HDRINCL packet may carry another version in its header than its
 * family: vnat_l4() refuses those.
 */
static bool vnat_is_ipv6(const struct sk_buff *skb)
{
	return skb->protocol == htons(ETH_P_IPV6);
}

/*
 * LOCAL_IN, after translation: a TCP segment that early demux (the stack's,
 * or vnat_shim_demux() at PREROUTING) gave a socket keeps it only if the
 * segment's endpoints are now that socket's. TCP takes such a socket
 * without looking again, and the endpoints may have changed since: a rules
 * table published between the two hooks (a receive batch passes
 * PREROUTING before any of it reaches LOCAL_IN; a queue in INPUT holds
 * packets), or the stack's early demux having looked the segment up by
 * the endpoints it had before LOCAL_IN rewrote its source. As
 * nf_nat_ipv4_local_in() does: the socket is let go, and TCP looks the
 * segment up by what it carries; and as there, a transparent socket (one
 * TPROXY assigned, which need not match) is left alone. The segment's TCP
 * header is linear: early demux pulled it.
 */
static void vnat_demux_check(struct sk_buff *skb)
{
	const struct sock *sk = skb->sk;
	const struct tcphdr *th;
	bool same;

	if (!sk || skb->destructor != sock_edemux || inet_sk_transparent(sk))
		return;
	if (vnat_is_ipv6(skb)) {
		const struct ipv6hdr *h = ipv6_hdr(skb);

		if (h->nexthdr != IPPROTO_TCP)
			return;
		th = (const struct tcphdr *)skb_transport_header(skb);
		same = ipv6_addr_equal(&h->saddr, &sk->sk_v6_daddr) &&
		       ipv6_addr_equal(&h->daddr, &sk->sk_v6_rcv_saddr);
	} else {
		const struct iphdr *h = ip_hdr(skb);

		if (h->protocol != IPPROTO_TCP)
			return;
		th = (const struct tcphdr *)skb_transport_header(skb);
		same = h->saddr == sk->sk_daddr && h->daddr == sk->sk_rcv_saddr;
	}
	if (!same || th->source != sk->sk_dport || th->dest != htons(sk->sk_num))
		skb_orphan(skb);
}

static unsigned int vnat_nf_hook(void *priv, struct sk_buff *skb,
				 const struct nf_hook_state *hs)
{
	const void *state = vnat_state(hs->net);
	unsigned int verdict;

	if (unlikely(!state))
		return NF_ACCEPT;
	verdict = vnat_rs_hook(state, (unsigned long)priv, skb);
	if ((unsigned long)priv == VNAT_HOOK_LOCAL_IN && verdict == NF_ACCEPT)
		vnat_demux_check(skb);
	return verdict;
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
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_PRE_ROUTING,
	  .priority = NF_IP6_PRI_NAT_DST, .priv = (void *)VNAT_HOOK_PRE_ROUTING },
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_IN,
	  .priority = NF_IP6_PRI_NAT_SRC, .priv = (void *)VNAT_HOOK_LOCAL_IN },
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = NF_IP6_PRI_NAT_DST, .priv = (void *)VNAT_HOOK_LOCAL_OUT },
	{ .hook = vnat_nf_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_POST_ROUTING,
	  .priority = NF_IP6_PRI_NAT_SRC, .priv = (void *)VNAT_HOOK_POST_ROUTING },
};

/*
 * With the hooks, defragmentation before them (at priority -400, as for
 * conntrack and NAT): a datagram larger than the path MTU to a moved
 * connection arrives in fragments, whose ports only the first shows and
 * which are reassembled only after PREROUTING otherwise, too late for its
 * destination to become the virtual one. The stack fragments what it sends
 * after POSTROUTING: outgoing datagrams are whole at the hooks.
 */
int vnat_shim_hooks_register(struct net *net)
{
	int err = nf_defrag_ipv4_enable(net);

	if (err)
		return err;
	err = nf_defrag_ipv6_enable(net);
	if (err)
		goto v4;
	err = nf_register_net_hooks(net, vnat_nf_ops, ARRAY_SIZE(vnat_nf_ops));
	if (err)
		goto v6;
	return 0;
v6:
	nf_defrag_ipv6_disable(net);
v4:
	nf_defrag_ipv4_disable(net);
	return err;
}

void vnat_shim_hooks_unregister(struct net *net)
{
	nf_unregister_net_hooks(net, vnat_nf_ops, ARRAY_SIZE(vnat_nf_ops));
	nf_defrag_ipv6_disable(net);
	nf_defrag_ipv4_disable(net);
}

/*
 * The offset after the IP header (and, over IPv6, the extension headers
 * vnat/packet.rs skips) of a packet that is not a fragment, and its
 * protocol; -EPROTONOSUPPORT for an IPv4 fragment of TCP or UDP (which
 * translation cannot read), -ENOENT for any other packet.
 */
static int vnat_l4(struct sk_buff *skb, u8 *proto)
{
	if (ip_hdr(skb)->version != (vnat_is_ipv6(skb) ? 6 : 4))
		return -ENOENT;
	if (vnat_is_ipv6(skb)) {
		__be16 frag_off = 0;
		u8 next = ipv6_hdr(skb)->nexthdr;
		int off = ipv6_skip_exthdr(skb, skb_network_offset(skb) + sizeof(struct ipv6hdr),
					   &next, &frag_off);

		/*
		 * A fragment that is not the first is refused here; a first (or
		 * atomic) fragment by vnat/packet.rs, which stops at the
		 * fragment header.
		 */
		if (off < 0 || frag_off || ipv6_ext_hdr(next))
			return -ENOENT;
		*proto = next;
		return off - skb_network_offset(skb);
	} else {
		const struct iphdr *iph = ip_hdr(skb);

		if (ip_is_fragment(iph))
			return iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP ?
				-EPROTONOSUPPORT : -ENOENT;
		*proto = iph->protocol;
		return iph->ihl * 4;
	}
}

/*
 * Whether the packet, whose ICMP or ICMPv6 header is at @off, is an error
 * (vnat/packet.rs, IcmpError, reads which) of at most 576 bytes (IPv4) or
 * 1,280 (IPv6), as routers send them.
 */
static bool vnat_icmp_error(struct sk_buff *skb, int off, u8 proto)
{
	u8 type, *tp;

	if (proto != (vnat_is_ipv6(skb) ? IPPROTO_ICMPV6 : IPPROTO_ICMP) ||
	    skb->len - skb_network_offset(skb) > (vnat_is_ipv6(skb) ? IPV6_MIN_MTU : 576))
		return false;
	tp = skb_header_pointer(skb, skb_network_offset(skb) + off, 1, &type);
	if (!tp)
		return false;
	if (vnat_is_ipv6(skb))
		return *tp >= ICMPV6_DEST_UNREACH && *tp <= ICMPV6_PARAMPROB;
	return *tp == ICMP_DEST_UNREACH || *tp == ICMP_TIME_EXCEEDED || *tp == ICMP_PARAMETERPROB;
}

/* Where @len bytes from the IP header are, and the checksum state. */
static void vnat_pkt_fill(struct sk_buff *skb, struct vnat_pkt *p, u32 len)
{
	p->hdr = skb_network_header(skb);
	p->len = len;
	p->partial = skb->ip_summed == CHECKSUM_PARTIAL;
	p->csum = skb->ip_summed == CHECKSUM_COMPLETE ? (u32 *)&skb->csum : NULL;
}

/*
 * Finds the TCP or UDP header of an IPv4 or IPv6 packet that is not a
 * fragment and makes the IP (with IPv6 extension headers) and transport
 * headers linear: returns VNAT_PKT_TRANSPORT and fills @p
 * (vnat_shim_pkt_writable() makes them writable). With @icmp, an ICMP or
 * ICMPv6 error (the quote of the packet it is about follows the headers) is
 * made all linear and writable: VNAT_PKT_ICMP_ERROR, and @p is all of it.
 * Else -ENOENT for a packet that is neither, -EPROTONOSUPPORT for a TCP or
 * UDP one that VNAT cannot translate, or -ENOMEM.
 */
int vnat_shim_pkt_parse(struct sk_buff *skb, struct vnat_pkt *p, bool icmp)
{
	int len, kind = VNAT_PKT_TRANSPORT;
	bool writable = false;
	u8 proto;

	len = vnat_l4(skb, &proto);
	if (len < 0)
		return len;
	if (proto == IPPROTO_TCP) {
		len += sizeof(struct tcphdr);
	} else if (proto == IPPROTO_UDP) {
		len += sizeof(struct udphdr);
	} else if (icmp && vnat_icmp_error(skb, len, proto)) {
		kind = VNAT_PKT_ICMP_ERROR;
		len = skb->len - skb_network_offset(skb);
		writable = true;
	} else {
		return -ENOENT;
	}
	if (writable) {
		if (skb_ensure_writable(skb, skb_network_offset(skb) + len))
			return -ENOMEM;
	} else if (!pskb_may_pull(skb, skb_network_offset(skb) + len)) {
		return -ENOENT;
	}
	vnat_pkt_fill(skb, p, len);
	return kind;
}

/*
 * The @len bytes from the IP header on, which vnat_shim_pkt_parse() found
 * and made linear, made writable: fills @p as it does; -ENOMEM (also for
 * more bytes than the packet has). Parsing again is not needed.
 */
int vnat_shim_pkt_writable(struct sk_buff *skb, u32 len, struct vnat_pkt *p)
{
	if (skb_ensure_writable(skb, skb_network_offset(skb) + len))
		return -ENOMEM;
	vnat_pkt_fill(skb, p, len);
	return 0;
}

/*
 * After an ICMP error's quote changed (and its checksum with it): the
 * receive path checks the checksum again, in software, instead of
 * trusting a sum the device computed over the bytes as they came.
 */
void vnat_shim_csum_none(struct sk_buff *skb)
{
	skb->ip_summed = CHECKSUM_NONE;
}

/*
 * PREROUTING: routes the packet by its destination, its physical and
 * local one (it is rewritten after this), so that it is delivered locally
 * after its destination has become the virtual one, which need not be
 * local any more. Called under RCU, as hooks are.
 */
int vnat_shim_route_local(struct sk_buff *skb)
{
	const struct iphdr *iph;

	if (skb_dst(skb))
		return 0;
	if (vnat_is_ipv6(skb)) {
		ip6_route_input(skb);
		return skb_dst(skb) && !skb_dst(skb)->error ? 0 : -EHOSTUNREACH;
	}
	iph = ip_hdr(skb);
	return ip_route_input_noref(skb, iph->daddr, iph->saddr, ip4h_dscp(iph),
				    skb->dev) ? -EHOSTUNREACH : 0;
}

/*
 * PREROUTING, for an incoming TCP segment of a translated connection, whose
 * socket has the endpoints @src:@sport -> @dst:@dport (the segment's once
 * PREROUTING and LOCAL_IN rewrote it): what early demux
 * (tcp_v4_early_demux(), tcp_v6_early_demux()) does after PREROUTING,
 * done now, by the endpoints the segment is about to get. The socket goes
 * with the packet, and the input route it keeps for its segments, if that
 * is still valid on this device, becomes the packet's: the stack neither
 * routes the segment nor looks its socket up again. Without this the
 * stack's early demux looks it up by the endpoints it has before LOCAL_IN
 * (not the socket's, at a peer of a moved end) and finds nothing, and the
 * segment is routed, by its physical destination (vnat_shim_route_local()):
 * two lookups per segment that an untranslated connection does not pay.
 * Under the same sysctls as early demux; not on an L3 master's slave
 * device, whose packets go through the master's receive path again.
 * Returns 0 if the packet has its socket and route, else -ENOENT (nothing
 * changed). Called from the hook, under RCU.
 */
int vnat_shim_demux(struct sk_buff *skb, const struct in6_addr *src, __be16 sport,
		    const struct in6_addr *dst, __be16 dport)
{
	struct dst_entry *rx;
	struct net *net;
	struct sock *sk;
	bool v6 = vnat_is_ipv6(skb);

	if (skb->sk || skb_dst(skb) || !skb->dev || skb->pkt_type != PACKET_HOST ||
	    netif_is_l3_slave(skb->dev))
		return -ENOENT;
	net = dev_net_rcu(skb->dev);
	if (!READ_ONCE(net->ipv4.sysctl_ip_early_demux) ||
	    !READ_ONCE(net->ipv4.sysctl_tcp_early_demux))
		return -ENOENT;
	if (v6)
		sk = __inet6_lookup_established(net, src, sport, dst, ntohs(dport),
						inet6_iif(skb), inet6_sdif(skb));
	else if (ipv6_addr_v4mapped(src) && ipv6_addr_v4mapped(dst))
		sk = __inet_lookup_established(net, src->s6_addr32[3], sport, dst->s6_addr32[3],
					       ntohs(dport), skb->skb_iif, inet_sdif(skb));
	else
		return -ENOENT;
	if (!sk)
		return -ENOENT;
	if (!sk_fullsock(sk))
		goto put;
	rx = rcu_dereference(sk->sk_rx_dst);
	if (rx)
		rx = dst_check(rx, v6 ? sk->sk_rx_dst_cookie : 0);
	if (!rx || sk->sk_rx_dst_ifindex != skb->skb_iif)
		goto put;
	skb->sk = sk;
	skb->destructor = sock_edemux;
	skb_dst_set_noref(skb, rx);
	return 0;
put:
	sock_gen_put(sk);
	return -ENOENT;
}

/* LOCAL_OUT: routes the packet again after its destination changed. */
int vnat_shim_reroute(struct net *net, struct sk_buff *skb)
{
	if (vnat_is_ipv6(skb))
		return ip6_route_me_harder(net, skb->sk, skb);
	return ip_route_me_harder(net, skb->sk, skb, RTN_UNSPEC);
}
