{
  description = "Loader shim at /lib64/ld-linux-x86-64.so.2 that lets NixOS run binaries built for other Linux distributions";

  # flake.lock is not kept in the repository: Nix writes it on first use (nix build, nix flake lock).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # Every platform NixOS runs on; each builds its own shim natively (nix/package.nix).
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "riscv64-linux"
        "i686-linux"
      ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      # nix-ld-shim, not nix-ld or nix-ld-rs: those are nixpkgs' package and its alias, and the
      # overlay would silently replace them.
      packages = forAll (
        system: pkgs: {
          nix-ld-shim = pkgs.callPackage ./nix/package.nix { };
          default = self.packages.${system}.nix-ld-shim;
        }
      );

      # `nix run` starts nix-ld-doctor (the package's mainProgram): `nix run . -- ./program`.
      # `nix run .#nix-ld -- --list ./program` runs the shim as a command, as ld.so would run.
      apps = forAll (
        system: _pkgs:
        let
          shim = self.packages.${system}.default;
          app = name: description: {
            type = "app";
            program = "${shim}/bin/${name}";
            meta.description = description;
          };
        in
        {
          nix-ld-doctor = app "nix-ld-doctor" "Says why a program built for another distribution does not start, and what to add";
          nix-ld = app "nix-ld" "The shim run as a command: ld.so's --list, --verify, PROGRAM ARGS with the Nix libraries";
          default = self.apps.${system}.nix-ld-doctor;
        }
      );

      overlays.default = final: _prev: {
        nix-ld-shim = final.callPackage ./nix/package.nix { };
      };

      # The module, with the shims built by this flake unless programs.nix-ld-shim.package (or
      # package32) is set.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          programs.nix-ld-shim.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          programs.nix-ld-shim.package32 = lib.mkDefault (
            if pkgs.stdenv.hostPlatform.system == "x86_64-linux" then self.packages.i686-linux.default else null
          );
        };

      checks = forAll (
        system: pkgs:
        {
          package = self.packages.${system}.default;
        }
        # The VM test runs x86_64 NixOS (with its 32-bit programs).
        // nixpkgs.lib.optionalAttrs (system == "x86_64-linux") {
          vm-test = pkgs.callPackage ./nix/vm-test.nix { nixosModule = self.nixosModules.default; };
        }
      );

      devShells = forAll (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = with pkgs; [
              rustc
              cargo
              gcc
              python3
              valgrind
              nix
              # What the execve tests and the bench run (README, "Development").
              gdb
              ltrace
              strace
              patchelf
            ];
          };
        }
      );
    };
}
