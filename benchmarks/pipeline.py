"""`edgekd pipeline` timed from scratch: the shipped recipe (target <= 15 min on this 2-core CPU) and its --quick
run (target <= 3 min), each in a fresh run folder, with the report's table of what the run measured.

    python benchmarks/pipeline.py            # quick, then the full default recipe
    python benchmarks/pipeline.py --quick    # quick only

Results: benchmarks/results/pipeline[_quick].{json,md}; the full run's HTML report is copied beside them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import environment, log, targets_table  # noqa: E402
from edgekd.pipeline.recipe import load_recipe  # noqa: E402
from edgekd.pipeline.run import run_pipeline  # noqa: E402
from edgekd.report.render import write_report  # noqa: E402

BUDGET_MINUTES = {"quick": 3.0, "full": 15.0}


def timed_run(kind: str, work: Path) -> dict:
    run_dir = work / kind
    if run_dir.exists():
        shutil.rmtree(run_dir)  # from scratch: the time of every stage, nothing from the cache
    log(f"pipeline ({kind}) -> {run_dir}")
    run = run_pipeline(load_recipe(quick=kind == "quick"), run_dir, quick=kind == "quick")
    written = write_report(run_dir)
    rows = json.loads((run_dir / "report" / "report.json").read_text())["rows"]
    minutes = run["seconds"] / 60
    log(f"pipeline ({kind}): {minutes:.1f} min")
    return {
        "kind": kind,
        "minutes": minutes,
        "stages": {name: round(stage["seconds"], 1) for name, stage in run["stages"].items()},
        "rows": rows,
        "report": written["html"],
        "run_dir": str(run_dir),
    }


def markdown(result: dict) -> list[str]:
    lines = [f"## {result['kind']} run: {result['minutes']:.1f} min", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in result["stages"].items()]
    lines += ["", "| model | format | size KB | p50 ms | precision | recall | mAP@0.5 | mAP@0.5:0.95 |"]
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row['format']} | error: {row.get('error')} |")
            continue
        values = [row["size_bytes"] / 1024, row["p50_ms"], row["precision"], row["recall"], row["map50"], row["map"]]
        lines.append(
            f"| {row['model']} | {row['format']} | "
            + " | ".join(f"{v:.1f}" if i == 0 else f"{v:.3f}" for i, v in enumerate(values))
            + " |"
        )
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="time the --quick run only")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "pipeline")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    kinds = ["quick"] if args.quick else ["quick", "full"]
    results = [timed_run(kind, args.work) for kind in kinds]
    targets = {
        f"{r['kind']} run <= {BUDGET_MINUTES[r['kind']]:g} min": {
            "value": r["minutes"],
            "met": r["minutes"] <= BUDGET_MINUTES[r["kind"]],
        }
        for r in results
    }
    tag = "pipeline_quick" if args.quick else "pipeline"
    report = {"environment": environment(1), "runs": results, "targets": targets}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    lines = [
        "# `edgekd pipeline` from scratch",
        "",
        "Measured by `benchmarks/pipeline.py`: the shipped recipe (`edgekd/pipeline/recipes/faces.yaml`) and its "
        "`--quick` variant, each in an empty run folder on this 2-core CPU. The quick run is a smoke run: its "
        "figures are not results. Every figure comes from the run's own JSON files (see the copied report).",
        "",
    ]
    for result in results:
        lines += markdown(result)
    lines += targets_table(targets)
    (args.results / f"{tag}.md").write_text("\n".join(lines) + "\n")
    if not args.quick:
        full = Path(results[-1]["run_dir"]) / "report"
        shutil.copy(full / "report.html", args.results / "pipeline_report.html")
    log(f"-> {args.results / tag}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
