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

  nix-ld-libraries = pkgs.buildEnv {
    name = "nix-ld-libraries";
    paths = map lib.getLib cfg.libraries;
    pathsToLink = [ "/lib" ];
    extraPrefix = "/share/nix-ld";
    ignoreCollisions = true;
    # The real loader, beside the libraries; mkdir in case the library list was forced empty.
    postBuild = ''
      mkdir -p $out/share/nix-ld/lib
      ln -s ${pkgs.stdenv.cc.bintools.dynamicLinker} $out/share/nix-ld/lib/ld.so
    '';
  };
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

    # The package's programs on PATH: nix-ld-doctor, which says why a program does not start, and
    # nix-ld, the shim's own file, which run as a command behaves as ld.so does (`nix-ld --list
    # PROGRAM` lists what a program loads through the shim, which NixOS' ldd cannot say). It can do
    # nothing that /lib64/ld-linux-x86-64.so.2, the same file, cannot.
    environment.systemPackages = [
      nix-ld-libraries
      cfg.package
    ];

    # nixpkgs' gdb reads every script in /etc/gdb/gdbinit.d at start: with this one it follows
    # ld.so's library events in programs it starts through the shim (gdb/nix-ld.py says how).
    environment.etc."gdb/gdbinit.d/nix-ld-shim.py".source = "${cfg.package}/share/nix-ld/gdb/nix-ld.py";
    environment.pathsToLink = [ "/share/nix-ld" ];

    # The same values the shim has compiled in, so that tools which read them see the truth.
    environment.sessionVariables = {
      NIX_LD = "${libDir}/ld.so";
      NIX_LD_LIBRARY_PATH = lib.concatStringsSep ":" ([ libDir ] ++ cfg.libraryDirectories);
    };
  };
}
