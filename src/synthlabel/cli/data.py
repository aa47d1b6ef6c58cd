"""Data subcommands: check-data, make-demo, subset."""

from __future__ import annotations

import argparse

from synthlabel.cli.common import data_args, parse_size
from synthlabel.data.classes import ClassMap
from synthlabel.data.datasets import DataReport, check_dataset, open_dataset
from synthlabel.data.subset import lowshot_indices, write_split_file
from synthlabel.data.toy import make_demo_dataset
from synthlabel.tables import markdown_table


def cmd_check_data(a: argparse.Namespace) -> int:
    r = check_dataset(a.path, a.layout, a.class_spec, a.class_map, a.meta or "auto")
    print(f"{r.root} (layout: {r.layout})")
    if r.spec is not None and r.counts:
        _print_counts(r, a.class_map)
    print(f"\n{len(r.problems)} problem(s) found" + (":" if r.problems else ""))
    for p in r.problems:
        print(f"  - {p}")
    return 0 if r.ok else 2


def _print_counts(r: DataReport, class_map: str | None) -> None:
    conds = sorted({c for s in r.counts.values() for c in s})
    rows = [[s, sum(c.values()), *[c.get(k, 0) for k in conds]] for s, c in r.counts.items()]
    print(markdown_table(["split", "images", *conds], rows))
    names = (ClassMap.from_yaml(class_map, r.spec).target if class_map else r.spec).names + ["(ignore)"]
    rows = [[n, *[f"{100 * r.pixel_fraction[s][i]:.2f}" for s in r.pixel_fraction]] for i, n in enumerate(names)]
    print("\npixel fraction per class (%):")
    print(markdown_table(["class", *r.pixel_fraction], rows))


def cmd_make_demo(a: argparse.Namespace) -> int:
    path = make_demo_dataset(
        a.out, a.n_train, a.n_val, a.n_test, parse_size(a.size), a.seed, paired=a.paired, overwrite=a.overwrite
    )
    print(f"demo dataset written to {path}")
    return 0


def cmd_subset(a: argparse.Namespace) -> int:
    ds = open_dataset(a.path, a.split, a.layout)
    path = write_split_file(a.out, ds, lowshot_indices(len(ds), a.n, a.seed))
    print(f"{a.n} of {len(ds)} '{a.split}' images (seed {a.seed}) written to {path}; use data.subset.file={path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("check-data", help="validate a dataset: counts, class pixel fractions, every problem")
    data_args(s)
    s.add_argument("--class-spec", help="classes.json (default: <path>/classes.json)")
    s.add_argument("--meta", help="metadata CSV joined by file name (default: <path>/meta.csv if present)")
    s.set_defaults(fn=cmd_check_data)

    s = sub.add_parser("make-demo", help="write the procedural demo dataset (road scenes, 4 conditions)")
    s.add_argument("out")
    s.add_argument("--n-train", type=int, default=48)
    s.add_argument("--n-val", type=int, default=16, help="0: no validation split")
    s.add_argument("--n-test", type=int, default=24)
    s.add_argument("--size", default="96x128", help="HxW")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--paired", action="store_true", help="every scene under every condition")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_make_demo)

    s = sub.add_parser("subset", help="write a deterministic low-shot split file (N images by seed)")
    s.add_argument("path")
    s.add_argument("--layout", default="auto")
    s.add_argument("--split", default="train")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_subset)
