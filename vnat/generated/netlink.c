// SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause)
/* Do not edit directly, auto-generated from: */
/*	vnat/vnat.yaml */
/* YNL-GEN kernel source */
/* To regenerate run: tools/net/ynl/ynl-regen.sh */

#include <net/netlink.h>
#include <net/genetlink.h>

#include "netlink.h"

#include <uapi/linux/vnat.h>

/* VNAT_CMD_CONN_RESUME - do */
static const struct nla_policy vnat_conn_resume_nl_policy[VNAT_A_CONN_NEW_ADDR6 + 1] = {
	[VNAT_A_CONN_PID] = NLA_POLICY_MIN(NLA_U32, 1),
	[VNAT_A_CONN_PROTO] = NLA_POLICY_RANGE(NLA_U8, 6, 17),
	[VNAT_A_CONN_LOCAL_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_LOCAL_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_REMOTE_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_REMOTE_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_NEW_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_LOCAL_ADDR6] = NLA_POLICY_EXACT_LEN(16),
	[VNAT_A_CONN_REMOTE_ADDR6] = NLA_POLICY_EXACT_LEN(16),
	[VNAT_A_CONN_NEW_ADDR6] = NLA_POLICY_EXACT_LEN(16),
};

/* VNAT_CMD_CONN_SET - do */
static const struct nla_policy vnat_conn_set_nl_policy[VNAT_A_CONN_REMOTE_ADDR6 + 1] = {
	[VNAT_A_CONN_PROTO] = NLA_POLICY_RANGE(NLA_U8, 6, 17),
	[VNAT_A_CONN_LOCAL_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_LOCAL_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_REMOTE_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_REMOTE_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_POLICY] = NLA_POLICY_MAX(NLA_U8, 2),
	[VNAT_A_CONN_HELPER] = NLA_POLICY_MAX(NLA_U8, 3),
	[VNAT_A_CONN_LOCAL_ADDR6] = NLA_POLICY_EXACT_LEN(16),
	[VNAT_A_CONN_REMOTE_ADDR6] = NLA_POLICY_EXACT_LEN(16),
};

/* VNAT_CMD_CONN_SUSPEND - do */
static const struct nla_policy vnat_conn_suspend_nl_policy[VNAT_A_CONN_NEW_ADDR6 + 1] = {
	[VNAT_A_CONN_PID] = NLA_POLICY_MIN(NLA_U32, 1),
	[VNAT_A_CONN_PROTO] = NLA_POLICY_RANGE(NLA_U8, 6, 17),
	[VNAT_A_CONN_LOCAL_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_LOCAL_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_REMOTE_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_REMOTE_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_LOCAL_ADDR6] = NLA_POLICY_EXACT_LEN(16),
	[VNAT_A_CONN_REMOTE_ADDR6] = NLA_POLICY_EXACT_LEN(16),
	[VNAT_A_CONN_NEW_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_NEW_ADDR6] = NLA_POLICY_EXACT_LEN(16),
};

/* VNAT_CMD_CONN_EXPORT - dump */
static const struct nla_policy vnat_conn_export_nl_policy[VNAT_A_CONN_REMOTE_ADDR6 + 1] = {
	[VNAT_A_CONN_PID] = NLA_POLICY_MIN(NLA_U32, 1),
	[VNAT_A_CONN_PROTO] = NLA_POLICY_RANGE(NLA_U8, 6, 17),
	[VNAT_A_CONN_LOCAL_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_LOCAL_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_REMOTE_ADDR] = { .type = NLA_BE32, },
	[VNAT_A_CONN_REMOTE_PORT] = NLA_POLICY_MIN(NLA_BE16, 1),
	[VNAT_A_CONN_LOCAL_ADDR6] = NLA_POLICY_EXACT_LEN(16),
	[VNAT_A_CONN_REMOTE_ADDR6] = NLA_POLICY_EXACT_LEN(16),
};

/* VNAT_CMD_CONN_IMPORT - do */
static const struct nla_policy vnat_conn_import_nl_policy[VNAT_A_CONN_SAVED + 1] = {
	[VNAT_A_CONN_SAVED] = NLA_POLICY_MAX_LEN(512),
};

/* Ops table for vnat */
static const struct genl_split_ops vnat_nl_ops[] = {
	{
		.cmd	= VNAT_CMD_CONN_GET,
		.dumpit	= vnat_nl_conn_get_dumpit,
		.flags	= GENL_CMD_CAP_DUMP,
	},
	{
		.cmd		= VNAT_CMD_CONN_RESUME,
		.doit		= vnat_nl_conn_resume_doit,
		.policy		= vnat_conn_resume_nl_policy,
		.maxattr	= VNAT_A_CONN_NEW_ADDR6,
		.flags		= GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= VNAT_CMD_CONN_SET,
		.doit		= vnat_nl_conn_set_doit,
		.policy		= vnat_conn_set_nl_policy,
		.maxattr	= VNAT_A_CONN_REMOTE_ADDR6,
		.flags		= GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= VNAT_CMD_CONN_SUSPEND,
		.doit		= vnat_nl_conn_suspend_doit,
		.policy		= vnat_conn_suspend_nl_policy,
		.maxattr	= VNAT_A_CONN_NEW_ADDR6,
		.flags		= GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd		= VNAT_CMD_CONN_EXPORT,
		.dumpit		= vnat_nl_conn_export_dumpit,
		.policy		= vnat_conn_export_nl_policy,
		.maxattr	= VNAT_A_CONN_REMOTE_ADDR6,
		.flags		= GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_DUMP,
	},
	{
		.cmd		= VNAT_CMD_CONN_IMPORT,
		.doit		= vnat_nl_conn_import_doit,
		.policy		= vnat_conn_import_nl_policy,
		.maxattr	= VNAT_A_CONN_SAVED,
		.flags		= GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_DO,
	},
	{
		.cmd	= VNAT_CMD_STATS_GET,
		.doit	= vnat_nl_stats_get_doit,
		.flags	= GENL_CMD_CAP_DO,
	},
};

static const struct genl_multicast_group vnat_nl_mcgrps[] = {
	[VNAT_NLGRP_EVENTS] = { "events", },
};

struct genl_family vnat_nl_family __ro_after_init = {
	.name		= VNAT_FAMILY_NAME,
	.version	= VNAT_FAMILY_VERSION,
	.netnsok	= true,
	.parallel_ops	= true,
	.module		= THIS_MODULE,
	.split_ops	= vnat_nl_ops,
	.n_split_ops	= ARRAY_SIZE(vnat_nl_ops),
	.mcgrps		= vnat_nl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(vnat_nl_mcgrps),
};
