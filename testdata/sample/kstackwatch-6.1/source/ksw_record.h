/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Layout of the kstackwatch catch record.
 *
 * The module keeps the last KSW_RECORD_RING catches in the global object
 * ksw_catch_log, so that an offline analyzer can read them out of a crash
 * dump even without debug info for the module.  The layout is fixed: every
 * field has an explicit width and natural alignment, there is no implicit
 * padding, and the Rust mirror in crates/kstackwatch-mod/src/record.rs is
 * checked against this header by a test.  Bump KSW_RECORD_VERSION on any
 * change.
 *
 * The file is shared with user space: it only needs <linux/types.h>.
 */
#ifndef KSW_RECORD_H
#define KSW_RECORD_H

#include <linux/types.h>

/* "KSWCATCH" read as a little-endian u64 */
#define KSW_RECORD_MAGIC	0x484354414357534bULL
#define KSW_RECORD_VERSION	1
#define KSW_RECORD_RING		16
#define KSW_RECORD_FUNC_LEN	64
#define KSW_RECORD_COMM_LEN	16
#define KSW_RECORD_CONFIG_LEN	128

/* ksw_catch.flags */
#define KSW_CATCH_CANARY	0x1	/* the canary was watched */
#define KSW_CATCH_SELF		0x2	/* writer is the victim task */
#define KSW_CATCH_PANIC		0x4	/* panic after this catch */

/* x86_64 struct pt_regs, in kernel order */
struct ksw_regs {
	__u64 r15;
	__u64 r14;
	__u64 r13;
	__u64 r12;
	__u64 bp;
	__u64 bx;
	__u64 r11;
	__u64 r10;
	__u64 r9;
	__u64 r8;
	__u64 ax;
	__u64 cx;
	__u64 dx;
	__u64 si;
	__u64 di;
	__u64 orig_ax;
	__u64 ip;
	__u64 cs;
	__u64 flags;
	__u64 sp;
	__u64 ss;
};

/* One catch.  @seq is written last: a slot with seq 0 is empty or torn. */
struct ksw_catch {
	__u64 seq;			/* 1-based catch number */
	__u64 timestamp_ns;		/* local_clock() at the catch */
	__u32 cpu;			/* CPU that took the #DB */
	__u32 flags;			/* KSW_CATCH_* */
	char func_name[KSW_RECORD_FUNC_LEN];
	__u32 func_offset;
	__u32 sp_offset;
	__u32 watch_len;
	__u32 depth;
	__u64 watch_addr;		/* watched stack address */
	__u64 armed_sp;			/* SP at the probe when armed */
	__u64 old_value;		/* value before the write */
	__u64 new_value;		/* value after the write */
	__u64 victim_task;		/* victim's task_struct * */
	__u64 writer_task;		/* writer's task_struct * */
	__s32 victim_pid;
	__s32 writer_pid;
	char victim_comm[KSW_RECORD_COMM_LEN];
	char writer_comm[KSW_RECORD_COMM_LEN];
	char config[KSW_RECORD_CONFIG_LEN];	/* the config string */
	struct ksw_regs regs;		/* writer's registers at #DB */
};

/* The ring.  Catch number n lives in records[(n - 1) % nr_records]. */
struct ksw_catch_log {
	__u64 magic;			/* KSW_RECORD_MAGIC */
	__u32 version;			/* KSW_RECORD_VERSION */
	__u32 header_size;		/* offset of records[] */
	__u32 record_size;		/* sizeof(struct ksw_catch) */
	__u32 nr_records;		/* KSW_RECORD_RING */
	__u64 total;			/* catches so far */
	struct ksw_catch records[KSW_RECORD_RING];
};

#endif /* KSW_RECORD_H */
