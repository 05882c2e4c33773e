/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What kstackwatch_test.ko shares with kstackwatch_test_init.ko.
 */
#ifndef KSW_TEST_H
#define KSW_TEST_H

#include <linux/types.h>

/* What a scenario's writer writes over the victim's local. */
#define KSW_TEST_CORRUPT	0xabcdabcdabcdabcdULL

int test_initcall_victim(void (*write)(u64 *slot));

#endif /* KSW_TEST_H */
