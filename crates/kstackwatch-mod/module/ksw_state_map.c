// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: the state map, where a reader of memory finds the state.
 *
 * See ksw_state_map.h for why it exists.  The entries are link-time
 * constants in two tables, the counters and everything else; module init
 * copies both into ksw_state_map, which is read-only from then on and is
 * in every crash dump that keeps the module's pages.  The counter table
 * is also what /proc/kstackwatch prints, so the proc file and the map
 * cannot disagree, and a build-time check catches a counter in struct
 * ksw_stats that is missing here.
 */
#include <linux/cache.h>
#include <linux/init.h>
#include <linux/seq_file.h>
#include <linux/stddef.h>
#include <linux/string.h>

#include "ksw.h"
#include "ksw_state_map.h"

#define KSW_OBJECT(obj)							\
	{ .name = #obj, .value = (unsigned long)&(obj), .size = sizeof(obj) }
#define KSW_TYPE(type)							\
	{ .name = "struct " #type, .size = sizeof(struct type) }
/*
 * A member's offset and size, from the member named in a struct at
 * address 0 (the expansion of offsetof() and sizeof_field()), written so
 * that each macro argument is evaluated once.
 */
#define KSW_AT(label, member)						\
	{ .name = label, .value = (unsigned long)&(member),		\
	  .size = sizeof(member) }
#define KSW_MEMBER(type, member)					\
	KSW_AT(#type "." #member, (*(struct type *)0).member)
#define KSW_STAT(counter)						\
	KSW_AT("ksw_state.stats." #counter,				\
	       (*(struct ksw_state *)0).stats.counter)

static const struct ksw_state_map_entry ksw_stat_entries[] = {
	KSW_STAT(arms),
	KSW_STAT(disarms),
	KSW_STAT(hits),
	KSW_STAT(stale_hits),
	KSW_STAT(catches),
	KSW_STAT(missed_no_slot),
	KSW_STAT(missed_no_task),
	KSW_STAT(trampoline_filtered),
	KSW_STAT(loop_skips),
	KSW_STAT(canary_not_found),
	KSW_STAT(bad_address),
	KSW_STAT(not_in_task),
	KSW_STAT(off_task_stack),
	KSW_STAT(exit_disarms),
	KSW_STAT(ring_busy),
	KSW_STAT(retarget_failed),
	KSW_STAT(ipi_busy),
	KSW_STAT(entries),
	KSW_STAT(exits),
	KSW_STAT(arm_ns),
	KSW_STAT(arm_calls),
	KSW_STAT(noarm_ns),
	KSW_STAT(noarm_calls),
	KSW_STAT(disarm_ns),
	KSW_STAT(disarm_calls),
	KSW_STAT(nodisarm_ns),
	KSW_STAT(nodisarm_calls),
};

static_assert(ARRAY_SIZE(ksw_stat_entries) ==
	      sizeof(struct ksw_stats) / sizeof(atomic64_t),
	      "a counter of struct ksw_stats is not in ksw_stat_entries");

static const struct ksw_state_map_entry ksw_state_entries[] = {
	KSW_OBJECT(ksw),
	KSW_OBJECT(ksw_wps),
	KSW_OBJECT(ksw_nr_wps),
	KSW_OBJECT(ksw_holder),
	KSW_OBJECT(ksw_tasks),
	KSW_OBJECT(ksw_catch_log),
	KSW_OBJECT(panic_on_catch),
	KSW_TYPE(ksw_state),
	KSW_MEMBER(ksw_state, cfg.raw),
	KSW_MEMBER(ksw_state, enabled),
	KSW_MEMBER(ksw_state, watching),
	KSW_MEMBER(ksw_state, gen),
	KSW_MEMBER(ksw_state, pending_ipis),
	KSW_TYPE(ksw_wp),
	KSW_MEMBER(ksw_wp, events),
	KSW_MEMBER(ksw_wp, addr),
	KSW_MEMBER(ksw_wp, busy),
	KSW_MEMBER(ksw_wp, index),
	KSW_MEMBER(ksw_wp, victim),
	KSW_MEMBER(ksw_wp, armed_sp),
	KSW_MEMBER(ksw_wp, old_value),
	KSW_MEMBER(ksw_wp, depth),
	KSW_TYPE(ksw_task_ctx),
	KSW_MEMBER(ksw_task_ctx, task),
	KSW_MEMBER(ksw_task_ctx, gen),
	KSW_MEMBER(ksw_task_ctx, depth),
	KSW_MEMBER(ksw_task_ctx, armed_depth),
	KSW_MEMBER(ksw_task_ctx, wp),
	KSW_MEMBER(ksw_task_ctx, sp),
};

static_assert(ARRAY_SIZE(ksw_state_entries) + ARRAY_SIZE(ksw_stat_entries) <=
	      KSW_STATE_MAP_ENTRIES);

/* Not static: readers find it by its symbol, or by its magic. */
struct ksw_state_map ksw_state_map __ro_after_init;

void __init ksw_state_map_init(void)
{
	struct ksw_state_map *map = &ksw_state_map;
	size_t n = ARRAY_SIZE(ksw_state_entries);

	memcpy(map->entries, ksw_state_entries, sizeof(ksw_state_entries));
	memcpy(map->entries + n, ksw_stat_entries, sizeof(ksw_stat_entries));
	map->nr_entries = n + ARRAY_SIZE(ksw_stat_entries);
	map->entry_size = sizeof(struct ksw_state_map_entry);
	map->version = KSW_STATE_MAP_VERSION;
	/* last: a reader that sees the magic sees a complete map */
	smp_store_release(&map->magic, KSW_STATE_MAP_MAGIC);
}

/* The counters, one "name: value" line each, for /proc/kstackwatch. */
void ksw_state_map_show_stats(struct seq_file *m)
{
	const char *prefix = "ksw_state.stats.";
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ksw_stat_entries); i++) {
		const struct ksw_state_map_entry *e = &ksw_stat_entries[i];
		atomic64_t *v = (void *)&ksw + e->value;

		seq_printf(m, "%s: %lld\n", e->name + strlen(prefix),
			   (long long)atomic64_read(v));
	}
}
