// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of vnat.ko: only what Rust cannot reach on its own.
 *
 * - structures whose layout depends on the kernel configuration and that the
 *   kernel keeps pointers to for as long as they are registered (struct
 *   kprobe, struct kretprobe, struct nf_hook_ops, struct pernet_operations);
 * - static inline helpers (net_generic(), sock_net(), inet_sk(),
 *   regs_get_kernel_argument(), the sk_callback_lock dance);
 * - the procfs files under /proc/net/vnat/, whose callbacks receive a
 *   seq_file and forward to Rust.
 *
 * Every function here is a thin adapter: it extracts plain values and calls
 * into Rust (vnat_rs_*), or performs one kernel call on behalf of Rust
 * (vnat_shim_*). The policy lives in Rust. The prototypes Rust sees are in
 * vnat/ffi.rs; keep the two in sync.
 */

#include <linux/fdtable.h>
#include <linux/kprobes.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/proc_fs.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/inetdevice.h>
#include <net/inet_sock.h>
#include <net/ip.h>
#include <net/route.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/udp.h>

#include "shim.h"

/* ---- per network namespace state (pernet operations) --------------------- */

static unsigned int vnat_net_id __read_mostly;

struct vnat_net {
	void *state; /* Rust's NetState, or NULL while it is being set up. */
};

/* The namespace's Rust state (NULL while it is set up); for vnat/netlink.c too. */
void *vnat_state(const struct net *net)
{
	struct vnat_net *vn = net_generic(net, vnat_net_id);

	return READ_ONCE(vn->state);
}

static void vnat_track_existing(struct net *net);

static int __net_init vnat_net_init(struct net *net)
{
	struct vnat_net *vn = net_generic(net, vnat_net_id);
	void *state = vnat_rs_net_init(net);

	if (IS_ERR(state))
		return PTR_ERR(state);
	WRITE_ONCE(vn->state, state);
	/* Connections opened before insmod are virtual connections too (paper 4). */
	vnat_track_existing(net);
	return 0;
}

static void __net_exit vnat_net_exit(struct net *net)
{
	struct vnat_net *vn = net_generic(net, vnat_net_id);
	void *state = vn->state;

	WRITE_ONCE(vn->state, NULL);
	vnat_rs_net_exit(state);
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

/* ---- netfilter hooks (paper section 4.2) ----------------------------------- */

/* Hook numbers as Rust knows them (vnat/translation.rs, enum Hook). */
enum {
	VNAT_HOOK_PRE_ROUTING,	/* incoming DNAT */
	VNAT_HOOK_LOCAL_IN,	/* incoming SNAT */
	VNAT_HOOK_LOCAL_OUT,	/* outgoing DNAT */
	VNAT_HOOK_POST_ROUTING,	/* outgoing SNAT */
};

static unsigned int vnat_nf_hook(void *priv, struct sk_buff *skb,
				 const struct nf_hook_state *hs)
{
	void *state = vnat_state(hs->net);

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

/* ---- counters: per CPU, per namespace and in total -------------------------- */

/*
 * A hook counts every packet it sees: plain per-CPU adds, no atomic and no
 * shared cache line, as for the kernel's own SNMP counters. Readers sum.
 */
static DEFINE_PER_CPU(u64 [VNAT_MAX_COUNTERS], vnat_totals);

void *vnat_shim_counters_alloc(void)
{
	return (void __force *)alloc_percpu(u64 [VNAT_MAX_COUNTERS]);
}

void vnat_shim_counters_free(void *c)
{
	free_percpu((u64 (__percpu *)[VNAT_MAX_COUNTERS])(void __percpu __force *)c);
}

/* Adds @n to counter @i of namespace counters @c and of the totals. */
void vnat_shim_count(void *c, unsigned int i, u64 n)
{
	u64 (__percpu *ns)[VNAT_MAX_COUNTERS] = (void __percpu __force *)c;

	if (i >= VNAT_MAX_COUNTERS)
		return;
	this_cpu_add((*ns)[i], n);
	this_cpu_add(vnat_totals[i], n);
}

/* Counter @i of namespace counters @c, or of the totals if @c is NULL. */
u64 vnat_shim_counter_sum(void *c, unsigned int i)
{
	u64 (__percpu *ns)[VNAT_MAX_COUNTERS] = (void __percpu __force *)c;
	u64 sum = 0;
	int cpu;

	if (i >= VNAT_MAX_COUNTERS)
		return 0;
	for_each_possible_cpu(cpu)
		sum += c ? (*per_cpu_ptr(ns, cpu))[i] : per_cpu(vnat_totals, cpu)[i];
	return sum;
}

/* ---- socket tracking: kprobes on connect, accept, close (paper 4.1) ------ */

/* Event numbers as Rust knows them (vnat/interception.rs, enum Event). */
enum { VNAT_EV_CONNECT, VNAT_EV_ACCEPT, VNAT_EV_CLOSE, VNAT_EV_EXISTING };

static void vnat_sock_event(unsigned int event, struct sock *sk, int pid)
{
	const struct inet_sock *inet;
	void *state;

	/*
	 * IPv4 TCP and UDP sockets of user space only: vnatd's own are kernel
	 * sockets.
	 */
	if (!sk || sk->sk_family != AF_INET || sk->sk_kern_sock ||
	    (sk->sk_protocol != IPPROTO_TCP && sk->sk_protocol != IPPROTO_UDP))
		return;
	state = vnat_state(sock_net(sk));
	if (!state)
		return;
	inet = inet_sk(sk);
	vnat_rs_sock_event(state, event, sk, sk->sk_protocol, inet->inet_saddr,
			   inet->inet_sport, inet->inet_daddr, inet->inet_dport, pid);
}

/* Records the connections of @net that exist already (their owner unknown: pid 0). */
static void vnat_track_existing(struct net *net)
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

/* tcp_v4_destroy_sock(sk): the connection is over (also after close() or exit). */
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

/* udp_disconnect(sk), udp_destroy_sock(sk): a UDP socket's peer is gone. */
static int vnat_kp_udp_close(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 0);

	if (sk->sk_protocol == IPPROTO_UDP)
		vnat_sock_event(VNAT_EV_CLOSE, sk, 0);
	return 0;
}

/*
 * udp_connect(sk, ...): a UDP socket gets a peer. Its endpoints are known
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

	if (regs_return_value(regs) == 0 && sk->sk_protocol == IPPROTO_UDP &&
	    inet_sk(sk)->inet_dport)
		vnat_sock_event(VNAT_EV_CONNECT, sk, task_tgid_nr(current));
	return 0;
}

#define VNAT_KPROBE(var, symbol, handler) \
	static struct kprobe var = { .symbol_name = symbol, .pre_handler = handler }

VNAT_KPROBE(vnat_kp_tcp_connect, "tcp_connect", vnat_kp_connect);
VNAT_KPROBE(vnat_kp_tcp_destroy, "tcp_v4_destroy_sock", vnat_kp_close);
VNAT_KPROBE(vnat_kp_inet_accept, "__inet_accept", vnat_kp_accept);
VNAT_KPROBE(vnat_kp_udp_disconnect, "udp_disconnect", vnat_kp_udp_close);
VNAT_KPROBE(vnat_kp_udp_destroy, "udp_destroy_sock", vnat_kp_udp_close);

static struct kprobe *vnat_kprobes[] = {
	&vnat_kp_tcp_connect, &vnat_kp_inet_accept, &vnat_kp_tcp_destroy,
	&vnat_kp_udp_disconnect, &vnat_kp_udp_destroy,
};

static struct kretprobe vnat_krp_udp_connect = {
	.kp.symbol_name = "udp_connect",
	.entry_handler = vnat_krp_udp_connect_entry,
	.handler = vnat_krp_udp_connect_ret,
	.data_size = sizeof(struct sock *),
	.maxactive = 64,
};

int vnat_shim_kprobes_register(void)
{
	int err = register_kprobes(vnat_kprobes, ARRAY_SIZE(vnat_kprobes));

	if (err)
		return err;
	err = register_kretprobe(&vnat_krp_udp_connect);
	if (err)
		unregister_kprobes(vnat_kprobes, ARRAY_SIZE(vnat_kprobes));
	return err;
}

void vnat_shim_kprobes_unregister(void)
{
	unregister_kretprobe(&vnat_krp_udp_connect);
	unregister_kprobes(vnat_kprobes, ARRAY_SIZE(vnat_kprobes));
}

/* Probe hits missed (a probe hit while another ran on the same CPU). */
unsigned long vnat_shim_kprobes_missed(void)
{
	unsigned long n = vnat_krp_udp_connect.kp.nmissed +
			  vnat_krp_udp_connect.nmissed;
	int i;

	for (i = 0; i < ARRAY_SIZE(vnat_kprobes); i++)
		n += vnat_kprobes[i]->nmissed;
	return n;
}

/* ---- vnatd: waking the daemon thread when its sockets have work ----------- */

/*
 * One waker per vnatd thread. The listening socket and every accepted socket
 * point at it through sk_user_data; their sk_data_ready and sk_state_change
 * callbacks wake the thread. Children that are still in the accept queue
 * inherit both from the listener and die with it when the listener is
 * released; accepted ones are detached before they are released.
 */
struct vnat_waker {
	struct task_struct *task;
	atomic_t pending;
	void (*data_ready)(struct sock *sk);
	void (*state_change)(struct sock *sk);
};

static void vnat_waker_kick(struct sock *sk, bool data)
{
	struct vnat_waker *w;

	read_lock_bh(&sk->sk_callback_lock);
	w = sk->sk_user_data;
	if (w) {
		if (data)
			w->data_ready(sk);
		else
			w->state_change(sk);
		atomic_set(&w->pending, 1);
		wake_up_process(w->task);
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

static void vnat_sk_data_ready(struct sock *sk)
{
	vnat_waker_kick(sk, true);
}

static void vnat_sk_state_change(struct sock *sk)
{
	vnat_waker_kick(sk, false);
}

struct vnat_waker *vnat_shim_waker_new(void)
{
	return kzalloc(sizeof(struct vnat_waker), GFP_KERNEL);
}

void vnat_shim_waker_set_task(struct vnat_waker *w, struct task_struct *task)
{
	w->task = task;
}

void vnat_shim_waker_free(struct vnat_waker *w)
{
	kfree(w);
}

/* Wakes @w's thread, from any context, once its task is set. */
void vnat_shim_waker_kick(struct vnat_waker *w)
{
	atomic_set(&w->pending, 1);
	if (READ_ONCE(w->task))
		wake_up_process(w->task);
}

/* Makes @sock wake @w's thread. The first socket watched provides the
 * original callbacks (all TCP sockets share them). */
void vnat_shim_sock_watch(struct socket *sock, struct vnat_waker *w)
{
	struct sock *sk = sock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	if (!w->data_ready) {
		w->data_ready = sk->sk_data_ready;
		w->state_change = sk->sk_state_change;
	}
	sk->sk_user_data = w;
	sk->sk_data_ready = vnat_sk_data_ready;
	sk->sk_state_change = vnat_sk_state_change;
	write_unlock_bh(&sk->sk_callback_lock);
	/* Data may have arrived before the callbacks were in place. */
	atomic_set(&w->pending, 1);
}

/* Undoes vnat_shim_sock_watch(); once it returns, no callback uses @w for @sock. */
void vnat_shim_sock_unwatch(struct socket *sock, struct vnat_waker *w)
{
	struct sock *sk = sock->sk;

	write_lock_bh(&sk->sk_callback_lock);
	if (sk->sk_user_data == w) {
		sk->sk_user_data = NULL;
		sk->sk_data_ready = w->data_ready;
		sk->sk_state_change = w->state_change;
	}
	write_unlock_bh(&sk->sk_callback_lock);
}

/* Sleeps until a watched socket has work, @timeout jiffies pass, or the
 * thread is asked to stop. Returns whether work is pending. */
bool vnat_shim_waker_wait(struct vnat_waker *w, long timeout)
{
	set_current_state(TASK_INTERRUPTIBLE);
	if (!atomic_read(&w->pending) && !kthread_should_stop())
		schedule_timeout(timeout);
	__set_current_state(TASK_RUNNING);
	return atomic_xchg(&w->pending, 0);
}

void vnat_shim_sock_reuseaddr(struct socket *sock)
{
	sock_set_reuseaddr(sock->sk);
}

/* Starts a non-blocking connect of @sock to @daddr:@port (network order). */
int vnat_shim_sock_connect(struct socket *sock, __be32 daddr, __be16 port)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = daddr,
		.sin_port = port,
	};
	int err = kernel_connect(sock, (struct sockaddr_unsized *)&sin, sizeof(sin),
				 O_NONBLOCK);

	return err == -EINPROGRESS ? 0 : err;
}

/* Whether @sock's connection is established. */
bool vnat_shim_sock_established(struct socket *sock)
{
	return READ_ONCE(sock->sk->sk_state) == TCP_ESTABLISHED;
}

/* Whether the peer has closed or reset @sock. */
bool vnat_shim_sock_dead(struct socket *sock)
{
	struct sock *sk = sock->sk;

	return READ_ONCE(sk->sk_err) || (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) ||
	       READ_ONCE(sk->sk_state) == TCP_CLOSE;
}

/* ---- /proc/net/vnat/{stats,connections} ------------------------------------ */

/* File numbers as Rust knows them (vnat/netns.rs, enum ProcFile). */
enum { VNAT_PROC_STATS, VNAT_PROC_CONNECTIONS };

static int vnat_proc_show(struct seq_file *m, void *v, unsigned int file)
{
	void *state = vnat_state(seq_file_single_net(m));

	if (state)
		vnat_rs_proc_show(state, file, m);
	return 0;
}

static int vnat_proc_stats(struct seq_file *m, void *v)
{
	return vnat_proc_show(m, v, VNAT_PROC_STATS);
}

static int vnat_proc_connections(struct seq_file *m, void *v)
{
	return vnat_proc_show(m, v, VNAT_PROC_CONNECTIONS);
}

/* /proc/net/vnat/control: commands, for CAP_NET_ADMIN in the namespace. */
static int vnat_proc_control_show(struct seq_file *m, void *v)
{
	seq_puts(m, "migrate OLD_ADDR NEW_ADDR\n");
	return 0;
}

static int vnat_proc_control_write(struct file *file, char *buf, size_t size)
{
	struct net *net = seq_file_single_net(file->private_data);
	void *state = vnat_state(net);

	if (!ns_capable(net->user_ns, CAP_NET_ADMIN))
		return -EPERM;
	if (!state)
		return -ENODEV;
	return vnat_rs_control(state, buf, size);
}

int vnat_shim_proc_register(struct net *net)
{
	struct proc_dir_entry *dir = proc_net_mkdir(net, "vnat", net->proc_net);

	if (!dir)
		return -ENOMEM;
	if (!proc_create_net_single("stats", 0444, dir, vnat_proc_stats, NULL) ||
	    !proc_create_net_single("connections", 0444, dir, vnat_proc_connections,
				    NULL) ||
	    !proc_create_net_single_write("control", 0600, dir, vnat_proc_control_show,
					  vnat_proc_control_write, NULL)) {
		remove_proc_subtree("vnat", net->proc_net);
		return -ENOMEM;
	}
	return 0;
}

void vnat_shim_proc_unregister(struct net *net)
{
	remove_proc_subtree("vnat", net->proc_net);
}

/* ---- translation: packet access (paper 4.2) ------------------------------- */

/*
 * Finds the TCP or UDP header of an IPv4 packet that is not a fragment and
 * makes IP and transport headers writable. Returns 0 and fills @p, or
 * -ENOENT for a packet VNAT does not translate, or an errno.
 */
int vnat_shim_pkt_parse(struct sk_buff *skb, struct vnat_pkt *p, bool writable)
{
	const struct iphdr *iph = ip_hdr(skb);
	unsigned int ihl = iph->ihl * 4;
	unsigned int l4len;

	if (iph->protocol == IPPROTO_TCP)
		l4len = sizeof(struct tcphdr);
	else if (iph->protocol == IPPROTO_UDP)
		l4len = sizeof(struct udphdr);
	else
		return -ENOENT;
	if (ip_is_fragment(iph))
		return -ENOENT;
	if (writable) {
		if (skb_ensure_writable(skb, skb_network_offset(skb) + ihl + l4len))
			return -ENOMEM;
	} else if (!pskb_may_pull(skb, skb_network_offset(skb) + ihl + l4len)) {
		return -ENOENT;
	}
	p->iph = skb_network_header(skb);
	p->l4 = p->iph + ihl;
	p->proto = ((struct iphdr *)p->iph)->protocol;
	p->partial = skb->ip_summed == CHECKSUM_PARTIAL;
	p->complete = skb->ip_summed == CHECKSUM_COMPLETE;
	return 0;
}

/* CHECKSUM_COMPLETE: the transport checksum field went from @from to @to. */
void vnat_shim_pkt_csum_field_changed(struct sk_buff *skb, __sum16 from, __sum16 to)
{
	if (skb->ip_summed == CHECKSUM_COMPLETE)
		skb->csum = csum_add(csum_sub(skb->csum, (__force __wsum)from),
				     (__force __wsum)to);
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

/* ---- sockets of migrated connections ------------------------------------- */

/*
 * A connection whose local physical address differs from its virtual one
 * sends from an address the host may no longer have: IP_TRANSPARENT lets
 * its route lookups use it as source, as for TPROXY, until POSTROUTING puts
 * the physical address on the wire.
 */
void vnat_shim_sock_set_transparent(void *sk, bool on)
{
	inet_assign_bit(TRANSPARENT, (struct sock *)sk, on);
	/* Drop the cached route, which was looked up with the old rules. */
	sk_dst_reset((struct sock *)sk);
}

/*
 * After a move, a TCP connection may sit in exponential retransmission
 * backoff, its next try seconds away, and what it sent while its address
 * was gone is lost. Once its rules are live on both ends, retransmit at the
 * next tick rather than after another minimum RTO (200 ms: that was the
 * data gap of a move); the timer's own doubling then takes over.
 */
void vnat_shim_sock_kick_retransmit(void *ptr)
{
	struct sock *sk = ptr;
	struct inet_connection_sock *icsk = inet_csk(sk);

	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	/* Process context: the socket spinlock is also taken in softirq. */
	local_bh_disable();
	bh_lock_sock(sk);
	if (sk->sk_state != TCP_CLOSE && sk->sk_state != TCP_LISTEN &&
	    icsk->icsk_pending == ICSK_TIME_RETRANS) {
		/* The backoff was the move's doing, not congestion's. */
		icsk->icsk_backoff = 0;
		icsk->icsk_rto = __tcp_set_rto(tcp_sk(sk));
		tcp_bound_rto(sk);
		inet_csk_reset_xmit_timer(sk, ICSK_TIME_RETRANS, 1, TCP_RTO_MAX);
	}
	bh_unlock_sock(sk);
	local_bh_enable();
}

/*
 * The source address the host would use now to send to @daddr (network
 * byte order), or 0 if there is no route.
 */
__be32 vnat_shim_route_source(struct net *net, __be32 daddr)
{
	struct flowi4 fl4 = { .daddr = daddr };
	struct rtable *rt;

	rt = ip_route_output_key(net, &fl4);
	if (IS_ERR(rt))
		return 0;
	ip_rt_put(rt);
	return fl4.saddr;
}

/*
 * Aborts a connection as `ss --kill` does (sock_diag destroy): a TCP one
 * sends a reset and its owner sees ECONNABORTED. Process context; the
 * caller holds a reference.
 */
void vnat_shim_sock_destroy(void *ptr)
{
	struct sock *sk = ptr;

	if (sk->sk_prot->diag_destroy)
		sk->sk_prot->diag_destroy(sk, ECONNABORTED);
}

/*
 * The UDP socket that would receive datagrams from @raddr:@rport to
 * @laddr:@lport, with a reference, or NULL. Kernel sockets are not offered.
 */
void *vnat_shim_udp_lookup(struct net *net, __be32 laddr, __be16 lport,
			   __be32 raddr, __be16 rport)
{
	struct sock *sk;

	rcu_read_lock();
	sk = __udp4_lib_lookup(net, raddr, rport, laddr, lport, 0, 0, NULL);
	if (sk && (sk->sk_kern_sock || !refcount_inc_not_zero(&sk->sk_refcnt)))
		sk = NULL;
	rcu_read_unlock();
	return sk;
}

/* ---- connection migration helpers (paper 3.3.1) --------------------------- */

/*
 * Turns the keepalive of @sk on or off as SO_KEEPALIVE does; returns
 * whether it was on. Process context; the caller holds a reference.
 */
bool vnat_shim_sock_keepalive(void *ptr, bool on)
{
	struct sock *sk = ptr;
	bool was;

	lock_sock(sk);
	was = sock_flag(sk, SOCK_KEEPOPEN);
	if (was != on) {
		if (sk->sk_prot->keepalive)
			sk->sk_prot->keepalive(sk, on);
		sock_valbool_flag(sk, SOCK_KEEPOPEN, on);
	}
	release_sock(sk);
	return was;
}

static int vnat_fd_is(const void *file, struct file *f, unsigned int fd)
{
	return f == file;
}

/*
 * Sends @sig to every process that has @sk's file open (the subprocess
 * that handles a connection, paper 3.3.1), at most @max of them; writes
 * their global pid numbers to @pids and returns how many. The file pointer
 * is only compared with those in the fd tables, never dereferenced, so
 * no reference on it is needed. Process context; the caller holds a
 * reference on @sk.
 */
int vnat_shim_signal_holders(void *ptr, int sig, struct vnat_process *procs,
			     int max)
{
	struct pid *found[VNAT_MAX_HOLDERS];
	struct sock *sk = ptr;
	struct task_struct *p;
	const void *file;
	int n = 0, i;

	max = min(max, VNAT_MAX_HOLDERS);
	read_lock_bh(&sk->sk_callback_lock);
	file = sk->sk_socket ? READ_ONCE(sk->sk_socket->file) : NULL;
	read_unlock_bh(&sk->sk_callback_lock);
	if (!file)
		return 0;
	rcu_read_lock();
	for_each_process(p) {
		if (n == max)
			break;
		if (p->flags & PF_KTHREAD)
			continue;
		task_lock(p);
		if (p->files && iterate_fd(p->files, 0, vnat_fd_is, file)) {
			procs[n].start_boottime = p->start_boottime;
			found[n++] = get_pid(task_tgid(p));
		}
		task_unlock(p);
	}
	rcu_read_unlock();
	for (i = 0; i < n; i++) {
		kill_pid(found[i], sig, 1);
		procs[i].nr = pid_nr(found[i]);
		put_pid(found[i]);
	}
	return n;
}

/*
 * Sends @sig to the process of global pid number @nr if it is still the one
 * that started at @start_boottime: once it is gone, its number may be given
 * to another process, which is left alone.
 */
void vnat_shim_signal_process(int nr, u64 start_boottime, int sig)
{
	struct task_struct *p;

	rcu_read_lock();
	p = pid_task(find_pid_ns(nr, &init_pid_ns), PIDTYPE_TGID);
	if (p && p->start_boottime == start_boottime)
		kill_pid(task_tgid(p), sig, 1);
	rcu_read_unlock();
}

void vnat_shim_sock_hold(void *sk)
{
	sock_hold((struct sock *)sk);
}

void vnat_shim_sock_put(void *sk)
{
	sock_put((struct sock *)sk);
}

/*
 * Whether @ptr, on which the caller holds a reference, was destroyed: its
 * owner let go of it (SOCK_DEAD) and, for TCP, the connection is over.
 * inet_csk_destroy_sock() and sk_common_release() get there before (TCP) or
 * right after (UDP) they call the destroy function the close probe watches.
 */
bool vnat_shim_sock_destroyed(void *ptr)
{
	struct sock *sk = ptr;

	if (!sock_flag(sk, SOCK_DEAD))
		return false;
	return sk->sk_protocol != IPPROTO_TCP ||
	       READ_ONCE(sk->sk_state) == TCP_CLOSE;
}

/* ---- automatic resume: address changes (paper 3.3.1) --------------------- */

static int vnat_inetaddr_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct in_ifaddr *ifa = ptr;
	struct net_device *dev = ifa->ifa_dev->dev;
	void *state;

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

/* ---- small accessors ------------------------------------------------------- */

/* The inode number of @net, as `ip netns identify` and /proc/<pid>/ns/net show it. */
unsigned int vnat_shim_net_inum(const struct net *net)
{
	return net->ns.inum;
}
