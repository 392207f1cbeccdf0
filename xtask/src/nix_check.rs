//! The Nix files' checks for `cargo xtask test`: every `*.nix` file parses, and what can be
//! evaluated without nixpkgs agrees with itself.
//!
//! There is no nixpkgs here (and no network to fetch it), so nothing is built and no NixOS system
//! is evaluated. Each evaluation instead calls the files with stand-ins for the few `lib` and `pkgs`
//! functions they use, each doing what nixpkgs documents, and checks the files' own logic: the
//! module's option names and types, that the variables it sets are the defaults compiled into the
//! package, that the flake wires package, module and overlay together. Building the package and
//! running the VM test need nixpkgs: `nix build .#checks.x86_64-linux.vm-test` (nix/README.md).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const NIX_INSTANTIATE: &str = "nix-instantiate";

/// Lets nix-instantiate parse and evaluate as any user, with no daemon and no writable /nix: the
/// dummy store takes no writes, and these checks make none. (Without it, Debian's nix-bin wants
/// the daemon's socket, which only root and the nix-users group may open.)
const STORE: [&str; 2] = ["--store", "dummy://"];

/// Directory names that hold build output or history, never the project's Nix files.
const SKIPPED_DIRS: [&str; 2] = ["target", ".git"];

/// The variable that names a checkout of nixpkgs' lib for [`MODULE_SYSTEM_EVALUATIONS`].
pub const NIXPKGS_LIB: &str = "NIXPKGS_LIB";

/// One evaluation: a Nix expression, after [`PRELUDE`], that is `true` or throws what is wrong.
struct Evaluation {
    name: &'static str,
    body: &'static str,
}

/// The checks that need only the files themselves. Each counts as one passed check.
const EVALUATIONS: [Evaluation; 5] = [
    Evaluation {
        name: "flake.nix wires the package, apps, module and overlay",
        body: FLAKE,
    },
    Evaluation {
        name: "nix/package.nix builds the shim as the module expects",
        body: PACKAGE,
    },
    Evaluation {
        name: "nix/module.nix declares programs.nix-ld-shim with programs.nix-ld's option names, renames programs.nix-ld-rs and refuses unsafe directories",
        body: OPTIONS,
    },
    Evaluation {
        name: "nix/module.nix agrees with the package's compiled-in defaults",
        body: CONFIG,
    },
    Evaluation {
        name: "nix/vm-test.nix enables the module and its test script evaluates",
        body: VM_TEST,
    },
];

/// Parses every `*.nix` file under `root` and runs [`EVALUATIONS`]; returns how many checks passed,
/// or every failure, each naming its file or check with nix's own message.
///
/// With a checkout of nixpkgs' lib (nix-community/nixpkgs.lib) also
/// [`MODULE_SYSTEM_EVALUATIONS`]: the module through nixpkgs' real `lib.evalModules`, and the
/// flake's outputs for its four systems.
pub fn run_with(root: &Path, nixpkgs_lib: Option<&Path>) -> Result<usize, String> {
    check_available(NIX_INSTANTIATE)?;
    let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let root_arg = root.to_str().ok_or_else(|| format!("{}: path is not UTF-8", root.display()))?;

    let files = nix_files(&root)?;
    if files.is_empty() {
        return Err(format!("no *.nix files under {}", root.display()));
    }

    let mut passed = 0;
    let mut failures = Vec::new();
    for file in &files {
        let name = file.strip_prefix(&root).unwrap_or(file).display();
        match parse(&root, file) {
            Ok(()) => {
                println!("nix: ok   {name} parses");
                passed += 1;
            }
            Err(e) => failures.push(format!("{name} does not parse:\n{e}")),
        }
    }
    for evaluation in &EVALUATIONS {
        match evaluate(&root, root_arg, evaluation.body) {
            Ok(()) => {
                println!("nix: ok   {}", evaluation.name);
                passed += 1;
            }
            Err(e) => failures.push(format!("{}:\n{e}", evaluation.name)),
        }
    }
    match nixpkgs_lib {
        Some(dir) => {
            let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
            if !dir.join("lib/default.nix").is_file() {
                return Err(format!("{}: not a checkout of nixpkgs' lib (no lib/default.nix)", dir.display()));
            }
            let dir_arg = dir.to_str().ok_or("the nixpkgs lib path is not UTF-8")?;
            for evaluation in &MODULE_SYSTEM_EVALUATIONS {
                match evaluate_with(&root, root_arg, dir_arg, evaluation.body) {
                    Ok(()) => {
                        println!("nix: ok   {} (nixpkgs lib at {})", evaluation.name, dir.display());
                        passed += 1;
                    }
                    Err(e) => failures.push(format!("{}:\n{e}", evaluation.name)),
                }
            }
        }
        None => eprintln!(
            "LEFT OUT: the evaluations with nixpkgs' lib.evalModules ({}): set {NIXPKGS_LIB} to a checkout of nix-community/nixpkgs.lib",
            MODULE_SYSTEM_EVALUATIONS.iter().map(|e| e.name).collect::<Vec<_>>().join("; ")
        ),
    }

    if failures.is_empty() {
        Ok(passed)
    } else {
        Err(format!(
            "{} of {} Nix checks failed:\n\n{}",
            failures.len(),
            passed + failures.len(),
            failures.join("\n\n")
        ))
    }
}

/// Errs, saying what to install, unless `program --version` runs.
fn check_available(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`{program} --version` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
            "{program} is not on PATH, and the Nix checks need it: install Debian's nix-bin package \
             (apt-get install -y nix-bin)"
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// Every `*.nix` file under `root`, sorted, skipping [`SKIPPED_DIRS`] and not following symlinks
/// (a `result` link from `nix build` points into the store).
fn nix_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
            if kind.is_dir() {
                if !SKIPPED_DIRS.iter().any(|skipped| entry.file_name() == *skipped) {
                    pending.push(path);
                }
            } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "nix") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn parse(root: &Path, file: &Path) -> Result<(), String> {
    let out = Command::new(NIX_INSTANTIATE)
        .args(STORE)
        .arg("--parse")
        .arg(file)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {NIX_INSTANTIATE}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn evaluate(root: &Path, root_arg: &str, body: &str) -> Result<(), String> {
    evaluate_with(root, root_arg, "", body)
}

/// [`evaluate`], with `nixpkgs_lib` (a checkout of nixpkgs' lib, or "" for the stand-ins) as `lib`.
fn evaluate_with(root: &Path, root_arg: &str, nixpkgs_lib: &str, body: &str) -> Result<(), String> {
    let expression = format!("{PRELUDE}\n{body}");
    let out = Command::new(NIX_INSTANTIATE)
        .args(STORE)
        .args(["--eval", "--strict", "--argstr", "root", root_arg, "--argstr", "nixpkgsLib", nixpkgs_lib])
        .args(["-E", &expression])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {NIX_INSTANTIATE}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.trim() == "true" {
        Ok(())
    } else if out.status.success() {
        Err(format!("evaluated to {} instead of true", stdout.trim()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Binds `root` (the repository, from `--argstr`), `expect`, `contains`, and the stand-ins `lib`,
/// `pkgs` and `fakeDerivation`, for the evaluation bodies below.
const PRELUDE: &str = r##"
{ root, nixpkgsLib }:
let
  rootPath = /. + root;

  # A failed expectation stops the evaluation with its message; nix-instantiate prints it.
  expect = message: condition: condition || throw message;
  contains = needle: haystack: builtins.replaceStrings [ needle ] [ "" ] haystack != haystack;

  # Stand-ins for the few nixpkgs functions the files call, each doing what nixpkgs documents
  # (option and mkIf values are tagged the way the module system reads them), so that what is
  # checked is the files' own logic. Nothing is built or fetched.
  # nixpkgs' own lib when a checkout of it is given (the evaluations with lib.evalModules), else
  # the stand-ins.
  lib = if nixpkgsLib == "" then standInLib else import (/. + nixpkgsLib + "/lib");
  standInLib = rec {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${name}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkDefault = mkOverride 1000;
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    optionalAttrs = condition: attrs: if condition then attrs else { };
    optional = condition: x: if condition then [ x ] else [ ];
    # A module that maps the old option path to the new one; kept as data so that a check can
    # read both paths.
    mkRenamedOptionModule = from: to: { _type = "renamedOptionModule"; inherit from to; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    types = {
      bool = { name = "bool"; check = builtins.isBool; };
      package = { name = "package"; check = x: x.type or null == "derivation"; };
      strMatching = pattern: {
        name = "strMatching";
        check = x: builtins.isString x && builtins.match pattern x != null;
      };
      listOf = elemType: { name = "listOf"; inherit elemType; check = builtins.isList; };
      nullOr = elemType: { name = "nullOr"; inherit elemType; check = x: x == null || elemType.check x; };
    };
    getLib = pkg: pkg.lib or pkg.out or pkg;
    inherit (builtins) concatStringsSep elem;
    removePrefix = prefix: s:
      let n = builtins.stringLength prefix; in
      if builtins.substring 0 n s == prefix then builtins.substring n (builtins.stringLength s - n) s else s;
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    cleanSource = src: src;
    # Returned as given, so that a check can try the filter on paths.
    cleanSourceWith = args: args;
    licenses.mit = { spdxId = "MIT"; };
  };

  # A derivation as far as these files can tell: compared by outPath, like a real one.
  fakeDerivation = name: attrs: attrs // {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };

  # One package set per platform: x86_64's, whose pkgsi686Linux is i686's.
  pkgsFor = system: libDir: loader: isx86_32: extra: rec {
    inherit lib;
    callPackage = fn: overrides:
      let f = if builtins.isFunction fn then fn else import fn; in
      f (builtins.intersectAttrs (builtins.functionArgs f) self // overrides);
    stdenv = {
      hostPlatform = { inherit system libDir isx86_32; };
      cc.bintools.dynamicLinker = "/nix/store/00000000000000000000000000000000-glibc-${system}/lib/${loader}";
      cc.cc = fakeDerivation "gcc-${system}" { };
    };
    self = common // { inherit callPackage stdenv; } // extra;
  };
  pkgsi686Linux = (pkgsFor "i686-linux" "lib" "ld-linux.so.2" true { }).self;
  common = {
    inherit lib;
    zstd = fakeDerivation "zstd" { };
    curl = fakeDerivation "curl" { };
    openssl = fakeDerivation "openssl" { };
    bzip2 = fakeDerivation "bzip2" { };
    libxml2 = fakeDerivation "libxml2" { };
    xz = fakeDerivation "xz" { };
    systemd = fakeDerivation "systemd" { };
    rustPlatform.buildRustPackage = args: fakeDerivation "${args.pname}-${args.version}-${args.DEFAULT_NIX_LD}" args;
    buildEnv = args: fakeDerivation args.name args;
    # Returned as given, so that a check can read the machine and the test script.
    testers.runNixOSTest = test: test;
    runCommandCC = name: env: buildCommand: fakeDerivation name (env // { inherit buildCommand; });
    patchelf = fakeDerivation "patchelf" { };
    zlib = fakeDerivation "zlib" { };
    glibc = fakeDerivation "glibc" { bin = fakeDerivation "glibc-bin" { }; };
    gdb = fakeDerivation "gdb" { };
    ltrace = fakeDerivation "ltrace" { };
  };
  pkgs = (pkgsFor "x86_64-linux" "lib64" "ld-linux-x86-64.so.2" false { inherit pkgsi686Linux; }).self;
  pkgsAarch64 = (pkgsFor "aarch64-linux" "lib" "ld-linux-aarch64.so.1" false {
    pkgsCross.gnu64 = (pkgsFor "x86_64-linux" "lib64" "ld-linux-x86-64.so.2" false { }).self;
  }).self;
  pkgsRiscv64 = (pkgsFor "riscv64-linux" "lib" "ld-linux-riscv64-lp64d.so.1" false { }).self;
in
"##;

/// flake.nix, called with the stand-in nixpkgs as its input and itself as `self`.
const FLAKE: &str = r##"
let
  flake = import (rootPath + "/flake.nix");
  nixpkgs = { inherit lib; legacyPackages.x86_64-linux = pkgs; };
  outputs = flake.outputs { self = outputs // { outPath = root; }; inherit nixpkgs; };
  shim = outputs.packages.x86_64-linux.default;
  module = outputs.nixosModules.default { inherit lib pkgs; config = { }; options = { }; };
in
builtins.all (x: x) [
  (expect "flake.nix: description must be a string" (builtins.isString flake.description))
  (expect "flake.nix: inputs.nixpkgs.url must follow nixos-unstable"
    (contains "nixos-unstable" (flake.inputs.nixpkgs.url or "")))
  (expect "flake.nix: outputs must be a function of the declared inputs"
    (builtins.isFunction flake.outputs
      && builtins.all (name: name == "self" || flake.inputs ? ${name})
        (builtins.attrNames (builtins.functionArgs flake.outputs))))
  (expect "flake.nix: outputs must include packages.x86_64-linux.default, nixosModules.default, overlays.default, checks.x86_64-linux.{package,vm-test} and devShells.x86_64-linux.default"
    (outputs.packages.x86_64-linux ? default && outputs.nixosModules ? default
      && outputs.overlays ? default && outputs.devShells.x86_64-linux ? default
      && outputs.checks.x86_64-linux ? package && outputs.checks.x86_64-linux ? vm-test))
  (expect "flake.nix: packages.x86_64-linux.default must be nix/package.nix"
    (shim == pkgs.callPackage (rootPath + "/nix/package.nix") { }))
  (expect "flake.nix: nixosModules.default must import nix/module.nix"
    (builtins.elem (rootPath + "/nix/module.nix") module.imports))
  (expect "flake.nix: nixosModules.default must set programs.nix-ld-shim.package to the flake's package, with mkDefault"
    ((module.programs.nix-ld-shim.package or { })._type or null == "override"
      && module.programs.nix-ld-shim.package.content == shim))
  (expect "flake.nix: packages.x86_64-linux must name the package nix-ld-shim, not nixpkgs' nix-ld or nix-ld-rs"
    (outputs.packages.x86_64-linux.nix-ld-shim or null == shim
      && !(outputs.packages.x86_64-linux ? nix-ld) && !(outputs.packages.x86_64-linux ? nix-ld-rs)))
  (expect "flake.nix: overlays.default must add nix-ld-shim from nix/package.nix, and nothing named like nixpkgs' packages"
    (let added = outputs.overlays.default pkgs pkgs; in
      builtins.attrNames added == [ "nix-ld-shim" ] && added.nix-ld-shim == shim))
  (expect "flake.nix: apps.x86_64-linux must run the package's bin/nix-ld-doctor (also as default, what `nix run` starts) and bin/nix-ld, each with a description"
    (let apps = outputs.apps.x86_64-linux or { }; in
      builtins.attrNames apps == [ "default" "nix-ld" "nix-ld-doctor" ]
      && builtins.all (a: a.type == "app" && builtins.isString (a.meta.description or null)) (builtins.attrValues apps)
      && apps.nix-ld-doctor.program == "${shim}/bin/nix-ld-doctor"
      && apps.nix-ld.program == "${shim}/bin/nix-ld"
      && apps.default == apps.nix-ld-doctor))
]
"##;

/// nix/package.nix through the stand-in callPackage, with buildRustPackage returning its arguments.
const PACKAGE: &str = r##"
let
  cargo = lib.importTOML (rootPath + "/Cargo.toml");
  shim = pkgs.callPackage (rootPath + "/nix/package.nix") { };
  keeps = name: type: shim.src.filter (root + "/" + name) type;
in
builtins.all (x: x) [
  (expect "nix/package.nix: pname must be nix-ld-shim (nixpkgs has nix-ld and nix-ld-rs) and the version Cargo.toml's"
    (shim.pname == "nix-ld-shim" && shim.version == cargo.package.version))
  (expect "nix/package.nix: cargoBuildFlags must build the shim and nix-ld-doctor: [ \"-p\" \"nix-ld\" \"-p\" \"nix-ld-doctor\" ]"
    (shim.cargoBuildFlags == [ "-p" "nix-ld" "-p" "nix-ld-doctor" ]))
  (expect "nix/package.nix: cargoLock.lockFile must be the workspace's Cargo.lock"
    (shim.cargoLock.lockFile == rootPath + "/Cargo.lock"))
  (expect "nix/package.nix: must build on stable Rust (no RUSTC_BOOTSTRAP)"
    (!(shim ? RUSTC_BOOTSTRAP) && !(shim.env or { } ? RUSTC_BOOTSTRAP)))
  (expect "nix/package.nix: the source must leave out target/, nix/ and the flake files, and keep the cargo workspace"
    (!keeps "target" "directory" && !keeps "nix" "directory" && !keeps "flake.nix" "regular"
      && keeps "src" "directory" && keeps "Cargo.lock" "regular" && keeps "xtask" "directory" && keeps "doctor" "directory"
      && keeps "src/nix" "directory"))
  (expect "nix/package.nix: the compiled-in defaults must be absolute paths"
    (builtins.match "/[^:]+" shim.DEFAULT_NIX_LD != null
      && builtins.match "/[^:]+(:/[^:]+)*" shim.DEFAULT_NIX_LD_LIBRARY_PATH != null))
  (expect "nix/package.nix: the check phase must run the project's sandbox test mode (xtask test --nix-sandbox)"
    (contains "--package xtask -- test --nix-sandbox" shim.checkPhase))
  (expect "nix/package.nix: the install check must verify the installed libexec/nix-ld (xtask verify)"
    (shim.doInstallCheck or false
      && contains "--package xtask -- verify $out/libexec/nix-ld" shim.installCheckPhase))
  (expect "nix/package.nix: the installed shim must be finished (xtask finish) and kept from strip, which would drop its code"
    (contains "--package xtask -- finish $out/libexec/nix-ld" shim.postInstall
      && builtins.elem "libexec/nix-ld" (shim.stripExclude or [ ])))
  (expect "nix/package.nix: must install gdb's helper at share/nix-ld/gdb/nix-ld.py"
    (contains "gdb/nix-ld.py $out/share/nix-ld/gdb/nix-ld.py" shim.postInstall))
  (expect "nix/package.nix: nativeCheckInputs must not carry unused inputs (the tests need only the stdenv)"
    ((shim.nativeCheckInputs or [ ]) == [ ]))
  (expect "nix/package.nix: nix-support/ldpath must be derived from the host platform (/lib64/ld-linux-x86-64.so.2 here)"
    (shim.passthru.ldPath == "/lib64/ld-linux-x86-64.so.2"
      && !(contains "\"/lib64/ld-linux-x86-64.so.2\"" (builtins.readFile (rootPath + "/nix/package.nix")))))
  (expect "nix/package.nix: must install libexec/nix-ld, nix-support/ldpath and the tmpfiles rule for /lib64/ld-linux-x86-64.so.2"
    (contains "$out/libexec/nix-ld" shim.postInstall
      && contains "$out/nix-support/ldpath" shim.postInstall
      && contains "L+ /lib64/ld-linux-x86-64.so.2 - - - - $out/libexec/nix-ld" shim.postInstall))
  (expect "nix/package.nix: meta.mainProgram (what `nix run` and lib.getExe start) must be nix-ld-doctor, a program the package builds"
    (shim.meta.mainProgram == "nix-ld-doctor"
      && builtins.elem shim.meta.mainProgram shim.cargoBuildFlags
      && builtins.elem { name = "nix-ld-doctor"; path = "src/main.rs"; } (lib.importTOML (rootPath + "/doctor/Cargo.toml")).bin))
  (expect "nix/package.nix: must install the shim as bin/nix-ld too (a link to libexec/nix-ld)"
    (contains "ln -s ../libexec/nix-ld $out/bin/nix-ld" shim.postInstall))
  (expect "nix/package.nix: meta must name license MIT and the four platforms NixOS runs on"
    (shim.meta.license == lib.licenses.mit
      && shim.meta.platforms == [ "x86_64-linux" "aarch64-linux" "riscv64-linux" "i686-linux" ]))
]
"##;

/// nix/module.nix's options, with the module disabled.
const OPTIONS: &str = r##"
let
  module = import (rootPath + "/nix/module.nix") {
    inherit lib pkgs;
    config.programs.nix-ld-shim.enable = false;
    options = { };
  };
  options = module.options.programs.nix-ld-shim or { };
  names = builtins.attrNames options;
  directory = options.libraryDirectories.type.elemType.check;
  renames = builtins.filter (m: m._type or null == "renamedOptionModule") (module.imports or [ ]);
  # programs.nix-ld's own option names, the ones programs.nix-ld-rs had.
  nixpkgsNames = [ "enable" "libraries" "libraryDirectories" "package" ];
in
builtins.all (x: x) [
  (expect "nix/module.nix: programs.nix-ld-shim must declare exactly enable, libraries, libraryDirectories and package, their 32-bit counterparts and the emulated x86_64 shim's (it declares ${builtins.concatStringsSep ", " names})"
    (names == [ "enable" "libraries" "libraries32" "librariesX86_64" "libraryDirectories" "libraryDirectories32" "package" "package32" "packageX86_64" ]
      && builtins.all (name: options.${name}._type or null == "option") names))
  (expect "nix/module.nix: must declare nothing under programs.nix-ld-rs, nixpkgs' old name"
    (!(module.options.programs ? nix-ld-rs)))
  (expect "nix/module.nix: each programs.nix-ld-rs option must be renamed to its programs.nix-ld-shim one"
    (builtins.sort builtins.lessThan (map (m: builtins.concatStringsSep "." m.from) renames)
      == map (n: "programs.nix-ld-rs.${n}") nixpkgsNames
      && builtins.all (m: builtins.elemAt m.from 1 == "nix-ld-rs" && m.to == [ "programs" "nix-ld-shim" (builtins.elemAt m.from 2) ]) renames))
  (expect "nix/module.nix: libraries must default to [ ] (the common set is defined in config, so that a user's list adds to it)"
    (options.libraries.default == [ ]))
  (expect "nix/module.nix: libraryDirectories must default to [ ]"
    (options.libraryDirectories.default == [ ]))
  (expect "nix/module.nix: libraryDirectories must accept absolute directories and store paths"
    (builtins.all directory [ "/run/opengl-driver/lib" "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-mesa-24.0.1+git=x/lib" "/opt/a_b.c-d" ]))
  (expect "nix/module.nix: libraryDirectories must refuse relative, empty and ':'-joined paths, and what a shell or pam_env would read as more than a path"
    (builtins.all (d: !directory d) [
      "lib" "" "/a:/b" "/x\"y" "/$(reboot)" "/`id`" "/a\nb" "/a b" "/a\\b" "/@{HOME}" "/\${HOME}" "/a;b"
    ]))
  (expect "nix/module.nix: package must default to nix/package.nix"
    (options.package.default == pkgs.callPackage (rootPath + "/nix/package.nix") { }))
  (expect "nix/module.nix: on x86_64, package32 must default to nix/package.nix built by pkgsi686Linux; libraries32 and libraryDirectories32 to [ ]"
    (options.package32.default == pkgs.pkgsi686Linux.callPackage (rootPath + "/nix/package.nix") { }
      && options.libraries32.default == [ ] && options.libraryDirectories32.default == [ ]
      && options.libraryDirectories32.type.elemType.check "/opt/lib32"
      && !options.libraryDirectories32.type.elemType.check "/a b"))
  (expect "nix/module.nix: config must be guarded by programs.nix-ld-shim.enable"
    (module.config._type or null == "if" && module.config.condition == false))
]
"##;

/// nix/module.nix's config when enabled, against the package its `package` option defaults to.
const CONFIG: &str = r##"
let
  evalWith = extraConfig:
    let
      module = import (rootPath + "/nix/module.nix") {
        inherit lib pkgs;
        options = { };
        config = extraConfig // {
          programs = (extraConfig.programs or { }) // {
            nix-ld-shim = {
              enable = true;
              package = module.options.programs.nix-ld-shim.package.default;
              package32 = module.options.programs.nix-ld-shim.package32.default;
              libraries = [ (fakeDerivation "libfoo" { }) ];
              libraryDirectories = [ "/run/opengl-driver/lib" ];
              libraries32 = [ (fakeDerivation "libfoo32" { }) ];
              libraryDirectories32 = [ "/opt/lib32" ];
            } // ((extraConfig.programs or { }).nix-ld-shim or { });
          };
          # What the module system makes of the module's own definition, unless one is given.
          environment = { ldso32 = "${shim32}/libexec/nix-ld"; } // (extraConfig.environment or { });
        };
      };
    in
    module.config.content;
  config = evalWith { };
  environment = config.environment;
  shim = pkgs.callPackage (rootPath + "/nix/package.nix") { };
  shim32 = pkgs.pkgsi686Linux.callPackage (rootPath + "/nix/package.nix") { };
  named = name: builtins.head (builtins.filter (p: p.name or null == name) environment.systemPackages);
  libraryEnv = named "nix-ld-libraries";
  libraryEnv32 = named "nix-ld32-libraries";
  profileDir = "/run/current-system/sw" + libraryEnv.extraPrefix + "/lib";
  holds = config: builtins.all (a: a.assertion) config.assertions;
in
builtins.all (x: x) [
  (expect "nix/module.nix: environment.ldso must be the package's libexec/nix-ld"
    (environment.ldso == "${shim}/libexec/nix-ld"))
  (expect "nix/module.nix: NIX_LD must be the loader compiled into the package (${shim.DEFAULT_NIX_LD})"
    (environment.sessionVariables.NIX_LD == shim.DEFAULT_NIX_LD))
  (expect "nix/module.nix: NIX_LD_LIBRARY_PATH must be the package's compiled-in path, then libraryDirectories"
    (environment.sessionVariables.NIX_LD_LIBRARY_PATH
      == shim.DEFAULT_NIX_LD_LIBRARY_PATH + ":/run/opengl-driver/lib"))
  (expect "nix/module.nix: the library environment must put the libraries and ld.so where the package looks"
    (profileDir == shim.DEFAULT_NIX_LD_LIBRARY_PATH
      && profileDir + "/ld.so" == shim.DEFAULT_NIX_LD
      && libraryEnv.pathsToLink == [ "/lib" ]
      && builtins.elem libraryEnv.extraPrefix environment.pathsToLink
      && contains "$out${libraryEnv.extraPrefix}/lib/ld.so" libraryEnv.postBuild
      && libraryEnv.paths == [ (fakeDerivation "libfoo" { }) ]))
  (expect "nix/module.nix: the package must be in environment.systemPackages, so that nix-ld-doctor and nix-ld are on PATH"
    (builtins.elem shim environment.systemPackages))
  (expect "nix/module.nix: gdb's helper must be installed where nixpkgs' gdb reads its system init scripts"
    (environment.etc."gdb/gdbinit.d/nix-ld-shim.py".source == "${shim}/share/nix-ld/gdb/nix-ld.py"))
  (expect "nix/module.nix: the common libraries must be defined in config, so that a user's list adds to them"
    (builtins.length config.programs.nix-ld-shim.libraries > 0))
  (expect "nix/module.nix: the assertion must hold on its own and fail together with programs.nix-ld.enable"
    (holds config && !holds (evalWith { programs.nix-ld.enable = true; })))
  (expect "nix/module.nix: on x86_64 the 32-bit shim must be environment.ldso32, below any definition of the user's"
    (environment.ldso32.condition
      && environment.ldso32.content.content == "${shim32}/libexec/nix-ld"
      && environment.ldso32.content.priority > 1000))
  (expect "nix/package.nix: the 32-bit shim must be installed at /lib/ld-linux.so.2 with defaults of its own"
    (shim32.passthru.ldPath == "/lib/ld-linux.so.2"
      && shim.passthru.ldPath == "/lib64/ld-linux-x86-64.so.2"
      && shim32.DEFAULT_NIX_LD != shim.DEFAULT_NIX_LD
      && builtins.elem "i686-linux" shim.meta.platforms && builtins.elem "aarch64-linux" shim.meta.platforms
      && builtins.elem "riscv64-linux" shim.meta.platforms))
  (expect "nix/module.nix: NIX_LD_i686_linux and NIX_LD_LIBRARY_PATH_i686_linux must be the 32-bit shim's compiled-in paths, then libraryDirectories32"
    (environment.sessionVariables.NIX_LD_i686_linux == shim32.DEFAULT_NIX_LD
      && environment.sessionVariables.NIX_LD_LIBRARY_PATH_i686_linux == shim32.DEFAULT_NIX_LD_LIBRARY_PATH + ":/opt/lib32"))
  (expect "nix/module.nix: the 32-bit library environment must put the 32-bit libraries and ld.so where the 32-bit shim looks"
    ("/run/current-system/sw" + libraryEnv32.extraPrefix + "/lib" == shim32.DEFAULT_NIX_LD_LIBRARY_PATH
      && contains "ld-linux.so.2" libraryEnv32.postBuild
      && libraryEnv32.paths == [ (fakeDerivation "libfoo32" { }) ]))
  (expect "nix/module.nix: an environment.ldso32 set elsewhere must fail an assertion, and package32 = null must leave it alone"
    (!holds (evalWith { environment.ldso32 = "/elsewhere/ld.so"; })
      && holds (evalWith { environment.ldso32 = "/elsewhere/ld.so"; programs.nix-ld-shim.package32 = null; })))
]
"##;

/// The evaluations that need nixpkgs' real lib (see [`run_with`]).
const MODULE_SYSTEM_EVALUATIONS: [Evaluation; 2] = [
    Evaluation {
        name: "nix/module.nix through lib.evalModules for an x86_64 and an aarch64 system",
        body: MODULE_SYSTEM,
    },
    Evaluation {
        name: "flake.nix's outputs for its four systems, and its module through lib.evalModules",
        body: FLAKE_SYSTEMS,
    },
];

/// The NixOS options nix/module.nix sets or reads, declared with nixpkgs' types, and an
/// evaluation of the module with them through `lib.evalModules`.
macro_rules! nixos_stubs {
    () => {
        r##"
  nixosStubs = { lib, ... }: {
    options = with lib; {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      environment.ldso = mkOption { type = types.nullOr types.path; default = null; };
      environment.ldso32 = mkOption { type = types.nullOr types.path; default = null; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      environment.pathsToLink = mkOption { type = types.listOf types.str; default = [ ]; };
      environment.sessionVariables = mkOption { type = types.attrsOf (types.either types.str (types.listOf types.str)); default = { }; };
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule { options.source = mkOption { type = types.path; }; });
        default = { };
      };
      programs.nix-ld.enable = mkOption { type = types.bool; default = false; };
      hardware.graphics.enable32Bit = mkOption { type = types.bool; default = false; };
      systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
      boot.binfmt.emulatedSystems = mkOption { type = types.listOf types.str; default = [ ]; };
      virtualisation.rosetta.enable = mkOption { type = types.bool; default = false; };
    };
  };
  evalFor = pkgs: modules:
    (lib.evalModules {
      modules = [ nixosStubs (rootPath + "/nix/module.nix") ] ++ modules;
      specialArgs = { inherit pkgs; };
    }).config;
  # The messages of the assertions that fail.
  failing = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  enabled = { programs.nix-ld-shim.enable = true; };
"##
    };
}

const MODULE_SYSTEM: &str = concat!(
    "let
",
    r##"
  x86 = evalFor pkgs [ enabled ];
  aarch = evalFor pkgsAarch64 [ enabled ];
  shim = pkgs.callPackage (rootPath + "/nix/package.nix") { };
  shim32 = pkgs.pkgsi686Linux.callPackage (rootPath + "/nix/package.nix") { };
  shimA = pkgsAarch64.callPackage (rootPath + "/nix/package.nix") { };
  vars = config: config.environment.sessionVariables;
  userLdso32 = evalFor pkgs [ enabled { environment.ldso32 = "/opt/ld32/ld-linux.so.2"; } ];
  kept = evalFor pkgs [ enabled { environment.ldso32 = "/opt/ld32/ld-linux.so.2"; programs.nix-ld-shim.package32 = null; } ];
  graphics = evalFor pkgs [ enabled { hardware.graphics.enable32Bit = true; programs.nix-ld-shim.libraryDirectories32 = [ "/opt/lib32" ]; programs.nix-ld-shim.libraries32 = [ (fakeDerivation "libfoo32" { }) ]; } ];
  renamed = evalFor pkgs [ { programs.nix-ld-rs.enable = true; } ];
  shimX = pkgsAarch64.pkgsCross.gnu64.callPackage (rootPath + "/nix/package.nix") { shareDir = "nix-ld-x86_64"; };
  emulating = evalFor pkgsAarch64 [ enabled { boot.binfmt.emulatedSystems = [ "x86_64-linux" ]; } ];
  rosetta = evalFor pkgsAarch64 [ enabled { virtualisation.rosetta.enable = true; } ];
  notX86 = evalFor pkgsAarch64 [ enabled { boot.binfmt.emulatedSystems = [ "x86_64-linux" ]; programs.nix-ld-shim.packageX86_64 = null; } ];
  x86Link = "L+ /lib64/ld-linux-x86-64.so.2 - - - - ${shimX}/libexec/nix-ld";
  both = evalFor pkgs [ enabled { programs.nix-ld.enable = true; } ];
"##,
    nixos_stubs!(),
    r##"
in
builtins.all (x: x) [
  (expect "x86_64: environment.ldso must be the shim, environment.ldso32 the 32-bit shim"
    (x86.environment.ldso == "${shim}/libexec/nix-ld" && x86.environment.ldso32 == "${shim32}/libexec/nix-ld"))
  (expect "x86_64: NIX_LD* must be the 64-bit shim's defaults, NIX_LD*_i686_linux the 32-bit shim's"
    ((vars x86).NIX_LD == shim.DEFAULT_NIX_LD
      && (vars x86).NIX_LD_i686_linux == shim32.DEFAULT_NIX_LD
      && (vars x86).NIX_LD_LIBRARY_PATH_i686_linux == shim32.DEFAULT_NIX_LD_LIBRARY_PATH
      && shim32.DEFAULT_NIX_LD != shim.DEFAULT_NIX_LD))
  (expect "x86_64: both library sets and the package (nix-ld-doctor and nix-ld on PATH) must be installed, and every assertion hold"
    (builtins.length x86.environment.systemPackages == 3 && builtins.elem shim x86.environment.systemPackages
      && failing x86 == [ ]))
  (expect "x86_64: an environment.ldso32 set elsewhere must be kept and fail the assertion that names it"
    (userLdso32.environment.ldso32 == "/opt/ld32/ld-linux.so.2"
      && builtins.any (m: contains "environment.ldso32" m) (failing userLdso32)))
  (expect "x86_64: package32 = null must leave environment.ldso32 and the i686 variables alone"
    (kept.environment.ldso32 == "/opt/ld32/ld-linux.so.2" && failing kept == [ ]
      && !((vars kept) ? NIX_LD_i686_linux) && builtins.length kept.environment.systemPackages == 2))
  (expect "x86_64: hardware.graphics.enable32Bit must add /run/opengl-driver-32/lib, after the library set, beside libraryDirectories32; libraries32 must add to the defaults"
    (let path = lib.splitString ":" (vars graphics).NIX_LD_LIBRARY_PATH_i686_linux; in
      builtins.head path == shim32.DEFAULT_NIX_LD_LIBRARY_PATH
      && builtins.elem "/run/opengl-driver-32/lib" path && builtins.elem "/opt/lib32" path
      && builtins.length path == 3
      && builtins.elem (fakeDerivation "libfoo32" { }) graphics.programs.nix-ld-shim.libraries32
      && builtins.length graphics.programs.nix-ld-shim.libraries32 > 1))
  (expect "programs.nix-ld-rs must still enable the module, with a warning; programs.nix-ld beside it must fail an assertion"
    (renamed.environment.ldso == "${shim}/libexec/nix-ld" && renamed.warnings != [ ] && failing both != [ ]))
  (expect "aarch64: environment.ldso must be the aarch64 shim, with nothing 32-bit"
    (aarch.environment.ldso == "${shimA}/libexec/nix-ld" && aarch.environment.ldso32 == null
      && !((vars aarch) ? NIX_LD_i686_linux) && (vars aarch).NIX_LD == shimA.DEFAULT_NIX_LD
      && builtins.length aarch.environment.systemPackages == 2 && builtins.elem shimA aarch.environment.systemPackages
      && failing aarch == [ ]
      && shimA.passthru.ldPath == "/lib/ld-linux-aarch64.so.1" && aarch.systemd.tmpfiles.rules == [ ]))
  (expect "aarch64 emulating x86_64 (binfmt or Rosetta): the x86_64 shim must be linked at /lib64/ld-linux-x86-64.so.2 and named by NIX_LD_x86_64_linux, with its own x86_64 loader and libraries"
    (builtins.all (c: builtins.elem x86Link c.systemd.tmpfiles.rules
        && (vars c).NIX_LD_x86_64_linux == shimX.DEFAULT_NIX_LD
        && (vars c).NIX_LD_LIBRARY_PATH_x86_64_linux == shimX.DEFAULT_NIX_LD_LIBRARY_PATH
        && (vars c).NIX_LD == shimA.DEFAULT_NIX_LD
        && c.environment.ldso == "${shimA}/libexec/nix-ld"
        && builtins.length c.environment.systemPackages == 3 && failing c == [ ]) [ emulating rosetta ]
      && shimX.DEFAULT_NIX_LD == "/run/current-system/sw/share/nix-ld-x86_64/lib/ld.so"
      && shimX.passthru.ldPath == "/lib64/ld-linux-x86-64.so.2"
      && contains "ld-linux-x86-64.so.2" (builtins.elemAt emulating.environment.systemPackages 2).postBuild))
  (expect "aarch64 emulating x86_64 with packageX86_64 = null: nothing x86_64 is installed"
    (notX86.systemd.tmpfiles.rules == [ ] && !((vars notX86) ? NIX_LD_x86_64_linux)
      && builtins.length notX86.environment.systemPackages == 2))
]
"##
);

const FLAKE_SYSTEMS: &str = concat!(
    "let
",
    r##"
  flake = import (rootPath + "/flake.nix");
  nixpkgs = {
    inherit lib;
    legacyPackages = {
      x86_64-linux = pkgs;
      aarch64-linux = pkgsAarch64;
      riscv64-linux = pkgsRiscv64;
      i686-linux = pkgs.pkgsi686Linux;
    };
  };
  outputs = flake.outputs { self = outputs // { outPath = root; }; inherit nixpkgs; };
  systems = [ "aarch64-linux" "i686-linux" "riscv64-linux" "x86_64-linux" ];
  ldPath = system: outputs.packages.${system}.default.passthru.ldPath;
  withFlake = pkgs: evalFor pkgs [ outputs.nixosModules.default enabled ];
"##,
    nixos_stubs!(),
    r##"
in
builtins.all (x: x) [
  (expect "flake.nix: packages, checks and devShells must serve exactly the four systems"
    (builtins.attrNames outputs.packages == systems && builtins.attrNames outputs.checks == systems
      && builtins.attrNames outputs.devShells == systems))
  (expect "flake.nix: each system's package must install at its own interpreter path"
    (ldPath "x86_64-linux" == "/lib64/ld-linux-x86-64.so.2" && ldPath "aarch64-linux" == "/lib/ld-linux-aarch64.so.1"
      && ldPath "riscv64-linux" == "/lib/ld-linux-riscv64-lp64d.so.1" && ldPath "i686-linux" == "/lib/ld-linux.so.2"))
  (expect "flake.nix: the VM test must be x86_64's check only"
    (outputs.checks.x86_64-linux ? vm-test && !(outputs.checks.aarch64-linux ? vm-test)))
  (expect "flake.nix: its module must install the flake's shims: the i686 one as environment.ldso32 on x86_64, none on aarch64"
    ((withFlake pkgs).environment.ldso == "${outputs.packages.x86_64-linux.default}/libexec/nix-ld"
      && (withFlake pkgs).environment.ldso32 == "${outputs.packages.i686-linux.default}/libexec/nix-ld"
      && (withFlake pkgsAarch64).environment.ldso == "${outputs.packages.aarch64-linux.default}/libexec/nix-ld"
      && (withFlake pkgsAarch64).environment.ldso32 == null))
]
"##
);

/// nix/vm-test.nix through the stand-in callPackage, with runNixOSTest returning the test.
const VM_TEST: &str = r##"
let
  test = pkgs.callPackage (rootPath + "/nix/vm-test.nix") { };
  machine = test.nodes.machine;
  script = test.testScript {
    nodes.machine.programs.nix-ld-shim.package = pkgs.callPackage (rootPath + "/nix/package.nix") { };
    nodes.machine.programs.nix-ld-shim.package32 = pkgs.pkgsi686Linux.callPackage (rootPath + "/nix/package.nix") { };
  };
in
builtins.all (x: x) [
  (expect "nix/vm-test.nix: the machine must import nix/module.nix and enable programs.nix-ld-shim"
    (builtins.elem (rootPath + "/nix/module.nix") machine.imports
      && machine.programs.nix-ld-shim.enable == true))
  (expect "nix/vm-test.nix: the test script must evaluate to Python that waits for the machine"
    (builtins.isString script && contains "machine.wait_for_unit(" script))
  (expect "nix/vm-test.nix: the machine must have gdb and ltrace, and the script must run them through the shim"
    (builtins.elem pkgs.gdb machine.environment.systemPackages
      && builtins.elem pkgs.ltrace machine.environment.systemPackages
      && contains "gdb -batch" script && contains "ltrace -e" script))
  (expect "nix/vm-test.nix: the test script must find nix-ld-doctor and nix-ld on PATH and run them"
    (contains "command -v {program}" script && contains "nix-ld-doctor {fixtures}/uses-extra" script
      && contains "nix-ld --list " script))
  (expect "nix/vm-test.nix: the machine must have 32-bit programs, and the script must run them through the 32-bit shim"
    (builtins.any (p: (p.name or "") == "nix-ld-vm-test-fixtures32") machine.environment.systemPackages
      && contains "/lib/ld-linux.so.2" script && contains "hello-zlib-32" script))
]
"##;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary directory, removed again by `Drop`.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("nix-check-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, relative: &str, text: &str) {
            let path = self.0.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn finds_nix_files_but_not_build_output_history_or_links() {
        let scratch = Scratch::new("find");
        for file in ["flake.nix", "nix/module.nix", "target/x.nix", ".git/y.nix", "tests/target/z.nix", "README.md"] {
            scratch.write(file, "{ }");
        }
        std::os::unix::fs::symlink(scratch.0.join("nix"), scratch.0.join("result")).unwrap();

        let found = nix_files(&scratch.0).unwrap();
        let found: Vec<_> = found.iter().map(|p| p.strip_prefix(&scratch.0).unwrap().to_str().unwrap()).collect();
        assert_eq!(found, ["flake.nix", "nix/module.nix"]);
    }

    #[test]
    fn a_missing_nix_instantiate_names_the_package_to_install() {
        let err = check_available("nix-instantiate-which-does-not-exist").unwrap_err();
        assert!(err.contains("is not on PATH") && err.contains("nix-bin"), "{err}");
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_file_and_nix_message() {
        if let Err(e) = check_available(NIX_INSTANTIATE) {
            eprintln!("SKIPPED a_syntax_error_is_reported_with_its_file_and_nix_message: {e}");
            return;
        }
        let scratch = Scratch::new("parse");
        scratch.write("good.nix", "{ a = 1; }");
        scratch.write("nix/broken.nix", "{ a = ; }");

        let err = run_with(&scratch.0, None).unwrap_err();
        assert!(err.contains("nix/broken.nix does not parse:\nerror: syntax error"), "{err}");
        assert!(!err.contains("good.nix"), "{err}");
    }
}
