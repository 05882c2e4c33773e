// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch_test - stack corruption scenarios for kstackwatch.
 *
 * Write a scenario name to /proc/kstackwatch_test to run it:
 *
 *   fire [clean]            a callee writes a local of its caller
 *   canary [clean|fatal]    a callee overflows a buffer into the canary
 *   recursion [K] [clean]   the local of activation K of a recursion
 *   silent [clean]          a stale pointer written by another thread
 *   mthread [N] [R]         N workers, R calls each, some corrupted
 *   mthread N R irqoff      the same, every call returning with IRQs off
 *   overflow [clean]        another thread overflows a frame's buffer
 *   loop [clean]            the arming probe sits inside a loop
 *   bench [N]               N calls of a probed function, timed
 *   exit die                a kthread dies inside the watched function
 *   exit reuse              then a new task at its address is a victim
 *   irq [N]                 N calls from a task while an hrtimer (hard
 *                           IRQ) and a timer (softirq) call it too; clean
 *   irqoff                  a writer on another CPU, the victim holding
 *                           a spin_lock_irq()
 *   exitpath                one clean call of a function whose whole
 *                           frame the exit path overwrites
 *   silent irqoff           silent, the writer keeping IRQs off after
 *                           the write
 *   irqentry [S]            no kstackwatch: for S seconds, a perf
 *                           watchpoint on the stack words that interrupt
 *                           entry pushes onto, then idle
 *   drhold [S]              no kstackwatch: four perf watchpoints on words
 *                           nobody writes, held S seconds
 *   park, unpark            thread "ksw_parked" sleeps inside
 *                           test_park_victim() until unpark, with its
 *                           local's address printed (for tools that read
 *                           a sleeping task's stack, or an armed watch)
 *
 * The initcall scenario is run by loading kstackwatch_test_init.ko: its
 * init function calls test_initcall_victim() with a writer of its own.
 *
 * Reading the file lists, for every scenario, a kstackwatch config in
 * both grammars ("NAME kv CONFIG" and "NAME pos CONFIG").  The probe
 * offset comes from a marker instruction inside each victim function and
 * the SP offset from a calibration call at load, so the configs match
 * this very build.  Each run prints its ground truth as one line:
 *
 *   truth scenario=S victim=FUNC local=0xADDR len=8 depth=D writer=FUNC
 *
 * Source markers, for tools that map a catch back to this file (file:line
 * from DWARF) and for readers:
 *
 *   KSW_STORE   ends the line of a scenario's corrupting store, the write
 *               a catch names as the writer's instruction.  A store in a
 *               helper that several scenarios share (fire, loop and exit
 *               use ksw_test_fire_writer()) is marked once; the silent
 *               writer has one store per variant (silent, silent irqoff),
 *               each marked.  The initcall scenario's store is in
 *               ksw_test_init.c.
 *   KSW_VICTIM  ends the declaration line of a watched victim variable,
 *               the local whose address the scenario's truth line prints.
 *               "KSW_VICTIM buf[N]": the watched word is that element.
 *               "KSW_VICTIM canary": canary scenarios (canary, overflow)
 *               watch the frame's stack canary, which no C variable
 *               names, so the buffer whose overflow reaches it is marked:
 *               the nearest source-level name for the corrupted slot.
 *
 * Only scenarios that print a truth line (and so have a writer) carry
 * markers; irq, bench and exitpath corrupt nothing.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/hw_breakpoint.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "ksw_test.h"

#define KSW_TEST_VICTIM		0x1111deadbeef0000ULL
#define KSW_TEST_BUGGY		0x2222cafef00d0000ULL
#define KSW_TEST_MAX_DEPTH	6
#define KSW_TEST_BUF_WORDS	8
#define KSW_TEST_CANARY_SCAN	16
/*
 * Frames of this many words keep their bottom out of reach of the return
 * trampoline, which builds a pt_regs on the dead frame before the exit
 * handler disarms: under QEMU TCG, thousands of such (filtered) #DB hits
 * in a row stall the guest, see crates/kstackwatch-mod/README.md.
 */
#define KSW_TEST_DEEP_WORDS	192

/*
 * Marker: "mov %rsp, *sp" at a known place.  The probe goes on this
 * instruction, so SP in the post-handler equals *@sp here.  The lea reads
 * the marker's own address without a relocation.  Always inlined, so the
 * marker lies in the victim itself.
 */
static __always_inline void ksw_mark(unsigned long *sp, unsigned long *ip)
{
	asm volatile("1: mov %%rsp, %0\n\tlea 1b(%%rip), %1"
		     : "=r" (*sp), "=r" (*ip) : : "memory");
}

enum ksw_scenario {
	KSW_FIRE,
	KSW_CANARY,
	KSW_RECURSION,
	KSW_SILENT,
	KSW_MTHREAD,
	KSW_OVERFLOW,
	KSW_LOOP,
	KSW_BENCH,
	KSW_EXIT,
	KSW_IRQ,
	KSW_IRQOFF,
	KSW_EXITPATH,
	KSW_INITCALL,
	KSW_PARK,
	KSW_NR_SCENARIOS,
};

struct ksw_test_info {
	const char *name;
	const char *func;
	void *func_addr;
	unsigned long mark;		/* address of the marker */
	unsigned long so;		/* local - SP at the marker */
	bool canary;			/* watch the canary */
	unsigned int depth;
};

static struct ksw_test_info ksw_tests[KSW_NR_SCENARIOS];
static bool ksw_calibrating;
static unsigned int ksw_recursion_target = 3;
static bool ksw_clean;
static bool ksw_fatal;
static bool ksw_irqoff;

/* Record marker and slot offset during the calibration call. */
static bool ksw_calibrate(enum ksw_scenario s, unsigned long sp,
			  unsigned long ip, unsigned long slot)
{
	if (!ksw_calibrating)
		return false;
	ksw_tests[s].mark = ip;
	ksw_tests[s].so = slot - sp;
	return true;
}

static void ksw_truth(const char *scenario, const char *victim, void *local,
		      unsigned int depth, const char *writer)
{
	pr_info("truth scenario=%s victim=%s local=0x%lx len=8 depth=%u writer=%s\n",
		scenario, victim, (unsigned long)local, depth, writer);
}

static void ksw_verdict(const char *scenario, void *local, u64 want)
{
	u64 got = READ_ONCE(*(u64 *)local);

	pr_info("result scenario=%s local=0x%lx %s value=0x%llx\n", scenario,
		(unsigned long)local, got == want ? "happy" : "unhappy", got);
}

/* Find the stack canary above @from (ground truth for canary mode). */
static u64 *ksw_canary_slot(void *from)
{
#ifdef CONFIG_STACKPROTECTOR
	u64 *p = from;
	int i;

	for (i = 0; i < KSW_TEST_CANARY_SCAN; i++, p++) {
		if (*p == current->stack_canary)
			return p;
	}
#endif
	return NULL;
}

/* ---- fire: a callee writes its caller's local ---- */

static noinline __noipa void ksw_test_fire_writer(u64 *p)
{
	if (!ksw_clean)
		WRITE_ONCE(*p, KSW_TEST_CORRUPT); /* KSW_STORE */
}

/*
 * The verdict of fire, after which test_watch_fire() returns with IRQs
 * off: buf[1] lies a few words below the SP its return leaves, where an
 * interrupt taken before the exit hook disarms would push its frame (see
 * ksw_test_silent()).  The catch, and a panic on it, come before this.
 */
static noinline __noipa void ksw_fire_verdict(u64 *local)
{
	ksw_verdict("fire", local, KSW_TEST_VICTIM);
	local_irq_disable();
}

static noinline __noipa void test_watch_fire(void)
{
	u64 buf[4] = {		/* KSW_VICTIM buf[1] */
		KSW_TEST_VICTIM, KSW_TEST_VICTIM,
		KSW_TEST_VICTIM, KSW_TEST_VICTIM,
	};
	unsigned long sp, ip;

	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_FIRE, sp, ip, (unsigned long)&buf[1]))
		return;
	ksw_truth("fire", "test_watch_fire", &buf[1], 0,
		  "ksw_test_fire_writer");
	ksw_test_fire_writer(&buf[1]);
	ksw_fire_verdict(&buf[1]);
}

/* ---- canary: a callee overflows a buffer into the canary ---- */

static noinline __noipa void ksw_test_canary_writer(u64 *buf, int n)
{
	int i;

	for (i = 0; i <= n; i++)
		WRITE_ONCE(buf[i], KSW_TEST_CORRUPT); /* KSW_STORE */
}

static noinline __noipa void ksw_test_canary_restore(u64 *slot, u64 value)
{
	WRITE_ONCE(*slot, value);
}

static noinline __noipa void test_canary_overflow(void)
{
	u64 buf[KSW_TEST_BUF_WORDS];	/* KSW_VICTIM canary */
	unsigned long sp, ip;
	u64 *canary, saved;
	int i;

	for (i = 0; i < KSW_TEST_BUF_WORDS; i++)
		buf[i] = KSW_TEST_VICTIM + i;
	ksw_mark(&sp, &ip);
	canary = ksw_canary_slot(buf);
	if (ksw_calibrate(KSW_CANARY, sp, ip, (unsigned long)canary))
		return;
	if (!canary) {
		pr_err("canary scenario: no canary above the buffer\n");
		return;
	}
	saved = *canary;
	ksw_truth("canary", "test_canary_overflow", canary, 0,
		  "ksw_test_canary_writer");
	ksw_test_canary_writer(buf, ksw_clean ? KSW_TEST_BUF_WORDS - 1 :
				    (int)(canary - buf));
	pr_info("result scenario=canary local=0x%lx %s\n",
		(unsigned long)canary,
		*canary == saved ? "happy" : "unhappy");
	/* put the canary back unless the stack protector should fire */
	if (!ksw_fatal && *canary != saved)
		ksw_test_canary_restore(canary, saved);
}

/* ---- recursion: the local of one activation, written at the bottom ---- */

static u64 *ksw_recursion_locals[KSW_TEST_MAX_DEPTH];

static noinline __noipa void ksw_test_recursion_writer(unsigned int depth)
{
	if (!ksw_clean) {
		u64 *p = ksw_recursion_locals[depth];

		WRITE_ONCE(*p, KSW_TEST_CORRUPT); /* KSW_STORE */
	}
}

static noinline __noipa void recursive_corruption_test(unsigned int depth)
{
	u64 local = KSW_TEST_VICTIM + depth;	/* KSW_VICTIM */
	unsigned long sp, ip;

	ksw_recursion_locals[depth] = &local;
	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_RECURSION, sp, ip, (unsigned long)&local))
		return;
	if (depth == ksw_recursion_target)
		ksw_truth("recursion", "recursive_corruption_test", &local,
			  depth, "ksw_test_recursion_writer");
	if (depth + 1 < KSW_TEST_MAX_DEPTH)
		recursive_corruption_test(depth + 1);
	else
		ksw_test_recursion_writer(ksw_recursion_target);
	ksw_verdict("recursion", &local, KSW_TEST_VICTIM + depth);
	ksw_recursion_locals[depth] = NULL;
}

/* ---- silent: a stale pointer, written by another thread ---- */

static u64 *ksw_stale_ptr;
static DECLARE_COMPLETION(ksw_silent_go);
static DECLARE_COMPLETION(ksw_silent_done);
static u64 ksw_dummy;

/*
 * Buggy and victim are the same code but for one constant, so their
 * frames are identical and the victim's local lands exactly where the
 * stale pointer points.
 */
static noinline __noipa void ksw_silent_init(u64 *local, bool victim)
{
	*local = victim ? KSW_TEST_VICTIM : KSW_TEST_BUGGY;
}

static noinline __noipa void ksw_silent_body(u64 *local, unsigned long sp,
					     unsigned long ip, bool victim)
{
	if (!victim) {
		/* the bug: the address escapes and outlives the frame */
		WRITE_ONCE(ksw_stale_ptr, local);
		return;
	}
	if (ksw_calibrate(KSW_SILENT, sp, ip, (unsigned long)local))
		return;
	ksw_truth("silent", "silent_corruption_victim", local, 0,
		  "silent_corruption_unwitting");
	pr_info("silent: victim local 0x%lx, stale pointer 0x%lx\n",
		(unsigned long)local, (unsigned long)ksw_stale_ptr);
	complete(&ksw_silent_go);
	wait_for_completion_timeout(&ksw_silent_done, 5 * HZ);
	ksw_verdict("silent", local, KSW_TEST_VICTIM);
	/* the victim returns with IRQs off: see ksw_test_silent() */
	local_irq_disable();
}

/* The bug: publishes the address of its local and returns. */
static noinline __noipa void silent_corruption_buggy(void)
{
	unsigned long sp, ip;
	u64 local;

	ksw_silent_init(&local, false);
	ksw_mark(&sp, &ip);
	ksw_silent_body(&local, sp, ip, false);
}

/* Its local is written by another thread through the stale pointer. */
static noinline __noipa void silent_corruption_victim(void)
{
	unsigned long sp, ip;
	u64 local;	/* KSW_VICTIM */

	ksw_silent_init(&local, true);
	ksw_mark(&sp, &ip);
	ksw_silent_body(&local, sp, ip, true);
}

/* Thread "unwitting": writes through the pointer it was handed. */
static int silent_corruption_unwitting(void *arg)
{
	u64 *p;

	wait_for_completion(&ksw_silent_go);
	p = ksw_clean ? &ksw_dummy : READ_ONCE(ksw_stale_ptr);
	if (!ksw_irqoff) {
		WRITE_ONCE(*p, KSW_TEST_CORRUPT); /* KSW_STORE */
		complete(&ksw_silent_done);
		return 0;
	}
	/*
	 * A panic on this catch must not wait for IRQs to come back: if
	 * this line is printed, the writer ran on past the scene.
	 */
	local_irq_disable();
	WRITE_ONCE(*p, KSW_TEST_CORRUPT); /* KSW_STORE */
	mdelay(2000);
	pr_info("silent: the writer still runs, 2 s after its write, IRQs off\n");
	local_irq_enable();
	complete(&ksw_silent_done);
	return 0;
}

/*
 * The watched local lies a few words below the SP that the victim's
 * return leaves, where an interrupt taken before the exit hook disarms
 * pushes its frame.  Under QEMU TCG that push loses the interrupt for
 * good (see the irqentry scenario), so the victim returns with IRQs off,
 * as in the exitpath scenario.
 */
static noinline __noipa void ksw_test_silent(void)
{
	struct task_struct *t;

	reinit_completion(&ksw_silent_go);
	reinit_completion(&ksw_silent_done);
	t = kthread_run(silent_corruption_unwitting, NULL, "unwitting");
	if (IS_ERR(t)) {
		pr_err("cannot start the writer thread\n");
		return;
	}
	silent_corruption_buggy();
	silent_corruption_victim();
	local_irq_enable();
}

/* ---- mthread: many workers, one corrupting thread ---- */

struct ksw_mt_job {
	u64 *ptr;
	struct completion done;
	struct list_head node;
};

static LIST_HEAD(ksw_mt_jobs);
static DEFINE_SPINLOCK(ksw_mt_lock);
static DECLARE_WAIT_QUEUE_HEAD(ksw_mt_wq);
static atomic_t ksw_mt_running;
static DECLARE_COMPLETION(ksw_mt_all_done);
static unsigned int ksw_mt_rounds;
static bool ksw_mt_irqoff;

static struct ksw_mt_job *ksw_mt_pop(void)
{
	struct ksw_mt_job *job;

	spin_lock(&ksw_mt_lock);
	job = list_first_entry_or_null(&ksw_mt_jobs, struct ksw_mt_job, node);
	if (job)
		list_del(&job->node);
	spin_unlock(&ksw_mt_lock);
	return job;
}

/* Thread "corrupting": writes every slot it is handed. */
static int test_mthread_corrupting(void *arg)
{
	struct ksw_mt_job *job;

	while (!kthread_should_stop()) {
		wait_event_interruptible(ksw_mt_wq,
					 !list_empty(&ksw_mt_jobs) ||
					 kthread_should_stop());
		while ((job = ksw_mt_pop())) {
			WRITE_ONCE(*job->ptr, KSW_TEST_CORRUPT); /* KSW_STORE */
			complete(&job->done);
		}
	}
	return 0;
}

/* The watched word sits at the bottom of a deep frame (many calls). */
static noinline __noipa void test_mthread_victim(int worker, int round)
{
	u64 buf[KSW_TEST_DEEP_WORDS];	/* KSW_VICTIM buf[2] */
	struct ksw_mt_job job;
	unsigned long sp, ip;
	int i;

	for (i = 0; i < 4; i++)
		buf[i] = KSW_TEST_VICTIM;
	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_MTHREAD, sp, ip, (unsigned long)&buf[2]))
		goto out;
	if ((worker + round) % 4) {
		usleep_range(100, 200);
		goto out;
	}
	job.ptr = &buf[2];
	init_completion(&job.done);
	ksw_truth("mthread", "test_mthread_victim", &buf[2], 0,
		  "test_mthread_corrupting");
	spin_lock(&ksw_mt_lock);
	list_add_tail(&job.node, &ksw_mt_jobs);
	spin_unlock(&ksw_mt_lock);
	wake_up(&ksw_mt_wq);
	wait_for_completion(&job.done);
	ksw_verdict("mthread", &buf[2], KSW_TEST_VICTIM);
out:
	/* the worker enables them again: see ksw_test_mthread() */
	if (ksw_mt_irqoff)
		local_irq_disable();
}

static int test_mthread_worker(void *arg)
{
	int worker = (long)arg, round;

	for (round = 0; round < ksw_mt_rounds; round++) {
		test_mthread_victim(worker, round);
		if (ksw_mt_irqoff)
			local_irq_enable();
	}
	if (atomic_dec_and_test(&ksw_mt_running))
		complete(&ksw_mt_all_done);
	return 0;
}

/*
 * With irqoff, every call returns with IRQs off until the exit hook has
 * disarmed: a watch on the top of the victim's frame (the stress run's
 * exit-window variant) then sees the exit path's own pushes on every
 * return, but no interrupt frame, whose push onto a watched word QEMU TCG
 * loses for good (see the irqentry scenario and ksw_test_silent()).
 */
static void ksw_test_mthread(unsigned int workers, unsigned int rounds)
{
	struct task_struct *corrupting, *t;
	unsigned int i, started = 0;

	ksw_mt_rounds = rounds;
	ksw_mt_irqoff = ksw_irqoff;
	reinit_completion(&ksw_mt_all_done);
	corrupting = kthread_run(test_mthread_corrupting, NULL, "corrupting");
	if (IS_ERR(corrupting))
		return;
	atomic_set(&ksw_mt_running, 1);
	for (i = 0; i < workers; i++) {
		atomic_inc(&ksw_mt_running);
		t = kthread_run(test_mthread_worker, (void *)(long)i,
				"ksw_worker/%u", i);
		if (IS_ERR(t)) {
			atomic_dec(&ksw_mt_running);
			break;
		}
		started++;
	}
	if (atomic_dec_and_test(&ksw_mt_running))
		complete(&ksw_mt_all_done);
	wait_for_completion(&ksw_mt_all_done);
	ksw_mt_irqoff = false;
	kthread_stop(corrupting);
	pr_info("mthread: %u workers, %u rounds done\n", started, rounds);
}

/* ---- overflow: another thread overflows a frame's buffer ---- */

static u64 *ksw_overflow_buf;
static int ksw_overflow_words;
static DECLARE_COMPLETION(ksw_overflow_go);
static DECLARE_COMPLETION(ksw_overflow_done);

/* Thread "corrupting": copies one word too many. */
static int test_overflow_corrupting(void *arg)
{
	int i;

	wait_for_completion(&ksw_overflow_go);
	for (i = 0; i < ksw_overflow_words; i++) {
		u64 *slot = &ksw_overflow_buf[i];

		WRITE_ONCE(*slot, KSW_TEST_CORRUPT); /* KSW_STORE */
	}
	complete(&ksw_overflow_done);
	return 0;
}

static noinline __noipa void test_overflow_victim(void)
{
	u64 buf[KSW_TEST_BUF_WORDS];	/* KSW_VICTIM canary */
	unsigned long sp, ip;
	u64 *canary, saved;
	int i;

	for (i = 0; i < KSW_TEST_BUF_WORDS; i++)
		buf[i] = KSW_TEST_VICTIM;
	ksw_mark(&sp, &ip);
	canary = ksw_canary_slot(buf);
	if (ksw_calibrate(KSW_OVERFLOW, sp, ip, (unsigned long)canary))
		return;
	if (!canary) {
		pr_err("overflow scenario: no canary above the buffer\n");
		return;
	}
	saved = *canary;
	ksw_overflow_buf = buf;
	ksw_overflow_words = ksw_clean ? KSW_TEST_BUF_WORDS :
			     (int)(canary - buf) + 1;
	ksw_truth("overflow", "test_overflow_victim", canary, 0,
		  "test_overflow_corrupting");
	complete(&ksw_overflow_go);
	wait_for_completion_timeout(&ksw_overflow_done, 5 * HZ);
	pr_info("result scenario=overflow local=0x%lx %s\n",
		(unsigned long)canary,
		*canary == saved ? "happy" : "unhappy");
	if (*canary != saved)
		ksw_test_canary_restore(canary, saved);
}

static void ksw_test_overflow(void)
{
	struct task_struct *t;

	reinit_completion(&ksw_overflow_go);
	reinit_completion(&ksw_overflow_done);
	t = kthread_run(test_overflow_corrupting, NULL, "corrupting");
	if (IS_ERR(t))
		return;
	test_overflow_victim();
}

/* ---- loop: the marker runs several times per activation ---- */

static noinline __noipa void test_loop_victim(void)
{
	u64 local = KSW_TEST_VICTIM;	/* KSW_VICTIM */
	unsigned long sp, ip;
	int i;

	for (i = 0; i < 4; i++) {
		ksw_mark(&sp, &ip);
		if (ksw_calibrate(KSW_LOOP, sp, ip, (unsigned long)&local))
			return;
	}
	ksw_truth("loop", "test_loop_victim", &local, 0,
		  "ksw_test_fire_writer");
	ksw_test_fire_writer(&local);
	ksw_verdict("loop", &local, KSW_TEST_VICTIM);
}

/* ---- bench: the cost of the probes, armed or not ---- */

/* the watched word sits at the bottom of a deep frame: no #DB hits */
static noinline __noipa void test_bench_victim(void)
{
	u64 frame[KSW_TEST_DEEP_WORDS];
	unsigned long sp, ip;

	frame[0] = KSW_TEST_VICTIM;
	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_BENCH, sp, ip, (unsigned long)&frame[0]))
		return;
	READ_ONCE(frame[0]);
}

static void ksw_test_bench(unsigned int calls)
{
	u64 t0, ns;
	unsigned int i;

	t0 = ktime_get_ns();
	for (i = 0; i < calls; i++)
		test_bench_victim();
	ns = ktime_get_ns() - t0;
	pr_info("bench calls=%u ns=%llu ns_per_call=%llu\n", calls, ns,
		calls ? ns / calls : 0);
}

/* ---- exit: the victim dies inside the watched function ---- */

static DECLARE_COMPLETION(ksw_exit_gone);
static struct task_struct *ksw_exit_dead;

static noinline __noipa void test_exit_victim(bool die)
{
	u64 local = KSW_TEST_VICTIM;	/* KSW_VICTIM */
	unsigned long sp, ip;

	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_EXIT, sp, ip, (unsigned long)&local))
		return;
	if (die) {
		/* the exit hook never runs for this activation */
		pr_info("exit: task 0x%lx dies, its local 0x%lx stays watched until exit\n",
			(unsigned long)current, (unsigned long)&local);
		kthread_complete_and_exit(&ksw_exit_gone, 0);
	}
	ksw_truth("exit", "test_exit_victim", &local, 0,
		  "ksw_test_fire_writer");
	ksw_test_fire_writer(&local);
	ksw_verdict("exit", &local, KSW_TEST_VICTIM);
}

static bool ksw_exit_live_victim;

static int ksw_exit_thread(void *arg)
{
	if (arg) {
		test_exit_victim(true);
		return 0;
	}
	if (READ_ONCE(ksw_exit_live_victim)) {
		test_exit_victim(false);
		complete(&ksw_exit_gone);
	}
	return 0;
}

/* The dying victim, then wait until its task_struct may be reused. */
static void ksw_test_exit_die(void)
{
	struct task_struct *t;

	reinit_completion(&ksw_exit_gone);
	t = kthread_run(ksw_exit_thread, (void *)1L, "ksw_exit_victim");
	if (IS_ERR(t))
		return;
	ksw_exit_dead = t;
	wait_for_completion(&ksw_exit_gone);
	msleep(20);
	rcu_barrier();
}

/*
 * A new victim at the dead task's address: before kstackwatch dropped a
 * dead task's entry, the newcomer inherited its depth and was not
 * watched.  Tasks at other addresses exit at once and are tried again.
 */
static void ksw_test_exit_reuse(void)
{
	struct task_struct *t = NULL;
	bool same = false;
	int tries;

	reinit_completion(&ksw_exit_gone);
	for (tries = 1; tries <= 50 && !same; tries++) {
		t = kthread_create(ksw_exit_thread, NULL, "ksw_exit_victim");
		if (IS_ERR(t))
			return;
		same = t == ksw_exit_dead;
		WRITE_ONCE(ksw_exit_live_victim, same);
		wake_up_process(t);
		if (!same) {
			msleep(20);
			rcu_barrier();
		}
	}
	pr_info("exit: new task 0x%lx, dead task 0x%lx, same=%d after %d tries\n",
		(unsigned long)t, (unsigned long)ksw_exit_dead, same, tries - 1);
	if (same)
		wait_for_completion(&ksw_exit_gone);
}

/* ---- irq: one function, called from task, hard IRQ and softirq ---- */

static atomic_t ksw_irq_calls[3];	/* task, hardirq, softirq */
static atomic_t ksw_irq_foreign;	/* IRQ calls off the task's stack */
static bool ksw_irq_running;
static struct hrtimer ksw_irq_hrtimer;
static struct timer_list ksw_irq_timer;

static noinline __noipa int test_irq_victim(int ctx)
{
	char buf[32];
	unsigned long sp, ip;
	u64 *canary;
	int i;

	for (i = 0; i < sizeof(buf); i++)
		WRITE_ONCE(buf[i], i + ctx);
	ksw_mark(&sp, &ip);
	canary = ksw_canary_slot(buf);
	if (ksw_calibrate(KSW_IRQ, sp, ip, (unsigned long)canary))
		return 0;
	atomic_inc(&ksw_irq_calls[ctx]);
	if (ctx && !object_is_on_stack(buf))
		atomic_inc(&ksw_irq_foreign);
	return READ_ONCE(buf[ctx]);
}

static enum hrtimer_restart ksw_irq_hrtimer_fn(struct hrtimer *t)
{
	if (!READ_ONCE(ksw_irq_running))
		return HRTIMER_NORESTART;
	test_irq_victim(1);
	hrtimer_forward_now(t, ns_to_ktime(300 * NSEC_PER_USEC));
	return HRTIMER_RESTART;
}

static void ksw_irq_timer_fn(struct timer_list *t)
{
	if (!READ_ONCE(ksw_irq_running))
		return;
	test_irq_victim(2);
	mod_timer(t, jiffies + 1);
}

static void ksw_test_irq(unsigned int calls)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ksw_irq_calls); i++)
		atomic_set(&ksw_irq_calls[i], 0);
	atomic_set(&ksw_irq_foreign, 0);
	WRITE_ONCE(ksw_irq_running, true);
	hrtimer_init(&ksw_irq_hrtimer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	ksw_irq_hrtimer.function = ksw_irq_hrtimer_fn;
	hrtimer_start(&ksw_irq_hrtimer, ns_to_ktime(300 * NSEC_PER_USEC),
		      HRTIMER_MODE_REL_HARD);
	timer_setup(&ksw_irq_timer, ksw_irq_timer_fn, 0);
	mod_timer(&ksw_irq_timer, jiffies + 1);
	for (i = 0; i < calls; i++) {
		test_irq_victim(0);
		usleep_range(500, 1000);
	}
	WRITE_ONCE(ksw_irq_running, false);
	hrtimer_cancel(&ksw_irq_hrtimer);
	del_timer_sync(&ksw_irq_timer);
	pr_info("irq: task=%d hardirq=%d softirq=%d foreign_stack=%d\n",
		atomic_read(&ksw_irq_calls[0]), atomic_read(&ksw_irq_calls[1]),
		atomic_read(&ksw_irq_calls[2]), atomic_read(&ksw_irq_foreign));
}

/* ---- irqoff: a writer on another CPU, the victim's IRQs off ---- */

static DEFINE_SPINLOCK(ksw_irqoff_lock);
static u64 *ksw_irqoff_target;
static bool ksw_irqoff_written;
static DECLARE_COMPLETION(ksw_irqoff_done);

/* Thread "irqoff_writer", on another CPU than the victim. */
static int test_irqoff_writer(void *arg)
{
	unsigned long until = jiffies + 10 * HZ;
	u64 *p;

	while (!(p = READ_ONCE(ksw_irqoff_target)) &&
	       time_before(jiffies, until))
		cpu_relax();
	if (p) {
		/* the arming IPI has long landed on this CPU by now */
		mdelay(50);
		WRITE_ONCE(*p, KSW_TEST_CORRUPT); /* KSW_STORE */
		WRITE_ONCE(ksw_irqoff_written, true);
	}
	complete(&ksw_irqoff_done);
	return 0;
}

static noinline __noipa void test_irqoff_victim(void)
{
	u64 local = KSW_TEST_VICTIM;	/* KSW_VICTIM */
	unsigned long sp, ip;
	u64 t0;

	spin_lock_irq(&ksw_irqoff_lock);
	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_IRQOFF, sp, ip, (unsigned long)&local)) {
		spin_unlock_irq(&ksw_irqoff_lock);
		return;
	}
	ksw_truth("irqoff", "test_irqoff_victim", &local, 0,
		  "test_irqoff_writer");
	WRITE_ONCE(ksw_irqoff_target, &local);
	t0 = ktime_get_ns();
	while (!READ_ONCE(ksw_irqoff_written) &&
	       ktime_get_ns() - t0 < 5 * NSEC_PER_SEC)
		cpu_relax();
	WRITE_ONCE(ksw_irqoff_target, NULL);
	spin_unlock_irq(&ksw_irqoff_lock);
	ksw_verdict("irqoff", &local, KSW_TEST_VICTIM);
}

static int ksw_irqoff_thread(void *arg)
{
	test_irqoff_victim();
	return 0;
}

static void ksw_test_irqoff(void)
{
	struct task_struct *victim, *writer;

	if (num_online_cpus() < 2) {
		pr_err("irqoff scenario: needs two CPUs\n");
		return;
	}
	WRITE_ONCE(ksw_irqoff_target, NULL);
	WRITE_ONCE(ksw_irqoff_written, false);
	reinit_completion(&ksw_irqoff_done);
	victim = kthread_create(ksw_irqoff_thread, NULL, "irqoff_victim");
	if (IS_ERR(victim))
		return;
	writer = kthread_create(test_irqoff_writer, NULL, "irqoff_writer");
	if (IS_ERR(writer)) {
		kthread_stop(victim);
		return;
	}
	kthread_bind(victim, cpumask_first(cpu_online_mask));
	kthread_bind(writer, cpumask_next(cpumask_first(cpu_online_mask),
					  cpu_online_mask));
	wake_up_process(writer);
	wake_up_process(victim);
	wait_for_completion(&ksw_irqoff_done);
	msleep(100);
}

/* ---- exitpath: the frame the return path writes over ---- */

static unsigned long ksw_exitpath_sp;	/* SP at the victim's marker */
static unsigned long ksw_exitpath_span;	/* from there to the return address */

static noinline __noipa void test_exitpath_victim(void)
{
	u64 frame[KSW_TEST_DEEP_WORDS];
	unsigned long sp, ip;

	frame[0] = KSW_TEST_VICTIM;
	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_EXITPATH, sp, ip, (unsigned long)&frame[0])) {
		ksw_exitpath_sp = sp;
		return;
	}
	READ_ONCE(frame[0]);
}

/*
 * The caller's SP at the call: the return address lies just below it.
 * IRQs stay off through the return, so that no interrupt pushes its frame
 * onto the dead, watched frame: under QEMU TCG a #DB inside interrupt
 * entry stops the vCPU (see the irqentry scenario).
 */
static noinline __noipa void ksw_test_exitpath(void)
{
	unsigned long sp, ip, flags;

	ksw_mark(&sp, &ip);
	local_irq_save(flags);
	test_exitpath_victim();
	local_irq_restore(flags);
	if (ksw_calibrating)
		ksw_exitpath_span = sp - sizeof(long) - ksw_exitpath_sp;
}

/* ---- irqentry: #DB in interrupt entry, without kstackwatch ---- */

static atomic_t ksw_irqentry_hits;

static void ksw_irqentry_hit(struct perf_event *bp,
			     struct perf_sample_data *data,
			     struct pt_regs *regs)
{
	atomic_inc(&ksw_irqentry_hits);
}

/*
 * The words just below a spinning task's SP are where every interrupt
 * that arrives pushes its frame (no stack switch for an interrupt from
 * kernel mode); kstackwatch's exit-path watches sit in such dead stack
 * too.  One of the kernel's own perf breakpoints on such a word, no
 * kprobe and no kstackwatch: every timer tick then takes a #DB inside
 * interrupt entry.  Afterwards the CPU idles; a CPU that stops taking
 * timer interrupts shows as an RCU stall and the run never finishes.
 */
static noinline __noipa void ksw_test_irqentry(unsigned int secs)
{
	struct perf_event * __percpu *bp;
	struct perf_event_attr attr;
	unsigned long sp, ip;
	u64 t0;
	int cpu;

	ksw_mark(&sp, &ip);
	hw_breakpoint_init(&attr);
	attr.bp_addr = (sp - 64) & ~7UL;
	attr.bp_len = HW_BREAKPOINT_LEN_8;
	attr.bp_type = HW_BREAKPOINT_W;
	bp = register_wide_hw_breakpoint(&attr, ksw_irqentry_hit, NULL);
	if (IS_ERR((void __force *)bp)) {
		pr_err("irqentry: no breakpoint (%ld)\n",
		       PTR_ERR((void __force *)bp));
		return;
	}
	atomic_set(&ksw_irqentry_hits, 0);
	preempt_disable();
	cpu = smp_processor_id();
	t0 = ktime_get_ns();
	while (ktime_get_ns() - t0 < (u64)secs * NSEC_PER_SEC)
		cpu_relax();
	preempt_enable();
	unregister_wide_hw_breakpoint(bp);
	pr_info("irqentry: %d hits in %u s on CPU %d\n",
		atomic_read(&ksw_irqentry_hits), secs, cpu);
	msleep(3000);
	pr_info("irqentry: every CPU still takes interrupts\n");
}

/* ---- drhold: armed debug registers, without kstackwatch ---- */

static unsigned long ksw_drhold_words[4] __aligned(8);

/*
 * Four of the kernel's own perf breakpoints, on words that nothing
 * writes, held while the caller's workload runs: every CPU then runs with
 * all four debug registers enabled, as under a kstackwatch config with
 * four slots, with no kprobe, no catch and no #DB at all.
 */
static void ksw_test_drhold(unsigned int secs)
{
	struct perf_event * __percpu *bp[ARRAY_SIZE(ksw_drhold_words)];
	struct perf_event_attr attr;
	int i, n;

	atomic_set(&ksw_irqentry_hits, 0);
	for (n = 0; n < ARRAY_SIZE(bp); n++) {
		hw_breakpoint_init(&attr);
		attr.bp_addr = (unsigned long)&ksw_drhold_words[n];
		attr.bp_len = HW_BREAKPOINT_LEN_8;
		attr.bp_type = HW_BREAKPOINT_W;
		bp[n] = register_wide_hw_breakpoint(&attr, ksw_irqentry_hit,
						    NULL);
		if (IS_ERR((void __force *)bp[n]))
			break;
	}
	msleep(secs * 1000);
	for (i = 0; i < n; i++)
		unregister_wide_hw_breakpoint(bp[i]);
	pr_info("drhold: %d breakpoints held %u s, %d hits\n", n, secs,
		atomic_read(&ksw_irqentry_hits));
}

/* ---- park: a thread asleep in a known function ---- */

static struct task_struct *ksw_parked;
static DECLARE_WAIT_QUEUE_HEAD(ksw_park_wq);

/*
 * Armed with the "park" config, the watch stays armed on @parked for as
 * long as the thread sleeps: what a reader of live memory (ksw live) can
 * hold against the address printed here.
 */
static noinline __noipa void test_park_victim(void)
{
	u64 parked = KSW_TEST_VICTIM;
	unsigned long sp, ip;

	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_PARK, sp, ip, (unsigned long)&parked))
		return;
	pr_info("park: pid %d asleep in %s local=0x%lx\n", current->pid,
		__func__, (unsigned long)&parked);
	wait_event_interruptible(ksw_park_wq, kthread_should_stop());
	ksw_verdict("park", &parked, KSW_TEST_VICTIM);
}

static int ksw_park_thread(void *arg)
{
	test_park_victim();
	return 0;
}

/* Only one parked thread; kthread_stop() ends its wait and reaps it. */
static void ksw_test_park(bool park)
{
	if (park && !ksw_parked) {
		ksw_parked = kthread_run(ksw_park_thread, NULL, "ksw_parked");
		if (IS_ERR(ksw_parked)) {
			pr_err("park: no thread (%ld)\n", PTR_ERR(ksw_parked));
			ksw_parked = NULL;
		}
	} else if (!park && ksw_parked) {
		kthread_stop(ksw_parked);
		ksw_parked = NULL;
	}
}

/* ---- initcall: the writer is another module's init code ---- */

/*
 * kstackwatch_test_init.ko's init function calls this with a writer in
 * its own .init.text, so that a catch there happens while a module is
 * still coming: its stack runs through .init.text to do_init_module.
 */
noinline __noipa int test_initcall_victim(void (*write)(u64 *slot))
{
	u64 local = KSW_TEST_VICTIM;	/* KSW_VICTIM */
	unsigned long sp, ip;

	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_INITCALL, sp, ip, (unsigned long)&local))
		return 0;
	ksw_truth("initcall", "test_initcall_victim", &local, 0,
		  "ksw_test_init_writer");
	write(&local);
	ksw_verdict("initcall", &local, KSW_TEST_VICTIM);
	return 0;
}
EXPORT_SYMBOL_GPL(test_initcall_victim);

/* ---- control ---- */

static void ksw_test_describe(void)
{
	static const char * const names[KSW_NR_SCENARIOS] = {
		"fire", "canary", "recursion", "silent", "mthread",
		"overflow", "loop", "bench", "exit", "irq", "irqoff",
		"exitpath", "initcall", "park",
	};
	static const char * const funcs[KSW_NR_SCENARIOS] = {
		"test_watch_fire", "test_canary_overflow",
		"recursive_corruption_test", "silent_corruption_victim",
		"test_mthread_victim", "test_overflow_victim",
		"test_loop_victim", "test_bench_victim", "test_exit_victim",
		"test_irq_victim", "test_irqoff_victim",
		"test_exitpath_victim", "test_initcall_victim",
		"test_park_victim",
	};
	static void * const addrs[KSW_NR_SCENARIOS] = {
		test_watch_fire, test_canary_overflow,
		recursive_corruption_test, silent_corruption_victim,
		test_mthread_victim, test_overflow_victim, test_loop_victim,
		test_bench_victim, test_exit_victim, test_irq_victim,
		test_irqoff_victim, test_exitpath_victim,
		test_initcall_victim, test_park_victim,
	};
	int i;

	for (i = 0; i < KSW_NR_SCENARIOS; i++) {
		ksw_tests[i].name = names[i];
		ksw_tests[i].func = funcs[i];
		ksw_tests[i].func_addr = addrs[i];
	}
	ksw_tests[KSW_CANARY].canary = true;
	ksw_tests[KSW_OVERFLOW].canary = true;
	ksw_tests[KSW_IRQ].canary = true;
	ksw_tests[KSW_RECURSION].depth = ksw_recursion_target;
}

static void ksw_test_calibrate(void)
{
	ksw_calibrating = true;
	test_watch_fire();
	test_canary_overflow();
	recursive_corruption_test(0);
	silent_corruption_victim();
	test_mthread_victim(0, 0);
	test_overflow_victim();
	test_loop_victim();
	test_bench_victim();
	test_exit_victim(false);
	test_irq_victim(0);
	test_irqoff_victim();
	ksw_test_exitpath();
	test_initcall_victim(NULL);
	test_park_victim();
	ksw_calibrating = false;
}

static void ksw_show_one(struct seq_file *m, const struct ksw_test_info *t)
{
	unsigned long fo = t->mark - (unsigned long)t->func_addr;

	if (t->canary) {
		seq_printf(m, "%s kv fn=%s fo=0x%lx ac=1\n", t->name, t->func,
			   fo);
		seq_printf(m, "%s pos %s+0x%lx\n", t->name, t->func, fo);
		seq_printf(m, "%s kvso fn=%s fo=0x%lx so=%lu wl=8\n", t->name,
			   t->func, fo, t->so);
		return;
	}
	seq_printf(m, "%s kv fn=%s fo=0x%lx dp=%u so=%lu wl=8\n", t->name,
		   t->func, fo, t->depth, t->so);
	seq_printf(m, "%s pos %s+0x%lx+%u %lu:8\n", t->name, t->func, fo,
		   t->depth, t->so);
}

static int ksw_test_show(struct seq_file *m, void *v)
{
	int i;

	for (i = 0; i < KSW_NR_SCENARIOS; i++)
		ksw_show_one(m, &ksw_tests[i]);
	seq_printf(m, "exitpath span %lu\n", ksw_exitpath_span);
	return 0;
}

static int ksw_test_open(struct inode *inode, struct file *file)
{
	return single_open(file, ksw_test_show, NULL);
}

static int ksw_test_run(char *cmd)
{
	char *name = strsep(&cmd, " \t\n"), *arg;
	unsigned int nums[2] = { 0, 0 }, n = 0;
	bool die = false, reuse = false;

	ksw_clean = false;
	ksw_fatal = false;
	ksw_irqoff = false;
	while ((arg = strsep(&cmd, " \t\n"))) {
		if (!*arg)
			continue;
		if (!strcmp(arg, "clean"))
			ksw_clean = true;
		else if (!strcmp(arg, "fatal"))
			ksw_fatal = true;
		else if (!strcmp(arg, "irqoff"))
			ksw_irqoff = true;
		else if (!strcmp(arg, "die"))
			die = true;
		else if (!strcmp(arg, "reuse"))
			reuse = true;
		else if (n < 2 && !kstrtouint(arg, 0, &nums[n]))
			n++;
		else
			return -EINVAL;
	}
	pr_info("run scenario=%s%s\n", name, ksw_clean ? " clean" : "");
	if (!strcmp(name, "fire")) {
		test_watch_fire();
		local_irq_enable();
	} else if (!strcmp(name, "canary")) {
		test_canary_overflow();
	} else if (!strcmp(name, "recursion")) {
		ksw_recursion_target = n ? nums[0] : 3;
		if (ksw_recursion_target >= KSW_TEST_MAX_DEPTH)
			return -ERANGE;
		recursive_corruption_test(0);
	} else if (!strcmp(name, "silent")) {
		ksw_test_silent();
	} else if (!strcmp(name, "mthread")) {
		ksw_test_mthread(n ? nums[0] : 1, n > 1 ? nums[1] : 20);
	} else if (!strcmp(name, "overflow")) {
		ksw_test_overflow();
	} else if (!strcmp(name, "loop")) {
		test_loop_victim();
	} else if (!strcmp(name, "bench")) {
		ksw_test_bench(n ? nums[0] : 10000);
	} else if (!strcmp(name, "exit") && die) {
		ksw_test_exit_die();
	} else if (!strcmp(name, "exit") && reuse && ksw_exit_dead) {
		ksw_test_exit_reuse();
	} else if (!strcmp(name, "irq")) {
		ksw_test_irq(n ? nums[0] : 200);
	} else if (!strcmp(name, "irqoff")) {
		ksw_test_irqoff();
	} else if (!strcmp(name, "exitpath")) {
		ksw_test_exitpath();
	} else if (!strcmp(name, "irqentry")) {
		ksw_test_irqentry(n ? nums[0] : 5);
	} else if (!strcmp(name, "drhold")) {
		ksw_test_drhold(n ? nums[0] : 60);
	} else if (!strcmp(name, "park") || !strcmp(name, "unpark")) {
		ksw_test_park(name[0] == 'p');
	} else {
		pr_err("unknown scenario '%s'\n", name);
		return -EINVAL;
	}
	pr_info("done scenario=%s\n", name);
	return 0;
}

static ssize_t ksw_test_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	char *buf;
	int ret;

	if (count > 64)
		return -E2BIG;
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	ret = ksw_test_run(strim(buf));
	kfree(buf);
	return ret ? ret : count;
}

static const struct proc_ops ksw_test_ops = {
	.proc_open = ksw_test_open,
	.proc_read = seq_read,
	.proc_write = ksw_test_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

static struct proc_dir_entry *ksw_test_entry;

static int __init ksw_test_init(void)
{
	ksw_test_describe();
	ksw_test_calibrate();
	ksw_test_entry = proc_create("kstackwatch_test", 0600, NULL,
				     &ksw_test_ops);
	if (!ksw_test_entry)
		return -ENOMEM;
	pr_info("loaded\n");
	return 0;
}

static void __exit ksw_test_exit(void)
{
	proc_remove(ksw_test_entry);
	ksw_test_park(false);
}

module_init(ksw_test_init);
module_exit(ksw_test_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ksw developers");
MODULE_DESCRIPTION("Stack corruption scenarios for kstackwatch");
