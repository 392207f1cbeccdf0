# The shim, built from this repository, laid out like nixpkgs' nix-ld package so that it can be
# used as `programs.nix-ld.package` as well as through this repository's own module.
{
  lib,
  rustPlatform,
  stdenv,
  python3,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;

  # The interpreter that binaries built for other distributions name. The shim only has an
  # x86_64 implementation, hence the single platform in meta.
  ldPath = "/lib64/ld-linux-x86-64.so.2";

  # What the NixOS module creates (nix/module.nix): the real ld.so and the library set. The shim
  # falls back to these when NIX_LD / NIX_LD_LIBRARY_PATH are not set, so a program started with
  # an emptied environment (env -i, systemd units, sudo) still runs.
  defaultLoader = "/run/current-system/sw/share/nix-ld/lib/ld.so";
  defaultLibraryPath = "/run/current-system/sw/share/nix-ld/lib";
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
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

  # The workspace also holds xtask and the execve tests; only the shim is installed.
  cargoBuildFlags = [
    "-p"
    "nix-ld"
  ];

  # Read by src/lib.rs through option_env!.
  DEFAULT_NIX_LD = defaultLoader;
  DEFAULT_NIX_LD_LIBRARY_PATH = defaultLibraryPath;

  # A static-pie that relocates itself has no search path to shrink; leave its headers alone.
  dontPatchELF = true;

  # The check phase is the project's own test suite: unit tests, then the execve integration
  # tests, which compile C fixtures with `cc` and skip (loudly) what needs root.
  nativeCheckInputs = [ python3 ];
  checkPhase = ''
    runHook preCheck
    # The sandbox has no /lib64/ld-linux-x86-64.so.2; the tests take the real loader from here.
    export NIX_LD=${stdenv.cc.bintools.dynamicLinker}
    export CARGO_NET_OFFLINE=true
    # --skip-nix-check: these Nix files are this build's own recipe, already evaluated to start
    # it, and nix-instantiate is not available inside the build sandbox.
    cargo run --offline --package xtask -- test --skip-nix-check
    runHook postCheck
  '';

  postInstall = ''
    mkdir -p $out/libexec
    mv $out/bin/nix-ld $out/libexec/nix-ld
    ln -s ../libexec/nix-ld $out/bin/nix-ld

    mkdir -p $out/nix-support
    echo ${ldPath} > $out/nix-support/ldpath

    mkdir -p $out/lib/tmpfiles.d
    cat > $out/lib/tmpfiles.d/nix-ld.conf <<EOF
    d ${dirOf ldPath} 0755 root root - -
    L+ ${ldPath} - - - - $out/libexec/nix-ld
    EOF
  '';

  passthru = { inherit ldPath; };

  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    platforms = [ "x86_64-linux" ];
    mainProgram = "nix-ld";
  };
}
