# The shim, built from this repository, laid out like nixpkgs' nix-ld package so that it can be
# used as `programs.nix-ld.package` as well as through this repository's own module.
#
# Its name, nix-ld-shim, is its own: nixpkgs has `nix-ld` (the package) and `nix-ld-rs` (an alias
# of it), and an overlay defining either would silently replace nixpkgs' package.
{
  lib,
  rustPlatform,
  stdenv,
  # Where under /run/current-system/sw/share the NixOS module puts this shim's loader and library
  # set: nix-ld for the host's own shim, nix-ld32 for the 32-bit one beside x86_64's, and
  # nix-ld-x86_64 for the x86_64 one an aarch64 host runs by emulation.
  shareDir ? if stdenv.hostPlatform.isx86_32 then "nix-ld32" else "nix-ld",
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;

  # The interpreter that binaries built for other distributions name, derived from the host
  # platform as nixpkgs' nix-ld package derives it: /lib64/ld-linux-x86-64.so.2 on x86_64,
  # /lib/ld-linux-aarch64.so.1, /lib/ld-linux-riscv64-lp64d.so.1, /lib/ld-linux.so.2 on i686.
  ldPath = "/${stdenv.hostPlatform.libDir}/${baseNameOf stdenv.cc.bintools.dynamicLinker}";

  # What the NixOS module creates (nix/module.nix): the real ld.so and the library set. The shim
  # falls back to these when NIX_LD / NIX_LD_LIBRARY_PATH are not set, so a program started with
  # an emptied environment (env -i, systemd units, sudo) still runs. The 32-bit shim (i686, as
  # pkgsi686Linux builds it for x86_64 NixOS) has a library set of its own beside the 64-bit one.
  defaultLoader = "/run/current-system/sw/share/${shareDir}/lib/ld.so";
  defaultLibraryPath = "/run/current-system/sw/share/${shareDir}/lib";
in
rustPlatform.buildRustPackage {
  pname = "nix-ld-shim";
  version = cargoToml.package.version;

  # The cargo workspace only: a build tree or an edit to the Nix files must not change the hash.
  src = lib.cleanSourceWith {
    name = "nix-ld-source";
    src = lib.cleanSource ../.;
    filter =
      path: _type:
      !(lib.elem (lib.removePrefix (toString ../. + "/") (toString path)) [
        "target"
        "nix"
        "flake.nix"
        "flake.lock"
      ]);
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The workspace also holds xtask and the execve tests; the shim and nix-ld-doctor are installed.
  cargoBuildFlags = [
    "-p"
    "nix-ld"
    "-p"
    "nix-ld-doctor"
  ];

  # Read by src/lib.rs through option_env!.
  DEFAULT_NIX_LD = defaultLoader;
  DEFAULT_NIX_LD_LIBRARY_PATH = defaultLibraryPath;

  # A static-pie that relocates itself has no search path to shrink; leave its headers alone.
  dontPatchELF = true;
  # The shim's section table is written for debuggers after linking (`cargo xtask finish`, see
  # xtask/src/sections.rs); strip would rebuild the file from it and drop the code.
  stripExclude = [ "libexec/nix-ld" ];

  # What nixpkgs' build adds is harmless to the shim's one-segment layout, and the install check
  # below verifies it: cargo-auditable's `.dep-v0` section is not allocated (it stays in the file,
  # unmapped); the cc wrapper's `--build-id` note and the `.dynamic` that `-rpath` would need are
  # discarded by linker.ld; `-z relro` has no writable data to protect (build.rs passes norelro).

  # The check phase is the part of the project's test suite that the Nix build sandbox allows
  # (`cargo xtask test --nix-sandbox`): unit and property tests, then the execve integration tests,
  # which compile C fixtures with `cc` and take bash from PATH. It prints what it leaves out and
  # why: the tests that need root, and the Nix file checks (no nix-instantiate in the sandbox).
  # CI runs the same command in an emulation of this sandbox (.ci/nix-sandbox).
  # The execve tests' fixtures are x86-64 programs (entry-stack checks, freestanding stand-in
  # loaders); the other platforms' shims are tested from x86_64, under qemu-user and natively for
  # i686 (tests/src/platforms.rs, README: Platforms). The install check runs on every platform.
  doCheck = stdenv.hostPlatform.isx86_64;
  checkPhase = ''
    runHook preCheck
    # The sandbox has no /lib64/ld-linux-x86-64.so.2; the tests take the real loader from here.
    export NIX_LD=${stdenv.cc.bintools.dynamicLinker}
    export CARGO_NET_OFFLINE=true
    cargo run --offline --package xtask -- test --nix-sandbox
    runHook postCheck
  '';

  # The installed file is not the one the check phase built (nixpkgs builds for an explicit
  # --target, through cargo-auditable): check it as `cargo xtask build` checks its own.
  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    cargo run --offline --package xtask -- verify $out/libexec/nix-ld
    runHook postInstallCheck
  '';

  postInstall = ''
    mkdir -p $out/libexec
    mv $out/bin/nix-ld $out/libexec/nix-ld
    cargo run --offline --package xtask -- finish $out/libexec/nix-ld
    ln -s ../libexec/nix-ld $out/bin/nix-ld

    # gdb's helper for programs started through the shim; the NixOS module installs it in
    # /etc/gdb/gdbinit.d.
    install -Dm644 gdb/nix-ld.py $out/share/nix-ld/gdb/nix-ld.py

    mkdir -p $out/nix-support
    echo ${ldPath} > $out/nix-support/ldpath

    mkdir -p $out/lib/tmpfiles.d
    cat > $out/lib/tmpfiles.d/nix-ld.conf <<EOF
    d ${dirOf ldPath} 0755 root root - -
    L+ ${ldPath} - - - - $out/libexec/nix-ld
    EOF
  '';

  passthru = { inherit ldPath shareDir; };

  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
      "riscv64-linux"
      "i686-linux"
    ];
    # What `nix run` and lib.getExe start: the program a user runs; the shim is run by the kernel.
    mainProgram = "nix-ld-doctor";
  };
}
