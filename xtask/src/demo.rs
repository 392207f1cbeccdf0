//! `cargo xtask demo`: foreign programs of this distribution running inside a NixOS-like root.
//!
//! The root has what a NixOS machine has and nothing a foreign binary expects: no `/lib`, no
//! `/usr/lib`, no `ld.so.cache`; glibc and every other library live under `/nix/store/<hash>-<name>`;
//! `/run/current-system/sw/share/nix-ld/lib` is laid out as the NixOS module lays it out. bash and
//! python3 (with its standard library) are copied in unchanged, and run in a chroot: first without
//! the shim, which fails as it does on NixOS, then with it. The root is built by
//! `execve_tests::nixos_root`, which the tests that run the doctor in such a root use too.
//!
//! The second chapter is the user story the project starts from: a foreign program needs
//! `libcrypt.so.1`, which is in the store (libxcrypt) but not in the library set. It fails;
//! nix-ld-doctor, installed as the Nix package installs it (the store's loader as its interpreter),
//! names the library, the store path and the line to add; with that, it runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use execve_tests::nixos_root::{self, mkdir, NixosRoot, LIBXCRYPT};

use crate::build;
use crate::util::{self, project_root, Result};

const PYTHON_CHECK: &str = "import ssl, sqlite3, ctypes, json, hashlib, zlib; \
print('python', __import__('sys').version.split()[0], 'runs:', ssl.OPENSSL_VERSION, '| sqlite', sqlite3.sqlite_version, \
'| libc via ctypes:', ctypes.CDLL(None).getpid() > 0)";

pub fn run() -> Result<()> {
    if !util::is_root() {
        return Err("the demo needs root: it builds a root file system and runs programs in it with chroot. Run `sudo cargo xtask demo`.".into());
    }
    let shim = build::shim(None, "nix-ld")?;
    let doctor = build::doctor()?;
    let python = Path::new("/usr/bin/python3")
        .canonicalize()
        .map_err(|e| format!("/usr/bin/python3: {e}: the demo runs Debian's python3 (apt-get install python3)"))?;
    let python_lib = PathBuf::from(format!("/usr/lib/{}", python.file_name().unwrap().to_string_lossy()));

    let dir = project_root().join("target/demo-root");
    say("Building a NixOS-like root", &dir.display().to_string());
    let work = project_root().join("target/demo-work");
    mkdir(&work)?;
    let needs_crypt = work.join("needs-crypt");
    util::run(
        Command::new("cc")
            .arg("-o")
            .arg(&needs_crypt)
            .arg(project_root().join("tests/fixtures/needs_crypt.c"))
            .arg("-lcrypt"),
    )?;
    let mut objects = vec![PathBuf::from("/bin/bash"), python.clone()];
    objects.extend(extension_modules(&python_lib.join("lib-dynload")));
    objects.push(doctor.clone());
    objects.push(needs_crypt.clone());
    // libxcrypt is in the store but not in the library set: the second chapter's case.
    let root = NixosRoot::build(&dir, &objects, &[LIBXCRYPT])?;

    root.install(Path::new("/bin/bash"), "/opt/foreign/bin/bash")?;
    // python3 finds its standard library next to itself: <prefix>/bin/python3 and <prefix>/lib/python3.X.
    let py_prefix = root.host_path(Path::new("/opt/python"));
    root.install(&python, "/opt/python/bin/python3")?;
    mkdir(&py_prefix.join("lib"))?;
    util::run(Command::new("cp").arg("-a").arg(&python_lib).arg(py_prefix.join("lib")))?;
    let _ = std::fs::remove_dir_all(py_prefix.join("lib").join(python_lib.file_name().unwrap()).join("test"));
    mkdir(&root.host_path(Path::new("/etc")))?;
    std::fs::write(root.host_path(Path::new("/etc/passwd")), "root:x:0:0:root:/root:/opt/foreign/bin/bash\n")
        .map_err(|e| e.to_string())?;

    println!("  /nix/store holds {} libraries; no /lib, no /usr/lib, no /etc/ld.so.cache", root.library_dirs.len());
    println!("  ld.so:  {}/ld.so -> {}", root.set.display(), root.loader.display());

    say("Without the shim: what a NixOS user sees", "chroot ROOT /opt/foreign/bin/bash -c 'echo hello'");
    let out = chroot(&root, &["/opt/foreign/bin/bash", "-c", "echo hello"], &[])?;
    print_output(&out);
    if out.status.success() {
        return Err("bash ran without the shim: the root is not NixOS-like".into());
    }

    root.install_shim(&shim)?;
    println!("\n  installed {} as /lib64/ld-linux-x86-64.so.2", shim.display());

    let log = [("NIX_LD_LOG", "info")];
    say("With the shim: bash", "NIX_LD_LOG=info chroot ROOT /opt/foreign/bin/bash -c 'echo hello from $BASH_VERSION'");
    let out = chroot(&root, &["/opt/foreign/bin/bash", "-c", "echo hello from bash $BASH_VERSION"], &log)?;
    print_output(&out);
    expect(&out, "hello from bash")?;

    say(
        "With the shim: python3 and its C extensions",
        &format!("NIX_LD_LOG=info chroot ROOT /opt/python/bin/python3 -c \"{PYTHON_CHECK}\""),
    );
    let out = chroot(&root, &["/opt/python/bin/python3", "-c", PYTHON_CHECK], &log)?;
    print_output(&out);
    expect(&out, "runs:")?;

    say(
        "A child process sees the environment it was given, nothing more",
        "env shown by python3 -c 'import os; print(os.environ)'",
    );
    let out =
        chroot(&root, &["/opt/python/bin/python3", "-c", "import os; print(dict(os.environ))"], &[("GREETING", "hi")])?;
    print_output(&out);
    expect(&out, "'GREETING': 'hi'")?;
    if String::from_utf8_lossy(&out.stdout).contains("LD_LIBRARY_PATH") {
        return Err("LD_LIBRARY_PATH leaked into the program's environment".into());
    }

    chapter_two(&root, &doctor, &needs_crypt)?;

    println!("\nDemo complete: foreign bash and python3 ran in a NixOS-like root through the shim, and");
    println!("nix-ld-doctor said what a program missing libcrypt.so.1 needed.");
    Ok(())
}

/// A foreign program that needs libcrypt.so.1, which the store has (libxcrypt) and the library set
/// does not: it fails, the doctor says why and what to set, and with that it runs.
fn chapter_two(root: &NixosRoot, doctor: &Path, needs_crypt: &Path) -> Result<()> {
    root.install(needs_crypt, "/opt/foreign/bin/needs-crypt")?;
    // As the Nix package installs it: started by the store's loader, not through the shim.
    root.install_from_the_store(doctor, "/opt/doctor/bin/nix-ld-doctor")?;

    say("Chapter two: a program that needs libcrypt.so.1", "chroot ROOT /opt/foreign/bin/needs-crypt");
    let out = chroot(root, &["/opt/foreign/bin/needs-crypt"], &[])?;
    print_output(&out);
    if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("libcrypt.so.1") {
        return Err("needs-crypt should fail for want of libcrypt.so.1".into());
    }

    say(
        "nix-ld-doctor says why, and what to add",
        "chroot ROOT /opt/doctor/bin/nix-ld-doctor /opt/foreign/bin/needs-crypt",
    );
    let out = chroot(root, &["/opt/doctor/bin/nix-ld-doctor", "/opt/foreign/bin/needs-crypt"], &[])?;
    print_output(&out);
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let store_dir = nixos_root::store_dir(LIBXCRYPT).display().to_string();
    let wanted = [
        "libcrypt.so.1 (needed by /opt/foreign/bin/needs-crypt)",
        &format!("libxcrypt: {store_dir}"),
        "programs.nix-ld.libraries = with pkgs; [ libxcrypt ];",
    ];
    if out.status.code() != Some(1) || !wanted.iter().all(|w| text.contains(w)) {
        return Err(format!("nix-ld-doctor should name libcrypt.so.1, {store_dir} and libxcrypt (exit 1)"));
    }

    let nix_path = format!("{}:{store_dir}", root.set.display());
    say("With the library added", &format!("NIX_LD_LIBRARY_PATH={nix_path} chroot ROOT /opt/foreign/bin/needs-crypt"));
    let out = chroot(root, &["/opt/foreign/bin/needs-crypt"], &[("NIX_LD_LIBRARY_PATH", &nix_path)])?;
    print_output(&out);
    expect(&out, "crypt works: $6$salt$")
}

fn say(title: &str, command: &str) {
    println!("\n== {title}\n$ {command}");
}

fn print_output(out: &std::process::Output) {
    // The shim's diagnostics come before anything the program prints.
    for line in String::from_utf8_lossy(&out.stderr).lines().chain(String::from_utf8_lossy(&out.stdout).lines()) {
        println!("  {line}");
    }
    println!("  (exit status {})", out.status.code().map_or("signal".into(), |c| c.to_string()));
}

fn expect(out: &std::process::Output, text: &str) -> Result<()> {
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(text) {
        Ok(())
    } else {
        Err(format!("expected success with output containing {text:?}"))
    }
}

/// Runs `argv` in the root with `env` and the foreign programs' directories on PATH.
fn chroot(root: &NixosRoot, argv: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    let mut env = env.to_vec();
    env.push(("PATH", "/opt/foreign/bin:/opt/python/bin"));
    root.chroot(argv, &env)
}

fn extension_modules(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "so")).collect()
        })
        .unwrap_or_default()
}
