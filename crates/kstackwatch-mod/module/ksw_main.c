// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch - catch a stack corruption at the instant of the write.
 *
 * Out-of-tree re-implementation of KStackWatch for stock x86_64 kernels:
 * a kprobe at func+offset arms a hardware watchpoint on a local (SP +
 * offset) or on the stack canary of the current activation; the function's
 * exit disarms it; a write by anybody else in between is reported with
 * the writer's stack and kept in a catch record for offline analysis.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/rcupdate.h>
#include <linux/string.h>

#include "ksw.h"

struct ksw_state ksw;

bool panic_on_catch;
module_param(panic_on_catch, bool, 0644);
MODULE_PARM_DESC(panic_on_catch, "panic immediately on corruption catch");

static void ksw_reset_stats(void)
{
	memset(&ksw.stats, 0, sizeof(ksw.stats));
}

/* Exits first, so that every activation that arms also disarms. */
static void ksw_enable(void)
{
	/* publishes ksw.cfg, the watchpoints and the task table to exits */
	smp_store_release(&ksw.exits_enabled, true);
	/* the same to entries, arms and hits */
	smp_store_release(&ksw.enabled, true);
}

/*
 * Switch the handlers off so that nothing they use is in use, and no
 * returned frame is left watched on any CPU.  The steps, in this order:
 *
 *  - no more entries or arms, and wait for the arms in flight (every
 *    handler runs with preemption disabled);
 *  - aim every watchpoint at the placeholder on every CPU, and wait until
 *    each CPU has;
 *  - only then no more exits, and wait for those in flight.
 *
 * Exits keep disarming until the park has reached every CPU because a
 * victim that returns in between would otherwise leave its frame watched
 * on its own CPU until the park's IPI arrives, and that IPI is taken on
 * the victim's stack right below the returned frame: the push is a hit
 * (under QEMU TCG the interrupt is lost for good, see the README).  A
 * victim's own exit disarms on its CPU before it returns.
 */
static void ksw_quiesce(void)
{
	WRITE_ONCE(ksw.enabled, false);
	synchronize_rcu();
	ksw_watch_park_all();
	WRITE_ONCE(ksw.exits_enabled, false);
	synchronize_rcu();
}

/**
 * ksw_start() - install a parsed config
 * @cfg: the config
 *
 * Preallocates the watchpoints, then registers the probes; on any error
 * everything is undone and the module is idle.
 * Return: 0 or a negative errno.
 */
int ksw_start(const struct ksw_config *cfg)
{
	int ret;

	ksw.cfg = *cfg;
	ksw_reset_stats();
	ret = ksw_watch_init(cfg);
	if (ret)
		goto err;
	WRITE_ONCE(ksw.gen, ksw.gen + 1);
	ret = ksw_probe_init(cfg);
	if (ret)
		goto err_watch;
	ksw_enable();
	ksw.watching = true;
	pr_info("start watching: %s\n", cfg->raw);
	return 0;
err_watch:
	ksw_watch_exit();
err:
	memset(&ksw.cfg, 0, sizeof(ksw.cfg));
	return ret;
}

/**
 * ksw_reconfigure() - replace the config, keeping the probes
 * @cfg: a config for the same function and offset as the active one
 *
 * Swaps the watchpoints and the parameters without unregistering and
 * re-registering the probes, so no kernel text is patched while the
 * function may be running on other CPUs.  The handlers are switched off
 * and waited for (ksw_quiesce()) before anything they use is freed.
 * Return: 0, or a negative errno with the module idle.
 */
int ksw_reconfigure(const struct ksw_config *cfg)
{
	int ret;

	ksw_quiesce();
	ksw_watch_exit();
	ksw_task_reset_all();
	WRITE_ONCE(ksw.gen, ksw.gen + 1);
	ksw.cfg = *cfg;
	ksw_reset_stats();
	ret = ksw_watch_init(cfg);
	if (ret) {
		ksw_probe_exit();
		ksw.watching = false;
		memset(&ksw.cfg, 0, sizeof(ksw.cfg));
		return ret;
	}
	ksw_enable();
	pr_info("start watching: %s (probes kept)\n", cfg->raw);
	return 0;
}

/* Stop watching; safe to call when idle. */
void ksw_stop(void)
{
	if (!ksw.watching)
		return;
	ksw_quiesce();
	ksw_probe_exit();
	/* drains pending IPIs, then frees the breakpoints */
	ksw_watch_exit();
	ksw_task_reset_all();
	WRITE_ONCE(ksw.gen, ksw.gen + 1);
	ksw.watching = false;
	pr_info("stop watching: %s\n", ksw.cfg.raw);
}

static int __init ksw_init(void)
{
	int ret;

	atomic_set(&ksw.pending_ipis, 0);
	ksw_state_map_init();
	ret = ksw_watch_selftest();
	if (ret)
		return ret;
	ret = ksw_hotplug_init();
	if (ret)
		return ret;
	ret = ksw_task_exit_init();
	if (ret)
		goto err_hotplug;
	ret = ksw_proc_init();
	if (ret)
		goto err_task_exit;
	pr_info("module loaded (exit hook %s)\n", ksw_probe_exit_hook());
	return 0;
err_task_exit:
	ksw_task_exit_exit();
err_hotplug:
	ksw_hotplug_exit();
	return ret;
}

static void __exit ksw_exit(void)
{
	ksw_proc_exit();
	ksw_task_exit_exit();
	ksw_hotplug_exit();
	pr_info("module unloaded\n");
}

module_init(ksw_init);
module_exit(ksw_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ksw developers");
MODULE_DESCRIPTION("KStackWatch: catch stack corruption with hardware watchpoints");
