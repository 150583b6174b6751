"""The `compile` and `bench-mcu` sub-commands (torch-free); cli.py registers them from MCU_COMMANDS."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

TARGETS = ("host", "cortex-m4", "esp32")


def cmd_compile(args) -> int:
    from edgekd.cli import console
    from edgekd.mcu.compiler import compile_model
    from edgekd.mcu.targets import TARGET_CLASSES

    compiled = compile_model(args.model, args.out, name=args.name)
    d = compiled.description
    console.print(f"{compiled.c_file}: {len(d['layers'])} layers, {d['macs']:,} MACs")
    console.print(f"RAM: arena {d['arena_bytes']:,} B (liveness peak {d['liveness_peak_bytes']:,} B)")
    console.print(f"flash: weights and tables {d['weight_bytes']:,} B")
    if args.target != "host" or args.build:
        target = TARGET_CLASSES[args.target]()
        if getattr(target, "wide_weights", False) and d["widened_extra_bytes"]:
            extra = d["widened_extra_bytes"]
            console.print(f"  + {extra:,} B: conv weights widened to int16 for the {target.name} kernels")
        firmware = target.build(compiled.c_file, Path(args.out))
        console.print(f"firmware: {firmware}")
        if hasattr(target, "size"):
            sizes = target.size(firmware)
            static = f"static RAM {sizes['static_ram']:,} B (with the 16 KB stack reserve)"
            console.print(f"flash {sizes['flash']:,} B (code + weights); {static}")
            stack = target.stack_peak(firmware, d["input"]["bytes"])
            total = d["arena_bytes"] + stack
            console.print(f"RAM: arena {d['arena_bytes']:,} + stack {stack:,} (one inference on QEMU) = {total:,} B")
    return 0


def cmd_bench_mcu(args) -> int:
    from edgekd.cli import _print_bench, console
    from edgekd.mcu.bench_mcu import McuOptions, bench_mcu

    options = McuOptions(args.runs, args.warmup, args.data, args.max_images, args.timeout, args.device_id)
    report = bench_mcu(args.model, args.port, options)
    _print_bench([report], SimpleNamespace(seconds=None, runs=args.runs, warmup=args.warmup, threads=1))
    mcu = report["mcu"]
    console.print(
        f"{mcu['per_inference']:,.0f} {mcu['unit']} per inference; RAM {report['memory']['peak_rss_bytes']:,} B"
    )
    if args.json_dir:
        args.json_dir.mkdir(parents=True, exist_ok=True)
        path = args.json_dir / f"{Path(args.model).stem}.mcu.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        console.print(f"report: {path}")
    return 0


def _add_compile_parser(sub) -> None:
    p = sub.add_parser("compile", help="int8 .tflite -> C (const weights, static arena, direct kernel calls)")
    p.add_argument("model", type=Path, help="full-int8 .tflite (edgekd export --formats tflite-int8)")
    p.add_argument("--target", choices=TARGETS, default="host", help="build the firmware too (default: host, C only)")
    p.add_argument("--out", type=Path, default=Path("mcu-build"), help="output folder (default %(default)s)")
    p.add_argument("--name", help="model name the device reports (default: the file name)")
    p.add_argument("--build", action="store_true", help="with --target host: also build the host binary")
    p.set_defaults(func=cmd_compile)


def _add_bench_mcu_parser(sub) -> None:
    p = sub.add_parser("bench-mcu", help="benchmark a compiled model on a microcontroller over a serial link")
    p.add_argument("--model", type=Path, required=True, help="the int8 .tflite the device runs")
    p.add_argument("--port", help="/dev/ttyUSB0 or socket://HOST:PORT; default: boot an emulated Cortex-M4 (QEMU)")
    p.add_argument("--runs", type=int, default=10, help="timed runs (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default %(default)s)")
    p.add_argument("--data", help="dataset whose test split gives top-1 / mAP, computed on the device")
    p.add_argument("--max-images", type=int, help="with --data: at most this many test images")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds any device answer may take")
    p.add_argument("--device-id", help="device name in the report (default: the name the device reports)")
    p.add_argument("--json-dir", type=Path, help="write the report here")
    p.set_defaults(func=cmd_bench_mcu)


MCU_COMMANDS = {"compile": _add_compile_parser, "bench-mcu": _add_bench_mcu_parser}
