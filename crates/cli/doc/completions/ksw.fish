# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ksw_global_optspecs
    string join \n h/help V/version
end

function __fish_ksw_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ksw_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ksw_using_subcommand
    set -l cmd (__fish_ksw_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ksw -n "__fish_ksw_needs_command" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_needs_command" -s V -l version -d 'Print version'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "info" -d 'Describe a dump: format, kernel release, build ID, KASLR offset, paging, CPUs and crash time'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "dmesg" -d 'Print the kernel log (printk ring buffer) saved in a dump'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "analyze" -d 'Write a source-level report of a stack corruption caught by kstackwatch.ko, from its catch record in the dump: the line that wrote, the variable it hit, the depth. A dump without a catch gets the panic, and for a stack-protector panic the watch to run next. Exit code 0: a catch was reported; 3: the dump holds no catch (the panic report was printed); 1: an error; 2: a usage error'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "resolve" -d 'Turn a function\'s local variable into a kstackwatch watch string'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "bt" -d 'Print the stack trace of a task or CPU in a dump, from its memory alone (kallsyms, BTF and ORC read out of the dump)'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "tasks" -d 'List the tasks in a dump: pid, tgid, CPU, state, task_struct, comm'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "modules" -d 'List the loaded modules: name, size, state, base, build ID (as /proc/modules and /sys/module/*/notes give them)'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "sym" -d 'Look up symbols: an address (0x...) gives `name+off/size [module]` and, with debug files, file:line; a name gives its address'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "print" -d 'Print a C expression over kernel globals with its type, as drgn prints an object: `init_task.comm`, `jiffies`, `per_cpu(runqueues, 0).nr_running`, `*(struct task_struct *)0x...`'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "live" -d 'Show kstackwatch.ko\'s state on the running kernel (/proc/kcore) or in a dump: its config, the watchpoint slots and what each CPU\'s debug registers hold, the per-task depth table, the counters, and every catch in its ring explained as `ksw analyze` explains one. Read from memory alone: the module describes its own state'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "completions" -d 'Print a shell completion script, e.g. `ksw completions bash > /usr/share/bash-completion/completions/ksw`'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "manpage" -d 'Print ksw\'s man page (roff), or with --dir write one page per command there (ksw.1, ksw-analyze.1, ...)'
complete -c ksw -n "__fish_ksw_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ksw -n "__fish_ksw_using_subcommand info" -l vmcoreinfo -d 'A file holding VMCOREINFO text, for dumps without it (QEMU without `-device vmcoreinfo`) or to override the dump\'s own' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand info" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand info" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand dmesg" -l vmcoreinfo -d 'A file holding VMCOREINFO text, for dumps without it (QEMU without `-device vmcoreinfo`) or to override the dump\'s own' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand dmesg" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand dmesg" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l catch -d 'Explain catch SEQ of kstackwatch\'s ring (default: the newest)' -r
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l vmlinux -d 'The debug vmlinux of the dump\'s build (its -dbg package, checked by build ID): file:line, inlined functions and variables of vmlinux code, its DWARF CFI where ORC has no rule, and struct layouts when the dump\'s own BTF is unusable. Frames and symbols come from the dump either way' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l module-dir -d 'A directory with the loaded modules\' .ko files (.ko, .ko.xz, .ko.zst; searched recursively; repeatable), besides /lib/modules/RELEASE and the dump\'s own directory: each is checked by build ID against the module in memory and adds file:line to its code' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l sysroot -d 'Where the standard places are, for the debug files found by the dump\'s release and build ID when --vmlinux is not given (/usr/lib/debug/boot/vmlinux-RELEASE, /usr/lib/debug/.build-id/, /usr/lib/debug/lib/modules/RELEASE/, /lib/modules/RELEASE/): an unpacked package tree, say' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l source-dir -d 'A directory to look for source files in, by the tail of the path DWARF gives (repeatable)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l source-map -d 'Rewrite the start of source paths: OLD=NEW (repeatable), for sources moved since the build' -r
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l vmcoreinfo -d 'A file holding VMCOREINFO text (see `ksw info`)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l all -d 'With a crash directory: one line per dump there (release, panic, catch, writer), newest first'
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l offline -d 'Never fetch debug files: without this, a debug file found nowhere on disk is asked for by build ID from the debuginfod servers in DEBUGINFOD_URLS (cached where elfutils caches them)'
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand analyze" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l vmlinux -d 'The debug vmlinux (default: found for --release or the running kernel)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l module -d 'A kernel module with debug info (.ko or .ko.xz); repeatable' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l module-dir -d 'Look for the function in every module under this directory' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l release -d 'The kernel release to find debug files for (default: running)' -r
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l root -d 'Filesystem root the standard debug paths are searched under' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l depth -d 'Watch only at this recursion depth (dp=, 0 = outermost)' -r
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l canary -d 'Watch the function\'s stack-protector canary slot'
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l list -d 'List the function\'s locals and parameters and where they live'
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l panic -d 'Panic the kernel on a hit (ph=1)'
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand resolve" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l cpu -d 'What CPU N ran at the crash (default: the panic CPU)' -r
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l pid -d 'The task with this PID' -r
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l task -d 'The task whose task_struct is at this (hexadecimal) address' -r
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l catch -d 'The writer at kstackwatch catch SEQ (default: the newest), from the registers in its catch record' -r
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l vmcoreinfo -d 'A file holding VMCOREINFO text (see `ksw info`)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l vmlinux -d 'The debug vmlinux of the dump\'s build (its -dbg package, checked by build ID): file:line, inlined functions and variables of vmlinux code, its DWARF CFI where ORC has no rule, and struct layouts when the dump\'s own BTF is unusable. Frames and symbols come from the dump either way' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l module-dir -d 'A directory with the loaded modules\' .ko files (.ko, .ko.xz, .ko.zst; searched recursively; repeatable), besides /lib/modules/RELEASE and the dump\'s own directory: each is checked by build ID against the module in memory and adds file:line to its code' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l sysroot -d 'Where the standard places are, for the debug files found by the dump\'s release and build ID when --vmlinux is not given (/usr/lib/debug/boot/vmlinux-RELEASE, /usr/lib/debug/.build-id/, /usr/lib/debug/lib/modules/RELEASE/, /lib/modules/RELEASE/): an unpacked package tree, say' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l all -d 'Every task'
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand bt" -l offline -d 'Never fetch debug files: without this, a debug file found nowhere on disk is asked for by build ID from the debuginfod servers in DEBUGINFOD_URLS (cached where elfutils caches them)'
complete -c ksw -n "__fish_ksw_using_subcommand bt" -s v -l verbose -d 'Also print each vmlinux frame\'s parameters and locals with their values (needs --vmlinux)'
complete -c ksw -n "__fish_ksw_using_subcommand bt" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand tasks" -l vmcoreinfo -d 'A file holding VMCOREINFO text, for dumps without it (QEMU without `-device vmcoreinfo`) or to override the dump\'s own' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand tasks" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand tasks" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand modules" -l vmcoreinfo -d 'A file holding VMCOREINFO text, for dumps without it (QEMU without `-device vmcoreinfo`) or to override the dump\'s own' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand modules" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand modules" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand sym" -l vmcoreinfo -d 'A file holding VMCOREINFO text (see `ksw info`)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand sym" -l vmlinux -d 'The debug vmlinux of the dump\'s build (its -dbg package, checked by build ID): file:line, inlined functions and variables of vmlinux code, its DWARF CFI where ORC has no rule, and struct layouts when the dump\'s own BTF is unusable. Frames and symbols come from the dump either way' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand sym" -l module-dir -d 'A directory with the loaded modules\' .ko files (.ko, .ko.xz, .ko.zst; searched recursively; repeatable), besides /lib/modules/RELEASE and the dump\'s own directory: each is checked by build ID against the module in memory and adds file:line to its code' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand sym" -l sysroot -d 'Where the standard places are, for the debug files found by the dump\'s release and build ID when --vmlinux is not given (/usr/lib/debug/boot/vmlinux-RELEASE, /usr/lib/debug/.build-id/, /usr/lib/debug/lib/modules/RELEASE/, /lib/modules/RELEASE/): an unpacked package tree, say' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand sym" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand sym" -l offline -d 'Never fetch debug files: without this, a debug file found nowhere on disk is asked for by build ID from the debuginfod servers in DEBUGINFOD_URLS (cached where elfutils caches them)'
complete -c ksw -n "__fish_ksw_using_subcommand sym" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand print" -l vmcoreinfo -d 'A file holding VMCOREINFO text (see `ksw info`)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand print" -l vmlinux -d 'The debug vmlinux of the dump\'s build (its -dbg package, checked by build ID): file:line, inlined functions and variables of vmlinux code, its DWARF CFI where ORC has no rule, and struct layouts when the dump\'s own BTF is unusable. Frames and symbols come from the dump either way' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand print" -l module-dir -d 'A directory with the loaded modules\' .ko files (.ko, .ko.xz, .ko.zst; searched recursively; repeatable), besides /lib/modules/RELEASE and the dump\'s own directory: each is checked by build ID against the module in memory and adds file:line to its code' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand print" -l sysroot -d 'Where the standard places are, for the debug files found by the dump\'s release and build ID when --vmlinux is not given (/usr/lib/debug/boot/vmlinux-RELEASE, /usr/lib/debug/.build-id/, /usr/lib/debug/lib/modules/RELEASE/, /lib/modules/RELEASE/): an unpacked package tree, say' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand print" -l json -d 'Print JSON instead of text'
complete -c ksw -n "__fish_ksw_using_subcommand print" -l offline -d 'Never fetch debug files: without this, a debug file found nowhere on disk is asked for by build ID from the debuginfod servers in DEBUGINFOD_URLS (cached where elfutils caches them)'
complete -c ksw -n "__fish_ksw_using_subcommand print" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand live" -l core -d 'The memory to read: the running kernel\'s /proc/kcore, or a dump' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand live" -l watch -d 'Read again every SECS seconds and redraw, like top, until Ctrl-C or until kstackwatch is unloaded' -r
complete -c ksw -n "__fish_ksw_using_subcommand live" -l vmcoreinfo -d 'A file holding VMCOREINFO text (see `ksw info`)' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand live" -l vmlinux -d 'The debug vmlinux of the dump\'s build (its -dbg package, checked by build ID): file:line, inlined functions and variables of vmlinux code, its DWARF CFI where ORC has no rule, and struct layouts when the dump\'s own BTF is unusable. Frames and symbols come from the dump either way' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand live" -l module-dir -d 'A directory with the loaded modules\' .ko files (.ko, .ko.xz, .ko.zst; searched recursively; repeatable), besides /lib/modules/RELEASE and the dump\'s own directory: each is checked by build ID against the module in memory and adds file:line to its code' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand live" -l sysroot -d 'Where the standard places are, for the debug files found by the dump\'s release and build ID when --vmlinux is not given (/usr/lib/debug/boot/vmlinux-RELEASE, /usr/lib/debug/.build-id/, /usr/lib/debug/lib/modules/RELEASE/, /lib/modules/RELEASE/): an unpacked package tree, say' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand live" -l json -d 'Print JSON instead of text (with --watch, one document per line)'
complete -c ksw -n "__fish_ksw_using_subcommand live" -l offline -d 'Never fetch debug files: without this, a debug file found nowhere on disk is asked for by build ID from the debuginfod servers in DEBUGINFOD_URLS (cached where elfutils caches them)'
complete -c ksw -n "__fish_ksw_using_subcommand live" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand manpage" -l dir -d 'Write ksw.1 and a page per command into this directory instead' -r -F
complete -c ksw -n "__fish_ksw_using_subcommand manpage" -s h -l help -d 'Print help'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "info" -d 'Describe a dump: format, kernel release, build ID, KASLR offset, paging, CPUs and crash time'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "dmesg" -d 'Print the kernel log (printk ring buffer) saved in a dump'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "analyze" -d 'Write a source-level report of a stack corruption caught by kstackwatch.ko, from its catch record in the dump: the line that wrote, the variable it hit, the depth. A dump without a catch gets the panic, and for a stack-protector panic the watch to run next. Exit code 0: a catch was reported; 3: the dump holds no catch (the panic report was printed); 1: an error; 2: a usage error'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "resolve" -d 'Turn a function\'s local variable into a kstackwatch watch string'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "bt" -d 'Print the stack trace of a task or CPU in a dump, from its memory alone (kallsyms, BTF and ORC read out of the dump)'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "tasks" -d 'List the tasks in a dump: pid, tgid, CPU, state, task_struct, comm'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "modules" -d 'List the loaded modules: name, size, state, base, build ID (as /proc/modules and /sys/module/*/notes give them)'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "sym" -d 'Look up symbols: an address (0x...) gives `name+off/size [module]` and, with debug files, file:line; a name gives its address'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "print" -d 'Print a C expression over kernel globals with its type, as drgn prints an object: `init_task.comm`, `jiffies`, `per_cpu(runqueues, 0).nr_running`, `*(struct task_struct *)0x...`'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "live" -d 'Show kstackwatch.ko\'s state on the running kernel (/proc/kcore) or in a dump: its config, the watchpoint slots and what each CPU\'s debug registers hold, the per-task depth table, the counters, and every catch in its ring explained as `ksw analyze` explains one. Read from memory alone: the module describes its own state'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "completions" -d 'Print a shell completion script, e.g. `ksw completions bash > /usr/share/bash-completion/completions/ksw`'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "manpage" -d 'Print ksw\'s man page (roff), or with --dir write one page per command there (ksw.1, ksw-analyze.1, ...)'
complete -c ksw -n "__fish_ksw_using_subcommand help; and not __fish_seen_subcommand_from info dmesg analyze resolve bt tasks modules sym print live completions manpage help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
