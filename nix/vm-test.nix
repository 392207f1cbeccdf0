# A NixOS VM with the module enabled, running unpatched binaries the way a user would.
#
#   nix build .#checks.x86_64-linux.vm-test                        (flake)
#   nix-build -E 'with import <nixpkgs> { }; callPackage ./nix/vm-test.nix { }'
{
  testers,
  runCommandCC,
  patchelf,
  zlib,
  glibc,
  gdb,
  ltrace,
  pkgsi686Linux,
  nixosModule ? ./module.nix,
}:

let
  interpreter = "/lib64/ld-linux-x86-64.so.2";

  # Programs as another distribution would ship them: the interpreter is /lib64/..., and no
  # RUNPATH says where their libraries are.
  fixtures = runCommandCC "nix-ld-vm-test-fixtures" {
    buildInputs = [ zlib ];
    nativeBuildInputs = [ patchelf ];
  } ''
    mkdir -p $out/bin $out/lib
    cd "$(mktemp -d)"

    unpatch() {
      patchelf --set-interpreter ${interpreter} --remove-rpath "$1"
      readelf -l "$1" | grep -qF '[Requesting program interpreter: ${interpreter}]'
      if readelf -d "$1" | grep -E 'R(UN)?PATH'; then
        echo "$1 still says where its libraries are" >&2
        exit 1
      fi
    }

    cat > hello-zlib.c <<'EOF'
    #include <stdio.h>
    #include <zlib.h>
    int main(void)
    {
        printf("hello from zlib %s\n", zlibVersion());
        return 0;
    }
    EOF
    cc -o $out/bin/hello-zlib hello-zlib.c -lz
    unpatch $out/bin/hello-zlib

    # Prints its environment, one variable a line. It needs libz so that ld.so must be given a
    # library path to start it, a path the program itself must not see.
    cat > print-env.c <<'EOF'
    #include <stdio.h>
    #include <zlib.h>
    extern char **environ;
    int main(void)
    {
        if (zlibVersion() == NULL)
            return 1;
        for (char **e = environ; *e != NULL; e++)
            puts(*e);
        return 0;
    }
    EOF
    cc -o $out/bin/print-env print-env.c -lz
    unpatch $out/bin/print-env

    cat > print-euid.c <<'EOF'
    #include <stdio.h>
    #include <unistd.h>
    int main(void)
    {
        printf("euid=%d\n", (int)geteuid());
        return 0;
    }
    EOF
    cc -o $out/bin/print-euid print-euid.c
    unpatch $out/bin/print-euid

    # A library found only through programs.nix-ld-shim.libraryDirectories.
    cat > extra.c <<'EOF'
    int nix_ld_extra(void) { return 42; }
    EOF
    cc -shared -fPIC -o $out/lib/libnixldextra.so extra.c
    cat > uses-extra.c <<'EOF'
    #include <stdio.h>
    int nix_ld_extra(void);
    int main(void)
    {
        printf("extra library says %d\n", nix_ld_extra());
        return 0;
    }
    EOF
    cc -o $out/bin/uses-extra uses-extra.c -L$out/lib -lnixldextra
    unpatch $out/bin/uses-extra

    # Loads the same library at run time, for debuggers to follow (as a plugin would be).
    cat > dlopen-extra.c <<'EOF'
    #include <dlfcn.h>
    #include <stdio.h>
    int main(void)
    {
        void *lib = dlopen("libnixldextra.so", RTLD_NOW);
        if (lib == NULL)
            return 1;
        int (*extra)(void) = (int (*)(void))dlsym(lib, "nix_ld_extra");
        printf("dlopened library says %d\n", extra());
        return 0;
    }
    EOF
    cc -o $out/bin/dlopen-extra dlopen-extra.c -ldl
    unpatch $out/bin/dlopen-extra

    # A stand-in for ld.so that only says it ran: a freestanding static-pie, which the shim can map
    # and enter like the real loader.
    cat > fake-ld.c <<'EOF'
    void _start(void)
    {
        static const char marker[] = "FAKE-LOADER-RAN\n";
        long ret;
        __asm__ volatile("syscall"
                         : "=a"(ret)
                         : "a"(1L), "D"(1L), "S"(marker), "d"(sizeof marker - 1)
                         : "rcx", "r11", "memory");
        __asm__ volatile("syscall" : : "a"(231L), "D"(0L) : "rcx", "r11", "memory");
        __builtin_unreachable();
    }
    EOF
    cc -O2 -fPIE -fno-stack-protector -nostdlib -static-pie -Wl,--no-dynamic-linker \
      -o $out/bin/fake-ld fake-ld.c
    readelf -h $out/bin/fake-ld | grep -q 'DYN'
    if readelf -l $out/bin/fake-ld | grep -q INTERP; then
      echo "fake-ld must not need an interpreter" >&2
      exit 1
    fi
  '';

  # 32-bit programs as another distribution would ship them: interpreter /lib/ld-linux.so.2, no
  # RUNPATH. They run through the 32-bit shim the module installs as environment.ldso32.
  interpreter32 = "/lib/ld-linux.so.2";
  fixtures32 = pkgsi686Linux.runCommandCC "nix-ld-vm-test-fixtures32" {
    buildInputs = [ pkgsi686Linux.zlib ];
    nativeBuildInputs = [ patchelf ];
  } ''
    mkdir -p $out/bin
    cd "$(mktemp -d)"
    cat > hello-zlib.c <<'EOF'
    #include <stdio.h>
    #include <zlib.h>
    int main(void)
    {
        printf("hello from zlib %s, %d-bit\n", zlibVersion(), (int)(8 * sizeof(void *)));
        return 0;
    }
    EOF
    cat > print-env.c <<'EOF'
    #include <stdio.h>
    #include <zlib.h>
    extern char **environ;
    int main(void)
    {
        if (zlibVersion() == NULL)
            return 1;
        for (char **e = environ; *e != NULL; e++)
            puts(*e);
        return 0;
    }
    EOF
    for p in hello-zlib print-env; do
      cc -o $out/bin/$p-32 $p.c -lz
      patchelf --set-interpreter ${interpreter32} --remove-rpath $out/bin/$p-32
      readelf -h $out/bin/$p-32 | grep -q 'ELF32'
    done
  '';
in
testers.runNixOSTest {
  name = "nix-ld-shim";

  nodes.machine = {
    imports = [ nixosModule ];
    programs.nix-ld-shim.enable = true;
    programs.nix-ld-shim.libraryDirectories = [ "${fixtures}/lib" ];
    users.users.alice.isNormalUser = true;
    environment.systemPackages = [
      fixtures
      fixtures32
      gdb
      ltrace
    ];
  };

  testScript =
    { nodes, ... }:
    ''
      shim = "${nodes.machine.programs.nix-ld-shim.package}/libexec/nix-ld"
      shim32 = "${nodes.machine.programs.nix-ld-shim.package32}/libexec/nix-ld"
      fixtures32 = "${fixtures32}/bin"
      default_libs32 = "/run/current-system/sw/share/nix-ld32/lib"
      fixtures = "${fixtures}/bin"
      ldd = "${glibc.bin}/bin/ldd"
      default_libs = "/run/current-system/sw/share/nix-ld/lib"
      default_ld = default_libs + "/ld.so"


      def lines_starting(prefix: str, text: str) -> list[str]:
          return [line for line in text.splitlines() if line.startswith(prefix)]


      machine.wait_for_unit("multi-user.target")

      with subtest("the shim is where other distributions keep ld.so"):
          machine.succeed("test -L ${interpreter}")
          target = machine.succeed("readlink -f ${interpreter}").strip()
          assert target == shim, f"${interpreter} resolves to {target}, not {shim}"
          machine.succeed(f"test -x {default_ld}", f"test -e {default_libs}/libz.so.1")

      with subtest("the fixture cannot find libz by itself"):
          # Started by the real ld.so with no search path, as on NixOS without the module.
          out = machine.fail(f"{default_ld} {fixtures}/hello-zlib 2>&1")
          assert "libz.so.1" in out, out

      with subtest("the compiled-in defaults work with the session variables unset"):
          out = machine.succeed(f"env -u NIX_LD -u NIX_LD_LIBRARY_PATH {fixtures}/hello-zlib")
          assert out.startswith("hello from zlib "), out

      with subtest("the session variables name the same places, then libraryDirectories"):
          assert machine.succeed("printenv NIX_LD").strip() == default_ld
          nix_path = machine.succeed("printenv NIX_LD_LIBRARY_PATH").strip()
          assert nix_path == default_libs + ":${fixtures}/lib", nix_path

      with subtest("libraryDirectories are searched"):
          out = machine.fail(f"env -u NIX_LD_LIBRARY_PATH {fixtures}/uses-extra 2>&1")
          assert "libnixldextra.so" in out, out
          out = machine.succeed(f"{fixtures}/uses-extra")
          assert out == "extra library says 42\n", repr(out)

      with subtest("a missing loader is reported with status 127"):
          status, out = machine.execute(f"NIX_LD=/nonexistent/ld.so {fixtures}/hello-zlib 2>&1")
          assert status == 127, f"status {status}, output {out!r}"
          assert lines_starting("nix-ld: cannot run", out), out

      with subtest("nix-ld-doctor and nix-ld are on PATH, from the module's package"):
          package_bin = "${nodes.machine.programs.nix-ld-shim.package}/bin"
          for program in ["nix-ld-doctor", "nix-ld"]:
              found = machine.succeed(f"readlink -f $(command -v {program})").strip()
              assert found == machine.succeed(f"readlink -f {package_bin}/{program}").strip(), found
          # The library only libraryDirectories has: found with the session's variables, named
          # as missing without them (status 1: problems found).
          machine.succeed(f"nix-ld-doctor {fixtures}/uses-extra")
          status, out = machine.execute(f"env -u NIX_LD_LIBRARY_PATH nix-ld-doctor {fixtures}/uses-extra")
          assert status == 1 and "libnixldextra.so" in out, f"status {status}, output {out!r}"
          out = machine.succeed(f"nix-ld --list {fixtures}/hello-zlib")
          assert "libz.so.1 => " in out and "not found" not in out, out

      with subtest("the program is traced through the shim"):
          out = machine.succeed(f"LD_TRACE_LOADED_OBJECTS=1 {fixtures}/hello-zlib")
          assert "libz.so.1 => " in out and "not found" not in out, out

      with subtest("ldd, as a distribution whose ldd runs /lib64/ld-linux-x86-64.so.2, finds libz"):
          # NixOS' own ldd runs the ld.so from its store path, never the shim, and so reports
          # libz.so.1 as not found; an FHS distribution's ldd goes through ${interpreter}.
          machine.succeed(
              f"sed 's|^RTLDLIST=.*|RTLDLIST=${interpreter}|' {ldd} > /tmp/fhs-ldd",
              "grep -qx 'RTLDLIST=${interpreter}' /tmp/fhs-ldd",
          )
          out = machine.succeed(f"bash /tmp/fhs-ldd {fixtures}/hello-zlib")
          libz = [line for line in out.splitlines() if "libz.so.1" in line]
          assert libz and "not found" not in libz[0], out

      with subtest("gdb follows a dlopen through the shim, with the helper the module installs"):
          machine.succeed("test -e /etc/gdb/gdbinit.d/nix-ld-shim.py")
          out = machine.succeed(
              "gdb -batch -ex 'set breakpoint pending on' -ex 'break nix_ld_extra' -ex run "
              f"{fixtures}/dlopen-extra 2>&1"
          )
          assert "in nix_ld_extra ()" in out, out

      with subtest("ltrace traces library calls through the shim"):
          out = machine.succeed(f"ltrace -e nix_ld_extra {fixtures}/uses-extra 2>&1")
          assert "nix_ld_extra()" in out and "= 42" in out, out

      with subtest("the program sees exactly the environment it was given"):
          out = machine.succeed(f"env -i FOO=bar {fixtures}/print-env")
          assert out == "FOO=bar\n", repr(out)

      with subtest("32-bit programs run through the 32-bit shim at ${interpreter32}"):
          target = machine.succeed("readlink -f ${interpreter32}").strip()
          assert target == shim32, f"${interpreter32} resolves to {target}, not {shim32}"
          machine.succeed(f"test -x {default_libs32}/ld.so", f"test -e {default_libs32}/libz.so.1")
          assert machine.succeed("printenv NIX_LD_i686_linux").strip() == default_libs32 + "/ld.so"
          # With the session variables (the plain ones are the 64-bit shim's: passed over).
          out = machine.succeed(f"{fixtures32}/hello-zlib-32")
          assert out.startswith("hello from zlib ") and out.endswith(", 32-bit\n"), out
          # With the compiled-in defaults alone.
          out = machine.succeed(f"env -i {fixtures32}/hello-zlib-32")
          assert out.endswith(", 32-bit\n"), out
          # The plain NIX_LD names the 64-bit loader: passed over, and said at info level.
          out = machine.succeed(
              f"env -u NIX_LD_i686_linux -u NIX_LD_LIBRARY_PATH_i686_linux NIX_LD_LOG=info {fixtures32}/hello-zlib-32 2>&1"
          )
          assert "names a loader for another platform" in out and out.endswith(", 32-bit\n"), out
          out = machine.succeed(f"env -i FOO=bar {fixtures32}/print-env-32")
          assert out == "FOO=bar\n", repr(out)

      with subtest("NIX_LD from an unprivileged caller is ignored for a setuid program"):
          machine.succeed(
              f"install -m 0755 {fixtures}/fake-ld /tmp/fake-ld",
              "install -d -m 0755 /opt/suid",
              f"install -m 4755 -o root -g root {fixtures}/print-euid /opt/suid/print-euid",
              f"install -m 0755 {fixtures}/print-euid /opt/suid/print-euid-plain",
          )
          assert machine.succeed("stat -c %a /opt/suid/print-euid").strip() == "4755"
          assert "nosuid" not in machine.succeed("findmnt -no OPTIONS --target /opt/suid")

          # Without privilege, NIX_LD is honoured: the fake loader's marker is a real signal.
          out = machine.succeed(
              "runuser -u alice -- env NIX_LD=/tmp/fake-ld /opt/suid/print-euid-plain"
          )
          assert "FAKE-LOADER-RAN" in out, out

          status, out = machine.execute(
              "runuser -u alice -- env NIX_LD=/tmp/fake-ld /opt/suid/print-euid 2>&1"
          )
          assert "FAKE-LOADER-RAN" not in out, f"the fake loader ran with euid 0: {out!r}"
          ran = status == 0 and out == "euid=0\n"
          refused = status == 127 and lines_starting("nix-ld: ", out)
          assert ran or refused, f"status {status}, output {out!r}"
    '';
}
