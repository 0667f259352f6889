"""Start the bundled torchsanity language server under whichever interpreter runs this file.

The extension runs ``<python> -I launch.py server``. This file is copied to ``bundled/launch.py``; next to it:

    tool/            the torchsanity sources (torchsanity.analyzers / .server / .probes) and their dist-info
    libs/common/     pure-Python dependencies (pygls, lsprotocol, cattrs, attrs, rich, ...)
    libs/cp3XY/      the native ones (libcst) built for CPython 3.XY

so a user needs no pip step. ``tool/`` (and nothing else) is what the probe child gets on its path: it holds the
``probes`` package, which needs only torch and numpy from the user's environment.
"""

import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIBS = os.path.join(HERE, "libs")
TOOL = os.path.join(HERE, "tool")


def fail(message: str, code: int = 3) -> None:
    sys.stderr.write("torchsanity: " + message + "\n")
    sys.stderr.flush()
    sys.exit(code)


def select_libs(folders, target, sys_platform, machine, version):
    """The folder of libs/ holding the native wheels for this interpreter: ``(name, None)``, or ``(None, why not)``.

    ``folders`` are the names in libs/ (``cp310`` ... ``cp313``, ``common``), ``target`` is platform.json (the
    platform the package was built for), ``sys_platform``/``machine``/``version`` describe the running interpreter.
    """
    tag = "cp%d%d" % tuple(version[:2])
    available = sorted((d for d in folders if d.startswith("cp")), key=lambda d: int(d[3:]))
    if not sys_platform.startswith(target["sys_platform"]) or machine.lower() not in target["machines"]:
        return None, (
            "this build of the extension bundles the server's native dependencies for %s (%s), not for %s-%s; "
            "install the package for your platform, or turn off torchsanity.useBundledServer and "
            "`pip install torchsanity` into the interpreter."
            % (target.get("target") or target["tag"], target["tag"], sys_platform, machine.lower())
        )
    if tag not in available:
        versions = ", ".join("%s.%s" % (d[2], d[3:]) for d in available) or "none"
        return None, (
            "Python %d.%d is not supported by this build of the extension; it bundles the language server for "
            "Python %s. Choose another interpreter (setting torchsanity.interpreter, or the Python extension's "
            "interpreter)." % (version[0], version[1], versions)
        )
    return tag, None


def main() -> None:
    target = {"tag": "manylinux2014_x86_64", "sys_platform": "linux", "machines": ["x86_64", "amd64"]}
    try:
        with open(os.path.join(HERE, "platform.json"), encoding="utf-8") as f:
            target = json.load(f)
    except (OSError, ValueError):
        pass
    folders = os.listdir(LIBS) if os.path.isdir(LIBS) else []
    tag, problem = select_libs(folders, target, sys.platform, platform.machine(), sys.version_info)
    if problem:
        fail(problem + " (interpreter: %s)" % sys.executable)
    sys.path[:0] = [TOOL, os.path.join(LIBS, tag), os.path.join(LIBS, "common")]
    # The server puts this (only) on the probe child's PYTHONPATH, so the user's interpreter finds `probes`.
    os.environ["TORCHSANITY_BUNDLED_PATH"] = TOOL
    sys.argv = ["torchsanity"] + sys.argv[1:]
    if sys.argv[1:] == ["server"]:
        # straight to the language server: the CLI's other subcommands need not even import
        from torchsanity.server.language_server import start_stdio

        start_stdio()
        return
    import runpy

    runpy.run_module("torchsanity.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
