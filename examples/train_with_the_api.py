"""``dl2 train --model resnet --model-args '{"depth": 8, "width": 0.5}' --epochs 8 --batch-size 64 --lr 0.002
--weight-decay 1e-4 --schedule cosine --augment crop --crop-padding 1 --label-smoothing 0.05 --val-split 0``
written with the API (the same training, up to the order in which the images reach the shuffler; on the embedded
digits, a few seconds)."""
import dl2
from dl2.data import augment

(x, t), (x_test, t_test) = dl2.data.load_digits()
model = dl2.models.get("resnet", x.shape[1:], 10, depth=8, width=0.5, seed=0)
optimizer = dl2.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
epochs = 8
trainer = dl2.Trainer(model, dl2.SoftmaxCrossEntropy(label_smoothing=0.05), optimizer, seed=0, progress=False,
                      scheduler=dl2.optim.CosineLR(optimizer, t_max=epochs))
trainer.fit(x, t, epochs=epochs, batch_size=64, transform=augment.RandomCrop(padding=1, seed=1))
print(f"test accuracy: {dl2.evaluate(model, x_test, t_test, dl2.SoftmaxCrossEntropy())['accuracy']:.4f}")
