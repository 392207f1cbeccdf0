//! Bad loaders: each ends in one clear line and exit status 127, never a signal or a hang.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

fn patched_loader(dir: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(system_loader()).unwrap();
    patch(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs the hello fixture with NIX_LD=`loader` and checks the error line.
fn assert_refused(hello: &Path, loader: &str, cause: &str) {
    let start = Instant::now();
    let out = run_with(hello, &[], &[("NIX_LD", loader)]);
    assert!(start.elapsed() < Duration::from_secs(10), "{loader}: took too long");
    assert_eq!(out.status.code(), Some(127), "{loader}: {:?} {}", out.status, stderr(&out));
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or("");
    let want = format!("nix-ld: cannot run {}: loader {loader} {cause}", hello.display());
    assert_eq!(first, want);
    assert!(!err.contains("panicked"));
    for line in err.lines() {
        assert!(line.starts_with("nix-ld: "), "every line is the shim's: {line}");
    }
}

#[test]
fn every_kind_of_bad_loader_gets_a_clear_error() {
    let dir = scratch("bad-loaders");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();

    assert_refused(&hello, &p("missing"), "does not exist");
    std::fs::write(dir.join("empty"), b"").unwrap();
    assert_refused(&hello, &p("empty"), "is empty");
    std::fs::create_dir(dir.join("directory")).unwrap();
    assert_refused(&hello, &p("directory"), "is a directory");
    std::fs::write(dir.join("script"), b"#!/bin/sh\necho hi\n").unwrap();
    assert_refused(&hello, &p("script"), "is not an ELF file");
    let real = std::fs::read(system_loader()).unwrap();
    std::fs::write(dir.join("truncated-header"), &real[..40]).unwrap();
    assert_refused(&hello, &p("truncated-header"), "is truncated (shorter than an ELF header)");
    std::fs::write(dir.join("truncated"), &real[..8192]).unwrap();
    let out = run_with(&hello, &[], &[("NIX_LD", &p("truncated"))]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("is truncated (program header"), "{}", stderr(&out));

    patched_loader(&dir, "i386", |b| {
        b[4] = 1;
        b[18] = 3;
    });
    assert_refused(&hello, &p("i386"), "is not an x86-64 ELF file (it is 32-bit i386)");
    patched_loader(&dir, "aarch64", |b| b[18..20].copy_from_slice(&183u16.to_le_bytes()));
    assert_refused(&hello, &p("aarch64"), "is not an x86-64 ELF file (it is AArch64)");
    patched_loader(&dir, "phnum", |b| b[56..58].copy_from_slice(&5000u16.to_le_bytes()));
    assert_refused(&hello, &p("phnum"), "has an absurd number of program headers (5000)");
    patched_loader(&dir, "phoff", |b| b[32..40].copy_from_slice(&(u64::MAX - 100).to_le_bytes()));
    assert_refused(&hello, &p("phoff"), "is truncated (its program headers lie outside the file)");

    static_program(&dir, "et-exec", false);
    assert_refused(&hello, &p("et-exec"), "is a fixed-address executable (ET_EXEC), not a position-independent loader");
    let program = compile(&dir, "hello.c", "a-program", &system_loader(), &[]);
    assert_refused(
        &hello,
        program.to_str().unwrap(),
        "is a program, not a loader (it has its own interpreter); point NIX_LD at ld.so itself",
    );

    // A path longer than PATH_MAX: a_5000_byte_nix_ld_gives_a_short_line_that_names_its_length.

    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    assert_refused(&hello, fifo.to_str().unwrap(), "is not a regular file");
}

#[test]
fn a_5000_byte_nix_ld_gives_a_short_line_that_names_its_length() {
    let dir = scratch("long-loader");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    // Distinct ends, so the line shows which bytes it kept.
    let long = format!("/head{}tail", "m".repeat(4991));
    assert_eq!(long.len(), 5000);
    let out = run_with(&hello, &[], &[("NIX_LD", &long)]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or("");
    let (head, tail) = (&long[..120], &long[long.len() - 120..]);
    let want = format!("nix-ld: cannot run {}: loader {head}...(5000 bytes in all)...{tail} has a path longer than PATH_MAX (4096 bytes)", hello.display());
    assert_eq!(first, want);
    assert!(first.len() < 400 + hello.as_os_str().len(), "{} bytes", first.len());
}

#[test]
fn root_an_unreadable_loader_is_reported() {
    require_root();
    let dir = scratch("unreadable");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let secret = dir.join("secret-ld.so");
    std::fs::copy(system_loader(), &secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&hello)
        .env_clear()
        .env("NIX_LD", &secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).starts_with(&format!(
        "nix-ld: cannot run {}: loader {} is not readable (permission denied)\n",
        hello.display(),
        secret.display()
    )));
}

#[test]
fn an_unset_loader_with_no_default_is_explained() {
    let dir = scratch("no-loader");
    let hello = compile(&dir, "hello.c", "hello", &shim(), &[]);
    let out = run_with(&hello, &[], &[]);
    assert_eq!(out.status.code(), Some(127));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "nix-ld: cannot run {}: loader /run/current-system/sw/share/nix-ld/lib/ld.so does not exist\n",
            hello.display()
        )),
        "{err}"
    );
    assert!(err.contains("nix-ld: hint: set NIX_LD"), "{err}");
}
