// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch probes: entry/exit pairing, arming at func+offset.
 *
 * A kprobe post-handler at func+offset arms a watchpoint.  Function entry
 * and exit are hooked separately (fprobe where CONFIG_FPROBE is set and
 * its API is known, otherwise a kretprobe), so the recursion depth counts
 * real activations: an inner activation that returns before reaching the
 * offset no longer disarms the outer one (an upstream bug).  The exit of
 * the activation that armed disarms.
 *
 * Only activations in task context are watched.  An interrupt (IRQ,
 * softirq, NMI) that runs the function shares current with the task it
 * interrupted, so counting it would tear that task's depth; and it runs
 * on an IRQ stack, which is not the task's stack that the watch is about.
 * Such activations are counted in not_in_task and otherwise ignored.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fprobe.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/sched/clock.h>
#include <linux/sched/task_stack.h>

#include "ksw.h"

#define KSW_MAXACTIVE	1024

/* Set while this CPU runs the exit hook: its writes are not catches. */
DEFINE_PER_CPU(int, ksw_in_exit_handler);

static struct kprobe ksw_kp;
static bool ksw_kp_registered;
static bool ksw_exit_registered;

static void ksw_account(atomic64_t *ns, atomic64_t *calls, u64 t0)
{
	atomic64_add(local_clock() - t0, ns);
	atomic64_inc(calls);
}

/*
 * Was the code that @kp interrupted running in task context?  A kprobe
 * that is not ftrace-based fires from int3, and exc_int3() enters NMI
 * context (nmi_enter() adds NMI_OFFSET + HARDIRQ_OFFSET) before any
 * handler runs; that layer is the probe's, not the probed code's.
 */
static bool ksw_probed_in_task(const struct kprobe *kp)
{
	unsigned long pc = preempt_count();

	if (!(kp->flags & KPROBE_FLAG_FTRACE) && in_nmi())
		pc -= NMI_OFFSET + HARDIRQ_OFFSET;
	return !(pc & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET));
}

/* Function entry: one more live activation. */
static bool ksw_func_entry(bool in_task_ctx)
{
	struct ksw_task_ctx *ctx;

	/* pairs with smp_store_release() in ksw_enable() */
	if (!smp_load_acquire(&ksw.enabled))
		return false;
	if (!in_task_ctx) {
		ksw_count(not_in_task);
		return false;
	}
	ctx = ksw_task_get(current, true);
	if (!ctx) {
		ksw_count(missed_no_task);
		return false;
	}
	ctx->depth++;
	ksw_count(entries);
	return true;
}

/* Function exit: the activation that armed disarms. */
static void ksw_func_exit(void)
{
	u64 t0 = local_clock();
	struct ksw_task_ctx *ctx;
	bool disarmed = false;

	/*
	 * Off while a stop or a reconfiguration frees the watchpoints and
	 * the task table, but only once every CPU has parked them: see
	 * ksw_quiesce().  Pairs with smp_store_release() in ksw_enable().
	 */
	if (!smp_load_acquire(&ksw.exits_enabled))
		return;
	ctx = ksw_task_get(current, false);
	if (!ctx)
		return;
	this_cpu_inc(ksw_in_exit_handler);
	ksw_count(exits);
	if (ctx->depth > 0)
		ctx->depth--;
	if (ctx->wp && ctx->armed_depth == ctx->depth) {
		ksw_wp_disarm(ctx->wp);
		ctx->wp = NULL;
		ctx->armed_depth = -1;
		ctx->sp = 0;
		ksw_count(disarms);
		disarmed = true;
	}
	if (!ctx->depth && !ctx->wp)
		ksw_task_put(ctx);
	this_cpu_dec(ksw_in_exit_handler);
	if (disarmed)
		ksw_account(&ksw.stats.disarm_ns, &ksw.stats.disarm_calls, t0);
	else
		ksw_account(&ksw.stats.nodisarm_ns, &ksw.stats.nodisarm_calls,
			    t0);
}

/* Does [addr, addr + len) lie on current's task stack? */
static bool ksw_in_stack(unsigned long addr, unsigned long len)
{
	unsigned long lo = (unsigned long)task_stack_page(current);

	return addr >= lo && addr + len > addr &&
	       addr + len <= lo + THREAD_SIZE;
}

/*
 * Find current->stack_canary above @sp.  The scan never leaves the task's
 * stack: @sp is on it (checked by the caller), and it stops at its top.
 */
static int ksw_find_canary(unsigned long sp, unsigned long *addr)
{
#ifdef CONFIG_STACKPROTECTOR
	unsigned long top = (unsigned long)task_stack_page(current);
	unsigned long canary = current->stack_canary;
	unsigned long *p = (unsigned long *)ALIGN(sp, sizeof(long));
	int i;

	top += THREAD_SIZE;
	for (i = 0; i < KSW_CANARY_WORDS; i++, p++) {
		if ((unsigned long)(p + 1) > top)
			break;
		if (READ_ONCE(*p) == canary) {
			*addr = (unsigned long)p;
			return 0;
		}
	}
#endif
	return -ENOENT;
}

static int ksw_watch_addr(unsigned long sp, unsigned long *addr)
{
	const struct ksw_config *cfg = &ksw.cfg;

	if (!ksw_in_stack(sp, sizeof(long))) {
		ksw_count(off_task_stack);
		return -ERANGE;
	}
	if (cfg->canary) {
		if (ksw_find_canary(sp, addr)) {
			/* once per config: the counter is reset at start */
			atomic64_t *missed = &ksw.stats.canary_not_found;

			if (atomic64_inc_return(missed) == 1)
				pr_err("canary not found within %d words above sp 0x%lx, not watching\n",
				       KSW_CANARY_WORDS, sp);
			return -ENOENT;
		}
		return 0;
	}
	*addr = sp + cfg->sp_offset;
	if (!ksw_in_stack(*addr, cfg->watch_len) || *addr % cfg->watch_len) {
		ksw_count(bad_address);
		return -ERANGE;
	}
	return 0;
}

static unsigned long ksw_read_value(unsigned long addr, u16 len)
{
	unsigned long v = 0;

	if (copy_from_kernel_nofault(&v, (void *)addr, len))
		return 0;
	return v;
}

static bool ksw_try_arm(struct kprobe *kp, struct pt_regs *regs)
{
	unsigned long sp = kernel_stack_pointer(regs), addr;
	struct ksw_task_ctx *ctx;
	struct ksw_wp *wp;
	int cur;

	/* pairs with smp_store_release() in ksw_enable() */
	if (!smp_load_acquire(&ksw.enabled))
		return false;
	/* the entry hook did not count this activation: nothing to arm */
	if (!ksw_probed_in_task(kp))
		return false;
	ctx = ksw_task_get(current, false);
	if (!ctx || ctx->depth <= 0)
		return false;
	cur = ctx->depth - 1;
	if (cur != ksw.cfg.depth)
		return false;
	if (ctx->wp) {
		/* probe inside a loop: this activation is already armed */
		ksw_count(loop_skips);
		return false;
	}
	if (ksw_watch_addr(sp, &addr))
		return false;
	wp = ksw_wp_get();
	if (!wp) {
		ksw_count(missed_no_slot);
		return false;
	}
	wp->victim = current;
	wp->armed_sp = sp;
	wp->depth = cur;
	wp->old_value = ksw_read_value(addr, ksw.cfg.watch_len);
	ksw_wp_arm(wp, addr);
	ctx->wp = wp;
	ctx->armed_depth = cur;
	ctx->sp = sp;
	ksw_count(arms);
	return true;
}

static void ksw_post_handler(struct kprobe *p, struct pt_regs *regs,
			     unsigned long flags)
{
	u64 t0 = local_clock();

	if (ksw_try_arm(p, regs))
		ksw_account(&ksw.stats.arm_ns, &ksw.stats.arm_calls, t0);
	else
		ksw_account(&ksw.stats.noarm_ns, &ksw.stats.noarm_calls, t0);
}

/*
 * The fprobe handler signature differs between kernels.  Kbuild reads it
 * from the kernel's <linux/fprobe.h> and defines KSW_FPROBE_FTRACE_REGS
 * (6.14+) or KSW_FPROBE_PT_REGS (6.5 to 6.13); any other fprobe API (6.1
 * to 6.4) falls back to the kretprobe.
 */
#if IS_ENABLED(CONFIG_FPROBE) && \
	(defined(KSW_FPROBE_FTRACE_REGS) || defined(KSW_FPROBE_PT_REGS))
static struct fprobe ksw_fp;

#ifdef KSW_FPROBE_FTRACE_REGS
static int ksw_fp_entry(struct fprobe *fp, unsigned long ip,
			unsigned long ret_ip, struct ftrace_regs *fregs,
			void *data)
{
	return ksw_func_entry(in_task()) ? 0 : 1;
}

static void ksw_fp_exit(struct fprobe *fp, unsigned long ip,
			unsigned long ret_ip, struct ftrace_regs *fregs,
			void *data)
{
	ksw_func_exit();
}
#else
static int ksw_fp_entry(struct fprobe *fp, unsigned long ip,
			unsigned long ret_ip, struct pt_regs *regs, void *data)
{
	return ksw_func_entry(in_task()) ? 0 : 1;
}

static void ksw_fp_exit(struct fprobe *fp, unsigned long ip,
			unsigned long ret_ip, struct pt_regs *regs, void *data)
{
	ksw_func_exit();
}
#endif

static int ksw_exit_hook_register(const char *func)
{
	const char *syms[1] = { func };

	memset(&ksw_fp, 0, sizeof(ksw_fp));
	ksw_fp.entry_handler = ksw_fp_entry;
	ksw_fp.exit_handler = ksw_fp_exit;
	ksw_fp.nr_maxactive = KSW_MAXACTIVE;
	return register_fprobe_syms(&ksw_fp, syms, 1);
}

static void ksw_exit_hook_unregister(void)
{
	unregister_fprobe(&ksw_fp);
}

static const char *ksw_exit_hook_name(void)
{
	return "fprobe";
}
#else /* no usable fprobe */
static struct kretprobe ksw_rp;

static int ksw_rp_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return ksw_func_entry(ksw_probed_in_task(&ksw_rp.kp)) ? 0 : 1;
}

static int ksw_rp_exit(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	ksw_func_exit();
	return 0;
}

static int ksw_exit_hook_register(const char *func)
{
	memset(&ksw_rp, 0, sizeof(ksw_rp));
	ksw_rp.kp.symbol_name = func;
	ksw_rp.entry_handler = ksw_rp_entry;
	ksw_rp.handler = ksw_rp_exit;
	ksw_rp.maxactive = KSW_MAXACTIVE;
	return register_kretprobe(&ksw_rp);
}

static void ksw_exit_hook_unregister(void)
{
	unregister_kretprobe(&ksw_rp);
}

static const char *ksw_exit_hook_name(void)
{
	return "kretprobe";
}
#endif /* fprobe */

/*
 * Resolve the function: its address and size, through a disabled kprobe
 * at offset 0 (module code cannot use kallsyms_lookup_name()).
 */
static int ksw_resolve(const struct ksw_config *cfg, unsigned long *size)
{
	char sym[KSYM_SYMBOL_LEN], *p;
	struct kprobe kp = {
		.symbol_name = cfg->func_name,
		.flags = KPROBE_FLAG_DISABLED,
	};
	unsigned long off;
	size_t n = strlen(cfg->func_name);
	int ret;

	ret = register_kprobe(&kp);
	if (ret) {
		if (ret == -ENOENT)
			pr_err("unknown function %s\n", cfg->func_name);
		else
			pr_err("cannot probe %s (%d)\n", cfg->func_name, ret);
		return ret;
	}
	sprint_symbol(sym, (unsigned long)kp.addr);
	unregister_kprobe(&kp);
	p = sym + n;
	if (strncmp(sym, cfg->func_name, n) || *p != '+' ||
	    sscanf(p, "+%lx/%lx", &off, size) != 2) {
		pr_err("cannot find the size of %s (%s)\n", cfg->func_name,
		       sym);
		return -ENOENT;
	}
	return 0;
}

/**
 * ksw_probe_init() - register the probes of a config
 * @cfg: the config
 *
 * Return: 0 or a negative errno (one pr_err line explains it): -ENOENT
 * unknown function, -ERANGE offset beyond the function, -EILSEQ offset
 * not on an instruction boundary, other kprobe errors as returned.
 */
int ksw_probe_init(const struct ksw_config *cfg)
{
	unsigned long size;
	int ret;

	ret = ksw_resolve(cfg, &size);
	if (ret)
		return ret;
	if (cfg->func_offset >= size) {
		pr_err("offset 0x%x is beyond the end of %s (size 0x%lx)\n",
		       cfg->func_offset, cfg->func_name, size);
		return -ERANGE;
	}
	memset(&ksw_kp, 0, sizeof(ksw_kp));
	ksw_kp.symbol_name = cfg->func_name;
	ksw_kp.offset = cfg->func_offset;
	ksw_kp.post_handler = ksw_post_handler;
	ret = register_kprobe(&ksw_kp);
	if (ret) {
		if (ret == -EILSEQ)
			pr_err("%s+0x%x is not an instruction boundary\n",
			       cfg->func_name, cfg->func_offset);
		else
			pr_err("cannot probe %s+0x%x (%d)\n", cfg->func_name,
			       cfg->func_offset, ret);
		return ret;
	}
	ksw_kp_registered = true;
	ret = ksw_exit_hook_register(cfg->func_name);
	if (ret) {
		pr_err("cannot hook the exit of %s with %s (%d)\n",
		       cfg->func_name, ksw_exit_hook_name(), ret);
		ksw_probe_exit();
		return ret;
	}
	ksw_exit_registered = true;
	return 0;
}

void ksw_probe_exit(void)
{
	if (ksw_kp_registered)
		unregister_kprobe(&ksw_kp);
	if (ksw_exit_registered)
		ksw_exit_hook_unregister();
	ksw_kp_registered = false;
	ksw_exit_registered = false;
}

const char *ksw_probe_exit_hook(void)
{
	return ksw_exit_hook_name();
}
