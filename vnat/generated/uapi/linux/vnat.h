/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/* Do not edit directly, auto-generated from: */
/*	vnat/vnat.yaml */
/* YNL-GEN uapi header */
/* To regenerate run: tools/net/ynl/ynl-regen.sh */

#ifndef _UAPI_LINUX_VNAT_H
#define _UAPI_LINUX_VNAT_H

#define VNAT_FAMILY_NAME	"vnat"
#define VNAT_FAMILY_VERSION	1

/**
 * enum vnat_state - Where a virtual connection is in its migration.
 * @VNAT_STATE_NATIVE: Physical endpoints equal virtual ones; nothing is
 *   translated.
 * @VNAT_STATE_RESUMING: This end moved; the peer has not confirmed yet.
 * @VNAT_STATE_MIGRATED: Translated both ways.
 * @VNAT_STATE_SUSPENDED: This end was suspended (conn-suspend) and has not
 *   resumed yet; its mapping is as before the suspension.
 * @VNAT_STATE_VALIDATING: The peer moved to where it was not seen (behind a
 *   NAT, the update came from an address it did not name): its packets are
 *   understood from there, ours keep going to its previous endpoint until one
 *   of its packets arrives from the new one.
 */
enum vnat_state {
	VNAT_STATE_NATIVE,
	VNAT_STATE_RESUMING,
	VNAT_STATE_MIGRATED,
	VNAT_STATE_SUSPENDED,
	VNAT_STATE_VALIDATING,
};

/**
 * enum vnat_origin - How the connection came to be known.
 * @VNAT_ORIGIN_CONNECT: Opened with connect().
 * @VNAT_ORIGIN_ACCEPT: Returned by accept().
 * @VNAT_ORIGIN_EXISTING: Open already when VNAT was loaded.
 * @VNAT_ORIGIN_UPDATE: A UDP flow of an unconnected socket, recorded on the
 *   peer's update.
 */
enum vnat_origin {
	VNAT_ORIGIN_CONNECT,
	VNAT_ORIGIN_ACCEPT,
	VNAT_ORIGIN_EXISTING,
	VNAT_ORIGIN_UPDATE,
};

/**
 * enum vnat_policy - How a virtual address conflict of a connection is
 *   resolved (paper 3.4.3).
 * @VNAT_POLICY_ABORT: Refuse the migration that would cause it.
 * @VNAT_POLICY_PREEMPT: Abort the connection in the way, then migrate.
 * @VNAT_POLICY_DEFAULT: The conflict_policy knob's (configfs).
 */
enum vnat_policy {
	VNAT_POLICY_ABORT,
	VNAT_POLICY_PREEMPT,
	VNAT_POLICY_DEFAULT,
};

/**
 * enum vnat_helper - A connection migration helper (paper 3.3.1): what keeps
 *   this end of a connection alive while its peer is suspended.
 * @VNAT_HELPER_NONE: Nothing; the connection lives as long as its own timeouts
 *   allow.
 * @VNAT_HELPER_KEEPALIVE: TCP keepalive is off for the connection until the
 *   peer resumes.
 * @VNAT_HELPER_STOP: Keepalive off, and the processes that have the socket
 *   open are stopped (SIGSTOP) until the peer resumes (SIGCONT).
 * @VNAT_HELPER_DEFAULT: The suspend_helper knob's (configfs); in conn-set
 *   only.
 */
enum vnat_helper {
	VNAT_HELPER_NONE,
	VNAT_HELPER_KEEPALIVE,
	VNAT_HELPER_STOP,
	VNAT_HELPER_DEFAULT,
};

/**
 * enum vnat_vcmp_state - Where the update of a connection's last move is,
 *   toward the peer's vnatd.
 * @VNAT_VCMP_STATE_IDLE: No update under way (never moved, or the move is
 *   done).
 * @VNAT_VCMP_STATE_CONNECTING: vnatd is connecting to the peer's vnatd.
 * @VNAT_VCMP_STATE_WAITING: The update went out; no answer yet.
 * @VNAT_VCMP_STATE_FAILED: The last move failed; the peer refused or did not
 *   answer.
 * @VNAT_VCMP_STATE_RETRYING: The peer did not answer in vcmp_retries more
 *   attempts; vnatd tries again, with backoff, until resume_deadline_s.
 */
enum vnat_vcmp_state {
	VNAT_VCMP_STATE_IDLE,
	VNAT_VCMP_STATE_CONNECTING,
	VNAT_VCMP_STATE_WAITING,
	VNAT_VCMP_STATE_FAILED,
	VNAT_VCMP_STATE_RETRYING,
};

/**
 * enum vnat_auth - Where a connection's security key (paper 3.3.1.1) is: what
 *   a VCMP message about it must carry to be believed.
 * @VNAT_AUTH_PENDING: Being agreed with the peer's vnatd (within a second or
 *   so of the connection's start); no update is believed meanwhile.
 * @VNAT_AUTH_KEYED: It has a key: it moves only by version-2 messages under
 *   that key; version 1 is refused.
 * @VNAT_AUTH_UNKEYED: No key (the peer speaks only version 1, or did not
 *   answer, or vcmp_auth is off): moved by version 1 unless vcmp_auth is
 *   required.
 */
enum vnat_auth {
	VNAT_AUTH_PENDING,
	VNAT_AUTH_KEYED,
	VNAT_AUTH_UNKEYED,
};

/**
 * enum vnat_event - What happened to a virtual connection (the events group).
 * @VNAT_EVENT_VIRTUALIZED: VNAT started tracking it (connect, accept, or a
 *   peer's UDP update).
 * @VNAT_EVENT_CLOSED: Its socket closed; VNAT forgot it.
 * @VNAT_EVENT_RESUMING: This end moved; the update is on its way to the peer's
 *   vnatd.
 * @VNAT_EVENT_RESUMED: The peer confirmed; both ends translate.
 * @VNAT_EVENT_FAILED: The peer refused or did not answer; the connection is as
 *   it was.
 * @VNAT_EVENT_PEER_MOVED: The peer's update was accepted; its new endpoint is
 *   remote-phys.
 * @VNAT_EVENT_REFUSED: An update from a peer was refused (reason says why).
 * @VNAT_EVENT_CONFLICT: A virtual address conflict was resolved; the
 *   connection is the one that was in the way, reason says what happened to
 *   it.
 * @VNAT_EVENT_SUSPENDED: This end was suspended and the peer's vnatd answered
 *   (or did not); helper is what the peer activated, reason says more.
 * @VNAT_EVENT_PEER_SUSPENDED: The peer suspended its end; helper is what keeps
 *   ours alive.
 * @VNAT_EVENT_HELPER_RELEASED: The helper of a connection whose peer was
 *   suspended was undone (reason: the peer resumed, or the helper timed out).
 * @VNAT_EVENT_RETRYING: The move's update got no answer in vcmp_retries more
 *   attempts; vnatd goes on trying, with backoff, until resume_deadline_s
 *   (then failed), or at once when an address comes up.
 */
enum vnat_event {
	VNAT_EVENT_VIRTUALIZED,
	VNAT_EVENT_CLOSED,
	VNAT_EVENT_RESUMING,
	VNAT_EVENT_RESUMED,
	VNAT_EVENT_FAILED,
	VNAT_EVENT_PEER_MOVED,
	VNAT_EVENT_REFUSED,
	VNAT_EVENT_CONFLICT,
	VNAT_EVENT_SUSPENDED,
	VNAT_EVENT_PEER_SUSPENDED,
	VNAT_EVENT_HELPER_RELEASED,
	VNAT_EVENT_RETRYING,
};

enum {
	VNAT_A_CONN_PROTO = 1,
	VNAT_A_CONN_LOCAL_ADDR,
	VNAT_A_CONN_LOCAL_PORT,
	VNAT_A_CONN_REMOTE_ADDR,
	VNAT_A_CONN_REMOTE_PORT,
	VNAT_A_CONN_LOCAL_PHYS_ADDR,
	VNAT_A_CONN_LOCAL_PHYS_PORT,
	VNAT_A_CONN_REMOTE_PHYS_ADDR,
	VNAT_A_CONN_REMOTE_PHYS_PORT,
	VNAT_A_CONN_STATE,
	VNAT_A_CONN_ORIGIN,
	VNAT_A_CONN_PID,
	VNAT_A_CONN_NEW_ADDR,
	VNAT_A_CONN_COUNT,
	VNAT_A_CONN_EVENT,
	VNAT_A_CONN_REASON,
	VNAT_A_CONN_POLICY,
	VNAT_A_CONN_UPDATE_AGE_MS,
	VNAT_A_CONN_PAD,
	VNAT_A_CONN_PACKETS_OUT,
	VNAT_A_CONN_PACKETS_IN,
	VNAT_A_CONN_BYTES_OUT,
	VNAT_A_CONN_BYTES_IN,
	VNAT_A_CONN_VCMP_STATE,
	VNAT_A_CONN_VCMP_ATTEMPTS,
	VNAT_A_CONN_HELPER,
	VNAT_A_CONN_PEER_SUSPENDED,
	VNAT_A_CONN_AUTH,
	VNAT_A_CONN_VCMP_NEXT_MS,
	VNAT_A_CONN_LOCAL_ADDR6,
	VNAT_A_CONN_REMOTE_ADDR6,
	VNAT_A_CONN_LOCAL_PHYS_ADDR6,
	VNAT_A_CONN_REMOTE_PHYS_ADDR6,
	VNAT_A_CONN_NEW_ADDR6,
	VNAT_A_CONN_SAVED,

	__VNAT_A_CONN_MAX,
	VNAT_A_CONN_MAX = (__VNAT_A_CONN_MAX - 1)
};

enum {
	VNAT_A_STATS_HOOK_PREROUTING_PACKETS = 1,
	VNAT_A_STATS_HOOK_LOCAL_IN_PACKETS,
	VNAT_A_STATS_HOOK_LOCAL_OUT_PACKETS,
	VNAT_A_STATS_HOOK_POSTROUTING_PACKETS,
	VNAT_A_STATS_CONNECTIONS_TRACKED,
	VNAT_A_STATS_CONNECTIONS_FORGOTTEN,
	VNAT_A_STATS_CONNECTIONS_REAPED,
	VNAT_A_STATS_CONNECTIONS_UNTRACKED_NOMEM,
	VNAT_A_STATS_VCMP_CLIENTS_ACCEPTED,
	VNAT_A_STATS_VCMP_CLIENTS_REFUSED,
	VNAT_A_STATS_VCMP_CLIENTS_IDLE_CLOSED,
	VNAT_A_STATS_VCMP_MESSAGES,
	VNAT_A_STATS_VCMP_MALFORMED,
	VNAT_A_STATS_VCMP_UNKNOWN_CONNECTION,
	VNAT_A_STATS_VCMP_LISTEN_FAILED,
	VNAT_A_STATS_TRANSLATED_PREROUTING_PACKETS,
	VNAT_A_STATS_TRANSLATED_LOCAL_IN_PACKETS,
	VNAT_A_STATS_TRANSLATED_LOCAL_OUT_PACKETS,
	VNAT_A_STATS_TRANSLATED_POSTROUTING_PACKETS,
	VNAT_A_STATS_TRANSLATION_DROPPED_PACKETS,
	VNAT_A_STATS_RULE_CONFLICTS,
	VNAT_A_STATS_UPDATES_SENT,
	VNAT_A_STATS_UPDATES_ACCEPTED,
	VNAT_A_STATS_UPDATES_REFUSED,
	VNAT_A_STATS_MIGRATIONS_COMPLETED,
	VNAT_A_STATS_MIGRATIONS_FAILED,
	VNAT_A_STATS_CONFLICTS_ABORTED,
	VNAT_A_STATS_CONFLICTS_PREEMPTED,
	VNAT_A_STATS_SUSPENDS_SENT,
	VNAT_A_STATS_SUSPENDS_ACCEPTED,
	VNAT_A_STATS_SUSPENDS_REFUSED,
	VNAT_A_STATS_HELPERS_RELEASED,
	VNAT_A_STATS_HELPERS_EXPIRED,
	VNAT_A_STATS_VCMP_WRONG_SOURCE,
	VNAT_A_STATS_VCMP_MARTIAN,
	VNAT_A_STATS_VCMP_UDP_FLOWS_REFUSED,
	VNAT_A_STATS_VCMP_REFUSALS_CLOSED,
	VNAT_A_STATS_VCMP_READS_PAUSED,
	VNAT_A_STATS_KEYS_ESTABLISHED,
	VNAT_A_STATS_KEYS_REFUSED,
	VNAT_A_STATS_KEYS_FAILED,
	VNAT_A_STATS_VCMP_AUTH_FAILED,
	VNAT_A_STATS_VCMP_REPLAYED,
	VNAT_A_STATS_VCMP_V1_REFUSED,
	VNAT_A_STATS_PATHS_VALIDATED,
	VNAT_A_STATS_RESUMING_DROPPED_PACKETS,
	VNAT_A_STATS_HIDDEN_CONNECTIONS,
	VNAT_A_STATS_HIDDEN_PACKETS,
	VNAT_A_STATS_ROUTE_CHECKS,
	VNAT_A_STATS_CONNECTIONS,
	VNAT_A_STATS_VCMP_LISTENING,
	VNAT_A_STATS_HOOKS_REGISTERED,
	VNAT_A_STATS_PAD,
	VNAT_A_STATS_UNTRANSLATED_PACKETS,
	VNAT_A_STATS_ICMP_ERRORS_TRANSLATED,
	VNAT_A_STATS_CONNECTIONS_IMPORTED,
	VNAT_A_STATS_IMPORTS_EXPIRED,
	VNAT_A_STATS_KEYS_REGRANTED,
	VNAT_A_STATS_KEYS_ASSUMED,

	__VNAT_A_STATS_MAX,
	VNAT_A_STATS_MAX = (__VNAT_A_STATS_MAX - 1)
};

enum {
	VNAT_CMD_CONN_GET = 1,
	VNAT_CMD_CONN_RESUME,
	VNAT_CMD_CONN_EVENT,
	VNAT_CMD_CONN_SET,
	VNAT_CMD_CONN_SUSPEND,
	VNAT_CMD_CONN_EXPORT,
	VNAT_CMD_CONN_IMPORT,
	VNAT_CMD_STATS_GET,

	__VNAT_CMD_MAX,
	VNAT_CMD_MAX = (__VNAT_CMD_MAX - 1)
};

#define VNAT_MCGRP_EVENTS	"events"

#endif /* _UAPI_LINUX_VNAT_H */
