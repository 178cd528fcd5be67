"""A tiny AST learns a generated task far above chance (the model and loss train)."""

import torch

from craft_modules.models.craft import CraftClassifier
from craft_modules.testing.synth import synth_clip

CLASSES = [0, 4, 6, 9]  # harmonic tone, slow clicks, white-noise burst, pluck


def test_tiny_ast_learns_synthetic_classes():
    clips, labels = [], []
    for label, sound in enumerate(CLASSES):
        for i in range(20):
            clips.append(
                torch.from_numpy(synth_clip([sound], 16000, 1.0, seed=1000 * sound + i))
            )
            labels.append(label)
    wavs, labels = torch.stack(clips).float(), torch.tensor(labels)
    test = torch.arange(len(labels)) % 5 == 0
    torch.manual_seed(0)
    model = CraftClassifier(
        4,
        fusion="ast",
        model_size="tiny",
        depth=2,
        target_frames=128,
        fstride=16,
        tstride=16,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    train_x, train_y = wavs[~test], labels[~test]
    for _ in range(10):
        for batch in torch.randperm(len(train_x)).split(16):
            loss = torch.nn.functional.cross_entropy(
                model(train_x[batch]), train_y[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(wavs[test]).argmax(dim=1) == labels[test]).float().mean()
    assert accuracy >= 0.5, f"accuracy {accuracy:.2f}, chance 0.25"
