/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Layout of the kstackwatch state map.
 *
 * `ksw live` shows the module's state (config, watchpoint slots, per-task
 * table, counters) by reading the module's memory through /proc/kcore or
 * a crash dump.  There the module's debug info is usually absent, and an
 * out-of-tree module built against distribution headers carries no BTF
 * (there is no vmlinux to base it on).  So the module describes itself,
 * the way VMCOREINFO describes the kernel: the global ksw_state_map lists,
 * by name, the address of each object it publishes and the offset and
 * size of each member a reader needs.  Readers look entries up by name,
 * so adding an entry (a new counter, say) needs no change on their side.
 *
 * The header layout is fixed and mirrored in
 * crates/kstackwatch-mod/src/state_map.rs, checked by a test; bump
 * KSW_STATE_MAP_VERSION on any change to it.  The file is shared with
 * user space: it only needs <linux/types.h>.
 */
#ifndef KSW_STATE_MAP_H
#define KSW_STATE_MAP_H

#include <linux/types.h>

/* "KSWSTMAP" read as a little-endian u64 */
#define KSW_STATE_MAP_MAGIC	0x50414d545357534bULL
#define KSW_STATE_MAP_VERSION	1
#define KSW_STATE_MAP_NAME_LEN	48
#define KSW_STATE_MAP_ENTRIES	96

/*
 * One entry.  Names say what the value is:
 *   "ksw_wps"            an object: @value its address, @size its bytes;
 *   "struct ksw_wp"      a type: @value 0, @size its size (an array's
 *                        stride);
 *   "ksw_wp.addr"        a member: @value its offset, @size its bytes;
 *                        nested members are joined with dots.
 */
struct ksw_state_map_entry {
	char name[KSW_STATE_MAP_NAME_LEN];	/* NUL-terminated */
	__u64 value;
	__u64 size;
};

struct ksw_state_map {
	__u64 magic;				/* KSW_STATE_MAP_MAGIC */
	__u32 version;				/* KSW_STATE_MAP_VERSION */
	__u32 nr_entries;			/* entries in use */
	__u32 entry_size;		/* sizeof(struct ksw_state_map_entry) */
	__u32 reserved;
	struct ksw_state_map_entry entries[KSW_STATE_MAP_ENTRIES];
};

#endif /* KSW_STATE_MAP_H */
