"""Pipeline recipes: the shipped one loads, bad ones are refused naming file, line and key; stage cache keys."""

import pytest

from edgekd.cli import main
from edgekd.errors import ConfigError
from edgekd.pipeline.cache import run_stage, stage_key
from edgekd.pipeline.recipe import DEFAULT_RECIPE, Recipe, load_recipe
from edgekd.pipeline.run import plan
from edgekd.pipeline.stages import mcu_tools_missing


def test_shipped_recipe_loads_and_quick_shortens_every_training_stage():
    full, quick = load_recipe(), load_recipe(quick=True)
    assert full == Recipe()  # the shipped file shows the defaults: the two must not drift apart
    assert full.data == "faces" and full.student.model == "mcu-face"
    assert quick.teacher.epochs < full.teacher.epochs and quick.student.epochs < full.student.epochs
    expected = ["teacher", "baseline", "student", "prune", "export-teacher", "export-baseline", "export-student"]
    expected += ["export-final", "bench", "compile"] + ([] if mcu_tools_missing() else ["bench-mcu"])
    assert [s.name for s in plan(full)] == expected
    no_int8 = load_recipe()
    no_int8.export.formats = ["onnx"]
    assert "compile" not in [s.name for s in plan(no_int8)]


@pytest.mark.parametrize(
    "text,message",
    [
        ("teacher:\n  model: m\n  epoks: 3\n", r"recipe.yaml:3: unknown key 'teacher.epoks' \(did you mean 'epochs'"),
        ("student:\n  epochs: many\n", r"recipe.yaml:2: student.epochs must be int, got 'many'"),
        ("prune:\n  kind: sideways\n", r"recipe.yaml:2: prune.kind must be one of structured, magnitude, none"),
        ("prune:\n  macs_ratio: 1.5\n", r"prune.macs_ratio must be between 0 and 1"),
        ("export:\n  formats: onnx\n", r"export.formats must be a list of strings"),
        ("export:\n  formats: [onnx, tflite-int4]\n", r"export.formats takes a non-empty list of onnx, onnx-int8"),
        ("teacher: 3\n", r"recipe.yaml:1: teacher must be a mapping"),
        ("data: missing/data.yaml\n", r"data: file missing/data.yaml does not exist"),
        ("teacher:\n  model: teacher.pt\n", r"teacher.model: file teacher.pt does not exist"),
        ("student: [unclosed\n", r"not valid YAML"),
        ("student:\n  epochs: true\n", r"student.epochs must be int, got True"),
    ],
)
def test_bad_recipes_name_the_file_line_and_key(tmp_path, text, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_recipe(recipe)


def test_cli_refuses_a_bad_recipe_with_exit_2(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("bench:\n  runs: 0\n")
    assert main(["pipeline", str(recipe), "--check"]) == 2
    assert "bench.runs must be at least 1" in capsys.readouterr().err
    assert main(["pipeline", str(tmp_path / "absent.yaml")]) == 2


def test_relative_paths_resolve_from_the_recipe_folder(tmp_path):
    (tmp_path / "teacher.pt").write_bytes(b"x")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("teacher:\n  model: teacher.pt\n")
    assert load_recipe(recipe).teacher.model == str(tmp_path / "teacher.pt")
    assert DEFAULT_RECIPE.is_file()


def test_stage_cache_reuses_finished_work_and_reruns_when_inputs_change(tmp_path):
    calls = []

    def work(folder):
        calls.append(folder)
        (folder / "out.txt").write_text("done")
        return {"out": str(folder / "out.txt")}

    first = run_stage(tmp_path, "teacher", {"epochs": 2}, [], work)
    again = run_stage(tmp_path, "teacher", {"epochs": 2}, [], work)
    assert not first.cached and again.cached and len(calls) == 1 and again.result == first.result
    downstream = run_stage(tmp_path, "student", {}, [first], work)
    changed = run_stage(tmp_path, "teacher", {"epochs": 3}, [], work)
    assert changed.key != first.key and len(calls) == 3
    assert stage_key("student", {}, [changed.key]) != downstream.key  # the student would run again


def test_a_crashed_stage_is_not_taken_for_done(tmp_path):
    def crash(folder):
        (folder / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path, "teacher", {}, [], crash)
    kept = []
    record = run_stage(tmp_path, "teacher", {}, [], lambda folder: kept.append((folder / "partial.txt").exists()) or {})
    assert kept == [True] and not record.cached  # same key: the partial work is left for the stage to resume
