/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/* Do not edit directly, auto-generated from: */
/*	vnat/vnat.yaml */
/* YNL-GEN kernel header */
/* To regenerate run: tools/net/ynl/ynl-regen.sh */

#ifndef _LINUX_VNAT_GEN_H
#define _LINUX_VNAT_GEN_H

#include <net/netlink.h>
#include <net/genetlink.h>

#include <uapi/linux/vnat.h>

int vnat_nl_conn_get_dumpit(struct sk_buff *skb, struct netlink_callback *cb);
int vnat_nl_conn_resume_doit(struct sk_buff *skb, struct genl_info *info);
int vnat_nl_conn_set_doit(struct sk_buff *skb, struct genl_info *info);
int vnat_nl_conn_suspend_doit(struct sk_buff *skb, struct genl_info *info);
int vnat_nl_conn_export_dumpit(struct sk_buff *skb,
			       struct netlink_callback *cb);
int vnat_nl_conn_import_doit(struct sk_buff *skb, struct genl_info *info);
int vnat_nl_stats_get_doit(struct sk_buff *skb, struct genl_info *info);

enum {
	VNAT_NLGRP_EVENTS,
};

extern struct genl_family vnat_nl_family;

#endif /* _LINUX_VNAT_GEN_H */
