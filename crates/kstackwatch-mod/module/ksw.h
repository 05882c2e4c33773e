/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Internal interfaces of the kstackwatch module.
 */
#ifndef KSW_H
#define KSW_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/hw_breakpoint.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/types.h>

#include "ksw_record.h"

#define KSW_CONFIG_MAX		128	/* a config: at most 127 bytes */
#define KSW_WRITE_MAX		256	/* one write, with surrounding blanks */
#define KSW_FUNC_NAME_LEN	KSW_RECORD_FUNC_LEN
#define KSW_MAX_WATCH		HBP_NUM
#define KSW_CANARY_WORDS	128

/* A parsed watch configuration. */
struct ksw_config {
	char func_name[KSW_FUNC_NAME_LEN];
	char raw[KSW_CONFIG_MAX];
	u16 func_offset;
	u16 depth;
	u16 max_watch;		/* 0: as many as are free */
	u16 sp_offset;
	u16 watch_len;		/* 1, 2, 4 or 8 */
	bool canary;		/* watch the stack canary */
	bool panic_hit;		/* panic after reporting a catch */
};

/* ksw_config.c */
int ksw_config_parse(const char *buf, struct ksw_config *cfg);

/* A preallocated hardware watchpoint: one perf event on every CPU. */
struct ksw_wp {
	struct perf_event * __percpu *events;
	call_single_data_t __percpu *csd;
	unsigned long addr;		/* current target, read by IPIs */
	atomic_t busy;			/* owned by an invocation */
	atomic_t remote_pending;	/* deferred IPIs wanted, see ksw_watch.c */
	int index;
	/* owner data, valid while busy */
	struct task_struct *victim;
	unsigned long armed_sp;
	unsigned long old_value;
	u16 depth;
};

/* ksw_watch.c */
extern unsigned long ksw_holder;
extern struct ksw_wp ksw_wps[KSW_MAX_WATCH];
extern int ksw_nr_wps;
int ksw_watch_init(const struct ksw_config *cfg);
void ksw_watch_exit(void);
void ksw_watch_park_all(void);
struct ksw_wp *ksw_wp_get(void);
void ksw_wp_arm(struct ksw_wp *wp, unsigned long addr);
void ksw_wp_disarm(struct ksw_wp *wp);
bool ksw_wp_is_placeholder(unsigned long addr);
int ksw_watch_total(void);
int ksw_watch_free(void);
int ksw_watch_selftest(void);
int ksw_hotplug_init(void);
void ksw_hotplug_exit(void);

/* Per-task state, keyed by task_struct, in a preallocated table. */
struct ksw_task_ctx {
	struct task_struct *task;
	unsigned int gen;
	int depth;		/* live activations of the function */
	int armed_depth;	/* activation owning @wp, -1 if none */
	struct ksw_wp *wp;
	unsigned long sp;	/* SP at the arming probe hit */
};

/* ksw_task.c */
#define KSW_TASK_BITS	10
#define KSW_TASK_SLOTS	BIT(KSW_TASK_BITS)
extern struct ksw_task_ctx ksw_tasks[KSW_TASK_SLOTS];
struct ksw_task_ctx *ksw_task_get(struct task_struct *t, bool create);
void ksw_task_put(struct ksw_task_ctx *ctx);
void ksw_task_reset_all(void);
int ksw_task_exit_init(void);
void ksw_task_exit_exit(void);

/* ksw_probe.c */
int ksw_probe_init(const struct ksw_config *cfg);
void ksw_probe_exit(void);
const char *ksw_probe_exit_hook(void);

/* ksw_report.c */
extern struct ksw_catch_log ksw_catch_log;
void ksw_watch_handler(struct perf_event *bp, struct perf_sample_data *data,
		       struct pt_regs *regs);
DECLARE_PER_CPU(int, ksw_in_exit_handler);

/* ksw_state_map.c */
struct seq_file;
void ksw_state_map_init(void);
void ksw_state_map_show_stats(struct seq_file *m);

/* ksw_proc.c */
int ksw_proc_init(void);
void ksw_proc_exit(void);

/*
 * Counters, all readable from /proc/kstackwatch.  A new one must also be
 * listed in ksw_state_map.c, which names them for the proc file and for
 * readers of memory (a build-time check says so).
 */
struct ksw_stats {
	atomic64_t arms;
	atomic64_t disarms;
	atomic64_t hits;
	atomic64_t stale_hits;
	atomic64_t catches;
	atomic64_t missed_no_slot;
	atomic64_t missed_no_task;
	atomic64_t trampoline_filtered;
	atomic64_t loop_skips;
	atomic64_t canary_not_found;
	atomic64_t bad_address;
	atomic64_t not_in_task;		/* activations in IRQ/softirq/NMI */
	atomic64_t off_task_stack;	/* SP not on the task's stack */
	atomic64_t exit_disarms;	/* victim exited while armed */
	atomic64_t ring_busy;		/* record slot still being written */
	atomic64_t retarget_failed;
	atomic64_t ipi_busy;
	atomic64_t entries;
	atomic64_t exits;
	/* handler cost, local_clock() ns */
	atomic64_t arm_ns;
	atomic64_t arm_calls;
	atomic64_t noarm_ns;
	atomic64_t noarm_calls;
	atomic64_t disarm_ns;
	atomic64_t disarm_calls;
	atomic64_t nodisarm_ns;
	atomic64_t nodisarm_calls;
};

/* ksw_main.c: the global state */
struct ksw_state {
	struct ksw_config cfg;		/* stable while enabled */
	bool enabled;			/* entries and arms act only when set */
	bool exits_enabled;		/* exits disarm only when set */
	bool watching;			/* a config is installed */
	unsigned int gen;		/* bumped on every start and stop */
	atomic_t pending_ipis;		/* async IPIs not yet run */
	struct ksw_stats stats;
};

extern struct ksw_state ksw;
extern bool panic_on_catch;

int ksw_start(const struct ksw_config *cfg);
int ksw_reconfigure(const struct ksw_config *cfg);
void ksw_stop(void);

#define ksw_count(field)	atomic64_inc(&ksw.stats.field)

#endif /* KSW_H */
