// SPDX-License-Identifier: GPL-2.0
/*
 * User sockets as VNAT moves them: references, IP_TRANSPARENT, the
 * retransmission kick, aborting, the UDP lookup of a peer's flow, whether
 * TCP has a connection, and the migration helpers' keepalive and signals
 * (paper 3.3.1).
 * vnat/ffi/sock.rs.
 */

#include <linux/fdtable.h>
#include <linux/inetdevice.h>
#include <linux/sched/signal.h>
#include <net/inet6_hashtables.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/udp.h>

#include "shim.h"

/*
 * A connection whose local physical address differs from its virtual one
 * sends from an address the host may no longer have: IP_TRANSPARENT lets
 * its route lookups use it as source, as for TPROXY, until POSTROUTING puts
 * the physical address on the wire.
 */
void vnat_shim_sock_set_transparent(struct sock *sk, bool on)
{
	inet_assign_bit(TRANSPARENT, sk, on);
	/* Drop the cached route, which was looked up with the old rules. */
	sk_dst_reset(sk);
}

/*
 * After a move, a TCP connection may sit in exponential retransmission
 * backoff, its next try seconds away, and what it sent while its address
 * was gone is lost. Once its rules are live on both ends, retransmit at the
 * next tick rather than after another minimum RTO (200 ms: that was the
 * data gap of a move); the timer's own doubling then takes over. A
 * connection with nothing in flight whose sends the move refused waits
 * for a window probe instead: that one comes at the next tick too.
 *
 * And send an ACK (it says nothing new, as a delayed ACK would): a peer
 * that validates the new path (behind a NAT, which forwards its packets
 * only once ours have opened the mapping) waits for one of our packets,
 * and a connection with nothing in flight would otherwise send none until
 * its application writes. Skipped while the owner is in a socket call,
 * which sends what it has itself.
 */
void vnat_shim_sock_kick_retransmit(struct sock *sk)
{
	struct inet_connection_sock *icsk = inet_csk(sk);

	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	/* Process context: the socket spinlock is also taken in softirq. */
	local_bh_disable();
	bh_lock_sock(sk);
	if (sk->sk_state != TCP_CLOSE && sk->sk_state != TCP_LISTEN &&
	    (icsk->icsk_pending == ICSK_TIME_RETRANS ||
	     icsk->icsk_pending == ICSK_TIME_PROBE0)) {
		int what = icsk->icsk_pending;

		/* The backoff was the move's doing, not congestion's. */
		icsk->icsk_backoff = 0;
		if (what == ICSK_TIME_RETRANS) {
			icsk->icsk_rto = __tcp_set_rto(tcp_sk(sk));
			tcp_bound_rto(sk);
		} else {
			/*
			 * Nothing in flight: data held back by the move (each
			 * send refused while the connection resumed) or a
			 * window update lost in it waits for the next probe,
			 * after its backoff or half a second after a send the
			 * move refused (TCP_RESOURCE_PROBE_INTERVAL).
			 */
			WRITE_ONCE(icsk->icsk_probes_out, 0);
		}
		inet_csk_reset_xmit_timer(sk, what, 1, TCP_RTO_MAX);
	}
	if (((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_FIN_WAIT1 | TCPF_FIN_WAIT2 |
				    TCPF_CLOSE_WAIT | TCPF_CLOSING | TCPF_LAST_ACK)) &&
	    !sock_owned_by_user(sk)) {
		tcp_mstamp_refresh_inline(tcp_sk(sk));
		__tcp_send_ack(sk, tcp_sk(sk)->rcv_nxt, 0);
	}
	bh_unlock_sock(sk);
	local_bh_enable();
}

/*
 * An initial sequence number of an established TCP connection, from what
 * the socket has sent or received since (a NAT changes addresses and
 * ports, not sequence numbers): with @ours, this end's, for a socket that
 * connected (its SYN is in bytes_acked: snd_una - bytes_acked); else the
 * peer's (rcv_nxt - bytes_received - 1, the FIN counted in both). False if
 * not TCP or not established. Sleeps: takes the socket's lock, under which
 * the counters change together.
 */
bool vnat_shim_tcp_isn(struct sock *sk, bool ours, u32 *isn)
{
	struct tcp_sock *tp = tcp_sk(sk);
	bool ok;

	if (sk->sk_protocol != IPPROTO_TCP)
		return false;
	lock_sock(sk);
	ok = sk->sk_state == TCP_ESTABLISHED;
	if (ok)
		*isn = ours ? tp->snd_una - (u32)tp->bytes_acked :
			      tp->rcv_nxt - (u32)tp->bytes_received - 1;
	release_sock(sk);
	return ok;
}

/*
 * Aborts a connection as `ss --kill` does (sock_diag destroy): a TCP one
 * sends a reset and its owner sees ECONNABORTED. Process context; the
 * caller holds a reference.
 */
void vnat_shim_sock_destroy(struct sock *sk)
{

	if (sk->sk_prot->diag_destroy)
		sk->sk_prot->diag_destroy(sk, ECONNABORTED);
}

/*
 * The UDP socket that would receive datagrams from @raddr:@rport to
 * @laddr:@lport (addresses of one family, IPv4 ones v4-mapped), with a
 * reference, or NULL. Kernel sockets are not offered.
 */
struct sock *vnat_shim_udp_lookup(struct net *net, const struct in6_addr *laddr, __be16 lport,
				  const struct in6_addr *raddr, __be16 rport)
{
	struct sock *sk;

	rcu_read_lock();
	if (ipv6_addr_v4mapped(laddr))
		sk = __udp4_lib_lookup(net, raddr->s6_addr32[3], rport, laddr->s6_addr32[3],
				       lport, 0, 0, NULL);
	else
		sk = __udp6_lib_lookup(net, raddr, rport, laddr, lport, 0, 0, NULL);
	if (sk && (sk->sk_kern_sock || !refcount_inc_not_zero(&sk->sk_refcnt)))
		sk = NULL;
	rcu_read_unlock();
	return sk;
}

/*
 * Whether @net's TCP has the connection from @raddr:@rport to @laddr:@lport
 * (addresses of one family, IPv4 ones v4-mapped) in its established hash:
 * half open (a request), established (accepted or not yet) or in
 * TIME_WAIT. Process context.
 */
bool vnat_shim_tcp_exists(struct net *net, const struct in6_addr *laddr, __be16 lport,
			  const struct in6_addr *raddr, __be16 rport)
{
	struct sock *sk;

	rcu_read_lock();
	if (ipv6_addr_v4mapped(laddr))
		sk = __inet_lookup_established(net, raddr->s6_addr32[3], rport,
					       laddr->s6_addr32[3], ntohs(lport), 0, 0);
	else
		sk = __inet6_lookup_established(net, raddr, rport, laddr, ntohs(lport), 0, 0);
	rcu_read_unlock();
	if (!sk)
		return false;
	sock_gen_put(sk);
	return true;
}

/*
 * Turns the keepalive of @sk on or off as SO_KEEPALIVE does; returns
 * whether it was on. Process context; the caller holds a reference.
 */
bool vnat_shim_sock_keepalive(struct sock *sk, bool on)
{
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
int vnat_shim_signal_holders(struct sock *sk, int sig, struct vnat_process *procs,
			     int max)
{
	struct pid *found[VNAT_MAX_HOLDERS];
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

void vnat_shim_sock_hold(struct sock *sk)
{
	sock_hold(sk);
}

void vnat_shim_sock_put(struct sock *sk)
{
	sock_put(sk);
}

/* The kernel uid of @sk's owner (its creator's fsuid); any context. */
u32 vnat_shim_sock_uid(const struct sock *sk)
{
	return __kuid_val(sk_uid(sk));
}

/*
 * Whether @sk, on which the caller holds a reference, was destroyed: its
 * owner let go of it (SOCK_DEAD) and, for TCP, the connection is over.
 * inet_csk_destroy_sock() and sk_common_release() get there before (TCP) or
 * right after (UDP) they call the destroy function the close probe watches.
 */
bool vnat_shim_sock_destroyed(struct sock *sk)
{

	if (!sock_flag(sk, SOCK_DEAD))
		return false;
	return sk->sk_protocol != IPPROTO_TCP ||
	       READ_ONCE(sk->sk_state) == TCP_CLOSE;
}

/*
 * Location hiding (vnat/location_hiding.rs): what a TCP packet from
 * @saddr:@sport to @daddr:@dport (network order) would find on @net.
 * Returns VNAT_TCP_CONN for a socket of that 4-tuple (established, request
 * or TIME_WAIT); else, for a SYN (@syn), VNAT_TCP_LISTENER if a listener
 * bound to exactly @daddr takes it, which is then made IP_TRANSPARENT: its
 * SYN-ACK and its children's packets leave from @daddr, an address the host
 * may no longer have (POSTROUTING puts the physical one on the wire);
 * VNAT_TCP_NONE otherwise. @skb is an incoming packet at PREROUTING or
 * LOCAL_IN (its device and namespace are the lookup's); called from the
 * hook, under RCU.
 */
int vnat_shim_tcp_lookup(struct sk_buff *skb, const struct in6_addr *src, __be16 sport,
			 const struct in6_addr *dst, __be16 dport, bool syn)
{
	__be32 saddr = src->s6_addr32[3], daddr = dst->s6_addr32[3];
	struct net *net;
	struct sock *sk;
	int dif;

	/* Location hiding is of IPv4 connections only. */
	if (!ipv6_addr_v4mapped(src) || !ipv6_addr_v4mapped(dst))
		return VNAT_TCP_NONE;
	if (!skb->dev)
		return VNAT_TCP_NONE;
	net = dev_net(skb->dev);
	dif = skb->dev->ifindex;

	sk = __inet_lookup_established(net, saddr, sport, daddr, ntohs(dport), dif, 0);
	if (sk) {
		sock_gen_put(sk);
		return VNAT_TCP_CONN;
	}
	if (!syn)
		return VNAT_TCP_NONE;
	sk = __inet_lookup_listener(net, NULL, 0, saddr, sport, daddr, ntohs(dport), dif, 0);
	if (!sk || sk->sk_kern_sock || sk->sk_rcv_saddr != daddr)
		return VNAT_TCP_NONE;
	if (!inet_test_bit(TRANSPARENT, sk))
		inet_set_bit(TRANSPARENT, sk);
	return VNAT_TCP_LISTENER;
}
