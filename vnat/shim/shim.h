/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C shim (vnat/shim/) and the Rust side of
 * vnat.ko. Rust declares the vnat_shim_* functions of each C file in the
 * file of vnat/ffi/ named in that file's header comment, and defines the
 * vnat_rs_* functions; the structures shared with Rust have their layout
 * checked on both sides at build time.
 */
#ifndef VNAT_SHIM_H
#define VNAT_SHIM_H

#include <linux/build_bug.h>
#include <linux/stddef.h>
#include <linux/types.h>

struct in6_addr;
struct net;
struct sk_buff;
struct sock;
struct socket;
struct task_struct;
struct vnat_route_notifier;
struct vnat_waker;

/* Implemented in Rust. */
void *vnat_rs_net_init(struct net *net, const void **state);
void vnat_rs_net_exit(void *entry);
unsigned int vnat_rs_hook(const void *state, unsigned int hook, struct sk_buff *skb);
void vnat_rs_sock_event(const void *state, unsigned int event, const struct sock *sk,
			u8 proto, const struct in6_addr *saddr, __be16 sport,
			const struct in6_addr *daddr, __be16 dport, int pid);
bool vnat_rs_bind_virtual(const void *state, u8 proto, __be32 addr);
void vnat_rs_addr_event(const void *state, bool up, const struct in6_addr *addr);
void vnat_rs_route_event(const void *state);
bool vnat_rs_sleep(const void *state, unsigned int ask);

/* Between the C files. */
const void *vnat_state(const struct net *net);
void vnat_track_existing(struct net *net);
struct vnat_route_notifier *vnat_route_notifier_register(struct net *net);
void vnat_route_notifier_unregister(struct vnat_route_notifier *rn);

/* pernet.c, hooks.c, probes.c, notifier.c: vnat/ffi.rs */
int vnat_shim_pernet_register(void);
void vnat_shim_pernet_unregister(void);
int vnat_shim_hooks_register(struct net *net);
void vnat_shim_hooks_unregister(struct net *net);
int vnat_shim_kprobes_register(void);
void vnat_shim_kprobes_unregister(void);
unsigned long vnat_shim_kprobes_missed(void);
int vnat_shim_inetaddr_register(void);
void vnat_shim_inetaddr_unregister(void);
int vnat_shim_pm_register(void);
void vnat_shim_pm_unregister(void);

/* addr.c: vnat/ffi.rs. Addresses of either family, IPv4 ones v4-mapped. */
enum { VNAT_ADDR_OTHER, VNAT_ADDR_LOCAL, VNAT_ADDR_REMOTE };
bool vnat_shim_route_source(struct net *net, const struct in6_addr *daddr, struct in6_addr *out);
bool vnat_shim_route_moved(struct net *net, const struct in6_addr *saddr,
			   const struct in6_addr *daddr, struct in6_addr *out);
int vnat_shim_addr_kind(struct net *net, const struct in6_addr *a);

/* hooks.c: vnat/ffi/skb.rs. A packet's headers, as translation sees them. */
struct vnat_pkt {
	u8 *hdr;	/* the IP header, followed by the transport header */
	u32 len;	/* bytes of both, linear */
	bool partial;	/* CHECKSUM_PARTIAL */
	u32 *csum;	/* &skb->csum of a CHECKSUM_COMPLETE packet, else NULL */
};
static_assert(sizeof(struct vnat_pkt) == 24 && offsetof(struct vnat_pkt, len) == 8 &&
	      offsetof(struct vnat_pkt, partial) == 12 && offsetof(struct vnat_pkt, csum) == 16);
/* What vnat_shim_pkt_parse() found (vnat/ffi/skb.rs). */
enum { VNAT_PKT_TRANSPORT, VNAT_PKT_ICMP_ERROR };
int vnat_shim_pkt_parse(struct sk_buff *skb, struct vnat_pkt *p, bool icmp);
int vnat_shim_pkt_writable(struct sk_buff *skb, u32 len, struct vnat_pkt *p);
void vnat_shim_csum_none(struct sk_buff *skb);
int vnat_shim_route_local(struct sk_buff *skb);
int vnat_shim_demux(struct sk_buff *skb, const struct in6_addr *src, __be16 sport,
		    const struct in6_addr *dst, __be16 dport);
int vnat_shim_reroute(struct net *net, struct sk_buff *skb);

/* counters.c: vnat/ffi/percpu.rs */
#define VNAT_MAX_COUNTERS 64
void *vnat_shim_counters_alloc(void);
void vnat_shim_counters_free(void *c);
void vnat_shim_count(void *c, unsigned int i, u64 n);
u64 vnat_shim_counter_sum(void *c, unsigned int i);

/* sock.c: vnat/ffi/sock.rs */
#define VNAT_MAX_HOLDERS 4
/* A process, by global pid number and start time. */
struct vnat_process {
	int nr;
	u64 start_boottime;
};
static_assert(sizeof(struct vnat_process) == 16 &&
	      offsetof(struct vnat_process, start_boottime) == 8);
void vnat_shim_sock_hold(struct sock *sk);
void vnat_shim_sock_put(struct sock *sk);
void vnat_shim_sock_set_transparent(struct sock *sk, bool on);
void vnat_shim_sock_kick_retransmit(struct sock *sk);
bool vnat_shim_tcp_isn(struct sock *sk, bool ours, u32 *isn);
bool vnat_shim_sock_destroyed(struct sock *sk);
u32 vnat_shim_sock_uid(const struct sock *sk);
enum vnat_tcp_found { VNAT_TCP_NONE = 0, VNAT_TCP_CONN = 1, VNAT_TCP_LISTENER = 2 };
int vnat_shim_tcp_lookup(struct sk_buff *skb, const struct in6_addr *src, __be16 sport,
			 const struct in6_addr *dst, __be16 dport, bool syn);
void vnat_shim_sock_destroy(struct sock *sk);
bool vnat_shim_sock_keepalive(struct sock *sk, bool on);
int vnat_shim_signal_holders(struct sock *sk, int sig, struct vnat_process *procs, int max);
void vnat_shim_signal_process(int nr, u64 start_boottime, int sig);
struct sock *vnat_shim_udp_lookup(struct net *net, const struct in6_addr *laddr, __be16 lport,
				  const struct in6_addr *raddr, __be16 rport);
bool vnat_shim_tcp_exists(struct net *net, const struct in6_addr *laddr, __be16 lport,
			  const struct in6_addr *raddr, __be16 rport);

/* trace.c: vnat/ffi/trace.rs (the events are in trace.h) */
void vnat_shim_trace_wake(unsigned int netns, bool requests);
void vnat_shim_trace_move(unsigned int netns, unsigned int connections);
void vnat_shim_trace_vcmp(unsigned int netns, const struct in6_addr *peer, unsigned int bytes,
			  bool answer, bool sent);
void vnat_shim_trace_round(unsigned int netns, const unsigned int *us);
u64 vnat_shim_thread_cpu_ns(void);
void vnat_shim_trace_rules(unsigned int netns, unsigned int connections, bool whole,
			   bool copied, unsigned int changes);
void vnat_shim_trace_kick(unsigned int netns, unsigned int connections);

/* kthread.c: vnat/ffi/waker.rs, vnatd_kthread/socket.rs */
struct vnat_waker *vnat_shim_waker_new(void);
void vnat_shim_waker_set_task(struct vnat_waker *w, struct task_struct *task);
void vnat_shim_waker_free(struct vnat_waker *w);
void vnat_shim_waker_kick(struct vnat_waker *w);
void vnat_shim_waker_kick_soon(struct vnat_waker *w);
bool vnat_shim_waker_wait(struct vnat_waker *w, long timeout);
void vnat_shim_sock_watch(struct socket *sock, struct vnat_waker *w);
void vnat_shim_sock_unwatch(struct socket *sock, struct vnat_waker *w);
void vnat_shim_sock_reuseaddr(struct socket *sock);
void vnat_shim_sock_dual_stack(struct socket *sock);
void vnat_shim_sock_limit_buffers(struct socket *sock, int bytes);
bool vnat_shim_sock_dead(struct socket *sock);
bool vnat_shim_sock_established(struct socket *sock);
bool vnat_shim_sock_connecting(struct socket *sock);
u64 vnat_shim_sock_transmitted(struct socket *sock);
bool vnat_shim_sock_quiet(struct socket *sock);

/* netlink.c: vnat/ffi/genl.rs */
#include <linux/in6.h>	/* struct in6_addr, which the records hold */
/*
 * One virtual connection as a netlink dump shows it (network byte order).
 * Addresses of either family, IPv4 ones v4-mapped (::ffff:a.b.c.d): the
 * shim puts a v4-mapped one as the u32 attribute, any other as its *-addr6
 * form.
 */
struct vnat_nl_conn {
	u64 packets_out, packets_in, bytes_out, bytes_in;
	struct in6_addr local_addr, remote_addr, local_phys_addr, remote_phys_addr;
	__be16 local_port, remote_port, local_phys_port, remote_phys_port;
	u32 pid;
	u32 update_age_ms;	/* U32_MAX: never updated */
	u8 proto, state, origin, policy, vcmp_state, vcmp_attempts;
	u8 helper, peer_suspended, auth;
	u32 vcmp_next_ms;	/* U32_MAX: no attempt planned */
};
static_assert(sizeof(struct vnat_nl_conn) == 128 &&
	      offsetof(struct vnat_nl_conn, local_addr) == 32 &&
	      offsetof(struct vnat_nl_conn, remote_phys_addr) == 80 &&
	      offsetof(struct vnat_nl_conn, local_port) == 96 &&
	      offsetof(struct vnat_nl_conn, pid) == 104 &&
	      offsetof(struct vnat_nl_conn, proto) == 112 &&
	      offsetof(struct vnat_nl_conn, vcmp_next_ms) == 124);

/*
 * Which connections a command selects, and where they go. Addresses as in
 * struct vnat_nl_conn, whichever form the request gave; new_addr all zero
 * (::): none given (also for new-addr 0.0.0.0).
 */
enum vnat_nl_by { VNAT_NL_BY_ADDR, VNAT_NL_BY_PID, VNAT_NL_BY_CONN };
struct vnat_nl_resume {
	struct in6_addr local_addr, remote_addr, new_addr;
	__be16 local_port, remote_port;
	u32 pid;
	u8 proto, by;
};
static_assert(sizeof(struct vnat_nl_resume) == 60 &&
	      offsetof(struct vnat_nl_resume, new_addr) == 32 &&
	      offsetof(struct vnat_nl_resume, local_port) == 48 &&
	      offsetof(struct vnat_nl_resume, pid) == 52 &&
	      offsetof(struct vnat_nl_resume, proto) == 56);

/* args: the dump's cb->args, all six of them. */
void vnat_rs_nl_dump(const void *state, void *skb, void *cb, long *args, bool all, u32 uid);
/* A refusal's reason, static, is written to *why for the extack. */
int vnat_rs_nl_resume(const void *state, struct vnat_nl_resume *r, const char **why);
int vnat_rs_nl_suspend(const void *state, const struct vnat_nl_resume *r, const char **why);
/* policy, helper: U8_MAX leaves it as it is. */
int vnat_rs_nl_set(const void *state, const struct vnat_nl_resume *r, u8 policy, u8 helper,
		   const char **why);
/*
 * conn-export: the connections @r selects (by pid or by connection), NULL
 * for every connection of the namespace; 0, or a refusal of @r before the
 * first part, with its reason as for vnat_rs_nl_resume().
 */
int vnat_rs_nl_export(const void *state, void *skb, void *cb, long *args,
		      const struct vnat_nl_resume *r, const char **why);
/* conn-import: @saved, @len bytes, as conn-export gave them. */
int vnat_rs_nl_import(const void *state, const u8 *saved, u32 len, const char **why);
/* values[a]: attribute a of the set "stats", for 0 < a < n. */
void vnat_rs_nl_stats(const void *state, u64 *values, unsigned int n);
int vnat_shim_nl_put_conn(void *skb, void *cb, const struct vnat_nl_conn *c);
int vnat_shim_nl_put_saved(void *skb, void *cb, const struct vnat_nl_conn *c, const u8 *saved,
			   u32 len);
void vnat_shim_nl_event(struct net *net, u8 event, const struct vnat_nl_conn *c,
			const char *reason);
bool vnat_shim_nl_listening(struct net *net);
int vnat_shim_genl_register(void);
void vnat_shim_genl_unregister(void);

/* crypto.c: vnat/ffi/crypto.rs. Rust holds a struct hmac_sha256_ctx as
 * this many bytes, aligned to 8. */
#define VNAT_HMAC_CTX_SIZE 136
bool vnat_shim_x25519(u8 *out, const u8 *scalar, const u8 *point);
bool vnat_shim_x25519_public(u8 *pub, const u8 *secret);
void vnat_shim_hmac_init(void *ctx, const u8 *key, size_t key_len);
void vnat_shim_hmac_update(void *ctx, const u8 *data, size_t len);
void vnat_shim_hmac_final(void *ctx, u8 *out);
bool vnat_shim_memeq(const void *a, const void *b, size_t len);

#endif /* VNAT_SHIM_H */
