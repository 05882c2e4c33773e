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
 */
#include <linux/bits.h>
#include <linux/hash.h>
#include <linux/string.h>

#include "ksw.h"

#define KSW_TASK_BITS	10
#define KSW_TASK_SLOTS	BIT(KSW_TASK_BITS)
#define KSW_TASK_PROBES	64

static struct ksw_task_ctx ksw_tasks[KSW_TASK_SLOTS];

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
