"""Tables of a classifier's section built from its metrics.json: early classification, and P(Ia)
before and after the move to the Ia share estimated from the data."""

from __future__ import annotations

from snia.report.document import Table


def early_table(label: str, early: list) -> Table:
    """AUC (whole, halves), purity, completeness and threshold per cut of the light curves."""
    return Table(
        f"{label}: early classification, the same objects with their light curves cut "
        "N days after the first detection (flux / error >= 5; objects never detected: after "
        "their first observation); purity and completeness at each cut's own best-FoM "
        "threshold.", ["days after detection", "AUC", "AUC, development half",
                       "AUC, report half", "purity", "completeness", "threshold"],
        [[str(r["days"]), f"{r['auc']:.3f}", f"{r.get('auc_development', float('nan')):.3f}",
          f"{r.get('auc_report', float('nan')):.3f}", f"{r['purity']:.3f}",
          f"{r['completeness']:.3f}", f"{r['threshold']:.3f}"] for r in early])


def share_table(label: str, share: dict) -> Table:
    """Brier score, purity and completeness at P(Ia) >= 0.5 with P(Ia) at the validation split's Ia
    share and moved to the share estimated from the data's own light curves (snia.evaluate)."""
    rows = []
    for when, text in (("before", "validation split's share"),
                       ("after", f"estimated share {share['estimated']:.3f}")):
        for part in ("whole", "development", "report"):
            r = share[when][part]
            rows.append([text, part, f"{r['brier']:.4f}", f"{r['purity']:.3f}",
                         f"{r['completeness']:.3f}"])
    return Table(f"{label}: P(Ia) at the Ia share of the validation split and moved to the share "
                 "the EM (Saerens et al. 2002) estimates from these light curves without their "
                 f"labels (labelled share: {share['labelled']:.3f}).",
                 ["P(Ia) at", "objects", "Brier score", "purity at 0.5", "completeness at 0.5"],
                 rows)
