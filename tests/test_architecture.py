"""The shape of the code holds: no import cycle anywhere, and every event and topic has its owner.

The layer order itself is `import-linter`'s contract in pyproject.toml (`lint-imports`, run by
`make test`); these tests add what a layers contract cannot see: a cycle between two modules of
one package, or between packages the contract lists on one line.
"""

from __future__ import annotations

from collections import defaultdict

import grimp

from app import events

ROOTS = ("app", "erp_connectors")


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*ROOTS, include_external_packages=False)


def _child_of(package: str, module: str) -> str | None:
    """The direct child of ``package`` that ``module`` lies in, or None if it lies outside."""
    if not module.startswith(package + "."):
        return None
    return package + "." + module[len(package) + 1 :].split(".")[0]


def _cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return groups


def package_cycles(graph: grimp.ImportGraph) -> dict[str, list[list[str]]]:
    """For each package, the cycles among its direct children (modules and subpackages)."""
    packages = {module for module in graph.modules if graph.find_children(module)}
    found: dict[str, list[list[str]]] = {}
    for package in sorted(packages):
        children = set(graph.find_children(package))
        edges: dict[str, set[str]] = defaultdict(set)
        for module in graph.find_descendants(package):
            source = _child_of(package, module)
            for imported in graph.find_modules_directly_imported_by(module):
                target = _child_of(package, imported)
                if source and target and source != target:
                    edges[source].add(target)
        cycles = _cycles(children, edges)
        if cycles:
            found[package] = cycles
    return found


def test_no_package_or_module_imports_itself_through_others() -> None:
    assert package_cycles(_graph()) == {}


def test_a_cycle_is_found_when_there_is_one() -> None:
    """The checker itself can fail: two modules that import each other are reported."""
    graph = grimp.ImportGraph()
    for module in ("shop", "shop.a", "shop.b", "shop.c"):
        graph.add_module(module)
    graph.add_import(importer="shop.a", imported="shop.b")
    graph.add_import(importer="shop.b", imported="shop.c")
    graph.add_import(importer="shop.c", imported="shop.a")
    assert package_cycles(graph) == {"shop": [["shop.a", "shop.b", "shop.c"]]}


def test_the_outbox_delivers_every_topic_its_listeners_write(app) -> None:
    """Each feature that writes messages registered its topic with create_app."""
    from app.outbox.services import registered_topics

    assert set(registered_topics()) >= {
        "erp_payment_ack",
        "erp_refund_ack",
        "erp_sale_ack",
        "receipt_email",
        "refund_email",
    }
    assert all(topic.label for topic in registered_topics().values())
    assert events.payment_succeeded.receivers and events.refund_made.receivers


def test_every_topic_says_what_it_does_in_both_languages(app) -> None:
    """The treasury shows each topic by the label its feature registered, translated."""
    from flask_babel import force_locale

    from app.outbox.services import registered_topics
    from app.treasury.audit_text import outbox_topic_label

    with app.test_request_context():
        with force_locale("en"):
            english = {name: outbox_topic_label(name) for name in registered_topics()}
        with force_locale("el"):
            greek = {name: outbox_topic_label(name) for name in registered_topics()}
    assert english["receipt_email"] == "Receipt e-mail"
    assert all(greek[name] != english[name] for name in english)
