# Installs the shim as /lib64/ld-linux-x86-64.so.2 and gives it a real ld.so and a set of common
# libraries under /run/current-system/sw/share/nix-ld/lib, the paths compiled into the shim.
#
# The option names are those of nixpkgs' programs.nix-ld, under their own namespace
# (programs.nix-ld-shim), so that moving over is a rename and the two modules never define the
# same option. The namespace's earlier name, programs.nix-ld-rs (nixpkgs' old name for its own
# nix-ld), keeps working through mkRenamedOptionModule, with a warning.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.programs.nix-ld-shim;

  # The directory the shim falls back to (nix/package.nix), and the system profile holding it.
  libDir = "/run/current-system/sw/share/nix-ld/lib";

  # The library set and the real loader beside it, under share/NAME/lib.
  libraryEnv =
    name: libraries: loader:
    pkgs.buildEnv {
      name = "${name}-libraries";
      paths = map lib.getLib libraries;
      pathsToLink = [ "/lib" ];
      extraPrefix = "/share/${name}";
      ignoreCollisions = true;
      # mkdir in case the library list was forced empty.
      postBuild = ''
        mkdir -p $out/share/${name}/lib
        ln -s ${loader} $out/share/${name}/lib/ld.so
      '';
    };
  nix-ld-libraries = libraryEnv "nix-ld" cfg.libraries pkgs.stdenv.cc.bintools.dynamicLinker;

  # x86_64 NixOS also runs 32-bit programs, through the 32-bit shim at /lib/ld-linux.so.2
  # (environment.ldso32), with a 32-bit loader and library set of their own (nix/package.nix's
  # shareDir for i686).
  is64 = pkgs.stdenv.hostPlatform.system == "x86_64-linux";

  # An aarch64 host that runs x86_64 programs by emulation (binfmt with qemu-user, or Rosetta in a
  # VM on Apple hardware): those programs name /lib64/ld-linux-x86-64.so.2, which the emulator
  # opens on the host's file system. There is no environment.ldso for a second architecture, so
  # the x86_64 shim (cross-built) is linked there by a tmpfiles rule, with an x86_64 loader and
  # library set under share/nix-ld-x86_64, and named by NIX_LD_x86_64_linux, which that shim
  # reads before the plain NIX_LD (the host's loader).
  emulatesX86_64 =
    pkgs.stdenv.hostPlatform.system == "aarch64-linux"
    && (
      builtins.elem "x86_64-linux" (config.boot.binfmt.emulatedSystems or [ ])
      || (config.virtualisation.rosetta.enable or false)
    );
  withX86_64 = emulatesX86_64 && cfg.packageX86_64 != null;
  libDirX86_64 = "/run/current-system/sw/share/nix-ld-x86_64/lib";
  pkgsX86_64 = pkgs.pkgsCross.gnu64;
  nix-ld-librariesX86_64 =
    libraryEnv "nix-ld-x86_64" cfg.librariesX86_64
      pkgsX86_64.stdenv.cc.bintools.dynamicLinker;
  with32 = is64 && cfg.package32 != null;
  libDir32 = "/run/current-system/sw/share/nix-ld32/lib";
  nix-ld-libraries32 =
    libraryEnv "nix-ld32" cfg.libraries32
      pkgs.pkgsi686Linux.stdenv.cc.bintools.dynamicLinker;
  # What a library directory may contain: it is written into /etc/set-environment (inside double
  # quotes, read by every login shell) and into pam_env's configuration, where `"`, `$`, backquotes,
  # backslashes, newlines, spaces, `@{` and `${` all mean something. Store paths and the usual
  # driver directories only need these characters; ':' is the list separator (and an empty
  # component would mean the current directory).
  safeDirectory = "/[A-Za-z0-9._+=/-]*";

  renamed = name: lib.mkRenamedOptionModule [ "programs" "nix-ld-rs" name ] [ "programs" "nix-ld-shim" name ];
in
{
  imports = map renamed [
    "enable"
    "package"
    "libraries"
    "libraryDirectories"
  ];

  options.programs.nix-ld-shim = {
    enable = lib.mkEnableOption "the nix-ld loader shim at /lib64/ld-linux-x86-64.so.2, so that binaries built for other Linux distributions run";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The shim to install. It must provide `libexec/nix-ld`; its `bin` (`nix-ld-doctor`, `nix-ld`) goes on PATH.";
    };

    libraries = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.libGL pkgs.xorg.libX11 ]";
      description = ''
        Libraries made available to every program started through the shim, in addition to a
        default set of common ones (zlib, zstd, libstdc++, curl, openssl, systemd, ...). To drop
        the defaults, use `lib.mkForce`.
      '';
    };

    package32 = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = if is64 then pkgs.pkgsi686Linux.callPackage ./package.nix { } else null;
      defaultText = lib.literalExpression "on x86_64: pkgs.pkgsi686Linux.callPackage ./nix/package.nix { }";
      description = ''
        On x86_64, the 32-bit shim installed as `environment.ldso32` (/lib/ld-linux.so.2), so that
        32-bit programs built for other distributions run too; `null` installs none. Ignored on
        other platforms.
      '';
    };

    libraries32 = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.pkgsi686Linux.libGL ]";
      description = ''
        32-bit libraries for the 32-bit shim (from `pkgs.pkgsi686Linux`), in addition to a default
        set of common ones. To drop the defaults, use `lib.mkForce`.
      '';
    };

    libraryDirectories32 = lib.mkOption {
      type = lib.types.listOf (lib.types.strMatching safeDirectory);
      default = [ ];
      example = [ "/opt/vendor/lib32" ];
      description = ''
        Directories searched after the 32-bit library set, as `libraryDirectories` is for the
        64-bit one. `/run/opengl-driver-32/lib` is added when `hardware.graphics.enable32Bit` is set.
      '';
    };

    packageX86_64 = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = if emulatesX86_64 then pkgsX86_64.callPackage ./package.nix { shareDir = "nix-ld-x86_64"; } else null;
      defaultText = lib.literalExpression ''
        on aarch64 hosts that emulate x86_64 (boot.binfmt.emulatedSystems, virtualisation.rosetta):
        pkgs.pkgsCross.gnu64.callPackage ./nix/package.nix { shareDir = "nix-ld-x86_64"; }
      '';
      description = ''
        On an aarch64 host that runs x86_64 programs by emulation, the x86_64 shim linked at
        /lib64/ld-linux-x86-64.so.2; `null` installs none. Ignored elsewhere.
      '';
    };

    librariesX86_64 = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.pkgsCross.gnu64.libGL ]";
      description = ''
        x86_64 libraries for the emulated x86_64 shim (from `pkgs.pkgsCross.gnu64`), in addition to
        a default set of common ones.
      '';
    };

    libraryDirectories = lib.mkOption {
      type = lib.types.listOf (lib.types.strMatching safeDirectory);
      default = [ ];
      example = [ "/run/opengl-driver/lib" ];
      description = ''
        Directories searched after the library set, as they are (not copied into the store),
        for libraries that only exist at run time such as the graphics driver's. They reach the
        shim through NIX_LD_LIBRARY_PATH only: a program started with an emptied environment
        (`env -i`, a systemd unit) gets the library set alone, which is compiled into the shim.
        Each must be an absolute path of letters, digits and `. _ + = / -` only: the value is
        written into shell and pam_env configuration, where other characters have a meaning.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !(config.programs.nix-ld.enable or false);
        message = ''
          programs.nix-ld-shim and programs.nix-ld both install /lib64/ld-linux-x86-64.so.2; enable
          only one. To run this shim through nixpkgs' module instead, set programs.nix-ld.package.
        '';
      }
      {
        # Set below at a priority any definition of the user's wins over (mkOverride 1200): the
        # user's value is kept and this says why the 32-bit shim is not there, rather than a
        # conflict error that names neither module's purpose.
        assertion = !with32 || config.environment.ldso32 == "${cfg.package32}/libexec/nix-ld";
        message = ''
          programs.nix-ld-shim installs its 32-bit shim as environment.ldso32, which is already set
          elsewhere. Remove that setting (the 32-bit shim reads NIX_LD_i686_linux), or set
          programs.nix-ld-shim.package32 = null to keep your own.
        '';
      }
    ];

    # The libraries are added to whatever the user lists, since list definitions concatenate.
    programs.nix-ld-shim.libraries = with pkgs; [
      zlib
      zstd
      stdenv.cc.cc
      curl
      openssl
      attr
      libssh
      bzip2
      libxml2
      acl
      libsodium
      util-linux
      xz
      systemd
    ];

    environment.ldso = "${cfg.package}/libexec/nix-ld";
    environment.ldso32 = lib.mkIf with32 (lib.mkOverride 1200 "${cfg.package32}/libexec/nix-ld");

    # The package's programs on PATH: nix-ld-doctor, which says why a program does not start, and
    # nix-ld, the shim's own file, which run as a command behaves as ld.so does (`nix-ld --list
    # PROGRAM` lists what a program loads through the shim, which NixOS' ldd cannot say). It can do
    # nothing that the interpreter path, the same file, cannot.
    environment.systemPackages =
      [
        nix-ld-libraries
        cfg.package
      ]
      ++ lib.optional with32 nix-ld-libraries32
      ++ lib.optional withX86_64 nix-ld-librariesX86_64;

    systemd.tmpfiles.rules = lib.mkIf withX86_64 [
      "d /lib64 0755 root root - -"
      "L+ /lib64/ld-linux-x86-64.so.2 - - - - ${cfg.packageX86_64}/libexec/nix-ld"
    ];

    programs.nix-ld-shim.librariesX86_64 = lib.mkIf withX86_64 (
      with pkgsX86_64;
      [
        zlib
        zstd
        stdenv.cc.cc
        curl
        openssl
        bzip2
        libxml2
        xz
        systemd
      ]
    );

    programs.nix-ld-shim.libraries32 = lib.mkIf with32 (
      with pkgs.pkgsi686Linux;
      [
        zlib
        zstd
        stdenv.cc.cc
        curl
        openssl
        bzip2
        libxml2
        xz
        systemd
      ]
    );
    programs.nix-ld-shim.libraryDirectories32 = lib.mkIf (with32 && (config.hardware.graphics.enable32Bit or false)) [
      "/run/opengl-driver-32/lib"
    ];

    # nixpkgs' gdb reads every script in /etc/gdb/gdbinit.d at start: with this one it follows
    # ld.so's library events in programs it starts through the shim (gdb/nix-ld.py says how).
    environment.etc."gdb/gdbinit.d/nix-ld-shim.py".source = "${cfg.package}/share/nix-ld/gdb/nix-ld.py";
    environment.pathsToLink = [ "/share/nix-ld" ];

    # The same values the shim has compiled in, so that tools which read them see the truth.
    environment.sessionVariables = {
      NIX_LD = "${libDir}/ld.so";
      NIX_LD_LIBRARY_PATH = lib.concatStringsSep ":" ([ libDir ] ++ cfg.libraryDirectories);
    }
    # The 32-bit shim's own names: the plain ones above are the 64-bit shim's (a 32-bit shim passes
    # a 64-bit NIX_LD over for its compiled-in default anyway).
    // lib.optionalAttrs with32 {
      NIX_LD_i686_linux = "${libDir32}/ld.so";
      NIX_LD_LIBRARY_PATH_i686_linux = lib.concatStringsSep ":" ([ libDir32 ] ++ cfg.libraryDirectories32);
    }
    // lib.optionalAttrs withX86_64 {
      NIX_LD_x86_64_linux = "${libDirX86_64}/ld.so";
      NIX_LD_LIBRARY_PATH_x86_64_linux = libDirX86_64;
    };
  };
}
