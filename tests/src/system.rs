//! The whole distribution through the shim, and what a process looks like from inside.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

/// Strips load addresses from ldd-style output.
fn without_addresses(s: &str) -> String {
    s.lines().map(|l| l.split(" (0x").next().unwrap_or(l).to_string()).collect::<Vec<_>>().join("\n")
}

/// Runs `argv` in a private mount namespace where /lib64 holds only the shim, so every dynamically
/// linked program of this distribution goes through it (with NIX_LD naming the real loader).
fn root_through_shim(lib64: &Path, argv: &[&str], log: bool) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "/bin/sh", "-c", "mount --bind \"$0\" /lib64 && exec \"$@\""])
        .arg(lib64)
        .args(argv)
        .env("NIX_LD", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        .env_remove("NIX_LD_LIBRARY_PATH")
        .env_remove("LD_LIBRARY_PATH");
    if log {
        cmd.env("NIX_LD_LOG", "info");
    }
    cmd.output().unwrap()
}

fn root_direct(argv: &[&str]) -> Output {
    let program = Path::new(argv[0]);
    assert!(program.exists(), "{}", crate::nixos_root::not_on_path(&program.file_name().unwrap().to_string_lossy()));
    Command::new(argv[0])
        .args(&argv[1..])
        .env_remove("NIX_LD_LIBRARY_PATH")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap()
}

#[test]
fn root_the_distribution_runs_unchanged_through_the_shim() {
    require_root();
    let dir = scratch("whole-distribution");
    let lib64 = dir.join("lib64");
    std::fs::create_dir_all(&lib64).unwrap();
    std::fs::copy(shim(), lib64.join("ld-linux-x86-64.so.2")).unwrap();
    let src = fixtures().join("hello.c");
    let obj = dir.join("hello.o");
    let (src, obj) = (src.to_str().unwrap(), obj.to_str().unwrap());

    // Proof that programs really go through the shim in the namespace.
    let out = root_through_shim(&lib64, &["/bin/true"], true);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("nix-ld: loader /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 (from NIX_LD)"),
        "{}",
        stderr(&out)
    );

    let commands: Vec<Vec<&str>> = vec![
        vec!["/bin/bash", "-c", "echo $((6 * 7)) $BASH_VERSION"],
        vec!["/usr/bin/python3", "-c", "import ssl, sqlite3, ctypes; print(ssl.OPENSSL_VERSION, sqlite3.sqlite_version, ctypes.CDLL(None).getpid() > 0)"],
        vec!["/usr/bin/perl", "-MPOSIX", "-e", "print qq(perl $] ), POSIX::floor(2.5), qq(\\n)"],
        vec!["/usr/bin/git", "--version"],
        vec!["/usr/bin/gcc", "-c", src, "-o", obj],
        vec!["/usr/bin/ldd", "/bin/true"],
    ];
    for argv in &commands {
        let want = root_direct(argv);
        assert!(want.status.success(), "{argv:?} fails even without the shim: {}", stderr(&want));
        let got = root_through_shim(&lib64, argv, false);
        assert_eq!(got.status.code(), want.status.code(), "{argv:?}: {}", stderr(&got));
        assert_eq!(without_addresses(&stdout(&got)), without_addresses(&stdout(&want)), "{argv:?}");
        assert_eq!(stderr(&got), stderr(&want), "{argv:?}");
    }
    assert!(Path::new(obj).exists());
}

#[test]
fn the_process_looks_the_same_from_inside() {
    let dir = scratch("hygiene");
    let build = |name: &str, interpreter: &Path| {
        let out = dir.join(name);
        let status = Command::new(on_path("c++"))
            .args(["-O1", "-pthread", "-o"])
            .arg(&out)
            .arg(fixtures().join("hygiene.cpp"))
            .arg(format!("-Wl,--dynamic-linker={}", interpreter.display()))
            .status()
            .unwrap();
        assert!(status.success());
        out
    };
    let plain = build("plain", &system_loader());
    let shimmed = build("shimmed", &shim());
    let loader = system_loader();
    let want = run_with(&plain, &[], &[("NIX_LD", loader.to_str().unwrap())]);
    assert!(want.status.success(), "{}", stderr(&want));
    assert_eq!(
        stdout(&want).lines().skip(1).collect::<Vec<_>>(),
        ["writable and executable mappings: 0", "thread saw tls 8, main sees 7", "exceptions work"]
    );
    let libs = dir.join("lib");
    std::fs::create_dir_all(&libs).unwrap();
    for env in [vec![], vec![("NIX_LD_LIBRARY_PATH", libs.to_str().unwrap())]] {
        let mut env = env;
        env.push(("NIX_LD", loader.to_str().unwrap()));
        let got = run_with(&shimmed, &[], &env);
        assert!(got.status.success(), "{}", stderr(&got));
        assert_eq!(stdout(&got), stdout(&want), "same descriptors, no W+X mapping, threads, TLS and exceptions");
    }
}
