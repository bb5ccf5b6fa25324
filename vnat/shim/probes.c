// SPDX-License-Identifier: GPL-2.0
/*
 * Socket tracking (paper 4.1): kprobes on connect, accept and close of
 * TCP and UDP sockets, and the walk of connections open already; and on
 * bind, for location hiding.
 * vnat/interception.rs.
 */

#include <linux/kprobes.h>
#include <net/inet_sock.h>
#include <net/inet_hashtables.h>
#include <net/ipv6.h>
#include <net/tcp.h>
#include <net/udp.h>

#include "shim.h"

/* Event numbers as Rust knows them (vnat/interception.rs, enum SockEvent). */
enum vnat_ev { VNAT_EV_CONNECT, VNAT_EV_ACCEPT, VNAT_EV_CLOSE, VNAT_EV_EXISTING };

/*
 * Whether @sk's connection is IPv4 on the wire: an AF_INET socket, or an
 * AF_INET6 one whose peer is a v4-mapped address (a dual-stack socket, as
 * a server listening on [::] accepts from an IPv4 client, or a client that
 * connects to ::ffff:a.b.c.d). Such a socket sends and receives through the
 * IPv4 stack with its IPv4 fields (inet_saddr, inet_daddr) set, and is
 * found in the same hash tables as an AF_INET one.
 */
static bool vnat_sock_is_ipv4(const struct sock *sk)
{
	return sk->sk_family == AF_INET ||
	       (sk->sk_family == AF_INET6 && ipv6_addr_v4mapped(&sk->sk_v6_daddr));
}

/* Whether @sk's connection is IPv6 on the wire (not v4-mapped). */
static bool vnat_sock_is_ipv6(const struct sock *sk)
{
	return sk->sk_family == AF_INET6 && !ipv6_addr_v4mapped(&sk->sk_v6_daddr);
}

static void vnat_sock_event(unsigned int event, struct sock *sk, int pid)
{
	const struct inet_sock *inet;
	struct in6_addr saddr, daddr;
	const void *state;

	/*
	 * TCP and UDP connections of user space only: vnatd's own are kernel
	 * sockets. Any socket's close, though: an unconnected AF_INET6 socket
	 * may have flows recorded on its peers' updates, which go with it.
	 */
	if (!sk || sk->sk_kern_sock ||
	    (sk->sk_protocol != IPPROTO_TCP && sk->sk_protocol != IPPROTO_UDP))
		return;
	state = vnat_state(sock_net(sk));
	if (!state)
		return;
	inet = inet_sk(sk);
	if (vnat_sock_is_ipv4(sk)) {
		ipv6_addr_set_v4mapped(inet->inet_saddr, &saddr);
		ipv6_addr_set_v4mapped(inet->inet_daddr, &daddr);
	} else if (vnat_sock_is_ipv6(sk)) {
		saddr = sk->sk_v6_rcv_saddr;
		daddr = sk->sk_v6_daddr;
	} else {
		/* Another family: only its close means something. */
		if (event != VNAT_EV_CLOSE)
			return;
		saddr = in6addr_any;
		daddr = in6addr_any;
	}
	vnat_rs_sock_event(state, event, sk, sk->sk_protocol, &saddr, inet->inet_sport, &daddr,
			   inet->inet_dport, pid);
}

void vnat_track_existing(struct net *net)
{
	struct inet_hashinfo *hinfo = net->ipv4.tcp_death_row.hashinfo;
	unsigned int i;

	for (i = 0; i <= hinfo->ehash_mask; i++) {
		struct inet_ehash_bucket *head = &hinfo->ehash[i];
		struct hlist_nulls_node *node;
		struct sock *sk;

		if (hlist_nulls_empty(&head->chain))
			continue;
		spin_lock_bh(inet_ehash_lockp(hinfo, i));
		sk_nulls_for_each(sk, node, &head->chain) {
			if (!net_eq(sock_net(sk), net) || !sk_fullsock(sk) ||
			    sk->sk_state == TCP_CLOSE || sk->sk_state == TCP_LISTEN)
				continue;
			vnat_sock_event(VNAT_EV_EXISTING, sk, 0);
		}
		spin_unlock_bh(inet_ehash_lockp(hinfo, i));
	}
}

/* tcp_connect(sk): every active open, blocking or not, once the 4-tuple is set. */
static int vnat_kp_connect(struct kprobe *p, struct pt_regs *regs)
{
	vnat_sock_event(VNAT_EV_CONNECT,
			(struct sock *)regs_get_kernel_argument(regs, 0),
			task_tgid_nr(current));
	return 0;
}

/*
 * tcp_v4_destroy_sock(sk): the connection is over (also after close() or
 * exit); IPv6 TCP sockets have the same destroy function.
 */
static int vnat_kp_close(struct kprobe *p, struct pt_regs *regs)
{
	vnat_sock_event(VNAT_EV_CLOSE,
			(struct sock *)regs_get_kernel_argument(regs, 0), 0);
	return 0;
}

/*
 * __inet_accept(sock, newsock, newsk): every accept(), accept4() and io_uring
 * accept of an inet socket grafts its child here, after the blocking wait.
 */
static int vnat_kp_accept(struct kprobe *p, struct pt_regs *regs)
{
	vnat_sock_event(VNAT_EV_ACCEPT,
			(struct sock *)regs_get_kernel_argument(regs, 2),
			task_tgid_nr(current));
	return 0;
}

/*
 * udp_disconnect(sk), udp_destroy_sock(sk), udpv6_destroy_sock(sk): a UDP
 * socket's peer is gone.
 */
static int vnat_kp_udp_close(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 0);

	if (sk->sk_protocol == IPPROTO_UDP)
		vnat_sock_event(VNAT_EV_CLOSE, sk, 0);
	return 0;
}

/*
 * udp_connect(sk, ...), udpv6_connect(sk, ...): a UDP socket gets a peer
 * (an AF_INET6 one counts when the peer is v4-mapped). Its endpoints are known
 * only once it returns 0, so a kretprobe keeps the socket from entry to
 * return. A connect on a thread that sleeps for the socket lock holds an
 * instance meanwhile; when all are taken the event is missed and counted.
 */
static int vnat_krp_udp_connect_entry(struct kretprobe_instance *ri,
				      struct pt_regs *regs)
{
	*(struct sock **)ri->data = (struct sock *)regs_get_kernel_argument(regs, 0);
	return 0;
}

static int vnat_krp_udp_connect_ret(struct kretprobe_instance *ri,
				    struct pt_regs *regs)
{
	struct sock *sk = *(struct sock **)ri->data;

	if (regs_return_value(regs) != 0 || sk->sk_protocol != IPPROTO_UDP ||
	    !inet_sk(sk)->inet_dport)
		return 0;
	/* A new connect replaces the record, whatever its family. */
	vnat_sock_event(VNAT_EV_CONNECT, sk, task_tgid_nr(current));
	return 0;
}

/*
 * __inet_bind(sk, uaddr, addr_len, flags): a TCP socket that binds a
 * virtual address of this host that moved away, while location hiding is
 * on, may (vnat/location_hiding.rs), and so may a TCP or UDP socket that
 * binds the local virtual address of a connection a process brings from
 * another host (vnat/process_migration.rs): it is made IP_TRANSPARENT,
 * which lets the bind take an address the host does not have and the
 * socket's route lookups use it as source.
 */
static int vnat_kp_bind(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 0);
	const struct sockaddr_in *addr = (const void *)regs_get_kernel_argument(regs, 1);
	int len = (int)regs_get_kernel_argument(regs, 2);
	const void *state;

	if (!sk || !addr || len < (int)sizeof(*addr) || addr->sin_family != AF_INET ||
	    !addr->sin_addr.s_addr || sk->sk_family != AF_INET || sk->sk_kern_sock ||
	    (sk->sk_protocol != IPPROTO_TCP && sk->sk_protocol != IPPROTO_UDP))
		return 0;
	state = vnat_state(sock_net(sk));
	if (state && vnat_rs_bind_virtual(state, sk->sk_protocol, addr->sin_addr.s_addr))
		inet_set_bit(TRANSPARENT, sk);
	return 0;
}

#define VNAT_KPROBE(var, symbol, handler) \
	static struct kprobe var = { .symbol_name = symbol, .pre_handler = handler }

VNAT_KPROBE(vnat_kp_tcp_connect, "tcp_connect", vnat_kp_connect);
VNAT_KPROBE(vnat_kp_tcp_destroy, "tcp_v4_destroy_sock", vnat_kp_close);
VNAT_KPROBE(vnat_kp_inet_accept, "__inet_accept", vnat_kp_accept);
VNAT_KPROBE(vnat_kp_udp_disconnect, "udp_disconnect", vnat_kp_udp_close);
VNAT_KPROBE(vnat_kp_udp_destroy, "udp_destroy_sock", vnat_kp_udp_close);
VNAT_KPROBE(vnat_kp_inet_bind, "__inet_bind", vnat_kp_bind);

#if IS_BUILTIN(CONFIG_IPV6)
/* Dual-stack sockets (vnat_sock_is_ipv4()): IPv6's own UDP functions. */
VNAT_KPROBE(vnat_kp_udpv6_destroy, "udpv6_destroy_sock", vnat_kp_udp_close);
#endif

static struct kprobe *vnat_kprobes[] = {
	&vnat_kp_tcp_connect, &vnat_kp_inet_accept, &vnat_kp_tcp_destroy,
	&vnat_kp_udp_disconnect, &vnat_kp_udp_destroy, &vnat_kp_inet_bind,
#if IS_BUILTIN(CONFIG_IPV6)
	&vnat_kp_udpv6_destroy,
#endif
};

#define VNAT_KRETPROBE_UDP_CONNECT(symbol)                         \
	{                                                          \
		.kp.symbol_name = symbol,                          \
		.entry_handler = vnat_krp_udp_connect_entry,       \
		.handler = vnat_krp_udp_connect_ret,               \
		.data_size = sizeof(struct sock *),                \
		.maxactive = 64,                                   \
	}

static struct kretprobe vnat_krp_udp_connect[] = {
	VNAT_KRETPROBE_UDP_CONNECT("udp_connect"),
#if IS_BUILTIN(CONFIG_IPV6)
	VNAT_KRETPROBE_UDP_CONNECT("udpv6_connect"),
#endif
};

static struct kretprobe *vnat_kretprobes[] = {
	&vnat_krp_udp_connect[0],
#if IS_BUILTIN(CONFIG_IPV6)
	&vnat_krp_udp_connect[1],
#endif
};

int vnat_shim_kprobes_register(void)
{
	int err = register_kprobes(vnat_kprobes, ARRAY_SIZE(vnat_kprobes));

	if (err)
		return err;
	err = register_kretprobes(vnat_kretprobes, ARRAY_SIZE(vnat_kretprobes));
	if (err)
		unregister_kprobes(vnat_kprobes, ARRAY_SIZE(vnat_kprobes));
	return err;
}

void vnat_shim_kprobes_unregister(void)
{
	unregister_kretprobes(vnat_kretprobes, ARRAY_SIZE(vnat_kretprobes));
	unregister_kprobes(vnat_kprobes, ARRAY_SIZE(vnat_kprobes));
}

/* Probe hits missed (a probe hit while another ran on the same CPU). */
unsigned long vnat_shim_kprobes_missed(void)
{
	unsigned long n = 0;
	int i;

	for (i = 0; i < ARRAY_SIZE(vnat_kretprobes); i++)
		n += vnat_kretprobes[i]->kp.nmissed + vnat_kretprobes[i]->nmissed;
	for (i = 0; i < ARRAY_SIZE(vnat_kprobes); i++)
		n += vnat_kprobes[i]->nmissed;
	return n;
}
