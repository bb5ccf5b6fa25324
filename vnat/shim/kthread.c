// SPDX-License-Identifier: GPL-2.0
/*
 * What vnatd's thread needs of C: the waker its sockets' callbacks and
 * the requests kick, and its kernel sockets' static inline helpers.
 * vnat/ffi/waker.rs, vnatd_kthread/socket.rs.
 */

#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "shim.h"

/*
 * One waker per vnatd thread. The listening socket and every accepted socket
 * point at it through sk_user_data; their sk_data_ready and sk_state_change
 * callbacks wake the thread. Children that are still in the accept queue
 * inherit both from the listener and die with it when the listener is
 * released; accepted ones are detached before they are released.
 *
 * Every watch holds a reference, as does the waker's owner: a watch that
 * is never undone (a leaked Rust guard) keeps the waker alive rather than
 * leaving a socket that points at freed memory.
 */
struct vnat_waker {
	refcount_t ref;
	struct task_struct *task;
	atomic_t pending;
	/* vnat_shim_waker_kick_soon()'s; shut down when the owner lets go. */
	struct timer_list soon;
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
		struct task_struct *task = READ_ONCE(w->task);

		atomic_set(&w->pending, 1);
		if (task)
			wake_up_process(task);
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

static void vnat_waker_soon(struct timer_list *t);

struct vnat_waker *vnat_shim_waker_new(void)
{
	struct vnat_waker *w = kzalloc(sizeof(*w), GFP_KERNEL);

	if (w) {
		refcount_set(&w->ref, 1);
		timer_setup(&w->soon, vnat_waker_soon, 0);
	}
	return w;
}

static void vnat_waker_put(struct vnat_waker *w)
{
	if (!refcount_dec_and_test(&w->ref))
		return;
	if (w->task)
		put_task_struct(w->task);
	kfree(w);
}

/*
 * Sets the task @w wakes, once, with a reference of its own: a kick after
 * the thread ended wakes an exited task, not freed memory.
 */
void vnat_shim_waker_set_task(struct vnat_waker *w, struct task_struct *task)
{
	get_task_struct(task);
	if (cmpxchg(&w->task, NULL, task))
		put_task_struct(task);
}

/*
 * The owner lets go (process context); the waker goes with the last watch.
 * Its timer is shut down first: once this returns, the timer neither runs
 * nor can be armed again.
 */
void vnat_shim_waker_free(struct vnat_waker *w)
{
	timer_shutdown_sync(&w->soon);
	vnat_waker_put(w);
}

/* Wakes @w's thread, from any context, once its task is set. */
void vnat_shim_waker_kick(struct vnat_waker *w)
{
	struct task_struct *task = READ_ONCE(w->task);

	atomic_set(&w->pending, 1);
	if (task)
		wake_up_process(task);
}

static void vnat_waker_soon(struct timer_list *t)
{
	struct vnat_waker *w = timer_container_of(w, t, soon);

	vnat_shim_waker_kick(w);
}

/*
 * Wakes @w's thread at the next tick (within one jiffy), from any context:
 * the kicks of a tick's worth of events, one wake-up.
 */
void vnat_shim_waker_kick_soon(struct vnat_waker *w)
{
	timer_reduce(&w->soon, jiffies + 1);
}

/* Makes @sock wake @w's thread. The first socket watched provides the
 * original callbacks (all TCP sockets share them). */
void vnat_shim_sock_watch(struct socket *sock, struct vnat_waker *w)
{
	struct sock *sk = sock->sk;

	refcount_inc(&w->ref);
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
	bool watched;

	write_lock_bh(&sk->sk_callback_lock);
	watched = sk->sk_user_data == w;
	if (watched) {
		sk->sk_user_data = NULL;
		sk->sk_data_ready = w->data_ready;
		sk->sk_state_change = w->state_change;
	}
	write_unlock_bh(&sk->sk_callback_lock);
	if (watched)
		vnat_waker_put(w);
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

/*
 * Makes @sock, an unbound AF_INET6 socket, take IPv4 too (v4-mapped), as
 * IPV6_V6ONLY 0 does, whatever net.ipv6.bindv6only says.
 */
void vnat_shim_sock_dual_stack(struct socket *sock)
{
	lock_sock(sock->sk);
	sock->sk->sk_ipv6only = false;
	release_sock(sock->sk);
}

/*
 * Fixes @sock's send and receive buffers at @bytes each (as SO_SNDBUF and
 * SO_RCVBUF would, so no autotuning grows them): what a client that does
 * not read, or sends faster than vnatd reads, can hold of the host's memory.
 */
void vnat_shim_sock_limit_buffers(struct socket *sock, int bytes)
{
	struct sock *sk = sock->sk;

	sock_set_rcvbuf(sk, bytes);
	lock_sock(sk);
	sk->sk_userlocks |= SOCK_SNDBUF_LOCK;
	WRITE_ONCE(sk->sk_sndbuf, max_t(int, bytes * 2, SOCK_MIN_SNDBUF));
	sk->sk_write_space(sk);
	release_sock(sk);
}

/* Whether @sock's connection is established. */
bool vnat_shim_sock_established(struct socket *sock)
{
	return READ_ONCE(sock->sk->sk_state) == TCP_ESTABLISHED;
}

/*
 * Whether @sock's connect is still under way (SYN sent, no answer yet):
 * once it is not, what the peer sent is read, even after its FIN or reset.
 */
bool vnat_shim_sock_connecting(struct socket *sock)
{
	return READ_ONCE(sock->sk->sk_state) == TCP_SYN_SENT;
}

/*
 * Whether @sock's TCP connection has nothing to read and everything it
 * sent acknowledged; false if not TCP. Sleeps: takes the socket's lock.
 */
bool vnat_shim_sock_quiet(struct socket *sock)
{
	struct sock *sk = sock->sk;
	bool quiet;

	if (sk->sk_protocol != IPPROTO_TCP)
		return false;
	lock_sock(sk);
	quiet = skb_queue_empty(&sk->sk_receive_queue) &&
		tcp_sk(sk)->snd_una == tcp_sk(sk)->write_seq;
	release_sock(sk);
	return quiet;
}

/*
 * The bytes of @sock's stream that TCP put on the wire at least once (the
 * peer's TCP acknowledged them, or they are in flight), for a socket that
 * connected: its SYN, which bytes_acked counts, is not; 0 if not TCP.
 * Sleeps: takes the socket's lock, under which the counters change.
 */
u64 vnat_shim_sock_transmitted(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct tcp_sock *tp;
	u64 out;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	tp = tcp_sk(sk);
	lock_sock(sk);
	out = tp->bytes_acked + (u32)(tp->snd_nxt - tp->snd_una);
	release_sock(sk);
	return out ? out - 1 : 0;
}

/* Whether the peer has closed or reset @sock. */
bool vnat_shim_sock_dead(struct socket *sock)
{
	struct sock *sk = sock->sk;

	return READ_ONCE(sk->sk_err) || (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) ||
	       READ_ONCE(sk->sk_state) == TCP_CLOSE;
}
