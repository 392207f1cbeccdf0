# gdb helper for programs started through nix-ld: follow ld.so's library events from the first.
#
# gdb looks for ld.so's debugger hook (`_dl_debug_state`) in the file a program names as its
# interpreter, at the moment the program is exec'd. Through the shim that file is the shim, and
# ld.so is not mapped yet: gdb warns "Unable to find dynamic linker breakpoint function" and, when
# it starts the program itself (`run`, `start`), never learns of libraries loaded later (dlopen) or
# of those loaded at start in time for their initialisers. (Attaching and core files need no help:
# gdb then reads ld.so's hook from ld.so's own `r_debug`.)
#
# This helper stops once where the shim jumps into ld.so (the address the shim's file records in
# its `.nix-ld.hooks` section), learns ld.so's base from the argument block the shim hands over
# and ld.so's file from /proc/PID/maps, and stops once more at that ld.so's own `_dl_debug_state`,
# on ld.so's first call of it (giving gdb ld.so's symbols on the way, for backtraces through
# ld.so). There it has gdb set up its library tracking again
# (`set solib-search-path` does that), which now finds ld.so's real hook in `r_debug`. Both stops
# are internal: the program runs on at once, and gdb then behaves as with ld.so started directly.
#
# Load it with `source /path/to/nix-ld.py` (or `gdb -x`); the NixOS module installs it in
# /etc/gdb/gdbinit.d, which gdb reads at start. It does nothing for programs not started through
# nix-ld, for remote targets or for core files.

import os
import struct

import gdb

HOOKS = ".nix-ld.hooks"
AT_NULL, AT_BASE = 0, 7
SHT_SYMTAB, SHT_DYNSYM = 2, 11


def sections(path):
    """The section headers of an ELF64 little-endian file: {name: (type, offset, size, link)}, and
    the headers in order."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return data, {}, []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    if shstrndx >= shnum:
        return data, {}, headers
    names_at = headers[shstrndx][4]

    def name(at):
        end = data.index(b"\0", names_at + at)
        return data[names_at + at:end].decode("latin-1")

    by_name = {name(h[0]): (h[1], h[4], h[5], h[6]) for h in headers}
    return data, by_name, headers


def shim_offsets(path):
    """The entry point of the shim in `path` and where it jumps into ld.so, from its load address;
    None if `path` is not a nix-ld shim."""
    try:
        data, by_name, _ = sections(path)
    except (OSError, ValueError, struct.error):
        return None
    if HOOKS not in by_name or by_name[HOOKS][2] != 8:
        return None
    entry, = struct.unpack_from("<Q", data, 0x18)
    return entry, struct.unpack_from("<Q", data, by_name[HOOKS][1])[0]


def symbol_value(path, wanted):
    """The value of symbol `wanted` in the dynamic or the full symbol table of `path`."""
    data, _, headers = sections(path)
    for kind in (SHT_DYNSYM, SHT_SYMTAB):
        for h in headers:
            if h[1] != kind or h[6] >= len(headers):
                continue
            strings_at = headers[h[6]][4]
            for at in range(h[4], h[4] + h[5], 24):
                st_name, _, _, st_shndx, st_value, _ = struct.unpack_from("<IBBHQQ", data, at)
                if st_shndx == 0:
                    continue
                end = data.index(b"\0", strings_at + st_name)
                if data[strings_at + st_name:end] == wanted:
                    return st_value
    return None


def kernel_at_base(pid):
    """AT_BASE as the kernel recorded it for `pid`: where it mapped the interpreter."""
    with open(f"/proc/{pid}/auxv", "rb") as f:
        data = f.read()
    for at in range(0, len(data) - 15, 16):
        kind, value = struct.unpack_from("<QQ", data, at)
        if kind == AT_BASE:
            return value
        if kind == AT_NULL:
            break
    return None


def mapped_file(pid, address):
    """The file mapped at `address` from its start (offset 0), from /proc/PID/maps."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            start = int(fields[0].split("-")[0], 16)
            if start == address and int(fields[2], 16) == 0 and len(fields) == 6:
                return fields[5].strip()
    return None


def read_word(inferior, address):
    return struct.unpack("<Q", bytes(inferior.read_memory(address, 8)))[0]


def block_at_base(inferior, block):
    """AT_BASE from the argument block at `block` (argc, argv, envp, auxv): the shim writes ld.so's
    base there."""
    argc = read_word(inferior, block)
    at = block + 8 * (argc + 2)
    while read_word(inferior, at) != 0:
        at += 8
    at += 8
    while True:
        kind, value = read_word(inferior, at), read_word(inferior, at + 8)
        if kind == AT_BASE:
            return value
        if kind == AT_NULL:
            return None
        at += 16


class LoaderEvents(gdb.Breakpoint):
    """ld.so's `_dl_debug_state`, until its first call: then gdb's own tracking takes over."""

    def stop(self):
        self.enabled = False
        gdb.post_event(self.delete)
        # Sets up gdb's library tracking again (solib.c, reload_shared_libraries), which now reads
        # ld.so's hook from r_debug and breaks there itself from here on.
        gdb.execute("set solib-search-path " + (gdb.parameter("solib-search-path") or ""), to_string=True)
        return False


class EnterLoader(gdb.Breakpoint):
    """The shim's jump into ld.so: the argument block is in rsi."""

    def stop(self):
        # Used once; deleted once gdb is done with this stop (a breakpoint may not delete itself
        # while it decides whether to stop).
        self.enabled = False
        gdb.post_event(self.delete)
        inferior = gdb.selected_inferior()
        block = int(gdb.parse_and_eval("$rsi")) & (2**64 - 1)
        base = block_at_base(inferior, block)
        loader = base is not None and mapped_file(inferior.pid, base)
        hook = loader and symbol_value(loader, b"_dl_debug_state")
        if not hook:
            gdb.write("nix-ld.py: cannot find ld.so's _dl_debug_state behind the shim; libraries "
                      "loaded later will not be seen\n")
            return False
        # ld.so's link-map entry names the shim's file (after PT_INTERP), so gdb has no symbols
        # or unwinding tables for ld.so's code; give it ld.so's own.
        gdb.execute("add-symbol-file %s -o 0x%x" % (loader, base), from_tty=False, to_string=True)
        LoaderEvents("*0x%x" % (base + hook), internal=True)
        return False


seen = set()


def on_new_objfile(event):
    inferior = gdb.selected_inferior()
    if inferior.pid == 0 or not os.path.exists(f"/proc/{inferior.pid}/auxv"):
        return
    try:
        base = kernel_at_base(inferior.pid)
        # One look per program image: the same process gets a new AT_BASE at each exec.
        key = (inferior.pid, base)
        if base is None or key in seen:
            return
        seen.add(key)
        interpreter = mapped_file(inferior.pid, base)
    except OSError:
        return
    offsets = interpreter and shim_offsets(interpreter)
    if not offsets:
        return
    entry, hook = offsets
    # Stopped at the shim's first instruction: a program gdb starts, at its exec. An attached
    # program went past it long ago, and gdb needs no help there.
    if int(gdb.parse_and_eval("$pc")) & (2**64 - 1) != base + entry:
        return
    EnterLoader("*0x%x" % (base + hook), internal=True)


gdb.events.new_objfile.connect(on_new_objfile)
