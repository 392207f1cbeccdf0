//! gdb and ltrace on programs started through the shim: they see ld.so's library events and the
//! libraries' symbols as with ld.so started directly, and are never given an address that is not
//! ld.so's real hook.
//!
//! The programs are stripped, as most foreign binaries are, and load a library with `dlopen`.
//! These tests need gdb, ltrace and valgrind from the host (`.ci/run` installs them) and ptrace
//! permission: where ptrace is refused they fail, with gdb's words, rather than skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::*;

/// The debuggee (stripped) and the library set it needs, built once per test.
struct Debuggee {
    dir: PathBuf,
    program: PathBuf,
    lib: PathBuf,
}

fn debuggee(test: &str, interpreter: &Path) -> Debuggee {
    let dir = scratch(test);
    let lib = greet_library(&dir);
    let program = compile(&dir, "debuggee.c", "debuggee", interpreter, &["-s", "-ldl"]);
    Debuggee { dir, program, lib }
}

impl Debuggee {
    /// The environment a NixOS start has: the loader and the library set.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap()),
            ("NIX_LD".into(), system_loader().display().to_string()),
            ("NIX_LD_LIBRARY_PATH".into(), self.lib.display().to_string()),
        ]
    }

    /// Starts it waiting for `flag` to exist, once it has printed its first line.
    fn start_waiting(&self, flag: &Path) -> Child {
        let mut child = Command::new(&self.program)
            .args([os("wait-for"), flag.as_os_str()])
            .env_clear()
            .envs(self.env())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "debuggee started\n");
        child
    }
}

/// The gdb helper the package installs.
fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gdb/nix-ld.py")
}

/// Runs gdb in batch mode with `commands`, no init files, with or without the helper.
fn gdb(env: &[(String, String)], with_helper: bool, args: &[&str], commands: &[&str]) -> String {
    let mut cmd = Command::new(on_path("gdb"));
    cmd.args(["-nx", "-q", "-batch"]).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(["-ex", "set breakpoint pending on", "-ex", "set pagination off"]);
    if with_helper {
        cmd.arg("-x").arg(helper());
    }
    for c in commands {
        cmd.args(["-ex", c]);
    }
    cmd.args(args);
    let out = cmd.output().expect("gdb is installed (.ci/run installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("ptrace: Operation not permitted"), "ptrace is not permitted here:\n{text}");
    text
}

/// Stops in `greet`, which the program reaches only through `dlopen`.
const STOPPED_IN_GREET: &str = "in greet () from ";

#[test]
fn host_ltrace_traces_calls_in_the_program_and_in_a_dlopened_library() {
    let d = debuggee("ltrace", &shim());
    let direct = compile(&d.dir, "debuggee.c", "debuggee-direct", &system_loader(), &["-s", "-ldl"]);
    let ltrace = |program: &Path, env: Vec<(String, String)>| -> Output {
        Command::new(on_path("ltrace"))
            .args(["-e", "puts"])
            .arg(program)
            .env_clear()
            .envs(env)
            .output()
            .expect("ltrace is installed (.ci/run installs it)")
    };
    let mut direct_env = d.env();
    direct_env.push(("LD_LIBRARY_PATH".into(), d.lib.display().to_string()));
    let traced = |out: &Output| -> Vec<String> {
        let text = String::from_utf8_lossy(&out.stderr);
        let mut calls: Vec<String> = text
            .lines()
            .filter(|l| l.contains("->puts("))
            .map(|l| l.split(" = ").next().unwrap().trim().replace("debuggee-direct", "debuggee"))
            .collect();
        calls.sort();
        calls
    };
    let expected = ltrace(&direct, direct_env);
    let through_shim = ltrace(&d.program, d.env());
    assert!(through_shim.status.success(), "ltrace through the shim failed:\n{}", stderr(&through_shim));
    assert_eq!(traced(&through_shim), traced(&expected), "ltrace through the shim:\n{}", stderr(&through_shim));
    assert!(
        traced(&expected).iter().any(|c| c.starts_with("libgreet.so->puts(")),
        "the direct run traces the dlopened library:\n{}",
        stderr(&expected)
    );
}

#[test]
fn host_gdb_attached_to_a_program_stops_in_a_dlopened_library() {
    let d = debuggee("gdb-attach", &shim());
    // Attaching needs no helper, and the helper must not get in the way.
    for with_helper in [false, true] {
        let flag = d.dir.join(format!("go-{with_helper}"));
        let mut child = d.start_waiting(&flag);
        let pid = child.id().to_string();
        let text = gdb(
            &d.env(),
            with_helper,
            &["-p", &pid],
            &["break greet", &format!("shell touch {}", flag.display()), "continue", "info sharedlibrary"],
        );
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            text.contains(STOPPED_IN_GREET),
            "gdb attached through the shim did not stop in the dlopened library (helper: {with_helper}):\n{text}"
        );
        assert!(shared_library_line(&text, "libc.so.6").contains("Yes"), "libc's symbols are read:\n{text}");
    }
}

#[test]
fn host_gdb_reads_a_core_file_with_its_libraries_symbols() {
    let d = debuggee("gdb-core", &shim());
    let flag = d.dir.join("never");
    let mut child = d.start_waiting(&flag);
    let core = d.dir.join("core");
    let text = gdb(
        &d.env(),
        false,
        &["-p", &child.id().to_string()],
        &[&format!("generate-core-file {}", core.display()), "detach"],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(core.exists(), "no core file was written:\n{text}");
    let program = d.program.display().to_string();
    let text = gdb(&d.env(), false, &[&program, &core.display().to_string()], &["info sharedlibrary", "bt"]);
    assert!(shared_library_line(&text, "libc.so.6").contains("Yes"), "the core's libc has its symbols:\n{text}");
    // The stripped program waits in usleep: its frame is named from libc's symbols.
    assert!(text.contains("usleep"), "the core's backtrace names libc's functions:\n{text}");
}

#[test]
fn host_gdb_runs_a_stripped_program_with_the_helper_as_with_ld_so_itself() {
    let d = debuggee("gdb-run", &shim());
    let program = d.program.display().to_string();
    let text = gdb(
        &d.env(),
        true,
        &[&program],
        &["break puts", "run", "info sharedlibrary", "delete", "break greet", "continue"],
    );
    // `break puts` set before the start resolves into libc, not the program's PLT stub: gdb knew
    // libc before the program ran.
    assert!(!text.contains("puts@plt"), "puts stopped in the program's PLT, so libc was unknown:\n{text}");
    assert!(shared_library_line(&text, "libc.so.6").contains("Yes"), "libc's symbols are read:\n{text}");
    assert!(text.contains(STOPPED_IN_GREET), "gdb did not follow the dlopen:\n{text}");
}

#[test]
fn host_gdb_stops_in_a_library_constructor_with_the_helper() {
    let d = debuggee("gdb-constructor", &shim());
    let constructor = d.dir.join("libctor.so");
    let source = d.dir.join("ctor.c");
    std::fs::write(&source, "#include <stdio.h>\n__attribute__((constructor)) void ctor_hello(void) { puts(\"ctor\"); }\nvoid ctor_mark(void) {}\n").unwrap();
    let status = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&constructor).arg(&source).status().unwrap();
    assert!(status.success());
    let link = [
        format!("-L{}", d.dir.display()),
        "-Wl,--no-as-needed".into(),
        "-lctor".into(),
        format!("-Wl,-rpath,{}", d.dir.display()),
        "-s".into(),
        "-ldl".into(),
    ];
    let link: Vec<&str> = link.iter().map(String::as_str).collect();
    let program = compile(&d.dir, "debuggee.c", "with-constructor", &shim(), &link);
    let text = gdb(&d.env(), true, &[&program.display().to_string()], &["break ctor_hello", "run", "bt 3"]);
    assert!(text.contains("in ctor_hello () from "), "gdb did not stop in the library's constructor:\n{text}");
    // ld.so's frames are named from ld.so's own symbols, which the helper gives gdb.
    assert!(text.contains("_dl_init") || text.contains("call_init"), "ld.so's frames are not named:\n{text}");
    let without = gdb(&d.env(), false, &[&program.display().to_string()], &["break ctor_hello", "run"]);
    assert!(!without.contains("in ctor_hello () from "), "without the helper gdb cannot see library constructors through the shim; if it now can, the helper is no longer needed:\n{without}");
}

/// `step` into a function the program calls for the first time goes through ld.so's lazy-binding
/// resolver. gdb must know that code as ld.so's, or it unwinds it blindly and plants its
/// step-resume breakpoint in ld.so's data: the program then crashed, with or without the helper.
/// ld.so now lies in the range the shim's file gives gdb, at either of gdb's placements of it.
#[test]
fn host_gdb_steps_into_a_function_bound_lazily() {
    let d = debuggee("gdb-step", &shim());
    let source = d.dir.join("lazy.c");
    std::fs::write(&source, "int greet_value(int);\nint main(void) { return greet_value(3) != 4; }\n").unwrap();
    let library = d.dir.join("libvalue.c");
    std::fs::write(&library, "int greet_value(int x) {\n    return x + 1;\n}\n").unwrap();
    let status = Command::new("cc")
        .args(["-g", "-shared", "-fPIC", "-o"])
        .arg(d.dir.join("libvalue.so"))
        .arg(&library)
        .status()
        .unwrap();
    assert!(status.success());
    let program = d.dir.join("lazy");
    let status = Command::new("cc")
        .args(["-g", "-o"])
        .arg(&program)
        .arg(&source)
        .arg(format!("-L{}", d.dir.display()))
        .arg("-lvalue")
        .arg(format!("-Wl,-rpath,{}", d.dir.display()))
        .arg(format!("-Wl,--dynamic-linker={}", shim().display()))
        .status()
        .unwrap();
    assert!(status.success());
    for with_helper in [false, true] {
        let text = gdb(
            &d.env(),
            with_helper,
            &[&program.display().to_string()],
            &["break main", "run", "step", "bt 1", "continue"],
        );
        assert!(
            text.contains("greet_value (x=3) at"),
            "`step` did not stop in the lazily bound function (helper: {with_helper}):\n{text}"
        );
        assert!(
            text.contains("exited normally"),
            "the program did not finish normally after the step (helper: {with_helper}):\n{text}"
        );
    }
}

/// A program started through the shim that starts another through the shim, with gdb following
/// the exec: the same process and, without address randomisation (gdb's default), the same shim
/// base. And a second `run` in the same session: gdb ends up with one copy of ld.so's symbols.
#[test]
fn host_gdb_follows_an_exec_and_a_second_run_with_the_helper() {
    let d = debuggee("gdb-exec", &shim());
    let launch = compile(&d.dir, "launch.c", "launch", &shim(), &[]);
    let env_file_path = d.dir.join("env");
    let entries: Vec<Vec<u8>> = d.env().iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect();
    env_file(&env_file_path, &entries);
    let args = [
        "--args".to_string(),
        launch.display().to_string(),
        env_file_path.display().to_string(),
        d.program.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = gdb(&d.env(), true, &args, &["break greet", "run"]);
    assert!(text.contains(STOPPED_IN_GREET), "gdb did not follow the dlopen after the exec:\n{text}");

    let program = d.program.display().to_string();
    let count = "python print('ld.so symbol files:', sum(1 for o in gdb.objfiles() if o.filename and o.filename.endswith('ld-linux-x86-64.so.2')))";
    let text = gdb(&d.env(), true, &[&program], &["break greet", "run", count, "kill", "run", count]);
    let counts: Vec<&str> = text.lines().filter(|l| l.starts_with("ld.so symbol files:")).collect();
    assert_eq!(counts.len(), 2, "{text}");
    assert_eq!(counts[0], counts[1], "a second run added another copy of ld.so's symbols:\n{text}");
    assert_eq!(text.matches(STOPPED_IN_GREET).count(), 2, "both runs stop in the dlopened library:\n{text}");
}

/// The loader's file is removed after the shim mapped it (a glibc upgrade, a garbage-collected
/// store path): the helper reads it through /proc/PID/map_files and gdb still follows the dlopen.
#[test]
fn host_the_helper_copes_with_a_loader_removed_after_it_was_mapped() {
    let d = debuggee("gdb-loader-removed", &shim());
    let loader = d.dir.join("ld-copy.so");
    std::fs::copy(system_loader(), &loader).unwrap();
    let mut env = d.env();
    env.retain(|(k, _)| k != "NIX_LD");
    env.push(("NIX_LD".into(), loader.display().to_string()));
    let program = d.program.display().to_string();
    let remove = format!("shell rm -f {}", loader.display());
    // The shim closes the loader once it has mapped it: remove the file then.
    let text = gdb(
        &env,
        true,
        &[&program],
        &["break greet", "starti", "catch syscall close", "continue", &remove, "delete 2", "continue"],
    );
    assert!(!loader.exists());
    assert!(
        !text.contains("gdb will not see libraries") && !text.contains("Python Exception"),
        "the helper gave up:\n{text}"
    );
    assert!(text.contains(STOPPED_IN_GREET), "gdb did not follow the dlopen:\n{text}");
}

/// Through the shim with a loader at another path, gdb's library-event breakpoints sit at that
/// loader's own `_dl_debug_state` and nowhere else: when gdb runs the program (with the helper),
/// when it attaches (without), and at the program's first instruction, where ld.so is not mapped
/// yet and the shim's file tells gdb of no hook at all.
#[test]
fn host_gdb_is_given_only_the_real_hook_of_another_loader() {
    let d = debuggee("gdb-other-loader", &shim());
    let other = d.dir.join("other-loader");
    std::fs::create_dir_all(&other).unwrap();
    let loader = other.join("ld-linux-x86-64.so.2");
    std::fs::copy(system_loader(), &loader).unwrap();
    let mut env = d.env();
    env.retain(|(k, _)| k != "NIX_LD");
    env.push(("NIX_LD".into(), loader.display().to_string()));
    let program = d.program.display().to_string();
    let hooks = |text: &str| {
        let base = mapping_base(text, &loader).unwrap_or_else(|| panic!("the loader is not mapped:\n{text}"));
        (shlib_event_addresses(text), base + dynamic_symbol(&loader, "_dl_debug_state"))
    };

    let run = gdb(&env, true, &[&program], &["break greet", "run", "maint info breakpoints", "info proc mappings"]);
    assert!(run.contains(STOPPED_IN_GREET), "with the helper gdb follows the dlopen:\n{run}");
    let (events, hook) = hooks(&run);
    assert_eq!(
        events,
        [hook],
        "gdb's library-event breakpoints are not the loader's _dl_debug_state ({hook:#x}):\n{run}"
    );

    let flag = d.dir.join("never");
    let mut child = Command::new(&d.program)
        .args([os("wait-for"), flag.as_os_str()])
        .env_clear()
        .envs(env.clone())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let attached =
        gdb(&env, false, &["-p", &child.id().to_string()], &["maint info breakpoints", "info proc mappings", "detach"]);
    let _ = child.kill();
    let _ = child.wait();
    let (events, hook) = hooks(&attached);
    assert_eq!(
        events,
        [hook],
        "attached, gdb's library-event breakpoints are not the loader's _dl_debug_state ({hook:#x}):\n{attached}"
    );

    let first = gdb(&env, false, &[&program], &["starti", "maint info breakpoints"]);
    assert!(first.contains("Program stopped"), "gdb did not start the program:\n{first}");
    assert_eq!(
        shlib_event_addresses(&first),
        Vec::<u64>::new(),
        "at exec, before ld.so exists, gdb was given a hook:\n{first}"
    );
}

/// With the helper loaded, a program started by ld.so itself is debugged as ever: the helper sets
/// no breakpoint of its own.
#[test]
fn host_the_helper_leaves_programs_without_the_shim_alone() {
    let d = debuggee("gdb-helper-direct", &shim());
    let direct = compile(&d.dir, "debuggee.c", "debuggee-direct", &system_loader(), &["-s", "-ldl"]);
    let mut env = d.env();
    env.push(("LD_LIBRARY_PATH".into(), d.lib.display().to_string()));
    let text = gdb(&env, true, &[&direct.display().to_string()], &["break greet", "run", "maint info breakpoints"]);
    assert!(text.contains(STOPPED_IN_GREET), "{text}");
    let helpers: Vec<&str> =
        text.lines().filter(|l| l.trim_start().starts_with('-') && l.contains(" breakpoint ")).collect();
    assert!(helpers.is_empty(), "the helper set breakpoints in a program without the shim: {helpers:?}\n{text}");
}

#[test]
fn host_valgrind_runs_a_program_through_the_shim() {
    let d = debuggee("valgrind", &shim());
    let out = Command::new(on_path("valgrind"))
        .args(["-q", "--error-exitcode=3"])
        .arg(&d.program)
        .env_clear()
        .envs(d.env())
        .output()
        .expect("valgrind is installed (.ci/run installs it)");
    assert!(out.status.success(), "valgrind through the shim failed:\n{}", stderr(&out));
    assert_eq!(stdout(&out), "debuggee started\ngreetings from libgreet\n");
}

/// The `info sharedlibrary` line of `name`.
fn shared_library_line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(name) && l.starts_with("0x"))
        .unwrap_or_else(|| panic!("{name} is not in gdb's list of libraries:\n{text}"))
}

/// The start of `file`'s first mapping, from gdb's `info proc mappings`.
fn mapping_base(text: &str, file: &Path) -> Option<u64> {
    let file = file.canonicalize().unwrap();
    text.lines()
        .filter(|l| l.trim_end().ends_with(&*file.to_string_lossy()))
        .filter_map(|l| {
            l.split_whitespace().next().and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        })
        .min()
}

/// The addresses of gdb's `shlib events` breakpoints, from `maint info breakpoints`.
fn shlib_event_addresses(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.contains("shlib events"))
        .filter_map(|l| {
            l.split_whitespace().find(|w| w.starts_with("0x")).and_then(|a| u64::from_str_radix(&a[2..], 16).ok())
        })
        .collect()
}

/// A symbol's value in a file's dynamic symbol table, as `nm -D` reads it.
fn dynamic_symbol(file: &Path, name: &str) -> u64 {
    let out = Command::new("nm").arg("-D").arg(file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2).is_some_and(|n| n.split('@').next() == Some(name)))
        .unwrap_or_else(|| panic!("{name} is not in {}", file.display()));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}
