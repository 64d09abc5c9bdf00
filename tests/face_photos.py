"""Photos of real faces for tests, made from the two photos that ship in packages (always available)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def varied_photos(folder: Path, n: int) -> list[Path]:
    """``n`` different one-face photos in ``folder`` (created): crops, rescales and mirror images of
    scikit-image's astronaut and matplotlib's Grace Hopper, alternately."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    import matplotlib.cbook

    hopper = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    sources = [skimage_data.astronaut(), hopper]
    folder.mkdir(parents=True)
    paths = []
    for k in range(n):
        image = sources[k % 2]
        picture = Image.fromarray(image[: image.shape[0] - 3 * k, 2 * k :])
        scale = 0.5 + 0.05 * (k % 9)
        picture = picture.resize((int(picture.width * scale), int(picture.height * scale)))
        if k % 3 == 0:
            picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        paths.append(folder / f"{k:02d}.jpg")
        picture.save(paths[-1], quality=85 + k % 10)
    return paths
