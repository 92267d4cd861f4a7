"""The layout rules (devtools/layout.py), one test each, on the real tree; and the analysis itself
on tiny packages written to a temporary directory, so that none of the checks passes by
finding nothing."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import pytest

from devtools import layout


@pytest.fixture(scope="module")
def project() -> Dict[str, layout.Module]:
    return layout.scan()


def _broken(modules: Dict[str, layout.Module], rule_name: str) -> List[str]:
    rules = [rule for rule in layout.IMPORT_RULES if rule.name == rule_name]
    assert rules, f"no import rule named {rule_name!r} in devtools/layout.py"
    return layout.broken_imports(modules, rules[0])


def _listing(title: str, offenders: List[str]) -> str:
    return title + ":\n  " + "\n  ".join(offenders)


# The real tree

def test_the_scan_sees_the_project(project):
    assert len(project) > 50
    assert "bot.conversation.inbound" in project["channels.sms.webhook"].imports
    assert "bot.safety.detect" in project["bot.safety.screen"].imports  # a sibling module, by a from-import


def test_no_import_cycle(project):
    cycles = layout.cycles(project)
    assert not cycles, _listing("import cycles between project modules", [" <-> ".join(c) for c in cycles])


ONE_WAY_RULES = [
    "bot.core imports nothing of the project outside bot.core",
    "bot.safety imports only bot.core, bot.safety and bot.config",
    "bot.records and bot.storage import nothing of the layers above them",
    "bot.conversation and bot.nlu import nothing of bot.cli and bot.ops",
    "bot/ imports nothing of channels/ (except bot.cli and bot.ops)",
    "actions/ imports nothing of channels/",
    "channels.rasa_bridge (inside Rasa) imports nothing of the gateway's channels",
    "channels.web imports nothing of channels.sms or channels.staff",
    "channels.sms and channels.staff import nothing of channels.web",
]
SMS_STAFF_RULES = [
    "channels.sms and channels.staff do not import each other",
    "channels.staff and channels.sms do not import each other",
]


@pytest.mark.parametrize("rule", ONE_WAY_RULES)
def test_import_rule(project, rule):
    offenders = _broken(project, rule)
    assert not offenders, _listing(rule + "; these imports break it", offenders)


def test_sms_and_staff_do_not_import_each_other(project):
    offenders = [o for rule in SMS_STAFF_RULES for o in _broken(project, rule)]
    assert not offenders, _listing("channels.sms and channels.staff import each other", offenders)


def test_every_import_rule_has_its_test():
    assert set(ONE_WAY_RULES + SMS_STAFF_RULES) == {rule.name for rule in layout.IMPORT_RULES}


def test_the_architecture_page_names_only_real_files():
    """docs/architecture.md walks one SMS file by file: every path it names must exist."""
    text = (layout.ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:bot|channels|actions|devtools|docs|tests)/[\w/.]*)`", text))
    missing = sorted(path for path in named if not (layout.ROOT / path).exists())
    assert len(named) > 20 and not missing, _listing("paths in docs/architecture.md that do not exist", missing)


def test_long_modules_and_functions_give_a_reason(project):
    offenders = layout.unexplained_lengths(project)
    assert not offenders, _listing(
        f"over {layout.MAX_MODULE_LINES} lines (module) or {layout.MAX_FUNCTION_LINES} lines (function) "
        "with no '# long: <reason>' comment", offenders)


# The analysis, on synthetic packages

def _tree(root: Path, files: Dict[str, str]) -> Dict[str, layout.Module]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return layout.scan(root)


def _function(name: str, body_lines: int, above: str = "") -> str:
    return above + f"def {name}():\n" + "    x = 1\n" * body_lines


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    modules = _tree(tmp_path, {
        "bot/__init__.py": "",
        "bot/a.py": "from bot import b\n",
        "bot/b.py": "def later():\n    import bot.a\n",
        "bot/c.py": "import bot.a\n",
    })
    assert modules["bot.a"].imports == {"bot.b"}
    assert modules["bot.b"].imports == {"bot.a"}
    assert layout.cycles(modules) == [["bot.a", "bot.b"]]
    assert list(layout.violations(modules)) == ["no import cycle"]


def test_relative_imports_resolve_and_break_a_rule(tmp_path):
    modules = _tree(tmp_path, {
        "bot/__init__.py": "",
        "bot/core/__init__.py": "from .phone import normalize\n",
        "bot/core/phone.py": "def normalize():\n    pass\n",
        "bot/core/office.py": "from . import phone\nfrom ..safety import rules\nfrom ..safety.rules import X\n",
        "bot/safety/__init__.py": "",
        "bot/safety/rules.py": "X = 1\n",
    })
    assert modules["bot.core"].imports == {"bot.core.phone"}
    assert modules["bot.core.office"].imports == {"bot.core.phone", "bot.safety.rules"}
    assert _broken(modules, "bot.core imports nothing of the project outside bot.core") == [
        "bot.core.office -> bot.safety.rules"]


def test_bot_to_channels_allows_only_the_cli_and_ops(tmp_path):
    modules = _tree(tmp_path, {
        "bot/__init__.py": "",
        "bot/cli/__init__.py": "from channels.gateway import app\n",
        "bot/nlu/evaluate.py": "def f():\n    from channels.rasa_bridge.date_guard import g\n",
        "channels/__init__.py": "",
        "channels/gateway/app.py": "",
        "channels/rasa_bridge/date_guard.py": "",
    })
    assert _broken(modules, "bot/ imports nothing of channels/ (except bot.cli and bot.ops)") == [
        "bot.nlu.evaluate -> channels.rasa_bridge.date_guard"]


def test_a_long_reason_is_honoured(tmp_path):
    n = layout.MAX_FUNCTION_LINES
    modules = _tree(tmp_path, {"bot/__init__.py": "", "bot/m.py": "\n".join([
        _function("at_the_limit", n - 1),
        _function("explained", n, above="# long: a table, one row a line\n"),
        "class C:",
        "    # long: one decorator down",
        "    @staticmethod",
        "    " + _function("method", n).replace("\n", "\n    "),
        _function("unexplained", n),
        "# long: not right above the def\n",
        _function("far_reason", n),
    ])})
    by_name = {f.name: f for f in modules["bot.m"].functions}
    assert by_name["at_the_limit"].length == n and by_name["explained"].length == n + 1
    assert by_name["C.method"].reason == "one decorator down"
    assert layout.unexplained_lengths(modules) == [
        f"bot.m:unexplained ({n + 1} lines, line {by_name['unexplained'].line})",
        f"bot.m:far_reason ({n + 1} lines, line {by_name['far_reason'].line})"]


def test_a_long_module_needs_its_reason_near_the_top(tmp_path):
    filler = "x = 1\n" * layout.MAX_MODULE_LINES
    modules = _tree(tmp_path, {
        "bot/__init__.py": "",
        "bot/explained.py": '"""Doc."""\n# long: generated tables\n' + filler,
        "bot/unexplained.py": filler + "# long: too late\n",
        "bot/short.py": filler[: -len("x = 1\n")],
    })
    assert modules["bot.explained"].reason == "generated tables"
    assert layout.unexplained_lengths(modules) == [f"bot.unexplained ({layout.MAX_MODULE_LINES + 1} lines)"]


def test_main_exits_1_on_a_broken_rule_and_0_on_a_clean_tree(tmp_path, capsys):
    clean = tmp_path / "clean"
    _tree(clean, {"bot/__init__.py": "", "bot/core/__init__.py": "", "bot/core/a.py": "import os\n"})
    assert layout.main([str(clean)]) == 0
    broken = tmp_path / "broken"
    _tree(broken, {"bot/__init__.py": "", "bot/core/a.py": "import bot.config\n", "bot/config.py": ""})
    assert layout.main([str(broken)]) == 1
    assert "bot.core.a -> bot.config" in capsys.readouterr().out
