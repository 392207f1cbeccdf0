{
  description = "Loader shim at /lib64/ld-linux-x86-64.so.2 that lets NixOS run binaries built for other Linux distributions";

  # flake.lock is not kept in the repository: Nix writes it on first use (nix build, nix flake lock).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # The shim only has an x86_64 implementation.
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
    in
    {
      # nix-ld-shim, not nix-ld or nix-ld-rs: those are nixpkgs' package and its alias, and the
      # overlay would silently replace them.
      packages.${system} = {
        nix-ld-shim = pkgs.callPackage ./nix/package.nix { };
        default = self.packages.${system}.nix-ld-shim;
      };

      # `nix run` starts nix-ld-doctor (the package's mainProgram): `nix run . -- ./program`.
      # `nix run .#nix-ld -- --list ./program` runs the shim as a command, as ld.so would run.
      apps.${system} =
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
        };

      overlays.default = final: _prev: {
        nix-ld-shim = final.callPackage ./nix/package.nix { };
      };

      # The module, with the shim built by this flake unless programs.nix-ld-shim.package is set.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          programs.nix-ld-shim.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      checks.${system} = {
        package = self.packages.${system}.default;
        vm-test = pkgs.callPackage ./nix/vm-test.nix { nixosModule = self.nixosModules.default; };
      };

      devShells.${system}.default = pkgs.mkShell {
        packages = with pkgs; [
          rustc
          cargo
          gcc
          python3
          valgrind
          nix
        ];
      };
    };
}
