// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: /proc/kstackwatch, the control file.
 *
 * procfs, not debugfs: under kernel lockdown (Secure Boot) debugfs files
 * with write permission are inaccessible, which would make the tool
 * unusable exactly on the production machines it is meant for.  Mode 0600
 * and one opener at a time (a second open() gets -EBUSY).
 *
 * Mode 0600 is not enough: uid 0 in a container without CAP_SYS_ADMIN
 * could otherwise probe any kernel function, read stack values and
 * registers, and panic the host with ph=1.  So open() wants CAP_SYS_ADMIN
 * in the initial user namespace, and, since procfs would otherwise
 * sidestep lockdown, it is refused where lockdown forbids what the module
 * does for its opener: kprobes and reading kernel memory (the tracefs
 * kprobe_events check) and kernel perf breakpoints (the perf check).
 * Both are "confidentiality" reasons; "integrity" lockdown allows them,
 * and there only a signed module loads at all.
 *
 * write: a watch string (see ksw_config.c) replaces the active watch; an
 * empty write stops watching.  A new config for the same function and
 * offset keeps the probes (no text patching), anything else re-registers
 * them.  A string that does not parse is rejected
 * and the active watch stays as it was; a string that parses but cannot
 * be installed (unknown function, bad offset, no free slot) leaves the
 * module idle.  Either way nothing is half-applied.
 * read: the config, the state and the counters.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/security.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "ksw.h"

static atomic_t ksw_proc_busy = ATOMIC_INIT(0);
static struct proc_dir_entry *ksw_proc_entry;
static DEFINE_MUTEX(ksw_proc_lock);

static void ksw_show_counter(struct seq_file *m, const char *name,
			     atomic64_t *v)
{
	seq_printf(m, "%s: %lld\n", name, (long long)atomic64_read(v));
}

#define KSW_SHOW(m, field) ksw_show_counter(m, #field, &ksw.stats.field)

static int ksw_proc_show(struct seq_file *m, void *v)
{
	const struct ksw_config *cfg = &ksw.cfg;

	mutex_lock(&ksw_proc_lock);
	seq_printf(m, "config: %s\n", ksw.watching ? cfg->raw : "none");
	seq_printf(m, "state: %s\n", ksw.watching ? "watching" : "idle");
	if (ksw.watching) {
		seq_printf(m, "func_name: %s\nfunc_offset: 0x%x\ndepth: %u\n",
			   cfg->func_name, cfg->func_offset, cfg->depth);
		seq_printf(m, "mode: %s\nsp_offset: %u\nwatch_len: %u\n",
			   cfg->canary ? "canary" : "local", cfg->sp_offset,
			   cfg->watch_len);
		seq_printf(m, "max_watch: %u\npanic_hit: %d\n",
			   cfg->max_watch, cfg->panic_hit);
	}
	seq_printf(m, "exit_hook: %s\n", ksw_probe_exit_hook());
	seq_printf(m, "panic_on_catch: %d\n", panic_on_catch);
	seq_printf(m, "slots_total: %d\nslots_free: %d\n",
		   ksw_watch_total(), ksw_watch_free());
	seq_printf(m, "pending_ipis: %d\n", atomic_read(&ksw.pending_ipis));
	seq_printf(m, "catch_log: %llu\n",
		   (unsigned long long)READ_ONCE(ksw_catch_log.total));
	KSW_SHOW(m, arms);
	KSW_SHOW(m, disarms);
	KSW_SHOW(m, hits);
	KSW_SHOW(m, stale_hits);
	KSW_SHOW(m, catches);
	KSW_SHOW(m, missed_no_slot);
	KSW_SHOW(m, missed_no_task);
	KSW_SHOW(m, trampoline_filtered);
	KSW_SHOW(m, loop_skips);
	KSW_SHOW(m, canary_not_found);
	KSW_SHOW(m, bad_address);
	KSW_SHOW(m, not_in_task);
	KSW_SHOW(m, off_task_stack);
	KSW_SHOW(m, exit_disarms);
	KSW_SHOW(m, ring_busy);
	KSW_SHOW(m, retarget_failed);
	KSW_SHOW(m, ipi_busy);
	KSW_SHOW(m, entries);
	KSW_SHOW(m, exits);
	KSW_SHOW(m, arm_ns);
	KSW_SHOW(m, arm_calls);
	KSW_SHOW(m, noarm_ns);
	KSW_SHOW(m, noarm_calls);
	KSW_SHOW(m, disarm_ns);
	KSW_SHOW(m, disarm_calls);
	KSW_SHOW(m, nodisarm_ns);
	KSW_SHOW(m, nodisarm_calls);
	mutex_unlock(&ksw_proc_lock);
	return 0;
}

/* May the opener arm probes and watchpoints?  See the top of this file. */
static int ksw_proc_permitted(void)
{
	int ret;

	if (!capable(CAP_SYS_ADMIN)) {
		pr_err_ratelimited("%s[%d] lacks CAP_SYS_ADMIN in the initial user namespace, refused\n",
				   current->comm, task_pid_nr(current));
		return -EPERM;
	}
	ret = security_locked_down(LOCKDOWN_KPROBES);
	if (!ret)
		ret = security_locked_down(LOCKDOWN_PERF);
	if (ret)
		pr_err_ratelimited("kernel lockdown forbids kprobes and kernel breakpoints, refused\n");
	return ret;
}

static int ksw_proc_open(struct inode *inode, struct file *file)
{
	int ret;

	ret = ksw_proc_permitted();
	if (ret)
		return ret;
	if (atomic_cmpxchg(&ksw_proc_busy, 0, 1))
		return -EBUSY;
	ret = single_open(file, ksw_proc_show, NULL);
	if (ret)
		atomic_set(&ksw_proc_busy, 0);
	return ret;
}

static int ksw_proc_release(struct inode *inode, struct file *file)
{
	int ret = single_release(inode, file);

	atomic_set(&ksw_proc_busy, 0);
	return ret;
}

static ssize_t ksw_proc_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	struct ksw_config *cfg;
	char *buf, *s;
	ssize_t ret;

	if (count >= KSW_WRITE_MAX) {
		pr_err("write of %zu bytes is longer than %d\n", count,
		       KSW_WRITE_MAX - 1);
		return -E2BIG;
	}
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	cfg = kzalloc(sizeof(*cfg), GFP_KERNEL);
	if (!cfg) {
		ret = -ENOMEM;
		goto out_free_buf;
	}
	s = strim(buf);
	mutex_lock(&ksw_proc_lock);
	if (!*s) {
		ksw_stop();
		pr_info("config cleared\n");
		ret = count;
		goto out_unlock;
	}
	ret = ksw_config_parse(s, cfg);
	if (ret)
		goto out_unlock;
	if (ksw.watching && !strcmp(cfg->func_name, ksw.cfg.func_name) &&
	    cfg->func_offset == ksw.cfg.func_offset) {
		ret = ksw_reconfigure(cfg);
	} else {
		ksw_stop();
		ret = ksw_start(cfg);
	}
	if (!ret)
		ret = count;
out_unlock:
	mutex_unlock(&ksw_proc_lock);
	kfree(cfg);
out_free_buf:
	kfree(buf);
	return ret;
}

static const struct proc_ops ksw_proc_ops = {
	.proc_open = ksw_proc_open,
	.proc_read = seq_read,
	.proc_write = ksw_proc_write,
	.proc_lseek = seq_lseek,
	.proc_release = ksw_proc_release,
};

int ksw_proc_init(void)
{
	ksw_proc_entry = proc_create("kstackwatch", 0600, NULL, &ksw_proc_ops);
	return ksw_proc_entry ? 0 : -ENOMEM;
}

/* Removes the file and waits for running reads and writes. */
void ksw_proc_exit(void)
{
	proc_remove(ksw_proc_entry);
	mutex_lock(&ksw_proc_lock);
	ksw_stop();
	mutex_unlock(&ksw_proc_lock);
}
