// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: what happens when a watchpoint fires.
 *
 * Runs as the perf overflow handler from the #DB exception (NMI-like:
 * no locks, no allocation).  Hits from the return trampoline are ignored:
 * after the watched function returns, arch_rethook_trampoline builds a
 * pt_regs on the dead frame before the exit handler can disarm.  Other
 * hits are reported to dmesg and stored in the catch record ring.
 *
 * The panic, when asked for, is raised from an irq_work right after the
 * #DB returns rather than from the #DB itself: printk output from NMI-like
 * context is only flushed to the console later, and a panic that goes
 * straight into kdump would leave the report out of the console log (it
 * would still be in the dump's printk buffer).  The writer task is the
 * one interrupted by the irq_work, so the dump still shows its stack.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/irq_work.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/panic.h>
#include <linux/sched/clock.h>
#include <linux/stacktrace.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "ksw.h"

#define KSW_TRACE_DEPTH	16

struct ksw_catch_log ksw_catch_log = {
	.magic = KSW_RECORD_MAGIC,
	.version = KSW_RECORD_VERSION,
	.header_size = offsetof(struct ksw_catch_log, records),
	.record_size = sizeof(struct ksw_catch),
	.nr_records = KSW_RECORD_RING,
};

static atomic64_t ksw_catch_seq = ATOMIC64_INIT(0);
static unsigned long ksw_panic_ip;

static void ksw_panic_work(struct irq_work *work)
{
	panic("kstackwatch: stack corruption caught, writer %ps\n",
	      (void *)READ_ONCE(ksw_panic_ip));
}

static struct irq_work ksw_panic_iw = IRQ_WORK_INIT_HARD(ksw_panic_work);

static const char * const ksw_trampolines[] = {
	"arch_rethook_trampoline",
	"arch_rethook_trampoline_callback",
	"rethook_trampoline_handler",
	"__kretprobe_trampoline",
	"kretprobe_trampoline_handler",
	"return_to_handler",
	"ftrace_return_to_handler",
};

/*
 * Text ranges already known to be trampolines: the exit of every watched
 * call hits the watch once, so the symbol lookup is done once per range.
 */
#define KSW_TRAMP_CACHE	8
static unsigned long ksw_tramp_start[KSW_TRAMP_CACHE];
static unsigned long ksw_tramp_end[KSW_TRAMP_CACHE];
static atomic_t ksw_tramp_slots = ATOMIC_INIT(0);
static atomic_t ksw_tramp_valid = ATOMIC_INIT(0);

static bool ksw_tramp_cached(unsigned long ip)
{
	int i, n = atomic_read_acquire(&ksw_tramp_valid);

	for (i = 0; i < n && i < KSW_TRAMP_CACHE; i++) {
		if (ip >= ksw_tramp_start[i] && ip < ksw_tramp_end[i])
			return true;
	}
	return false;
}

/* Remember the function around @ip; @sym is "name+0xoff/0xsize ...". */
static void ksw_tramp_remember(unsigned long ip, const char *sym)
{
	unsigned long off, size;
	const char *p = strchr(sym, '+');
	int slot;

	if (!p || sscanf(p, "+%lx/%lx", &off, &size) != 2)
		return;
	slot = atomic_inc_return(&ksw_tramp_slots) - 1;
	if (slot >= KSW_TRAMP_CACHE)
		return;
	ksw_tramp_start[slot] = ip - off;
	ksw_tramp_end[slot] = ip - off + size;
	/* publish in order: a slot still being filled is not used yet */
	atomic_cmpxchg_release(&ksw_tramp_valid, slot, slot + 1);
}

static bool ksw_is_trampoline(unsigned long ip)
{
	char sym[KSYM_SYMBOL_LEN];
	size_t len;
	int i;

	if (ksw_tramp_cached(ip))
		return true;
	sprint_symbol(sym, ip);
	for (i = 0; i < ARRAY_SIZE(ksw_trampolines); i++) {
		len = strlen(ksw_trampolines[i]);
		if (!strncmp(sym, ksw_trampolines[i], len) && sym[len] == '+') {
			ksw_tramp_remember(ip, sym);
			return true;
		}
	}
	return false;
}

/* Is the writer, or anything it was called from, a return trampoline? */
static bool ksw_from_trampoline(struct pt_regs *regs)
{
	unsigned long entries[KSW_TRACE_DEPTH];
	unsigned int n, i;

	if (ksw_is_trampoline(regs->ip))
		return true;
	n = stack_trace_save(entries, ARRAY_SIZE(entries), 0);
	for (i = 0; i < n; i++) {
		if (ksw_is_trampoline(entries[i]))
			return true;
	}
	return false;
}

static void ksw_copy_regs(struct ksw_regs *dst, const struct pt_regs *src)
{
	dst->r15 = src->r15;
	dst->r14 = src->r14;
	dst->r13 = src->r13;
	dst->r12 = src->r12;
	dst->bp = src->bp;
	dst->bx = src->bx;
	dst->r11 = src->r11;
	dst->r10 = src->r10;
	dst->r9 = src->r9;
	dst->r8 = src->r8;
	dst->ax = src->ax;
	dst->cx = src->cx;
	dst->dx = src->dx;
	dst->si = src->si;
	dst->di = src->di;
	dst->orig_ax = src->orig_ax;
	dst->ip = src->ip;
	dst->cs = src->cs;
	dst->flags = src->flags;
	dst->sp = src->sp;
	dst->ss = src->ss;
}

static void ksw_task_ident(struct task_struct *t, __s32 *pid, char *comm)
{
	if (!t)
		return;
	if (copy_from_kernel_nofault(pid, &t->pid, sizeof(*pid)))
		*pid = -1;
	if (copy_from_kernel_nofault(comm, t->comm, KSW_RECORD_COMM_LEN))
		strscpy(comm, "?", KSW_RECORD_COMM_LEN);
	comm[KSW_RECORD_COMM_LEN - 1] = '\0';
}

/* Fill the next slot of the ring; the slot's seq is written last. */
static struct ksw_catch *ksw_record(struct ksw_wp *wp, struct pt_regs *regs,
				    unsigned long addr, u64 new_value,
				    bool do_panic)
{
	const struct ksw_config *cfg = &ksw.cfg;
	u64 seq = atomic64_inc_return(&ksw_catch_seq);
	struct ksw_catch *rec;

	rec = &ksw_catch_log.records[(seq - 1) % KSW_RECORD_RING];
	WRITE_ONCE(rec->seq, 0);
	/*
	 * Seq 0 is visible before any field changes.  The reader is a crash
	 * dump (kdump or QEMU) taken after the CPUs stopped; it pairs with
	 * this by trusting only slots whose seq is non-zero.
	 */
	smp_wmb();
	memset(rec, 0, sizeof(*rec));
	rec->timestamp_ns = local_clock();
	rec->cpu = smp_processor_id();
	if (cfg->canary)
		rec->flags |= KSW_CATCH_CANARY;
	if (READ_ONCE(wp->victim) == current)
		rec->flags |= KSW_CATCH_SELF;
	if (do_panic)
		rec->flags |= KSW_CATCH_PANIC;
	strscpy(rec->func_name, cfg->func_name, sizeof(rec->func_name));
	strscpy(rec->config, cfg->raw, sizeof(rec->config));
	rec->func_offset = cfg->func_offset;
	rec->sp_offset = cfg->sp_offset;
	rec->watch_len = cfg->watch_len;
	rec->depth = READ_ONCE(wp->depth);
	rec->watch_addr = addr;
	rec->armed_sp = READ_ONCE(wp->armed_sp);
	rec->old_value = READ_ONCE(wp->old_value);
	rec->new_value = new_value;
	rec->victim_task = (unsigned long)READ_ONCE(wp->victim);
	rec->writer_task = (unsigned long)current;
	ksw_task_ident((struct task_struct *)(unsigned long)rec->victim_task,
		       &rec->victim_pid, rec->victim_comm);
	ksw_task_ident(current, &rec->writer_pid, rec->writer_comm);
	ksw_copy_regs(&rec->regs, regs);
	/* every field is visible before seq; pairs with the dump reader */
	smp_wmb();
	WRITE_ONCE(rec->seq, seq);
	WRITE_ONCE(ksw_catch_log.total, seq);
	return rec;
}

static void ksw_report(const struct ksw_catch *rec, struct pt_regs *regs)
{
	pr_err("========== KStackWatch: Caught stack corruption ==========\n");
	pr_err("config: %s\n", rec->config);
	pr_err("writer: %pS ip=0x%lx comm=%s pid=%d cpu=%u\n",
	       (void *)regs->ip, regs->ip, rec->writer_comm, rec->writer_pid,
	       rec->cpu);
	pr_err("watch: addr=0x%llx len=%u old=0x%llx new=0x%llx\n",
	       rec->watch_addr, rec->watch_len, rec->old_value,
	       rec->new_value);
	pr_err("victim: func=%s depth=%u comm=%s pid=%d armed_sp=0x%llx\n",
	       rec->func_name, rec->depth, rec->victim_comm, rec->victim_pid,
	       rec->armed_sp);
	pr_err("record: seq=%llu flags=0x%x\n", rec->seq, rec->flags);
	dump_stack();
	pr_err("=================== KStackWatch End ===================\n");
}

/**
 * ksw_watch_handler() - perf overflow handler of the watchpoints
 * @bp: the breakpoint event that fired
 * @data: unused
 * @regs: registers of the writer, after the writing instruction
 */
void ksw_watch_handler(struct perf_event *bp, struct perf_sample_data *data,
		       struct pt_regs *regs)
{
	struct ksw_wp *wp = bp->overflow_handler_context;
	unsigned long addr = READ_ONCE(wp->addr);
	const struct ksw_catch *rec;
	unsigned long new_value = 0;
	bool do_panic;

	if (ksw_wp_is_placeholder(addr))
		return;
	/*
	 * While a stop or a reconfiguration tears the watch down, exits no
	 * longer disarm, so a returned frame may still be watched and its
	 * reuse by the next call must not be reported.  And this CPU may
	 * still watch the watchpoint's previous target while the IPI that
	 * retargets it is in flight: such a hit is not about @addr either.
	 * The load pairs with smp_store_release() in ksw_start() and
	 * ksw_reconfigure().
	 */
	if (!smp_load_acquire(&ksw.enabled) ||
	    counter_arch_bp(bp)->address != addr) {
		ksw_count(stale_hits);
		return;
	}
	ksw_count(hits);
	if (ksw_from_trampoline(regs)) {
		ksw_count(trampoline_filtered);
		return;
	}
	if (copy_from_kernel_nofault(&new_value, (void *)addr,
				     ksw.cfg.watch_len))
		new_value = 0;
	ksw_count(catches);
	do_panic = READ_ONCE(panic_on_catch) || ksw.cfg.panic_hit;
	rec = ksw_record(wp, regs, addr, new_value, do_panic);
	ksw_report(rec, regs);
	/* later writes report their own old value */
	WRITE_ONCE(wp->old_value, new_value);
	if (do_panic && !cmpxchg(&ksw_panic_ip, 0, regs->ip))
		irq_work_queue(&ksw_panic_iw);
}
