"""The surcharge engine against the bare Decimal expression it evaluates, per debt.

    .venv/bin/python bench/surcharges.py [--debts 20000] [--trials 5]

Over the same debts (Greek default policy, due 10 to 700 days ago, principals 10 € to 5,000 €),
best of ``--trials`` interleaved passes, microseconds per debt:

- bare: ``int((Decimal(principal) * rate * periods / 100).quantize(1, ROUND_HALF_UP))`` with the
  periods already known: the arithmetic alone, no dates, no lines, no checks;
- engine: ``compute_surcharge`` (policy parsed once, as the agency row caches it);
- engine + policy: ``SurchargePolicy.from_dict`` then ``compute_surcharge``, what every call paid
  before the policy was cached;
- explain: ``explain()`` of an engine result, in Greek with the portal's own catalogue.

Targets: engine <= 5 x bare, explain <= 10 x bare.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from babel.support import Translations

from app.domain.surcharges import SurchargePolicy, compute_surcharge, explain

ONE = Decimal(1)


def best_microseconds(functions: dict, debts, trials: int) -> dict[str, float]:
    """Each function's best pass in microseconds per debt; passes interleaved so noise hits all alike."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(trials):
        for name, function in functions.items():
            started = time.perf_counter()
            function(debts)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: seconds / len(debts) * 1e6 for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debts", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=7)
    arguments = parser.parse_args()
    chooser = random.Random(16)
    today = date(2026, 3, 2)
    debts = [
        (chooser.randint(1_000, 500_000), today - timedelta(days=chooser.randint(10, 700)))
        for _ in range(arguments.debts)
    ]
    policy = SurchargePolicy()
    stored = policy.to_dict()
    results = [
        compute_surcharge(policy, principal_minor=p, due_date=d, on=today, category="certified") for p, d in debts
    ]
    periods = [(principal, result.periods) for (principal, _), result in zip(debts, results, strict=True)]
    rate = policy.rate_percent
    catalogue = Path(__file__).resolve().parent.parent / "app" / "translations"
    greek = Translations.load(str(catalogue), ["el"])

    def bare(_debts):
        for principal, months in periods:
            int((Decimal(principal) * rate * months / 100).quantize(ONE, rounding=ROUND_HALF_UP))

    def engine(items):
        for principal, due in items:
            compute_surcharge(policy, principal_minor=principal, due_date=due, on=today, category="certified")

    def engine_with_policy(items):
        for principal, due in items:
            compute_surcharge(
                SurchargePolicy.from_dict(stored),
                principal_minor=principal,
                due_date=due,
                on=today,
                category="certified",
            )

    def explaining(_debts):
        for result in results:
            explain(result, currency="EUR", locale="el", gettext=greek.ugettext, ngettext=greek.ungettext)

    functions = {
        "bare Decimal expression": bare,
        "compute_surcharge": engine,
        "from_dict + compute_surcharge": engine_with_policy,
        "explain (el)": explaining,
    }
    figures = best_microseconds(functions, debts, arguments.trials)
    base = figures["bare Decimal expression"]
    targets = {"compute_surcharge": 5, "explain (el)": 10}
    for name, micros in figures.items():
        target = f"  (target <= {targets[name]} x)" if name in targets else ""
        print(f"{name:<32} {micros:6.2f} µs/debt  {micros / base:5.1f} x bare{target}")


if __name__ == "__main__":
    main()
