//! The shim as a program's interpreter: loader and library path selection.

use crate::support::*;

#[test]
fn hello_runs_through_the_shim_and_not_without_it() {
    let dir = scratch("hello");
    let missing = compile(&dir, "hello.c", "hello-missing", std::path::Path::new("/nonexistent/ld.so"), &[]);
    let err = std::process::Command::new(&missing).output().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "the NixOS symptom: ENOENT from execve");

    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let out = run_with(&hello, &[], &[("NIX_LD", system_loader().to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from a foreign binary\n");
    assert_eq!(stderr(&out), "", "the shim is silent by default");
}

#[test]
fn a_library_is_found_only_through_nix_ld_library_path() {
    let dir = scratch("needed");
    let lib = greet_library(&dir);
    let prog = needs_greet(&dir, &lib, &shim());
    let loader = system_loader();
    let out = run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(127), "without the library path ld.so cannot find it");
    assert!(stderr(&out).contains("libgreet.so: cannot open shared object file"), "{}", stderr(&out));

    let out =
        run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", lib.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "greetings from libgreet\n");
}

#[test]
fn dlopen_finds_libraries_in_the_nix_directories() {
    let dir = scratch("dlopen");
    let lib = greet_library(&dir);
    let prog = compile(&dir, "dlopen_greet.c", "dlopen_greet", &shim(), &["-ldl"]);
    let loader = system_loader();
    let out = run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("dlopen failed"), "{}", stderr(&out));

    let out =
        run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", lib.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "greetings from libgreet\n");
}

#[test]
fn system_specific_variables_override_generic_ones() {
    let dir = scratch("system-specific");
    let lib = greet_library(&dir);
    let prog = needs_greet(&dir, &lib, &shim());
    let loader = system_loader();
    let (loader, lib) = (loader.to_str().unwrap(), lib.to_str().unwrap());
    // The generic variables alone point nowhere useful: failure.
    let out = run_with(&prog, &[], &[("NIX_LD", "/nonexistent/ld.so"), ("NIX_LD_LIBRARY_PATH", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("loader /nonexistent/ld.so does not exist"), "{}", stderr(&out));
    // The system-specific ones win over them.
    let out = run_with(
        &prog,
        &[],
        &[
            ("NIX_LD", "/nonexistent/ld.so"),
            ("NIX_LD_x86_64_linux", loader),
            ("NIX_LD_LIBRARY_PATH", "/nonexistent"),
            ("NIX_LD_LIBRARY_PATH_x86_64_linux", lib),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "greetings from libgreet\n");
    // And the other way round they lose.
    let out = run_with(&prog, &[], &[("NIX_LD", loader), ("NIX_LD_x86_64_linux", "/nonexistent/ld.so")]);
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn compiled_in_defaults_apply_when_the_variables_are_unset() {
    let _guard = defaults_lock();
    let shim = defaults_shim();
    let defaults = defaults_dir();
    let _ = std::fs::remove_dir_all(&defaults);
    std::fs::create_dir_all(&defaults).unwrap();
    let dir = scratch("defaults");
    let lib = greet_library(&dir);
    let prog = needs_greet(&dir, &lib, &shim);
    // Before the defaults exist: a clear error naming the default loader.
    let out = run_with(&prog, &[], &[]);
    assert_eq!(out.status.code(), Some(127));
    let want = format!("nix-ld: cannot run {}: loader {}/ld.so does not exist\n", prog.display(), defaults.display());
    assert!(stderr(&out).starts_with(&want), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    // The layout the NixOS module creates: ld.so and lib/ under the default directory.
    std::os::unix::fs::symlink(system_loader(), defaults.join("ld.so")).unwrap();
    std::os::unix::fs::symlink(&lib, defaults.join("lib")).unwrap();
    let out = run_with(&prog, &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "greetings from libgreet\n");
}

#[test]
fn one_trailing_newline_in_nix_ld_is_tolerated() {
    let dir = scratch("newline");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let with_newline = format!("{}\n", system_loader().display());
    let out = run_with(&hello, &[], &[("NIX_LD", &with_newline)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from a foreign binary\n");
    // Two newlines are not a pasted file any more: the path really does not exist.
    let out = run_with(&hello, &[], &[("NIX_LD", &format!("{with_newline}\n"))]);
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn info_logging_says_what_was_chosen_and_why() {
    let dir = scratch("log-info");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let loader = system_loader();
    let out = run_with(
        &hello,
        &[],
        &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", "/a:/b"), ("NIX_LD_LOG", "info")],
    );
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("nix-ld: loader {} (from NIX_LD)\n", loader.display())), "{err}");
    assert!(err.contains("nix-ld: library path /a:/b (from NIX_LD_LIBRARY_PATH)\n"), "{err}");
    let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LOG", "loud")]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("unknown NIX_LD_LOG level 'loud'"), "{}", stderr(&out));
}

#[test]
fn trace_logging_says_where_ld_so_was_mapped_and_where_it_starts() {
    let dir = scratch("log-trace");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let loader = system_loader();
    let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LOG", "trace")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("nix-ld: ld.so mapped at 0x"))
        .unwrap_or_else(|| panic!("no mapping line:\n{err}"));
    let (base, entry) = line.split_once(", entry 0x").unwrap_or_else(|| panic!("{line}"));
    let (base, entry) = (u64::from_str_radix(base, 16).unwrap(), u64::from_str_radix(entry, 16).unwrap());
    assert_eq!(base % 4096, 0, "{line}");
    // The entry is ld.so's e_entry, moved by the load bias.
    let header = std::fs::read(&loader).unwrap();
    let e_entry = u64::from_le_bytes(header[24..32].try_into().unwrap());
    assert_eq!(entry - base, e_entry, "{line}");
    // At debug level the line is not printed.
    let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LOG", "debug")]);
    assert!(!stderr(&out).contains("mapped at"), "{}", stderr(&out));
}

#[test]
fn ld_so_trace_mode_lists_every_missing_library_through_the_shim() {
    // The shim does not look for libraries itself: ld.so's trace mode (what `ldd` uses) lists every
    // missing one, transitively and by ld.so's own search rules, as long as the shim hands it the
    // library path and leaves the mode alone.
    let dir = scratch("missing-libraries");
    let lib = greet_library(&dir);
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(other.join("libother.so"))
        .arg(fixtures().join("greet.c"))
        .status()
        .unwrap();
    assert!(status.success());
    let (l, o) = (format!("-L{}", lib.display()), format!("-L{}", other.display()));
    let prog =
        compile(&dir, "needs_greet.c", "needs_two", &shim(), &["-Wl,--no-as-needed", &l, &o, "-lgreet", "-lother"]);
    let loader = system_loader();
    // Run normally, ld.so names only the first missing library.
    let out = run_with(&prog, &[], &[("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("libgreet.so: cannot open"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("libother"), "{}", stderr(&out));
    // In trace mode it lists both, and does not start the program.
    let trace = |nix: &str| {
        let env =
            [("NIX_LD", loader.to_str().unwrap()), ("NIX_LD_LIBRARY_PATH", nix), ("LD_TRACE_LOADED_OBJECTS", "1")];
        let out = run_with(&prog, &[], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stdout(&out).contains("greetings"), "the program ran:\n{}", stdout(&out));
        stdout(&out)
    };
    let listed = trace("/nonexistent");
    assert!(listed.contains("libgreet.so => not found") && listed.contains("libother.so => not found"), "{listed}");
    // Each is found in the directory NIX_LD_LIBRARY_PATH names.
    let listed = trace(&format!("{}:{}", lib.display(), other.display()));
    assert!(listed.contains(&format!("libgreet.so => {}", lib.join("libgreet.so").display())), "{listed}");
    assert!(listed.contains(&format!("libother.so => {}", other.join("libother.so").display())), "{listed}");
    assert!(!listed.contains("not found"), "{listed}");
}

#[test]
fn a_loader_with_a_hole_between_segments_and_a_partial_bss_page_is_mapped_faithfully() {
    // The shim reserves the loader's span with a mapping of its file, unmaps all but the first
    // segment's pages and maps the other segments into the space. A hole between segments must not
    // keep those file pages readable, and bss sharing a page with file data must read as zero. The
    // fixture checks both from inside.
    let dir = scratch("gapped-loader");
    let loader = freestanding(&dir, "gapped_loader.c", "gapped-ld.so");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap())]);
    assert_eq!(stdout(&out), "GAPPED LOADER ok\n", "{}", stderr(&out));
    assert!(out.status.success());
}

/// A minimal loader, assembled byte by byte: one read-and-execute segment whose code writes
/// `LATE HEADERS LOADER ok` and exits 0, with its program header table `phoff` bytes into the
/// file (which is 4 KiB long: a table that would end past that is cut short).
fn loader_with_program_headers_at(dir: &std::path::Path, phoff: usize) -> std::path::PathBuf {
    const ENTRY: usize = 0x100;
    const SIZE: usize = 0x1000;
    let message = b"LATE HEADERS LOADER ok\n";
    let mut f = vec![0u8; SIZE + 56];
    let mut put = |at: usize, bytes: &[u8]| f[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"\x7fELF\x02\x01\x01");
    put(16, &3u16.to_le_bytes()); // ET_DYN
    put(18, &62u16.to_le_bytes()); // x86-64
    put(20, &1u32.to_le_bytes());
    put(24, &(ENTRY as u64).to_le_bytes());
    put(32, &(phoff as u64).to_le_bytes());
    put(52, &64u16.to_le_bytes());
    put(54, &56u16.to_le_bytes());
    put(56, &1u16.to_le_bytes());
    // PT_LOAD, R+X, the whole file at address 0.
    put(phoff, &1u32.to_le_bytes());
    put(phoff + 4, &5u32.to_le_bytes());
    put(phoff + 32, &(SIZE as u64).to_le_bytes());
    put(phoff + 40, &(SIZE as u64).to_le_bytes());
    put(phoff + 48, &0x1000u64.to_le_bytes());
    // write(1, message, len); exit_group(0). The message follows the code (33 bytes), and the
    // lea's displacement counts from the end of the lea (17 bytes in).
    let mut code = vec![0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x48, 0x8d, 0x35, 16, 0, 0, 0, 0xba];
    code.extend((message.len() as u32).to_le_bytes());
    code.extend([0x0f, 0x05, 0xb8, 231, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]);
    assert_eq!(code.len(), 33);
    code.extend(message);
    put(ENTRY, &code);
    f.truncate(SIZE);
    let path = dir.join(format!("late-headers-{phoff}-ld.so"));
    std::fs::write(&path, &f).unwrap();
    path
}

#[test]
fn a_loader_with_its_program_headers_past_the_first_kib_is_still_read() {
    // The shim first reads 1 KiB of the loader (glibc's program headers end within 700 bytes) and
    // reads 4 KiB only when the table lies further, as in this hand-made loader.
    let dir = scratch("late-headers");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    for phoff in [64, 1000, 2048, 4096 - 56] {
        let loader = loader_with_program_headers_at(&dir, phoff);
        let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap())]);
        assert_eq!(stdout(&out), "LATE HEADERS LOADER ok\n", "program headers at {phoff}: {}", stderr(&out));
        assert!(out.status.success());
    }
    let loader = loader_with_program_headers_at(&dir, 4096 - 55);
    let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap())]);
    assert!(stderr(&out).contains("is truncated (its program headers lie outside the file)"), "{}", stderr(&out));
}

/// A minimal loader, assembled byte by byte, whose data segment ends `tail` bytes before a page
/// boundary, with file bytes (0xAA) filling the rest of that page: the stale tail the shim must
/// zero. Its code checks from inside that the data (0x55) is intact and that every byte from the
/// end of the data to the end of the page reads as zero, also past the segment's memory size (ld.so
/// takes that rest of the page for its first allocations and relies on it being zero). It prints
/// `STALE TAIL ok` and exits 0 only if both hold.
fn loader_with_stale_tail(dir: &std::path::Path, tail: usize) -> std::path::PathBuf {
    const PAGE: usize = 0x1000;
    const CODE: usize = 0x1000;
    const DATA: usize = 0x2000;
    assert!((1..PAGE).contains(&tail));
    let data_len = PAGE - tail;
    let mut f = vec![0u8; DATA + PAGE];
    let mut put = |at: usize, bytes: &[u8]| f[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"\x7fELF\x02\x01\x01");
    put(16, &3u16.to_le_bytes()); // ET_DYN
    put(18, &62u16.to_le_bytes()); // x86-64
    put(20, &1u32.to_le_bytes());
    put(24, &(CODE as u64).to_le_bytes());
    put(32, &64u64.to_le_bytes());
    put(52, &64u16.to_le_bytes());
    put(54, &56u16.to_le_bytes());
    put(56, &2u16.to_le_bytes());
    // PT_LOAD, R+X: headers and code. PT_LOAD, R+W: the data, one byte of bss, the page's rest.
    let segments = [(5u32, 0, CODE + PAGE, CODE + PAGE), (6, DATA, data_len, data_len + 1)];
    for (i, (flags, at, filesz, memsz)) in segments.into_iter().enumerate() {
        let ph = 64 + 56 * i;
        put(ph, &1u32.to_le_bytes());
        put(ph + 4, &flags.to_le_bytes());
        put(ph + 8, &(at as u64).to_le_bytes());
        put(ph + 16, &(at as u64).to_le_bytes());
        put(ph + 32, &(filesz as u64).to_le_bytes());
        put(ph + 40, &(memsz as u64).to_le_bytes());
        put(ph + 48, &(PAGE as u64).to_le_bytes());
    }
    // lea rsi, [rip + DATA - 7 - CODE]; check data_len bytes of 0x55, then tail bytes of 0; on
    // success write(1, msg, 14) and exit_group(0), else exit_group(1). Assembled with GNU as.
    let mut code = vec![0x48, 0x8d, 0x35];
    code.extend(((DATA - CODE - 7) as u32).to_le_bytes());
    code.push(0xb9); // mov ecx, data_len
    code.extend((data_len as u32).to_le_bytes());
    code.extend([0x80, 0x3e, 0x55, 0x75, 0x39, 0x48, 0xff, 0xc6, 0xff, 0xc9, 0x75, 0xf4]);
    code.push(0xb9); // mov ecx, tail
    code.extend((tail as u32).to_le_bytes());
    code.extend([0x80, 0x3e, 0x00, 0x75, 0x28, 0x48, 0xff, 0xc6, 0xff, 0xc9, 0x75, 0xf4]);
    code.extend([0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x48, 0x8d, 0x35, 0x1c, 0, 0, 0, 0xba, 14, 0, 0, 0, 0x0f, 0x05]);
    code.extend([0xb8, 0xe7, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05, 0xb8, 0xe7, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x0f, 0x05]);
    assert_eq!(code.len(), 0x56);
    code.extend(b"STALE TAIL ok\n");
    put(CODE, &code);
    f[DATA..DATA + data_len].fill(0x55);
    f[DATA + data_len..].fill(0xAA);
    let path = dir.join(format!("stale-tail-{tail}-ld.so"));
    std::fs::write(&path, &f).unwrap();
    path
}

#[test]
fn file_bytes_after_the_loader_data_read_as_zero_up_to_the_page_end() {
    // The shim zeroes the rest of the loader's last data page in rounds of 256 bytes, the last one
    // moved back to end at the page end, and shorter tails word by word: each size class here
    // takes a different path through that code.
    let dir = scratch("stale-tail");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    for tail in [1, 7, 8, 9, 255, 256, 257, 300, 511, 512, 513, 1744, 4095] {
        let loader = loader_with_stale_tail(&dir, tail);
        let out = run_with(&hello, &[], &[("NIX_LD", loader.to_str().unwrap())]);
        assert_eq!(stdout(&out), "STALE TAIL ok\n", "a stale tail of {tail} bytes: {}", stderr(&out));
        assert!(out.status.success(), "a stale tail of {tail} bytes: {:?}", out.status);
    }
}
