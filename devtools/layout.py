"""The project's layout, read from its own source with ``ast`` (nothing is imported or run).

It finds, for the packages bot/, channels/ and actions/: every import between project modules
(imports inside functions too; relative imports resolved; ``from pkg import name`` counted as
an import of the submodule ``pkg.name`` when there is one), the import cycles, the modules of
each package, the length of every module and function, and which long ones carry a reason.

A reason is a comment line starting ``# long:`` right above a function's ``def`` (or above its
first decorator), or a line starting ``# long:`` among a module's first 40 lines.

    python -m devtools.layout [ROOT]

prints the report; exit status 1 if a rule (``IMPORT_RULES``, no cycle, no unexplained length)
is broken. tests/test_layout.py holds the tree to the same rules, one test each."""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

PACKAGES = ("bot", "channels", "actions")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
REASON = "# long:"
MODULE_REASON_WINDOW = 40
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Function:
    module: str
    name: str  # qualified: Class.method, outer.inner
    line: int
    length: int  # def line to last line, decorators not counted
    reason: Optional[str]


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    lines: List[str]
    reason: Optional[str]
    tree: Any = field(repr=False, default=None)
    imports: Set[str] = field(default_factory=set)
    functions: List[Function] = field(default_factory=list)

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True)
class ImportRule:
    """Modules under ``importers`` (but not under ``exempt``) may import, of the project, only
    what is under ``allowed`` (when given) and nothing under ``forbidden``."""
    name: str
    importers: Tuple[str, ...]
    allowed: Tuple[str, ...] = ()
    forbidden: Tuple[str, ...] = ()
    exempt: Tuple[str, ...] = ()


IMPORT_RULES = [
    ImportRule("bot.core imports nothing of the project outside bot.core",
               importers=("bot.core",), allowed=("bot.core",)),
    ImportRule("bot.safety imports only bot.core, bot.safety and bot.config",
               importers=("bot.safety",), allowed=("bot.core", "bot.safety", "bot.config")),
    ImportRule("bot.records and bot.storage import nothing of the layers above them",
               importers=("bot.records", "bot.storage"),
               forbidden=("bot.conversation", "bot.nlu", "bot.cli", "bot.ops", "bot.services")),
    ImportRule("bot.conversation and bot.nlu import nothing of bot.cli and bot.ops",
               importers=("bot.conversation", "bot.nlu"), forbidden=("bot.cli", "bot.ops")),
    ImportRule("bot/ imports nothing of channels/ (except bot.cli and bot.ops)",
               importers=("bot",), forbidden=("channels",), exempt=("bot.cli", "bot.ops")),
    ImportRule("actions/ imports nothing of channels/", importers=("actions",), forbidden=("channels",)),
    ImportRule("channels.rasa_bridge (inside Rasa) imports nothing of the gateway's channels",
               importers=("channels.rasa_bridge",),
               forbidden=("channels.gateway", "channels.sms", "channels.staff", "channels.web")),
    ImportRule("channels.sms and channels.staff do not import each other",
               importers=("channels.sms",), forbidden=("channels.staff",)),
    ImportRule("channels.staff and channels.sms do not import each other",
               importers=("channels.staff",), forbidden=("channels.sms",)),
    # The web chat is a channel like SMS: what both need lives in bot/ (e.g. the web outbox).
    ImportRule("channels.web imports nothing of channels.sms or channels.staff",
               importers=("channels.web",), forbidden=("channels.sms", "channels.staff")),
    ImportRule("channels.sms and channels.staff import nothing of channels.web",
               importers=("channels.sms", "channels.staff"), forbidden=("channels.web",)),
]


def under(name: str, prefixes: Tuple[str, ...]) -> bool:
    """True if module ``name`` is one of ``prefixes`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _reason(line: str) -> Optional[str]:
    text = line.strip()
    if not text.startswith(REASON):
        return None
    return text[len(REASON):].strip() or "(no text)"


def _module_name(path: Path, root: Path) -> Tuple[str, bool]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _functions(module: str, body: list, lines: List[str], prefix: str = "") -> Iterator[Function]:
    """Every function and method in ``body``, nested ones too, with its length and reason."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            above = _reason(lines[first - 2]) if first >= 2 else None
            name = prefix + node.name
            yield Function(module, name, node.lineno, node.end_lineno - node.lineno + 1, above)
            yield from _functions(module, node.body, lines, name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(module, node.body, lines, prefix + node.name + ".")
        else:  # functions defined under if/try/with blocks
            inner = [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
            yield from _functions(module, inner, lines, prefix)


def _imported_names(node: ast.AST, package: str) -> List[Tuple[str, Optional[str]]]:
    """(module, name) pairs an import statement asks for; relative imports made absolute."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
    return [(base, alias.name) for alias in node.names]


def _resolve(module: str, name: Optional[str], known: Dict[str, Module]) -> Optional[str]:
    """The project module an import reaches: ``module.name`` if that is a submodule, else the
    longest known prefix of ``module`` (``import bot.core.phone`` reaches bot.core.phone)."""
    if name and f"{module}.{name}" in known:
        return f"{module}.{name}"
    while module and module not in known:
        module = module.rpartition(".")[0]
    return module or None


def scan(root: Path = ROOT, packages: Tuple[str, ...] = PACKAGES) -> Dict[str, Module]:
    """Every module under ``root``/``packages``, by dotted name, with its imports and functions."""
    modules: Dict[str, Module] = {}
    for path in sorted(p for package in packages for p in (root / package).rglob("*.py")):
        name, is_package = _module_name(path, root)
        lines = path.read_text(encoding="utf-8").splitlines()
        reasons = [_reason(line) for line in lines[:MODULE_REASON_WINDOW] if line.startswith(REASON)]
        modules[name] = Module(name, path, is_package, lines, reasons[0] if reasons else None,
                               ast.parse("\n".join(lines), filename=str(path)))
    for name, module in modules.items():
        module.functions = list(_functions(name, module.tree.body, module.lines))
        for node in ast.walk(module.tree):
            for wanted, item in _imported_names(node, module.package):
                target = _resolve(wanted, item, modules)
                if target and target != name:
                    module.imports.add(target)
    return modules


def _reachable(modules: Dict[str, Module], start: str) -> Set[str]:
    seen: Set[str] = set()
    todo = [start]
    while todo:
        for nxt in modules[todo.pop()].imports - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def cycles(modules: Dict[str, Module]) -> List[List[str]]:
    """The import cycles: groups of modules that each reach all the others (strongly connected
    components of more than one module), sorted."""
    reach = {name: _reachable(modules, name) for name in modules}
    groups = {frozenset(other for other in reach[name] if name in reach[other])
              for name in modules if name in reach[name]}
    return sorted(sorted(group) for group in groups)


def broken_imports(modules: Dict[str, Module], rule: ImportRule) -> List[str]:
    """The imports breaking ``rule``, as "importer -> imported"."""
    found = []
    for name, module in sorted(modules.items()):
        if not under(name, rule.importers) or under(name, rule.exempt):
            continue
        for target in sorted(module.imports):
            if under(target, rule.forbidden) or (rule.allowed and not under(target, rule.allowed)):
                found.append(f"{name} -> {target}")
    return found


def long_modules(modules: Dict[str, Module]) -> List[Module]:
    """Modules over MAX_MODULE_LINES, longest first."""
    return sorted((m for m in modules.values() if len(m.lines) > MAX_MODULE_LINES),
                  key=lambda m: -len(m.lines))


def functions(modules: Dict[str, Module]) -> List[Function]:
    """Every function and method of the project, longest first."""
    return sorted((f for m in modules.values() for f in m.functions), key=lambda f: -f.length)


def unexplained_lengths(modules: Dict[str, Module]) -> List[str]:
    """Modules and functions over their limit with no ``# long:`` reason."""
    found = [f"{m.name} ({len(m.lines)} lines)" for m in long_modules(modules) if not m.reason]
    found += [f"{f.module}:{f.name} ({f.length} lines, line {f.line})"
              for f in functions(modules) if f.length > MAX_FUNCTION_LINES and not f.reason]
    return found


def violations(modules: Dict[str, Module]) -> Dict[str, List[str]]:
    """Every broken rule, by rule name, with its offenders (empty if the layout is clean)."""
    found = {rule.name: broken_imports(modules, rule) for rule in IMPORT_RULES}
    found["no import cycle"] = [" <-> ".join(group) for group in cycles(modules)]
    found["no long module or function without a '# long:' reason"] = unexplained_lengths(modules)
    return {name: offenders for name, offenders in found.items() if offenders}


def report(modules: Dict[str, Module]) -> List[str]:
    """The report ``python -m devtools.layout`` prints, as lines."""
    out = [f"{len(modules)} modules", "", "Modules per package:"]
    for package in sorted({m.package for m in modules.values()}):
        members = [m for m in modules.values() if m.package == package]
        out.append(f"  {package:<28} {len(members):>3} modules {sum(len(m.lines) for m in members):>7} lines")
    out += ["", "Import cycles:"] + ([] if cycles(modules) else ["  none"])
    for group in cycles(modules):
        out.append(f"  a cycle of {len(group)} modules (each with what it imports of the cycle):")
        out += [f"    {name} -> {', '.join(sorted(modules[name].imports & set(group)))}" for name in group]
    out += ["", f"Modules over {MAX_MODULE_LINES} lines:"]
    out += [f"  {len(m.lines):>5}  {m.name}  ({'long: ' + m.reason if m.reason else 'no reason'})"
            for m in long_modules(modules)]
    out += ["", "The 10 longest functions:"]
    out += [f"  {f.length:>5}  {f.module}:{f.name}  ({'long: ' + f.reason if f.reason else 'no reason'})"
            for f in functions(modules)[:10]]
    out += ["", "Rules broken:"] + ([] if violations(modules) else ["  none"])
    for rule, offenders in violations(modules).items():
        out += [f"  {rule}:"] + [f"    {o}" for o in offenders]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    modules = scan(Path(args[0]).resolve() if args else ROOT)
    print("\n".join(report(modules)))
    return 1 if violations(modules) else 0


if __name__ == "__main__":
    sys.exit(main())
