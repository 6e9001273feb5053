"""Why the Qt "xcb" platform plugin cannot load on a Linux desktop, and the command that fixes it.

Qt 6's xcb plugin links system libraries (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, …)
that many desktops lack. Qt then aborts with "could not load the Qt platform plugin xcb" and
no hint, so `msm4sr-studio` asks the dynamic linker first (ldd on the plugin PySide6 ships)
and prints the exact `apt install` line for what is missing.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def uses_xcb(env=os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will pick the xcb plugin: Linux, an X display, no other platform asked for."""
    if not platform.startswith("linux"):
        return False
    asked = env.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(":")[0].split(";")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def plugin_files() -> list[Path]:
    """PySide6's xcb platform plugin and the Qt library it loads."""
    import PySide6
    qt = Path(PySide6.__file__).parent / "Qt"
    return [p for p in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*")))
            if p.is_file()]


def missing_libraries(files: list[Path] | None = None) -> list[str]:
    """Shared libraries (sonames) the xcb plugin needs and the linker cannot find, sorted."""
    missing = set()
    for f in plugin_files() if files is None else files:
        try:
            out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue                       # no ldd: nothing to say, Qt reports it itself
        missing |= set(re.findall(r"^\s*(\S+) => not found", out, re.M))
    return sorted(missing)


def package_for(soname: str) -> str:
    """Debian/Ubuntu's package for a library: libxcb-icccm.so.4 -> libxcb-icccm4,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0 (a '-' when the name ends in a digit)."""
    m = re.match(r"^(lib[\w+.-]+?)\.so\.(\d+)", soname)
    if not m:
        return soname
    name, major = m.groups()
    return f"{name}{'-' if name[-1].isdigit() else ''}{major}"


def install_command(sonames: list[str]) -> str:
    return "sudo apt install " + " ".join(dict.fromkeys(package_for(s) for s in sonames))


def message(sonames: list[str]) -> str:
    return ("MSM4SR Studio cannot open a window: Qt's xcb platform plugin needs system libraries "
            f"that are missing ({', '.join(sonames)}). On Debian or Ubuntu install them with:\n\n"
            f"    {install_command(sonames)}\n\nthen start the app again (on other distributions, "
            "install the packages that provide those files).")


def check(env=os.environ, out=sys.stderr) -> bool:
    """At start-up, before QApplication: False (after printing the fix) when the xcb plugin
    would fail for missing libraries."""
    if not uses_xcb(env):
        return True
    missing = missing_libraries()
    if missing:
        print(message(missing), file=out, flush=True)
        return False
    return True
