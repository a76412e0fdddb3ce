"""Pictures: valid PNG/GIF files of the expected size, content checks, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from sbcore.io import plots


def pixels_near(path: Path, colour: str, alpha: float = 0.6, tol: int = 12) -> int:
    """How many pixels show `colour` drawn at `alpha` over white (how the scatter markers look)."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    blended = 255 * (alpha * np.array(to_rgb(colour)) + (1 - alpha))
    return int((np.abs(rgb - blended).max(-1) <= tol).sum())


def cloud(seed: int, n: int = 300, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) + shift


def test_scatter_2d_png(tmp_path: Path) -> None:
    two = plots.scatter_2d(tmp_path / "two.png", source=cloud(0), target=cloud(1, shift=3), title="t")
    three = plots.scatter_2d(
        tmp_path / "three.png", source=cloud(0), target=cloud(1, shift=3), generated=cloud(2, shift=-3).numpy()
    )
    for path in (two, three):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (500, 500) and im.mode == "RGBA"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.png", "two.png"]  # no temporary files
    green = plots.COLOURS["generated"]
    assert pixels_near(two, green) == 0 and pixels_near(three, green) > 100
    assert pixels_near(two, plots.COLOURS["source"]) > 100 and pixels_near(two, plots.COLOURS["target"]) > 100
    with pytest.raises(ValueError, match=r"target: expected points of shape \(N, 2\)"):
        plots.scatter_2d(tmp_path / "bad.png", source=cloud(0), target=torch.zeros(5, 3))


def test_trajectories_2d_draws_lines(tmp_path: Path) -> None:
    t = torch.linspace(0, 1, 11)[:, None, None]
    paths = (1 - t) * cloud(0, 200) + t * cloud(1, 200, shift=4)

    def dark_pixels(path: Path) -> int:
        return int((np.asarray(Image.open(path).convert("L")) < 200).sum())

    no_lines = plots.trajectories_2d(tmp_path / "none.png", paths, n_lines=0)
    lines = plots.trajectories_2d(tmp_path / "lines.png", paths, n_lines=64, title="paths")
    with Image.open(lines) as im:
        assert im.format == "PNG" and im.size == (500, 500)
    assert dark_pixels(lines) > dark_pixels(no_lines) + 500
    # explicit endpoint clouds replace the paths' own ends
    explicit = plots.trajectories_2d(tmp_path / "explicit.png", paths, source=cloud(5), target=cloud(6), n_lines=0)
    assert not np.array_equal(np.asarray(Image.open(explicit)), np.asarray(Image.open(no_lines)))
    with pytest.raises(ValueError, match=r"\(T, B, 2\)"):
        plots.trajectories_2d(tmp_path / "bad.png", torch.zeros(3, 4))


def test_image_grid_layout_and_values(tmp_path: Path) -> None:
    images = torch.zeros(16, 3, 8, 8)
    images[0] = 1.0  # white
    images[1] = -1.0  # black
    images[2] = 5.0  # clipped to white
    images[3] = -1.0
    images[3, 0] = 1.0  # red
    path = plots.image_grid(tmp_path / "grid.png", images, nrow=4)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (4 * (8 + 2) + 2, 4 * (8 + 2) + 2)  # make_grid's 2-pixel padding
        px = np.asarray(im)
    centre = lambda k: px[2 + 10 * (k // 4) + 4, 2 + 10 * (k % 4) + 4]
    np.testing.assert_array_equal(centre(0), [255, 255, 255])
    np.testing.assert_array_equal(centre(1), [0, 0, 0])
    np.testing.assert_array_equal(centre(2), [255, 255, 255])
    np.testing.assert_array_equal(centre(3), [255, 0, 0])
    assert abs(int(centre(5)[0]) - 128) <= 1  # 0 maps to mid-grey
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        plots.image_grid(tmp_path / "bad.png", torch.zeros(3, 8, 8))


@pytest.mark.parametrize(("steps", "frames"), [(5, 5), (50, plots.MAX_GIF_FRAMES)])
def test_trajectory_gif_images(tmp_path: Path, steps: int, frames: int) -> None:
    level = torch.linspace(-1, 1, steps)  # every step a different grey, so no frame repeats
    path_tensor = level[:, None, None, None, None].expand(steps, 6, 1, 8, 8)
    path = plots.trajectory_gif(tmp_path / "path.gif", path_tensor, nrow=3, fps=10)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == frames and im.is_animated
        assert im.size == (3 * 10 + 2, 2 * 10 + 2)  # 6 images, 3 per row
        assert im.info["duration"] == 100
        first = np.asarray(im.convert("L"))[6, 6]
        im.seek(frames - 1)
        last = np.asarray(im.convert("L"))[6, 6]
    assert first == 0 and last == 255  # the first and the last step are always shown
    assert [p.name for p in tmp_path.iterdir()] == ["path.gif"]


def test_trajectory_gif_points(tmp_path: Path) -> None:
    t = torch.linspace(0, 1, 12)[:, None, None]
    paths = (1 - t) * cloud(0, 100) + t * cloud(1, 100, shift=2)
    path = plots.trajectory_gif(tmp_path / "points.gif", paths.numpy())
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 12 and im.size == (320, 320)
    with pytest.raises(ValueError, match="path_tensor"):
        plots.trajectory_gif(tmp_path / "bad.gif", torch.zeros(4, 10, 3))


def test_curves(tmp_path: Path) -> None:
    records = [{"step": i, "loss": 1.0 / (i + 1), "w2": np.sin(i / 5.0)} for i in range(50)]
    records.append({"step": 50, "note": "no metrics in this line"})
    path = plots.curves(tmp_path / "curves.png", records, ["loss", "w2", "absent"])
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (1200, 300)  # three panels side by side
    two_rows = plots.curves(tmp_path / "rows.png", records, ["loss", "w2", "loss", "w2"])
    with Image.open(two_rows) as im:
        assert im.size == (1200, 600)
    with pytest.raises(ValueError, match="keys"):
        plots.curves(tmp_path / "none.png", records, [])


def test_run_curves_skip_metrics_with_a_single_value(tmp_path: Path) -> None:
    records = [{"step": i, "loss": 1.0 / i, "lr": 1e-3} for i in range(1, 6)]
    records.append({"step": 5, "eval/forward/w2": 0.3, "eval/forward/nfe": 20})
    drawn = plots.run_curves(records, tmp_path)
    assert [(p.name, caption) for p, caption in drawn] == [("train_curves.png", "training curves")]
    records.append({"step": 10, "eval/forward/w2": 0.2, "eval/forward/nfe": 20})
    drawn = plots.run_curves(records, tmp_path)
    assert [p.name for p, _ in drawn] == ["train_curves.png", "eval_curves.png"]
    with Image.open(drawn[1][0]) as im:
        assert im.size == (400, 300)  # one panel: w2 (nfe is a setting, not a metric)


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "scatter.png"
    target.write_bytes(b"previous picture")

    def broken_savefig(self: Figure, fname: str, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plots.scatter_2d(target, source=cloud(0), target=cloud(1))
    assert [p.name for p in tmp_path.iterdir()] == ["scatter.png"]
    assert target.read_bytes() == b"previous picture"


def test_unwritable_destination(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError):
        plots.image_grid(blocker / "grid.png", torch.zeros(4, 3, 8, 8))
    assert [p.name for p in tmp_path.iterdir()] == ["not_a_dir"]


def test_atomic_write_creates_parent_folders(tmp_path: Path) -> None:
    path = plots.atomic_write(tmp_path / "a" / "b" / "x.txt", lambda tmp: Path(tmp).write_text("ok"))
    assert path.read_text() == "ok"
    assert [p.name for p in path.parent.iterdir()] == ["x.txt"]
