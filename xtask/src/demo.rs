//! `cargo xtask demo`: foreign programs of this distribution running inside a NixOS-like root.
//!
//! The root has what a NixOS machine has and nothing a foreign binary expects: no `/lib`, no
//! `/usr/lib`, no `ld.so.cache`; glibc and every other library live under `/nix/store/<hash>-<name>`;
//! `/run/current-system/sw/share/nix-ld/lib` is laid out as the NixOS module lays it out. bash and
//! python3 (with its standard library) are copied in unchanged, and run in a chroot: first without
//! the shim, which fails as it does on NixOS, then with it.
//!
//! The second chapter is the user story the project starts from: a foreign program needs
//! `libcrypt.so.1`, which is in the store (libxcrypt) but not in the library set. It fails;
//! nix-ld-doctor names the library, the store path and the line to add; with that, it runs.

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let root = project_root().join("target/demo-root");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    }
    let python = Path::new("/usr/bin/python3").canonicalize().map_err(|e| format!("python3: {e}"))?;
    let python_lib = PathBuf::from(format!("/usr/lib/{}", python.file_name().unwrap().to_string_lossy()));
    let programs = [PathBuf::from("/bin/bash"), python.clone()];

    say("Building a NixOS-like root", &root.display().to_string());
    let work = project_root().join("target/demo-work");
    mkdir(&work)?;
    let needs_crypt = work.join("needs-crypt");
    std::fs::write(work.join("needs-crypt.c"), NEEDS_CRYPT).map_err(|e| e.to_string())?;
    util::run(Command::new("cc").arg("-o").arg(&needs_crypt).arg(work.join("needs-crypt.c")).arg("-lcrypt"))?;
    let mut objects: Vec<PathBuf> = programs.to_vec();
    objects.extend(extension_modules(&python_lib.join("lib-dynload")));
    objects.push(doctor.clone());
    objects.push(needs_crypt.clone());
    let libraries = shared_libraries(&objects)?;
    let sw_lib = root.join("run/current-system/sw/share/nix-ld/lib");
    mkdir(&sw_lib)?;
    let mut loader_in_store = None;
    for lib in &libraries {
        let name = lib.file_name().unwrap().to_string_lossy().into_owned();
        let package = if is_glibc(&name) {
            "glibc-2.36".to_string()
        } else if name.starts_with("libcrypt.so") {
            LIBXCRYPT.to_string()
        } else {
            package_name(&name)
        };
        let store_lib = root.join(format!("nix/store/{}-{package}/lib", fake_hash(&package)));
        mkdir(&store_lib)?;
        copy(lib, &store_lib.join(&name))?;
        let in_root = Path::new("/").join(store_lib.strip_prefix(&root).unwrap()).join(&name);
        if name.starts_with("ld-linux-x86-64") {
            loader_in_store = Some(in_root.clone());
        }
        // The module's buildEnv links every library of the configured packages here; libxcrypt
        // is not one of them (the second chapter's case).
        if package != LIBXCRYPT {
            symlink(&in_root, sw_lib.join(&name)).map_err(|e| e.to_string())?;
        }
    }
    let loader = loader_in_store.ok_or("no ld-linux-x86-64.so.2 among the libraries")?;
    symlink(&loader, sw_lib.join("ld.so")).map_err(|e| e.to_string())?;

    let bin = root.join("opt/foreign/bin");
    mkdir(&bin)?;
    copy(Path::new("/bin/bash"), &bin.join("bash"))?;
    // python3 finds its standard library next to itself: <prefix>/bin/python3 and <prefix>/lib/python3.X.
    let py_prefix = root.join("opt/python");
    mkdir(&py_prefix.join("bin"))?;
    copy(&python, &py_prefix.join("bin/python3"))?;
    mkdir(&py_prefix.join("lib"))?;
    util::run(Command::new("cp").arg("-a").arg(&python_lib).arg(py_prefix.join("lib")))?;
    let _ = std::fs::remove_dir_all(py_prefix.join("lib").join(python_lib.file_name().unwrap()).join("test"));
    mkdir(&root.join("tmp"))?;
    mkdir(&root.join("etc"))?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/opt/foreign/bin/bash\n").map_err(|e| e.to_string())?;

    for absent in ["lib", "usr/lib", "lib64/ld-linux-x86-64.so.2", "etc/ld.so.cache"] {
        assert!(!root.join(absent).exists(), "{absent} must not exist in the NixOS-like root");
    }
    println!("  /nix/store holds {} libraries; no /lib, no /usr/lib, no /etc/ld.so.cache", libraries.len());
    println!("  ld.so:  /run/current-system/sw/share/nix-ld/lib/ld.so -> {}", loader.display());

    say("Without the shim: what a NixOS user sees", "chroot ROOT /opt/foreign/bin/bash -c 'echo hello'");
    let out = chroot(&root, &["/opt/foreign/bin/bash", "-c", "echo hello"], &[])?;
    print_output(&out);
    if out.status.success() {
        return Err("bash ran without the shim: the root is not NixOS-like".into());
    }

    mkdir(&root.join("lib64"))?;
    copy(&shim, &root.join("lib64/ld-linux-x86-64.so.2"))?;
    println!("\n  installed {} as /lib64/ld-linux-x86-64.so.2", shim.display());

    let log = [("NIX_LD_LOG", "info")];
    say("With the shim: bash", "NIX_LD_LOG=info chroot ROOT /opt/foreign/bin/bash -c 'echo hello from $BASH_VERSION'");
    let out = chroot(&root, &["/opt/foreign/bin/bash", "-c", "echo hello from bash $BASH_VERSION"], &log)?;
    print_output(&out);
    expect(&out, "hello from bash")?;

    say("With the shim: python3 and its C extensions", &format!("NIX_LD_LOG=info chroot ROOT /opt/python/bin/python3 -c \"{PYTHON_CHECK}\""));
    let out = chroot(&root, &["/opt/python/bin/python3", "-c", PYTHON_CHECK], &log)?;
    print_output(&out);
    expect(&out, "runs:")?;

    say("A child process sees the environment it was given, nothing more", "env shown by python3 -c 'import os; print(os.environ)'");
    let out = chroot(&root, &["/opt/python/bin/python3", "-c", "import os; print(dict(os.environ))"], &[("GREETING", "hi")])?;
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

const LIBXCRYPT: &str = "libxcrypt-4.4.33";
const NEEDS_CRYPT: &str = "#include <crypt.h>\n#include <stdio.h>\nint main(void) { printf(\"crypt works: %s\\n\", crypt(\"nix\", \"$6$salt$\")); return 0; }\n";

/// A foreign program that needs libcrypt.so.1, which the store has (libxcrypt) and the library set
/// does not: it fails, the doctor says why and what to set, and with that it runs.
fn chapter_two(root: &Path, doctor: &Path, needs_crypt: &Path) -> Result<()> {
    let opt = root.join("opt/foreign/bin");
    copy(needs_crypt, &opt.join("needs-crypt"))?;
    let doctor_dir = root.join("opt/doctor/bin");
    mkdir(&doctor_dir)?;
    copy(doctor, &doctor_dir.join("nix-ld-doctor"))?;

    say("Chapter two: a program that needs libcrypt.so.1", "chroot ROOT /opt/foreign/bin/needs-crypt");
    let out = chroot(root, &["/opt/foreign/bin/needs-crypt"], &[])?;
    print_output(&out);
    if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("libcrypt.so.1") {
        return Err("needs-crypt should fail for want of libcrypt.so.1".into());
    }

    say("nix-ld-doctor says why, and what to add", "chroot ROOT /opt/doctor/bin/nix-ld-doctor /opt/foreign/bin/needs-crypt");
    let out = chroot(root, &["/opt/doctor/bin/nix-ld-doctor", "/opt/foreign/bin/needs-crypt"], &[])?;
    print_output(&out);
    let text = String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    let store_dir = format!("/nix/store/{}-{LIBXCRYPT}/lib", fake_hash(LIBXCRYPT));
    let wanted = ["problem: libcrypt.so.1 is not found", &format!("found in {store_dir} (libxcrypt,"), "programs.nix-ld.libraries = with pkgs; [ libxcrypt ];"];
    if out.status.code() != Some(1) || !wanted.iter().all(|w| text.contains(w)) {
        return Err(format!("nix-ld-doctor should name libcrypt.so.1, {store_dir} and libxcrypt (exit 1)"));
    }

    let nix_path = format!("/run/current-system/sw/share/nix-ld/lib:{store_dir}");
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

fn chroot(root: &Path, argv: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    let mut cmd = Command::new("/usr/sbin/chroot");
    cmd.arg(root).args(argv).env_clear().env("PATH", "/opt/foreign/bin:/opt/python/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().map_err(|e| format!("chroot: {e}"))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

fn extension_modules(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "so")).collect())
        .unwrap_or_default()
}

/// Every shared library the objects need, as resolved by this machine's ldd.
fn shared_libraries(objects: &[PathBuf]) -> Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for object in objects {
        let out = Command::new("ldd").arg(object).output().map_err(|e| format!("ldd: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=> ") {
                Some((_, rest)) => rest.split(" (").next().unwrap_or("").trim().to_string(),
                None => line.trim().split(" (").next().unwrap_or("").to_string(),
            };
            if path.starts_with('/') {
                libs.insert(Path::new(&path).canonicalize().map_err(|e| format!("{path}: {e}"))?.with_file_name(Path::new(&path).file_name().unwrap()));
            }
        }
    }
    Ok(libs)
}

fn is_glibc(name: &str) -> bool {
    ["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libutil.so", "libresolv.so", "libnsl.so", "ld-linux"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// "libssl.so.3" -> "libssl-3", standing in for a Nix package name.
fn package_name(soname: &str) -> String {
    let (base, version) = soname.split_once(".so").unwrap_or((soname, ""));
    format!("{base}{}", version.replace('.', "-"))
}

/// A stable stand-in for a Nix store hash (32 characters of Nix's base-32 alphabet).
pub(crate) fn fake_hash(name: &str) -> String {
    let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    (0..32)
        .map(|i| {
            for b in name.bytes().chain([i as u8]) {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
            alphabet[(h >> 59) as usize] as char
        })
        .collect()
}
