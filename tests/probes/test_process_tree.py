"""Every process the product starts dies with its parent: kill the probe CLI, the language server in the middle of
a probe, or the language server while its analysis worker is busy, with each signal, and scan /proc for
survivors. Also: a script that exits before its first backward() is an error, whatever way it exits; the probe
child gets the user's environment minus the editor's."""

from __future__ import annotations

import pytest

from process_trees import kill_parent
from torchsanity.server.probe_runner import run_probe

pytest.importorskip("torch")

# Each parent meets each script, and each signal; SIGKILL (nothing in the parent can clean up) meets the
# double-forked daemon that leaves the session and replaces its environment.
CASES = [
    ("cli", "SIGTERM", "tree_dataloader.py"),
    ("cli", "SIGHUP", "tree_popen.py"),
    ("cli", "SIGINT", "tree_dataloader.py"),
    ("cli", "SIGKILL", "tree_daemon.py"),
    ("server", "SIGTERM", "tree_popen.py"),
    ("server", "SIGHUP", "tree_dataloader.py"),
    ("server", "SIGKILL", "tree_daemon.py"),
    ("worker", "SIGTERM", ""),
    ("worker", "SIGHUP", ""),
    ("worker", "SIGKILL", ""),
]


@pytest.mark.parametrize("parent,signame,script", CASES, ids=[f"{p}-{s}-{c or 'busy'}" for p, s, c in CASES])
def test_killing_the_parent_leaves_no_process(parent, signame, script):
    outcome = kill_parent(parent, signame, script or "tree_popen.py")
    expected = {"tree_dataloader.py": 3, "tree_popen.py": 2, "tree_daemon.py": 2}.get(script, 1)
    assert len(outcome.tree) >= expected, outcome.parent_stderr
    assert outcome.survivors == [], f"{parent} killed by {signame} left {outcome.survivors}\n{outcome.parent_stderr}"
    if parent == "cli" and signame != "SIGKILL":  # the CLI ends the tree itself and says so
        assert outcome.parent_exit == 2
        assert f"interrupted by {signame}; the script and every process it started were stopped" in \
            outcome.parent_stderr


@pytest.mark.parametrize("how,code", [("sys.exit", 0), ("os._exit", 0), ("os._exit3", 3)])
def test_a_script_that_exits_before_its_first_backward_is_an_error(scripts_dir, how, code):
    outcome = run_probe(str(scripts_dir / "exits_early.py"), [how], checks=["initial-loss"], timeout=120)
    assert outcome.exit_code == 2, outcome.report
    error = outcome.report["error"]
    assert error["type"] == "ScriptExited"
    assert f"the script exited (code {code}) before its first backward()" in error["message"]
    assert outcome.report["checks"] == []
    assert "checkpoint found" in outcome.output


def test_a_child_killed_by_a_signal_is_reported_as_such(tmp_path):
    """The guard between the runner and the child exits the way the child did, so a kernel OOM kill still reads
    as one."""
    script = tmp_path / "oom_killed.py"
    script.write_text("import os, signal\nprint('allocating', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    outcome = run_probe(str(script), checks=["initial-loss"], timeout=60)
    assert outcome.exit_code == 2
    assert outcome.report["error"]["type"] == "Killed"
    assert "killed by SIGKILL" in outcome.report["error"]["message"] and outcome.report["oom"] is True


def test_the_probe_child_gets_the_users_environment_without_the_editors(tmp_path, monkeypatch):
    editor = {
        "VSCODE_IPC_HOOK": "/run/user/1000/vscode-ipc.sock",
        "VSCODE_IPC_HOOK_EXTHOST": "/run/user/1000/vscode-exthost.sock",
        "VSCODE_PID": "4242",
        "VSCODE_NLS_CONFIG": "{}",
        "VSCODE_GIT_ASKPASS_MAIN": "/usr/share/code/askpass-main.js",
        "GIT_ASKPASS": "/usr/share/code/askpass.sh",
        "ELECTRON_RUN_AS_NODE": "1",
        "ELECTRON_NO_ATTACH_CONSOLE": "1",
        "APPLICATION_INSIGHTS_NO_DIAGNOSTIC_CHANNEL": "1",
    }
    user = {"DATA_ROOT": "/datasets/imagenet", "HF_HOME": "/cache/hf", "MY_VSCODE_NOTE": "kept"}
    for name, value in {**editor, **user}.items():
        monkeypatch.setenv(name, value)
    script = tmp_path / "env_dump.py"
    script.write_text("import os\nfor k in sorted(os.environ):\n    print('ENV', k, '=', os.environ[k])\n")
    outcome = run_probe(str(script), checks=["initial-loss"], timeout=60)
    seen = {line.split()[1] for line in outcome.output.splitlines() if line.startswith("ENV ")}
    assert seen, outcome.output
    assert not set(editor) & seen
    assert set(user) <= seen
    assert {"PATH", "HOME"} & seen  # the rest of the user's environment is there
    assert "TORCHSANITY_PROBE_LIFELINE" not in seen  # the guard's pipe is the guard's alone
