// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: per-task state without touching task_struct.
 *
 * A fixed table, open addressing keyed by the task pointer.  A task only
 * ever touches its own entry (the probes run in its context), so the only
 * race is between tasks claiming free entries, settled by cmpxchg.  Lookups
 * scan the whole probe window instead of stopping at an empty entry, so
 * releasing an entry never hides another one.  Entries carry the config
 * generation; an entry from an older config is reset on first use.
 *
 * Only task context uses the table: activations in IRQ, softirq or NMI
 * context are not counted (see ksw_probe.c), so an interrupt that runs
 * the watched function cannot tear the depth of the task it interrupted.
 *
 * A task that dies inside the watched function (do_exit(), an oops) never
 * reaches the exit hook.  Its watchpoint would stay armed on a freed
 * stack, and its entry would keep a dangling task pointer that a new task
 * at the same address inherits.  So the sched_process_exit tracepoint,
 * which do_exit() fires in the dying task's own context, disarms and
 * drops the entry.  The tracepoint is not exported to modules; it is
 * found by name among the kernel's tracepoints.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bits.h>
#include <linux/hash.h>
#include <linux/string.h>
#include <linux/tracepoint.h>

#include "ksw.h"

#define KSW_TASK_PROBES	64

/* global only for the state map (ksw_state_map.c) */
struct ksw_task_ctx ksw_tasks[KSW_TASK_SLOTS];

static void ksw_task_init(struct ksw_task_ctx *ctx)
{
	ctx->gen = READ_ONCE(ksw.gen);
	ctx->depth = 0;
	ctx->armed_depth = -1;
	ctx->wp = NULL;
	ctx->sp = 0;
}

/**
 * ksw_task_get() - find the entry of a task
 * @t: the task, normally current
 * @create: claim a free entry if the task has none
 *
 * Return: the entry, or NULL if there is none (or the table is full).
 */
struct ksw_task_ctx *ksw_task_get(struct task_struct *t, bool create)
{
	unsigned int h = hash_ptr(t, KSW_TASK_BITS), i;
	struct ksw_task_ctx *ctx;

	for (i = 0; i < KSW_TASK_PROBES; i++) {
		ctx = &ksw_tasks[(h + i) & (KSW_TASK_SLOTS - 1)];
		if (READ_ONCE(ctx->task) != t)
			continue;
		if (ctx->gen != READ_ONCE(ksw.gen))
			ksw_task_init(ctx);
		return ctx;
	}
	if (!create)
		return NULL;
	for (i = 0; i < KSW_TASK_PROBES; i++) {
		ctx = &ksw_tasks[(h + i) & (KSW_TASK_SLOTS - 1)];
		if (READ_ONCE(ctx->task))
			continue;
		if (cmpxchg(&ctx->task, NULL, t))
			continue;
		ksw_task_init(ctx);
		return ctx;
	}
	return NULL;
}

void ksw_task_put(struct ksw_task_ctx *ctx)
{
	/*
	 * The owner's last writes to the entry happen before it is free;
	 * pairs with the (fully ordered) cmpxchg() that claims it.
	 */
	smp_store_release(&ctx->task, NULL);
}

/* Only when no probe is registered. */
void ksw_task_reset_all(void)
{
	memset(ksw_tasks, 0, sizeof(ksw_tasks));
}

/* sched_process_exit: @t is current, the dying task. */
static void ksw_task_exit(void *data, struct task_struct *t)
{
	struct ksw_task_ctx *ctx;

	/* pairs with smp_store_release() in ksw_enable() */
	if (!smp_load_acquire(&ksw.exits_enabled))
		return;
	ctx = ksw_task_get(t, false);
	if (!ctx)
		return;
	if (ctx->wp) {
		ksw_wp_disarm(ctx->wp);
		ctx->wp = NULL;
		ksw_count(disarms);
		ksw_count(exit_disarms);
	}
	ctx->depth = 0;
	ctx->armed_depth = -1;
	ksw_task_put(ctx);
}

static struct tracepoint *ksw_exit_tp;

static void ksw_find_tracepoint(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sched_process_exit"))
		*(struct tracepoint **)priv = tp;
}

/* At module load: without the exit hook a dying victim leaves a watch. */
int ksw_task_exit_init(void)
{
	int ret;

	for_each_kernel_tracepoint(ksw_find_tracepoint, &ksw_exit_tp);
	if (!ksw_exit_tp) {
		pr_err("no sched_process_exit tracepoint\n");
		return -ENOENT;
	}
	ret = tracepoint_probe_register(ksw_exit_tp, ksw_task_exit, NULL);
	if (ret) {
		pr_err("cannot hook sched_process_exit (%d)\n",
		       ret);
		ksw_exit_tp = NULL;
	}
	return ret;
}

void ksw_task_exit_exit(void)
{
	if (!ksw_exit_tp)
		return;
	tracepoint_probe_unregister(ksw_exit_tp, ksw_task_exit, NULL);
	tracepoint_synchronize_unregister();
	ksw_exit_tp = NULL;
}
