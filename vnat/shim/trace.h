/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VNAT's trace events (`perf list 'vnat:*'`, tracefs events/vnat/): the
 * steps of a move, each with the namespace's inode number, so that a trace
 * of both ends in one kernel tells them apart. `make bench` dissects a move
 * with them (qemu-tests/bench_move.py). Disabled, each costs one static
 * branch. vnat/shim/trace.c, vnat/ffi/trace.rs.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vnat

#if !defined(VNAT_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VNAT_TRACE_H

#include <linux/in6.h>
#include <linux/tracepoint.h>

/* An address came or went (addresses of either family, IPv4 v4-mapped). */
TRACE_EVENT(vnat_address,
	TP_PROTO(unsigned int netns, bool up, const struct in6_addr *addr),
	TP_ARGS(netns, up, addr),
	TP_STRUCT__entry(
		__field(unsigned int, netns)
		__field(bool, up)
		__array(u8, addr, 16)
	),
	TP_fast_assign(
		__entry->netns = netns;
		__entry->up = up;
		memcpy(__entry->addr, addr, 16);
	),
	TP_printk("netns=%u %s %pI6c", __entry->netns, __entry->up ? "up" : "down",
		  __entry->addr)
);

/* A route of the namespace changed (migrate_on, wake). */
TRACE_EVENT(vnat_route,
	TP_PROTO(unsigned int netns),
	TP_ARGS(netns),
	TP_STRUCT__entry(__field(unsigned int, netns)),
	TP_fast_assign(__entry->netns = netns;),
	TP_printk("netns=%u", __entry->netns)
);

/* vnatd woke up; @requests: whether it has requests to take. */
TRACE_EVENT(vnat_wake,
	TP_PROTO(unsigned int netns, bool requests),
	TP_ARGS(netns, requests),
	TP_STRUCT__entry(
		__field(unsigned int, netns)
		__field(bool, requests)
	),
	TP_fast_assign(
		__entry->netns = netns;
		__entry->requests = requests;
	),
	TP_printk("netns=%u requests=%d", __entry->netns, __entry->requests)
);

/*
 * A count of a namespace's connections at a step of a move: vnat_move, a
 * move began (@connections have a new local address, updates are due);
 * vnat_kick, @connections whose rules just went live were told to
 * retransmit now.
 */
DECLARE_EVENT_CLASS(vnat_connections,
	TP_PROTO(unsigned int netns, unsigned int connections),
	TP_ARGS(netns, connections),
	TP_STRUCT__entry(
		__field(unsigned int, netns)
		__field(unsigned int, connections)
	),
	TP_fast_assign(
		__entry->netns = netns;
		__entry->connections = connections;
	),
	TP_printk("netns=%u connections=%u", __entry->netns, __entry->connections)
);

DEFINE_EVENT(vnat_connections, vnat_move,
	TP_PROTO(unsigned int netns, unsigned int connections),
	TP_ARGS(netns, connections));

/*
 * One round of vnatd: the CPU time of its thread in each part, in
 * microseconds (the softirqs that ran on it included; the time it slept,
 * or waited for the CPU while another thread ran, not): @requests_us
 * taking local requests (a move begins there), @serve_us reading and
 * answering peers, @converse_us in its own conversations with peers,
 * @rules_us making and publishing rule tables, @kicks_us kicking the
 * connections they made live, @retire_us after the grace periods of the
 * tables they replaced, folding their counts and freeing; @wall_us the
 * round from its first part to its last, on the guest's clock.
 */
TRACE_EVENT(vnat_round,
	TP_PROTO(unsigned int netns, unsigned int requests_us, unsigned int serve_us,
		 unsigned int converse_us, unsigned int rules_us, unsigned int kicks_us,
		 unsigned int retire_us, unsigned int wall_us),
	TP_ARGS(netns, requests_us, serve_us, converse_us, rules_us, kicks_us, retire_us,
		wall_us),
	TP_STRUCT__entry(
		__field(unsigned int, netns)
		__field(unsigned int, requests_us)
		__field(unsigned int, serve_us)
		__field(unsigned int, converse_us)
		__field(unsigned int, rules_us)
		__field(unsigned int, kicks_us)
		__field(unsigned int, retire_us)
		__field(unsigned int, wall_us)
	),
	TP_fast_assign(
		__entry->netns = netns;
		__entry->requests_us = requests_us;
		__entry->serve_us = serve_us;
		__entry->converse_us = converse_us;
		__entry->rules_us = rules_us;
		__entry->kicks_us = kicks_us;
		__entry->retire_us = retire_us;
		__entry->wall_us = wall_us;
	),
	TP_printk("netns=%u requests_us=%u serve_us=%u converse_us=%u rules_us=%u kicks_us=%u retire_us=%u wall_us=%u",
		  __entry->netns, __entry->requests_us, __entry->serve_us, __entry->converse_us,
		  __entry->rules_us, __entry->kicks_us, __entry->retire_us, __entry->wall_us)
);

/*
 * A new table of translation rules, of @connections translated connections,
 * is live (the hooks use it): built @whole from every record, or patched
 * with the @changes of records logged since the table before, from a
 * @copied of the table before or from the spare.
 */
TRACE_EVENT(vnat_rules,
	TP_PROTO(unsigned int netns, unsigned int connections, bool whole, bool copied,
		 unsigned int changes),
	TP_ARGS(netns, connections, whole, copied, changes),
	TP_STRUCT__entry(
		__field(unsigned int, netns)
		__field(unsigned int, connections)
		__field(bool, whole)
		__field(bool, copied)
		__field(unsigned int, changes)
	),
	TP_fast_assign(
		__entry->netns = netns;
		__entry->connections = connections;
		__entry->whole = whole;
		__entry->copied = copied;
		__entry->changes = changes;
	),
	TP_printk("netns=%u connections=%u whole=%d copied=%d changes=%u", __entry->netns,
		  __entry->connections, __entry->whole, __entry->copied, __entry->changes)
);

DEFINE_EVENT(vnat_connections, vnat_kick,
	TP_PROTO(unsigned int netns, unsigned int connections),
	TP_ARGS(netns, connections));

/*
 * VCMP bytes go to (offered to the socket: traced before, since the peer
 * may read them before the send returns), or came from, @peer's vnatd:
 * @answer says whether they are answers (this end serves the peer) or
 * requests (this end asks).
 */
DECLARE_EVENT_CLASS(vnat_vcmp_io,
	TP_PROTO(unsigned int netns, const struct in6_addr *peer, unsigned int bytes, bool answer),
	TP_ARGS(netns, peer, bytes, answer),
	TP_STRUCT__entry(
		__field(unsigned int, netns)
		__array(u8, peer, 16)
		__field(unsigned int, bytes)
		__field(bool, answer)
	),
	TP_fast_assign(
		__entry->netns = netns;
		memcpy(__entry->peer, peer, 16);
		__entry->bytes = bytes;
		__entry->answer = answer;
	),
	TP_printk("netns=%u peer=%pI6c bytes=%u %s", __entry->netns, __entry->peer,
		  __entry->bytes, __entry->answer ? "answers" : "requests")
);

DEFINE_EVENT(vnat_vcmp_io, vnat_vcmp_sent,
	TP_PROTO(unsigned int netns, const struct in6_addr *peer, unsigned int bytes, bool answer),
	TP_ARGS(netns, peer, bytes, answer));

DEFINE_EVENT(vnat_vcmp_io, vnat_vcmp_received,
	TP_PROTO(unsigned int netns, const struct in6_addr *peer, unsigned int bytes, bool answer),
	TP_ARGS(netns, peer, bytes, answer));

#endif /* VNAT_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
