"""The command line on MiniMax-H3: generate with --reference, batch lines with "model"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from minimax_s2v.cli import EXIT, main
from minimax_s2v.emulator import EmulatorThread
from tests.test_cli_commands import api


@pytest.fixture
def face(tmp_path: Path) -> Path:
    path = tmp_path / "face.jpg"
    Image.new("RGB", (512, 640), (200, 160, 140)).save(path, "JPEG")
    return path


def test_generate_with_a_reference_then_status_and_download(
    minimax_emulator: EmulatorThread, face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model MiniMax-H3 --reference sends a V2 create; status/download take --model."""
    out = tmp_path / "v.mp4"
    argv = ["generate", *api(minimax_emulator), "--model", "MiniMax-H3", "--reference", str(face)]
    argv += ["--prompt", "she smiles", "--resolution", "2K", "--duration", "5", "--out", str(out)]
    assert main([*argv, "--json"]) == EXIT["ok"]
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "Success"
    assert out.read_bytes()[4:8] == b"ftyp"
    state = minimax_emulator.state()
    assert state["requests"]["v2_submit"] == {"ok": 1}
    assert "submit" not in state["requests"]
    task_id = result["task_id"]
    assert main(["status", *api(minimax_emulator), task_id, "--model", "MiniMax-H3"]) == 0
    assert f"task {task_id}: Success" in capsys.readouterr().out
    again = tmp_path / "again.mp4"
    argv = [
        "download",
        *api(minimax_emulator),
        task_id,
        "--model",
        "MiniMax-H3",
        "--out",
        str(again),
    ]
    assert main(argv) == EXIT["ok"]
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "MiniMax-H3", "--prompt", "p"], "--reference"),
        (["--model", "MiniMax-H3", "--reference", "x.jpg"], "--prompt"),
        (["--reference", "x.jpg", "--image", "y.jpg"], "MiniMax-H3 options"),
        (
            ["--model", "MiniMax-H3", "--prompt", "p", "--reference", "x.jpg", "--duration", "99"],
            "duration",
        ),
    ],
)
def test_generate_usage_errors(
    minimax_emulator: EmulatorThread,
    extra: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Missing or misplaced H3 options are one-line usage errors; nothing is sent."""
    assert main(["generate", *api(minimax_emulator), *extra]) == EXIT["usage"]
    assert needle in capsys.readouterr().err
    assert minimax_emulator.state()["tasks_created"] == 0


def test_batch_mixes_s2v_and_h3_lines(
    minimax_emulator: EmulatorThread, face: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch holds S2V-01 lines and MiniMax-H3 lines; a re-run resubmits none."""
    batch = tmp_path / "jobs.jsonl"
    lines = [
        {"id": "v1", "image": face.name, "prompt": "a wave"},
        {"id": "h3", "model": "MiniMax-H3", "references": [face.name], "prompt": "a smile"},
        {
            "id": "h3-body",
            "model": "MiniMax-H3",
            "content": [
                {"type": "text", "text": "a nod"},
                {"type": "image_url", "image_url": {"url": face.name}, "role": "reference_image"},
            ],
            "resolution": "768P",
            "duration": 4,
        },
        {"id": "bad", "model": "MiniMax-H3", "prompt": "no references"},
    ]
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    assert main(["batch", *api(minimax_emulator), str(batch), "--out", str(out)]) == EXIT["usage"]
    err = capsys.readouterr().err
    assert f"{batch}:4: skipped bad" in err
    assert sorted(p.name for p in out.glob("*.mp4")) == ["h3-body.mp4", "h3.mp4", "v1.mp4"]
    state = minimax_emulator.state()
    assert state["requests"]["v2_submit"] == {"ok": 2}
    assert state["requests"]["submit"] == {"ok": 1}
    assert main(["batch", *api(minimax_emulator), str(batch), "--out", str(out)]) == EXIT["usage"]
    assert minimax_emulator.state()["tasks_created"] == 3
