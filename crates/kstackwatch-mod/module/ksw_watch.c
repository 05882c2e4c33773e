// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: preallocated hardware watchpoints, retargeted in place.
 *
 * Each watchpoint is one pinned breakpoint perf event per online CPU,
 * created at config start (which may sleep) and aimed at a placeholder.
 * The probe handlers run in int3 context and can neither sleep nor call
 * modify_user_hw_breakpoint(), and stock kernels lack upstream's
 * modify_wide_hw_breakpoint_local().  So a CPU retargets its own event by
 * going through the breakpoint PMU's own callbacks with IRQs off:
 *
 *   bp->pmu->del(bp, 0);           arch_uninstall_hw_breakpoint()
 *   update counter_arch_bp(bp);    address, len, type
 *   bp->pmu->add(bp, PERF_EF_START); arch_install_hw_breakpoint()
 *
 * This keeps perf's slot table, the cpu_debugreg[] shadow and cpu_dr7
 * coherent, so hw_breakpoint_restore() and the final unregister see the
 * current address and no slot leaks.  Because the uninstall runs with the
 * old arch info, the slot's old DR7 length/type bits are cleared before the
 * new ones are set (upstream's reinstall only OR-ed new bits in).  It
 * relies on perf internals, so Kbuild refuses kernels before 6.1 and the
 * module runs a self-test at load.  Other CPUs are updated by
 * async IPIs with per-CPU csds; the number of IPIs in flight is counted
 * and drained before the events and csds are freed.
 *
 * The arming probe runs in int3 (NMI-like) context and sends its IPIs
 * from there.  An NMI may not send IPIs in general because, with an
 * xAPIC, sending one means writing ICR2 then ICR, and an NMI between the
 * two writes would redirect or lose the interrupted sender's IPI.  But
 * this int3 interrupts one known instruction, func+offset of the watched
 * function, so the hazard exists only if that function itself writes the
 * ICR.  For such functions (any whose name says apic or ipi) the IPIs are
 * deferred to an irq_work; everywhere else they go out at once, so that
 * other CPUs are armed even while the victim runs with IRQs off (an
 * irq_work's self-IPI would wait for spin_unlock_irq()).  The deferred
 * path retargets the CPU that runs the work as well: whichever CPU's
 * work takes the pending flag sends the update.
 *
 * Mutual exclusion with CPU hotplug: watchpoints are created and destroyed
 * under cpus_read_lock(), and the hotplug callbacks run with the hotplug
 * lock held for write, so they never see a half-built pool.
 *
 * Before the events and csds are freed, every IPI in flight must have run:
 * a synchronous no-op call to each online CPU, made twice, flushes its
 * queue (a flush runs the synchronous calls before the asynchronous ones,
 * so one round is not enough).  A CPU going offline flushes its own queue.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/ctype.h>
#include <linux/string.h>
#include <linux/irq_work.h>
#include <linux/perf_event.h>
#include <asm/debugreg.h>

#include "ksw.h"

/*
 * Idle watchpoints watch ksw_holder; nothing ever writes it.  These three
 * are global only for the state map (ksw_state_map.c).
 */
unsigned long ksw_holder __aligned(8);
struct ksw_wp ksw_wps[KSW_MAX_WATCH];
int ksw_nr_wps;
static u16 ksw_len = sizeof(unsigned long);
static int ksw_hp_state = -1;
static bool ksw_defer_ipis;
static DEFINE_PER_CPU(int, ksw_retarget_nest);
static DEFINE_PER_CPU(struct irq_work, ksw_remote_work);

bool ksw_wp_is_placeholder(unsigned long addr)
{
	return addr == (unsigned long)&ksw_holder;
}

/*
 * May @func write the APIC's ICR itself, so that its probe must not send
 * IPIs?  See the top of this file.
 */
static bool ksw_wp_defer_ipis(const char *func)
{
	char lower[KSW_FUNC_NAME_LEN];
	int i;

	for (i = 0; i < sizeof(lower) - 1 && func[i]; i++)
		lower[i] = tolower(func[i]);
	lower[i] = '\0';
	ksw_defer_ipis = strstr(lower, "apic") || strstr(lower, "ipi");
	return ksw_defer_ipis;
}

static u8 ksw_x86_len(u16 len)
{
	switch (len) {
	case 1:
		return X86_BREAKPOINT_LEN_1;
	case 2:
		return X86_BREAKPOINT_LEN_2;
	case 4:
		return X86_BREAKPOINT_LEN_4;
	default:
		return X86_BREAKPOINT_LEN_8;
	}
}

/* Aim this CPU's event of @wp at wp->addr.  IRQs must be off. */
static int ksw_wp_apply_local(struct ksw_wp *wp)
{
	int cpu = smp_processor_id();
	struct perf_event *bp = READ_ONCE(*per_cpu_ptr(wp->events, cpu));
	struct arch_hw_breakpoint *info;
	unsigned long addr;
	int ret = -ENODEV;

	if (!bp)
		return ret;
	/* a probe on the retarget path itself must not recurse */
	if (this_cpu_inc_return(ksw_retarget_nest) != 1) {
		ret = -EBUSY;
		goto out;
	}
	if (bp->state != PERF_EVENT_STATE_ACTIVE || bp->oncpu != cpu)
		goto out;
	addr = READ_ONCE(wp->addr);
	bp->pmu->del(bp, 0);
	info = counter_arch_bp(bp);
	info->address = addr;
	info->mask = 0;
	info->len = ksw_x86_len(ksw_len);
	info->type = X86_BREAKPOINT_WRITE;
	bp->attr.bp_addr = addr;
	bp->attr.bp_len = ksw_len;
	ret = bp->pmu->add(bp, PERF_EF_START);
out:
	this_cpu_dec(ksw_retarget_nest);
	if (ret)
		atomic64_inc(&ksw.stats.retarget_failed);
	return ret;
}

static void ksw_wp_ipi(void *info)
{
	ksw_wp_apply_local(info);
	atomic_dec(&ksw.pending_ipis);
}

static void ksw_wp_sync(void *info)
{
	ksw_wp_apply_local(info);
}

/* Send @wp's target to the other CPUs.  IRQs off, not in NMI context. */
static void ksw_wp_send_ipis(struct ksw_wp *wp)
{
	int cpu, this_cpu = smp_processor_id();

	for_each_online_cpu(cpu) {
		if (cpu == this_cpu)
			continue;
		atomic_inc(&ksw.pending_ipis);
		/*
		 * -EBUSY means the csd is still queued: the queued IPI reads
		 * wp->addr when it runs, so it applies this update too.
		 */
		if (smp_call_function_single_async(cpu,
						   per_cpu_ptr(wp->csd, cpu))) {
			atomic_dec(&ksw.pending_ipis);
			atomic64_inc(&ksw.stats.ipi_busy);
		}
	}
}

/* Hard IRQ context: IRQs are off, as ksw_wp_apply_local() wants. */
static void ksw_remote_work_fn(struct irq_work *work)
{
	int i;

	for (i = 0; i < READ_ONCE(ksw_nr_wps); i++) {
		if (!atomic_xchg(&ksw_wps[i].remote_pending, 0))
			continue;
		/* another CPU's work may have taken this CPU's update */
		ksw_wp_apply_local(&ksw_wps[i]);
		ksw_wp_send_ipis(&ksw_wps[i]);
	}
}

/* Retarget @wp everywhere: this CPU now, the others by async IPI. */
static void ksw_wp_update(struct ksw_wp *wp, unsigned long addr)
{
	unsigned long flags;

	WRITE_ONCE(wp->addr, addr);
	local_irq_save(flags);
	ksw_wp_apply_local(wp);
	if (num_online_cpus() > 1) {
		if (in_nmi() && READ_ONCE(ksw_defer_ipis)) {
			atomic_set(&wp->remote_pending, 1);
			irq_work_queue(this_cpu_ptr(&ksw_remote_work));
		} else {
			ksw_wp_send_ipis(wp);
		}
	}
	local_irq_restore(flags);
}

/**
 * ksw_wp_get() - take a free watchpoint
 *
 * Lockless and safe with concurrent callers on several CPUs.
 * Return: the watchpoint, or NULL if all are in use.
 */
struct ksw_wp *ksw_wp_get(void)
{
	int i;

	for (i = 0; i < READ_ONCE(ksw_nr_wps); i++) {
		if (!atomic_cmpxchg_acquire(&ksw_wps[i].busy, 0, 1))
			return &ksw_wps[i];
	}
	return NULL;
}

void ksw_wp_arm(struct ksw_wp *wp, unsigned long addr)
{
	ksw_wp_update(wp, addr);
}

/* Aim @wp back at the placeholder and give it back to the pool. */
void ksw_wp_disarm(struct ksw_wp *wp)
{
	ksw_wp_update(wp, (unsigned long)&ksw_holder);
	WRITE_ONCE(wp->victim, NULL);
	atomic_set_release(&wp->busy, 0);
}

int ksw_watch_total(void)
{
	return READ_ONCE(ksw_nr_wps);
}

int ksw_watch_free(void)
{
	int i, n = 0;

	for (i = 0; i < READ_ONCE(ksw_nr_wps); i++)
		n += !atomic_read(&ksw_wps[i].busy);
	return n;
}

static void ksw_attr_init(struct perf_event_attr *attr)
{
	hw_breakpoint_init(attr);
	attr->bp_addr = (unsigned long)&ksw_holder;
	attr->bp_len = ksw_len;
	attr->bp_type = HW_BREAKPOINT_W;
}

static int ksw_wp_create_cpu(struct ksw_wp *wp, int cpu,
			     perf_overflow_handler_t handler)
{
	struct perf_event_attr attr;
	struct perf_event *bp;

	ksw_attr_init(&attr);
	bp = perf_event_create_kernel_counter(&attr, cpu, NULL, handler, wp);
	if (IS_ERR(bp))
		return PTR_ERR(bp);
	WRITE_ONCE(*per_cpu_ptr(wp->events, cpu), bp);
	return 0;
}

static void ksw_wp_destroy_cpu(struct ksw_wp *wp, int cpu)
{
	struct perf_event *bp = *per_cpu_ptr(wp->events, cpu);

	if (!bp)
		return;
	WRITE_ONCE(*per_cpu_ptr(wp->events, cpu), NULL);
	unregister_hw_breakpoint(bp);
}

static void ksw_wp_free(struct ksw_wp *wp)
{
	int cpu;

	if (wp->events) {
		for_each_possible_cpu(cpu)
			ksw_wp_destroy_cpu(wp, cpu);
	}
	free_percpu(wp->events);
	free_percpu(wp->csd);
	memset(wp, 0, sizeof(*wp));
}

/* Caller holds cpus_read_lock(). */
static int ksw_wp_alloc(struct ksw_wp *wp, int index,
			perf_overflow_handler_t handler)
{
	int cpu, ret = -ENOMEM;

	memset(wp, 0, sizeof(*wp));
	wp->index = index;
	wp->addr = (unsigned long)&ksw_holder;
	wp->events = alloc_percpu(struct perf_event *);
	wp->csd = alloc_percpu(call_single_data_t);
	if (!wp->events || !wp->csd)
		goto err;
	for_each_possible_cpu(cpu)
		INIT_CSD(per_cpu_ptr(wp->csd, cpu), ksw_wp_ipi, wp);
	for_each_online_cpu(cpu) {
		ret = ksw_wp_create_cpu(wp, cpu, handler);
		if (ret)
			goto err;
	}
	return 0;
err:
	ksw_wp_free(wp);
	return ret;
}

/**
 * ksw_watch_init() - preallocate the watchpoints of a config
 * @cfg: the config; max_watch 0 means as many as the CPUs have free
 *
 * Return: 0, or -EBUSY when not a single breakpoint slot is free.
 */
int ksw_watch_init(const struct ksw_config *cfg)
{
	int want = cfg->max_watch ? cfg->max_watch : KSW_MAX_WATCH;
	int i, ret = 0;

	ksw_len = cfg->watch_len;
	if (ksw_wp_defer_ipis(cfg->func_name))
		pr_info("%s may send IPIs itself: other CPUs are armed only once it enables IRQs\n",
			cfg->func_name);
	cpus_read_lock();
	for (i = 0; i < want; i++) {
		ret = ksw_wp_alloc(&ksw_wps[i], i, ksw_watch_handler);
		if (ret)
			break;
		WRITE_ONCE(ksw_nr_wps, i + 1);
	}
	cpus_read_unlock();
	if (!ksw_nr_wps) {
		pr_err("no free hardware breakpoint slot (%d)\n", ret);
		return -EBUSY;
	}
	if (ksw_nr_wps < want && cfg->max_watch)
		pr_info("only %d of %d watchpoints available\n",
			ksw_nr_wps, want);
	return 0;
}

static void ksw_nop(void *info)
{
}

/* See the top of this file.  Sleeps; no CPU can go offline meanwhile. */
static void ksw_drain_ipis(void)
{
	int round, cpu;

	cpus_read_lock();
	for (round = 0; round < 2; round++) {
		for_each_online_cpu(cpu)
			smp_call_function_single(cpu, ksw_nop, NULL, 1);
	}
	cpus_read_unlock();
	WARN_ONCE(atomic_read(&ksw.pending_ipis),
		  "kstackwatch: %d IPIs still pending after a flush\n",
		  atomic_read(&ksw.pending_ipis));
}

static void ksw_park_local(void *unused)
{
	int i;

	for (i = 0; i < READ_ONCE(ksw_nr_wps); i++)
		ksw_wp_apply_local(&ksw_wps[i]);
}

/**
 * ksw_watch_park_all() - aim every watchpoint at the placeholder
 *
 * Called by a stop or a reconfiguration once no arm can run any more, and
 * while exits still disarm (see ksw_quiesce()).  Returns when every
 * online CPU has applied it, so that the exits may then stop disarming.
 * The watchpoints stay taken until they are freed.
 */
void ksw_watch_park_all(void)
{
	int i;

	cpus_read_lock();
	for (i = 0; i < READ_ONCE(ksw_nr_wps); i++)
		WRITE_ONCE(ksw_wps[i].addr, (unsigned long)&ksw_holder);
	on_each_cpu(ksw_park_local, NULL, 1);
	cpus_read_unlock();
}

/* Free all watchpoints.  The probes must already be unregistered. */
void ksw_watch_exit(void)
{
	int i, cpu;

	/* the irq_works send IPIs, the IPIs touch events and csds */
	for_each_possible_cpu(cpu)
		irq_work_sync(per_cpu_ptr(&ksw_remote_work, cpu));
	ksw_drain_ipis();
	cpus_read_lock();
	for (i = 0; i < ksw_nr_wps; i++)
		ksw_wp_free(&ksw_wps[i]);
	WRITE_ONCE(ksw_nr_wps, 0);
	cpus_read_unlock();
}

static int ksw_cpu_online(unsigned int cpu)
{
	int i, ret;

	for (i = 0; i < ksw_nr_wps; i++) {
		ret = ksw_wp_create_cpu(&ksw_wps[i], cpu, ksw_watch_handler);
		if (ret) {
			pr_err("CPU%u: cannot create watchpoint %d (%d)\n",
			       cpu, i, ret);
			continue;
		}
		/* an armed watchpoint follows its target to the new CPU */
		smp_call_function_single(cpu, ksw_wp_sync, &ksw_wps[i], 1);
	}
	return 0;
}

static int ksw_cpu_offline(unsigned int cpu)
{
	int i;

	for (i = 0; i < ksw_nr_wps; i++)
		ksw_wp_destroy_cpu(&ksw_wps[i], cpu);
	return 0;
}

int ksw_hotplug_init(void)
{
	struct irq_work hard = IRQ_WORK_INIT_HARD(ksw_remote_work_fn);
	int ret, cpu;

	for_each_possible_cpu(cpu)
		memcpy(per_cpu_ptr(&ksw_remote_work, cpu), &hard, sizeof(hard));
	ret = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN,
					"kstackwatch:online",
					ksw_cpu_online, ksw_cpu_offline);
	if (ret < 0)
		return ret;
	ksw_hp_state = ret;
	return 0;
}

void ksw_hotplug_exit(void)
{
	if (ksw_hp_state >= 0)
		cpuhp_remove_state_nocalls(ksw_hp_state);
	ksw_hp_state = -1;
}

static unsigned long ksw_selftest_var[2] __aligned(8);
static atomic_t ksw_selftest_hits;

static void ksw_selftest_handler(struct perf_event *bp,
				 struct perf_sample_data *data,
				 struct pt_regs *regs)
{
	atomic_inc(&ksw_selftest_hits);
}

static void ksw_selftest_aim(struct ksw_wp *wp, unsigned long *where)
{
	WRITE_ONCE(wp->addr, (unsigned long)where);
	on_each_cpu(ksw_wp_sync, wp, 1);
}

/**
 * ksw_watch_selftest() - check that in-place retargeting works here
 *
 * Arms a watchpoint on one word, moves it to another, and checks that
 * writes to the new word are caught and writes to the old one are not.
 * Return: 0, or -ENODEV if this kernel does not behave as expected.
 */
int ksw_watch_selftest(void)
{
	struct ksw_wp wp;
	int ret, hits[3];

	ksw_len = sizeof(unsigned long);
	atomic_set(&ksw_selftest_hits, 0);
	cpus_read_lock();
	ret = ksw_wp_alloc(&wp, 0, ksw_selftest_handler);
	cpus_read_unlock();
	if (ret) {
		pr_err("self-test: no breakpoint slot (%d)\n", ret);
		return ret;
	}
	ksw_selftest_aim(&wp, &ksw_selftest_var[0]);
	WRITE_ONCE(ksw_selftest_var[0], 1);
	hits[0] = atomic_read(&ksw_selftest_hits);
	ksw_selftest_aim(&wp, &ksw_selftest_var[1]);
	WRITE_ONCE(ksw_selftest_var[0], 2);
	hits[1] = atomic_read(&ksw_selftest_hits);
	WRITE_ONCE(ksw_selftest_var[1], 3);
	hits[2] = atomic_read(&ksw_selftest_hits);
	ksw_selftest_aim(&wp, &ksw_holder);
	cpus_read_lock();
	ksw_wp_free(&wp);
	cpus_read_unlock();
	if (hits[0] != 1 || hits[1] != 1 || hits[2] != 2) {
		pr_err("self-test failed: hits %d/%d/%d, want 1/1/2\n",
		       hits[0], hits[1], hits[2]);
		return -ENODEV;
	}
	pr_info("self-test passed: breakpoints retarget in place\n");
	return 0;
}
