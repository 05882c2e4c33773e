// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: what happens when a watchpoint fires.
 *
 * Runs as the perf overflow handler from the #DB exception (NMI-like:
 * no locks, no allocation).  Hits from the exit path are ignored: after
 * the watched function returns, arch_rethook_trampoline builds a pt_regs
 * on the dead frame, and the rethook or kretprobe handlers, the retpoline
 * thunks they call through, interrupt entry code and the exit hook itself
 * run their frames there, before the exit hook can disarm.  Such a hit is
 * a write by the victim task into the writer's own frame (only a dead
 * frame can hold another function's frame), by a trampoline, or by code
 * with a trampoline in its stack (the #DB's own perf and notifier frames
 * take a dozen entries, so the trace is long), or while this CPU runs the
 * exit hook.  Other hits are reported to dmesg and stored in the catch
 * record ring.
 *
 * The panic, when asked for, is raised from an irq_work right after the
 * #DB returns rather than from the #DB itself: printk output from NMI-like
 * context is only flushed to the console later, and a panic that goes
 * straight into kdump would leave the report out of the console log (it
 * would still be in the dump's printk buffer).  The writer task is the
 * one interrupted by the irq_work, so the dump still shows its stack.
 * A writer running with IRQs off would hold the irq_work back, and keep
 * running past the scene, so then the #DB panics itself.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/irq_work.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/panic.h>
#include <linux/printk.h>
#include <linux/sched/clock.h>
#include <linux/stacktrace.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/unwind.h>

#include "ksw.h"

#define KSW_TRACE_DEPTH	64

struct ksw_catch_log ksw_catch_log = {
	.magic = KSW_RECORD_MAGIC,
	.version = KSW_RECORD_VERSION,
	.header_size = offsetof(struct ksw_catch_log, records),
	.record_size = sizeof(struct ksw_catch),
	.nr_records = KSW_RECORD_RING,
};

static atomic64_t ksw_catch_seq = ATOMIC64_INIT(0);
/* a writer owns a ring slot while it fills it */
static atomic_t ksw_slot_busy[KSW_RECORD_RING];
/* #DB does not nest on a CPU: DR7 is off while it is handled */
static DEFINE_PER_CPU(struct ksw_catch, ksw_scratch);
static DEFINE_PER_CPU(unsigned long [KSW_TRACE_DEPTH], ksw_trace);
static unsigned long ksw_panic_ip;
static char ksw_panic_msg[KSW_RECORD_FUNC_LEN + KSYM_SYMBOL_LEN];

static void ksw_panic_work(struct irq_work *work)
{
	panic("%s", ksw_panic_msg);
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

/* The start of the cached trampoline around @ip, or 0. */
static unsigned long ksw_tramp_cached(unsigned long ip)
{
	int i, n = atomic_read_acquire(&ksw_tramp_valid);

	for (i = 0; i < n && i < KSW_TRAMP_CACHE; i++) {
		if (ip >= ksw_tramp_start[i] && ip < ksw_tramp_end[i])
			return ksw_tramp_start[i];
	}
	return 0;
}

/*
 * Remember the function around @ip; @sym is "name+0xoff/0xsize ...".
 * Return: its start, or 0 if @sym does not say.
 */
static unsigned long ksw_tramp_remember(unsigned long ip, const char *sym)
{
	unsigned long off, size;
	const char *p = strchr(sym, '+');
	int slot;

	if (!p || sscanf(p, "+%lx/%lx", &off, &size) != 2)
		return 0;
	slot = atomic_inc_return(&ksw_tramp_slots) - 1;
	if (slot < KSW_TRAMP_CACHE) {
		ksw_tramp_start[slot] = ip - off;
		ksw_tramp_end[slot] = ip - off + size;
		/* publish in order: a slot still being filled is not used yet */
		atomic_cmpxchg_release(&ksw_tramp_valid, slot, slot + 1);
	}
	return ip - off;
}

/*
 * Is @ip inside a return trampoline, past its first instruction?  A
 * return address equal to a trampoline's start is the hijacked return of
 * a probed function that is still running (the watched one among them),
 * not a sign that the trampoline runs.
 */
static bool ksw_in_trampoline(unsigned long ip)
{
	char sym[KSYM_SYMBOL_LEN];
	unsigned long start;
	size_t len;
	int i;

	start = ksw_tramp_cached(ip);
	if (start)
		return ip != start;
	sprint_symbol(sym, ip);
	for (i = 0; i < ARRAY_SIZE(ksw_trampolines); i++) {
		len = strlen(ksw_trampolines[i]);
		if (!strncmp(sym, ksw_trampolines[i], len) && sym[len] == '+') {
			start = ksw_tramp_remember(ip, sym);
			return start && ip != start;
		}
	}
	return false;
}

/*
 * Is @addr in the frame of the function that wrote it?  The frame spans
 * SP up to the caller's SP (the CFA), which the unwinder gives; where it
 * cannot (retpoline thunks, entry code), at least the word at SP is the
 * writer's own (a push, a call, a store to (%rsp)).  While the watched
 * activation lives, no other function's frame overlaps it.
 */
static bool ksw_in_writer_frame(struct pt_regs *regs, unsigned long addr)
{
	unsigned long top = regs->sp + sizeof(long);
	char sym[KSYM_SYMBOL_LEN];
	struct unwind_state state;
	size_t n;

	if (addr < regs->sp)
		return false;
	/* from regs, unwind_start() already steps to the writer's caller */
	unwind_start(&state, current, regs, NULL);
	if (!unwind_done(&state) && state.sp == regs->sp)
		unwind_next_frame(&state);
	if (!unwind_done(&state) && state.sp > top &&
	    state.sp - regs->sp < THREAD_SIZE)
		top = state.sp;
	if (addr >= top)
		return false;
	/* the watched function (or its .cold part) writing its own frame */
	sprint_symbol(sym, regs->ip);
	n = strlen(ksw.cfg.func_name);
	return strncmp(sym, ksw.cfg.func_name, n) ||
	       (sym[n] != '+' && sym[n] != '.');
}

/* Is the write part of the victim's return (see the top of this file)? */
static bool ksw_from_exit_path(struct ksw_wp *wp, struct pt_regs *regs,
			       unsigned long addr)
{
	unsigned long *entries = *this_cpu_ptr(&ksw_trace);
	bool self = READ_ONCE(wp->victim) == current;
	unsigned int n, i;

	if (self && this_cpu_read(ksw_in_exit_handler))
		return true;
	if (self && ksw_in_writer_frame(regs, addr))
		return true;
	if (ksw_in_trampoline(regs->ip))
		return true;
	n = stack_trace_save(entries, KSW_TRACE_DEPTH, 0);
	for (i = 0; i < n; i++) {
		if (ksw_in_trampoline(entries[i]))
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

/* Describe a catch in this CPU's scratch record. */
static struct ksw_catch *ksw_describe(struct ksw_wp *wp, struct pt_regs *regs,
				      unsigned long addr, u64 new_value,
				      bool do_panic)
{
	const struct ksw_config *cfg = &ksw.cfg;
	struct ksw_catch *rec = this_cpu_ptr(&ksw_scratch);

	memset(rec, 0, sizeof(*rec));
	rec->seq = atomic64_inc_return(&ksw_catch_seq);
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
	return rec;
}

/*
 * Store @rec in its slot of the ring, seq last.  Catch n and catch n + 16
 * share a slot; if the older one is still being written, the newer one
 * is only reported (ring_busy), never mixed into a torn record.
 */
static void ksw_store(const struct ksw_catch *rec)
{
	unsigned int i = (rec->seq - 1) % KSW_RECORD_RING;
	struct ksw_catch *slot = &ksw_catch_log.records[i];
	u64 total, prev;

	if (atomic_cmpxchg_acquire(&ksw_slot_busy[i], 0, 1)) {
		ksw_count(ring_busy);
		return;
	}
	WRITE_ONCE(slot->seq, 0);
	/*
	 * Seq 0 is visible before any field changes.  The reader is a crash
	 * dump (kdump or QEMU) taken after the CPUs stopped; it pairs with
	 * this by trusting only slots whose seq is non-zero.
	 */
	smp_wmb();
	memcpy((char *)slot + sizeof(slot->seq),
	       (const char *)rec + sizeof(rec->seq),
	       sizeof(*slot) - sizeof(slot->seq));
	/* every field is visible before seq; pairs with the dump reader */
	smp_wmb();
	WRITE_ONCE(slot->seq, rec->seq);
	/* the total only grows, whichever of two CPUs stores last */
	total = READ_ONCE(ksw_catch_log.total);
	while (total < rec->seq) {
		prev = cmpxchg(&ksw_catch_log.total, total, rec->seq);
		if (prev == total)
			break;
		total = prev;
	}
	atomic_set_release(&ksw_slot_busy[i], 0);
}

static void ksw_panic(const struct pt_regs *regs)
{
	if (cmpxchg(&ksw_panic_ip, 0, regs->ip))
		return;
	snprintf(ksw_panic_msg, sizeof(ksw_panic_msg),
		 "kstackwatch: stack corruption caught, writer %ps\n",
		 (void *)regs->ip);
	if (regs->flags & X86_EFLAGS_IF)
		irq_work_queue(&ksw_panic_iw);
	else
		nmi_panic((struct pt_regs *)regs, ksw_panic_msg);
}

/*
 * The report's header is one printk record, so that no other line lands
 * inside it, and the whole report is printed under the printk CPU lock
 * (which dump_stack() takes too), so that catches on several CPUs at
 * once do not interleave.
 */
static void ksw_report(const struct ksw_catch *rec, struct pt_regs *regs)
{
	unsigned long flags;

	printk_cpu_sync_get_irqsave(flags);
	pr_err("========== KStackWatch: Caught stack corruption ==========\n"
	       KBUILD_MODNAME ": config: %s\n"
	       KBUILD_MODNAME ": writer: %pS ip=0x%lx comm=%s pid=%d cpu=%u\n"
	       KBUILD_MODNAME ": watch: addr=0x%llx len=%u old=0x%llx new=0x%llx\n"
	       KBUILD_MODNAME ": victim: func=%s depth=%u comm=%s pid=%d armed_sp=0x%llx\n"
	       KBUILD_MODNAME ": record: seq=%llu flags=0x%x\n",
	       rec->config, (void *)regs->ip, regs->ip, rec->writer_comm,
	       rec->writer_pid, rec->cpu, rec->watch_addr, rec->watch_len,
	       rec->old_value, rec->new_value, rec->func_name, rec->depth,
	       rec->victim_comm, rec->victim_pid, rec->armed_sp, rec->seq,
	       rec->flags);
	dump_stack();
	pr_err("=================== KStackWatch End ===================\n");
	printk_cpu_sync_put_irqrestore(flags);
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
	 * While a stop or a reconfiguration tears the watch down, a hit is
	 * on a watch that is being parked, not reported.  And this CPU may
	 * still watch the watchpoint's previous target while the IPI that
	 * retargets it is in flight: such a hit is not about @addr either.
	 * The load pairs with smp_store_release() in ksw_enable().
	 */
	if (!smp_load_acquire(&ksw.enabled) ||
	    counter_arch_bp(bp)->address != addr) {
		ksw_count(stale_hits);
		return;
	}
	ksw_count(hits);
	if (ksw_from_exit_path(wp, regs, addr)) {
		ksw_count(trampoline_filtered);
		return;
	}
	if (copy_from_kernel_nofault(&new_value, (void *)addr,
				     ksw.cfg.watch_len))
		new_value = 0;
	ksw_count(catches);
	do_panic = READ_ONCE(panic_on_catch) || ksw.cfg.panic_hit;
	rec = ksw_describe(wp, regs, addr, new_value, do_panic);
	ksw_store(rec);
	ksw_report(rec, regs);
	/* later writes report their own old value */
	WRITE_ONCE(wp->old_value, new_value);
	if (do_panic)
		ksw_panic(regs);
}
