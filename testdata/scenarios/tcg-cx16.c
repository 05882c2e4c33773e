/*
 * A QEMU TCG reproduction without kstackwatch or any module: QEMU 7.2
 * computes the flags of cmpxchg16b from a stale lazy-flags state.
 *
 * popfq ends QEMU's translation block and leaves its flags state as
 * "EFLAGS in CC_SRC"; the add then puts its operand in CC_SRC without
 * QEMU writing the new flags state back, and cmpxchg16b's helper, which
 * QEMU 7.2 calls without syncing that state, reads the add's operand as
 * if it were RFLAGS. The reserved bits 3, 5, 15 and 31 of the operand
 * then show up in RFLAGS, which no x86 CPU sets. An `iretq`, as after
 * every #DB of a hardware watchpoint, leaves the same state behind as
 * popfq. QEMU 8.0 fixed it ("target/i386: Inline cmpxchg16b").
 *
 * Prints how many of N runs left impossible RFLAGS; exits 1 if any did.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned __int128 pair __attribute__((aligned(16)));

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000, bad = 0, i;
	unsigned long first = 0;

	for (i = 0; i < n; i++) {
		uint64_t lo = (uint64_t)pair, hi = (uint64_t)(pair >> 64), fl, x = 0;

		asm volatile("pushfq\n\tpopfq\n\t"
			     "mov $0x80008028, %%r8\n\t"
			     "add %%r8, %[x]\n\t"
			     "cmpxchg16b %[m]\n\t"
			     "pushfq\n\tpop %[fl]"
			     : [m] "+m"(pair), [fl] "=r"(fl), [x] "+r"(x),
			       "+a"(lo), "+d"(hi)
			     : "b"(lo + 1), "c"(hi)
			     : "r8", "memory", "cc");
		/* RFLAGS bits 3, 5, 15 and 22-63 are reserved: always 0 */
		if (fl & (0x8 | 0x20 | 0x8000 | ~0x3fffffUL)) {
			if (!bad++)
				first = fl;
		}
	}
	printf("tcg-cx16: %ld of %ld cmpxchg16b left impossible RFLAGS (first %#lx)\n",
	       bad, n, first);
	return bad != 0;
}
