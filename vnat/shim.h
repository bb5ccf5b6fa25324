/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between vnat/shim.c and the Rust side of vnat.ko.
 * Rust declares the same prototypes in vnat/ffi.rs (vnat_shim_*) and defines
 * the vnat_rs_* functions; keep the three in sync.
 */
#ifndef VNAT_SHIM_H
#define VNAT_SHIM_H

#include <linux/types.h>

struct net;
struct seq_file;
struct sk_buff;
struct socket;
struct task_struct;
struct vnat_waker;

/* Implemented in Rust. */
void *vnat_rs_net_init(struct net *net);
void vnat_rs_net_exit(void *state);
unsigned int vnat_rs_hook(void *state, unsigned int hook, struct sk_buff *skb);
void vnat_rs_sock_event(void *state, unsigned int event, const void *sk,
			u8 proto, __be32 saddr, __be16 sport, __be32 daddr, __be16 dport,
			int pid);
void vnat_rs_proc_show(void *state, unsigned int file, struct seq_file *m);
int vnat_rs_control(void *state, const char *buf, size_t size);
void vnat_rs_addr_event(void *state, bool up, __be32 addr);

/* The namespace's state for the callbacks (also vnat/netlink.c); NULL while it is set up. */
void *vnat_state(const struct net *net);

/* A packet as Rust translates it: pointers to its writable headers. */
struct vnat_pkt {
	u8 *iph;
	u8 *l4;
	u8 proto;
	bool partial;
	bool complete;
};

/* Implemented in vnat/shim.c, called from Rust. */
#define VNAT_MAX_COUNTERS 64
void *vnat_shim_counters_alloc(void);
void vnat_shim_counters_free(void *c);
void vnat_shim_count(void *c, unsigned int i, u64 n);
u64 vnat_shim_counter_sum(void *c, unsigned int i);
void *vnat_shim_udp_lookup(struct net *net, __be32 laddr, __be16 lport,
			   __be32 raddr, __be16 rport);
int vnat_shim_pernet_register(void);
void vnat_shim_pernet_unregister(void);
int vnat_shim_hooks_register(struct net *net);
void vnat_shim_hooks_unregister(struct net *net);
int vnat_shim_kprobes_register(void);
void vnat_shim_kprobes_unregister(void);
unsigned long vnat_shim_kprobes_missed(void);
int vnat_shim_proc_register(struct net *net);
void vnat_shim_proc_unregister(struct net *net);
unsigned int vnat_shim_net_inum(const struct net *net);
struct vnat_waker *vnat_shim_waker_new(void);
void vnat_shim_waker_set_task(struct vnat_waker *w, struct task_struct *task);
void vnat_shim_waker_free(struct vnat_waker *w);
void vnat_shim_waker_kick(struct vnat_waker *w);
bool vnat_shim_waker_wait(struct vnat_waker *w, long timeout);
void vnat_shim_sock_watch(struct socket *sock, struct vnat_waker *w);
void vnat_shim_sock_unwatch(struct socket *sock, struct vnat_waker *w);
void vnat_shim_sock_reuseaddr(struct socket *sock);
bool vnat_shim_sock_dead(struct socket *sock);
int vnat_shim_sock_connect(struct socket *sock, __be32 daddr, __be16 port);
bool vnat_shim_sock_established(struct socket *sock);
int vnat_shim_pkt_parse(struct sk_buff *skb, struct vnat_pkt *p, bool writable);
void vnat_shim_pkt_csum_field_changed(struct sk_buff *skb, __sum16 from, __sum16 to);
int vnat_shim_route_local(struct sk_buff *skb, __be32 daddr);
int vnat_shim_reroute(struct net *net, struct sk_buff *skb);
void vnat_shim_sock_set_transparent(void *sk, bool on);
void vnat_shim_sock_kick_retransmit(void *sk);
void vnat_shim_sock_hold(void *sk);
void vnat_shim_sock_put(void *sk);
bool vnat_shim_sock_destroyed(void *sk);
void vnat_shim_sock_destroy(void *sk);
bool vnat_shim_sock_keepalive(void *sk, bool on);
#define VNAT_MAX_HOLDERS 4
/* A process, by global pid number and start time (vnat/ffi.rs, Process). */
struct vnat_process {
	int nr;
	u64 start_boottime;
};
int vnat_shim_signal_holders(void *sk, int sig, struct vnat_process *procs,
			     int max);
void vnat_shim_signal_process(int nr, u64 start_boottime, int sig);
__be32 vnat_shim_route_source(struct net *net, __be32 daddr);
int vnat_shim_inetaddr_register(void);
void vnat_shim_inetaddr_unregister(void);

#endif /* VNAT_SHIM_H */
