"""Batches of tokenized SFT examples, padded on the right; one sample never spans two rows."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from s1exp.data.format import IGNORE_INDEX, TrainingExample


def pad_batch(examples: list[TrainingExample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


class SFTDataModule(L.LightningDataModule):
    """Shuffled micro-batches; the global batch comes from devices x micro batch x accumulation."""

    def __init__(self, examples: list[TrainingExample], micro_batch_size: int, pad_id: int) -> None:
        super().__init__()
        self.examples = examples
        self.micro_batch_size = micro_batch_size
        self.pad_id = pad_id

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.examples,
            batch_size=self.micro_batch_size,
            shuffle=True,
            collate_fn=lambda batch: pad_batch(batch, self.pad_id),
            drop_last=False,
        )
