// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch_test_init - a stack corruption inside a module's init.
 *
 * Loading this module runs kstackwatch_test's initcall scenario from
 * module_init: this module's init function calls test_initcall_victim()
 * (in kstackwatch_test.ko, loaded first) with a writer that lies in this
 * module's .init.text and writes the victim's local with IRQs off.  With
 * kstackwatch armed on that local and ph=1, the catch panics from the #DB
 * itself while this module is still coming, so the dump holds a stack
 * that runs through .init.text down to do_init_module.  With nothing
 * armed, the load fails with -EAGAIN after the write, and may be retried.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/irqflags.h>
#include <linux/module.h>

#include "ksw_test.h"

static void __init ksw_test_init_writer(u64 *slot)
{
	unsigned long flags;

	/* IRQs off, so that kstackwatch panics in the #DB, not after it */
	local_irq_save(flags);
	WRITE_ONCE(*slot, KSW_TEST_CORRUPT); /* KSW_STORE */
	local_irq_restore(flags);
}

static int __init ksw_test_init_init(void)
{
	test_initcall_victim(ksw_test_init_writer);
	pr_info("the writer ran and nothing panicked\n");
	return -EAGAIN;
}
module_init(ksw_test_init_init);

MODULE_DESCRIPTION("kstackwatch test: a stack corruption inside module_init");
MODULE_LICENSE("GPL");
