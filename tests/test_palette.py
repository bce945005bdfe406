"""The palette yardstick and loss: CIELAB colours, the sliced Wasserstein distance, and training toward a palette."""

import pytest
import torch

from stst.base.imageio import read_photo
from stst.training import palette
from stst.training.losses import style_colours
from stst.training.palette import PaletteLoss, colours, fit_colours, lab, palette_distance, sort_rows

from conftest import PHOTOS, STYLES


def test_lab_of_known_colours():
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1], [0.5, 0.5, 0.5]]).T[:, :, None]
    expected = torch.tensor([[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86],
                             [53.39, 0, 0]])
    assert torch.allclose(lab(rgb)[..., 0].T, expected, atol=0.05)


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_cpu_sort_gives_torch_sorts_values_and_gradients(dtype, split, monkeypatch):
    """sort_rows finds the order with numpy on the CPU, split among threads where the table is long: the values
    and the gradient of torch.sort's, for rows fewer and more than the threads (distinct values in a row: at ties
    either order is right)."""
    monkeypatch.setattr(palette, "SPLIT_KEYS", 0 if split else 1 << 30)
    for shape in [(5,), (3, 200), (2, 9, 256)]:
        x = ((torch.rand(shape).argsort(-1) - 100) / 8).to(dtype).requires_grad_()  # exact in bf16 too
        weights = torch.randn(shape, dtype=dtype)
        ours, = torch.autograd.grad((sort_rows(x) * weights).sum(), x)
        theirs, = torch.autograd.grad((torch.sort(x, dim=-1).values * weights).sum(), x)
        assert torch.equal(sort_rows(x), torch.sort(x, dim=-1).values) and torch.equal(ours, theirs), shape


def test_the_cpu_sort_works_in_a_forked_child_of_a_process_that_used_it(monkeypatch):
    """A forked child (a data loader's worker) has none of its parent's threads: the sort's threads are its own,
    never a pool kept from the parent, on which it would wait forever."""
    import multiprocessing

    monkeypatch.setattr(palette, "SPLIT_KEYS", 0)  # split among threads however short (the child inherits it)
    x = torch.rand(8, 100)
    assert torch.equal(sort_rows(x), x.sort(-1).values)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_sorts_right, (x,)).get(timeout=60)


def _sorts_right(x: torch.Tensor) -> bool:
    return torch.equal(sort_rows(x), x.sort(-1).values)


def test_the_distance_is_zero_on_the_painting_and_grows_as_colours_move_away():
    painting = read_photo(STYLES / "starry_night.jpg", max_size=256).rgb
    photo = read_photo(PHOTOS / "kodim23.jpg", max_size=256).rgb
    assert palette_distance(painting, painting) < 0.5  # sampling alone
    assert palette_distance(painting, painting) == palette_distance(painting, painting)  # seeded: repeatable
    darker, much_darker = palette_distance(painting * 0.8, painting), palette_distance(painting * 0.5, painting)
    assert 3 < darker < much_darker
    assert palette_distance(photo, painting) > 10
    # a picture with the painting's colours in another arrangement is on the painting's palette
    shuffled = painting.reshape(3, -1)[:, torch.randperm(painting[0].numel())].reshape(painting.shape)
    assert palette_distance(shuffled, painting) < 0.5
    # the mean colour alone is not the palette: a flat picture of the painting's mean colour stays far
    flat = painting.mean((1, 2), keepdim=True).expand_as(painting)
    assert palette_distance(flat, painting) > 5


def test_the_palette_loss_pulls_colours_toward_the_painting():
    painting = read_photo(STYLES / "the_scream.jpg", max_size=128).rgb
    target = (painting * 255).round().to(torch.uint8)
    loss = PaletteLoss(style_colours(target), weight=1.0)
    logits = torch.logit(read_photo(PHOTOS / "kodim23.jpg", max_size=64).rgb[None].clamp(0.02, 0.98))
    logits.requires_grad_(True)
    before = palette_distance(torch.sigmoid(logits)[0], painting)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        loss(torch.sigmoid(logits)).backward()
        optimizer.step()
    after = palette_distance(torch.sigmoid(logits)[0].detach(), painting)
    assert after < 0.4 * before
    assert torch.isfinite(logits.grad).all()


def test_a_mix_takes_its_colours_from_each_painting_by_weight():
    black = torch.zeros(3, 8, 8, dtype=torch.uint8)
    white = torch.full((3, 8, 8), 255, dtype=torch.uint8)
    table = style_colours([(black, 0.75), (white, 0.25)], count=1000)
    assert len(table) == 1000
    assert (table[:, 0] > 50).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert torch.equal(colours(white.float() / 255)[:1], table[table[:, 0] > 50][:1])


def test_the_colour_fit_maps_a_picture_onto_the_painting_palette():
    painting = read_photo(STYLES / "starry_night.jpg", max_size=128).rgb
    # a stylized picture stand-in: a photo of other colours, darkened and with values past 0..1 as a network gives
    picture = read_photo(PHOTOS / "kodim23.jpg", max_size=128).rgb * 1.3 - 0.2
    matrix, shift = fit_colours(picture.reshape(3, -1).T, colours(painting))
    mapped = (torch.einsum("ij,jhw->ihw", matrix, picture) + shift.view(3, 1, 1)).clamp(0, 1)
    before = palette_distance(picture.clamp(0, 1), painting)
    assert palette_distance(mapped, painting) < 0.5 * before
    again = fit_colours(picture.reshape(3, -1).T, colours(painting))
    assert torch.equal(again[0], matrix) and torch.equal(again[1], shift)  # seeded: one fit per network
