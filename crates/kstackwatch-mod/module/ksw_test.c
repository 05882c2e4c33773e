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
 *   overflow [clean]        another thread overflows a frame's buffer
 *   loop [clean]            the arming probe sits inside a loop
 *   bench [N]               N calls of a probed function, timed
 *
 * Reading the file lists, for every scenario, a kstackwatch config in
 * both grammars ("NAME kv CONFIG" and "NAME pos CONFIG").  The probe
 * offset comes from a marker instruction inside each victim function and
 * the SP offset from a calibration call at load, so the configs match
 * this very build.  Each run prints its ground truth as one line:
 *
 *   truth scenario=S victim=FUNC local=0xADDR len=8 depth=D writer=FUNC
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/random.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#define KSW_TEST_VICTIM		0x1111deadbeef0000ULL
#define KSW_TEST_BUGGY		0x2222cafef00d0000ULL
#define KSW_TEST_CORRUPT	0xabcdabcdabcdabcdULL
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
		WRITE_ONCE(*p, KSW_TEST_CORRUPT);
}

static noinline __noipa void test_watch_fire(void)
{
	u64 buf[4] = { KSW_TEST_VICTIM, KSW_TEST_VICTIM, KSW_TEST_VICTIM,
		       KSW_TEST_VICTIM };
	unsigned long sp, ip;

	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_FIRE, sp, ip, (unsigned long)&buf[1]))
		return;
	ksw_truth("fire", "test_watch_fire", &buf[1], 0,
		  "ksw_test_fire_writer");
	ksw_test_fire_writer(&buf[1]);
	ksw_verdict("fire", &buf[1], KSW_TEST_VICTIM);
}

/* ---- canary: a callee overflows a buffer into the canary ---- */

static noinline __noipa void ksw_test_canary_writer(u64 *buf, int n)
{
	int i;

	for (i = 0; i <= n; i++)
		WRITE_ONCE(buf[i], KSW_TEST_CORRUPT);
}

static noinline __noipa void ksw_test_canary_restore(u64 *slot, u64 value)
{
	WRITE_ONCE(*slot, value);
}

static noinline __noipa void test_canary_overflow(void)
{
	u64 buf[KSW_TEST_BUF_WORDS];
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
	if (!ksw_clean)
		WRITE_ONCE(*ksw_recursion_locals[depth], KSW_TEST_CORRUPT);
}

static noinline __noipa void recursive_corruption_test(unsigned int depth)
{
	u64 local = KSW_TEST_VICTIM + depth;
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
	u64 local;

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
	WRITE_ONCE(*p, KSW_TEST_CORRUPT);
	complete(&ksw_silent_done);
	return 0;
}

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
			WRITE_ONCE(*job->ptr, KSW_TEST_CORRUPT);
			complete(&job->done);
		}
	}
	return 0;
}

/* The watched word sits at the bottom of a deep frame (many calls). */
static noinline __noipa void test_mthread_victim(int worker, int round)
{
	u64 buf[KSW_TEST_DEEP_WORDS];
	struct ksw_mt_job job;
	unsigned long sp, ip;
	int i;

	for (i = 0; i < 4; i++)
		buf[i] = KSW_TEST_VICTIM;
	ksw_mark(&sp, &ip);
	if (ksw_calibrate(KSW_MTHREAD, sp, ip, (unsigned long)&buf[2]))
		return;
	if ((worker + round) % 4) {
		usleep_range(100, 200);
		return;
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
}

static int test_mthread_worker(void *arg)
{
	int worker = (long)arg, round;

	for (round = 0; round < ksw_mt_rounds; round++)
		test_mthread_victim(worker, round);
	if (atomic_dec_and_test(&ksw_mt_running))
		complete(&ksw_mt_all_done);
	return 0;
}

static void ksw_test_mthread(unsigned int workers, unsigned int rounds)
{
	struct task_struct *corrupting, *t;
	unsigned int i, started = 0;

	ksw_mt_rounds = rounds;
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
	for (i = 0; i < ksw_overflow_words; i++)
		WRITE_ONCE(ksw_overflow_buf[i], KSW_TEST_CORRUPT);
	complete(&ksw_overflow_done);
	return 0;
}

static noinline __noipa void test_overflow_victim(void)
{
	u64 buf[KSW_TEST_BUF_WORDS];
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
	u64 local = KSW_TEST_VICTIM;
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

/* ---- control ---- */

static void ksw_test_describe(void)
{
	static const char * const names[KSW_NR_SCENARIOS] = {
		"fire", "canary", "recursion", "silent", "mthread",
		"overflow", "loop", "bench",
	};
	static const char * const funcs[KSW_NR_SCENARIOS] = {
		"test_watch_fire", "test_canary_overflow",
		"recursive_corruption_test", "silent_corruption_victim",
		"test_mthread_victim", "test_overflow_victim",
		"test_loop_victim", "test_bench_victim",
	};
	static void * const addrs[KSW_NR_SCENARIOS] = {
		test_watch_fire, test_canary_overflow,
		recursive_corruption_test, silent_corruption_victim,
		test_mthread_victim, test_overflow_victim, test_loop_victim,
		test_bench_victim,
	};
	int i;

	for (i = 0; i < KSW_NR_SCENARIOS; i++) {
		ksw_tests[i].name = names[i];
		ksw_tests[i].func = funcs[i];
		ksw_tests[i].func_addr = addrs[i];
	}
	ksw_tests[KSW_CANARY].canary = true;
	ksw_tests[KSW_OVERFLOW].canary = true;
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

	ksw_clean = false;
	ksw_fatal = false;
	while ((arg = strsep(&cmd, " \t\n"))) {
		if (!*arg)
			continue;
		if (!strcmp(arg, "clean"))
			ksw_clean = true;
		else if (!strcmp(arg, "fatal"))
			ksw_fatal = true;
		else if (n < 2 && !kstrtouint(arg, 0, &nums[n]))
			n++;
		else
			return -EINVAL;
	}
	pr_info("run scenario=%s%s\n", name, ksw_clean ? " clean" : "");
	if (!strcmp(name, "fire")) {
		test_watch_fire();
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
}

module_init(ksw_test_init);
module_exit(ksw_test_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("ksw developers");
MODULE_DESCRIPTION("Stack corruption scenarios for kstackwatch");
