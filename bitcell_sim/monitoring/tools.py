"""The real tools: Prometheus, Alertmanager and HAProxy binaries, found and used to check configs.

``find_binary(tool)`` returns the path of ``prometheus``, ``promtool``, ``alertmanager``,
``amtool`` or ``haproxy`` (Debian names first) or raises MonitoringError naming the Debian
package to install. ``check_rendered(files)`` runs ``promtool check config``, ``amtool
check-config`` and ``haproxy -c -f`` on rendered files; ``promtool_test`` runs a rule test file.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bitcell_sim.errors import MonitoringError

#: tool -> (executable names to look for, in order; the Debian package that ships it).
TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "prometheus": (("prometheus",), "prometheus"),
    "promtool": (("promtool",), "prometheus"),
    "alertmanager": (("prometheus-alertmanager", "alertmanager"), "prometheus-alertmanager"),
    "amtool": (("amtool",), "prometheus-alertmanager"),
    "haproxy": (("haproxy",), "haproxy"),
}
#: Where Debian puts them, for a PATH without /usr/sbin (haproxy lives there).
EXTRA_DIRS = ("/usr/bin", "/usr/sbin")
CHECK_TIMEOUT_S = 60.0


def find_binary(tool: str) -> str:
    """The executable of ``tool``; MonitoringError naming its Debian package if none is found."""
    names, package = TOOLS[tool]
    for name in names:
        found = shutil.which(name)
        if found is None:
            for folder in EXTRA_DIRS:
                candidate = Path(folder) / name
                if candidate.is_file():
                    found = str(candidate)
                    break
        if found is not None:
            return found
    raise MonitoringError(
        f"{tool} is not installed (looked for {', '.join(names)}); install the Debian package: "
        f"apt-get install {package}"
    )


@dataclass(frozen=True)
class ToolCheck:
    """One run of a checking tool: the command, its exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_tool(argv: list[str], cwd: Path | None = None) -> ToolCheck:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise MonitoringError(f"{argv[0]} did not finish in {CHECK_TIMEOUT_S:g} s") from None
    return ToolCheck(tuple(argv), done.returncode, (done.stdout + done.stderr).strip())


def check_prometheus(config: Path) -> ToolCheck:
    """``promtool check config`` (which also checks the rule files it names)."""
    return run_tool([find_binary("promtool"), "check", "config", str(config)], cwd=config.parent)


def check_rules(rules: Path) -> ToolCheck:
    return run_tool([find_binary("promtool"), "check", "rules", str(rules)], cwd=rules.parent)


def check_alertmanager(config: Path) -> ToolCheck:
    return run_tool([find_binary("amtool"), "check-config", str(config)])


def check_haproxy(config: Path) -> ToolCheck:
    return run_tool([find_binary("haproxy"), "-c", "-f", str(config)])


def promtool_test(test_file: Path) -> ToolCheck:
    """``promtool test rules FILE`` (rule files named in it resolve against its folder)."""
    return run_tool(
        [find_binary("promtool"), "test", "rules", str(test_file)], cwd=test_file.parent
    )
