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
    """A path that opens the file mapped at `address` from its start (offset 0), from
    /proc/PID/maps: the file's own path, or, when it has been deleted or replaced since (a glibc
    upgrade, a store garbage collection), its /proc/PID/map_files entry."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            start = int(fields[0].split("-")[0], 16)
            if start != address or int(fields[2], 16) != 0 or len(fields) < 6:
                continue
            path = fields[5].strip()
            if path.endswith(" (deleted)") or not os.path.exists(path):
                return f"/proc/{pid}/map_files/{fields[0]}"
            return path
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


def warn(what):
    gdb.write(f"nix-ld.py: {what}; gdb will not see libraries loaded from here on through the shim\n")


class Helper(gdb.Breakpoint):
    """One of this helper's internal breakpoints, used once: it never stops the program, and it is
    deleted once gdb is done with the stop (a breakpoint may not delete itself while gdb asks it
    whether to stop)."""

    def __init__(self, address):
        super().__init__("*0x%x" % address, internal=True)

    def stop(self):
        self.enabled = False
        gdb.post_event(lambda: self.is_valid() and self.delete())
        try:
            self.act()
        except Exception as e:  # noqa: BLE001 - any failure here must not stop the user's program
            warn(f"{type(e).__name__}: {e}")
        return False


class LoaderEvents(Helper):
    """ld.so's `_dl_debug_state`, at its first call: then gdb's own tracking takes over."""

    def act(self):
        # Sets up gdb's library tracking again (solib.c, reload_shared_libraries), which now reads
        # ld.so's hook from r_debug and breaks there itself from here on.
        gdb.execute("set solib-search-path " + (gdb.parameter("solib-search-path") or ""), to_string=True)


# Per program space: the ld.so symbol file this helper added, so that a new start replaces it
# rather than adding another. (Removing it by address could take its separate debug file only.)
added = {}


class EnterLoader(Helper):
    """The shim's jump into ld.so: the argument block is in rsi."""

    def __init__(self, address, inferior):
        super().__init__(address)
        self.inferior = inferior

    def act(self):
        inferior = self.inferior
        block = int(gdb.parse_and_eval("$rsi")) & (2**64 - 1)
        base = block_at_base(inferior, block)
        loader = base is not None and mapped_file(inferior.pid, base)
        hook = loader and symbol_value(loader, b"_dl_debug_state")
        if not hook:
            warn("ld.so's _dl_debug_state is not found behind the shim")
            return
        # ld.so's link-map entry names the shim's file (after PT_INTERP), so gdb has no symbols
        # or unwinding tables for ld.so's code; give it ld.so's own.
        space = inferior.progspace
        if space in added:
            try:
                gdb.execute("remove-symbol-file %s" % added.pop(space), from_tty=False, to_string=True)
            except gdb.error:
                pass  # already gone (`symbol-file`, `file`)
        gdb.execute("add-symbol-file %s -o 0x%x" % (loader, base), from_tty=False, to_string=True)
        added[space] = loader
        LoaderEvents(base + hook)


def native(inferior):
    """Whether `inferior` is a live process of this machine (not a core file, not remote)."""
    connection = getattr(inferior, "connection", None)
    if connection is not None and connection.type != "native":
        return False
    return inferior.pid != 0 and os.path.exists(f"/proc/{inferior.pid}/auxv")


# Per process and program image (the shim's base): the breakpoint set where it enters ld.so.
entering = {}


def on_new_objfile(event):
    space = event.new_objfile.progspace
    inferior = next((i for i in gdb.inferiors() if i.progspace == space and i.pid != 0), None)
    if inferior is None or not native(inferior):
        return
    try:
        base = kernel_at_base(inferior.pid)
        if base is None:
            return
        key = (inferior.pid, base)
        pending = entering.get(key)
        if pending is not None and pending.is_valid() and pending.enabled:
            return
        interpreter = mapped_file(inferior.pid, base)
        offsets = interpreter and shim_offsets(interpreter)
        if not offsets:
            return
        entry, hook = offsets
        # Stopped at the shim's first instruction: a program gdb starts, at its exec (a new
        # image, even in the same process at the same base). An attached program went past it
        # long ago, and gdb needs no help there.
        if int(gdb.parse_and_eval("$pc")) & (2**64 - 1) != base + entry:
            return
        # One start at a time: a start killed before it reached ld.so leaves its breakpoint.
        for stale in [k for k, bp in entering.items() if k != key]:
            bp = entering.pop(stale)
            if bp.is_valid():
                bp.delete()
        entering[key] = EnterLoader(base + hook, inferior)
        gdb.write("nix-ld.py: this program starts ld.so through the nix-ld shim; gdb follows\n"
                  "nix-ld.py: ld.so's libraries from its first event (the warning below does not apply)\n")
    except Exception as e:  # noqa: BLE001 - never break gdb's own loading of symbols
        warn(f"{type(e).__name__}: {e}")


gdb.events.new_objfile.connect(on_new_objfile)
